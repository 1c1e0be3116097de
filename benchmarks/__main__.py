"""``python -m benchmarks``: run both parts of the benchmarks and print their tables."""

from benchmarks.cli import main

raise SystemExit(main())
