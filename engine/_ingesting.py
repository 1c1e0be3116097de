"""Realtime ingestion: raw provider events through the pure reducer into
the session's log, in one transaction per call."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from engine._base import _Base, _check_actor, _now, _stamped, check_session_id
from engine.content import Block, Message, Transcript, shown
from engine.errors import (
    InvalidArgument,
    NoOpRewrite,
)
from engine.events import (
    Event,
    MessagesAppended,
    RealtimePendingResolved,
    RealtimeRecorded,
    UsageRecorded,
)
from engine.realtime.events import RealtimeEvent
from engine.realtime.providers import Adapter, Ignored, Rejected, adapter_for, is_trusted
from engine.realtime.reducer import (
    AppendMessage,
    Change,
    InsertMessage,
    OutOfBandMessage,
    RealtimeState,
    RecordUsage,
    RemoveItem,
    ReplaceItem,
    Reseeded,
    TruncateItem,
    duplicate_reason,
)
from engine.realtime.reducer import apply as realtime_apply
from engine.realtime.reducer import resolve as realtime_resolve
from engine.revisions import (
    Reason,
    chain,
    format_revision,
)
from engine.transcript import Session

_CANONICAL_TYPES = tuple(RealtimeEvent.__args__)  # isinstance() needs the union's members
_CANONICAL_ENCODER = msgspec.json.Encoder()
_CANONICAL_DECODER: msgspec.json.Decoder[RealtimeEvent] = msgspec.json.Decoder(RealtimeEvent)


class IngestOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one ingested event did: ``status`` is ``materialised``,
    ``staged``, ``duplicate``, ``discarded``, ``rejected`` or ``ignored``;
    ``messages`` are the messages it added; ``out_of_band`` what an
    out-of-band response that ended with this event produced (kept in the
    audit log, never in the transcript); ``version`` is the session's version
    after it (unchanged unless something was stored)."""

    status: str
    reason: str | None = None
    messages: tuple[Message, ...] = ()
    out_of_band: tuple[Message, ...] = ()
    version: int


class OutOfBandResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What one out-of-band response (OpenAI ``conversation: "none"``)
    produced: its ``messages``, never part of the transcript, and the event
    ``version`` that ended it."""

    response_id: str
    status: str
    messages: tuple[Message, ...]
    version: int


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """What ingestion is waiting for: staged item ids (first seen first), each
    with what it waits on, and the response ids still in flight."""

    items: tuple[tuple[str, str], ...]
    responses: tuple[str, ...]


class _Ingesting(_Base):
    """Realtime ingestion, mixed into ``Transcripts``."""

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
        check_session_id(session_id)
        _check_actor(actor)
        adapter = None if provider is None else adapter_for(provider)
        if type(events) not in (list, tuple) and (
            isinstance(events, (str, bytes, dict)) or not isinstance(events, Iterable)
        ):
            raise InvalidArgument(
                f"ingest_many() takes an iterable of events (a list), got {type(events).__name__}; "
                "use ingest() for one event"
            )
        events = list(events)
        if provider is None:
            for index, raw in enumerate(events):
                if not isinstance(raw, _CANONICAL_TYPES):
                    raise InvalidArgument(
                        f"event {index} is a {type(raw).__name__}, not a canonical realtime event: pass "
                        "provider='openai' to ingest raw provider events; nothing was ingested"
                    )
        translated = [self._canonical(raw, adapter) for raw in events]
        with self._lock:
            known = self._realtime.get(session_id)
            redelivered = _duplicate_reasons(known[1], translated) if known is not None else None
            if known is not None and redelivered is not None:
                # Redelivery needs no I/O: what this store already accepted is
                # still accepted in any newer state of the session, whose
                # version is the newest this store has seen (its own writes
                # since the ingestion included).
                cached = self._cache.get(session_id)
                version = max(known[0], cached.version if cached is not None else 0)
                found = iter(redelivered)
                return [
                    IngestOutcome(status=c[0], reason=c[1], version=version)
                    if isinstance(c, tuple)
                    else IngestOutcome(status="duplicate", reason="; ".join(next(found) for _ in c), version=version)
                    for c in translated
                ]
            head = self._head(session_id)
            state = self._realtime_state(head).copy()
            working = head
            to_store: list[Event] = []
            results: list[tuple[str, str | None, list[Message], list[Message]]] = []
            for canonical in translated:
                if isinstance(canonical, tuple):
                    results.append((canonical[0], canonical[1], [], []))
                    continue
                statuses: list[str] = []
                reasons: list[str] = []
                added: list[Message] = []
                outside: list[Message] = []
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
                        if isinstance(change, OutOfBandMessage):
                            outside.append(change.message)
                            continue
                        working = self._apply_change(session_id, working, change, actor, to_store, added)
                results.append((_combined(statuses), "; ".join(reasons) or None, added, outside))
            if to_store:
                self._commit(session_id, head, to_store, result=working)
                self._realtime[session_id] = (working.version, state)
            final = working.version if to_store else head.version
            return [
                IngestOutcome(
                    status=status, reason=reason, messages=tuple(added), out_of_band=tuple(outside), version=final
                )
                for status, reason, added, outside in results
            ]

    def pending(self, session_id: str) -> Pending:
        """Items ingestion is holding back, and in-flight response ids (to fan
        out an interruption with ``AssistantTurnInterrupted``)."""
        with self._lock:
            state = self._realtime_state(self._head(session_id))
        waiting = tuple((item.id, state.waiting_for(item)) for item in state.pending_items())
        return Pending(items=waiting, responses=tuple(state.in_flight_responses()))

    def out_of_band(self, session_id: str) -> list[OutOfBandResponse]:
        """What the session's out-of-band responses produced, in the order they
        ended: rebuilt from the recorded realtime events (the audit log), since
        none of it is part of the transcript."""
        with self._lock:
            head = self._head(session_id)
            events = list(self._decoded(head.id, self._records(head.id, head.version)))
        state = RealtimeState()
        found: list[OutOfBandResponse] = []
        for version, event in events:
            if isinstance(event, RealtimeRecorded):
                changes = realtime_apply(state, event.event).changes
            elif isinstance(event, RealtimePendingResolved):
                changes = tuple(realtime_resolve(state, "place" if event.policy == "place" else "drop"))
            else:
                continue
            for change in changes:
                if isinstance(change, OutOfBandMessage):
                    found.append(
                        OutOfBandResponse(
                            response_id=change.response_id,
                            status=change.status,
                            messages=(change.message,),
                            version=version,
                        )
                    )
        return found

    def resolve_pending(self, session_id: str, policy: str = "place", *, actor: str | None = None) -> IngestOutcome:
        """Unblock ingestion: ``place`` puts every waiting item in its chain, or
        at the end in announcement order where its chain is broken (unfinished
        responses become incomplete messages, user items go without text),
        ``drop`` discards them. Recorded as an audited event; with nothing
        pending, nothing is stored (status ``ignored``)."""
        if policy not in ("place", "drop"):
            raise InvalidArgument(f"policy must be 'place' or 'drop', got {shown(policy)}")
        _check_actor(actor)
        with self._lock:
            head = self._head(session_id)
            state = self._realtime_state(head).copy()
            if not state.items.live and not state.responses.live:
                return IngestOutcome(
                    status="ignored", reason="nothing is pending; nothing was stored", version=head.version
                )
            changes = realtime_resolve(state, "place" if policy == "place" else "drop")
            to_store: list[Event] = []
            added: list[Message] = []
            working = self._stage(
                session_id, head, RealtimePendingResolved(at=_now(head), actor=actor, policy=policy), to_store
            )
            for change in changes:
                working = self._apply_change(session_id, working, change, actor, to_store, added)
            self._commit(session_id, head, to_store, result=working)
            self._realtime[session_id] = (working.version, state)
            return IngestOutcome(
                status="materialised" if added else "discarded",
                reason=f"pending items resolved ({policy})",
                messages=tuple(added),
                version=working.version,
            )

    def _canonical(self, raw: object, adapter: Adapter | None) -> list[RealtimeEvent] | tuple[str, str]:
        if isinstance(raw, _CANONICAL_TYPES):
            # Structs are not checked when built: a caller's event is checked
            # the way the store will read it back, so what is stored always loads.
            try:
                checked = _CANONICAL_DECODER.decode(_CANONICAL_ENCODER.encode(raw))
            except (
                msgspec.ValidationError,
                msgspec.DecodeError,
                TypeError,
                ValueError,
                OverflowError,
                RecursionError,
            ) as exc:
                return ("rejected", f"invalid {type(raw).__name__}: {shown(str(exc))}")
            if checked != raw:  # e.g. a float where a str belongs would come back as something else
                return ("rejected", f"invalid {type(raw).__name__}: a field would not come back as given")
            if checked.event_id is not None and (not checked.event_id or "\x00" in checked.event_id):
                # Adapters derive "<id>\x00<n>" ids for the events one raw event means.
                return ("rejected", f"invalid {type(raw).__name__}: an event id is blank or holds NUL")
            return [checked]
        assert adapter is not None  # raw input without a provider was refused up front
        translated = adapter(raw)
        if isinstance(translated, Rejected):
            return ("rejected", translated.reason)
        if isinstance(translated, Ignored):
            return ("ignored", translated.reason)
        if is_trusted(adapter):
            return translated
        if not isinstance(translated, list):
            return ("rejected", f"the provider adapter returned a {type(translated).__name__}, not a list of events")
        accepted: list[RealtimeEvent] = []
        for event in translated:  # a caller's adapter is held to what canonical input is
            one = (
                self._canonical(event, None)
                if isinstance(event, _CANONICAL_TYPES)
                else ("rejected", f"the provider adapter returned a {type(event).__name__}, not a canonical event")
            )
            if isinstance(one, tuple):
                return one
            accepted += one
        return accepted

    def _realtime_state(self, head: Session) -> RealtimeState:
        """The session's ingestion state, rebuilt from its recorded realtime
        events when the cached one is not for this version."""
        cached = self._realtime.get(head.id)
        if cached is not None and cached[0] == head.version:
            return cached[1]
        state = RealtimeState()
        for _, event in self._decoded(head.id, self._records(head.id, head.version)):
            if isinstance(event, RealtimeRecorded):
                realtime_apply(state, event.event)
            elif isinstance(event, RealtimePendingResolved):
                realtime_resolve(state, "place" if event.policy == "place" else "drop")
        self._realtime[head.id] = (head.version, state)
        return state

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
        if isinstance(change, (OutOfBandMessage, Reseeded)):
            return state  # reported by the outcome, never part of the transcript
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
            added.append(message)
            # An anchor rewritten away (by a caller's rewrite) leaves no place
            # to insert after: the message goes at the end rather than nowhere.
            start = len(state.messages) if at is None else (at if change.after is None else at + 1)
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
            return self._realtime_rewrite(
                session_id, state, index, index + 1, replacement, "provider_deleted", actor, to_store
            )
        if isinstance(change, ReplaceItem):
            new_blocks = blocks[: change.offset] + list(change.blocks) + blocks[change.offset + change.count :]
            return self._realtime_rewrite(
                session_id, state, index, index + 1, [_with_blocks(message, new_blocks)], change.reason, actor, to_store
            )
        assert isinstance(change, TruncateItem)
        cut = [
            msgspec.structs.replace(
                block, truncated_at_ms=change.audio_end_ms, text=change.text if change.text is not None else block.text
            )
            if isinstance(block, Transcript)
            else block
            for block in segment
        ]
        new_blocks = blocks[: change.offset] + cut + blocks[change.offset + change.count :]
        return self._realtime_rewrite(
            session_id, state, index, index + 1, [_with_blocks(message, new_blocks)], "truncation", actor, to_store
        )

    def _realtime_rewrite(
        self,
        session_id: str,
        state: Session,
        start: int,
        end: int,
        replacement: list[Message],
        kind: str,
        actor: str | None,
        to_store: list[Event],
    ) -> Session:
        stamped = _stamped(replacement, "ingest")
        try:
            event = self._rewrite_event(state, start, end, stamped, Reason(kind=kind), actor, check=False)
        except NoOpRewrite:
            return state
        return self._stage(session_id, state, event, to_store)


def _find(state: Session, provider_item_id: str) -> int | None:
    """The index of the message that holds provider item ``provider_item_id``."""
    messages = state.messages
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].provider_item_id == provider_item_id:
            return index
    return None


def _with_blocks(message: Message, blocks: list[Block]) -> Message:
    return Message(
        role=message.role,
        blocks=tuple(blocks),
        provider_item_id=message.provider_item_id,
        incomplete=message.incomplete,
    )


_ORDER = ("materialised", "staged", "discarded", "duplicate", "ignored", "rejected")


def _duplicate_reasons(
    state: RealtimeState, translated: list[list[RealtimeEvent] | tuple[str, str]]
) -> list[str] | None:
    """Why each canonical event is a duplicate, in order, if every one is (else ``None``)."""
    reasons = []
    for item in translated:
        if isinstance(item, tuple):
            continue
        for event in item:
            reason = duplicate_reason(state, event)
            if reason is None:
                return None
            reasons.append(reason)
    return reasons or None


def _combined(statuses: list[str]) -> str:
    """One status for a raw event that meant several canonical events."""
    if not statuses:
        return "ignored"
    return min(statuses, key=_ORDER.index)
