"""WAL mode for a SQLite file, shared by the store and the read model."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["enter_wal"]


def enter_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (once per file), waiting up to ``timeout``
    seconds for another process: SQLite answers the switch "database is
    locked" at once, without its busy timeout, while another connection is
    making the same new file."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
