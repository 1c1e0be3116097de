"""What the store and the read model share about their SQLite files: WAL
mode, and the mark that tells a read model's file from a store's."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["READ_MODEL_APPLICATION_ID", "enter_wal"]

#: What a read model (engine.readmodel) marks its file with (SQLite's
#: ``PRAGMA application_id``, "TRM1"): a store is never made inside one.
READ_MODEL_APPLICATION_ID = 0x54524D31


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
