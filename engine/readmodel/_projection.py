"""The read model: a store's sessions as plain SQLite tables (built with
sqlite-utils), kept up to date from the store-wide feed.

Each catch-up reads the feed after the last position it applied and
applies every event to the tables in one transaction, so the tables always
show the sessions as of one feed position. Forks get their inherited
messages from a checked read of the fork's first state, and every session a
catch-up touched is then compared with a checked read of the store at the
version the tables show: a damaged store is reported, never projected.
Deleted sessions leave nothing in the feed; a catch-up drops the sessions
the store no longer lists."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import sqlite_utils

from engine.errors import CorruptStore, InvalidArgument, SessionNotFound
from engine.facade import Transcripts
from engine.state.content import Message, Reasoning, ToolResult, Usage, shown
from engine.state.events import (
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    MetadataChanged,
    SessionCreated,
    SessionForked,
    TitleChanged,
    UsageRecorded,
)
from engine.state.revisions import EMPTY_REVISION, span_digest

__all__ = ["ReadModel", "SearchHit"]

#: The schema of the tables; a file made by another schema is rebuilt.
SCHEMA_VERSION = 1
_PAGE = 1000


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
    datasette or SQL. One read model follows one store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgument(f"a read model is a SQLite file path, got {type(path).__name__}")
        try:
            self.db = sqlite_utils.Database(os.fspath(path))
            self.db.execute("PRAGMA journal_mode=WAL")
            self._create_tables()
        except sqlite3.DatabaseError as exc:
            raise InvalidArgument(f"cannot use {shown(os.fspath(path))} as a read model: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ----------------------------------------------------------------

    @property
    def position(self) -> int:
        """The last feed position applied (0: nothing yet)."""
        return int(self._meta("position") or 0)

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
        with db.atomic():
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
                },
                pk="id",
            )
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
            db.table("messages").enable_fts(["text"], create_triggers=True, tokenize="porter")
            db.table("meta").insert_all(
                [{"key": "schema", "value": str(SCHEMA_VERSION)}, {"key": "position", "value": "0"}], replace=True
            )

    # -- catching up ----------------------------------------------------------

    def catch_up(self, store: Transcripts, *, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event the store stored after :attr:`position`, and
        return how many. ``progress`` is called with the count after each page."""
        if not isinstance(store, Transcripts):
            raise InvalidArgument(f"catch_up() takes a Transcripts store, got {type(store).__name__}")
        where = repr(store)
        known = self._meta("store")
        if known is not None and known != where:
            raise InvalidArgument(
                f"this read model follows {known}, not {where}; use another file, or rebuild() it for this store"
            )
        applied = 0
        position = self.position
        while page := store.feed(after=position, limit=_PAGE):
            # One transaction per page, checked before it commits: a page
            # that does not agree with the store's checked reads is not kept.
            with self.db.atomic():
                for item in page:
                    self._apply(store, item.session_id, item.version, item.event)
                self._check(store, {item.session_id for item in page})
                position = page[-1].position
                self._set_meta({"position": str(position), "store": where})
            applied += len(page)
            if progress is not None:
                progress(applied)
        with self.db.atomic():
            self._drop_deleted(store)
        return applied

    def rebuild(self, store: Transcripts, *, progress: Callable[[int], None] | None = None) -> int:
        """Empty the tables and project the whole store again."""
        with self.db.atomic():
            for table in ("sessions", "messages", "tool_calls", "tool_results", "usage", "revisions", "forks"):
                self.db.execute(f"DELETE FROM [{table}]")
            self.db.execute("DELETE FROM meta WHERE key = 'store'")
            self._set_meta({"position": "0"})
        return self.catch_up(store, progress=progress)

    def _set_meta(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def _apply(self, store: Transcripts, session_id: str, version: int, event: object) -> None:
        execute = self.db.execute
        if isinstance(event, SessionCreated):
            at = event.at.isoformat()
            execute(
                "INSERT OR REPLACE INTO sessions (id, title, created_at, updated_at, version, revision, message_count, "
                "metadata, root, depth, generation, input_tokens, output_tokens, cache_read_tokens, "
                "cache_write_tokens, reasoning_tokens) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 0, 0, 0, 0, 0, 0, 0)",
                [session_id, event.title, at, at, version, EMPTY_REVISION, _json(event.metadata), session_id],
            )
            return
        if isinstance(event, SessionForked):
            self._fork(store, session_id, event)
            return
        at = event.at.isoformat()  # type: ignore[attr-defined]
        if isinstance(event, MessagesAppended):
            count, revision, generation = self._session(session_id, "message_count", "revision", "generation")
            self._insert_messages(session_id, count, event.messages, version, at)
            added = len(event.messages)
            self._revision(
                session_id,
                version,
                generation + 1,
                revision,
                event.revision,
                (count, count, count, count + added),
                (EMPTY_REVISION, span_digest(event.messages)),
                ("append", None, event.actor, at),
            )
            execute(
                "UPDATE sessions SET message_count = ?, revision = ?, generation = ? WHERE id = ?",
                [count + added, event.revision, generation + 1, session_id],
            )
        elif isinstance(event, MessagesRewritten):
            self._rewrite(session_id, event, version, at)
        elif isinstance(event, UsageRecorded):
            self._usage(session_id, version, event.usage, event.response_id, at)
        elif isinstance(event, TitleChanged):
            execute("UPDATE sessions SET title = ? WHERE id = ?", [event.title, session_id])
        elif isinstance(event, MetadataChanged):
            (metadata,) = self._session(session_id, "metadata")
            values = {key: value for key, value in json.loads(metadata).items() if key not in event.unset}
            values.update(event.set)
            execute("UPDATE sessions SET metadata = ? WHERE id = ?", [_json(values), session_id])
        elif isinstance(event, MessagesErased):
            for message_id, digest in zip(event.message_ids, event.digests, strict=True):
                execute(
                    "UPDATE messages SET text = '', reasoning = '', tool_calls = 0, incomplete = 0, erased = ? "
                    "WHERE message_id = ?",
                    [digest, message_id],
                )
                for table in ("tool_calls", "tool_results"):
                    execute(f"DELETE FROM {table} WHERE message_id = ?", [message_id])
        execute("UPDATE sessions SET version = ?, updated_at = ? WHERE id = ?", [version, at, session_id])

    def _session(self, session_id: str, *columns: str) -> tuple[Any, ...]:
        found = self.db.execute(f"SELECT {', '.join(columns)} FROM sessions WHERE id = ?", [session_id]).fetchone()
        if found is None:
            raise CorruptStore(f"the feed holds events of session {session_id!r} before its first event")
        return tuple(found)

    def _fork(self, store: Transcripts, session_id: str, event: SessionForked) -> None:
        first = store.get(session_id, at=1)  # a checked read of what the fork started with
        at = event.at.isoformat()
        self.db.execute(
            "INSERT OR REPLACE INTO sessions (id, title, created_at, updated_at, version, revision, message_count, "
            "metadata, source, source_version, fork_index, root, depth, generation, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, reasoning_tokens) "
            "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0)",
            [
                session_id,
                first.title,
                at,
                at,
                first.revision,
                len(first.messages),
                _json(dict(first.metadata)),
                event.source,
                event.source_version,
                event.index,
                event.root,
                event.depth,
            ],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO forks (session_id, source, source_version, fork_index, replaced, root, depth, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                session_id,
                event.source,
                event.source_version,
                event.index,
                int(event.replacement is not None),
                event.root,
                event.depth,
                at,
            ],
        )
        self._insert_messages(session_id, 0, first.messages, 1, at)

    def _insert_messages(self, session_id: str, start: int, messages: Iterable[Message], version: int, at: str) -> None:
        rows, calls, results = [], [], []
        for offset, message in enumerate(messages):
            rows.append(_message_row(session_id, start + offset, message, version, at))
            for use in message.tool_uses:
                calls.append((session_id, message.id, use.id, use.name, use.arguments, version))
            for block in message.blocks:
                if isinstance(block, ToolResult):
                    content = "\n".join(getattr(part, "text", "") for part in block.content)
                    results.append((session_id, message.id, block.tool_use_id, int(block.is_error), content, version))
        conn = self.db.conn
        conn.executemany(
            "INSERT INTO messages (session_id, position, message_id, role, text, reasoning, tool_calls, "
            "provider_item_id, incomplete, erased, version, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if calls:
            conn.executemany(
                "INSERT INTO tool_calls (session_id, message_id, call_id, name, arguments, version) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                calls,
            )
        if results:
            conn.executemany(
                "INSERT INTO tool_results (session_id, message_id, call_id, is_error, content, version) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                results,
            )

    def _rewrite(self, session_id: str, event: MessagesRewritten, version: int, at: str) -> None:
        execute = self.db.execute
        removed = [
            row[0]
            for row in execute(
                "SELECT message_id FROM messages WHERE session_id = ? AND position >= ? AND position < ?",
                [session_id, event.start, event.end],
            ).fetchall()
        ]
        execute(
            "DELETE FROM messages WHERE session_id = ? AND position >= ? AND position < ?",
            [session_id, event.start, event.end],
        )
        for table in ("tool_calls", "tool_results"):
            execute(
                f"DELETE FROM {table} WHERE session_id = ? AND message_id IN (SELECT value FROM json_each(?))",
                [session_id, _json(removed)],
            )
        shift = len(event.messages) - (event.end - event.start)
        if shift:
            execute(
                "UPDATE messages SET position = position + ? WHERE session_id = ? AND position >= ?",
                [shift, session_id, event.end],
            )
        self._insert_messages(session_id, event.start, event.messages, version, at)
        count_after = event.count_before + shift
        self._revision(
            session_id,
            version,
            event.generation,
            event.parent_revision,
            event.revision,
            (event.start, event.end, event.count_before, count_after),
            (event.removed_digest, event.replacement_digest),
            (event.reason, event.note, event.actor, at),
        )
        execute(
            "UPDATE sessions SET message_count = ?, revision = ?, generation = ? WHERE id = ?",
            [count_after, event.revision, event.generation, session_id],
        )

    def _revision(
        self,
        session_id: str,
        version: int,
        generation: int,
        parent: str,
        revision: str,
        span: tuple[int, int, int, int],
        digests: tuple[str, str],
        why: tuple[str, str | None, str | None, str],
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO revisions (session_id, version, generation, parent_revision, revision, start, "
            "[end], count_before, count_after, removed_digest, replacement_digest, reason, note, actor, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [session_id, version, generation, parent, revision, *span, *digests, *why],
        )

    def _usage(self, session_id: str, version: int, usage: Usage, response_id: str | None, at: str) -> None:
        counts = [usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning]
        self.db.execute(
            "INSERT INTO usage (session_id, version, response_id, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, reasoning_tokens, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [session_id, version, response_id, *counts, at],
        )
        self.db.execute(
            "UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
            "cache_read_tokens = cache_read_tokens + ?, cache_write_tokens = cache_write_tokens + ?, "
            "reasoning_tokens = reasoning_tokens + ? WHERE id = ?",
            [*counts, session_id],
        )

    def _drop_deleted(self, store: Transcripts) -> None:
        listed = {info.id for info in store.sessions()}
        projected = [row[0] for row in self.db.execute("SELECT id FROM sessions").fetchall()]
        for session_id in projected:
            if session_id not in listed:
                for table, column in _SESSION_TABLES:
                    self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [session_id])

    def _check(self, store: Transcripts, touched: Iterable[str]) -> None:
        """Each touched session as the tables show it, against a checked read
        of the store at that version: damage is reported, not projected."""
        for session_id in sorted(touched):
            found = self.db.execute(
                "SELECT version, revision, message_count, title FROM sessions WHERE id = ?", [session_id]
            ).fetchone()
            if found is None:
                continue  # deleted since
            version, revision, count, title = found
            try:
                state = store.get(session_id)  # cached: cheap when the tables are at the head
                if state.version != version:
                    state = store.get(session_id, at=version)
            except SessionNotFound:  # deleted meanwhile: the next catch-up drops it
                continue
            if (state.revision, len(state.messages), state.title) != (revision, count, title):
                raise CorruptStore(
                    f"session {session_id!r} at version {version}: the feed gave what a checked read does not "
                    "(revision, message count or title differ); the store is damaged"
                )

    # -- queries ----------------------------------------------------------------

    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Messages of session heads whose text matches ``query`` (SQLite FTS5
        syntax: words, "phrases", prefix*, AND/OR/NOT), best first."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgument("search() takes a non-empty query")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive int, got {shown(limit)}")
        sql = (
            "SELECT m.session_id, m.position, m.role, m.message_id, "
            "snippet(messages_fts, 0, '[', ']', '…', 12) FROM messages_fts "
            "JOIN messages m ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH ? "
            "ORDER BY rank, m.session_id, m.position LIMIT ?"
        )
        try:
            rows = self.db.execute(sql, [query, limit]).fetchall()
        except sqlite3.OperationalError as exc:
            raise InvalidArgument(f"not a search query SQLite understands ({exc}): {shown(query)}") from None
        return [
            SearchHit(session_id=row[0], position=row[1], role=row[2], message_id=row[3], snippet=row[4])
            for row in rows
        ]

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Every row of one of the read model's tables (for tests and exports)."""
        if table not in _TABLES:
            raise InvalidArgument(f"the read model has tables {sorted(_TABLES)}, not {shown(table)}")
        return self.db.table(table).rows


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


def _message_row(session_id: str, position: int, message: Message, version: int, at: str) -> tuple[Any, ...]:
    reasoning = "\n".join(block.text for block in message.blocks if isinstance(block, Reasoning))
    return (
        session_id,
        position,
        message.id,
        message.role,
        message.text,
        reasoning,
        len(message.tool_uses),
        message.provider_item_id,
        int(message.incomplete),
        message.erased,
        version,
        at,
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
