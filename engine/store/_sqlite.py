"""The SQLite backend: eventsourcing's SQLite recorder (WAL) plus a listing
table and a snapshot table, both written in the events' own transaction."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Literal

from eventsourcing.persistence import (
    InterfaceError,
    StoredEvent,
)
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

from engine.errors import (
    CorruptStore,
    InvalidArgument,
    SessionNotFound,
    StorageUnavailable,
)
from engine.state.content import shown
from engine.store._backend import RecorderBackend, described, translated_errors
from engine.store._chain import check_legacy_sealing, sealed_row
from engine.store._codec import READABLE_TOPICS, fork_source, refuse_orphans
from engine.store._records import FeedEntry, ListingFilter, Record, Rewrite, SessionRow, StoredSnapshot

Synchronous = Literal["full", "normal", "off"]
Execute = Callable[..., sqlite3.Cursor]
_ROW_COLUMNS = "session_id, title, created_at, updated_at, message_count, revision, version, head, seal, summary"
_SYNCHRONOUS: tuple[str, ...] = ("full", "normal", "off")


class _Pool(SQLiteConnectionPool):
    """eventsourcing's pool, with connections made as its own are (autocommit
    mode, WAL, ``sqlite3.Row``) plus the ``synchronous`` setting and a real
    statement cache: eventsourcing passes ``cached_statements=True``, a cache
    of one statement, so every write re-prepared its SQL."""

    def __init__(self, *, synchronous: str, **options: Any) -> None:
        self.synchronous = synchronous
        super().__init__(**options)

    def _create_connection(self) -> SQLiteConnection:
        connection = self.connect()
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=self.max_age)

    def connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=64,
                timeout=self.lock_timeout or 5,
            )
            if not self.is_sqlite_memory_mode:
                connection.execute("PRAGMA journal_mode=WAL")
                self.is_journal_mode_wal = True
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
        except (sqlite3.Error, UnicodeDecodeError) as exc:  # a damaged header can hold non-UTF-8 text
            raise InterfaceError(exc) from exc
        return connection


class _Datastore(SQLiteDatastore):
    pool: _Pool

    def __init__(self, uri: str, *, synchronous: str, lock_timeout: int) -> None:
        super().__init__(uri, lock_timeout=lock_timeout, originator_id_type="text")
        self.pool.close()  # unused: replaced before any connection was made
        self.pool = _Pool(db_name=uri, lock_timeout=lock_timeout, synchronous=synchronous)


class SQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder (its tables, pool, reads and
    notification log) with the listing and snapshot tables written in the same
    transaction as the events.

    Writes go through one long-lived connection made by the pool, guarded by a
    lock, instead of a pool round trip per transaction: the pool's
    reader/writer interlock cost about 9 µs a call, a third of the CPU time of
    an append. ``BEGIN IMMEDIATE`` takes the write lock up front, so a busy
    database waits for ``lock_timeout`` instead of failing on lock upgrade.
    """

    # The feed lists the engine's event types only: not the row that keeps
    # the newest position taken after a deletion (see delete_sessions).
    feed_topics = tuple(READABLE_TOPICS)

    datastore: _Datastore

    def __init__(
        self, datastore: _Datastore, prefix: str, seal_key: bytes | None = None, seal_legacy: bool = False
    ) -> None:
        self._seal_key = seal_key
        self._seal_legacy = seal_legacy
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = threading.Lock()
        self.sessions_table = f"{prefix}_sessions"
        self.snapshots_table = f"{prefix}_snapshots"
        super().__init__(datastore, events_table_name=f"{prefix}_events")
        self._upsert_session = (
            f"INSERT INTO {self.sessions_table} ({_ROW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET title=excluded.title, "
            "updated_at=excluded.updated_at, message_count=excluded.message_count, "
            "revision=excluded.revision, version=excluded.version, head=excluded.head, seal=excluded.seal, "
            "summary=excluded.summary"
        )
        self._update_session = (
            f"UPDATE {self.sessions_table} SET title=?, updated_at=?, "
            "message_count=?, revision=?, version=?, head=?, seal=?, summary=? WHERE session_id=?"
        )
        self._insert_snapshot = f"INSERT INTO {self.snapshots_table} (session_id, version, state) VALUES (?,?,?)"
        self._select_records = (
            f"SELECT originator_version, topic, state FROM {self.events_table_name} "
            "WHERE originator_id=? AND originator_version>? AND originator_version<=? ORDER BY originator_version"
        )
        self._select_feed = (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
            f"WHERE rowid>? AND topic IN ({', '.join('?' * len(self.feed_topics))}) ORDER BY rowid LIMIT ?"
        )

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.sessions_table} ("
            "session_id TEXT PRIMARY KEY, title TEXT, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, message_count INTEGER NOT NULL, "
            "revision TEXT NOT NULL, version INTEGER NOT NULL, head TEXT NOT NULL, seal TEXT NOT NULL, "
            "summary TEXT) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self.snapshots_table} ("
            "session_id TEXT NOT NULL, version INTEGER NOT NULL, state BLOB NOT NULL, "
            "PRIMARY KEY (session_id, version)) WITHOUT ROWID",
        ]

    def create_table(self) -> None:
        super().create_table()
        self._add_summary_column()
        self._seal_unsealed_rows()

    def _add_summary_column(self) -> None:
        """A store written before listing rows had a summary gets the column
        (its rows keep NULL until their session is next written)."""

        def apply(execute: Execute) -> None:
            columns = {row[1] for row in execute(f"PRAGMA table_info({self.sessions_table})")}
            if "summary" not in columns:
                execute(f"ALTER TABLE {self.sessions_table} ADD COLUMN summary TEXT")

        self._write(apply)

    def has_tables(self) -> bool:
        """Whether the store's tables are there (to open without creating them)."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.sessions_table,))
            return cursor.fetchone() is not None

    def _seal_unsealed_rows(self) -> None:
        """Give a store written before rows were sealed its chain heads and
        seals, once, in one transaction: when the columns are added. A row
        with an empty seal is never sealed later: that is damage."""

        def apply(execute: Execute) -> None:
            columns = {row[1] for row in execute(f"PRAGMA table_info({self.sessions_table})")}
            if "seal" in columns:
                return
            check_legacy_sealing(self.datastore.pool.db_name, self._seal_key, self._seal_legacy)
            for column in ("head", "seal"):
                execute(f"ALTER TABLE {self.sessions_table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
            for found in execute(f"SELECT {_ROW_COLUMNS} FROM {self.sessions_table}").fetchall():
                records = execute(self._select_records, (found[0], 0, found[6])).fetchall()
                row = sealed_row(SessionRow(*found), map(Record._make, records), self._seal_key)
                execute(self._update_session, (*row[1:2], *row[3:], row.session_id))

        self._write(apply)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # eventsourcing's entry point, kept working for its own tools.
        records = [Record(e.originator_version, e.topic, e.state) for e in stored_events]
        session_id = str(stored_events[0].originator_id) if stored_events else ""
        self.insert_records(session_id, records, kwargs.get("session_row"), kwargs.get("snapshot"))
        return None

    def insert_records(
        self, session_id: str, records: Sequence[Record], row: SessionRow | None, snapshot: StoredSnapshot | None
    ) -> None:
        def apply(execute: Execute) -> None:
            first = records[0]
            source = fork_source(session_id, first.topic, first.state) if first.version == 1 else None
            if (
                source is not None
                and execute(f"SELECT 1 FROM {self.sessions_table} WHERE session_id=?", (source,)).fetchone() is None
            ):
                raise SessionNotFound(source)  # deleted since the fork was prepared
            for version, topic, state in records:
                execute(self.insert_events_statement, (session_id, version, topic, state))
            if row is not None:
                # The row exists after creation, so a plain UPDATE does; an
                # upsert costs more on every append.
                changes = (
                    row.title,
                    row.updated_at,
                    row.message_count,
                    row.revision,
                    row.version,
                    row.head,
                    row.seal,
                    row.summary,
                    session_id,
                )
                if first.version == 1:
                    execute(self._upsert_session, row)
                elif not execute(self._update_session, changes).rowcount:
                    # No listing row: the session was deleted since this
                    # writer read it. Its events must not come back.
                    raise SessionNotFound(session_id)
                if snapshot is not None:
                    execute(self._insert_snapshot, (session_id, snapshot.version, snapshot.state))

        self._write(apply)

    def rewrite_records(self, changes: Sequence[Rewrite]) -> None:
        replace = f"UPDATE {self.events_table_name} SET topic=?, state=? WHERE originator_id=? AND originator_version=?"

        def apply(execute: Execute) -> None:
            for change in changes:
                for version, topic, state in change.replaced:
                    if execute(replace, (topic, state, change.session_id, version)).rowcount != 1:
                        raise sqlite3.IntegrityError(f"record {version} of {change.session_id!r} changed meanwhile")
                for version, topic, state in change.appended:
                    execute(self.insert_events_statement, (change.session_id, version, topic, state))
                execute(self._upsert_session, change.row)

        self._write(apply, erasing=True)

    def delete_sessions(self, session_ids: Sequence[str]) -> None:
        def apply(execute: Execute) -> None:
            forks = execute(
                f"SELECT originator_id, topic, state FROM {self.events_table_name} "
                "WHERE originator_version=1 AND topic LIKE 'SessionForked.%'"
            ).fetchall()
            refuse_orphans(session_ids, forks)
            events = self.events_table_name
            (newest,) = execute(f"SELECT max(rowid) FROM {events}").fetchone()
            for session_id in session_ids:
                for table, column in (
                    (events, "originator_id"),
                    (self.snapshots_table, "session_id"),
                    (self.sessions_table, "session_id"),
                ):
                    execute(f"DELETE FROM {table} WHERE {column}=?", (session_id,))
            (left,) = execute(f"SELECT max(rowid) FROM {events}").fetchone()
            if newest is not None and (left or 0) < newest:
                # SQLite would give the next event the position of the newest
                # deleted one, and the feed would show it to no reader that had
                # passed that position: a row of no session (id '', no type the
                # feed lists) keeps the newest position taken.
                execute(f"DELETE FROM {events} WHERE originator_id = ''")
                execute(
                    f"INSERT INTO {events} (rowid, originator_id, originator_version, topic, state) "
                    "VALUES (?, '', 0, '', x'')",
                    (newest,),
                )

        self._write(apply, erasing=True)

    def _write(self, apply: Callable[[Execute], None], *, erasing: bool = False) -> None:
        """Run ``apply(execute)`` in one write transaction on the long-lived
        writer connection (its driver errors are translated by the backend's
        ``translated_errors``, like every other). ``BEGIN IMMEDIATE`` takes the write lock up front, so a busy
        database waits for ``lock_timeout`` instead of failing on lock upgrade.

        ``erasing``: secure delete is on (SQLite overwrites freed content with
        zeros), then the WAL is checkpointed into the file and truncated, so
        old bytes are in neither file. A reader holding an old snapshot delays
        the checkpoint: it is retried for up to ``lock_timeout``."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = self.datastore.pool.connect()
            execute = self._writer.execute
            if erasing:
                execute("PRAGMA secure_delete=ON")
            try:
                execute("BEGIN IMMEDIATE")
                try:
                    apply(execute)
                    execute("COMMIT")
                except BaseException:
                    execute("ROLLBACK")
                    raise
            finally:
                if erasing:
                    execute("PRAGMA secure_delete=OFF")
            if erasing:
                deadline = time.monotonic() + (self.datastore.pool.lock_timeout or 5)
                while execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError(
                            "the erasure is committed, but a reader kept the old pages in the WAL file; "
                            "call again to finish removing them"
                        )
                    time.sleep(0.01)

    def close_writer(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def select_records(self, session_id: str, after: int, upto: int | None) -> list[Record]:
        # Plain tuples straight into Records: eventsourcing's select_events
        # builds an sqlite3.Row and a StoredEvent per row, which doubled the
        # cost of loading a long session.
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor().sqlite_cursor
            cursor.row_factory = None
            try:
                cursor.execute(self._select_records, (session_id, after, 2**62 if upto is None else upto))
                return list(map(tuple.__new__, repeat(Record), cursor.fetchall()))  # Record._make, a third faster
            finally:
                cursor.close()

    def select_feed(self, after: int, limit: int) -> list[FeedEntry]:
        # Plain tuples, as select_records: eventsourcing's select_notifications
        # builds a Row and a Notification per event, a third of a feed read.
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor().sqlite_cursor
            cursor.row_factory = None
            try:
                cursor.execute(self._select_feed, (after, *self.feed_topics, limit))
                found = cursor.fetchall()
            finally:
                cursor.close()
        if not all(type(state) is bytes and type(session_id) is str for _, session_id, _, _, state in found):
            raise TypeError("a stored event of a damaged type")  # SQLite keeps any value in any column
        return [
            FeedEntry(position, session_id, Record(version, topic, state))
            for position, session_id, version, topic, state in found
        ]

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT version, state FROM {self.snapshots_table} WHERE session_id=? AND version<=? "
                "ORDER BY version DESC LIMIT 1",
                (session_id, upto if upto is not None else 2**62),
            )
            found = c.fetchone()
        return None if found is None else StoredSnapshot(found[0], bytes(found[1]))

    def select_snapshots(self, session_id: str) -> list[StoredSnapshot]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT version, state FROM {self.snapshots_table} WHERE session_id=? ORDER BY version", (session_id,)
            )
            return [StoredSnapshot(version, bytes(state)) for version, state in c.fetchall()]

    def select_session(self, session_id: str) -> SessionRow | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {_ROW_COLUMNS} FROM {self.sessions_table} WHERE session_id=?",
                (session_id,),
            )
            found = c.fetchone()
        return None if found is None else SessionRow(*found)

    def select_sessions(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        where, values = ("", []) if wanted is None else _listing_where(wanted)
        with self.datastore.transaction(commit=False) as c:
            order = " ORDER BY created_at, session_id"
            try:
                c.execute(f"SELECT {_ROW_COLUMNS} FROM {self.sessions_table}{where}{order}", values)
            except sqlite3.OperationalError as exc:
                if "JSON" not in str(exc):
                    raise
                raise CorruptStore(f"a listing row's summary is not the JSON the engine writes ({exc})") from None
            return [SessionRow(*row) for row in c.fetchall()]


def _listing_where(wanted: ListingFilter) -> tuple[str, list[Any]]:
    """A WHERE clause letting through the rows whose summary may match
    ``wanted`` (the listing tests each exactly), and every row without one.
    Only what SQLite's JSON functions compare exactly narrows the rows: keys
    a JSON path names plainly, text without NUL, 64-bit integers; and at
    most ``_MOST_CLAUSES`` of them (SQLite limits an expression's depth)."""
    clauses: list[tuple[str, list[Any]]] = []  # each with its parameters
    for name in ("status", "owner", "parent"):
        value = getattr(wanted, name)
        if value is not None:
            clauses.append((f"json_extract(summary, '$.{name}') = ?", [value]))
    if wanted.pinned is not None:
        clauses.append(("json_extract(summary, '$.pinned') = ?", [int(wanted.pinned)]))  # JSON true reads as 1
    for tag in wanted.tags:
        clauses.append(("EXISTS (SELECT 1 FROM json_each(summary, '$.tags') WHERE value = ?)", [tag]))
    for key, value in wanted.metadata:
        if not key.isprintable() or '"' in key or "\\" in key:
            continue  # a key a JSON path cannot name plainly: tested exactly afterwards only
        path = f'$.metadata."{key}"'
        exact = (isinstance(value, str) and "\x00" not in value) or (type(value) is int and -(2**63) <= value < 2**63)
        if exact:
            clauses.append(("json_extract(summary, ?) = ?", [path, value]))
        else:
            clauses.append(("json_type(summary, ?) IS NOT NULL", [path]))
    used = clauses[:_MOST_CLAUSES]
    if not used:
        return "", []
    where = " WHERE summary IS NULL OR (" + " AND ".join(clause for clause, _ in used) + ")"
    return where, [value for _, values in used for value in values]


#: Filter clauses SQLite evaluates at most; the listing tests the rest.
_MOST_CLAUSES = 16


def _database_uri(path: str) -> str:
    if "\x00" in path:
        raise InvalidArgument("a SQLite file path cannot hold NUL characters (\\x00)")
    absolute = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(absolute)):
        raise InvalidArgument(f"cannot open SQLite file {shown(path)}: its directory does not exist")
    return "file:" + urllib.parse.quote(absolute)


def open_sqlite(
    path: str,
    *,
    prefix: str,
    synchronous: Synchronous = "full",
    lock_timeout: int = 10,
    seal_key: bytes | None = None,
    seal_legacy: bool = False,
    create: bool = True,
) -> RecorderBackend:
    if synchronous not in _SYNCHRONOUS:
        raise InvalidArgument(f"synchronous must be one of {_SYNCHRONOUS}, got {shown(synchronous)}")
    uri = _database_uri(path)  # refuses what no file name can be, before anything uses it
    where = described(os.path.realpath(path), prefix)
    if not create and not os.path.isfile(path):
        raise StorageUnavailable(f"there is no transcript store at {where}: no such file")
    datastore = _Datastore(uri, synchronous=synchronous, lock_timeout=lock_timeout)
    recorder = SQLiteRecorder(datastore, prefix, seal_key, seal_legacy)
    try:
        with translated_errors("open", where, opening=True):  # e.g. "file is not a database"
            if not create and not recorder.has_tables():
                raise StorageUnavailable(
                    f"there is no transcript store at {where}: the file has no {prefix}_sessions table "
                    "(another file, or another table prefix?)"
                )
            recorder.create_table()
    except BaseException:
        datastore.close()
        raise

    def close() -> None:
        recorder.close_writer()
        datastore.close()

    return RecorderBackend(recorder, where, on_close=close, seal_key=seal_key)
