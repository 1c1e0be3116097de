"""What the store and the read model share about their SQLite files: WAL
mode, and the mark that tells a read model's file from a store's."""

from __future__ import annotations

import os
import sqlite3
import time

from engine.errors import InvalidArgument
from engine.state.content import shown

__all__ = ["READ_MODEL_APPLICATION_ID", "enter_wal", "refuse_side_file"]

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


def refuse_side_file(path: str, what: str) -> None:
    """``InvalidArgument`` if ``path`` names a file SQLite keeps beside a
    database that exists (``x.db-wal``, ``-shm``, ``-journal``): SQLite
    deletes or overwrites it as it works on that database, and ``what``
    (a store, a read model) would go with it."""
    for suffix in ("-wal", "-shm", "-journal"):
        base = path.removesuffix(suffix)
        if base != path and os.path.exists(base):
            raise InvalidArgument(
                f"{shown(path)} is a file SQLite keeps beside the database {shown(base)} (and deletes or "
                f"overwrites as it works on it); name another file for the {what}"
            )
