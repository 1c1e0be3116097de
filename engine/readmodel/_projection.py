"""The read model: a store's sessions as plain SQLite tables (built with
sqlite-utils), kept up to date from the store-wide feed.

A catch-up reads the feed after the last position it applied and applies
its events in transactions of up to 50,000 events, writing rows in bulk.
Before a transaction commits, every session it touched is checked against
the store: its log against the sealed chain head, its head against the
tables; a damaged store is reported, never projected. Then the tables are
compared with the store's listing, and a session the feed could not bring
up to date (a store replaced or restored, a session deleted and made again)
is projected again from its checked history; one the store no longer has
is dropped. Erased text leaves the tables, the full-text index and the
file."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import sqlite_utils

from engine.errors import (
    CorruptStore,
    InvalidArgument,
    SessionNotFound,
    StorageError,
    StorageUnavailable,
    VersionNotFound,
)
from engine.facade import Transcripts
from engine.state.content import Message, Reasoning, Text, ToolResult, ToolUse, Transcript, shown, unicode_error
from engine.state.events import (
    HeaderChanged,
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    MetadataChanged,
    SessionCreated,
    SessionForked,
    TitleChanged,
    UsageRecorded,
)
from engine.state.header import HEADER_FIELDS, Header
from engine.state.records import Spawn
from engine.state.revisions import EMPTY_REVISION
from engine.state.transcript import Session
from engine.store import READ_MODEL_APPLICATION_ID, enter_wal, refuse_side_file

__all__ = ["ReadModel", "SearchHit"]

#: The schema of the tables; a file made by another schema is rebuilt.
SCHEMA_VERSION = 3
_PAGE = 1000
_LOCK_TIMEOUT = 10.0  # seconds a write waits for another process's catch-up


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """One message found by :meth:`ReadModel.search`."""

    session_id: str
    position: int
    role: str
    snippet: str
    message_id: str | None


class ReadModel:
    """A read model in the SQLite file ``path`` (created if missing).

    ``catch_up(store)`` applies what the store stored since the last
    catch-up; ``rebuild(store)`` starts again from nothing. The tables are
    plain and documented (docs/read-model.md): query them with sqlite-utils,
    datasette or SQL. They show the store they were last caught up with.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgument(f"a read model is a SQLite file path, got {type(path).__name__}")
        self.path = os.fspath(path)
        if not self.path:
            raise InvalidArgument("a read model needs a file path, got an empty one")
        refuse_side_file(self.path, "read model")
        # Any thread may use it (AsyncTranscripts.run_sync runs a catch-up on
        # a worker), one call at a time.
        self._turn = threading.RLock()
        try:
            connection = sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT, check_same_thread=False)
            self.db = sqlite_utils.Database(connection)
            enter_wal(self.db.conn, _LOCK_TIMEOUT)  # a second process opening a new read model waits
            # Derived data, rebuilt from the store if a power cut loses the
            # last commits: no fsync per commit. Freed pages are zeroed, so
            # erased and deleted text leaves the file too.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA secure_delete=ON")
            with self._writing():  # two processes opening a new file: one makes the tables
                names = self.db.table_names()
                if "transcripts_events" in names or "transcripts_sessions" in names:
                    raise InvalidArgument(
                        f"{shown(self.path)} is a transcript store, not a read model; name another file"
                    )
                self._create_tables()
                # Marked as a read model: Transcripts.open() refuses to make a store in it.
                if self.db.execute("PRAGMA application_id").fetchone()[0] != READ_MODEL_APPLICATION_ID:
                    self.db.execute(f"PRAGMA application_id={READ_MODEL_APPLICATION_ID}")
        except sqlite3.DatabaseError as exc:
            raise InvalidArgument(f"cannot use {shown(self.path)} as a read model: {exc}") from None

    def close(self) -> None:
        with self._turn:
            self.db.close()
            self._closed = True

    _checkpoint = False
    _closed = False

    def _refuse_closed(self) -> None:
        """A closed read model's calls raise a typed error, as a closed store's do."""
        if self._closed:
            raise StorageUnavailable(
                f"the read model at {self.path} is closed; open it again with ReadModel({self.path!r})"
            )

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ----------------------------------------------------------------

    @property
    def position(self) -> int:
        """The last feed position applied (0: nothing yet)."""
        with self._turn, self._translated():
            self._refuse_closed()
            text = self._meta("position") or "0"
        if not text.isascii() or not text.isdigit():
            raise StorageError(f"the read model at {self.path} is damaged (position {text!r}); rebuild() it")
        return int(text)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite errors of the read model's own file, as engine errors that
        say which file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StorageUnavailable(
                    f"the read model at {self.path} is busy (another process is writing it): {exc}; try again"
                ) from None
            raise StorageError(f"the read model at {self.path} is damaged ({exc}); rebuild() it") from None
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"the read model at {self.path} is damaged ({exc}); rebuild() it") from None
        except OverflowError as exc:  # SQLite's integers are 64-bit; the store keeps any int (a token count)
            raise StorageError(
                f"the read model at {self.path} cannot hold a number of this store: {exc}; nothing was written"
            ) from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, taking the file's write lock up front: two
        processes catching up at once take turns, each from where the other
        stopped (the position is read inside the transaction)."""
        conn = self.db.conn
        with self._translated():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if self._checkpoint:  # erased or deleted text: out of every page, and of the WAL file
                # SQLite leaves copies of moved rows in the unused space of
                # pages, which secure_delete does not zero: VACUUM writes
                # every page anew (as the store does after an erasure).
                rowids = "SELECT count(*), total(rowid), max(rowid) FROM messages"
                before = conn.execute(rowids).fetchone()
                conn.execute("VACUUM")
                # VACUUM may number a table's rows anew (SQLite keeps them for
                # an indexed one): the search index goes by them. (Rows another
                # process wrote meanwhile make it rebuild when it need not.)
                # In a transaction of its own: in the connection's default
                # mode, Python would open one for the INSERT and leave it open.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute(rowids).fetchone() != before:
                        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                (busy, *_) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy:  # a reader of another process holds an old snapshot
                    raise sqlite3.OperationalError("database is busy: another process reads it")
                self._checkpoint = False  # only once done: a busy file leaves it to the next write

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _create_tables(self) -> None:
        db = self.db
        if "meta" in db.table_names():
            found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is not None and found[0] == str(SCHEMA_VERSION):
                return
            for table in list(db.table_names()):  # an older layout: the next catch-up rebuilds it
                db.execute(f"DROP TABLE IF EXISTS [{table}]")
        # Inside the caller's write transaction.
        db.table("meta").create({"key": str, "value": str}, pk="key")
        db.table("sessions").create(
            {
                "id": str,
                "title": str,
                "created_at": str,
                "updated_at": str,
                "version": int,
                "revision": str,
                "message_count": int,
                "metadata": str,
                "source": str,
                "source_version": int,
                "fork_index": int,
                "root": str,
                "depth": int,
                "generation": int,
                "input_tokens": int,
                "output_tokens": int,
                "cache_read_tokens": int,
                "cache_write_tokens": int,
                "reasoning_tokens": int,
                "status": str,
                "tags": str,
                "pinned": int,
                "model": str,
                "reasoning_effort": str,
                "system_prompt": str,
                "agent": str,
                "owner": str,
                "locale": str,
                "outcome": str,
                "parent": str,
                "spawn_depth": int,
                "task": str,
            },
            pk="id",
        )
        db.table("sessions").create_index(["status"])
        db.table("sessions").create_index(["parent"])
        db.table("messages").create(
            {
                "session_id": str,
                "position": int,
                "message_id": str,
                "role": str,
                "text": str,
                "reasoning": str,
                "tool_calls": int,
                "provider_item_id": str,
                "incomplete": int,
                "erased": str,
                "version": int,
                "at": str,
            }
        )
        db.table("messages").create_index(["session_id", "position"])
        db.table("messages").create_index(["message_id"])
        db.table("tool_calls").create(
            {"session_id": str, "message_id": str, "call_id": str, "name": str, "arguments": str, "version": int}
        )
        db.table("tool_calls").create_index(["session_id", "message_id"])
        db.table("tool_calls").create_index(["call_id"])
        db.table("tool_results").create(
            {"session_id": str, "message_id": str, "call_id": str, "is_error": int, "content": str, "version": int}
        )
        db.table("tool_results").create_index(["session_id", "message_id"])
        db.table("tool_results").create_index(["call_id"])
        db.table("usage").create(
            {
                "session_id": str,
                "version": int,
                "response_id": str,
                "input_tokens": int,
                "output_tokens": int,
                "cache_read_tokens": int,
                "cache_write_tokens": int,
                "reasoning_tokens": int,
                "at": str,
            }
        )
        db.table("usage").create_index(["session_id", "version"])
        db.table("revisions").create(
            {
                "session_id": str,
                "version": int,
                "generation": int,
                "parent_revision": str,
                "revision": str,
                "start": int,
                "end": int,
                "count_before": int,
                "count_after": int,
                "removed_digest": str,
                "replacement_digest": str,
                "reason": str,
                "note": str,
                "actor": str,
                "at": str,
            },
            pk=("session_id", "version"),
        )
        db.table("forks").create(
            {
                "session_id": str,
                "source": str,
                "source_version": int,
                "fork_index": int,
                "replaced": int,
                "root": str,
                "depth": int,
                "at": str,
            },
            pk="session_id",
        )
        # No triggers: the projection indexes new rows in bulk, six times
        # faster than a trigger per row (see _Batch._flush_rows).
        db.table("messages").enable_fts(["text"], tokenize="porter")
        db.table("meta").insert_all(
            [{"key": "schema", "value": str(SCHEMA_VERSION)}, {"key": "position", "value": "0"}], replace=True
        )

    # -- catching up ----------------------------------------------------------

    def catch_up(self, store: Transcripts, *, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event the store stored after :attr:`position`, and
        return how many. ``progress`` is called with the count after each page.

        Then every session the store lists is compared with the tables
        (version, revision, title): one the feed could not bring up to date
        (a store replaced or restored from a copy, a session deleted and made
        again) is projected again from its checked history, and one the
        store no longer has is dropped. So the tables always show the store
        they were last caught up with."""
        if not isinstance(store, Transcripts):
            hint = (
                ": run it on the store's worker, await store.run_sync(model.catch_up)"
                if type(store).__name__ == "AsyncTranscripts"
                else ""
            )
            raise InvalidArgument(f"catch_up() takes a Transcripts store, got {type(store).__name__}{hint}")
        with self._turn:
            self._refuse_closed()
            return self._caught_up(store, progress)

    def _caught_up(self, store: Transcripts, progress: Callable[[int], None] | None) -> int:
        before, listed = self._shown(), self._listed(store)  # in this order: writers only go forward
        applied = 0
        while True:
            # Up to _BATCH events in one transaction, checked before it
            # commits: what does not agree with the store's checked reads is
            # not kept.
            with self._writing():
                position = self.position
                page = store.feed(after=position, limit=_PAGE)
                if not page:
                    break
                batch = _Batch(self.db, store)
                while page and batch.events < _BATCH:
                    for item in page:
                        batch.apply(item.session_id, item.version, item.event)
                    position = page[-1].position
                    applied += len(page)
                    if progress is not None:
                        progress(applied)
                    page = store.feed(after=position, limit=_PAGE) if batch.events < _BATCH else page
                batch.flush()
                self._check(store, batch.touched)
                self._set_meta({"position": str(position)})
                if batch.removed:
                    self._purge()
        with self._writing():
            if self._reconcile(store, before, listed):
                self._purge()
        return applied

    def rebuild(self, store: Transcripts, *, progress: Callable[[int], None] | None = None) -> int:
        """Empty the tables and project the whole store again."""
        with self._turn:
            self._refuse_closed()
            self._emptied()
        return self.catch_up(store, progress=progress)

    def _emptied(self) -> None:
        with self._writing():
            for table, _ in _SESSION_TABLES:
                self.db.conn.execute(f"DELETE FROM [{table}]")
            self.db.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('delete-all')")
            self._set_meta({"position": "0"})
            self._purge()

    def _set_meta(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.db.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def _purge(self) -> None:
        """After an erasure or a deletion: merge the full-text index's
        segments (which keep deleted words until merged). secure_delete zeroes
        the pages freed; the file is rebuilt and the WAL truncated once the
        transaction commits."""
        self.db.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        self._checkpoint = True

    def _shown(self) -> dict[str, tuple[int, str, str | None]]:
        rows = self.db.conn.execute("SELECT id, version, revision, title FROM sessions").fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    @staticmethod
    def _listed(store: Transcripts) -> dict[str, tuple[int, str, str | None]]:
        return {info.id: (info.version, info.revision, info.title) for info in store.sessions()}

    def _reconcile(
        self,
        store: Transcripts,
        before: dict[str, tuple[int, str, str | None]],
        listed: dict[str, tuple[int, str, str | None]],
    ) -> bool:
        """Project again the sessions the feed could not bring up to date,
        drop those the store no longer has; whether anything changed.
        ``before`` is what the tables showed and ``listed`` what the store
        listed when this catch-up began (read in that order). A session went
        back (the tables were ahead of the store: a file restored from a
        copy, a store replaced, a session deleted and made again) or differs
        at the same version; or the feed, read to its end after the listing,
        still left it behind the listing (positions given again by an older
        SQLite store)."""
        shown = self._shown()
        stale = sorted(
            sid
            for sid, (version, revision, title) in listed.items()
            if (sid in before and before[sid][0] > version)
            or (sid in before and before[sid][0] == version and before[sid][1:] != (revision, title))
            or sid not in shown
            or shown[sid][0] < version
        )
        now = self._listed(store)
        gone = sorted(sid for sid in shown if sid not in now)
        for session_id in stale + gone:
            _remove(self.db.conn, session_id)
        for session_id in stale:
            if session_id not in now:
                continue
            try:
                history = store.history(session_id)
            except SessionNotFound:  # deleted meanwhile
                continue
            batch = _Batch(self.db, store)
            for entry in history:
                batch.apply(session_id, entry.version, entry.event)
            batch.flush()
            self._check(store, {session_id: 0})
        return bool(stale or gone)

    def _check(self, store: Transcripts, touched: dict[str, int]) -> None:
        """Each touched session as the tables show it, against a checked read
        of the store (its log checked against its sealed chain head: in a
        process that read the session before, only the records added since).
        The session row (revision, generation, counts, title, metadata, token
        totals) must match, and so must every message row from the lowest
        position this transaction wrote (``touched`` maps each session to it)
        with its tool calls: no byte the tables took from the feed differs
        from what the store's chain vouches for."""
        conn = self.db.conn
        for session_id in sorted(touched):
            found = conn.execute("SELECT version, created_at FROM sessions WHERE id = ?", [session_id]).fetchone()
            if found is None:
                continue  # deleted since
            version, created = found
            try:
                head = store.get(session_id)
                # Written meanwhile: the state this batch ended at.
                state = head if head.version == version else store.get(session_id, at=version)
            except SessionNotFound:  # deleted meanwhile: the next catch-up drops it
                continue
            except VersionNotFound:
                raise CorruptStore(
                    f"session {session_id!r}: the feed holds version {version}, beyond what its listing row says: "
                    "an event was added outside the engine"
                ) from None
            if _shown_since(conn, session_id, touched[session_id]) != _expected_since(state, touched[session_id]):
                if head.version != version or head.created_at.isoformat() != created:
                    # Written since the feed was read: an erasure rewrote what it gave, or the session was
                    # deleted and made again. The next catch-up brings that, and checks again.
                    continue
                raise CorruptStore(
                    f"session {session_id!r} at version {version}: the read model and a checked read of the store "
                    "disagree: the store was altered, or the read model file was; verify the store, then "
                    "rebuild() the read model"
                )

    # -- queries ----------------------------------------------------------------

    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Messages of session heads whose text matches ``query`` (SQLite FTS5
        syntax: words, "phrases", prefix*, AND/OR/NOT), best first."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgument("search() takes a non-empty query")
        unicode_error(query, "the search query", InvalidArgument)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an int from 1 to 10,000, got {shown(limit)}")
        sql = (
            "SELECT m.session_id, m.position, m.role, m.message_id, "
            "snippet(messages_fts, 0, '[', ']', '…', 12) FROM messages_fts "
            "JOIN messages m ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH ? "
            "ORDER BY rank, m.session_id, m.position LIMIT ?"
        )
        try:
            with self._turn:
                self._refuse_closed()
                rows = self.db.conn.execute(sql, [query, limit]).fetchall()
        except sqlite3.OperationalError as exc:
            if any(word in str(exc) for word in ("locked", "busy", "malformed", "no such table", "disk")):
                with self._translated():
                    raise
            raise InvalidArgument(
                f"not a search query SQLite's FTS5 understands ({exc}): {shown(query)}; put words in double quotes "
                "to search them as they are, for example '\"Oslo-Bergen\"'"
            ) from None
        return [
            SearchHit(session_id=row[0], position=row[1], role=row[2], message_id=row[3], snippet=row[4])
            for row in rows
        ]

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Every row of one of the read model's tables (for tests and exports)."""
        if table not in _TABLES:
            raise InvalidArgument(f"the read model has tables {sorted(_TABLES)}, not {shown(table)}")
        with self._turn:
            self._refuse_closed()
            return iter(list(self.db.table(table).rows))  # read whole, in its turn


_SESSION_TABLES = (
    ("sessions", "id"),
    ("messages", "session_id"),
    ("tool_calls", "session_id"),
    ("tool_results", "session_id"),
    ("usage", "session_id"),
    ("revisions", "session_id"),
    ("forks", "session_id"),
)
_TABLES = frozenset(table for table, _ in _SESSION_TABLES)


def _message_values(message: Message) -> tuple[Any, ...]:
    """The columns of a message row that come from the message itself (one
    pass over its blocks: this runs for every message projected and checked)."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls = 0
    for block in message.blocks:
        if isinstance(block, (Text, Transcript)):
            texts.append(block.text)
        elif isinstance(block, Reasoning):
            reasoning.append(block.text)
        elif isinstance(block, ToolUse):
            calls += 1
    return (
        message.id,
        message.role,
        "\n".join(texts),
        "\n".join(reasoning),
        calls,
        message.provider_item_id,
        int(message.incomplete),
        message.erased,
    )


def _result_values(block: ToolResult) -> tuple[Any, ...]:
    """The columns of a tool_results row that come from the result itself."""
    content = block.content_text
    return (block.tool_use_id, int(block.is_error), content)


#: The session header's fields, as columns of the sessions table (tags as a
#: JSON list, pinned as 0 or 1).
_HEADER_COLUMNS = HEADER_FIELDS


def _header_values(header: Header) -> tuple[Any, ...]:
    return tuple(_header_column(name, getattr(header, name)) for name in _HEADER_COLUMNS)


def _header_column(name: str, value: Any) -> Any:
    if name == "tags":
        return _json(list(value))
    if name == "pinned":
        return int(value)
    return value


#: Where a child session was spawned from (NULL, 0, NULL for a root).
_SPAWN_COLUMNS = ("parent", "spawn_depth", "task")


def _spawn_values(spawn: Spawn | None) -> tuple[Any, ...]:
    return (None, 0, None) if spawn is None else (spawn.parent, spawn.depth, spawn.task)


#: The session columns a check compares with the store's state, in order.
_CHECKED_COLUMNS = (
    "version",
    "revision",
    "generation",
    "message_count",
    "title",
    "metadata",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    *_HEADER_COLUMNS,
    *_SPAWN_COLUMNS,
)


def _shown_since(conn: sqlite3.Connection, session_id: str, start: int) -> tuple[Any, ...]:
    """What the tables show of a session: its row, and its messages from
    ``start`` with their tool calls and results (as :func:`_expected_since`)."""
    columns = ", ".join(_CHECKED_COLUMNS)
    row = conn.execute(f"SELECT {columns} FROM sessions WHERE id = ?", [session_id]).fetchone()
    messages = conn.execute(
        "SELECT message_id, role, text, reasoning, tool_calls, provider_item_id, incomplete, erased "
        "FROM messages WHERE session_id = ? AND position >= ? ORDER BY position",
        [session_id, start],
    ).fetchall()
    joined = (
        "FROM messages m JOIN {table} t ON t.session_id = m.session_id AND t.message_id IS m.message_id "
        "AND t.version = m.version WHERE m.session_id = ? AND m.position >= ? ORDER BY m.position, t.rowid"
    )
    calls, results = [], []
    if any(message[4] for message in messages):  # rows with tool calls (most have none)
        calls = conn.execute(
            "SELECT t.message_id, t.call_id, t.name, t.arguments " + joined.format(table="tool_calls"),
            [session_id, start],
        ).fetchall()
    if any(message[1] == "tool_results" for message in messages):
        results = conn.execute(
            "SELECT t.message_id, t.call_id, t.is_error, t.content " + joined.format(table="tool_results"),
            [session_id, start],
        ).fetchall()
    return tuple(row), messages, calls, results


def _expected_since(state: Session, start: int) -> tuple[Any, ...]:
    """What the tables must show of ``state`` (see :func:`_shown_since`)."""
    usage = state.usage
    row = (
        state.version,
        state.revision,
        state.generation,
        len(state.messages),
        state.title,
        _json(dict(state.metadata)),
        usage.input,
        usage.output,
        usage.cache_read,
        usage.cache_write,
        usage.reasoning,
        *_header_values(state.header),
        *_spawn_values(state.spawn),
    )
    messages = state.messages[start:]
    rows = [_message_values(message) for message in messages]
    calls = [(message.id, use.id, use.name, use.arguments) for message in messages for use in message.tool_uses]
    results = [
        (message.id, *_result_values(block))
        for message in messages
        if message.role == "tool_results"
        for block in message.blocks
        if isinstance(block, ToolResult)
    ]
    return row, rows, calls, results


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


_SESSION_COLUMNS = (
    "id",
    "title",
    "created_at",
    "updated_at",
    "version",
    "revision",
    "message_count",
    "metadata",
    "source",
    "source_version",
    "fork_index",
    "root",
    "depth",
    "generation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    *_HEADER_COLUMNS,
    *_SPAWN_COLUMNS,
)
_INSERT_SESSION = (
    f"INSERT OR REPLACE INTO sessions ({', '.join(_SESSION_COLUMNS)}) VALUES ({', '.join('?' * len(_SESSION_COLUMNS))})"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, position, message_id, role, text, reasoning, tool_calls, provider_item_id, "
    "incomplete, erased, version, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CALL = (
    "INSERT INTO tool_calls (session_id, message_id, call_id, name, arguments, version) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_RESULT = (
    "INSERT INTO tool_results (session_id, message_id, call_id, is_error, content, version) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_REVISION = (
    "INSERT OR REPLACE INTO revisions (session_id, version, generation, parent_revision, revision, start, [end], "
    "count_before, count_after, removed_digest, replacement_digest, reason, note, actor, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_USAGE = (
    "INSERT INTO usage (session_id, version, response_id, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FORK = (
    "INSERT OR REPLACE INTO forks (session_id, source, source_version, fork_index, replaced, root, depth, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Events applied in one transaction at most (whole pages).
_BATCH = 50_000


class _Batch:
    """The events of one catch-up transaction, applied to rows held here and
    written in bulk: the session rows at the end, new rows of the other
    tables whenever a rewrite or an erasure needs the tables as they are."""

    def __init__(self, db: sqlite_utils.Database, store: Transcripts) -> None:
        self.conn = db.conn
        self.store = store
        self.sessions: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, list[tuple[Any, ...]]] = {
            _INSERT_MESSAGE: [],
            _INSERT_CALL: [],
            _INSERT_RESULT: [],
            _INSERT_REVISION: [],
            _INSERT_USAGE: [],
            _INSERT_FORK: [],
        }
        self.lowest: dict[str, int] = {}
        self.events = 0
        self.removed = False  # an erasure: its text must leave the index and the file
        # Sessions whose events are passed over: forks deleted after their
        # events were read (the next catch-up drops what is left), and
        # sessions whose first event is before this model's position (the
        # store was replaced, or restored from a copy), which catch_up then
        # projects from their checked history.
        self.gone: set[str] = set()

    @property
    def touched(self) -> dict[str, int]:
        """Each session this batch changed, with the lowest message position
        it wrote: the rows below it are as an earlier check left them."""
        return {session_id: self.lowest.get(session_id, 0) for session_id in self.sessions}

    def flush(self) -> None:
        """Write what is held: new rows, then the session rows."""
        self._flush_rows()
        self.conn.executemany(
            _INSERT_SESSION, [tuple(row[c] for c in _SESSION_COLUMNS) for row in self.sessions.values()]
        )

    def _flush_rows(self) -> None:
        (last,) = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()
        for statement, rows in self.pending.items():
            if rows:
                self.conn.executemany(statement, rows)
                rows.clear()
        # New message rows have rowids above every row there was.
        self.conn.execute(
            "INSERT INTO messages_fts (rowid, text) SELECT rowid, text FROM messages WHERE rowid > ?", [last]
        )

    def _session(self, session_id: str) -> dict[str, Any] | None:
        row = self.sessions.get(session_id)
        if row is None:
            cursor = self.conn.execute(f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE id = ?", [session_id])
            found = cursor.fetchone()
            if found is None:
                return None
            row = self.sessions[session_id] = dict(zip(_SESSION_COLUMNS, found, strict=True))
            self.lowest[session_id] = row["message_count"]
        return row

    def apply(self, session_id: str, version: int, event: object) -> None:
        self.events += 1
        if session_id in self.gone and not isinstance(event, (SessionCreated, SessionForked)):
            return
        if isinstance(event, (SessionCreated, SessionForked)):
            self.gone.discard(session_id)
            # A session id seen before belongs to a session deleted since:
            # nothing of the old one stays.
            self._flush_rows()
            self.sessions.pop(session_id, None)
            self.lowest[session_id] = 0
            _remove(self.conn, session_id)
        if isinstance(event, SessionCreated):
            self.sessions[session_id] = _new_session(
                session_id,
                event.at.isoformat(),
                version,
                EMPTY_REVISION,
                event.title,
                event.metadata,
                root=session_id,
                **dict(zip(_SPAWN_COLUMNS, _spawn_values(event.spawn), strict=True)),
            )
            return
        if isinstance(event, SessionForked):
            try:
                self._fork(session_id, event)
            except SessionNotFound:  # deleted since its events were read: nothing of it to show
                self.gone.add(session_id)
            return
        row = self._session(session_id)
        if row is None:  # its first event is before this model's position
            self.gone.add(session_id)
            return
        if version <= row["version"]:
            return  # applied already (a session projected again from its history meanwhile)
        at = event.at.isoformat()  # type: ignore[attr-defined]
        if isinstance(event, MessagesAppended):
            count, added = row["message_count"], len(event.messages)
            self._messages(session_id, count, event.messages, version, at)
            generation = row["generation"] + 1
            digests = (None, None)  # an append removes nothing; its messages are in the messages table
            span = (count, count, count, count + added)
            why = ("append", None, event.actor, at)
            self.pending[_INSERT_REVISION].append(
                (session_id, version, generation, row["revision"], event.revision, *span, *digests, *why)
            )
            row.update(message_count=count + added, revision=event.revision, generation=generation)
        elif isinstance(event, MessagesRewritten):
            self._rewrite(row, event, version, at)
        elif isinstance(event, UsageRecorded):
            usage = event.usage
            counts = (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)
            self.pending[_INSERT_USAGE].append((session_id, version, event.response_id, *counts, at))
            for column, count in zip(_TOKEN_COLUMNS, counts, strict=True):
                row[column] += count
        elif isinstance(event, TitleChanged):
            row["title"] = event.title
        elif isinstance(event, HeaderChanged):
            for name, value in event.changes.items():
                row[name] = _header_column(name, value)
        elif isinstance(event, MetadataChanged):
            values = {key: value for key, value in json.loads(row["metadata"]).items() if key not in event.unset}
            values.update(event.set)
            row["metadata"] = _json(values)
        elif isinstance(event, MessagesErased):
            self.flush()  # the rows, and the session rows the family is found by
            self.removed = True
            self.lowest[session_id] = 0
            self._erase_rows(set(event.message_ids), row["root"])
        row.update(version=version, updated_at=at)

    def _erase_rows(self, ids: set[str], root: str) -> None:
        """Blank each row of the family (``root`` and the forks of it) under
        one of ``ids`` that a checked read of the store shows erased, as
        projecting its placeholder (``Message.erasure``) gives, with the
        digest its own content had. An erasure reaches by what the erased
        session shows: a fork's own message that only shares the id is kept
        by the store, and so its row is kept. The store is read at the
        version each session's rows are at."""
        marks = ", ".join("?" for _ in ids)
        found = self.conn.execute(
            "SELECT m.rowid, m.session_id, m.position, m.message_id, s.version FROM messages m "
            f"JOIN sessions s ON s.id = m.session_id WHERE s.root = ? AND m.message_id IN ({marks})",
            [root, *ids],
        ).fetchall()
        states: dict[str, Session | None] = {}
        for rowid, session_id, position, message_id, version in found:
            if session_id not in states:
                try:
                    states[session_id] = self.store.get(session_id, at=version)
                except (SessionNotFound, VersionNotFound):
                    states[session_id] = None  # deleted or erased again since: a later catch-up brings it, and checks
            state = states[session_id]
            if state is None or position >= len(state.messages) or state.messages[position].erased is None:
                continue
            _unindex(self.conn, "rowid = ?", [rowid])
            self.conn.execute(
                "UPDATE messages SET text = '', reasoning = '', tool_calls = 0, incomplete = 0, erased = ? "
                "WHERE rowid = ?",
                [state.messages[position].erased, rowid],
            )
            self.conn.execute(
                "INSERT INTO messages_fts (rowid, text) SELECT rowid, text FROM messages WHERE rowid = ?", [rowid]
            )
            for table in ("tool_calls", "tool_results"):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE session_id = ? AND message_id = ?", [session_id, message_id]
                )

    def _fork(self, session_id: str, event: SessionForked) -> None:
        first = self.store.get(session_id, at=1)  # a checked read of what the fork started with
        at = event.at.isoformat()
        self.sessions[session_id] = _new_session(
            session_id,
            at,
            1,
            first.revision,
            first.title,
            dict(first.metadata),
            message_count=len(first.messages),
            source=event.source,
            source_version=event.source_version,
            fork_index=event.index,
            root=event.root,
            depth=event.depth,
            **dict(zip(_HEADER_COLUMNS, _header_values(first.header), strict=True)),
        )
        replaced = int(event.replacement is not None)
        self.pending[_INSERT_FORK].append(
            (session_id, event.source, event.source_version, event.index, replaced, event.root, event.depth, at)
        )
        self._messages(session_id, 0, first.messages, 1, at)

    def _messages(self, session_id: str, start: int, messages: Iterable[Message], version: int, at: str) -> None:
        rows, calls, results = self.pending[_INSERT_MESSAGE], self.pending[_INSERT_CALL], self.pending[_INSERT_RESULT]
        self.lowest[session_id] = min(start, self.lowest.get(session_id, start))
        for position, message in enumerate(messages, start):
            values = _message_values(message)
            rows.append((session_id, position, *values, version, at))
            if values[4]:  # tool calls
                for use in message.tool_uses:
                    calls.append((session_id, message.id, use.id, use.name, use.arguments, version))
            if message.role == "tool_results":
                for block in message.blocks:
                    if isinstance(block, ToolResult):
                        results.append((session_id, message.id, *_result_values(block), version))

    def _rewrite(self, row: dict[str, Any], event: MessagesRewritten, version: int, at: str) -> None:
        self._flush_rows()  # the rows of the span must be in the tables to be replaced
        session_id, execute = row["id"], self.conn.execute
        where = [session_id, event.start, event.end]
        # A message is told apart by its id and the version that put it
        # there: callers may give two messages the same id.
        removed = [
            list(found)
            for found in execute(
                "SELECT message_id, version FROM messages WHERE session_id = ? AND position >= ? AND position < ?",
                where,
            ).fetchall()
        ]
        _unindex(self.conn, "session_id = ? AND position >= ? AND position < ?", where)
        execute("DELETE FROM messages WHERE session_id = ? AND position >= ? AND position < ?", where)
        for table in ("tool_calls", "tool_results"):
            execute(
                f"DELETE FROM {table} WHERE session_id = ? AND EXISTS (SELECT 1 FROM json_each(?) AS gone "
                f"WHERE json_extract(gone.value, '$[0]') = {table}.message_id "
                f"AND json_extract(gone.value, '$[1]') = {table}.version)",
                [session_id, _json(removed)],
            )
        shift = len(event.messages) - (event.end - event.start)
        if shift:
            execute(
                "UPDATE messages SET position = position + ? WHERE session_id = ? AND position >= ?",
                [shift, session_id, event.end],
            )
        self._messages(session_id, event.start, event.messages, version, at)
        count_after = event.count_before + shift
        span = (event.start, event.end, event.count_before, count_after)
        digests = (event.removed_digest, event.replacement_digest)
        why = (event.reason, event.note, event.actor, at)
        self.pending[_INSERT_REVISION].append(
            (session_id, version, event.generation, event.parent_revision, event.revision, *span, *digests, *why)
        )
        row.update(message_count=count_after, revision=event.revision, generation=event.generation)


def _new_session(
    session_id: str,
    at: str,
    version: int,
    revision: str,
    title: str | None,
    metadata: dict[str, Any],
    **columns: Any,
) -> dict[str, Any]:
    """The sessions row of a session's first event: counters at zero, no
    lineage unless ``columns`` give it."""
    row: dict[str, Any] = dict.fromkeys(_SESSION_COLUMNS, 0)
    row.update(source=None, source_version=None, fork_index=None, parent=None, task=None)
    row.update(zip(_HEADER_COLUMNS, _header_values(Header()), strict=True))
    row.update(
        id=session_id,
        title=title,
        created_at=at,
        updated_at=at,
        version=version,
        revision=revision,
        metadata=_json(metadata),
        **columns,
    )
    return row


_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def _remove(conn: sqlite3.Connection, session_id: str) -> None:
    """Every row of one session, out of every table and the index."""
    _unindex(conn, "session_id = ?", [session_id])
    for table, column in _SESSION_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", [session_id])


def _unindex(conn: sqlite3.Connection, where: str, values: list[Any]) -> None:
    """Take the messages matching ``where`` out of the full-text index, before
    they are deleted or their text changes (the index keeps no copy of the
    text, so it must be told what it indexed)."""
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rowid, text) "
        f"SELECT 'delete', rowid, text FROM messages WHERE {where}",
        values,
    )
