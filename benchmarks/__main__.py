"""``python -m benchmarks``: run the benchmark suite and print its table."""

from benchmarks.suite import main

raise SystemExit(main())
