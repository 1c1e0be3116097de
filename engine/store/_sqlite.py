"""The SQLite backend: the log of events, a listing table and a snapshot
table in one SQLite file (WAL), written in one transaction per write through
eventsourcing's SQLite datastore."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from eventsourcing.persistence import InterfaceError
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    InvalidArgument,
    SessionNotFound,
    StorageUnavailable,
)
from engine.state.content import shown
from engine.store._backend import (
    RecorderBackend,
    check_feed_versions,
    described,
    leftover_snapshots,
    translated_errors,
    unreachable_position,
)
from engine.store._chain import check_legacy_sealing, removed_seals, seal_mode_of, sealed_row
from engine.store._codec import (
    READABLE_TOPICS,
    fork_source,
    refuse_children,
    refuse_new_forks,
    refuse_orphans,
    spawn_parent,
    spawn_parents,
)
from engine.store._packed import PACKED_TOPICS, REVISION_ID_TEXT_APPEND_TOPIC
from engine.store._records import (
    LISTING_COLUMNS,
    ROW_COLUMNS,
    FeedEntry,
    ListingFilter,
    Record,
    Rewrite,
    SessionRow,
    StoredSnapshot,
)
from engine.store._wal import READ_MODEL_APPLICATION_ID, enter_wal, refuse_side_file

Synchronous = Literal["full", "normal", "off"]
Execute = Callable[..., sqlite3.Cursor]
_SYNCHRONOUS: tuple[str, ...] = ("full", "normal", "off")
# A wait for the writer connection longer than this shortens the database's
# busy timeout by it (shorter waits are the normal turn-taking of threads).
_SHORT_WAIT = 0.005


def _committed(execute: Execute, apply: Callable[[Execute], None]) -> None:
    """``apply(execute)`` in the open transaction, then commit it (or roll
    it back if it raised)."""
    try:
        apply(execute)
        execute("COMMIT")
    except BaseException:
        execute("ROLLBACK")
        raise


#: What the append view's trigger raises when the listing row does not hold
#: the head the append extends.
_MOVED = "the listing row does not hold the head this append extends"


def _shorten_busy_timeout(execute: Execute, limit: float, started: float) -> bool:
    """After waiting since ``started`` for a turn on the writer connection,
    leave the database's lock only what is left of ``limit`` (lock_timeout),
    so the two waits together stay within it; whether it was shortened (the
    caller then sets it back). Short waits are the normal turn-taking."""
    waited = time.monotonic() - started
    if waited <= _SHORT_WAIT:
        return False
    execute(f"PRAGMA busy_timeout={max(1, round((limit - waited) * 1000))}")
    return True


def _finish(what: str) -> str:
    """What finishes an erasure's or a deletion's removal of the old bytes."""
    return "call again to finish removing them" if what == "erasure" else "the next erase or delete removes them"


_new_tuple = tuple.__new__  # Record._make, a third faster


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
                # SQLite's default 4 KiB pages: 8 KiB ones, tried, stored about
                # a byte less per message but wrote twice the bytes per commit
                # (appends one per call 10-17% slower).
                enter_wal(connection, self.lock_timeout or 5)
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


class SQLiteRecorder:
    """The SQLite tables of a store, written and read through eventsourcing's
    SQLite datastore (its pool and transactions):

    - ``<prefix>_log``: every event, one row each: its feed position (the
      rowid), the session's integer key, its version, its type's code and
      its stored bytes; a unique index on (session key, version).
    - ``<prefix>_kinds``: the code of every stored type name.
    - ``<prefix>_sessions``: one listing row per session, with its key.
    - ``<prefix>_snapshots``: snapshots, by session id and version.
    - ``<prefix>_events``: a view of the log as eventsourcing's events table
      showed it (session id, version, type name, bytes, position), for SQL.

    Integer keys and type codes keep each event's row to its bytes and a
    few integers: eventsourcing's events table repeated the 36-character
    session id and the type name in every row and again in its primary key
    index. A store written with that table is moved to these, unchanged
    row for row (same bytes, same positions, so chain heads and seals
    still hold), in one transaction the first time it is opened.

    Writes go through one long-lived connection made by the pool, guarded by
    a lock, instead of a pool round trip per transaction: the pool's
    reader/writer interlock cost about 9 µs a call, a third of the CPU time
    of an append. ``BEGIN IMMEDIATE`` takes the write lock up front, so a
    busy database waits for ``lock_timeout`` instead of failing on lock
    upgrade.
    """

    def __init__(
        self,
        datastore: _Datastore,
        prefix: str,
        seal_key: bytes | None = None,
        seal_legacy: bool = False,
        where: str = "",
    ) -> None:
        self.datastore = datastore
        self._where = where or datastore.pool.db_name  # for error messages
        self._seal_key = seal_key
        self._seal_legacy = seal_legacy
        self._writer: sqlite3.Connection | None = None
        self._closed = False  # close_writer() ran: no writer connection is made again
        self._writer_lock = threading.Lock()
        self._held_by: int | None = None  # the thread in ``holding_writes``, until its write
        self._held_erasing = False  # whether that block is ``holding_rewrites``'s
        self._codes: dict[str, int] = {}
        self._topics: dict[int, str] = {}  # the other way round, for reads
        self.log_table = log = f"{prefix}_log"
        self.kinds_table = kinds = f"{prefix}_kinds"
        self.sessions_table = sessions = f"{prefix}_sessions"
        self.snapshots_table = f"{prefix}_snapshots"
        self.seal_table = f"{prefix}_seal"
        self.events_view = f"{prefix}_events"
        key_of = f"(SELECT key FROM {sessions} WHERE session_id=?)"
        self._insert_record = f"INSERT INTO {log} (session, version, kind, state) VALUES ({key_of},?,?,?)"
        # A new key is above every key of the log too: events whose listing
        # row was removed (damage, which the feed reports) keep theirs, and a
        # new session must not write under it.
        self._next_key = (
            f"SELECT max(coalesce((SELECT max(key) FROM {sessions}), 0), coalesce((SELECT max(session) FROM {log}), 0))"
        )
        self._create_session = f"INSERT INTO {sessions} ({ROW_COLUMNS}, key) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        self._upsert_session = (
            f"INSERT INTO {sessions} ({ROW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (session_id) DO UPDATE SET title=excluded.title, "
            "updated_at=excluded.updated_at, message_count=excluded.message_count, "
            "revision=excluded.revision, version=excluded.version, head=excluded.head, seal=excluded.seal, "
            "summary=excluded.summary"
        )
        self._update_session = (
            f"UPDATE {sessions} SET title=?, updated_at=?, "
            "message_count=?, revision=?, version=?, head=?, seal=?, summary=? WHERE session_id=?"
        )
        # An append's row update: only while the row still holds the head the
        # writer's records extend (NULL: not checked).
        self._advance_session = self._update_session + " AND (? IS NULL OR head=?)"
        # The commonest write, one event appended to a listed session, as one
        # statement in its own transaction: an insert into a view of the
        # writer connection's own (TEMP: nothing is added to the file), whose
        # trigger advances the listing row (only while it holds the head the
        # event extends) and inserts the event. BEGIN IMMEDIATE, the update,
        # the insert and COMMIT each cost a call: about 7% of an append at
        # synchronous=off.
        append_view = f"{prefix}_append_one"
        self._append_one = f"INSERT INTO temp.{append_view} VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        self._append_view_statements = (
            f"CREATE TEMP VIEW IF NOT EXISTS {append_view} AS SELECT NULL AS session_id, NULL AS previous_head, "
            "NULL AS title, NULL AS updated_at, NULL AS message_count, NULL AS revision, NULL AS version, "
            "NULL AS head, NULL AS seal, NULL AS summary, NULL AS kind, NULL AS state WHERE 0",
            f"CREATE TEMP TRIGGER IF NOT EXISTS {append_view}_insert INSTEAD OF INSERT ON {append_view} BEGIN "
            f"UPDATE {sessions} SET title=NEW.title, updated_at=NEW.updated_at, "
            "message_count=NEW.message_count, revision=NEW.revision, version=NEW.version, head=NEW.head, "
            "seal=NEW.seal, summary=NEW.summary WHERE session_id=NEW.session_id AND head=NEW.previous_head; "
            f"SELECT RAISE(ABORT, '{_MOVED}') WHERE changes() = 0; "
            f"INSERT INTO {log} (session, version, kind, state) VALUES "
            f"((SELECT key FROM {sessions} WHERE session_id=NEW.session_id), NEW.version, NEW.kind, NEW.state); "
            "END",
        )
        self._insert_snapshot = f"INSERT INTO {self.snapshots_table} (session_id, version, state) VALUES (?,?,?)"
        self._select_parents = (
            f"SELECT session_id, json_extract(summary, '$.parent') FROM {sessions} "
            "WHERE json_extract(summary, '$.parent') IS NOT NULL"
        )
        self._select_unsummarised_firsts = (
            f"SELECT s.session_id, k.topic, l.state FROM {sessions} s JOIN {log} l ON l.session = s.key "
            f"JOIN {kinds} k ON k.code = l.kind WHERE s.summary IS NULL AND l.version = 1"
        )
        self._select_fork_firsts = (
            f"SELECT s.session_id, k.topic, l.state FROM {log} l JOIN {kinds} k ON k.code = l.kind "
            f"JOIN {sessions} s ON s.key = l.session WHERE l.version=1 AND k.topic LIKE 'SessionForked.%'"
        )
        # A read from the start has no lower bound on versions, and a read to
        # the end no upper one: a row at a version no write of the engine
        # makes (0, below, or past any count) is read, and fails the check.
        records = f"SELECT l.version, l.kind, l.state FROM {log} l WHERE l.session={key_of}"
        self._select_records = f"{records} AND l.version>? AND l.version<=? ORDER BY l.version"
        self._select_records_upto = f"{records} AND l.version<=? ORDER BY l.version"
        self._select_all_records = f"{records} ORDER BY l.version"
        # A LEFT JOIN: an event whose session has no listing row is damage
        # (select_feed says so), not something to leave out quietly.
        self._select_feed = (
            f"SELECT l.position, s.session_id, l.version, k.topic, l.state, l.session FROM {log} l "
            f"LEFT JOIN {sessions} s ON s.key = l.session LEFT JOIN {kinds} k ON k.code = l.kind "
            # The one row of no session the engine writes (see delete_sessions)
            # is left out; any other row of key 0 is shown, as damage.
            "WHERE l.position>? AND NOT (l.session = 0 AND l.version = 0 AND l.state = x'') "
            "ORDER BY l.position LIMIT ?"
        )
        # Positions the engine never gives (a rowid from 1, far below 2**62):
        # rows below are before every reader's start, and one at the top
        # makes SQLite give the next events positions at random.
        self._select_unreachable = f"SELECT position FROM {log} WHERE position < 1 OR position >= {2**62} LIMIT 1"

    def construct_create_table_statements(self) -> list[str]:
        log, sessions = self.log_table, self.sessions_table
        return [
            f"CREATE TABLE IF NOT EXISTS {self.kinds_table} (code INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE)",
            f"CREATE TABLE IF NOT EXISTS {log} (position INTEGER PRIMARY KEY, session INTEGER NOT NULL, "
            "version INTEGER NOT NULL, kind INTEGER NOT NULL, state BLOB NOT NULL)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {log}_session ON {log} (session, version)",
            f"CREATE TABLE IF NOT EXISTS {sessions} ("
            "session_id TEXT PRIMARY KEY, title TEXT, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, message_count INTEGER NOT NULL, "
            "revision TEXT NOT NULL, version INTEGER NOT NULL, head TEXT NOT NULL, seal TEXT NOT NULL, "
            "summary TEXT, key INTEGER) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self.snapshots_table} ("
            "session_id TEXT NOT NULL, version INTEGER NOT NULL, state BLOB NOT NULL, "
            "PRIMARY KEY (session_id, version)) WITHOUT ROWID",
            # One row: how the listing rows are sealed (see engine.store._chain.seal_mode).
            f"CREATE TABLE IF NOT EXISTS {self.seal_table} "
            "(one INTEGER PRIMARY KEY CHECK (one = 1), mode TEXT NOT NULL)",
        ]

    def create_table(self) -> None:
        """Make the tables (a store written by an earlier build gets the
        columns and tables it lacks, once), and learn the type codes."""

        def current(execute: Execute) -> bool:
            found = {row[0]: row[1] for row in execute("SELECT name, type FROM sqlite_master")}
            if found.get(self.log_table) != "table" or found.get(self.events_view) != "view":
                return False
            if found.get(self.seal_table) != "table":
                return False
            if any(found.get(name) != "trigger" for name in self._view_trigger_names()):
                return False  # triggers of an earlier build: replaced below
            columns = {row[1] for row in execute(f"PRAGMA table_info({self.sessions_table})")}
            if not {"summary", "key", "head", "seal"} <= columns:
                return False
            self._learn_codes(execute)
            return self._codes.keys() >= READABLE_TOPICS

        with self.datastore.transaction(commit=False) as cursor:
            execute = cursor.sqlite_cursor.execute
            (application,) = execute("PRAGMA application_id").fetchone()
            _refuse_read_model(application, self._where)
            if current(execute) and self._seal_mode_to_record(execute) is None:
                return  # no DDL, no write lock

        def apply(execute: Execute) -> None:
            if current(execute):  # made current by another process meanwhile
                self._record_seal_mode(execute)
                return
            found = {row[0]: row[1] for row in execute("SELECT name, type FROM sqlite_master")}
            for statement in self.construct_create_table_statements():
                execute(statement)
            columns = {row[1] for row in execute(f"PRAGMA table_info({self.sessions_table})")}
            for column, declared in (("summary", "TEXT"), ("key", "INTEGER")):
                # A store written before listing rows had a summary keeps NULL
                # in it until the session is next written.
                if column not in columns:
                    execute(f"ALTER TABLE {self.sessions_table} ADD COLUMN {column} {declared}")
            if found.get(self.events_view) == "table":
                self._move_events_table(execute)
            execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {self.sessions_table}_key ON {self.sessions_table} (key)")
            execute(
                f"CREATE VIEW IF NOT EXISTS {self.events_view} AS SELECT s.session_id AS originator_id, "
                "l.version AS originator_version, k.topic AS topic, l.state AS state, l.position AS position "
                f"FROM {self.log_table} l JOIN {self.sessions_table} s ON s.key = l.session "
                f"JOIN {self.kinds_table} k ON k.code = l.kind"
            )
            for old in (f"{self.events_view}_insert", f"{self.events_view}_update"):  # earlier builds' triggers
                execute(f"DROP TRIGGER IF EXISTS {old}")
            for statement in self._view_triggers():
                execute(statement)
            if not {"head", "seal"} <= columns:
                # Only a store of version 0.1 was never sealed: it had none of
                # the tables and columns later builds add (its events, moved
                # above, are in the log now), no packed event, and neither
                # of the two columns.
                later = [name for name in (self.log_table, self.kinds_table, self.seal_table) if name in found]
                later += [
                    f"the {name} column of {self.sessions_table}" for name in ("summary", "key") if name in columns
                ]
                if execute(
                    f"SELECT 1 FROM {self.log_table} l JOIN {self.kinds_table} k ON k.code = l.kind "
                    f"WHERE k.topic IN ({', '.join('?' for _ in PACKED_TOPICS)}) LIMIT 1",
                    PACKED_TOPICS,
                ).fetchone():
                    later.append("events in a packed form")
                if later or columns & {"head", "seal"}:
                    raise removed_seals(self._where, later or ["one of the two columns"])
                self._seal_unsealed_rows(execute)
            self._record_seal_mode(execute)
            self._refuse_unnamed_codes(execute)
            # In a new store the commonest row, one text message, gets code 1,
            # which SQLite keeps in no bytes at all (as it does 0).
            execute(
                f"INSERT OR IGNORE INTO {self.kinds_table} (topic) VALUES " + ", ".join("(?)" for _ in READABLE_TOPICS),
                sorted(READABLE_TOPICS, key=lambda topic: (topic != REVISION_ID_TEXT_APPEND_TOPIC, topic)),
            )
            self._learn_codes(execute)

        self._write(apply)

    def _seal_mode_to_record(self, execute: Execute) -> str | None:
        """How the listing rows are sealed, if the store has not recorded it
        and can tell (``seal_mode_of``): as this opening seals them in a new
        store, else as its rows tell (a store of an earlier build)."""
        if execute(f"SELECT 1 FROM {self.seal_table}").fetchone() is not None:
            return None
        rows = (SessionRow(*found) for found in execute(f"SELECT {ROW_COLUMNS} FROM {self.sessions_table}"))
        return seal_mode_of(rows, self._seal_key)

    def _record_seal_mode(self, execute: Execute) -> None:
        mode = self._seal_mode_to_record(execute)
        if mode is not None:
            execute(f"INSERT INTO {self.seal_table} (one, mode) VALUES (1, ?)", (mode,))

    def select_seal_mode(self) -> str | None:
        with self.datastore.transaction(commit=False) as cursor:
            found = cursor.sqlite_cursor.execute(f"SELECT mode FROM {self.seal_table}").fetchone()
        return None if found is None else found[0]

    def _refuse_unnamed_codes(self, execute: Execute) -> None:
        """``CorruptStore`` if the log holds type codes the kinds table does
        not name (rows of it deleted): naming the missing types anew would
        give them other codes, and the log would stay unreadable for good."""
        named = {code for (code,) in execute(f"SELECT code FROM {self.kinds_table}")}
        # Not the row a deletion leaves to keep the newest position taken
        # (see delete_sessions): its code 0 names no type.
        used = {
            code
            for (code,) in execute(
                f"SELECT DISTINCT kind FROM {self.log_table} "
                "WHERE NOT (session = 0 AND version = 0 AND kind = 0 AND state = x'')"
            )
        }
        if used - named:
            raise CorruptStore(
                f"{self._where}: the log holds type codes {sorted(used - named, key=str)} that no row of "
                f"{self.kinds_table} names: rows of it were deleted or altered; nothing was written"
            )

    def _learn_codes(self, execute: Execute) -> None:
        """Read the kinds table. Reads map codes back to the engine's own
        type-name strings, so a decoder's lookup finds them by identity."""
        own = {topic: topic for topic in READABLE_TOPICS}
        self._codes = {
            own.get(topic, topic): code for topic, code in execute(f"SELECT topic, code FROM {self.kinds_table}")
        }
        self._topics = {code: topic for topic, code in self._codes.items()}

    def _view_trigger_names(self) -> list[str]:
        """The view's triggers, named by their version: a store whose
        triggers are of an earlier build gets these when it is opened."""
        view = self.events_view
        return [f"{view}_insert_v2", f"{view}_update_v2", f"{view}_delete"]

    def _view_triggers(self) -> list[str]:
        """Writes through the view reach the log, so SQL written for
        eventsourcing's events table (a repair, an export, an audit's
        test of what a changed row does) keeps working: every column
        written is written (a position too), and a row naming a session
        the store does not list is refused, saying so."""
        view, log, kinds, sessions = self.events_view, self.log_table, self.kinds_table, self.sessions_table
        insert, update, delete = self._view_trigger_names()
        code_of = f"(SELECT code FROM {kinds} WHERE topic = NEW.topic)"
        key_of = f"(SELECT key FROM {sessions} WHERE session_id = NEW.originator_id)"
        new_kind = f"INSERT OR IGNORE INTO {kinds} (topic) VALUES (NEW.topic);"
        unlisted = (
            "SELECT RAISE(ABORT, 'no session of that originator_id is listed in this store: "
            f"sessions are created by the engine') WHERE {key_of} IS NULL;"
        )
        return [
            f"CREATE TRIGGER IF NOT EXISTS {insert} INSTEAD OF INSERT ON {view} BEGIN {unlisted} {new_kind} "
            f"INSERT INTO {log} (position, session, version, kind, state) "
            f"VALUES (NEW.position, {key_of}, NEW.originator_version, {code_of}, NEW.state); END",
            f"CREATE TRIGGER IF NOT EXISTS {update} INSTEAD OF UPDATE ON {view} BEGIN {unlisted} {new_kind} "
            f"UPDATE {log} SET position = NEW.position, session = {key_of}, version = NEW.originator_version, "
            f"kind = {code_of}, state = NEW.state WHERE position = OLD.position; END",
            f"CREATE TRIGGER IF NOT EXISTS {delete} INSTEAD OF DELETE ON {view} BEGIN "
            f"DELETE FROM {log} WHERE position = OLD.position; END",
        ]

    def _move_events_table(self, execute: Execute) -> None:
        """Move the rows of eventsourcing's events table (stores of earlier
        builds) into the log: same versions, type names, bytes and positions.
        Every session gets a key; events of no listing row (damage: the two
        were always written together) keep theirs under negative keys, so
        nothing is dropped and the feed reports them."""
        events, sessions = self.events_view, self.sessions_table
        execute(f"INSERT OR IGNORE INTO {self.kinds_table} (topic) SELECT DISTINCT topic FROM {events}")
        execute("CREATE TEMP TABLE moved_keys (session_id TEXT PRIMARY KEY, key INTEGER NOT NULL)")
        execute(f"INSERT INTO moved_keys SELECT session_id, row_number() OVER (ORDER BY session_id) FROM {sessions}")
        execute(
            f"UPDATE {sessions} SET key = (SELECT key FROM moved_keys m WHERE m.session_id = {sessions}.session_id)"
        )
        if execute("SELECT 1 FROM moved_keys WHERE session_id = ''").fetchone():
            raise CorruptStore("a listing row has an empty session id, which no session has; nothing was changed")
        execute("INSERT INTO moved_keys VALUES ('', 0)")  # the row keeping the newest position (delete_sessions)
        orphans = execute(
            f"SELECT DISTINCT originator_id FROM {events} "
            "WHERE originator_id NOT IN (SELECT session_id FROM moved_keys)"
        ).fetchall()
        for number, (orphan,) in enumerate(orphans, start=1):
            execute("INSERT INTO moved_keys VALUES (?, ?)", (orphan, -number))
        moved = execute(
            f"INSERT INTO {self.log_table} (position, session, version, kind, state) "
            f"SELECT e.rowid, m.key, e.originator_version, k.code, e.state FROM {events} e "
            f"JOIN moved_keys m ON m.session_id = e.originator_id JOIN {self.kinds_table} k ON k.topic = e.topic "
            "ORDER BY e.rowid"
        ).rowcount
        (total,) = execute(f"SELECT count(*) FROM {events}").fetchone()
        if moved != total:
            raise CorruptStore(
                f"{total - moved} of the {total} rows of the events table have no session id or type name, "
                "so they cannot be moved to the log; nothing was changed"
            )
        execute("DROP TABLE moved_keys")
        execute(f"DROP TABLE {events}")

    def _seal_unsealed_rows(self, execute: Execute) -> None:
        """Give a store written before rows were sealed its chain heads and
        seals, once, in the transaction that adds the columns. A row with an
        empty seal is never sealed later: that is damage."""
        check_legacy_sealing(self.datastore.pool.db_name, self._seal_key, self._seal_legacy)
        for column in ("head", "seal"):
            execute(f"ALTER TABLE {self.sessions_table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        select = (
            f"SELECT originator_version, topic, state FROM {self.events_view} WHERE originator_id=? "
            "ORDER BY originator_version"
        )
        for found in execute(f"SELECT {ROW_COLUMNS} FROM {self.sessions_table}").fetchall():
            records = execute(select, (found[0],)).fetchall()
            row = sealed_row(SessionRow(*found), map(Record._make, records), self._seal_key)
            execute(self._update_session, (*row[1:2], *row[3:], row.session_id))

    def _code(self, execute: Execute, topic: str) -> int:
        """The code of a stored type name (every one the engine writes is
        known from opening; another is added in the writing transaction)."""
        code = self._codes.get(topic)
        if code is None:
            execute(f"INSERT OR IGNORE INTO {self.kinds_table} (topic) VALUES (?)", (topic,))
            (code,) = execute(f"SELECT code FROM {self.kinds_table} WHERE topic=?", (topic,)).fetchone()
        return int(code)

    def insert_records(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow | None,
        snapshot: StoredSnapshot | None,
        previous_head: str | None = None,
        source_head: str | None = None,
    ) -> None:
        first = records[0]
        code = self._codes.get(first.topic)
        if (
            len(records) == 1
            and first.version > 1
            and code is not None
            and row is not None
            and row.version == first.version
            and previous_head is not None
            and snapshot is None
        ):
            changes = (session_id, previous_head, *row[1:2], *row[3:], code, first.state)

            def append_one(execute: Execute) -> None:
                try:
                    execute(self._append_one, changes)
                except sqlite3.IntegrityError as exc:
                    if str(exc) != _MOVED:
                        raise self._refused_event(session_id, first.version, exc) from exc
                    self._refuse_moved(execute, session_id, first.version)

            self._write(append_one, one_statement=True)
            return

        def apply(execute: Execute) -> None:
            if first.version == 1:
                source = fork_source(session_id, first.topic, first.state)
                if source is not None:
                    self._check_head(execute, source, source_head)  # deleted, or changed, since the fork was made
                parent = spawn_parent(session_id, first.topic, first.state)
                if parent is not None:
                    self._check_head(execute, parent, None)  # a child of a parent deleted since it was recorded
                if row is None:
                    raise ValueError("a new session is written with its listing row")
                if execute(f"SELECT 1 FROM {self.sessions_table} WHERE session_id=?", (session_id,)).fetchone():
                    raise sqlite3.IntegrityError(f"session {session_id!r} exists")
                if execute(
                    f"SELECT 1 FROM {self.snapshots_table} WHERE session_id=? LIMIT 1", (session_id,)
                ).fetchone():
                    raise leftover_snapshots(session_id)
                (highest,) = execute(self._next_key).fetchone()
                if type(highest) is not int or not 0 <= highest < 2**62:  # keys count up from 1
                    raise CorruptStore(
                        f"the store holds a session key of {shown(highest)}, which no write of the engine makes: "
                        "its log or listing was altered"
                    )
                execute(self._create_session, (*row, highest + 1))
            elif row is not None:
                # Before the events: the row holds the session's key, and no
                # row means the session was deleted since this writer read
                # it. Its events must not come back.
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
                    previous_head,
                    previous_head,
                )
                if not execute(self._advance_session, changes).rowcount:
                    self._refuse_moved(execute, session_id, first.version)
            for version, topic, state in records:
                try:
                    execute(self._insert_record, (session_id, version, self._code(execute, topic), state))
                except sqlite3.IntegrityError as exc:
                    if previous_head is None or first.version == 1:  # not held to a head: another writer's
                        raise
                    raise self._refused_event(session_id, version, exc) from exc
            if snapshot is not None:
                execute(self._insert_snapshot, (session_id, snapshot.version, snapshot.state))

        self._write(apply)

    def _refused_event(self, session_id: str, version: int, exc: sqlite3.IntegrityError) -> CorruptStore:
        """The error for an event the log refused while the listing row held
        the head it extends: no writer leaves the log so (a row already at
        that version, a listing row without its key), so it was altered."""
        return CorruptStore(
            f"session {shown(session_id)}: its listing row holds the head this write extends, yet the log refused "
            f"its event at version {version} ({exc}): the log or the listing row was altered; nothing was written"
        )

    def _refuse_moved(self, execute: Execute, session_id: str, version: int) -> None:
        """Raise for a listing row that no longer holds the head an append
        extends: ``ConcurrentWriteError`` if the row is there (the log changed
        under the writer: another writer, an erasure, or the session deleted
        and created again), else ``SessionNotFound``."""
        if execute(f"SELECT 1 FROM {self.sessions_table} WHERE session_id=?", (session_id,)).fetchone():
            raise ConcurrentWriteError(session_id, version)
        raise SessionNotFound(session_id)

    def _check_head(self, execute: Execute, session_id: str, expected: str | None) -> None:
        """``SessionNotFound`` if the session has no listing row;
        ``ConcurrentWriteError`` if ``expected`` is given and the row holds
        another head (its log changed since it was read)."""
        found = execute(f"SELECT head, version FROM {self.sessions_table} WHERE session_id=?", (session_id,)).fetchone()
        if found is None:
            raise SessionNotFound(session_id)
        if expected is not None and found[0] != expected:
            raise ConcurrentWriteError(session_id, found[1])

    def _fork_firsts(self, execute: Execute) -> list[tuple[str, str, bytes]]:
        """The first record of every fork (session id, type name, bytes)."""
        return execute(self._select_fork_firsts).fetchall()

    def select_fork_records(self) -> list[tuple[str, str, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._select_fork_firsts)
            return [(session_id, topic, bytes(state)) for session_id, topic, state in c.fetchall()]

    def rewrite_records(self, changes: Sequence[Rewrite], family: Sequence[str] | None = None) -> Callable[[], None]:
        replace = (
            f"UPDATE {self.log_table} SET kind=?, state=? "
            f"WHERE session=(SELECT key FROM {self.sessions_table} WHERE session_id=?) AND version=?"
        )
        snapshot_replace = f"UPDATE {self.snapshots_table} SET state=? WHERE session_id=? AND version=?"

        def apply(execute: Execute) -> None:
            if family:
                refuse_new_forks(family, self._fork_firsts(execute))
            for change in changes:
                self._check_head(execute, change.session_id, change.previous_head)
                for version, topic, state in change.replaced:
                    code = self._code(execute, topic)
                    if execute(replace, (code, state, change.session_id, version)).rowcount != 1:
                        raise sqlite3.IntegrityError(f"record {version} of {change.session_id!r} changed meanwhile")
                for version, topic, state in change.appended:
                    execute(self._insert_record, (change.session_id, version, self._code(execute, topic), state))
                for snapshot in change.snapshots:
                    if execute(snapshot_replace, (snapshot.state, change.session_id, snapshot.version)).rowcount != 1:
                        raise sqlite3.IntegrityError(f"snapshot {snapshot.version} of {change.session_id!r} is gone")
                execute(self._upsert_session, change.row)

        self._write(apply, erasing=True)
        return lambda: self._checkpoint("erasure")

    def delete_sessions(self, session_ids: Sequence[str]) -> Callable[[], None]:
        log = self.log_table

        def apply(execute: Execute) -> None:
            refuse_orphans(session_ids, self._fork_firsts(execute))
            parents = execute(self._select_parents).fetchall()
            refuse_children(session_ids, [*parents, *spawn_parents(execute(self._select_unsummarised_firsts))])
            (newest,) = execute(f"SELECT max(position) FROM {log}").fetchone()
            for session_id in session_ids:
                execute(
                    f"DELETE FROM {log} WHERE session=(SELECT key FROM {self.sessions_table} WHERE session_id=?)",
                    (session_id,),
                )
                for table in (self.snapshots_table, self.sessions_table):
                    execute(f"DELETE FROM {table} WHERE session_id=?", (session_id,))
            (left,) = execute(f"SELECT max(position) FROM {log}").fetchone()
            if newest is not None and (left or 0) < newest:
                # SQLite would give the next event the position of the newest
                # deleted one, and the feed would show it to no reader that had
                # passed that position: a row of no session (key 0, which the
                # feed skips) keeps the newest position taken.
                execute(f"DELETE FROM {log} WHERE session = 0")
                execute(
                    f"INSERT INTO {log} (position, session, version, kind, state) VALUES (?, 0, 0, 0, x'')",
                    (newest,),
                )

        self._write(apply, erasing=True)
        return lambda: self._checkpoint("deletion")

    def _write(self, apply: Callable[[Execute], None], *, erasing: bool = False, one_statement: bool = False) -> None:
        """Run ``apply(execute)`` in one write transaction on the long-lived
        writer connection (its driver errors are translated by the backend's
        ``translated_errors``, like every other). ``BEGIN IMMEDIATE`` takes the write lock up front, so a busy
        database waits for ``lock_timeout`` instead of failing on lock upgrade.
        ``erasing``: secure delete is on (SQLite overwrites freed content
        with zeros); :meth:`_checkpoint` then takes the old pages out of the WAL.
        ``one_statement``: ``apply`` runs one write statement, which SQLite
        runs in a transaction of its own, taking the write lock as it starts
        (so waiting as ``BEGIN IMMEDIATE`` does).

        Threads of this process take turns on the connection; the turn and
        the database's lock together are waited for ``lock_timeout`` at
        most, so a queue of threads behind a stuck lock does not wait a
        multiple of it."""
        if self._held_by is not None and self._held_by == threading.get_ident():
            assert erasing == self._held_erasing, "an erasure's rewrite runs only in a holding_rewrites block"
            self._write_held(apply)
            return
        limit = self.datastore.pool.lock_timeout or 5
        started = time.monotonic()
        execute = self._turn(limit).execute
        try:
            shortened = _shorten_busy_timeout(execute, limit, started)
            if erasing:
                execute("PRAGMA secure_delete=ON")
            try:
                if one_statement:
                    apply(execute)
                else:
                    execute("BEGIN IMMEDIATE")
                    _committed(execute, apply)
            finally:
                if erasing:
                    execute("PRAGMA secure_delete=OFF")
                if shortened:
                    execute(f"PRAGMA busy_timeout={round(limit * 1000)}")
        finally:
            self._writer_lock.release()

    @contextlib.contextmanager
    def holding_writes(self, session_id: str) -> Iterator[None]:
        """The database's write lock (whatever ``session_id``), from the
        start of the block to its one write (see ``Backend.writing_alone``):
        ``BEGIN IMMEDIATE`` on the writer connection, in this thread's turn
        on it. The write runs in that transaction and commits it; without
        one, the block's end rolls it back. Waited for ``lock_timeout`` at
        most, as any write."""
        with self._holding(erasing=False):
            yield

    @contextlib.contextmanager
    def holding_rewrites(self, session_ids: Sequence[str]) -> Iterator[None]:
        """The database's write lock for an erasure's one rewrite (see
        ``Backend.rewriting_alone``), as :meth:`holding_writes` holds it,
        with secure delete on, as every erasure has it."""
        with self._holding(erasing=True):
            yield

    @contextlib.contextmanager
    def _holding(self, *, erasing: bool) -> Iterator[None]:
        limit = self.datastore.pool.lock_timeout or 5
        started = time.monotonic()
        writer = self._turn(limit)
        try:
            shortened = _shorten_busy_timeout(writer.execute, limit, started)
            if erasing:
                writer.execute("PRAGMA secure_delete=ON")
            try:
                try:
                    writer.execute("BEGIN IMMEDIATE")
                finally:
                    if shortened:
                        writer.execute(f"PRAGMA busy_timeout={round(limit * 1000)}")
                self._held_by, self._held_erasing = threading.get_ident(), erasing
                try:
                    yield
                finally:
                    if self._held_by is not None:  # no write ended the transaction
                        self._held_by = None
                        writer.execute("ROLLBACK")
            finally:
                if erasing:
                    writer.execute("PRAGMA secure_delete=OFF")
        finally:
            self._writer_lock.release()

    def _write_held(self, apply: Callable[[Execute], None]) -> None:
        """The one write of a ``holding_writes`` block, in its transaction."""
        self._held_by = None
        assert self._writer is not None
        _committed(self._writer.execute, apply)

    def _turn(self, limit: float) -> sqlite3.Connection:
        """This thread's turn on the writer connection, waited for ``limit``
        seconds at most; the caller releases ``_writer_lock``."""
        if not self._writer_lock.acquire(timeout=limit):
            raise sqlite3.OperationalError(
                f"database is locked: other threads of this process kept writing for lock_timeout ({limit} s)"
            )
        try:
            return self._connected()
        except BaseException:
            self._writer_lock.release()
            raise

    def _connected(self) -> sqlite3.Connection:
        """The writer connection, made (with its append view) if there is
        none yet; in the caller's turn on it. Never again once the store is
        closed: an erasure's purge still running then must not leave a
        connection open behind the close."""
        if self._writer is None:
            if self._closed:
                raise sqlite3.OperationalError("the store was closed")
            writer = self.datastore.pool.connect()
            try:
                for statement in self._append_view_statements:
                    writer.execute(statement)
            except BaseException:
                writer.close()
                raise
            self._writer = writer
        return self._writer

    def _checkpoint(self, what: str) -> None:
        """After an erasure or a deletion (``what``): rebuild the file, then
        checkpoint the WAL into it and truncate the WAL, so the old bytes are
        in neither file. ``secure_delete`` zeroes what a write frees, but
        SQLite moves rows between pages as tables change and leaves the old
        copies in the unused space of the pages they left: only ``VACUUM``,
        which writes every page anew, removes those (found by an
        adversarial run). A reader holding an old snapshot delays the
        checkpoint: it is retried for up to ``lock_timeout``, each attempt
        in its own turn on the writer connection, so this process's other
        writes go on meanwhile."""
        limit = self.datastore.pool.lock_timeout or 5
        deadline = time.monotonic() + limit
        if not self._writer_lock.acquire(timeout=limit):
            raise sqlite3.OperationalError(
                f"the {what} is committed, but other threads of this process kept writing for lock_timeout "
                f"({limit} s), so the file was not rewritten; " + _finish(what)
            )
        try:
            self._connected().execute("VACUUM")
        except sqlite3.OperationalError as exc:
            raise sqlite3.OperationalError(
                f"the {what} is committed, but the file could not be rewritten ({exc}); " + _finish(what)
            ) from exc
        finally:
            self._writer_lock.release()
        while True:
            if not self._writer_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                busy = True
            else:
                try:
                    try:
                        execute = self._connected().execute
                    except sqlite3.OperationalError as exc:  # closed meanwhile
                        raise sqlite3.OperationalError(
                            f"the {what} is committed, but its old pages could not be taken out of the WAL file "
                            f"({exc}); " + _finish(what)
                        ) from exc
                    # Not waiting in SQLite's busy handler: that would hold
                    # the writer connection, and so this process's writes.
                    execute("PRAGMA busy_timeout=0")
                    try:
                        busy = bool(execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
                    finally:
                        execute(f"PRAGMA busy_timeout={round(limit * 1000)}")
                finally:
                    self._writer_lock.release()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"the {what} is committed, but a reader kept the old pages in the WAL file; "
                    + _finish(what)
                    + ("" if what == "erasure" else " once that reader has ended")
                )
            time.sleep(0.01)

    def close_writer(self) -> None:
        with self._writer_lock:
            self._closed = True
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
                if after > 0:
                    cursor.execute(self._select_records, (session_id, after, 2**63 - 1 if upto is None else upto))
                elif upto is not None:
                    cursor.execute(self._select_records_upto, (session_id, upto))
                else:
                    cursor.execute(self._select_all_records, (session_id,))
                found = cursor.fetchall()
            finally:
                cursor.close()
        # Codes, not a join with the kinds table: a str built per row and a
        # lookup per row were a fifth of reading a long session.
        topics = self._topics
        try:
            return [_new_tuple(Record, (version, topics[kind], state)) for version, kind, state in found]
        except (KeyError, TypeError):
            return self._records_of_new_kinds(session_id, found)

    def forget_cached(self) -> None:
        """Read the kinds table again: reads map the codes it held when the
        store opened, so a type name changed since (damage) would otherwise
        go unnoticed by this store until it is opened again."""
        with self.datastore.transaction(commit=False) as cursor:
            self._learn_codes(cursor.sqlite_cursor.execute)

    def _records_of_new_kinds(self, session_id: str, found: list[tuple[Any, ...]]) -> list[Record]:
        """Records whose type codes this backend had not seen: another
        process added a type name since the kinds table was read."""
        self.forget_cached()
        topics = self._topics
        for version, kind, _ in found:
            if type(kind) is not int or kind not in topics:
                raise CorruptStore(
                    f"session {shown(session_id)} version {version!r} has the type code {kind!r}, which no row "
                    f"of {self.kinds_table} names: the log was altered"
                )
        return [_new_tuple(Record, (version, topics[kind], state)) for version, kind, state in found]

    def select_feed(self, after: int, limit: int) -> list[FeedEntry]:
        # Plain tuples, as select_records: eventsourcing's select_notifications
        # built a Row and a Notification per event, a third of a feed read.
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor().sqlite_cursor
            cursor.row_factory = None
            try:
                cursor.execute(self._select_feed, (after, limit))
                found = cursor.fetchall()
                unreachable = cursor.execute(self._select_unreachable).fetchone() if after == 0 else None
            finally:
                cursor.close()
        if unreachable is not None:
            raise unreachable_position(unreachable[0], "readers would pass it by, or what follows it")
        for position, session_id, _, topic, state, key in found:
            if session_id is None or topic is None:
                raise CorruptStore(
                    f"the event at feed position {position} names session key {key!r} or a type code "
                    "that no row of the store has: the log was altered"
                )
            if type(key) is not int or not 1 <= key < 2**62:  # the row a deletion leaves is not read
                raise CorruptStore(
                    f"the event at feed position {position} is under session key {key!r}, which no write of the "
                    "engine gives: the log or the listing was altered"
                )
            if type(state) is not bytes or type(session_id) is not str or type(topic) is not str:
                raise TypeError("a stored event of a damaged type")  # SQLite keeps any value in any column
        check_feed_versions(found, version_at=2)
        return [
            FeedEntry(position, session_id, Record(version, topic, state))
            for position, session_id, version, topic, state, _ in found
        ]

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT version, CAST(state AS BLOB), typeof(state) FROM {self.snapshots_table} "
                "WHERE session_id=? AND version<=? ORDER BY version DESC LIMIT 1",
                (session_id, upto if upto is not None else 2**62),
            )
            found = c.fetchone()
        return None if found is None else _snapshot(session_id, *found)

    def select_snapshots(self, session_id: str) -> list[StoredSnapshot]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT version, CAST(state AS BLOB), typeof(state) FROM {self.snapshots_table} "
                "WHERE session_id=? ORDER BY version",
                (session_id,),
            )
            return [_snapshot(session_id, *found) for found in c.fetchall()]

    def select_unlisted_snapshots(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT DISTINCT n.session_id FROM {self.snapshots_table} n WHERE NOT EXISTS "
                f"(SELECT 1 FROM {self.sessions_table} s WHERE s.session_id = n.session_id) ORDER BY n.session_id"
            )
            return [session_id for (session_id,) in c.fetchall()]

    def select_session(self, session_id: str) -> SessionRow | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {ROW_COLUMNS} FROM {self.sessions_table} WHERE session_id=?",
                (session_id,),
            )
            found = c.fetchone()
        return None if found is None else SessionRow(*found)

    def select_sessions(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        where, values = ("", []) if wanted is None else _listing_where(wanted)
        with self.datastore.transaction(commit=False) as c:
            order = " ORDER BY created_at, session_id"
            try:
                c.execute(f"SELECT {ROW_COLUMNS} FROM {self.sessions_table}{where}{order}", values)
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
        home = " (a leading ~ is not expanded: use os.path.expanduser)" if path.startswith("~") else ""
        raise InvalidArgument(f"cannot open SQLite file {shown(path)}: its directory does not exist{home}")
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
    refuse_side_file(path, "store")
    where = described(os.path.realpath(path), prefix)
    if not create and not os.path.isfile(path):
        raise StorageUnavailable(f"there is no transcript store at {where}: no such file")
    if not create:
        # Looked at read-only first: opening a store switches it to WAL,
        # which would write to a file that is not one (an empty file, say).
        with translated_errors("open", where, opening=True):  # e.g. "file is not a database"
            if not _holds_store(path, uri, prefix):
                raise StorageUnavailable(
                    f"there is no transcript store at {where}: the file has no {prefix}_sessions table with "
                    "the engine's columns (another file, or another table prefix?); nothing was written to it"
                )
    datastore = _Datastore(uri, synchronous=synchronous, lock_timeout=lock_timeout)
    recorder = SQLiteRecorder(datastore, prefix, seal_key, seal_legacy, where)
    try:
        with translated_errors("open", where, opening=True):  # e.g. "file is not a database"
            recorder.create_table()
    except BaseException:
        datastore.close()
        raise

    def close() -> None:
        recorder.close_writer()
        datastore.close()

    return RecorderBackend(recorder, where, on_close=close, seal_key=seal_key)


def _refuse_read_model(application: object, where: str) -> None:
    """``InvalidArgument`` if a file's ``PRAGMA application_id`` marks it as
    a read model's: a store is never made, or looked for, inside one."""
    if application == READ_MODEL_APPLICATION_ID:
        raise InvalidArgument(
            f"{where} is a read model (engine.readmodel), not a transcript store: open the store it was projected "
            "from; nothing was written to it"
        )


def _holds_store(path: str, uri: str, prefix: str) -> bool:
    """Whether the file holds a store of ``prefix`` (a listing table with
    the engine's columns), read without writing anything: with no WAL file
    beside it, nothing has it open in WAL mode and an immutable read sees it
    all (a read-only one would leave WAL and index files behind); with one,
    a read-only one. A file SQLite cannot read is reported as the pool
    reports it on opening."""
    # SQLite keeps the WAL file beside the file a link points to.
    mode = "mode=ro" if os.path.exists(os.path.realpath(path) + "-wal") else "immutable=1"
    try:
        connection = sqlite3.connect(f"{uri}?{mode}", uri=True)
        try:
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({prefix}_sessions)")}
            tables = dict(
                connection.execute("SELECT name, type FROM sqlite_master WHERE name LIKE ?", (f"{prefix}_%",))
            )
            (application,) = connection.execute("PRAGMA application_id").fetchone()
        finally:
            connection.close()
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # e.g. "file is not a database"
        raise InterfaceError(exc) from exc
    _refuse_read_model(application, path)
    # The listing table, and the log (or, in a store of an earlier build,
    # eventsourcing's events table): a view or a lone table is someone else's.
    logged = tables.get(f"{prefix}_log") == "table" or tables.get(f"{prefix}_events") == "table"
    return tables.get(f"{prefix}_sessions") == "table" and logged and columns >= LISTING_COLUMNS


def _snapshot(session_id: str, version: int, state: bytes, kind: str) -> StoredSnapshot:
    """A snapshot row read as bytes (as text, a form 2 snapshot is not UTF-8
    and could not be read at all), refused if it was not stored as bytes."""
    if kind != "blob":
        raise CorruptStore(
            f"the snapshot of session {session_id!r} at version {version} is stored as {kind}, "
            "not as the bytes the engine writes: the store was altered"
        )
    if type(version) is not int:  # SQLite keeps any value in any column
        raise CorruptStore(
            f"a snapshot of session {session_id!r} is at version {shown(version)}, which no write of the engine "
            "makes: the store was altered"
        )
    return StoredSnapshot(version, state)
