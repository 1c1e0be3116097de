"""The pure realtime ingestion reducer: ``reduce(state, event) -> (state, outcome)``.

The state mirrors the provider's conversation: items keyed by provider item
id, content by ``(item_id, content_index)``, raw events by event id. Items are
placed by ``previous_item_id`` with the provider's insert-after meaning, never
by arrival: an item goes right after its predecessor (``None``: at the start
of the connection), so of two items announced after the same predecessor the
later one comes first.

An item becomes a message when everything before it has settled: a
response's items when the response ends (its consecutive items merged into
one assistant message, usage counted once); a user item when its text is
final, or without text (a transcription that arrives later replaces it in
place) as soon as the session says no transcription will come, a later item
of its chain is ready, or a response that started after it ends; tool
outputs when they are announced. Items of an out-of-band response never
become messages; they are reported instead. Nothing waits forever: an item
whose predecessor never arrived is placed at the end once a response that
started after it ends, and a new connection closes what the old one left.

The outcome carries *changes* (append a message, insert one after an item,
replace or remove an item's message, record usage, report an out-of-band
message); the store turns them into events. The state never depends on the
transcript, so replaying the accepted events rebuilds it exactly. Settled
items keep a few fields, not their text or deltas, so memory stays bounded by
the items in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Literal, TypeAlias, TypeVar

import msgspec

from engine.errors import InvalidMessage
from engine.state.content import Block, Image, Message, Text, ToolResult, ToolUse, Transcript, Usage
from engine.state.realtime_events import (
    ERASED_TEXT,
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
    ResponseStarted,
    SessionConfigured,
    UserContentFinal,
    UserImage,
    UserTranscriptDelta,
    UserTranscriptFailed,
    UserTranscriptFinal,
    erased_text,
)

__all__ = [
    "AppendMessage",
    "Change",
    "InsertMessage",
    "OutOfBandMessage",
    "Outcome",
    "RealtimeState",
    "RecordUsage",
    "RemoveItem",
    "ReplaceItem",
    "Reseeded",
    "TruncateItem",
    "apply",
    "duplicate_reason",
    "is_duplicate",
    "reduce",
    "resolve",
    "reused_id",
]

V = TypeVar("V")
_FORGET_AT = 256
Kind: TypeAlias = Literal["message", "function_call", "function_call_output", "skipped"]
Status: TypeAlias = Literal["pending", "materialised", "skipped", "deleted", "aliased", "out_of_band"]


class Item(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One provider item. Settled items keep only what later events can still touch."""

    id: str
    role: str | None = None
    kind: Kind = "message"
    previous: str | None = UNKNOWN  # where it goes: right after this item (None: at the start)
    response_id: str | None = None
    seen: int = 0  # announcement order: the later of two siblings comes first
    status: Status = "pending"
    announced: bool = False  # its position was announced (a transcription alone does not)
    in_conversation: bool = False  # announced by the conversation, not only by a response
    audio: bool = False  # spoken user input: its text can only come from a transcription
    complete: bool = False  # announced finished, with no response to wait for
    text_optional: bool = False  # may become a message without its text
    deleted: bool = False  # deleted while pending: settles as a tombstone in its place
    # content of a pending item: content_index -> (lane, text, final)
    parts: tuple[tuple[int, str, str, bool], ...] = ()
    images: tuple[tuple[int, Image], ...] = ()
    transcript_failed: bool = False
    truncated_at_ms: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    # where a settled item lives: the provider id its message is found by
    anchor: str | None = None
    after: str | None = None  # the message its successors go after (None: the start)
    before: str | None = None  # the message it was placed after
    block_offset: int = 0  # where its blocks start in the anchor's message
    block_count: int = 0
    seen_parts: tuple[int, ...] = ()  # content parts already in the message
    awaiting_text: bool = False  # materialised without text; a transcript may follow
    digest: bytes = b""  # of role and content, to recognise the item re-sent on a new connection
    stands_for: str | None = None  # held: it re-sends this message, if the re-seeded run completes
    placed: int = 0  # settlement order
    closed_early: bool = False  # placed unfinished by a rule (a new connection): its own end may still bring text


class Response(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    status: str = "in_flight"
    seen: int = 0
    out_of_band: bool = False
    closed_by_rule: bool = False  # ended by resolution, not by the provider: its own end may still come
    dropped: bool = False  # ended by resolve_pending("drop"): nothing of it goes into the transcript


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
    complete: bool = False  # the message is no longer incomplete: its response ended completed


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


class Reseeded(msgspec.Struct, frozen=True, kw_only=True):
    """An item a new connection re-sent: it stands for ``original``, already a
    message; nothing is added. Reported, so that the choice is never silent."""

    item_id: str
    original: str


class OutOfBandMessage(msgspec.Struct, frozen=True, kw_only=True):
    """What an out-of-band response produced: reported, never part of the transcript."""

    response_id: str
    status: str
    message: Message
    item_ids: tuple[str, ...]


class UnansweredOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A tool output whose call no function call of the conversation made,
    when its turn to be placed came: as a message it would answer nothing (a
    transcript no model API takes, after which the caller's next append is
    refused), so it takes its place as no message. Reported, never silent."""

    item_id: str
    call_id: str


Change: TypeAlias = (
    AppendMessage
    | InsertMessage
    | ReplaceItem
    | TruncateItem
    | RemoveItem
    | RecordUsage
    | OutOfBandMessage
    | Reseeded
    | UnansweredOutput
)
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
        return tuple(change.message for change in self.changes if isinstance(change, (AppendMessage, InsertMessage)))


# -- state --------------------------------------------------------------------------


def _never_live(_: object) -> bool:
    return False


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


class _EventIds:
    """Accepted event ids, each with the item or response it concerns and a
    digest of the event: the newest few in a small dict copied with every
    state, the rest in a dict shared between states until one of them writes
    (most events are deltas that each add an id, so copying every id on every
    event would make :func:`reduce` cost grow with the conversation)."""

    __slots__ = ("older", "owned", "recent")
    _RECENT = 64

    def __init__(self, ids: dict[str, tuple[str | None, bytes]] | None = None) -> None:
        self.recent: dict[str, tuple[str | None, bytes]] = {}
        self.older: dict[str, tuple[str | None, bytes]] = ids or {}
        self.owned = True

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.recent or event_id in self.older

    def get(self, event_id: str) -> tuple[str | None, bytes] | None:
        """The key and digest the event of this id was accepted with."""
        found = self.recent.get(event_id)
        return found if found is not None else self.older.get(event_id)

    def __setitem__(self, event_id: str, entry: tuple[str | None, bytes]) -> None:
        self.recent[event_id] = entry
        if len(self.recent) >= self._RECENT:
            if not self.owned:
                self.older = dict(self.older)
                self.owned = True
            self.older.update(self.recent)
            self.recent = {}

    def __len__(self) -> int:
        return len(self.recent) + len(self.older)

    def items(self) -> Iterator[tuple[str, tuple[str | None, bytes]]]:
        yield from self.older.items()
        yield from self.recent.items()

    def copy(self) -> _EventIds:
        clone = _EventIds.__new__(_EventIds)
        clone.recent = dict(self.recent)
        clone.older = self.older
        clone.owned = self.owned = False  # both must copy before writing
        return clone


_ENCODE_EVENT = msgspec.msgpack.Encoder().encode


def _digest_of(event: RealtimeEvent) -> bytes:
    """What an accepted event held, to tell a redelivery (the same event
    again) from another event that reuses its id."""
    return hashlib.blake2b(_ENCODE_EVENT(event), digest_size=16).digest()


class RealtimeState:
    """Ingestion state of one session. Treat as immutable: :func:`reduce`
    returns a new one; :func:`apply` (used by the store on its private copy)
    updates in place."""

    __slots__ = (
        "aliases",
        "connection_start",
        "counter",
        "erased",
        "event_ids",
        "forget_at",
        "items",
        "reseed",
        "reseed_items",
        "reseed_paths",
        "reseed_started",
        "responses",
        "tail",
        "transcription",
        "written",
    )

    def __init__(self) -> None:
        self.items: _Split[Item] = _Split(lambda item: item.status == "pending")
        self.responses: _Split[Response] = _Split(lambda response: response.status == "in_flight")
        self.event_ids = _EventIds()  # accepted event id -> the item or response it concerns
        self.tail: str | None = None  # the last item of the settled prefix, in conversation order
        self.counter = 0
        self.forget_at = _FORGET_AT  # size of event_ids that triggers the next pass of forgetting
        self.transcription: bool | None = None  # whether the session transcribes user audio
        self.connection_start: str | None = None  # what "no predecessor" means on this connection
        self.aliases: dict[str, str] = {}  # a re-seeded item's new id -> the original's
        self.reseed: tuple[tuple[str, bytes], ...] = ()  # messages a new connection may re-seed, in order
        self.reseed_started = False  # a re-seeded item was recognised: the next must match the next message
        # The run's items, in the order they were matched, and each way the
        # run so far follows ``reseed``: the indexes they matched.
        self.reseed_items: tuple[str, ...] = ()
        self.reseed_paths: tuple[tuple[int, ...], ...] = ()
        # The blocks ingestion last gave each message of the call (by its
        # provider item id), whether or not they landed: a message that no
        # longer holds them was changed by someone else (a caller's rewrite
        # or erasure), whose change stands. Kept by the store
        # (engine.decisions.ingestion), not by the reducer.
        self.written: _Split[tuple[Block, ...]] = _Split(_never_live)
        # Realtime items an erasure emptied: what comes for them
        # is stored without its content. Kept by the store, as ``written``.
        self.erased: frozenset[str] = frozenset()

    def copy(self) -> RealtimeState:
        clone = RealtimeState.__new__(RealtimeState)
        clone.items = self.items.copy()
        clone.responses = self.responses.copy()
        clone.event_ids = self.event_ids.copy()
        clone.tail = self.tail
        clone.counter = self.counter
        clone.forget_at = self.forget_at
        clone.transcription = self.transcription
        clone.connection_start = self.connection_start
        clone.aliases = self.aliases if not self.aliases else dict(self.aliases)
        clone.reseed = self.reseed
        clone.reseed_started = self.reseed_started
        clone.reseed_items = self.reseed_items
        clone.reseed_paths = self.reseed_paths
        clone.written = self.written.copy()
        clone.erased = self.erased
        return clone

    def pending_items(self) -> list[Item]:
        return sorted(self.items.live.values(), key=lambda item: item.seen)

    def in_flight_responses(self) -> list[str]:
        """Response ids still producing, in first-seen order (to fan out an interruption)."""
        return list(self.responses.live)

    def waiting_for(self, item: Item) -> str:
        """Why a pending item is not a message yet, in words."""
        if not item.announced:
            return "its announcement (only its content has arrived)"
        if item.stands_for is not None:
            return f"the rest of a re-sent history (it repeats message {item.stands_for})"
        if item.previous not in (None, UNKNOWN) and item.previous not in self.items:
            return f"unknown predecessor {item.previous}"
        if item.response_id and item.response_id in self.responses.live:
            return f"response {item.response_id} in flight"
        if item.previous not in (None, UNKNOWN) and item.previous in self.items.live:
            return f"earlier item {item.previous}"
        return "its text"


def reduce(state: RealtimeState, event: RealtimeEvent) -> tuple[RealtimeState, Outcome]:
    """The pure reducer: never changes ``state``."""
    new = state.copy()
    return new, apply(new, event)


_RESPONSE = "\x00response:"  # marks a remembered event id that concerns a response, not an item
_REJECT_BLANK = "an id in this event is blank; blank ids cannot be deduplicated"
_DELTAS = (AssistantTextDelta, AssistantTranscriptDelta, UserTranscriptDelta)


def apply(state: RealtimeState, event: RealtimeEvent) -> Outcome:
    """Apply ``event`` to ``state`` in place and say what happened."""
    event_id = event.event_id
    if event_id is not None:
        if not event_id.strip():
            return Outcome(status="rejected", reason="event_id is blank")
        seen = state.event_ids.get(event_id)
        if seen is not None:
            if seen[1] != _digest_of(event):
                return Outcome(status="rejected", reason=_reused(event_id))
            return Outcome(status="duplicate", reason=_already_accepted(event_id))
    item_id = getattr(event, "item_id", None)
    if item_id is not None and not item_id.strip():
        return Outcome(status="rejected", reason=_REJECT_BLANK)
    response_id = getattr(event, "response_id", None)
    if response_id is not None and not response_id.strip():
        return Outcome(status="rejected", reason=_REJECT_BLANK)
    previous = getattr(event, "previous_item_id", None)
    if any("\x00" in value for value in (item_id, response_id) if value) or (
        previous and previous != UNKNOWN and "\x00" in previous
    ):
        return Outcome(status="rejected", reason="an id in this event holds NUL, which no provider id does")
    if isinstance(event, _DELTAS) and event_id is None:
        # Identical deltas legitimately repeat inside one item, so without an
        # id a redelivered delta could not be told from a new one.
        return Outcome(status="rejected", reason="a delta without event_id cannot be deduplicated")
    unfit = _unfit(state, event)
    if unfit is None and isinstance(event, _DELTAS) and _MARK_END in event.delta and not erased_text(event.delta):
        unfit = _spells_the_mark(state, event)
    if unfit is not None:
        return Outcome(status="rejected", reason=unfit)
    outcome = _dispatch(state, event)
    if outcome.accepted and event_id is not None:
        if isinstance(event, AssistantTranscriptTruncated):
            key = None  # kept: an old truncation replayed must not move the cut back
        else:
            key = item_id if item_id is not None else (None if response_id is None else _RESPONSE + response_id)
        state.event_ids[event_id] = (key, _digest_of(event))
    if outcome.accepted:
        if isinstance(event, _DELTAS) and not outcome.changes:
            return outcome  # a delta makes nothing ready: nothing else can move
        changes = list(outcome.changes) + _materialise(state)
        _forget_settled_event_ids(state)
        reason = (
            "; ".join(
                [
                    *([outcome.reason] if outcome.reason else []),
                    *(
                        f"item {c.item_id} re-sends message {c.original}; nothing added"
                        for c in changes
                        if isinstance(c, Reseeded)
                    ),
                    *(
                        f"item {c.item_id} answers call {c.call_id!r}, which no function call of this conversation "
                        "made: it is not kept as a message"
                        for c in changes
                        if isinstance(c, UnansweredOutput)
                    ),
                ]
            )
            or None
        )
        if any(isinstance(c, _EDITS) for c in changes):
            return Outcome(status="materialised", reason=reason, changes=tuple(changes))
        if any(isinstance(c, UnansweredOutput) and c.item_id == item_id for c in changes):
            return Outcome(status="discarded", reason=reason, changes=tuple(changes))  # its own item: dropped by rule
        return Outcome(status=outcome.status, reason=reason, changes=tuple(changes))
    return outcome


_SPOKEN = (UserTranscriptFinal, UserTranscriptDelta, AssistantTranscriptDelta)
# The role an event gives an item that has none yet (``_item`` only fills a role in).
_ROLE_OF: dict[type[object], str] = {
    UserTranscriptFinal: "user",
    UserTranscriptDelta: "user",
    UserTranscriptFailed: "user",
    UserImage: "user",
    AssistantTextDelta: "assistant",
    AssistantTranscriptDelta: "assistant",
    AssistantTranscriptFinalText: "assistant",
    FunctionCall: "assistant",
    FunctionCallOutput: "tool_results",
}


def _unfit(state: RealtimeState, event: RealtimeEvent) -> str | None:
    """Why ``event`` cannot apply: it gives an item content no message of its
    role may hold (a system item holds text only; a function call output
    belongs to no response). Checked before anything changes, so a canonical
    event from any provider is refused rather than failing later, when its
    item becomes a message."""
    if isinstance(event, UserImage) and (event.data is None) == (event.ref is None):
        return "an image needs exactly one of data (inline bytes) or ref (a URL)"
    if isinstance(event, UserImage) and (event.data == b"" or event.ref == ""):
        # Rejected, not raised when the item becomes a message; an old log's
        # such event replays as rejected, and its item as without the image.
        return f"an image's {'data' if event.data == b'' else 'ref'} is empty: no image to keep"
    if isinstance(event, UserImage):
        try:  # what the image block will be checked for (its media type): rejected here, never raised
            Image(media_type=event.media_type, data=event.data, ref=event.ref)
        except InvalidMessage as exc:
            return str(exc)
    item_id = getattr(event, "item_id", None)
    if item_id is None:
        return None
    item = state.items.get(item_id)
    if item is not None and item.status != "pending":
        return None  # settled: late content is checked where it joins its message
    role = item.role if item is not None else None
    if isinstance(event, (ItemObserved, UserContentFinal)):
        role = event.role if isinstance(event, ItemObserved) or role is None else role
    elif role is None:
        role = _ROLE_OF.get(type(event))
    kind = item.kind if item is not None else "message"
    if isinstance(event, FunctionCallOutput):
        kind = "function_call_output"
    elif isinstance(event, FunctionCall):
        kind = "function_call"
    response_id = item.response_id if item is not None else None
    if response_id is None:
        response_id = getattr(event, "response_id", None)
    if kind == "function_call_output" and response_id is not None:
        return f"item {item_id} is a function call output, which no response produces (response {response_id})"
    if kind == "message" and role == "system":
        spoken = (
            isinstance(event, _SPOKEN)
            or (isinstance(event, AssistantTranscriptFinalText) and event.lane == "transcript")
            or (isinstance(event, AssistantTranscriptTruncated) and event.text is not None)
            or (item is not None and any(lane == "transcript" for _, lane, _, _ in item.parts))
        )
        if isinstance(event, UserImage) or (item is not None and item.images) or spoken:
            return f"item {item_id} is a system item, which holds text only"
    return None


_MARK_END = ERASED_TEXT[-1]


def _spells_the_mark(
    state: RealtimeState, event: AssistantTextDelta | AssistantTranscriptDelta | UserTranscriptDelta
) -> str | None:
    """Why a delta is refused: with the text its part holds, it would read as
    the mark an erasure leaves (as input that is the mark is refused)."""
    item = state.items.get(event.item_id)
    held = next((text for index, _, text, _ in item.parts if index == event.content_index), "") if item else ""
    if erased_text(held + event.delta):
        return f"with the text before it, this delta spells {ERASED_TEXT!r}, the mark an erasure leaves"
    return None


def is_duplicate(state: RealtimeState, event: RealtimeEvent) -> bool:
    """Whether :func:`apply` would call ``event`` a duplicate, without changing
    ``state`` (the store's fast path: a duplicate needs no I/O)."""
    return duplicate_reason(state, event) is not None


def duplicate_reason(state: RealtimeState, event: RealtimeEvent) -> str | None:
    """Why :func:`apply` would call ``event`` a duplicate (``None``: it would
    not), without changing ``state``."""
    if event.event_id is not None:
        seen = state.event_ids.get(event.event_id)
        if seen is not None:
            return _already_accepted(event.event_id) if seen[1] == _digest_of(event) else None
    item_id = getattr(event, "item_id", None)
    response_id = getattr(event, "response_id", None)
    if (item_id is not None and _settled(state.items.get(item_id))) or (
        response_id is not None and response_id in state.responses.settled
    ):
        outcome = reduce(state, event)[1]
        return outcome.reason or "duplicate" if outcome.status == "duplicate" else None
    return None


def _item(state: RealtimeState, item_id: str, **fields: object) -> Item:
    """The item, created (in announcement order) if new; ``previous`` and
    ``role`` are only ever filled in, never changed by a later event."""
    item = state.items.get(item_id)
    previous = fields.pop("previous", UNKNOWN)
    if previous is not UNKNOWN and previous != UNKNOWN:
        previous = _predecessor(state, previous)  # type: ignore[arg-type]
    if item is None:
        item = Item(id=item_id, seen=_next(state), previous=previous, **fields)  # type: ignore[arg-type]
        if previous != UNKNOWN:
            item = msgspec.structs.replace(item, announced=True, in_conversation=True)
    else:
        updates = {
            key: value
            for key, value in fields.items()
            if getattr(item, key) in (None, "message") or (value is True and getattr(item, key) is False)
        }
        if previous != UNKNOWN and item.previous == UNKNOWN and item.status == "pending":
            updates.update(previous=previous, announced=True, in_conversation=True)
            updates["seen"] = _next(state)  # its place is announced now: it counts as announced now
        if updates:
            item = msgspec.structs.replace(item, **updates)
    state.items[item_id] = item
    return item


def _predecessor(state: RealtimeState, previous: str | None) -> str | None:
    """What ``previous_item_id`` means here: "no predecessor" is the start of
    this connection; a re-seeded item stands for its original."""
    if previous is None:
        return state.connection_start
    return state.aliases.get(previous, previous)


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


_STAGED = Outcome(status="staged")


def _assistant_delta(state: RealtimeState, event: AssistantTextDelta | AssistantTranscriptDelta) -> Outcome:
    lane = "text" if isinstance(event, AssistantTextDelta) else "transcript"
    item = state.items.live.get(event.item_id)
    if (
        item is not None
        and item.response_id == event.response_id
        and event.response_id in state.responses.live
        and (event.previous_item_id == UNKNOWN or item.previous != UNKNOWN)
    ):
        # The common case, most events of a call: more words of an item in flight.
        state.items.live[item.id] = _set_part(item, event.content_index, lane, event.delta, final=False, append=True)
        return _STAGED
    late = _late_output(state, event.item_id, event.response_id)
    if late is not None:
        state.items[late.id] = _set_part(late, event.content_index, lane, event.delta, final=False, append=True)
        return Outcome(status="staged", reason=_LATE)
    if _settled(state.items.get(event.item_id)):
        return _nothing_new(state, event.item_id)
    response = _response(state, event.response_id)
    if response.status != "in_flight":
        return Outcome(status="duplicate", reason=f"response {event.response_id} already ended; nothing new")
    item = _item(state, event.item_id, role="assistant", previous=event.previous_item_id, response_id=event.response_id)
    state.items[item.id] = _set_part(item, event.content_index, lane, event.delta, final=False, append=True)
    return _STAGED


def _dispatch(state: RealtimeState, event: RealtimeEvent) -> Outcome:
    if isinstance(event, (ItemDeleted, AssistantTranscriptTruncated)) and event.item_id in state.aliases:
        # A new connection re-sent the message under this id: the live
        # conversation deletes (or cuts) it by that id.
        event = msgspec.structs.replace(event, item_id=state.aliases[event.item_id])
    if isinstance(event, (AssistantTextDelta, AssistantTranscriptDelta)):
        return _assistant_delta(state, event)
    if isinstance(event, SessionConfigured):
        return _configure(state, event)
    if isinstance(event, ResponseStarted):
        response = state.responses.get(event.response_id)
        if response is not None and (response.status != "in_flight" or response.out_of_band == event.out_of_band):
            return Outcome(status="duplicate", reason=f"response {event.response_id} already known; nothing new")
        response = _response(state, event.response_id)
        if event.out_of_band:
            state.responses[response.id] = msgspec.structs.replace(response, out_of_band=True)
            return Outcome(status="staged", reason="an out-of-band response: its items stay out of the transcript")
        # The conversation goes on: what follows is new, not re-seeded.
        return Outcome(status="staged", changes=tuple(_stop_reseed(state)))
    if isinstance(event, (ItemObserved, ItemSkipped, ItemDeleted)) and _settled(state.items.get(event.item_id)):
        settled = state.items[event.item_id]
        if not (isinstance(event, ItemDeleted) and settled.status not in ("deleted", "aliased", "out_of_band")):
            return _nothing_new(state, event.item_id)
    if isinstance(event, ItemObserved):
        return _observe(state, event)
    if isinstance(event, ItemSkipped):
        item = _item(state, event.item_id, previous=event.previous_item_id)
        item = msgspec.structs.replace(
            item,
            kind="skipped",
            announced=item.announced or item.previous != UNKNOWN,
            in_conversation=item.in_conversation or item.previous != UNKNOWN,
        )
        state.items[item.id] = item
        what = event.kind or "an item of a kind the transcript has no message for"
        return Outcome(
            status="discarded", reason=f"item {event.item_id} is {what}: it keeps its place in the order, as no message"
        )
    if isinstance(event, ItemDeleted):
        return _delete(state, event.item_id)
    if isinstance(event, (UserTranscriptFinal, UserContentFinal, UserTranscriptFailed, UserTranscriptDelta, UserImage)):
        return _user_content(state, event)
    if isinstance(event, AssistantTranscriptFinalText):
        late = _late_output(state, event.item_id, event.response_id)
        if late is not None:
            final = _set_part(late, event.content_index, event.lane, event.text, final=True, append=False)
            state.items[late.id] = final
            # A final text is final: it replaces what was placed now, not when the response ends.
            return Outcome(status="materialised", reason=_LATE_FINAL, changes=_late_replaced(state, final))
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(state, event.item_id)
        item = _item(state, event.item_id, role="assistant", response_id=event.response_id)
        state.items[item.id] = _set_part(item, event.content_index, event.lane, event.text, final=True, append=False)
        return Outcome(status="staged")
    if isinstance(event, AssistantTranscriptTruncated):
        return _truncate(state, event)

    if isinstance(event, FunctionCall):
        late = _late_output(state, event.item_id, event.response_id)
        if late is not None and late.kind == "function_call":
            if not event.complete:
                return _nothing_new(state, event.item_id)
            called = msgspec.structs.replace(
                late, call_id=event.call_id, name=event.name or late.name, arguments=event.arguments
            )
            state.items[late.id] = called
            return Outcome(status="materialised", reason=_LATE_FINAL, changes=_late_replaced(state, called))
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(state, event.item_id)
        item = _item(
            state, event.item_id, role="assistant", previous=event.previous_item_id, response_id=event.response_id
        )
        # What a finished announcement says is final: a later one still
        # streaming (say a response's own announcement) does not undo it.
        newest = event.complete or not (item.kind == "function_call" and item.complete)
        state.items[item.id] = msgspec.structs.replace(
            item,
            kind="function_call",
            call_id=event.call_id if newest else item.call_id,
            # An event that does not name the function (the end of its
            # arguments, in some versions of the API) keeps the name known.
            name=event.name if newest and event.name else (item.name or event.name),
            arguments=event.arguments if newest else item.arguments,
            complete=item.complete or event.complete,
            announced=True,
            in_conversation=item.in_conversation or item.previous != UNKNOWN,
        )
        if event.response_id is not None:
            _response(state, event.response_id)
        return Outcome(status="staged")
    if isinstance(event, FunctionCallOutput):
        if _settled(state.items.get(event.item_id)):
            return _nothing_new(state, event.item_id)
        item = _item(state, event.item_id, role="tool_results", previous=event.previous_item_id)
        state.items[item.id] = msgspec.structs.replace(
            item,
            kind="function_call_output",
            call_id=event.call_id,
            output=event.output,
            announced=True,
            in_conversation=True,
        )
        return Outcome(status="staged")

    assert isinstance(event, (AssistantTurnCompleted, AssistantTurnInterrupted)), event  # the union is closed
    return _complete(state, event)


def _configure(state: RealtimeState, event: SessionConfigured) -> Outcome:
    changes: list[Change] = []
    reason = None
    if event.new_connection and state.counter:
        # The old connection is over: nothing it left waiting can finish.
        changes = _close(state)
        state.connection_start = state.tail
        resendable: list[tuple[str, bytes]] = []
        for item in _in_conversation_order(state):
            if item.id in state.erased:
                # Its content is gone, but the client may still hold it and
                # re-send it: an item of its kind (of its call, for a call
                # or an output) may stand for it (see ``_whole``).
                resendable.append((item.id, _ANY))
            elif item.digest and item.digest != _digest(item.role or "", ()):  # without content: never re-sent
                resendable.append((item.id, item.digest))
        state.reseed = tuple(resendable) if any(known for _, known in resendable) else ()
        state.reseed_started, state.reseed_items, state.reseed_paths = False, (), ()
        reason = "a new connection: what the previous one left waiting was closed"
    if event.input_transcription is not None:
        state.transcription = event.input_transcription
    elif event.new_connection:
        state.transcription = None
    if state.transcription is False:
        for item in list(state.items.live.values()):
            if item.audio and not item.text_optional:
                state.items[item.id] = msgspec.structs.replace(item, text_optional=True)
    return Outcome(status="staged", reason=reason, changes=tuple(changes))


def _in_conversation_order(state: RealtimeState) -> list[Item]:
    """The items placed in messages, in the order of the conversation (as a
    client re-sends it): each message after the one it was placed after,
    the latest placed there first (insert-after), and each message's items
    in the order of their blocks."""
    following: dict[str | None, list[Item]] = {}
    members: dict[str, list[Item]] = {}
    for item in state.items.settled.values():
        if item.anchor == item.id:  # a message's first item, deleted ones too: others were placed after them
            following.setdefault(item.before, []).append(item)
        if item.status == "materialised" and item.anchor is not None:
            members.setdefault(item.anchor, []).append(item)
    ordered: list[Item] = []
    stack = sorted(following.get(None, ()), key=lambda item: item.placed)  # popped latest first
    seen: set[str] = set()
    while stack:
        message = stack.pop()
        if message.id in seen:  # never so: a message is placed after one placed before it
            continue
        seen.add(message.id)
        ordered += sorted(members.get(message.id, ()), key=lambda item: item.block_offset)
        stack += sorted(following.get(message.id, ()), key=lambda item: item.placed)
    return ordered


def _observe(state: RealtimeState, event: ItemObserved) -> Outcome:
    if event.response_id is not None:
        _response(state, event.response_id)
    stopped: list[Change] = []
    if event.previous_item_id != UNKNOWN and (event.audio or event.response_id is not None):
        stopped = _stop_reseed(state)  # the conversation goes on: what follows is new, not re-seeded
    item = _item(state, event.item_id, role=event.role, previous=event.previous_item_id, response_id=event.response_id)
    in_conversation = event.previous_item_id != UNKNOWN
    state.items[item.id] = msgspec.structs.replace(
        item,
        role=event.role,  # the announcement says the role; content that came first only guessed it
        # Without a position, an item of no response goes by arrival; one a
        # response produces waits for the conversation to announce it.
        announced=item.announced or in_conversation or item.response_id is None,
        in_conversation=item.in_conversation or in_conversation,
        audio=item.audio or event.audio,
        complete=item.complete or event.complete,
        text_optional=item.text_optional or (event.audio and state.transcription is False),
    )
    return Outcome(status="staged", changes=tuple(stopped))


def _user_content(
    state: RealtimeState,
    event: UserTranscriptFinal | UserContentFinal | UserTranscriptFailed | UserTranscriptDelta | UserImage,
) -> Outcome:
    existing = state.items.get(event.item_id)
    if existing is not None and existing.status != "pending":
        return _late_user_content(state, existing, event)
    previous = getattr(event, "previous_item_id", UNKNOWN)
    item = _item(state, event.item_id, role=getattr(event, "role", "user"), previous=previous)
    if isinstance(event, UserTranscriptFailed):
        state.items[item.id] = msgspec.structs.replace(item, transcript_failed=True)
        return Outcome(status="staged", reason="transcription failed: the item stays without text")
    if isinstance(event, UserImage):
        image = Image(media_type=event.media_type, data=event.data, ref=event.ref)
        images = tuple(sorted({**dict(item.images), event.content_index: image}.items()))
        state.items[item.id] = msgspec.structs.replace(item, images=images)
        return Outcome(status="staged")
    if isinstance(event, UserTranscriptDelta):
        state.items[item.id] = _set_part(item, event.content_index, "transcript", event.delta, final=False, append=True)
        return Outcome(status="staged")
    lane = "transcript" if isinstance(event, UserTranscriptFinal) else "text"
    state.items[item.id] = _set_part(item, event.content_index, lane, event.text, final=True, append=False)
    return Outcome(status="staged")


def _late_user_content(
    state: RealtimeState,
    item: Item,
    event: UserTranscriptFinal | UserContentFinal | UserTranscriptFailed | UserTranscriptDelta | UserImage,
) -> Outcome:
    """Content for a user item that is already settled: a late transcription
    lands in its place; a later content part joins its message."""
    if item.status != "materialised" or isinstance(event, (UserTranscriptFailed, UserImage)):
        return _nothing_new(state, item.id)
    if isinstance(event, UserTranscriptDelta):
        if not item.awaiting_text:
            return _nothing_new(state, item.id)
        state.items[item.id] = _set_part(item, event.content_index, "transcript", event.delta, final=False, append=True)
        return Outcome(status="staged", reason="a late transcription in progress")
    text = event.text
    if not text and item.awaiting_text:
        text = next((t for i, _, t, _ in item.parts if i == event.content_index), "")  # the deltas it had
    if not text or (not item.awaiting_text and event.content_index in item.seen_parts):
        return _nothing_new(state, item.id)
    if erased_text(text):
        # What an erasure left: the item said something, which never shows.
        if not item.awaiting_text:
            return _nothing_new(state, item.id)
        return Outcome(
            status="materialised",
            reason="a late transcription lands in its item's place",
            changes=(_replace_blocks(state, item, (), "late_transcription"),),
        )
    block: Block = Transcript(text=text) if isinstance(event, UserTranscriptFinal) else Text(text=text)
    anchor = state.items.get(item.anchor or item.id)
    role = _message_role(anchor or item)
    if role == "tool_results" or (role == "system" and isinstance(block, Transcript)):
        return Outcome(status="rejected", reason=f"item {item.id} is in a {role} message, which cannot hold it")
    if item.awaiting_text:
        return Outcome(
            status="materialised",
            reason="a late transcription lands in its item's place",
            changes=(_replace_blocks(state, item, (block,), "late_transcription"),),
        )
    # Another content part of a message already placed: added after its other blocks.
    change = ReplaceItem(
        anchor=item.anchor or item.id,
        item_id=item.id,
        offset=item.block_offset + item.block_count,
        count=0,
        blocks=(block,),
        reason="late_content",
    )
    _shift(state, item, 1)
    # What a new connection re-sends of it now holds this part too.
    written = state.written.get(item.anchor or item.id)
    own = written[item.block_offset : item.block_offset + item.block_count] if written is not None else None
    state.items[item.id] = msgspec.structs.replace(
        item,
        block_count=item.block_count + 1,
        seen_parts=(*item.seen_parts, event.content_index),
        digest=item.digest if own is None else _digest(item.role or "", (*own, block)),
    )
    return Outcome(status="materialised", reason="a later content part joins its message", changes=(change,))


def reused_id(state: RealtimeState, parts: Sequence[RealtimeEvent]) -> str | None:
    """Why the canonical events one raw event means (``parts``) reuse the id
    of another accepted raw event, if they surely do (``None``: a new event,
    the same one again, or one that cannot be told apart from it). An adapter
    keys the parts of one raw event ``<id>\x00<n>`` (one part: ``<id>``), and
    only accepted parts are remembered, so another event under an accepted id
    shows as: a remembered part with other content, fewer parts than were
    accepted (part ``<id>\x00<count>`` is remembered), or the other keying."""
    ids = [part.event_id for part in parts]
    if not ids or any(event_id is None for event_id in ids):
        return None
    raw = ids[0].partition("\x00")[0]  # type: ignore[union-attr]
    seen = [state.event_ids.get(event_id) for event_id in ids]  # type: ignore[arg-type]
    if any(entry is not None and entry[1] != _digest_of(part) for entry, part in zip(seen, parts, strict=True)):
        return _reused(raw)
    if len(ids) > 1 and f"{raw}\x00{len(ids)}" in state.event_ids:
        return _reused(raw)
    other_keying = f"{raw}\x000" if len(ids) == 1 else raw
    return _reused(raw) if other_keying in state.event_ids else None


def _already_accepted(event_id: str) -> str:
    # The parts of one raw event are keyed "<event_id>\x00<n>": the reason names the raw event.
    return f"event {event_id.partition(chr(0))[0]} was already accepted"


def _reused(event_id: str) -> str:
    return (
        f"event {event_id.partition(chr(0))[0]} was already accepted with other content (or with content erased "
        "since): a redelivered event repeats what was accepted, so this one was refused (nothing of it was kept)"
    )


def _nothing_new(state: RealtimeState, item_id: str) -> Outcome:
    """A redelivered (or redundant) event about an item that is settled: it
    changes nothing, so it is a duplicate and nothing is stored, whether or
    not its event id is still remembered."""
    item = state.items.get(item_id)
    if item is not None and item.status == "deleted":
        why = "was deleted"
    elif item is not None and item.status in ("skipped", "out_of_band"):
        why = "is not in the transcript"
    else:
        why = "is settled"
    return Outcome(status="duplicate", reason=f"item {item_id} {why}; events about it after that are not stored")


def _response(state: RealtimeState, response_id: str) -> Response:
    response = state.responses.get(response_id)
    if response is None:
        response = state.responses[response_id] = Response(id=response_id, seen=_next(state))
    return response


def _complete(
    state: RealtimeState, event: AssistantTurnCompleted | AssistantTurnInterrupted, *, by_rule: bool = False
) -> Outcome:
    response = _response(state, event.response_id)
    if response.status != "in_flight":
        if response.closed_by_rule and isinstance(event, AssistantTurnCompleted) and not by_rule:
            # The provider's own end, after a rule closed the response: its
            # usage still counts, and the text its items got since (their
            # own ends delivered late) replaces what was placed of them.
            state.responses[response.id] = msgspec.structs.replace(response, closed_by_rule=False)
            late = event.usage
            counted: list[Change] = [RecordUsage(usage=late, response_id=response.id)] if late and late.total else []
            filled = _fill_late_output(state, response.id, complete=event.status == "completed")
            told = (
                "the text its items got since replaces what was placed of them"
                if filled
                else "its output stays as it was placed"
            )
            return Outcome(
                status="materialised" if filled else "staged",
                changes=(*counted, *filled),
                reason=f"response {response.id} was closed by rule before it ended; its usage is recorded now, {told}",
            )
        return Outcome(status="duplicate", reason=f"response {event.response_id} already ended; nothing new")
    status, usage = ("cancelled", None) if isinstance(event, AssistantTurnInterrupted) else (event.status, event.usage)
    out_of_band = response.out_of_band or (isinstance(event, AssistantTurnCompleted) and event.out_of_band)
    changes: list[Change] = []
    if usage is not None and (usage.input or usage.output):  # once: a response ends only once
        changes.append(RecordUsage(usage=usage, response_id=response.id))
    response = msgspec.structs.replace(response, status=status, out_of_band=out_of_band, closed_by_rule=by_rule)
    state.responses[response.id] = response
    reasons = []
    ours = sorted(
        (item for item in state.items.live.values() if item.response_id == response.id), key=lambda item: item.seen
    )
    if out_of_band:
        reported = [item for item in ours if not item.in_conversation]
        changes.extend(_report_out_of_band(state, response, reported))
        ours = [item for item in ours if item.in_conversation]
        reasons.append("an out-of-band response ended: its output is reported, not placed")
    # The provider keeps an item that produced something (the partial output
    # of a cancelled response stays, and the next item points at it); an item
    # that produced nothing is dropped.
    for item in ours:
        if item.kind == "message" and not any(text for _, _, text, _ in item.parts):
            item = msgspec.structs.replace(item, kind="skipped")
        # A provider that never says where response items go: arrival order.
        state.items[item.id] = msgspec.structs.replace(item, announced=True)
    if not out_of_band:
        # A response that started after a user item was announced has ended:
        # that item's text is not needed to go on (a transcript may still land).
        for item in list(state.items.live.values()):
            if item.role == "user" and item.kind == "message" and item.seen < response.seen and not item.text_optional:
                state.items[item.id] = msgspec.structs.replace(item, text_optional=True)
        lost = _lost_predecessors(state, response.seen)
        if lost:
            reasons.append(f"{len(lost)} item(s) waited for a predecessor that never came; placed at the end")
    return Outcome(status="staged", reason="; ".join(reasons) or None, changes=tuple(changes))


def _lost_predecessors(state: RealtimeState, before: int) -> list[str]:
    """Items announced before a response that has now ended, still waiting
    for a predecessor nobody announced: the provider announces an item
    before anything that follows it, so that predecessor is lost. They go
    to the end, in announcement order."""
    lost = []
    for item in sorted(state.items.live.values(), key=lambda item: item.seen):
        current = state.items.live.get(item.id)
        if current is None or current.seen >= before or current.previous in (None, UNKNOWN):
            continue
        if current.previous not in state.items or _in_cycle(state, current):
            state.items[item.id] = msgspec.structs.replace(current, previous=state.tail, seen=_next(state))
            lost.append(item.id)
    return lost


def _in_cycle(state: RealtimeState, item: Item) -> bool:
    """Whether following predecessors through pending items comes back to ``item``."""
    visited = set()
    current: Item | None = item
    while current is not None and current.previous not in (None, UNKNOWN):
        if current.previous == item.id:
            return True
        if current.id in visited:
            return False  # a cycle further up, which its own first item breaks
        visited.add(current.id)
        current = state.items.live.get(current.previous)
    return False


def _next(state: RealtimeState) -> int:
    state.counter += 1
    return state.counter


def _report_out_of_band(state: RealtimeState, response: Response, items: list[Item]) -> list[Change]:
    blocks: list[Block] = []
    for item in items:
        blocks.extend(_blocks(item))
        state.items[item.id] = msgspec.structs.replace(
            item,
            status="out_of_band",
            parts=(),
            images=(),
            output=None,
            arguments=None,
            name=None,
            after=_after(state, state.tail),
            placed=_next(state),
        )
    if not blocks:
        return []
    message = Message(
        role="assistant",
        blocks=tuple(blocks),
        provider_item_id=items[0].id,
        incomplete=response.status in ("cancelled", "incomplete", "failed"),
    )
    return [
        OutOfBandMessage(
            response_id=response.id, status=response.status, message=message, item_ids=tuple(item.id for item in items)
        )
    ]


def _delete(state: RealtimeState, item_id: str) -> Outcome:
    item = state.items.get(item_id)
    if item is None:
        after = _after(state, state.tail)  # never placed: what points at it follows the tail
        state.items[item_id] = Item(id=item_id, seen=_next(state), status="deleted", after=after, before=after)
        return Outcome(status="discarded", reason=f"item {item_id} deleted before it was seen; it will not appear")
    if item.status == "materialised":
        assert item.anchor is not None
        change = RemoveItem(anchor=item.anchor, item_id=item_id, offset=item.block_offset, count=item.block_count)
        _shift(state, item, -item.block_count)
        state.items[item_id] = msgspec.structs.replace(item, status="deleted", block_count=0)
        siblings = [
            other
            for other in state.items.settled.values()
            if other.anchor == item.anchor and other.status == "materialised"
        ]
        if not any(other.block_count for other in siblings):
            # The whole message goes: what followed it follows what it followed.
            for other in [*siblings, state.items[item_id]]:
                state.items[other.id] = msgspec.structs.replace(other, after=item.before)
        return Outcome(status="materialised", changes=(change,))
    if item.deleted:
        return _nothing_new(state, item_id)
    if item.status == "pending":
        # It never shows, but keeps its place in the chain (a tombstone that
        # settles when reached), so that the items after it are not blocked.
        state.items[item_id] = msgspec.structs.replace(
            item, kind="skipped", deleted=True, parts=(), images=(), announced=True
        )
    else:
        state.items[item_id] = msgspec.structs.replace(item, status="deleted")
    return Outcome(status="discarded", reason=f"item {item_id} deleted before it became a message")


def _truncate(state: RealtimeState, event: AssistantTranscriptTruncated) -> Outcome:
    if erased_text(event.text):  # what was heard was erased: the cut stands, without it
        event = msgspec.structs.replace(event, text=None)
    item = state.items.get(event.item_id)
    if item is None:
        return Outcome(status="discarded", reason=f"no item {event.item_id} to truncate")
    if item.status in ("deleted", "skipped", "aliased", "out_of_band") or (
        event.text is None and item.truncated_at_ms == event.audio_end_ms
    ):
        return _nothing_new(state, event.item_id)
    if item.status == "pending":
        if event.text is not None:
            item = _set_part(item, event.content_index, "transcript", event.text, final=True, append=False)
            parts = tuple(
                (i, lane, text, True) if i == event.content_index else (i, lane, text, final)
                for i, lane, text, final in item.parts
            )
            item = msgspec.structs.replace(item, parts=parts)
        state.items[item.id] = msgspec.structs.replace(item, truncated_at_ms=event.audio_end_ms)
        return Outcome(status="staged", reason="truncation recorded; it applies when the item becomes a message")
    if item.status != "materialised" or item.anchor is None:
        return Outcome(status="discarded", reason=f"item {event.item_id} did not become a message")
    # Already a message: an audited rewrite of its spoken transcript.
    state.items[item.id] = msgspec.structs.replace(item, truncated_at_ms=event.audio_end_ms)
    change = TruncateItem(
        anchor=item.anchor,
        item_id=item.id,
        offset=item.block_offset,
        count=item.block_count,
        audio_end_ms=event.audio_end_ms,
        text=event.text,
    )
    return Outcome(status="materialised", reason="truncation after materialisation", changes=(change,))


def _shift(state: RealtimeState, item: Item, delta: int) -> None:
    """Items after ``item`` in the same message move by ``delta`` blocks."""
    if not delta:
        return
    for other in list(state.items.values()):
        if other.anchor == item.anchor and other.id != item.id and other.block_offset > item.block_offset:
            state.items[other.id] = msgspec.structs.replace(other, block_offset=other.block_offset + delta)


def _replacement(
    state: RealtimeState, item: Item, blocks: tuple[Block, ...], reason: str, *, complete: bool = False
) -> ReplaceItem:
    """The change that puts ``blocks`` where ``item``'s blocks are in its
    message; the items after it there move. The caller records the item."""
    assert item.anchor is not None
    change = ReplaceItem(
        anchor=item.anchor,
        item_id=item.id,
        offset=item.block_offset,
        count=item.block_count,
        blocks=blocks,
        reason=reason,
        complete=complete,
    )
    _shift(state, item, len(blocks) - item.block_count)
    return change


def _replace_blocks(state: RealtimeState, item: Item, blocks: tuple[Block, ...], reason: str) -> ReplaceItem:
    change = _replacement(state, item, blocks, reason)
    state.items[item.id] = msgspec.structs.replace(
        item,
        awaiting_text=False,
        block_count=len(blocks),
        seen_parts=(0,),
        parts=(),
        digest=_digest(item.role or "", blocks),
    )
    return change


# -- placement ------------------------------------------------------------------------
#
# The settled items form a prefix of the conversation that ends at ``tail``.
# A pending item whose predecessor is the tail extends it (an appended
# message); one whose predecessor settled earlier is inserted behind it (an
# audited insertion), unless nothing was placed after that predecessor, in
# which case inserting and appending are the same.


def _after(state: RealtimeState, item_id: str | None) -> str | None:
    """The message after which the successors of ``item_id`` go (``None``: the start)."""
    if item_id is None:
        return None
    item = state.items.get(item_id)
    return None if item is None else item.after


def _position(state: RealtimeState, item: Item) -> Literal["frontier", "behind", "waiting"]:
    previous = item.previous
    if not item.announced:
        return "waiting"
    if previous == UNKNOWN:
        # A provider that never says where items go: arrival order, once every
        # conversation item seen before this one has settled.
        if item.kind == "function_call_output" or not _first_in_arrival(state, item):
            return "waiting"
        return "frontier"
    if previous == state.tail:
        return "frontier"
    if previous is not None and not _settled(state.items.get(previous)):
        return "waiting"
    if _after(state, previous) == _after(state, state.tail):
        return "frontier"  # nothing was placed after its predecessor: the same as the tail
    return "behind"


def _first_in_arrival(state: RealtimeState, item: Item) -> bool:
    for other in state.items.live.values():
        if other.seen < item.seen and other.announced and not _outside(state, other):
            return False
    return True


def _outside(state: RealtimeState, item: Item) -> bool:
    """An item that cannot hold anything back: one of an out-of-band response
    that the conversation never announced."""
    if item.in_conversation or item.response_id is None:
        return False
    response = state.responses.get(item.response_id)
    return response is not None and response.out_of_band


def _ready(state: RealtimeState, item: Item) -> bool:
    if item.kind == "skipped":
        return True
    if item.kind == "function_call_output":
        return True
    if item.role in ("user", "system"):
        return (
            any(final for _, _, _, final in item.parts)
            or bool(item.images)
            or item.transcript_failed
            or (item.complete and not item.audio)
        )
    if item.response_id is None:
        # Written by the client, not produced by a response: whole when announced so.
        return item.complete
    response = state.responses.get(item.response_id)
    return response is not None and response.status != "in_flight"


def _placeable(state: RealtimeState, item: Item) -> bool:
    """Ready, or a user item that may go without its text (never one held by a re-seeded run)."""
    if item.stands_for is not None:
        return False
    return _ready(state, item) or (item.role == "user" and item.kind == "message" and item.text_optional)


def _materialise(state: RealtimeState) -> list[Change]:
    changes: list[Change] = []
    while True:
        progressed = False
        pending = sorted(state.items.live.values(), key=lambda item: -item.seen)  # later announced first
        position = {item.id: _position(state, item) for item in pending}  # valid until something settles
        frontier = [item for item in pending if position[item.id] == "frontier" and item.previous != UNKNOWN]
        frontier += sorted(
            (item for item in pending if position[item.id] == "frontier" and item.previous == UNKNOWN),
            key=lambda item: item.seen,
        )
        if frontier and state.reseed and (frontier[0].stands_for or _reseed_candidate(state, frontier[0])):
            candidate = frontier[0] if not frontier[0].stands_for else _next_in_run(state, frontier[0])
            if candidate is not None and not _reseed_candidate(state, candidate) and _placeable(state, candidate):
                changes.extend(_stop_reseed(state))  # the conversation went on without finishing the run
                progressed = True
            elif candidate is not None and _reseed_candidate(state, candidate):
                step = _reseed_step(state, candidate)
                if step is not None:
                    changes.extend(step)
                    progressed = True
        if frontier and not progressed and not frontier[0].stands_for:
            first = frontier[0]
            if _placeable(state, first) or (
                first.role == "user" and first.kind == "message" and _later_ready(state, first)
            ):
                changes.extend(_settle(state, _group(state, first), behind=False))
                progressed = True
        if not progressed:
            for item in pending:
                if position[item.id] == "behind" and _placeable(state, item):
                    changes.extend(_settle(state, [item], behind=True))
                    progressed = True
                    break
        if not progressed:
            return changes


def _later_ready(state: RealtimeState, item: Item) -> bool:
    """Whether an item after ``item`` in its chain is ready to be placed."""
    following: dict[str | None, list[Item]] = {}
    for other in state.items.live.values():
        following.setdefault(other.previous, []).append(other)
    waiting, visited = [item.id], {item.id}
    while waiting:
        for other in following.get(waiting.pop(), ()):
            if _placeable(state, other):
                return True
            if other.id not in visited:
                visited.add(other.id)
                waiting.append(other.id)
    return False


def _group(state: RealtimeState, first: Item) -> list[Item]:
    """``first`` and the items that follow it in one message: the rest of its
    response, or the other outputs answering the same tool uses."""
    group = [first]
    if first.kind == "skipped" or first.role in ("user", "system") or not _ready(state, first):
        return group
    outputs = first.kind == "function_call_output"
    if not outputs and first.response_id is None:
        return group  # an item the client wrote is a whole message, however its successors arrive
    current = first
    while True:
        following = [
            other
            for other in state.items.live.values()
            if other.previous == current.id
            and _ready(state, other)
            and other.kind != "skipped"
            and ((other.kind == "function_call_output") == outputs)
            and (outputs or other.response_id == first.response_id)
        ]
        if len(following) != 1:
            return group
        current = following[0]
        group.append(current)


def _blocks(item: Item) -> tuple[Block, ...]:
    """What ``item`` adds to its message; never what an erasure left of it."""
    if item.kind == "function_call":
        return (ToolUse(id=item.call_id or item.id, name=item.name or "", arguments=item.arguments or "{}"),)
    if item.kind == "function_call_output":
        output = "" if erased_text(item.output) else item.output or ""
        return (ToolResult(tool_use_id=item.call_id or item.id, content=(Text(text=output),)),)
    ordered: list[tuple[int, Block]] = [(i, image) for i, image in item.images if image.ref != ERASED_TEXT]
    spoken_input = item.role in ("user", "system")
    for index, lane, text, final in item.parts:
        if not text or (spoken_input and not final) or erased_text(text):
            continue  # a user's partial transcription is not their words yet
        if lane == "transcript":
            ordered.append((index, Transcript(text=text, truncated_at_ms=item.truncated_at_ms)))
        else:
            ordered.append((index, Text(text=text)))
    ordered.sort(key=lambda pair: pair[0])
    return tuple(block for _, block in ordered)


def _digest(role: str, blocks: tuple[Block, ...]) -> bytes:
    said = []
    for block in blocks:
        if isinstance(block, (Text, Transcript)):
            said.append(block.text)
        elif isinstance(block, ToolUse):
            said.append(f"\x01{block.id}\x01{block.name}\x01{block.arguments}")
        elif isinstance(block, ToolResult):
            said.append(f"\x02{block.tool_use_id}\x02{block.content_text}")
    text = "\n".join(said)
    return hashlib.blake2b(f"{role}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _reseed_candidate(state: RealtimeState, item: Item) -> bool:
    """A whole message the client wrote on a new connection, while it may be re-sending history."""
    return (
        bool(state.reseed)
        and item.kind in ("message", "function_call", "function_call_output")
        and item.response_id is None
        and not item.audio
        and (_ready(state, item))
    )


def _reseed_step(state: RealtimeState, item: Item) -> list[Change] | None:
    """Match ``item`` against the history a new connection may be re-sending.

    Matched items are held, not placed, until the run reaches the last message
    of the old transcript: only then are they the same messages (aliased to
    them). A run that stops short (a response starts, spoken input comes, an
    item differs) was new after all, and its items are placed as written.
    Every way the run so far can follow the old transcript is kept (a
    message may occur twice; a run may start anywhere and leave erased
    messages out), and it ends once every way still kept reached the end.
    ``None``: not part of a run, place it as usual."""
    digest = _digest(item.role or "", _blocks(item))
    reseed = state.reseed
    starts: tuple[tuple[int, ...], ...] = state.reseed_paths if state.reseed_started else ((),)
    paths: dict[int, tuple[int, ...]] = {}  # by the last message matched: the rest of the run is the same
    for path in starts:
        for index in _next_messages(reseed, path):
            original, known = reseed[index]
            if known == digest or (known == _ANY and _resends(state.items.get(original), item)):
                paths.setdefault(index, (*path, index))
    if not paths:
        return _stop_reseed(state) if state.reseed_started else None
    state.reseed_paths, state.reseed_started = tuple(paths.values()), True
    state.reseed_items = (*state.reseed_items, item.id)
    first = state.reseed_paths[0]
    state.items[item.id] = msgspec.structs.replace(item, stands_for=reseed[first[-1]][0])
    # Ended only when no way is still on its way (a whole history re-sent
    # whose start repeats its end would end early, the rest added twice).
    if all(_whole(state, path) for path in state.reseed_paths):
        return _finish_reseed(state, max(state.reseed_paths, key=len))
    return []


def _next_messages(reseed: tuple[tuple[str, bytes], ...], path: tuple[int, ...]) -> range:
    """Where a run goes on after ``path``: anywhere, before it started; else
    the next message, or one after erased messages left out (up to the
    first message that is not erased)."""
    if not path:
        return range(len(reseed))
    after = path[-1] + 1
    ahead = next((index for index in range(after, len(reseed)) if reseed[index][1] != _ANY), len(reseed) - 1)
    return range(after, ahead + 1)


def _whole(state: RealtimeState, path: tuple[int, ...], *, stopped: bool = False) -> bool:
    """Whether a run along ``path`` re-sends the old transcript up to its end.
    It re-sent a message as it was, and its last item is one a client
    writes only to re-send it (a reply, a call, an output) or a message
    re-sent as it was: an item standing for the erased words of a user may
    be new words. After it, only erased messages a client may leave out:
    the user's words, or, once the run stopped (a response started, say),
    any erased message."""
    reseed = state.reseed
    last, known = reseed[path[-1]]
    if all(reseed[index][1] == _ANY for index in path) or (known == _ANY and not _only_resent(state.items.get(last))):
        return False
    return all(
        known == _ANY and (stopped or not _only_resent(state.items.get(original)))
        for original, known in reseed[path[-1] + 1 :]
    )


#: In ``RealtimeState.reseed``, an erased message: its content cannot be compared.
_ANY = b""


def _resends(original: Item | None, item: Item) -> bool:
    """Whether ``item`` may be the re-sent copy of ``original``, an erased
    message: one of its kind, and for a call or its output, of its call."""
    if original is None or original.kind != item.kind or original.role != item.role:
        return False
    return item.kind == "message" or original.call_id == item.call_id


def _only_resent(item: Item | None) -> bool:
    """An item a client writes only to re-send it: the assistant's words, a
    call, or the output of an old call (its own words it writes anew)."""
    return item is not None and (
        item.kind in ("function_call", "function_call_output") or (item.kind == "message" and item.role == "assistant")
    )


def _held(state: RealtimeState) -> list[Item]:
    """The items the run holds, in the order they were matched."""
    return [state.items[ident] for ident in state.reseed_items]


def _finish_reseed(state: RealtimeState, path: tuple[int, ...]) -> list[Change]:
    """The run reached the end of the old transcript along ``path``: each held
    item is the message it re-sends there; held items past the path's end
    were new after all."""
    changes: list[Change] = []
    held = _held(state)
    for item, index in zip(held, path, strict=False):
        original = state.reseed[index][0]
        state.aliases = {**state.aliases, item.id: original}
        # Its successors go after the message the original is in (one item
        # of a response's merged message, or an output joined to another's).
        found = state.items.get(original)
        after = found.after if found is not None and found.after is not None else original
        state.items[item.id] = msgspec.structs.replace(
            item, status="aliased", parts=(), images=(), after=after, before=after, placed=_next(state)
        )
        state.tail = item.id
        changes.append(Reseeded(item_id=item.id, original=original))
        # What the live conversation did to it while the run went on.
        if item.deleted:
            changes.extend(_delete(state, original).changes)
        elif item.truncated_at_ms is not None:
            cut = AssistantTranscriptTruncated(item_id=original, audio_end_ms=item.truncated_at_ms)
            changes.extend(_truncate(state, cut).changes)
    for item in held[len(path) :]:
        state.items[item.id] = msgspec.structs.replace(item, stands_for=None)
    state.reseed, state.reseed_started, state.reseed_items, state.reseed_paths = (), False, (), ()
    return changes


def _stop_reseed(state: RealtimeState) -> list[Change]:
    """The run stops: whole along the longest way that reached the end;
    else up to its last re-sent reply, call or output (which a client
    writes only to re-send) if only erased messages come after that; else
    its items were new after all (so a typed "yes" that repeats an old
    message is never swallowed)."""
    held = _held(state)
    whole = [path for path in state.reseed_paths if _whole(state, path)] if state.reseed_started else []
    if whole:
        return _finish_reseed(state, max(whole, key=len))
    for path in state.reseed_paths if state.reseed_started else ():
        for length in range(len(path), 0, -1):
            if _only_resent(held[length - 1]) and _whole(state, path[:length], stopped=True):
                return _finish_reseed(state, path[:length])
    _end_reseed(state)
    return []


def _end_reseed(state: RealtimeState) -> None:
    """No (more) re-seeding: held items were new messages after all."""
    for item in _held(state):
        state.items[item.id] = msgspec.structs.replace(item, stands_for=None)
    state.reseed, state.reseed_started, state.reseed_items, state.reseed_paths = (), False, (), ()


def _next_in_run(state: RealtimeState, first: Item) -> Item | None:
    """The first item after the held run that starts at ``first``."""
    # Each item's successors, read once: a scan of every waiting item per
    # step made a long re-sent history cost its length cubed.
    following: dict[str | None, list[Item]] = {}
    for item in state.items.live.values():
        following.setdefault(item.previous, []).append(item)
    current, walked = first, {first.id}
    while True:
        after = following.get(current.id)
        if not after:
            return None
        nxt = max(after, key=lambda item: item.seen)
        if nxt.stands_for is None or nxt.id in walked:
            return nxt if nxt.stands_for is None else None
        current = nxt
        walked.add(nxt.id)


def _place_without_message(state: RealtimeState, item: Item) -> None:
    """A settled item that adds no message still takes its place in the chain."""
    before = _after(state, item.previous) if item.previous not in (UNKNOWN,) else _after(state, state.tail)
    state.items[item.id] = msgspec.structs.replace(item, after=before, before=before, placed=_next(state))
    if item.previous == state.tail or item.previous == UNKNOWN or before == _after(state, state.tail):
        state.tail = item.id


def _settle(state: RealtimeState, group: list[Item], *, behind: bool) -> list[Change]:
    first = group[0]
    response = state.responses.get(first.response_id) if first.response_id is not None else None
    if response is not None and response.dropped:  # items of a dropped reply that came after the drop
        for item in group:
            _place_without_message(state, msgspec.structs.replace(item, status="skipped", parts=()))
        return []
    if first.kind == "skipped":
        status: Status = "deleted" if first.deleted else "skipped"
        _place_without_message(state, msgspec.structs.replace(first, status=status, parts=()))
        return []
    if first.kind == "function_call_output" and not any(
        other.kind == "function_call" and other.call_id == first.call_id for other in state.items.values()
    ):
        _place_without_message(state, msgspec.structs.replace(first, status="skipped", parts=(), output=None))
        return [UnansweredOutput(item_id=first.id, call_id=first.call_id or "")]
    joined = _joined_output(state, first, behind=behind)
    if joined is not None:
        # The outputs after it, ready with it (one that arrived before it, say), join too.
        for other in group[1:]:
            joined += _joined_output(state, other) or []
        return joined
    blocks: list[Block] = []
    owned: list[tuple[Item, tuple[Block, ...]]] = []
    for item in group:
        own = _blocks(item)
        owned.append((item, own))
        blocks.extend(own)
    before = _after(state, first.previous) if behind else _after(state, state.tail)
    offset = 0
    for item, own in owned:
        awaiting = (
            item is first
            and item.role == "user"
            and not own
            and not item.transcript_failed
            and not any(erased_text(text) for _, _, text, _ in item.parts)  # it said something, erased since
        )
        # Assistant output a rule placed unfinished (a new connection, say):
        # its own end, delivered late, may still bring the rest of its text.
        awaiting = awaiting or (item.kind in _LATE_KINDS and (item.closed_early or _closed_by_rule(state, item)))
        state.items[item.id] = msgspec.structs.replace(
            item,
            status="materialised",
            parts=item.parts if awaiting else (),
            output=None,
            arguments=None,
            name=None,
            images=(),
            anchor=first.id,
            after=first.id,
            before=before,
            awaiting_text=awaiting,
            block_offset=offset,
            block_count=len(own),
            placed=_next(state),
            seen_parts=tuple(index for index, _, text, _ in item.parts if text),
            digest=_digest(item.role or "", own),  # each item's own: a new connection re-sends items
        )
        offset += len(own)
    if not behind:
        state.tail = group[-1].id
    _adopt_siblings(state, first, group[-1])
    role = _message_role(first)
    if role == "tool_results" and not blocks:
        return []
    incomplete = False
    if role == "assistant" and first.response_id is not None:
        response = state.responses.get(first.response_id)
        incomplete = response is not None and response.status in ("cancelled", "incomplete", "failed")
    message = Message(
        role=role,  # type: ignore[arg-type]
        blocks=tuple(blocks),
        provider_item_id=first.id,
        incomplete=incomplete,
    )
    ids = tuple(item.id for item in group)
    if behind:
        return [InsertMessage(after=before, message=message, item_ids=ids)]
    return [AppendMessage(message=message, item_ids=ids)]


def _joined_output(state: RealtimeState, item: Item, *, behind: bool = False) -> list[Change] | None:
    """A tool output placed right after another one: its result joins that
    output's tool_results message (``late_content``), as the results of one
    assistant message's parallel calls belong together; two tool_results
    messages in a row are a transcript no model API takes. Placed at the
    tail, or (``behind``) right after its predecessor, before what was
    placed after it."""
    previous = item.previous if behind else state.tail
    if previous is not None:  # a re-sent output stands for the one it re-sends
        previous = state.aliases.get(previous, previous)
    last = state.items.get(previous) if previous is not None else None
    if item.kind != "function_call_output" or last is None or last.status != "materialised" or last.anchor is None:
        return None
    if last.kind == "function_call_output":
        anchor, offset = last.anchor, last.block_offset + last.block_count
    elif behind and last.kind == "function_call":
        # Right after a call of a message whose results follow it: among
        # them, after the results of the calls before it.
        found = _results_after_calls(state, last)
        if found is None:
            return None
        anchor, offset = found
    else:
        return None
    own = _blocks(item)
    if behind:  # the blocks of the message after it move on
        for other in list(state.items.values()):
            if other.anchor == anchor and other.id != last.id and other.block_offset >= offset:
                state.items[other.id] = msgspec.structs.replace(other, block_offset=other.block_offset + len(own))
    message = state.items[anchor]  # the first item of the message it joins
    state.items[item.id] = msgspec.structs.replace(
        item,
        status="materialised",
        parts=(),
        output=None,
        anchor=anchor,
        after=message.after,
        before=message.before,
        block_offset=offset,
        block_count=len(own),
        placed=_next(state),
        digest=_digest(item.role or "", own),
    )
    tail = state.items.get(state.tail) if state.tail is not None else None
    if not behind or (tail is not None and tail.anchor == anchor and offset > tail.block_offset):
        state.tail = item.id  # the last result of the last message: what comes next goes after it
    _adopt_siblings(state, item, item)
    return [ReplaceItem(anchor=anchor, item_id=item.id, offset=offset, count=0, blocks=own, reason="late_content")]


def _results_after_calls(state: RealtimeState, call: Item) -> tuple[str, int] | None:
    """The message of results right after the message holding ``call`` (its
    anchor), and where in it a result placed right after ``call`` goes:
    after the results that follow the calls before it in that message."""
    calls = call.anchor
    following = [
        other
        for other in state.items.values()
        if other.status == "materialised" and other.anchor == other.id and other.before == calls
    ]
    if not following:
        return None
    results = max(following, key=lambda other: other.placed)  # the latest placed right after it comes first
    if results.kind != "function_call_output":
        return None
    held = sorted(
        (other for other in state.items.values() if other.anchor == results.id and other.status == "materialised"),
        key=lambda other: other.block_offset,
    )
    for other in held:
        root, walked = other, {other.id}
        while root.kind == "function_call_output" and root.previous is not None and root.previous not in walked:
            before = state.items.get(root.previous)
            if before is None:
                break
            root = before
            walked.add(root.id)
        if not (root.kind == "function_call" and root.anchor == calls and root.block_offset < call.block_offset):
            return results.id, other.block_offset
    return results.id, held[-1].block_offset + held[-1].block_count if held else 0


def _message_role(first: Item) -> str:
    """The role of the message an item starts: a function call is the
    assistant's, its output a tool result, whatever role an event guessed."""
    return {"function_call_output": "tool_results", "function_call": "assistant"}.get(
        first.kind, first.role or "assistant"
    )


def _adopt_siblings(state: RealtimeState, first: Item, last: Item) -> None:
    """Pending items announced after the same predecessor before ``first``
    now come after it (insert-after: the later announced goes first)."""
    for other in list(state.items.live.values()):
        if other.previous == first.previous and other.seen < first.seen and other.previous != UNKNOWN:
            state.items[other.id] = msgspec.structs.replace(other, previous=last.id)


def _forget_settled_event_ids(state: RealtimeState) -> None:
    """Drop accepted event ids of settled items: a redelivered event for a
    settled item is recognised by the item's status, so the ids (one per
    delta) need not be kept forever. A pass runs when the ids have doubled
    since the last one, so a long response in flight (whose ids must stay)
    does not make every delta scan them all."""
    if len(state.event_ids) < state.forget_at:
        return
    state.event_ids = _EventIds(
        {event_id: seen for event_id, seen in state.event_ids.items() if seen[0] is None or not _ended(state, seen[0])}
    )
    state.forget_at = max(_FORGET_AT, 2 * len(state.event_ids))


def _ended(state: RealtimeState, key: str) -> bool:
    """Whether the item or response an accepted event concerns has settled."""
    if key.startswith(_RESPONSE):
        response = state.responses.get(key[len(_RESPONSE) :])
        return response is not None and response.status != "in_flight"
    item = state.items.get(key)
    # A user item placed without its text still takes a late transcription:
    # the ids of its deltas must stay, or a redelivered delta counts twice.
    return _settled(item) and not (item is not None and item.awaiting_text)


_LATE = "output of a response closed by rule: it replaces what was placed when the response ends"
_LATE_FINAL = "the final output of a response closed by rule replaces what was placed of it"
_LATE_KINDS = ("message", "function_call")  # assistant items whose output may come after a rule placed them


def _closed_by_rule(state: RealtimeState, item: Item) -> bool:
    """Whether ``item`` is assistant output of a response a rule closed, which
    the provider has not ended yet (its items announced after the close are
    placed at once, unfinished)."""
    response = state.responses.get(item.response_id) if item.response_id is not None else None
    return item.role == "assistant" and response is not None and response.closed_by_rule


def _late_output(state: RealtimeState, item_id: str, response_id: str | None) -> Item | None:
    """The placed assistant item ``item_id`` if a rule placed it unfinished
    and the provider has not ended its response yet (``response_id``, which
    the item learns here if its announcement did not say it): its late text
    is kept until that end."""
    item = state.items.get(item_id)
    if item is None or item.status != "materialised" or not item.awaiting_text or item.role != "assistant":
        return None
    if item.truncated_at_ms is not None:  # what was heard is the transcript: later text does not change it
        return None
    known = item.response_id or response_id
    response = state.responses.get(known) if known is not None else None
    if response is None or not response.closed_by_rule:
        return None
    return item if item.response_id == known else msgspec.structs.replace(item, response_id=known)


def _late_replaced(state: RealtimeState, item: Item, *, complete: bool = False) -> tuple[Change, ...]:
    """What ``item`` (placed by a rule, unfinished) holds now, in place of
    what was placed of it (nothing if that is what was placed, unless
    ``complete``: its response completed, so its message is no longer
    incomplete). It goes on waiting; a new connection may re-send it, as
    what it holds now."""
    blocks = _blocks(item)
    digest = _digest(item.role or "", blocks)
    if not blocks or (digest == item.digest and not complete):
        return ()
    change = _replacement(state, item, blocks, "late_content", complete=complete)
    state.items[item.id] = msgspec.structs.replace(item, block_count=len(blocks), digest=digest)
    state.reseed = tuple((ident, digest if ident == item.id else known) for ident, known in state.reseed)
    return (change,)


def _fill_late_output(state: RealtimeState, response_id: str | None, *, complete: bool) -> list[Change]:
    """The items a rule placed unfinished, given the output they got since:
    of ``response_id`` when the provider ends it (``complete``: it ended
    completed, so the message is no longer incomplete), after which they
    stop waiting; of every response (``None``) when a rule closes the call
    again, and they go on waiting for their response's end."""
    changes: list[Change] = []
    for item in sorted(state.items.values(), key=lambda item: item.placed):
        if item.status != "materialised" or not item.awaiting_text or item.role != "assistant":
            continue
        if response_id is not None and item.response_id != response_id:
            continue
        if item.truncated_at_ms is None:  # a truncation says what was heard: later text does not change it
            changes.extend(_late_replaced(state, item, complete=complete))
        if response_id is not None:
            state.items[item.id] = msgspec.structs.replace(state.items[item.id], awaiting_text=False, parts=())
    return changes


def _end_responses_by_rule(state: RealtimeState, *, dropped: bool = False) -> list[Change]:
    """End every response still in flight as incomplete, by the provider's own
    rule for an ending (what it produced stays, unless ``dropped``); its own
    end may still come."""
    changes: list[Change] = []
    for response_id in list(state.responses.live):
        ending = AssistantTurnCompleted(response_id=response_id, status="incomplete")
        changes.extend(_complete(state, ending, by_rule=True).changes)
        if dropped:
            state.responses[response_id] = msgspec.structs.replace(state.responses[response_id], dropped=True)
    return changes


def _close(state: RealtimeState) -> list[Change]:
    """Place everything pending: unfinished responses end as incomplete (what
    they produced stays), user items go without their text (a transcription
    may still land), and items waiting for a predecessor that never came go
    to the end, in announcement order."""
    stopped = _stop_reseed(state)  # a run of re-sent history that never finished was new messages
    # Output that came for items a rule placed before, whose responses have
    # not ended: placed as it is now (the call may never bring their end).
    changes = stopped + _fill_late_output(state, None, complete=False)
    changes += _end_responses_by_rule(state)
    for item in list(state.items.live.values()):
        item = msgspec.structs.replace(
            item,
            announced=True,
            complete=True,
            text_optional=item.role == "user" or item.text_optional,
            closed_early=item.role == "assistant" and item.kind in _LATE_KINDS and not item.complete,
        )
        if not _placeable(state, item):
            item = msgspec.structs.replace(item, kind="skipped")  # nothing can make it a message any more
        state.items[item.id] = item
    while True:
        changes.extend(_materialise(state))
        stuck = state.pending_items()
        if not stuck:
            return changes
        # The first item whose chain is broken goes after the tail.
        state.items[stuck[0].id] = msgspec.structs.replace(stuck[0], previous=state.tail, seen=_next(state))


def resolve(state: RealtimeState, policy: Literal["place", "drop"]) -> list[Change]:
    """Unblock everything pending: ``place`` puts each waiting item in its
    chain, or after the tail in announcement order when its chain is broken
    (ending unfinished responses as incomplete), ``drop`` discards them. The
    store records this as an audited event."""
    if policy == "place":
        return _close(state)
    changes = _end_responses_by_rule(state, dropped=True)
    for item in state.pending_items():
        current = state.items[item.id]
        if current.status == "pending":
            _place_without_message(
                state, msgspec.structs.replace(current, status="skipped", parts=(), images=(), previous=state.tail)
            )
    changes.extend(_materialise(state))
    return changes
