"""The pure realtime ingestion reducer: ``reduce(state, event) -> (state, outcome)``.

The state mirrors the provider's conversation: items keyed by provider item
id, content by ``(item_id, content_index)``, raw events by event id. Items are
placed by ``previous_item_id``, never by arrival. An item becomes a message
when everything before it has: a response's items when the response ends
(its consecutive items merged into one assistant message, usage counted once),
a user item when its text is final (or as a message without text, when a
later item is ready first: the transcript then replaces it in place), tool
outputs when every tool use of the message before them is answered.

The outcome carries *changes* (append a message, insert one after an item,
replace or remove an item's message, record usage); the store turns them into
events. The state never depends on the transcript, so replaying the accepted
events rebuilds it exactly. Settled items keep a few fields, not their text
or deltas, so memory stays bounded by the items in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeAlias, TypeVar

import msgspec

from engine.content import Block, Message, Text, ToolResult, ToolUse, Transcript, Usage
from engine.realtime.events import (
    UNKNOWN,
    AssistantTextDelta,
    AssistantTranscriptDelta,
    AssistantTranscriptFinalText,
    AssistantTranscriptTruncated,
    AssistantTurnCompleted,
    AssistantTurnInterrupted,
    FunctionCall,
    FunctionCallOutput,
    ItemDeleted,
    ItemObserved,
    ItemSkipped,
    RealtimeEvent,
    UserContentFinal,
    UserTranscriptFailed,
    UserTranscriptFinal,
)

__all__ = [
    "AppendMessage",
    "Change",
    "InsertMessage",
    "Outcome",
    "RealtimeState",
    "RecordUsage",
    "RemoveItem",
    "ReplaceItem",
    "TruncateItem",
    "apply",
    "is_duplicate",
    "reduce",
    "resolve",
]

V = TypeVar("V")
_FORGET_AT = 256
Kind: TypeAlias = Literal["message", "function_call", "function_call_output", "skipped"]
Status: TypeAlias = Literal["pending", "materialised", "skipped", "deleted"]


class Item(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One provider item. Settled items (materialised, skipped, deleted) keep
    only what later events can still touch."""

    id: str
    role: str | None = None
    kind: Kind = "message"
    previous: str | None = UNKNOWN
    response_id: str | None = None
    seen: int = 0  # first-seen order, to break ties
    status: Status = "pending"
    # content of a pending item: content_index -> (lane, text, final)
    parts: tuple[tuple[int, str, str, bool], ...] = ()
    transcript_failed: bool = False
    truncated_at_ms: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    # where a materialised item lives: the provider id its message is found by
    anchor: str | None = None
    block_offset: int = 0  # where its blocks start in the anchor's message
    block_count: int = 0
    seen_parts: tuple[int, ...] = ()  # content parts already in the message
    awaiting_text: bool = False  # materialised without text; a transcript may follow


class Response(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    status: str = "in_flight"


# -- changes the store applies -----------------------------------------------------


class AppendMessage(msgspec.Struct, frozen=True, kw_only=True):
    message: Message
    item_ids: tuple[str, ...]


class InsertMessage(msgspec.Struct, frozen=True, kw_only=True):
    """Place ``message`` right after the message holding item ``after``
    (``None``: at the start)."""

    after: str | None
    message: Message
    item_ids: tuple[str, ...]


class ReplaceItem(msgspec.Struct, frozen=True, kw_only=True):
    """In the message whose provider item id is ``anchor``, replace the
    ``count`` blocks at ``offset`` (what one item put there) with ``blocks``."""

    anchor: str
    item_id: str
    offset: int
    count: int
    blocks: tuple[Block, ...]
    reason: str


class TruncateItem(msgspec.Struct, frozen=True, kw_only=True):
    """Mark the spoken transcript among an item's blocks as cut at
    ``audio_end_ms``; with ``text``, the transcript becomes what was heard."""

    anchor: str
    item_id: str
    offset: int
    count: int
    audio_end_ms: int | None
    text: str | None


class RemoveItem(msgspec.Struct, frozen=True, kw_only=True):
    """Remove an item's blocks (the whole message if they were all of it)."""

    anchor: str
    item_id: str
    offset: int
    count: int


class RecordUsage(msgspec.Struct, frozen=True, kw_only=True):
    usage: Usage
    response_id: str


Change: TypeAlias = AppendMessage | InsertMessage | ReplaceItem | TruncateItem | RemoveItem | RecordUsage
_EDITS = (AppendMessage, InsertMessage, ReplaceItem, TruncateItem, RemoveItem)
OutcomeStatus: TypeAlias = Literal["materialised", "staged", "duplicate", "discarded", "rejected", "ignored"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one event did. ``status``: ``materialised`` (changes to the
    transcript follow), ``staged`` (accepted, waiting for more), ``duplicate``
    (seen before: nothing stored), ``discarded`` (accepted, dropped by a rule),
    ``rejected`` (invalid: nothing stored), ``ignored`` (not a transcript event)."""

    status: OutcomeStatus
    reason: str | None = None
    changes: tuple[Change, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status in ("materialised", "staged", "discarded")

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(
            change.message for change in self.changes if isinstance(change, (AppendMessage, InsertMessage))
        )


# -- state --------------------------------------------------------------------------


class _Split(Generic[V]):
    """A dict split in two: *live* entries (small, copied with every state)
    and *settled* ones (shared between states until one of them writes:
    copy-on-write). Keeps :func:`reduce` pure without copying a long
    conversation's history on every event."""

    __slots__ = ("_is_live", "live", "owned", "settled")

    def __init__(self, is_live: Callable[[V], bool]) -> None:
        self._is_live = is_live
        self.live: dict[str, V] = {}
        self.settled: dict[str, V] = {}
        self.owned = True

    def get(self, key: str) -> V | None:
        found = self.live.get(key)
        return found if found is not None else self.settled.get(key)

    def __getitem__(self, key: str) -> V:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return key in self.live or key in self.settled

    def __setitem__(self, key: str, value: V) -> None:
        if self._is_live(value):
            self.live[key] = value
            return
        self.live.pop(key, None)
        if not self.owned:
            self.settled = dict(self.settled)
            self.owned = True
        self.settled[key] = value

    def values(self) -> Iterator[V]:
        yield from self.live.values()
        yield from self.settled.values()

    def __len__(self) -> int:
        return len(self.live) + len(self.settled)

    def copy(self) -> _Split[V]:
        clone = _Split.__new__(_Split)
        clone._is_live = self._is_live
        clone.live = dict(self.live)
        clone.settled = self.settled
        clone.owned = self.owned = False  # both must copy before writing
        return clone


class RealtimeState:
    """Ingestion state of one session. Treat as immutable: :func:`reduce`
    returns a new one; :func:`apply` (used by the store on its private copy)
    updates in place."""

    __slots__ = ("counter", "event_ids", "forget_at", "items", "responses", "tail")

    def __init__(self) -> None:
        self.items: _Split[Item] = _Split(lambda item: item.status == "pending")
        self.responses: _Split[Response] = _Split(lambda response: response.status == "in_flight")
        self.event_ids: dict[str, str | None] = {}  # accepted event id -> the item it concerns
        self.tail: str | None = None  # the last settled item in conversation order
        self.counter = 0
        self.forget_at = _FORGET_AT  # size of event_ids that triggers the next pass of forgetting

    def copy(self) -> RealtimeState:
        clone = RealtimeState.__new__(RealtimeState)
        clone.items = self.items.copy()
        clone.responses = self.responses.copy()
        clone.event_ids = dict(self.event_ids)
        clone.tail = self.tail
        clone.counter = self.counter
        clone.forget_at = self.forget_at
        return clone

    def pending_items(self) -> list[Item]:
        return sorted(self.items.live.values(), key=lambda item: item.seen)

    def in_flight_responses(self) -> list[str]:
        """Response ids still producing, in first-seen order (to fan out an interruption)."""
        return list(self.responses.live)


def reduce(state: RealtimeState, event: RealtimeEvent) -> tuple[RealtimeState, Outcome]:
    """The pure reducer: never changes ``state``."""
    new = state.copy()
    return new, apply(new, event)


_REJECT_BLANK = "an id in this event is blank; blank ids cannot be deduplicated"


def apply(state: RealtimeState, event: RealtimeEvent) -> Outcome:
    """Apply ``event`` to ``state`` in place and say what happened."""
    event_id = event.event_id
    if event_id is not None:
        if not event_id.strip():
            return Outcome(status="rejected", reason="event_id is blank")
        if event_id in state.event_ids:
            return Outcome(status="duplicate", reason=f"event {event_id} was already accepted")
    item_id = getattr(event, "item_id", None)
    if item_id is not None and not item_id.strip():
        return Outcome(status="rejected", reason=_REJECT_BLANK)
    response_id = getattr(event, "response_id", None)
    if response_id is not None and not response_id.strip():
        return Outcome(status="rejected", reason=_REJECT_BLANK)
    if isinstance(event, (AssistantTextDelta, AssistantTranscriptDelta)) and event_id is None:
        # Identical deltas legitimately repeat inside one item, so without an
        # id a redelivered delta could not be told from a new one.
        return Outcome(status="rejected", reason="a delta without event_id cannot be deduplicated")
    outcome = _dispatch(state, event)
    if outcome.accepted and event_id is not None:
        state.event_ids[event_id] = item_id
    if outcome.accepted:
        changes = list(outcome.changes) + _materialise(state)
        _forget_settled_event_ids(state)
        if any(isinstance(c, _EDITS) for c in changes):
            return Outcome(status="materialised", reason=outcome.reason, changes=tuple(changes))
        return Outcome(status=outcome.status, reason=outcome.reason, changes=tuple(changes))
    return outcome


def is_duplicate(state: RealtimeState, event: RealtimeEvent) -> bool:
    """Whether :func:`apply` would call ``event`` a duplicate, without changing
    ``state`` (the store's fast path: a duplicate needs no I/O)."""
    if event.event_id is not None and event.event_id in state.event_ids:
        return True
    item_id = getattr(event, "item_id", None)
    response_id = getattr(event, "response_id", None)
    if (item_id is not None and _settled(state.items.get(item_id))) or (
        response_id is not None and response_id in state.responses.settled
    ):
        return reduce(state, event)[1].status == "duplicate"
    return False


def _item(state: RealtimeState, item_id: str, **fields: object) -> Item:
    """The item, created (and placed in first-seen order) if new; ``previous``
    and ``role`` are only ever filled in, never changed."""
    item = state.items.get(item_id)
    previous = fields.pop("previous", UNKNOWN)
    if item is None:
        state.counter += 1
        item = Item(id=item_id, seen=state.counter, previous=previous, **fields)  # type: ignore[arg-type]
    else:
        updates = {key: value for key, value in fields.items() if getattr(item, key) in (None, "message")}
        if previous != UNKNOWN and item.previous == UNKNOWN:
            updates["previous"] = previous
        if updates:
            item = msgspec.structs.replace(item, **updates)
    state.items[item_id] = item
    return item


def _settled(item: Item | None) -> bool:
    return item is not None and item.status != "pending"


def _set_part(item: Item, index: int, lane: str, text: str, *, final: bool, append: bool) -> Item:
    parts = {i: (lane_, text_, final_) for i, lane_, text_, final_ in item.parts}
    old = parts.get(index)
    if old is not None and old[2] and not final:
        return item  # a final value is never changed by a late delta
    if append:
        text = (old[1] if old else "") + text
    elif not text and old is not None and old[1]:
        text = old[1]  # an empty payload never erases known text
    parts[index] = (old[0] if old and old[1] else lane, text, final or bool(old and old[2]))
    return msgspec.structs.replace(item, parts=tuple((i, *parts[i]) for i in sorted(parts)))


def _dispatch(state: RealtimeState, event: RealtimeEvent) -> Outcome:
    if isinstance(event, (ItemObserved, ItemSkipped, ItemDeleted)) and _settled(state.items.get(event.item_id)):
        settled = state.items[event.item_id]
        if not (isinstance(event, ItemDeleted) and settled.status != "deleted"):
            return _nothing_new(event.item_id)
    if isinstance(event, ItemObserved):
        _item(state, event.item_id, role=event.role, previous=event.previous_item_id, response_id=event.response_id)
        if event.response_id is not None:
            _response(state, event.response_id)
        return Outcome(status="staged")
    if isinstance(event, ItemSkipped):
        item = _item(state, event.item_id, previous=event.previous_item_id)
        if item.status == "pending":
            state.items[item.id] = msgspec.structs.replace(item, kind="skipped")
        return Outcome(status="staged")
    if isinstance(event, ItemDeleted):
        return _delete(state, event.item_id)

    if isinstance(event, (UserTranscriptFinal, UserContentFinal, UserTranscriptFailed)):
        existing = state.items.get(event.item_id)
        if existing is not None and existing.status != "pending" and (
            isinstance(event, UserTranscriptFailed) or existing.status != "materialised" or not event.text
            or (not existing.awaiting_text and event.content_index in existing.seen_parts)
        ):
            return _nothing_new(event.item_id)
        previous = getattr(event, "previous_item_id", UNKNOWN)
        item = _item(state, event.item_id, role=getattr(event, "role", "user"), previous=previous)
        if isinstance(event, UserTranscriptFailed):
            if item.status == "pending":
                state.items[item.id] = msgspec.structs.replace(item, transcript_failed=True)
            return Outcome(status="staged", reason="transcription failed: the item stays without text")
        lane = "transcript" if isinstance(event, UserTranscriptFinal) else "text"
        if item.status == "materialised":
            block: Block = Transcript(text=event.text) if lane == "transcript" else Text(text=event.text)
            if item.awaiting_text:
                return Outcome(
                    status="materialised",
                    reason="a late transcription lands in its item's place",
                    changes=(_replace_blocks(state, item, (block,), "late_transcription"),),
                )
            # Another content part of a message already placed: added after its other blocks.
            change = ReplaceItem(anchor=item.anchor or item.id, item_id=item.id,
                                 offset=item.block_offset + item.block_count, count=0, blocks=(block,),
                                 reason="late_content")
            _shift(state, item, 1)
            state.items[item.id] = msgspec.structs.replace(
                item, block_count=item.block_count + 1, seen_parts=(*item.seen_parts, event.content_index)
            )
            return Outcome(status="materialised", reason="a later content part joins its message", changes=(change,))
        state.items[item.id] = _set_part(item, event.content_index, lane, event.text, final=True, append=False)
        return Outcome(status="staged")

    if isinstance(event, (AssistantTextDelta, AssistantTranscriptDelta)):
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(event.item_id)
        response = _response(state, event.response_id)
        if response.status != "in_flight":
            return Outcome(status="duplicate", reason=f"response {event.response_id} already ended; nothing new")
        item = _item(state, event.item_id, role="assistant", previous=event.previous_item_id,
                     response_id=event.response_id)
        lane = "text" if isinstance(event, AssistantTextDelta) else "transcript"
        state.items[item.id] = _set_part(item, event.content_index, lane, event.delta, final=False, append=True)
        return Outcome(status="staged")
    if isinstance(event, AssistantTranscriptFinalText):
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(event.item_id)
        item = _item(state, event.item_id, role="assistant", response_id=event.response_id)
        state.items[item.id] = _set_part(item, event.content_index, event.lane, event.text, final=True, append=False)
        return Outcome(status="staged")
    if isinstance(event, AssistantTranscriptTruncated):
        return _truncate(state, event)

    if isinstance(event, FunctionCall):
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(event.item_id)
        item = _item(state, event.item_id, role="assistant", previous=event.previous_item_id,
                     response_id=event.response_id)
        state.items[item.id] = msgspec.structs.replace(
            item, kind="function_call", call_id=event.call_id, name=event.name, arguments=event.arguments
        )
        if event.response_id is not None:
            _response(state, event.response_id)
        return Outcome(status="staged")
    if isinstance(event, FunctionCallOutput):
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(event.item_id)
        item = _item(state, event.item_id, role="tool_results", previous=event.previous_item_id)
        state.items[item.id] = msgspec.structs.replace(
            item, kind="function_call_output", call_id=event.call_id, output=event.output
        )
        return Outcome(status="staged")

    assert isinstance(event, (AssistantTurnCompleted, AssistantTurnInterrupted)), event  # the union is closed
    return _complete(state, event)


def _nothing_new(item_id: str) -> Outcome:
    """A redelivered (or redundant) event about an item that is settled: it
    changes nothing, so it is a duplicate and nothing is stored, whether or
    not its event id is still remembered."""
    return Outcome(status="duplicate", reason=f"item {item_id} is settled; the event adds nothing")


def _response(state: RealtimeState, response_id: str) -> Response:
    response = state.responses.get(response_id)
    if response is None:
        response = state.responses[response_id] = Response(id=response_id)
    return response


def _complete(state: RealtimeState, event: AssistantTurnCompleted | AssistantTurnInterrupted) -> Outcome:
    response = _response(state, event.response_id)
    if response.status != "in_flight":
        return Outcome(status="duplicate", reason=f"response {event.response_id} already ended; nothing new")
    status, usage = ("cancelled", None) if isinstance(event, AssistantTurnInterrupted) else (event.status, event.usage)
    changes: list[Change] = []
    if usage is not None and (usage.input or usage.output):  # once: a response ends only once
        changes.append(RecordUsage(usage=usage, response_id=response.id))
    state.responses[response.id] = msgspec.structs.replace(response, status=status)
    # The provider keeps an item that produced something (the partial output
    # of a cancelled response stays, and the next item points at it); an item
    # that produced nothing is dropped.
    for item in list(state.items.live.values()):
        if item.response_id != response.id:
            continue
        if item.kind == "message" and not any(text for _, _, text, _ in item.parts):
            state.items[item.id] = msgspec.structs.replace(item, kind="skipped")
    return Outcome(status="staged", changes=tuple(changes))


def _delete(state: RealtimeState, item_id: str) -> Outcome:
    item = state.items.get(item_id)
    if item is None:
        state.counter += 1
        state.items[item_id] = Item(id=item_id, seen=state.counter, status="deleted")
        return Outcome(status="discarded", reason=f"item {item_id} deleted before it was seen; it will not appear")
    if item.status == "materialised":
        assert item.anchor is not None
        change = RemoveItem(anchor=item.anchor, item_id=item_id, offset=item.block_offset, count=item.block_count)
        _shift(state, item, -item.block_count)
        state.items[item_id] = msgspec.structs.replace(item, status="deleted", block_count=0)
        return Outcome(status="materialised", changes=(change,))
    # Pending or skipped: it never shows. Keep its place in the chain so that
    # items after it are not blocked, as a deleted tombstone.
    state.items[item_id] = msgspec.structs.replace(item, status="deleted", parts=())
    if state.tail == item.previous or (item.previous is None and state.tail is None):
        state.tail = item_id
    return Outcome(status="discarded", reason=f"item {item_id} deleted before it became a message")


def _truncate(state: RealtimeState, event: AssistantTranscriptTruncated) -> Outcome:
    item = state.items.get(event.item_id)
    if item is None:
        return Outcome(status="discarded", reason=f"no item {event.item_id} to truncate")
    if item.status in ("deleted", "skipped") or (
        event.text is None and item.truncated_at_ms == event.audio_end_ms
    ):
        return _nothing_new(event.item_id)
    if item.status == "pending":
        if event.text is not None:
            item = _set_part(item, event.content_index, "transcript", event.text, final=True, append=False)
            parts = tuple((i, lane, text, True) if i == event.content_index else (i, lane, text, final)
                          for i, lane, text, final in item.parts)
            item = msgspec.structs.replace(item, parts=parts)
        state.items[item.id] = msgspec.structs.replace(item, truncated_at_ms=event.audio_end_ms)
        return Outcome(status="staged", reason="truncation recorded; it applies when the item becomes a message")
    if item.status != "materialised" or item.anchor is None:
        return Outcome(status="discarded", reason=f"item {event.item_id} did not become a message")
    # Already a message: an audited rewrite of its spoken transcript.
    state.items[item.id] = msgspec.structs.replace(item, truncated_at_ms=event.audio_end_ms)
    change = TruncateItem(
        anchor=item.anchor, item_id=item.id, offset=item.block_offset, count=item.block_count,
        audio_end_ms=event.audio_end_ms, text=event.text,
    )
    return Outcome(status="materialised", reason="truncation after materialisation", changes=(change,))


def _shift(state: RealtimeState, item: Item, delta: int) -> None:
    """Items after ``item`` in the same message move by ``delta`` blocks."""
    if not delta:
        return
    for other in list(state.items.values()):
        if other.anchor == item.anchor and other.id != item.id and other.block_offset > item.block_offset:
            state.items[other.id] = msgspec.structs.replace(other, block_offset=other.block_offset + delta)


def _replace_blocks(state: RealtimeState, item: Item, blocks: tuple[Block, ...], reason: str) -> ReplaceItem:
    assert item.anchor is not None
    change = ReplaceItem(
        anchor=item.anchor, item_id=item.id, offset=item.block_offset, count=item.block_count,
        blocks=blocks, reason=reason,
    )
    _shift(state, item, len(blocks) - item.block_count)
    state.items[item.id] = msgspec.structs.replace(item, awaiting_text=False, block_count=len(blocks),
                                                   seen_parts=(0,))
    return change


# -- materialisation ------------------------------------------------------------------


def _next_items(state: RealtimeState) -> list[Item]:
    """Pending items whose predecessor is the tail (or settled), in order."""
    tail = state.tail
    found = []
    for item in state.items.live.values():
        if item.previous == tail or (item.previous is None and tail is None):
            found.append(item)
        elif item.previous not in (UNKNOWN, None) and _settled(state.items.get(item.previous)):
            found.append(item)  # an insertion after an earlier item
        elif item.previous == UNKNOWN and item.kind != "function_call_output" and _follows_tail(state, item):
            found.append(item)
    found.sort(key=lambda item: item.seen)
    return found


def _follows_tail(state: RealtimeState, item: Item) -> bool:
    """An item that never said its predecessor: placed after the tail once
    every item seen before it is settled (arrival order is all we have)."""
    return all(other.seen >= item.seen for other in state.items.live.values())


def _ready(state: RealtimeState, item: Item) -> bool:
    if item.kind == "skipped":
        return True
    if item.role == "user" or item.role == "system":
        return bool(item.parts and item.parts[0][3]) or item.transcript_failed
    if item.kind == "function_call_output":
        return True
    response = state.responses.get(item.response_id) if item.response_id else None
    return response is not None and response.status != "in_flight"


def _materialise(state: RealtimeState) -> list[Change]:
    changes: list[Change] = []
    while True:
        candidates = _next_items(state)
        progressed = False
        for item in candidates:
            if item.previous not in (UNKNOWN, None, state.tail) and item.previous != state.tail:
                if not _ready(state, item):
                    continue
                changes.extend(_settle(state, [item], insert_after=item.previous))
                progressed = True
                break
            if _ready(state, item):
                group = _group(state, item)
                changes.extend(_settle(state, group))
                progressed = True
                break
            if item.role == "user" and _successor_ready(state, item):
                changes.extend(_settle(state, [item], awaiting_text=True))
                progressed = True
                break
        if not progressed:
            return changes


def _successor_ready(state: RealtimeState, item: Item) -> bool:
    return any(other.previous == item.id and _ready(state, other) for other in state.items.live.values())


def _group(state: RealtimeState, first: Item) -> list[Item]:
    """``first`` and the items that follow it in one message: the rest of its
    response, or the other outputs answering the same tool uses."""
    group = [first]
    if first.kind == "skipped" or first.role in ("user", "system"):
        return group
    current = first
    while True:
        following = [
            other for other in state.items.live.values()
            if other.previous == current.id
            and (other.response_id == first.response_id if first.kind != "function_call_output"
                 else other.kind == "function_call_output")
            and _ready(state, other) and other.kind != "skipped"
        ]
        if len(following) != 1:
            return group
        current = following[0]
        group.append(current)


def _blocks(item: Item) -> tuple[Block, ...]:
    if item.kind == "function_call":
        return (ToolUse(id=item.call_id or item.id, name=item.name or "", arguments=item.arguments or "{}"),)
    if item.kind == "function_call_output":
        return (ToolResult(tool_use_id=item.call_id or item.id, content=(Text(text=item.output or ""),)),)
    blocks: list[Block] = []
    for _, lane, text, _ in item.parts:
        if not text:
            continue
        if lane == "transcript":
            blocks.append(Transcript(text=text, truncated_at_ms=item.truncated_at_ms))
        else:
            blocks.append(Text(text=text))
    return tuple(blocks)


def _settle(
    state: RealtimeState, group: list[Item], *, insert_after: str | object | None = UNKNOWN, awaiting_text: bool = False
) -> list[Change]:
    first = group[0]
    ids = tuple(item.id for item in group)
    blocks: list[Block] = []
    for item in group:
        status = "skipped" if item.kind == "skipped" else "materialised"
        own = _blocks(item)
        state.items[item.id] = msgspec.structs.replace(
            item, status=status, parts=(), output=None, arguments=None, anchor=first.id, name=None,
            awaiting_text=awaiting_text and item is first, block_offset=len(blocks), block_count=len(own),
            seen_parts=tuple(index for index, _, text, _ in item.parts if text),
        )
        blocks.extend(own)
    if insert_after is UNKNOWN:
        state.tail = group[-1].id
    if first.kind == "skipped":
        return []
    role = {"function_call_output": "tool_results"}.get(first.kind, first.role or "assistant")
    incomplete = False
    if role == "assistant" and first.response_id is not None:
        response = state.responses.get(first.response_id)
        incomplete = response is not None and response.status in ("cancelled", "incomplete", "failed")
    if role == "tool_results" and not blocks:
        return []
    message = Message(
        role=role,  # type: ignore[arg-type]
        blocks=tuple(blocks),
        provider_item_id=first.id,
        incomplete=incomplete,
    )
    if insert_after is not UNKNOWN:
        return [InsertMessage(after=insert_after, message=message, item_ids=ids)]  # type: ignore[arg-type]
    return [AppendMessage(message=message, item_ids=ids)]


def _forget_settled_event_ids(state: RealtimeState) -> None:
    """Drop accepted event ids of settled items: a redelivered event for a
    settled item is recognised by the item's status, so the ids (one per
    delta) need not be kept forever. A pass runs when the ids have doubled
    since the last one, so a long response in flight (whose ids must stay)
    does not make every delta scan them all."""
    if len(state.event_ids) < state.forget_at:
        return
    items = state.items
    state.event_ids = {
        event_id: item_id for event_id, item_id in state.event_ids.items()
        if item_id is None or not _settled(items.get(item_id))
    }
    state.forget_at = max(_FORGET_AT, 2 * len(state.event_ids))


def resolve(state: RealtimeState, policy: Literal["place", "drop"]) -> list[Change]:
    """Unblock everything pending: ``place`` puts each waiting item after the
    tail in first-seen order (ending its response as incomplete), ``drop``
    discards them. The store records this as an audited event."""
    changes: list[Change] = []
    for response_id in list(state.responses.live):
        # Ended as incomplete, by the same rule as a provider's own ending:
        # what it produced stays, an item that produced nothing is dropped.
        changes.extend(_complete(state, AssistantTurnCompleted(response_id=response_id, status="incomplete")).changes)
    for item in state.pending_items():
        current = state.items[item.id]
        if current.status != "pending":
            continue
        if policy == "drop" or (current.kind == "message" and not any(t for _, _, t, _ in current.parts)
                                and current.role != "user"):
            state.items[item.id] = msgspec.structs.replace(current, status="skipped", parts=())
            continue
        state.items[item.id] = msgspec.structs.replace(current, previous=state.tail, transcript_failed=True)
        changes.extend(_materialise(state))
    changes.extend(_materialise(state))
    return changes
