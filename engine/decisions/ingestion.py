"""Realtime ingestion decided: provider input checked and translated to
canonical events, the reducer's changes turned into transcript events, and
what ingestion waits for. Pure: the facade loads the head and the
ingestion state, and stores what is decided here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from engine.decisions._checks import at, check_items_free, check_usage_added, stamped
from engine.decisions.transcript import rewrite_event
from engine.errors import InvalidArgument, NoOpRewrite
from engine.realtime.providers import Adapter, Ignored, Rejected, is_trusted
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
    UnansweredOutput,
    duplicate_reason,
    reused_id,
)
from engine.realtime.reducer import apply as realtime_apply
from engine.realtime.reducer import resolve as realtime_resolve
from engine.state.content import Block, Message, ToolResult, Transcript, shown
from engine.state.events import (
    Event,
    MessagesAppended,
    MessagesErased,
    RealtimePendingResolved,
    RealtimeRecorded,
    UsageRecorded,
)
from engine.state.realtime_events import ERASED_TEXT, RealtimeEvent, erased_text, scrubbed
from engine.state.revisions import Reason, chain, format_revision
from engine.state.transcript import Session, evolve, revision_bytes

__all__ = [
    "IngestDecision",
    "IngestOutcome",
    "OutOfBandResponse",
    "Pending",
    "Translated",
    "duplicate_reasons",
    "ingest",
    "out_of_band",
    "pending",
    "realtime_state",
    "resolve",
    "translate",
]

_CANONICAL_TYPES = tuple(RealtimeEvent.__args__)  # isinstance() needs the union's members
_CANONICAL_ENCODER = msgspec.json.Encoder()
_CANONICAL_DECODER: msgspec.json.Decoder[RealtimeEvent] = msgspec.json.Decoder(RealtimeEvent)

#: One input event, translated: its canonical events, or ``(status, reason)``
#: when it was rejected or ignored before reaching the reducer.
Translated = list[RealtimeEvent] | tuple[str, str]


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


class IngestDecision(NamedTuple):
    """The events to store, the session and ingestion states after them, and
    one outcome per input event; ``sources``: for each event to store, the
    index of the input event it comes from. ``emptied``: items whose earlier
    records hold content that turned out to be an erased message's (an
    output that waited, then joined an erased message; an item a new
    connection re-sent in place of an erased one): the facade erases them
    there before it stores these events."""

    events: tuple[Event, ...]
    state: Session
    realtime: RealtimeState
    outcomes: list[IngestOutcome]
    sources: tuple[int, ...]
    emptied: tuple[str, ...] = ()


class _Unstorable(Exception):
    """Input event ``index`` was accepted, but what it changes cannot be stored."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index, self.reason = index, reason


def translate(events: Sequence[object], provider: str | None, adapter: Adapter | None) -> list[Translated]:
    """Each input event as canonical events. Canonical input is checked the
    way the store will read it back; raw input goes through ``adapter``."""
    if provider is None:
        for index, raw in enumerate(events):
            if not isinstance(raw, _CANONICAL_TYPES):
                raise InvalidArgument(
                    f"event {index} is a {type(raw).__name__}, not a canonical realtime event: pass "
                    "provider='openai' to ingest raw provider events; nothing was ingested"
                )
    return [_unmarked(_canonical(raw, adapter)) for raw in events]


#: The fields of each canonical event that hold text, which could be the mark.
_TEXT_FIELDS = {
    kind: tuple(name for name in ("text", "delta", "output", "ref") if name in kind.__struct_fields__)
    for kind in _CANONICAL_TYPES
}


def _unmarked(translated: Translated) -> Translated:
    """Refused: input whose text is the mark an erasure leaves (``ERASED_TEXT``)
    would read as erased content, which no message shows."""
    if isinstance(translated, tuple):
        return translated
    for event in translated:
        for name in _TEXT_FIELDS[type(event)]:
            value = getattr(event, name)
            if value and ERASED_TEXT[0] in value and erased_text(value):  # most texts hold no "⟨": one scan
                return (
                    "rejected",
                    f"{type(event).__name__}.{name} is {ERASED_TEXT!r}, the mark an erasure leaves in the records it "
                    "empties: it would read as erased content",
                )
    return translated


def _canonical(raw: object, adapter: Adapter | None) -> Translated:
    if isinstance(raw, _CANONICAL_TYPES):
        # Structs are not checked when built: a caller's event is checked the
        # way the store will read it back, so what is stored always loads.
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
            _canonical(event, None)
            if isinstance(event, _CANONICAL_TYPES)
            else ("rejected", f"the provider adapter returned a {type(event).__name__}, not a canonical event")
        )
        if isinstance(one, tuple):
            return one
        accepted += one
    return accepted


def ingest(
    head: Session,
    realtime: RealtimeState,
    translated: Sequence[Translated],
    *,
    actor: str | None,
    provider: str | None,
    now: datetime,
) -> IngestDecision:
    """Run the translated events through the reducer (on a copy of
    ``realtime``) and turn what it accepts into events on ``head``. An event
    whose changes cannot be stored (a usage total past what a store holds)
    is ``rejected``, and the others are decided again without it: one bad
    event never costs the rest of a batch."""
    while True:
        try:
            return _ingested(head, realtime, translated, actor=actor, provider=provider, now=now)
        except _Unstorable as unstorable:
            translated = reject(translated, unstorable.index, unstorable.reason)


def reject(translated: Sequence[Translated], index: int, reason: str) -> list[Translated]:
    """``translated`` with input event ``index`` rejected for ``reason``."""
    changed = list(translated)
    changed[index] = ("rejected", reason)
    return changed


def _ingested(
    head: Session,
    realtime: RealtimeState,
    translated: Sequence[Translated],
    *,
    actor: str | None,
    provider: str | None,
    now: datetime,
) -> IngestDecision:
    state = realtime.copy()
    working = head
    to_store: list[Event] = []
    sources: list[int] = []
    results: list[tuple[str, str | None, list[Message], list[Message]]] = []
    bound: dict[str, None] = {}  # items found to be an erased message's, in order
    for index, canonical in enumerate(translated):
        sources.extend([index - 1] * (len(to_store) - len(sources)))  # what the input event before staged
        if isinstance(canonical, tuple):
            results.append((canonical[0], canonical[1], [], []))
            continue
        # What an erased message's item gets later is kept as the erasure
        # left its earlier events: without its content.
        about = [_erased_item(state, working, part) for part in canonical]
        erased = [ident for ident in about if ident is not None]
        if erased:
            canonical = [
                part if ident is None else scrubbed(part) for part, ident in zip(canonical, about, strict=True)
            ]
        reused = reused_id(state, canonical)
        if reused is not None:  # another raw event under an accepted one's id: nothing of it is kept
            results.append(("rejected", reused, [], []))
            continue
        statuses: list[str] = []
        # The reducer's reason for an erased item's event would speak of
        # content it never saw.
        reasons: list[str] = list(dict.fromkeys(erased))
        added: list[Message] = []
        outside: list[Message] = []
        for item in canonical:
            outcome = realtime_apply(state, item)
            statuses.append(outcome.status)
            said = outcome.reason if not erased else None
            if said and said not in reasons:  # one raw event's parts often say the same
                reasons.append(said)
            if not outcome.accepted:
                continue
            into_erased = [anchor for change in outcome.changes if (anchor := _erased_anchor(working, change))]
            if into_erased or (state.erased and any(isinstance(change, Reseeded) for change in outcome.changes)):
                bound.update(dict.fromkeys(_erased_bound(state, working, outcome.changes)))
            if into_erased:
                # Content for an erased message (an output joining its
                # results, say) is kept as the erasure left the rest of it.
                item = scrubbed(item)
                if said in reasons:
                    reasons.remove(said)
                if not erased:  # an erasure's reason says it all
                    reasons.extend(r for r in (_ERASED.format(item=a) for a in into_erased) if r not in reasons)
            recorded = RealtimeRecorded(at=at(now, working), actor=actor, event=item, provider=provider)
            working = _stage(working, recorded, to_store)
            landed = refused = 0
            for change in outcome.changes:
                if isinstance(change, OutOfBandMessage):
                    outside.append(_out_of_band_message(change, state))
                    continue
                kept = _changed_since(working, change, state)
                if kept is not None:
                    _track(state, change)
                    refused += 1
                    if kept not in reasons and not erased:  # an erasure's reason says it all
                        reasons.append(kept)
                    continue
                landed += 1
                try:
                    working = _apply_change(working, change, actor, now, to_store, added, state)
                except InvalidArgument as exc:
                    raise _Unstorable(index, f"not stored: {str(exc).removesuffix('; nothing was written')}") from None
                _track(state, change)
            if refused and not landed and statuses[-1] == "materialised":
                statuses[-1] = "discarded"
                if said in reasons:  # it says what would have happened
                    reasons.remove(said)
        results.append((_combined(statuses), "; ".join(reasons) or None, added, outside))
    sources.extend([len(translated) - 1] * (len(to_store) - len(sources)))
    outcomes = [
        IngestOutcome(
            status=status, reason=reason, messages=tuple(added), out_of_band=tuple(outside), version=working.version
        )
        for status, reason, added, outside in results
    ]
    emptied = _without_bound_content(to_store, bound, realtime)
    return IngestDecision(tuple(to_store), working, state, outcomes, tuple(sources), emptied)


def resolve(
    head: Session, realtime: RealtimeState, policy: str, *, actor: str | None, now: datetime
) -> IngestDecision | None:
    """Unblock ingestion (``place`` or ``drop`` what waits); ``None`` when
    nothing is pending."""
    if policy not in ("place", "drop"):
        raise InvalidArgument(f"policy must be 'place' or 'drop', got {shown(policy)}")
    if not realtime.items.live and not realtime.responses.live:
        return None
    state = realtime.copy()
    changes = realtime_resolve(state, "place" if policy == "place" else "drop")
    to_store: list[Event] = []
    added: list[Message] = []
    working = _stage(head, RealtimePendingResolved(at=at(now, head), actor=actor, policy=policy), to_store)
    reasons = [f"pending items resolved ({policy})"]
    bound = dict.fromkeys(_erased_bound(state, working, changes))
    for change in changes:
        kept = _changed_since(working, change, state)
        if kept is None:
            working = _apply_change(working, change, actor, now, to_store, added, state)
        else:
            reasons.append(kept)
        _track(state, change)
    outcome = IngestOutcome(
        status="materialised" if added else "discarded",
        reason="; ".join(dict.fromkeys(reasons)),
        messages=tuple(added),
        version=working.version,
    )
    return IngestDecision(
        tuple(to_store), working, state, [outcome], (), _without_bound_content(to_store, bound, realtime)
    )


def realtime_state(
    events: Iterable[tuple[int, Event]], *, reported: list[tuple[int, OutOfBandMessage]] | None = None
) -> RealtimeState:
    """The ingestion state after a session's recorded realtime events;
    ``reported``, if given, collects what its out-of-band responses
    produced, each with the version of the event that ended it."""
    state = RealtimeState()
    for version, event in events:
        if isinstance(event, RealtimeRecorded):
            changes: Iterable[Change] = realtime_apply(state, event.event).changes
        elif isinstance(event, RealtimePendingResolved):
            changes = realtime_resolve(state, "place" if event.policy == "place" else "drop")
        elif isinstance(event, MessagesErased):
            # An erasure of an earlier build named no items: only the
            # transcript can say then which messages were erased.
            state.erased |= frozenset(event.items or (_SOME_ERASURE,))
            continue
        else:
            continue
        for change in changes:
            if reported is not None and isinstance(change, OutOfBandMessage):
                reported.append((version, change))
            _track(state, change)
    return state


def pending(state: RealtimeState) -> Pending:
    waiting = tuple((item.id, state.waiting_for(item)) for item in state.pending_items())
    return Pending(items=waiting, responses=tuple(state.in_flight_responses()))


def out_of_band(events: Iterable[tuple[int, Event]]) -> list[OutOfBandResponse]:
    """What the out-of-band responses of a session's recorded realtime events
    produced, in the order they ended."""
    reported: list[tuple[int, OutOfBandMessage]] = []
    state = realtime_state(events, reported=reported)
    return [
        OutOfBandResponse(
            response_id=change.response_id,
            status=change.status,
            messages=(_out_of_band_message(change, state),),
            version=version,
        )
        for version, change in reported
    ]


def _out_of_band_message(change: OutOfBandMessage, conversation: RealtimeState) -> Message:
    """What an out-of-band response produced; a placeholder once erased."""
    return change.message.erasure() if _all_erased(change.item_ids, conversation) else change.message


def duplicate_reasons(state: RealtimeState, translated: Sequence[Translated]) -> list[str] | None:
    """Why each canonical event is a duplicate, in order, if every one is (else ``None``)."""
    reasons = []
    for item in translated:
        if isinstance(item, tuple):
            continue
        if reused_id(state, item) is not None:
            return None  # not the same event again: the full path rejects it
        for event in item:
            reason = duplicate_reason(state, event)
            if reason is None:
                return None
            reasons.append(reason)
    return reasons or None


def _stage(state: Session, event: Event, to_store: list[Event]) -> Session:
    to_store.append(event)
    return evolve(state, state.id, state.version + 1, event, verify=False)


def _apply_change(
    state: Session,
    change: Change,
    actor: str | None,
    now: datetime,
    to_store: list[Event],
    added: list[Message],
    conversation: RealtimeState,
) -> Session:
    """Turn one reducer change into events on ``state`` (not yet stored);
    ``conversation``: the ingestion state the change comes from."""
    if isinstance(change, (OutOfBandMessage, Reseeded, UnansweredOutput)):
        return state  # reported by the outcome, never part of the transcript
    if isinstance(change, RecordUsage):
        check_usage_added(state.usage, change.usage)
        usage = UsageRecorded(at=at(now, state), actor=actor, usage=change.usage, response_id=change.response_id)
        return _stage(state, usage, to_store)
    if isinstance(change, (AppendMessage, InsertMessage)) and _all_erased(change.item_ids, conversation):
        # Erased before it became a message: it takes its place as a placeholder.
        change = msgspec.structs.replace(change, message=change.message.erasure())
    if isinstance(change, AppendMessage):
        [message] = stamped([change.message], "ingest")
        check_items_free((message,), state.messages.position_of, state.messages, "ingest")
        revision = format_revision(chain(revision_bytes(state), (message,)))
        added.append(message)
        appended = MessagesAppended(at=at(now, state), actor=actor, messages=(message,), revision=revision)
        return _stage(state, appended, to_store)
    if isinstance(change, InsertMessage):
        [message] = stamped([change.message], "ingest")
        check_items_free((message,), state.messages.position_of, state.messages, "ingest")
        found = _conversation_start(state, conversation) if change.after is None else _find(state, change.after)
        added.append(message)
        # An anchor rewritten away (by a caller's rewrite) leaves no place to
        # insert after: the message goes at the end rather than nowhere.
        start = len(state.messages) if found is None else (found if change.after is None else found + 1)
        return _rewrite(state, start, start, [message], "realtime_order", actor, now, to_store)
    index = _find(state, change.anchor)
    if index is None:  # never so: _changed_since refuses it first
        return state
    message = state.messages[index]
    written = conversation.written.get(change.anchor)
    if written is not None and _joins_at_end(change, written, change.offset):
        change = msgspec.structs.replace(change, offset=len(message.blocks))  # the caller may have changed its length
    blocks = _changed_blocks(message.blocks, change)
    if isinstance(change, RemoveItem):
        replacement = [_with_blocks(message, blocks)] if blocks else []
        return _rewrite(state, index, index + 1, replacement, "provider_deleted", actor, now, to_store)
    if isinstance(change, ReplaceItem):
        replaced = _with_blocks(message, blocks, incomplete=message.incomplete and not change.complete)
        return _rewrite(state, index, index + 1, [replaced], change.reason, actor, now, to_store)
    return _rewrite(state, index, index + 1, [_with_blocks(message, blocks)], "truncation", actor, now, to_store)


def _all_erased(items: Sequence[str], conversation: RealtimeState) -> bool:
    erased = conversation.erased
    return bool(erased) and bool(items) and all(item in erased for item in items)


_ItemChange = ReplaceItem | RemoveItem | TruncateItem


def _changed_blocks(blocks: tuple[Block, ...], change: _ItemChange) -> tuple[Block, ...]:
    """``blocks``, a message's, as ``change`` leaves them."""
    start, end = change.offset, change.offset + change.count
    if isinstance(change, RemoveItem):
        return blocks[:start] + blocks[end:]
    if isinstance(change, ReplaceItem):
        return blocks[:start] + change.blocks + blocks[end:]
    cut = tuple(
        msgspec.structs.replace(
            block, truncated_at_ms=change.audio_end_ms, text=change.text if change.text is not None else block.text
        )
        if isinstance(block, Transcript)
        else block
        for block in blocks[start:end]
    )
    return blocks[:start] + cut + blocks[end:]


def _track(conversation: RealtimeState, change: Change) -> None:
    """Record what ``change`` gives its message in ``conversation.written``,
    whether or not it lands (so does a replay of the log), once it is
    applied."""
    written = conversation.written
    if isinstance(change, (AppendMessage, InsertMessage)):
        if change.message.provider_item_id is not None:
            written[change.message.provider_item_id] = change.message.blocks
    elif isinstance(change, (ReplaceItem, RemoveItem, TruncateItem)):
        blocks = written.get(change.anchor)
        if blocks is not None:
            written[change.anchor] = _changed_blocks(blocks, change)


def _erased_anchor(state: Session, change: Change) -> str | None:
    """The anchor of the message ``change`` is to, if that message was erased."""
    if not isinstance(change, (ReplaceItem, RemoveItem, TruncateItem)):
        return None
    index = _find(state, change.anchor)
    return change.anchor if index is not None and state.messages[index].erased is not None else None


def _changed_since(state: Session, change: Change, conversation: RealtimeState) -> str | None:
    """Why ``change``, to a message ingestion placed, is not applied: the
    message no longer holds what ingestion last gave it, so someone else
    (a caller's rewrite, or an erasure) changed it since, and that change
    stands. ``None``: it is applied."""
    if not isinstance(change, (ReplaceItem, RemoveItem, TruncateItem)):
        return None
    anchor, what = change.anchor, _SAYS.get(type(change), "this event's content")
    if isinstance(change, ReplaceItem) and change.reason == "late_transcription":
        what = "its late transcription"
    index = _find(state, anchor)
    if index is None:
        return f"no message holds item {anchor} any more (a rewrite took it out): {what} is not stored"
    message = state.messages[index]
    if message.erased is not None:
        return _ERASED.format(item=anchor)
    # The item's own blocks (those before a content part it adds too), and
    # the message's length (the offsets of the others): a caller's change to
    # another item of the message leaves this one's.
    written = conversation.written.get(anchor)
    start, end = change.offset, change.offset + change.count
    item = conversation.items.get(change.item_id)
    if item is not None and item.anchor == anchor:
        start = min(start, item.block_offset)
    joins = written is not None and _joins_at_end(change, written, start)
    if not joins and (
        written is None or len(message.blocks) != len(written) or message.blocks[start:end] != written[start:end]
    ):
        return (
            f"the message of item {anchor} was rewritten since ingestion placed it: the rewrite stands, and {what} "
            "is not stored in the transcript"
        )
    if isinstance(change, ReplaceItem):
        # A second result for a call its message answers already: no model
        # API takes two (and the store refuses such a message from a caller).
        kept = message.blocks[: change.offset] + message.blocks[change.offset + change.count :]
        answered = {block.tool_use_id for block in kept if isinstance(block, ToolResult)}
        again = [
            block.tool_use_id
            for block in change.blocks
            if isinstance(block, ToolResult) and block.tool_use_id in answered
        ]
        if again:
            return (
                f"call {again[0]} is answered already in the message of item {anchor}: a second result for it is "
                "not stored in the transcript"
            )
    return None


def _joins_at_end(change: Change, written: tuple[Block, ...], start: int) -> bool:
    """Whether ``change`` adds the blocks of an item new to the message after
    every block ingestion gave it (a tool result joining a message of
    results); not the message's own item getting its text late."""
    return (
        isinstance(change, ReplaceItem)
        and change.item_id != change.anchor
        and change.count == 0
        and start == change.offset == len(written)
    )


#: In ``RealtimeState.erased``: an erasure that named no items took place.
_SOME_ERASURE = ""
_ERASED = "the message of item {item} was erased: the content of this event is not stored"
_EMPTIED = "an erasure emptied {item}: the content of this event is not stored"
_SAYS = {ReplaceItem: "its later content", RemoveItem: "its deletion", TruncateItem: "its truncation"}


def _erased_item(conversation: RealtimeState, state: Session, event: RealtimeEvent) -> str | None:
    """Why ``event`` is stored without its content, if it concerns an item
    an erasure emptied, or an item whose message was erased."""
    erased = conversation.erased
    if not erased:  # no erasure in this session: nothing to look up (every event passes here)
        return None
    item_id = getattr(event, "item_id", None)
    if not isinstance(item_id, str):
        return None
    if item_id in erased:
        return _EMPTIED.format(item=item_id)
    # An item a new connection re-sent stands for the message it re-sends.
    item_id = conversation.aliases.get(item_id, item_id)
    if item_id in erased:
        return _EMPTIED.format(item=item_id)
    item = conversation.items.get(item_id)
    anchor = item.anchor if item is not None and item.anchor is not None else item_id
    index = state.messages.position_of(anchor)
    if index is None:
        return None
    message = state.messages[index]
    return _ERASED.format(item=anchor) if message.provider_item_id == anchor and message.erased is not None else None


def _erased_bound(conversation: RealtimeState, state: Session, changes: Iterable[Change]) -> list[str]:
    """The items ``changes`` find to be an erased message's (content joining
    it, a re-sent copy standing for it) that no erasure emptied yet."""
    found = []
    for change in changes:
        if isinstance(change, Reseeded):
            original = conversation.items.get(change.original)
            anchor = original.anchor if original is not None and original.anchor is not None else change.original
            index = state.messages.position_of(anchor)
            erased = change.original in conversation.erased or (
                index is not None and state.messages[index].erased is not None
            )
            item = change.item_id
        else:
            erased, item = _erased_anchor(state, change) is not None, getattr(change, "item_id", "")
        if erased and item and item not in conversation.erased:
            found.append(item)
    return found


def _without_bound_content(to_store: list[Event], bound: dict[str, None], before: RealtimeState) -> tuple[str, ...]:
    """Records of ``bound`` items in ``to_store`` without their content, in
    place; the bound items that earlier records (stored before, in
    ``before``) hold content of."""
    if not bound:
        return ()
    for index, event in enumerate(to_store):
        if isinstance(event, RealtimeRecorded) and getattr(event.event, "item_id", None) in bound:
            to_store[index] = msgspec.structs.replace(event, event=scrubbed(event.event))
    return tuple(item for item in bound if item in before.items)


def _rewrite(
    state: Session,
    start: int,
    end: int,
    replacement: list[Message],
    kind: str,
    actor: str | None,
    now: datetime,
    to_store: list[Event],
) -> Session:
    try:
        event = rewrite_event(
            state, start, end, stamped(replacement, "ingest"), Reason(kind=kind), actor, now, check=False
        )
    except NoOpRewrite:
        return state
    return _stage(state, event, to_store)


def _conversation_start(state: Session, conversation: RealtimeState) -> int:
    """Where the provider's "start of the conversation" is in the transcript:
    right before the first message its items made. Messages the caller
    appended before ingestion began are not part of the provider's
    conversation, so they stay before it."""
    items = conversation.items
    for index, message in enumerate(state.messages):
        ident = message.provider_item_id
        if ident is None:
            continue
        item = items.get(ident)
        if item is not None and item.status == "materialised":
            return index
    return len(state.messages)


def _find(state: Session, provider_item_id: str) -> int | None:
    """The index of the message that holds provider item ``provider_item_id``."""
    messages = state.messages
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].provider_item_id == provider_item_id:
            return index
    return None


def _with_blocks(message: Message, blocks: tuple[Block, ...], *, incomplete: bool | None = None) -> Message:
    """``message`` holding ``blocks``: the same message (its id and the rest
    kept), rewritten in place."""
    return msgspec.structs.replace(
        message, blocks=blocks, incomplete=message.incomplete if incomplete is None else incomplete
    )


_ORDER = ("materialised", "staged", "discarded", "duplicate", "ignored", "rejected")


def _combined(statuses: list[str]) -> str:
    """One status for a raw event that meant several canonical events."""
    if not statuses:
        return "ignored"
    return min(statuses, key=_ORDER.index)
