"""The SQLite backend: eventsourcing's SQLite recorder (WAL) plus a listing
table updated in the same transaction and a one-row-per-session snapshot table."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from engine.errors import InvalidArgument, StorageError, StorageUnavailable
from engine.store._backend import RecorderBackend, SessionRow, StoredSnapshot, translated_errors

Synchronous = Literal["full", "normal", "off"]
_SYNCHRONOUS: tuple[str, ...] = ("full", "normal", "off")


class _Pool(SQLiteConnectionPool):
    """eventsourcing's pool, plus the ``synchronous`` setting on every connection."""

    def __init__(self, *, synchronous: str, **options: Any) -> None:
        self.synchronous = synchronous
        super().__init__(**options)

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return connection


class _Datastore(SQLiteDatastore):
    def __init__(self, uri: str, *, synchronous: str, lock_timeout: int) -> None:
        super().__init__(uri, lock_timeout=lock_timeout, originator_id_type="text")
        self.pool.close()  # unused: replaced before any connection was made
        self.pool = _Pool(db_name=uri, lock_timeout=lock_timeout, synchronous=synchronous)


class SQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, prefix: str) -> None:
        self.sessions_table = f"{prefix}_sessions"
        self.snapshots_table = f"{prefix}_snapshots"
        super().__init__(datastore, events_table_name=f"{prefix}_events")
        self._upsert_session = (
            f"INSERT INTO {self.sessions_table} (session_id, title, created_at, updated_at, "
            "message_count, revision, version) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET title=excluded.title, "
            "updated_at=excluded.updated_at, message_count=excluded.message_count, "
            "revision=excluded.revision, version=excluded.version"
        )
        self._insert_snapshot = f"INSERT INTO {self.snapshots_table} (session_id, version, state) VALUES (?,?,?)"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.sessions_table} ("
            "session_id TEXT PRIMARY KEY, title TEXT, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, message_count INTEGER NOT NULL, "
            "revision TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self.snapshots_table} ("
            "session_id TEXT NOT NULL, version INTEGER NOT NULL, state BLOB NOT NULL, "
            "PRIMARY KEY (session_id, version)) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # One parameterised INSERT for all events of the call; the listing
        # row follows in the same transaction.
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        row: SessionRow | None = kwargs.get("session_row")
        if row is not None:
            c.execute(self._upsert_session, row)
            snapshot: StoredSnapshot | None = kwargs.get("snapshot")
            if snapshot is not None:
                c.execute(self._insert_snapshot, (row.session_id, snapshot.version, snapshot.state))
        return None

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT version, state FROM {self.snapshots_table} WHERE session_id=? AND version<=? "
                "ORDER BY version DESC LIMIT 1",
                (session_id, upto if upto is not None else 2**62),
            )
            found = c.fetchone()
        return None if found is None else StoredSnapshot(found[0], bytes(found[1]))

    def select_sessions(self) -> list[SessionRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT session_id, title, created_at, updated_at, message_count, revision, version "
                f"FROM {self.sessions_table} ORDER BY created_at, session_id"
            )
            return [SessionRow(*row) for row in c.fetchall()]


def _database_uri(path: str) -> str:
    absolute = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(absolute)):
        raise InvalidArgument(f"cannot open SQLite file {path!r}: its directory does not exist")
    return "file:" + urllib.parse.quote(absolute)


def open_sqlite(
    path: str, *, prefix: str, synchronous: Synchronous = "full", lock_timeout: int = 10
) -> RecorderBackend:
    if synchronous not in _SYNCHRONOUS:
        raise InvalidArgument(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
    datastore = _Datastore(_database_uri(path), synchronous=synchronous, lock_timeout=lock_timeout)
    recorder = SQLiteRecorder(datastore, prefix)
    try:
        with translated_errors("open", path):
            recorder.create_table()
    except StorageError as exc:  # e.g. "file is not a database"
        datastore.close()
        raise StorageUnavailable(f"cannot open SQLite file {path!r}: {exc.__cause__ or exc}") from None
    return RecorderBackend(recorder, path, on_close=datastore.close)
