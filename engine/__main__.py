"""``python -m engine``: the ``transcripts`` command-line tool."""

from engine.cli import main

main()
