"""``Transcripts``: the public facade over the event log (commands and queries)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from engine.content import Block, Message, ReplaceBlock, ToolResult, Transcript, Usage
from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    InvalidArgument,
    InvalidForkPoint,
    InvalidMessage,
    InvalidRewriteRange,
    NoOpRewrite,
    ReplacementMismatch,
    RevisionConflict,
    RevisionNotFound,
    SessionNotFound,
    VersionNotFound,
)
from engine.events import (
    Event,
    MessagesAppended,
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
from engine.realtime.events import UNKNOWN, RealtimeEvent
from engine.realtime.providers.openai import Ignored as OpenAIIgnored
from engine.realtime.providers.openai import Rejected as OpenAIRejected
from engine.realtime.providers.openai import translate as openai_translate
from engine.realtime.reducer import (
    AppendMessage,
    Change,
    InsertMessage,
    RealtimeState,
    RecordUsage,
    RemoveItem,
    ReplaceItem,
    TruncateItem,
    is_duplicate,
)
from engine.realtime.reducer import apply as realtime_apply
from engine.realtime.reducer import resolve as realtime_resolve
from engine.revisions import (
    EMPTY_REVISION,
    Commit,
    Reason,
    chain,
    chain_each,
    format_revision,
    parse_revision,
    span_digest,
)
from engine.sequence import MessageSeq
from engine.store import (
    Backend,
    Record,
    SessionRow,
    Snapshot,
    StoredSnapshot,
    decode_events,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    open_backend,
)
from engine.transcript import Lineage, Session, check_shape, evolve, fold, forked

__all__ = ["Diff", "HistoryEntry", "IngestOutcome", "Pending", "SessionInfo", "Transcripts"]

_log = logging.getLogger("engine")
_MAX_ID = 200
_MAX_FORK_DEPTH = 10_000
REALTIME_EVENT_TYPES = tuple(RealtimeEvent.__args__)


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


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed between two states of a session: ``removed`` (from the
    first) was replaced by ``added`` (in the second) at ``start``; everything
    before ``start`` and after the changed span is equal."""

    start: int
    removed: tuple[Message, ...]
    added: tuple[Message, ...]
    from_revision: str
    to_revision: str


class IngestOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one ingested event did: ``status`` is ``materialised``,
    ``staged``, ``duplicate``, ``discarded``, ``rejected`` or ``ignored``;
    ``messages`` are the messages it added; ``version`` is the session's
    version after it (unchanged unless something was stored)."""

    status: str
    reason: str | None = None
    messages: tuple[Message, ...] = ()
    version: int


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """What ingestion is waiting for: staged item ids (first seen first), each
    with what it waits on, and the response ids still in flight."""

    items: tuple[tuple[str, str], ...]
    responses: tuple[str, ...]


class Transcripts:
    """A store of sessions, each an append-only log of typed events.

    Open one with :meth:`open`. Every method is safe to call from several
    threads; several processes may share a SQLite file or a PostgreSQL
    database (writers of one session are serialised by optimistic concurrency).
    """

    def __init__(self, backend: Backend, *, snapshot_interval: int | None = 100, cache_size: int = 1024) -> None:
        if snapshot_interval is not None and (
            not isinstance(snapshot_interval, int) or isinstance(snapshot_interval, bool) or snapshot_interval < 1
        ):
            raise InvalidArgument(f"snapshot_interval must be a positive int or None, got {snapshot_interval!r}")
        if not isinstance(cache_size, int) or cache_size < 1:
            raise InvalidArgument(f"cache_size must be a positive int, got {cache_size!r}")
        self._backend = backend
        self._snapshot_interval = snapshot_interval
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._realtime: dict[str, tuple[int, RealtimeState]] = {}
        self._lock = threading.RLock()

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
    ) -> Transcripts:
        """Open a store: in memory (no argument), a SQLite file, or PostgreSQL.

        ``snapshot_interval``: write a snapshot every that many events of a
        session; ``None``: neither write nor use snapshots (every load
        re-hashes the whole history). Snapshots only speed up loading.
        ``synchronous`` (SQLite): ``"full"`` (default, durable on power loss) or
        ``"normal"``. ``table_prefix`` names the tables, so several stores can
        share one database.
        """
        backend = open_backend(target, table_prefix=table_prefix, synchronous=synchronous, lock_timeout=lock_timeout)
        try:
            return cls(backend, snapshot_interval=snapshot_interval, cache_size=cache_size)
        except BaseException:
            backend.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._backend.close()
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
        removed = tuple(remove)
        if not all(isinstance(key, str) for key in removed):
            raise InvalidArgument("remove= must hold metadata keys (str)")
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

    # -- revisions: rewrite, restore -----------------------------------------

    def rewrite(
        self,
        session_id: str,
        start: int,
        end: int,
        replacement: Iterable[Message] = (),
        reason: str | Reason = "edit",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Replace messages ``[start, end)`` with ``replacement`` as one audited
        commit, and return it.

        Only the replacement is stored. Raises, writing nothing:
        :class:`RevisionConflict` if ``expected_revision`` is not the head,
        :class:`InvalidRewriteRange`, :class:`NoOpRewrite` if the content would
        not change, :class:`InvalidTranscriptShape` if tool pairing would break.
        """
        why = Reason.of(reason, note)
        stamped = _stamped(replacement if not isinstance(replacement, Message) else (replacement,), "rewrite()")
        _check_actor(actor)
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            event = self._rewrite_event(state, start, end, stamped, why, actor)
            new_state = self._commit(session_id, state, [event])
            return _commit_of(event, new_state.version, new_state.messages.__len__())

    def restore(
        self,
        session_id: str,
        revision: str,
        reason: str | Reason = "restore",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Make the transcript what it was at ``revision`` (any revision the
        session reached), as a new audited commit. Only the span that differs
        from the head is stored."""
        if note is None and not isinstance(reason, Reason):
            note = f"back to {revision}"
        why = Reason.of(reason, note)
        _check_actor(actor)
        target = list(self.revision_messages(session_id, revision))
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            current = state.messages
            start, removed_end, added_end = _changed_span(current, target)
            event = self._rewrite_event(state, start, removed_end, target[start:added_end], why, actor)
            new_state = self._commit(session_id, state, [event])
            return _commit_of(event, new_state.version, len(new_state.messages))

    def _rewrite_event(
        self, state: Session, start: object, end: object, stamped: list[Message], why: Reason, actor: str | None,
        *, check: bool = True,
    ) -> MessagesRewritten:
        count = len(state.messages)
        if (
            not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool)
            or not 0 <= start <= end <= count
        ):
            raise InvalidRewriteRange(start, end, count)
        result = state.messages.replaced(start, end, stamped)
        if check:  # realtime changes mirror the provider's conversation as it is
            check_shape(result, start, start + len(stamped))
        base = state.messages.revision_at(start)
        tail_revisions = chain_each(base, result[start:])
        revision = format_revision(tail_revisions[-1] if tail_revisions else base)
        if revision == state.revision:
            raise NoOpRewrite(revision)
        return MessagesRewritten(
            at=_now(state), actor=actor, start=start, end=end, messages=tuple(stamped),
            parent_revision=state.revision, revision=revision, reason=why.kind, note=why.note,
            removed_digest=span_digest(state.messages[start:end]), replacement_digest=span_digest(stamped),
            count_before=count, generation=state.generation + 1,
        )

    # -- realtime ingestion -------------------------------------------------

    def ingest(
        self, session_id: str, event: object, *, provider: str | None = None, actor: str | None = None
    ) -> IngestOutcome:
        """Ingest one realtime event: a canonical event (``engine.realtime``),
        or a raw provider server event (a dict, or ``str``/``bytes`` of JSON)
        with ``provider="openai"``. Idempotent: a redelivered event is a
        ``duplicate`` and stores nothing. Never raises for bad input: a
        malformed event is ``rejected`` with a reason and changes nothing."""
        return self.ingest_many(session_id, [event], provider=provider, actor=actor)[0]

    def ingest_many(
        self, session_id: str, events: Iterable[object], *, provider: str | None = None, actor: str | None = None
    ) -> list[IngestOutcome]:
        """Ingest events in order, storing everything they accept in one transaction."""
        _check_actor(actor)
        if provider not in (None, "openai"):
            raise InvalidArgument(f"provider must be 'openai' or None, got {provider!r}")
        translated = [self._canonical(raw, provider) for raw in events]
        with self._lock:
            known = self._realtime.get(session_id)
            if known is not None and _all_duplicates(known[1], translated):
                # Redelivery needs no I/O: what this store already accepted is
                # still accepted in any newer state of the session.
                return [
                    IngestOutcome(status=c[0], reason=c[1], version=known[0]) if isinstance(c, tuple)
                    else IngestOutcome(status="duplicate", reason="already accepted", version=known[0])
                    for c in translated
                ]
            head = self._head(session_id)
            state = self._realtime_state(head).copy()
            working = head
            to_store: list[Event] = []
            results: list[tuple[str, str | None, list[Message]]] = []
            for canonical in translated:
                if isinstance(canonical, tuple):
                    results.append((canonical[0], canonical[1], []))
                    continue
                statuses: list[str] = []
                reasons: list[str] = []
                added: list[Message] = []
                for item in canonical:
                    outcome = realtime_apply(state, item)
                    statuses.append(outcome.status)
                    if outcome.reason:
                        reasons.append(outcome.reason)
                    if not outcome.accepted:
                        continue
                    recorded = RealtimeRecorded(at=_now(working), actor=actor, event=item, provider=provider)
                    working = self._stage(session_id, working, recorded, to_store)
                    for change in outcome.changes:
                        working = self._apply_change(session_id, working, change, actor, to_store, added)
                results.append((_combined(statuses), "; ".join(reasons) or None, added))
            if to_store:
                self._commit(session_id, head, to_store)
                self._realtime[session_id] = (working.version, state)
            final = working.version if to_store else head.version
            return [
                IngestOutcome(status=status, reason=reason, messages=tuple(added), version=final)
                for status, reason, added in results
            ]

    def pending(self, session_id: str) -> Pending:
        """Items ingestion is holding back, and in-flight response ids (to fan
        out an interruption with ``AssistantTurnInterrupted``)."""
        with self._lock:
            state = self._realtime_state(self._head(session_id))
        waiting = []
        for item in state.pending_items():
            if item.previous not in (None, UNKNOWN) and item.previous not in state.items:
                why = f"unknown predecessor {item.previous}"
            elif item.response_id and item.response_id in state.responses.live:
                why = f"response {item.response_id} in flight"
            else:
                why = "its text or an earlier item"
            waiting.append((item.id, why))
        return Pending(items=tuple(waiting), responses=tuple(state.in_flight_responses()))

    def resolve_pending(
        self, session_id: str, policy: str = "place", *, actor: str | None = None
    ) -> IngestOutcome:
        """Unblock ingestion: ``place`` puts every waiting item at the end in
        first-seen order (unfinished responses become incomplete messages),
        ``drop`` discards them. Recorded as an audited event."""
        if policy not in ("place", "drop"):
            raise InvalidArgument(f"policy must be 'place' or 'drop', got {policy!r}")
        _check_actor(actor)
        with self._lock:
            head = self._head(session_id)
            state = self._realtime_state(head).copy()
            changes = realtime_resolve(state, "place" if policy == "place" else "drop")
            to_store: list[Event] = []
            added: list[Message] = []
            working = self._stage(
                session_id, head, RealtimePendingResolved(at=_now(head), actor=actor, policy=policy), to_store
            )
            for change in changes:
                working = self._apply_change(session_id, working, change, actor, to_store, added)
            self._commit(session_id, head, to_store)
            self._realtime[session_id] = (working.version, state)
            return IngestOutcome(
                status="materialised" if added else "discarded", reason=f"pending items resolved ({policy})",
                messages=tuple(added), version=working.version,
            )

    def _canonical(self, raw: object, provider: str | None) -> list[RealtimeEvent] | tuple[str, str]:
        if isinstance(raw, REALTIME_EVENT_TYPES):
            return [raw]
        if provider is None:
            return ("rejected", f"a {type(raw).__name__} is not a canonical realtime event; pass provider='openai'")
        translated = openai_translate(raw)
        if isinstance(translated, OpenAIRejected):
            return ("rejected", translated.reason)
        if isinstance(translated, OpenAIIgnored):
            return ("ignored", translated.reason)
        return translated

    def _realtime_state(self, head: Session) -> RealtimeState:
        """The session's ingestion state, rebuilt from its recorded realtime
        events when the cached one is not for this version."""
        cached = self._realtime.get(head.id)
        if cached is not None and cached[0] == head.version:
            return cached[1]
        state = RealtimeState()
        for _, event in self._decoded(head.id, self._backend.read(head.id, upto=head.version)):
            if isinstance(event, RealtimeRecorded):
                realtime_apply(state, event.event)
            elif isinstance(event, RealtimePendingResolved):
                realtime_resolve(state, "place" if event.policy == "place" else "drop")
        self._realtime[head.id] = (head.version, state)
        return state

    def _stage(self, session_id: str, state: Session, event: Event, to_store: list[Event]) -> Session:
        to_store.append(event)
        return evolve(state, session_id, state.version + 1, event, verify=False)

    def _apply_change(
        self,
        session_id: str,
        state: Session,
        change: Change,
        actor: str | None,
        to_store: list[Event],
        added: list[Message],
    ) -> Session:
        """Turn one reducer change into events on ``state`` (not yet stored)."""
        if isinstance(change, RecordUsage):
            usage = UsageRecorded(at=_now(state), actor=actor, usage=change.usage, response_id=change.response_id)
            return self._stage(session_id, state, usage, to_store)
        if isinstance(change, AppendMessage):
            [message] = _stamped([change.message], "ingest")
            revision = format_revision(chain(state._revision_bytes, (message,)))
            added.append(message)
            appended = MessagesAppended(at=_now(state), actor=actor, messages=(message,), revision=revision)
            return self._stage(session_id, state, appended, to_store)
        if isinstance(change, InsertMessage):
            [message] = _stamped([change.message], "ingest")
            at = 0 if change.after is None else _find(state, change.after)
            if at is None:
                return state  # the anchor is gone (rewritten away): nothing to place it after
            added.append(message)
            start = at if change.after is None else at + 1
            return self._realtime_rewrite(session_id, state, start, start, [message], "realtime_order", actor, to_store)
        index = _find(state, change.anchor)
        if index is None:
            return state
        message = state.messages[index]
        blocks = list(message.blocks)
        segment = blocks[change.offset : change.offset + change.count]
        if isinstance(change, RemoveItem):
            remaining = blocks[: change.offset] + blocks[change.offset + change.count :]
            replacement = [_with_blocks(message, remaining)] if remaining else []
            return self._realtime_rewrite(session_id, state, index, index + 1, replacement, "provider_deleted",
                                          actor, to_store)
        if isinstance(change, ReplaceItem):
            new_blocks = blocks[: change.offset] + list(change.blocks) + blocks[change.offset + change.count :]
            return self._realtime_rewrite(session_id, state, index, index + 1, [_with_blocks(message, new_blocks)],
                                          change.reason, actor, to_store)
        assert isinstance(change, TruncateItem)
        cut = [
            msgspec.structs.replace(block, truncated_at_ms=change.audio_end_ms,
                                    text=change.text if change.text is not None else block.text)
            if isinstance(block, Transcript) else block
            for block in segment
        ]
        new_blocks = blocks[: change.offset] + cut + blocks[change.offset + change.count :]
        return self._realtime_rewrite(session_id, state, index, index + 1, [_with_blocks(message, new_blocks)],
                                      "truncation", actor, to_store)

    def _realtime_rewrite(
        self, session_id: str, state: Session, start: int, end: int, replacement: list[Message], kind: str,
        actor: str | None, to_store: list[Event],
    ) -> Session:
        stamped = _stamped(replacement, "ingest")
        try:
            event = self._rewrite_event(state, start, end, stamped, Reason(kind=kind), actor, check=False)
        except NoOpRewrite:
            return state
        return self._stage(session_id, state, event, to_store)

    # -- forks ------------------------------------------------------------

    def fork(self, session_id: str, *, actor: str | None = None, child_id: str | None = None) -> str:
        """A new session holding this one's transcript as it is now. O(1): one
        event naming the source and its version; nothing is copied."""
        return self._fork(session_id, None, None, actor, child_id)

    def fork_at(
        self, session_id: str, index: int, *, actor: str | None = None, child_id: str | None = None
    ) -> str:
        """A new session holding ``messages[:index]``. Raises
        :class:`InvalidForkPoint` if ``index`` is out of range or would split a
        tool-use message from its results."""
        return self._fork(session_id, _index(index), None, actor, child_id)

    def fork_replacing(
        self,
        session_id: str,
        index: int,
        replacement: Message | ReplaceBlock,
        *,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> str:
        """Edit and retry: a new session holding ``messages[:index]`` followed by
        ``replacement``, a whole message of the same role or one
        :class:`ReplaceBlock` inside message ``index``."""
        if not isinstance(replacement, (Message, ReplaceBlock)):
            raise InvalidArgument(
                f"replacement must be a Message or a ReplaceBlock, got {type(replacement).__name__}"
            )
        return self._fork(session_id, _index(index), replacement, actor, child_id)

    def lineage(self, session_id: str) -> Lineage:
        """Where the session comes from: source, source version, fork index,
        root and depth (a session that is not a fork is its own root)."""
        return self.get(session_id).lineage

    def _fork(
        self,
        source_id: str,
        index: int | None,
        replacement: Message | ReplaceBlock | None,
        actor: str | None,
        child_id: str | None,
    ) -> str:
        _check_actor(actor)
        child_id = _new_session_id(child_id)
        with self._lock:
            source = self._head(source_id)
            messages = source.messages
            count = len(messages)
            kept = count if index is None else index
            new_message = None
            if replacement is None:
                if not 0 <= kept <= count:
                    raise InvalidForkPoint(f"fork_at index {kept} is outside 0..{count} of session {source_id!r}")
                if 0 < kept < count and messages[kept - 1].tool_uses:
                    raise InvalidForkPoint(
                        f"fork_at index {kept} would split message {kept - 1}'s tool uses from their results; "
                        f"fork at {kept - 1} or {kept + 1} instead"
                    )
            else:
                if not 0 <= kept < count:
                    raise InvalidForkPoint(
                        f"fork_replacing index {kept} is outside 0..{count - 1} of session {source_id!r}"
                    )
                new_message = _replacing(messages[kept], kept, replacement)
                check_shape(messages.prefix(kept).extended((new_message,)), kept, kept + 1)
            raw = source._revision_bytes if kept == count else messages.revision_at(kept)
            if new_message is not None:
                raw = chain(raw, (new_message,))
            event = SessionForked(
                at=_now(), actor=actor, source=source_id, source_version=source.version,
                index=index, replacement=new_message, revision=format_revision(raw),
                root=source.lineage.root, depth=source.lineage.depth + 1,
            )
            self._commit(child_id, None, [event], first=forked(child_id, event, source, verify=False))
        return child_id

    # -- queries ----------------------------------------------------------

    def get(self, session_id: str, at: int | str | datetime | None = None) -> Session:
        """The session now, or as of an event version, a revision or a time.

        ``at`` may be an ``int`` (event version, 1 = creation), a revision id
        (``"sha256:..."``: the last state that had that revision), or an aware
        ``datetime`` (the state after the last event recorded at or before it).
        """
        with self._lock:
            head = self._head(session_id)
        if at is None:
            return head
        if isinstance(at, bool) or not isinstance(at, (int, str, datetime)):
            raise InvalidArgument(
                f"at= takes an event version (int), a revision id (str) or a datetime, got {at!r}"
            )
        if isinstance(at, int):
            if not 1 <= at <= head.version:
                raise VersionNotFound(
                    f"session {session_id!r} has versions 1 to {head.version}; there is no version {at}"
                )
            return head if at == head.version else self._state_at(session_id, at)
        if isinstance(at, str):
            parse_revision(at)
            if at == head.revision:
                return head
            version = self._last_version_with_revision(session_id, at, head.version)
            return self._state_at(session_id, version)
        if at.tzinfo is None:
            raise InvalidArgument("at= datetime must be timezone-aware (for example datetime.now(UTC))")
        version = self._last_version_at_time(session_id, at, head)
        return head if version == head.version else self._state_at(session_id, version)

    def history(self, session_id: str) -> list[HistoryEntry]:
        """Every recorded event of the session, oldest first."""
        records = self._backend.read(session_id)
        if not records:
            raise SessionNotFound(session_id)
        entries = []
        revision = EMPTY_REVISION
        for version, event in self._decoded(session_id, records):
            if isinstance(event, (MessagesAppended, MessagesRewritten, SessionForked)):
                revision = event.revision
            entries.append(
                HistoryEntry(
                    version=version, at=event.at, actor=event.actor, kind=kind_of(event),
                    summary=_summary(event), revision=revision, event=event,
                )
            )
        return entries

    def revisions(self, session_id: str) -> list[Commit]:
        """Every content commit of the session, oldest first: appends and
        rewrites (restores included), each from its parent revision to its
        revision. A fork's own commits start after its fork point."""
        records = self._backend.read(session_id)
        if not records:
            raise SessionNotFound(session_id)
        commits: list[Commit] = []
        revision, count, generation = EMPTY_REVISION, 0, 0
        for version, event in self._decoded(session_id, records):
            if isinstance(event, SessionForked):
                revision = event.revision
                count = len(self._source_state(session_id, event, 0).messages)
            elif isinstance(event, MessagesAppended):
                generation += 1
                added = len(event.messages)
                commits.append(
                    Commit(
                        version=version, generation=generation, parent_revision=revision, revision=event.revision,
                        start=count, end=count, removed_digest=EMPTY_REVISION,
                        replacement_digest=span_digest(event.messages), count_before=count,
                        count_after=count + added, reason=Reason(kind="append"), actor=event.actor, at=event.at,
                    )
                )
                revision, count = event.revision, count + added
            elif isinstance(event, MessagesRewritten):
                generation = event.generation
                count = event.count_before - (event.end - event.start) + len(event.messages)
                commits.append(_commit_of(event, version, count))
                revision = event.revision
        return commits

    def revision_messages(self, session_id: str, revision: str) -> MessageSeq:
        """The messages of any revision the session reached (after any of its
        events), rebuilt from the log: no copy is stored per revision."""
        parse_revision(revision)
        with self._lock:
            head = self._head(session_id)
        if revision == head.revision:
            return head.messages
        return self._state_at(session_id, self._last_version_with_revision(session_id, revision, head.version)).messages

    def diff(self, session_id: str, before: int | str, after: int | str) -> Diff:
        """The changed span between two versions or revisions of a session."""
        for point in (before, after):
            if isinstance(point, bool) or not isinstance(point, (int, str)):
                raise InvalidArgument(f"diff() takes event versions (int) or revision ids (str), got {point!r}")
        old, new = self.get(session_id, at=before), self.get(session_id, at=after)
        start, removed_end, added_end = _changed_span(old.messages, new.messages)
        return Diff(
            start=start, removed=old.messages[start:removed_end], added=new.messages[start:added_end],
            from_revision=old.revision, to_revision=new.revision,
        )

    def sessions(self) -> list[SessionInfo]:
        """Every session in the store, oldest first (read from a listing table
        kept in the same transaction as each write, so it is never stale)."""
        parse = datetime.fromisoformat
        return [
            SessionInfo(
                id=row.session_id, title=row.title, created_at=parse(row.created_at),
                updated_at=parse(row.updated_at), message_count=row.message_count,
                revision=row.revision, version=row.version,
            )
            for row in self._backend.session_rows()
        ]

    def verify(self, session_id: str) -> Session:
        """Audit one session: replay its whole history from scratch, re-hashing
        every revision, and check every snapshot and the cached head against
        that replay. Returns the verified head; raises :class:`CorruptStore`
        on any disagreement."""
        records = self._backend.read(session_id)
        if not records:
            raise SessionNotFound(session_id)
        states: list[Session] = []
        state: Session | None = None
        for version, event in self._decoded(session_id, records):
            if isinstance(event, SessionForked):
                state = forked(session_id, event, self._source_state(session_id, event, 0))
            else:
                state = evolve(state, session_id, version, event)
            states.append(state)
        assert state is not None
        for stored in self._backend.snapshots(session_id):
            if not 1 <= stored.version <= len(states) or (
                decode_snapshot(session_id, stored.state) != Snapshot.of(states[stored.version - 1])
            ):
                raise CorruptStore(
                    f"session {session_id!r}: the snapshot at version {stored.version} differs from replay"
                )
        with self._lock:
            head = self._head(session_id)
        if _observable(head) != _observable(state):
            raise CorruptStore(f"session {session_id!r}: the loaded head differs from a full replay")
        return state

    # -- internals --------------------------------------------------------

    def _decoded(self, session_id: str, records: Sequence[Record]) -> Iterator[tuple[int, Event]]:
        return iter(decode_events(session_id, records))

    def _load(
        self, session_id: str, upto: int | None = None, *, use_snapshot: bool = True, depth: int = 0
    ) -> Session:
        """Rebuild a state from the log. A snapshot at or before ``upto`` lets
        the events it covers be folded without re-hashing; the result is
        cross-checked against the snapshot, then the rest is verified. A fork
        starts from its source's state at the fork point (loaded the same way)."""
        records = self._backend.read(session_id, upto=upto)
        if not records:
            raise SessionNotFound(session_id)
        events = decode_events(session_id, records)
        initial: Session | None = None
        first = events[0][1]
        if isinstance(first, SessionForked):
            initial = forked(session_id, first, self._source_state(session_id, first, depth))
            events = events[1:]
        use_snapshot = use_snapshot and self._snapshot_interval is not None
        stored = self._backend.snapshot(session_id, upto=upto) if use_snapshot else None
        if stored is None:
            state = fold(session_id, events, start=initial)
        else:
            snapshot = decode_snapshot(session_id, stored.state)
            covered = snapshot.version - (1 if initial is not None else 0)
            prefix = fold(session_id, events[:covered], start=initial, verify=False)
            if prefix is None or Snapshot.of(prefix) != snapshot:
                raise CorruptStore(
                    f"session {session_id!r}: the snapshot at version {snapshot.version} does not match the log"
                )
            state = fold(session_id, events[covered:], start=prefix)
        assert state is not None
        return state

    def _source_state(self, session_id: str, event: SessionForked, depth: int) -> Session:
        """The source of a fork as of the fork point: the cached head if it is
        that version, else rebuilt from the source's log."""
        if depth > _MAX_FORK_DEPTH:
            raise CorruptStore(f"session {session_id!r}: fork chain deeper than {_MAX_FORK_DEPTH}; is it a cycle?")
        cached = self._cache.get(event.source)
        if cached is not None and cached.version == event.source_version:
            return cached
        try:
            source = self._load(event.source, upto=event.source_version, depth=depth + 1)
        except SessionNotFound:
            raise CorruptStore(f"session {session_id!r} is a fork of {event.source!r}, which is missing") from None
        if source.version != event.source_version:
            raise CorruptStore(
                f"session {session_id!r} forks {event.source!r} at version {event.source_version}, "
                f"which has only {source.version} versions"
            )
        return source

    def _remember(self, state: Session) -> Session:
        cache = self._cache
        cache[state.id] = state
        cache.move_to_end(state.id)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return state

    def _head(self, session_id: str) -> Session:
        """The newest state, caught up with what other writers stored."""
        if not isinstance(session_id, str):
            raise InvalidArgument(f"session id must be a str, got {type(session_id).__name__}")
        state = self._cache.get(session_id)
        if state is None:
            return self._remember(self._load(session_id))
        newer = self._backend.read(session_id, after=state.version)
        if newer:
            caught_up = fold(session_id, self._decoded(session_id, newer), start=state)
            assert caught_up is not None
            state = caught_up
        return self._remember(state)

    def _head_for_write(self, session_id: str, expected: tuple[bytes, str] | None) -> Session:
        """The state to write on. Uses the cache without a round trip; a stale
        cache is caught by the version check when the write is stored."""
        if not isinstance(session_id, str):
            raise InvalidArgument(f"session id must be a str, got {type(session_id).__name__}")
        state = self._cache.get(session_id) or self._remember(self._load(session_id))
        if expected is not None and expected[0] != state._revision_bytes:
            state = self._head(session_id)  # the cache may be behind another writer
            if expected[0] != state._revision_bytes:
                raise RevisionConflict(session_id, expected[1], state.revision)
        return state

    def _commit(
        self,
        session_id: str,
        state: Session | None,
        events: list[Event],
        *,
        first: Session | None = None,
        known: Mapping[int, Sequence[bytes]] | None = None,
    ) -> Session:
        """Store ``events`` after ``state`` in one transaction and cache the
        result. ``first``: the state after ``events[0]``, for a fork's first
        event, whose state comes from its source rather than from ``state``."""
        version = state.version if state is not None else 0
        records, numbered = [], []
        for event in events:
            version += 1
            records.append(Record(version, *encode_event(event)))
            numbered.append((version, event))
        if first is not None:
            new_state = fold(session_id, numbered[1:], start=first, verify=False, known=known)
        else:
            new_state = fold(session_id, numbered, start=state, verify=False, known=known)
        assert new_state is not None
        updated = new_state.updated_at.isoformat()
        created = updated if new_state.created_at == new_state.updated_at else new_state.created_at.isoformat()
        row = SessionRow(
            session_id, new_state.title, created, updated, len(new_state.messages), new_state.revision,
            new_state.version,
        )
        snapshot = None
        interval = self._snapshot_interval
        if interval is not None and new_state.version // interval > (state.version if state else 0) // interval:
            snapshot = StoredSnapshot(new_state.version, encode_snapshot(new_state))
        try:
            self._backend.append(session_id, records, row, snapshot)
        except ConcurrentWriteError:
            self._cache.pop(session_id, None)  # reload on the next call, so a retry succeeds
            raise
        return self._remember(new_state)

    def _state_at(self, session_id: str, version: int, *, use_snapshot: bool = True) -> Session:
        return self._load(session_id, upto=version, use_snapshot=use_snapshot)

    def _last_version_with_revision(self, session_id: str, revision: str, head_version: int) -> int:
        found = 0
        current = EMPTY_REVISION
        for version, event in self._decoded(session_id, self._backend.read(session_id, upto=head_version)):
            if isinstance(event, (MessagesAppended, MessagesRewritten, SessionForked)):
                current = event.revision
            if current == revision:
                found = version
        if not found:
            raise RevisionNotFound(f"session {session_id!r} never reached revision {revision}")
        return found

    def _last_version_at_time(self, session_id: str, at: datetime, head: Session) -> int:
        if at >= head.updated_at:
            return head.version
        found = 0
        for version, event in self._decoded(session_id, self._backend.read(session_id, upto=head.version)):
            if event.at > at:
                break
            found = version
        if not found:
            raise VersionNotFound(f"session {session_id!r} did not exist yet at {at.isoformat()}")
        return found


def _new_session_id(session_id: object) -> str:
    if session_id is None:
        return str(uuid.uuid4())
    if not (isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID and session_id.isprintable()):
        raise InvalidArgument(f"a session id must be 1-{_MAX_ID} printable characters, got {session_id!r}")
    return session_id


def _index(index: object) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise InvalidForkPoint(f"a message index must be an int, got {index!r}")
    return index


def _replacing(original: Message, index: int, replacement: Message | ReplaceBlock) -> Message:
    """The message that replaces ``original`` in ``fork_replacing``, with a new id."""
    if isinstance(replacement, Message):
        if replacement.role != original.role:
            raise ReplacementMismatch(
                f"message {index} is a {original.role} message; it cannot be replaced by a {replacement.role} message"
            )
        return _replace(replacement, id=_message_id())
    if not isinstance(replacement.index, int) or not 0 <= replacement.index < len(original.blocks):
        raise ReplacementMismatch(
            f"message {index} has {len(original.blocks)} blocks; there is no block {replacement.index!r} to replace"
        )
    blocks = list(original.blocks)
    blocks[replacement.index] = replacement.block
    try:
        return Message(role=original.role, blocks=tuple(blocks), id=_message_id(),
                       provider_item_id=original.provider_item_id)
    except InvalidMessage as exc:
        raise ReplacementMismatch(f"block {replacement.index} of message {index}: {exc}") from None


def _changed_span(old: Sequence[Message], new: Sequence[Message]) -> tuple[int, int, int]:
    """``(start, old_end, new_end)``: ``old[start:old_end]`` became ``new[start:new_end]``."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and (old[start] is new[start] or old[start] == new[start]):
        start += 1
    suffix = 0
    while suffix < limit - start and (old[-1 - suffix] is new[-1 - suffix] or old[-1 - suffix] == new[-1 - suffix]):
        suffix += 1
    return start, len(old) - suffix, len(new) - suffix


def _commit_of(event: MessagesRewritten, version: int, count_after: int) -> Commit:
    return Commit(
        version=version, generation=event.generation, parent_revision=event.parent_revision,
        revision=event.revision, start=event.start, end=event.end, removed_digest=event.removed_digest,
        replacement_digest=event.replacement_digest, count_before=event.count_before, count_after=count_after,
        reason=Reason(kind=event.reason, note=event.note), actor=event.actor, at=event.at,
    )


def _find(state: Session, provider_item_id: str) -> int | None:
    """The index of the message that holds provider item ``provider_item_id``."""
    messages = state.messages
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].provider_item_id == provider_item_id:
            return index
    return None


def _with_blocks(message: Message, blocks: list[Block]) -> Message:
    return Message(role=message.role, blocks=tuple(blocks), provider_item_id=message.provider_item_id,
                   incomplete=message.incomplete)


_ORDER = ("materialised", "staged", "discarded", "duplicate", "ignored", "rejected")


def _all_duplicates(state: RealtimeState, translated: list[list[RealtimeEvent] | tuple[str, str]]) -> bool:
    events = [event for item in translated if isinstance(item, list) for event in item]
    return bool(events) and all(is_duplicate(state, event) for event in events)


def _combined(statuses: list[str]) -> str:
    """One status for a raw event that meant several canonical events."""
    if not statuses:
        return "ignored"
    return min(statuses, key=_ORDER.index)


def _observable(state: Session) -> tuple[Any, ...]:
    return (
        state.id, state.version, state.revision, list(state.messages), state.usage,
        dict(state.metadata), state.title, state.created_at, state.updated_at,
    )


def _now(state: Session | None = None) -> datetime:
    """Now, but never before the session's last event: times stay monotonic
    per session, which time travel by datetime relies on."""
    now = datetime.now(UTC)
    return now if state is None or now >= state.updated_at else state.updated_at


_replace = msgspec.structs.replace


def _stamped(messages: Iterable[object], where: str) -> list[Message]:
    """The messages, each with an id (a fresh one where it had none)."""
    stamped = []
    for index, message in enumerate(messages):
        if not isinstance(message, Message):
            raise InvalidMessage(
                f"{where} message {index + 1} is a {type(message).__name__}, not a Message; "
                "build one with Message.user(...), Message.assistant(...), ..."
            )
        stamped.append(message if message.id is not None else _replace(message, id=_message_id()))
    return stamped


def _message_id() -> str:
    return "msg_" + os.urandom(10).hex()


def _check_actor(actor: object) -> None:
    _check_optional_str(actor, "actor")


def _check_title(title: object) -> None:
    _check_optional_str(title, "title")
    if isinstance(title, str) and "\x00" in title:
        # The listing table keeps titles as text, which PostgreSQL cannot hold
        # with NUL characters; refuse them on every backend alike.
        raise InvalidArgument("title must not contain NUL characters (\\x00)")


def _check_optional_str(value: object, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str or None, got {type(value).__name__}")


_JSON = msgspec.json.Encoder()


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, got {type(metadata).__name__}")
    checked = dict(metadata)
    for key in checked:
        if not isinstance(key, str):
            raise InvalidArgument(f"metadata keys must be str, got {key!r}")
    try:
        # Round-trip so that what is kept is exactly what a reload gives back.
        result: dict[str, Any] = msgspec.json.decode(_JSON.encode(checked))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidArgument(f"metadata must be JSON (str, int, float, bool, None, list, dict): {exc}") from None
    return result


def _clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _gist(message: Message) -> str:
    """A few words about a message for a timeline line."""
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
