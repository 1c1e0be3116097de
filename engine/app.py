"""``Transcripts``: the public facade over the event log (commands and queries).

Branching (``engine._branching``) and realtime ingestion
(``engine._ingesting``) are mixed in; the shared internals are in
``engine._base``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from engine._base import (
    DEFAULT_MAX_EVENT_BYTES,
    _check_actor,
    _check_metadata,
    _check_optional_str,
    _check_title,
    _new_session_id,
    _now,
    _observable,
    _stamped,
    check_session_id,
)
from engine._branching import Diff, _Branching
from engine._erasing import _Erasing
from engine._ingesting import IngestOutcome, OutOfBandResponse, Pending, _Ingesting
from engine.content import Message, ToolResult, Usage, shown, unicode_error
from engine.errors import (
    CorruptStore,
    InvalidArgument,
)
from engine.events import (
    CONTENT_EVENTS,
    Event,
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    MetadataChanged,
    RealtimePendingResolved,
    RealtimeRecorded,
    SessionCreated,
    SessionForked,
    TitleChanged,
    UsageRecorded,
    kind_of,
)
from engine.revisions import (
    EMPTY_REVISION,
    chain_each,
    format_revision,
    parse_revision,
)
from engine.store import (
    ClosedBackend,
    SessionRow,
    Snapshot,
    decode_snapshot,
    head_of,
    open_backend,
)
from engine.transcript import Session, check_shape, evolve, forked, involves_tools

__all__ = ["Diff", "HistoryEntry", "IngestOutcome", "OutOfBandResponse", "Pending", "SessionInfo", "Transcripts"]


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of :meth:`Transcripts.sessions`."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    revision: str
    version: int


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event of a session, as :meth:`Transcripts.history` lists it."""

    version: int
    at: datetime
    actor: str | None
    kind: str
    summary: str
    revision: str
    event: Any  # the typed event itself (an ``engine.events`` Struct)


class Transcripts(_Branching, _Ingesting, _Erasing):
    """A store of sessions, each an append-only log of typed events.

    Open one with :meth:`open`. Every method is safe to call from several
    threads; several processes may share a SQLite file or a PostgreSQL
    database (writers of one session are serialised by optimistic concurrency).
    """

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str] | None = None,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        table_prefix: str = "transcripts",
        synchronous: str = "full",
        lock_timeout: int = 10,
        seal_key: bytes | None = None,
        seal_legacy: bool = False,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
    ) -> Transcripts:
        """Open a store: in memory (no argument), a SQLite file, or PostgreSQL.

        ``snapshot_interval``: write a snapshot every that many events of a
        session; ``None``: neither write nor use snapshots (every load
        re-hashes the whole history). Snapshots only speed up loading.
        ``synchronous`` (SQLite): ``"full"`` (default, durable on power loss) or
        ``"normal"``. ``table_prefix`` names the tables, so several stores can
        share one database. ``lock_timeout`` (seconds): the longest a write
        waits for another writer's lock (SQLite's busy timeout, PostgreSQL's
        ``lock_timeout``) before it fails with a typed error; on PostgreSQL
        each statement of a write is also bounded (60 s). ``seal_key`` (bytes,
        kept outside the store): seal listing rows with an HMAC under that key
        instead of a plain SHA-256, so that even someone who can write to the
        store and knows the algorithm cannot alter a session unnoticed; every
        opening of the store must then pass the same key. A store written
        before rows were sealed (version 0.1) is sealed when first opened;
        with a ``seal_key`` only if ``seal_legacy=True`` says it is such a
        store (else ``CorruptStore``: someone may have removed the seals).
        ``max_event_bytes``
        (default 16 MiB; ``None``: no limit): a write that would store a larger
        event (one ``append`` call is one event) is refused with
        :class:`EventTooLarge` before anything is sent.
        """
        backend = open_backend(
            target,
            table_prefix=table_prefix,
            synchronous=synchronous,
            lock_timeout=lock_timeout,
            seal_key=seal_key,
            seal_legacy=seal_legacy,
        )
        try:
            return cls(
                backend, snapshot_interval=snapshot_interval, cache_size=cache_size, max_event_bytes=max_event_bytes
            )
        except BaseException:
            backend.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._backend.close()
            self._backend = ClosedBackend(self._backend.describe())
            self._cache.clear()
            self._realtime.clear()

    def __enter__(self) -> Transcripts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transcripts({self._backend.describe()!r})"

    # -- commands ---------------------------------------------------------

    def create(
        self,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Start a session and return its id (a fresh UUID unless ``session_id``)."""
        _check_title(title)
        _check_actor(actor)
        session_id = _new_session_id(session_id)
        event = SessionCreated(at=_now(), actor=actor, title=title, metadata=_check_metadata(metadata))
        with self._lock:
            self._commit(session_id, None, [event])
        return session_id

    def append(
        self,
        session_id: str,
        *messages: Message,
        expected_revision: str | None = None,
        usage: Usage | None = None,
        actor: str | None = None,
    ) -> str:
        """Append messages (and optionally their usage) in one transaction.

        Messages without an ``id`` get one. Returns the new head revision.
        With ``expected_revision``, raises :class:`RevisionConflict` (and
        writes nothing) unless the session is at exactly that revision.
        """
        if not messages:
            raise InvalidArgument("append() needs at least one message")
        stamped = _stamped(messages, "append()")
        if usage is not None and not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        _check_actor(actor)
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            # The rules every other change of content follows: tool uses are
            # answered by the next message, results answer the message before.
            count = len(state.messages)
            if (count and involves_tools((state.messages[count - 1],))) or involves_tools(stamped):
                # Only tool traffic can break pairing: plain appends skip the window.
                before = state.messages[max(0, count - 2) : count]  # the seam's neighbour and its predecessor
                check_shape([*before, *stamped], len(before), len(before) + len(stamped), offset=count - len(before))
            at = _now(state)
            # Every message's prefix revision, kept with the messages: what
            # makes a later fork_at or rewrite at any index cost O(1).
            revisions = chain_each(state._revision_bytes, stamped)
            revision = format_revision(revisions[-1])
            events: list[Event] = [MessagesAppended(at=at, actor=actor, messages=tuple(stamped), revision=revision)]
            if usage is not None:
                events.append(UsageRecorded(at=at, actor=actor, usage=usage))
            self._commit(session_id, state, events, known={state.version + 1: revisions})
            return revision

    def set_title(self, session_id: str, title: str | None, *, actor: str | None = None) -> None:
        """Set (or, with ``None``, clear) the session's title."""
        _check_title(title)
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            self._commit(session_id, state, [TitleChanged(at=_now(state), actor=actor, title=title)])

    def update_metadata(
        self,
        session_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        remove: Iterable[str] = (),
        actor: str | None = None,
    ) -> None:
        """Set the keys in ``values`` and remove the keys in ``remove``."""
        checked = _check_metadata(values)
        if isinstance(remove, (str, bytes)):
            # A bare string would be taken apart into its characters.
            raise InvalidArgument(
                f"remove= takes an iterable of keys, got the string {shown(remove)}; pass [{shown(remove)}]"
            )
        if not isinstance(remove, Iterable):
            raise InvalidArgument(f"remove= takes an iterable of keys, got {type(remove).__name__}")
        removed = tuple(remove)
        if not all(isinstance(key, str) for key in removed):
            raise InvalidArgument("remove= must hold metadata keys (str)")
        for key in removed:
            if not key.isascii():
                unicode_error(key, f"remove= key {shown(key)}", InvalidArgument)
        if not checked and not removed:
            raise InvalidArgument("update_metadata() needs values to set or keys to remove")
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            event = MetadataChanged(at=_now(state), actor=actor, set=checked, unset=removed)
            self._commit(session_id, state, [event])

    def record_usage(
        self, session_id: str, usage: Usage, *, response_id: str | None = None, actor: str | None = None
    ) -> None:
        """Add the token usage of one model response to the session's total."""
        if not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        _check_optional_str(response_id, "response_id")
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            event = UsageRecorded(at=_now(state), actor=actor, usage=usage, response_id=response_id)
            self._commit(session_id, state, [event])

    # -- queries ----------------------------------------------------------

    def history(self, session_id: str) -> list[HistoryEntry]:
        """Every recorded event of the session, oldest first."""
        records = self._records(session_id)
        entries = []
        revision = EMPTY_REVISION
        for version, event in self._decoded(session_id, records):
            if isinstance(event, CONTENT_EVENTS):
                revision = event.revision
            entries.append(
                HistoryEntry(
                    version=version,
                    at=event.at,
                    actor=event.actor,
                    kind=kind_of(event),
                    summary=_summary(event),
                    revision=revision,
                    event=event,
                )
            )
        return entries

    def sessions(self) -> list[SessionInfo]:
        """Every session in the store, oldest first (read from a listing table
        kept in the same transaction as each write, so it is never stale)."""
        return [
            SessionInfo(
                id=row.session_id,
                title=row.title,
                created_at=_listed_time(row, row.created_at),
                updated_at=_listed_time(row, row.updated_at),
                message_count=row.message_count,
                revision=row.revision,
                version=row.version,
            )
            for row in self._backend.session_rows()
        ]

    def head_hash(self, session_id: str) -> str:
        """The session's chain head, ``"<version>:<hex>"``: a value to keep
        outside the store (a log line, a receipt, another database). The
        chain commits to every field of every event up to that version, so
        ``verify(session_id, head_hash=kept)`` later tells whether the log
        still holds exactly what it held then, in the same order."""
        with self._lock:
            head = self._head(session_id)
            return f"{head.version}:{self._chain_of(head).digest().hex()}"

    def verify(self, session_id: str, *, head_hash: str | None = None) -> Session:
        """Audit one session: check its log against its chain head, replay the
        whole history from scratch re-hashing every revision, and check every
        snapshot, the listing row and the cached head against that replay.
        With ``head_hash`` (from :meth:`head_hash`, kept outside the store),
        also check that the log still extends it: this detects a log rewritten
        consistently by someone who could write to the store. Returns the
        verified head; raises :class:`CorruptStore` on any disagreement."""
        check_session_id(session_id)
        kept = _parse_head_hash(head_hash) if head_hash is not None else None
        # Snapshots first: each is written with its events, so none is newer
        # than the log read after them (a concurrent writer's would be).
        snapshots = self._backend.snapshots(session_id)
        listed, records, _ = self._log(session_id)
        if kept is not None:
            version, link = kept
            if version > len(records):
                raise CorruptStore(
                    f"session {session_id!r} ends at version {len(records)}, before the kept head at version "
                    f"{version}: events were removed"
                )
            if head_of(session_id, records[:version]) != link:
                raise CorruptStore(
                    f"session {session_id!r}: its first {version} events no longer match the kept head hash: "
                    "the log was altered (or re-linked by an erasure since)"
                )
        states: list[Session] = []
        state: Session | None = None
        for version, event in self._decoded(session_id, records):
            if isinstance(event, SessionForked):
                state = forked(session_id, event, self._source_state(session_id, event, 0))
            else:
                state = evolve(state, session_id, version, event)
            states.append(state)
        assert state is not None
        for stored in snapshots:
            if not 1 <= stored.version <= len(states) or (
                decode_snapshot(session_id, stored.state) != Snapshot.of(states[stored.version - 1])
            ):
                raise CorruptStore(
                    f"session {session_id!r}: the snapshot at version {stored.version} differs from replay"
                )
        if (listed.title, listed.message_count, listed.revision) != (state.title, len(state.messages), state.revision):
            raise CorruptStore(f"session {session_id!r}: its listing row differs from the replay of its log")
        with self._lock:
            head = self._head(session_id)
        if head.version == state.version and _observable(head) != _observable(state):
            raise CorruptStore(f"session {session_id!r}: the loaded head differs from a full replay")
        return state


def _parse_head_hash(head_hash: object) -> tuple[int, bytes]:
    version_text, colon, hex_text = head_hash.partition(":") if isinstance(head_hash, str) else ("", "", "")
    try:
        link = bytes.fromhex(hex_text)
    except ValueError:
        link = b""
    if not colon or not version_text.isdigit() or int(version_text) < 1 or len(link) != 32:
        raise InvalidArgument(
            f"head_hash looks like '<version>:<64 hex digits>', as head_hash() returns it; got {shown(head_hash)}"
        )
    return int(version_text), link


def _clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _gist(message: Message) -> str:
    """A few words about a message for a timeline line."""
    if message.erased is not None:
        return "(erased)"
    if message.text:
        return repr(_clip(message.text, 30))
    parts = [f"calls {use.name}" for use in message.tool_uses]
    parts += [f"result for {block.tool_use_id}" for block in message.blocks if isinstance(block, ToolResult)]
    return ", ".join(parts) or "(no text)"


def _summary(event: Event) -> str:
    if isinstance(event, SessionCreated):
        return "created" + (f" {event.title!r}" if event.title else "")
    if isinstance(event, MessagesAppended):
        count = len(event.messages)
        shown = ", ".join(f"{m.role} {_gist(m)}" for m in event.messages[:3])
        more = f", +{count - 3} more" if count > 3 else ""
        return f"appended {count} message{'s' if count != 1 else ''}: {shown}{more}"
    if isinstance(event, MessagesRewritten):
        added = len(event.messages)
        why = event.reason + (f" ({_clip(event.note, 40)})" if event.note else "")
        return f"{why}: [{event.start}, {event.end}) replaced by {added} message{'s' if added != 1 else ''}"
    if isinstance(event, SessionForked):
        where = "" if event.index is None else f" at message {event.index}"
        edited = f", then {event.replacement.role} {_gist(event.replacement)}" if event.replacement else ""
        return f"forked from {event.source!r} version {event.source_version}{where}{edited}"
    if isinstance(event, RealtimeRecorded):
        inner = event.event
        about = getattr(inner, "item_id", None) or getattr(inner, "response_id", None) or ""
        return f"realtime {inner.__struct_config__.tag} {about}".rstrip()
    if isinstance(event, RealtimePendingResolved):
        return f"pending realtime items resolved ({event.policy})"
    if isinstance(event, MessagesErased):
        count = len(event.message_ids)
        why = event.reason + (f" ({_clip(event.note, 40)})" if event.note else "")
        return f"{why}: {count} message{'s' if count != 1 else ''} erased from {len(event.versions)} stored events"
    if isinstance(event, UsageRecorded):
        return f"usage +{event.usage.input} in, +{event.usage.output} out"
    if isinstance(event, MetadataChanged):
        parts = []
        if event.set:
            parts.append("set " + ", ".join(sorted(event.set)))
        if event.unset:
            parts.append("removed " + ", ".join(event.unset))
        return "metadata " + "; ".join(parts)
    if isinstance(event, TitleChanged):
        return f"title set to {event.title!r}" if event.title is not None else "title cleared"
    return kind_of(event)  # pragma: no cover


def _listed_time(row: SessionRow, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise CorruptStore(f"the listing row of session {row.session_id!r} is damaged: bad time {text!r}") from None
