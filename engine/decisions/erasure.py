"""Erasure decided: which messages and realtime records an erasure reaches
(``Targets``, grown by ``expand``), each stored event with that content
replaced by placeholders (``erased_event``), and the audit event. The
facade reads the logs and rewrites them in the store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from engine.decisions._checks import at
from engine.decisions.ingestion import realtime_state
from engine.realtime.reducer import OutOfBandMessage, RealtimeState
from engine.state.content import Message, ToolResult, ToolUse, with_default_objects
from engine.state.events import (
    Event,
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    RealtimeRecorded,
    SessionForked,
)
from engine.state.realtime_events import FunctionCall, FunctionCallOutput, scrubbed
from engine.state.revisions import Reason
from engine.state.transcript import Session

__all__ = ["ErasedLog", "Targets", "View", "erase_inherited", "erase_log", "expand", "view_of"]

_replace = msgspec.structs.replace
_encode = msgspec.json.encode


def _encoded_blocks(message: Message) -> list[bytes]:
    """Each block's JSON in the form new content takes: a copy made today of
    a block stored by an earlier build (see ``as_stored``) encodes alike."""
    return [_encode(block) for block in with_default_objects(message).blocks]


class Targets:
    """What an erasure removes: messages by id (or by provider item id), every
    message and realtime record about the same provider items (a realtime
    message is rebuilt under new ids as its transcript arrives), the realtime
    records of the tool calls those messages make or answer, and fork
    replacements that still hold any of their blocks (``ReplaceBlock``
    copies the blocks it does not replace). A realtime function call (or
    its output) named by its item id is in the message that holds its tool
    use (or result), which carries another item's id: ``made`` and
    ``answered`` are the call ids of such items."""

    def __init__(self, message_ids: set[str], *, records_only: bool = False) -> None:
        self.ids = message_ids
        # Only the named items' own records (content ingestion found to be an
        # erased message's): no message, and no call's other side, through them.
        self.records_only = records_only
        self.items: set[str] = set()
        # The calls the erased messages make (their tool uses) and answer
        # (their results): the records of each side hold only that side's
        # content, so the other side's message, kept, keeps its records.
        self.uses: set[str] = set()
        self.results: set[str] = set()
        self.blocks: set[bytes] = set()
        self.made: set[str] = set()
        self.answered: set[str] = set()
        self.realtime: set[str] = set()  # ids of realtime items: only their messages hold realtime calls

    def hit(self, message: Message) -> bool:
        item = message.provider_item_id
        if message.id in self.ids or (item is not None and item in self.items):
            return True
        return self.holds_call(message)

    def holds_call(self, message: Message) -> bool:
        """Whether ``message`` is the realtime message holding the tool use (or
        result) of a function call item (or its output) named by its id."""
        item = message.provider_item_id
        if item is None or item not in self.realtime:
            return False
        if self.made and any(use.id in self.made for use in message.tool_uses):
            return True
        return bool(self.answered) and any(
            isinstance(block, ToolResult) and block.tool_use_id in self.answered for block in message.blocks
        )

    def hit_copy(self, message: Message) -> bool:
        return self.hit(message) or any(block in self.blocks for block in _encoded_blocks(message))

    def hit_elsewhere(self, message: Message) -> bool:
        """A hit outside what the erased session shows: a message about the
        same provider items, or one under its id that holds any of the
        erased content (a copy, or a continuation such as a tool_results
        message a fork added results to); a fork's own message that only
        shares the id is another message."""
        item = message.provider_item_id
        if item is not None and item in self.items:
            return True
        return message.id in self.ids and any(block in self.blocks for block in _encoded_blocks(message))

    def add(self, message: Message) -> None:
        if message.provider_item_id is not None:
            self.items.add(message.provider_item_id)
        self.uses.update(use.id for use in message.tool_uses)
        self.results.update(block.tool_use_id for block in message.blocks if isinstance(block, ToolResult))
        self.blocks.update(_encoded_blocks(message))

    def hit_realtime(self, event: object) -> bool:
        if getattr(event, "item_id", None) in self.items:
            return True
        # Only these two events carry a call id.
        if isinstance(event, FunctionCall):
            return event.call_id in self.uses
        return isinstance(event, FunctionCallOutput) and event.call_id in self.results


class View(NamedTuple):
    """What an erased session shows: its own log whole, and of the logs it
    was forked from only the messages it inherited (as (id, digest) pairs:
    a ``fork_at`` or ``fork_replacing`` leaves out the source's messages
    from the cut on, which the fork never showed)."""

    session_id: str
    inherited: frozenset[tuple[str | None, str]]

    def shows(self, session_id: str, message: Message) -> bool:
        return session_id == self.session_id or (message.id, message.digest) in self.inherited


def view_of(session_id: str, first: Session) -> View:
    """What ``session_id`` shows, given its state at version 1 (``first``:
    for a fork, what it inherited)."""
    return View(session_id, frozenset((message.id, message.digest) for message in first.messages))


def expand(targets: Targets, decoded: dict[str, list[tuple[int, Event]]], view: View) -> set[str]:
    """The target ids found in what the erased session shows (``view``: as
    message ids, or as provider item ids of its realtime records); grows
    ``targets`` until every message about the same items or tool calls, in
    the whole family, is in it."""
    seen: set[str] = set()
    called: dict[str, list[str]] = {}  # call id -> the named call (or output) items with it
    # The ingestion state of each log with realtime records: an item a new
    # connection re-sent stands for the message it re-sends (either id names
    # it), and a message holds every item placed in it.
    states: dict[str, RealtimeState] = {}
    # The items of each out-of-band response's output: one message, never
    # in the transcript, named by any of them.
    out_of_band: list[tuple[str, ...]] = []
    for sid, logged in decoded.items():
        if any(isinstance(event, RealtimeRecorded) for _, event in logged):
            reported: list[tuple[int, OutOfBandMessage]] = []
            states[sid] = realtime_state(logged, reported=reported)
            out_of_band += [change.item_ids for _, change in reported]
    # Re-sent items by the message they stand for: placed as aliases, or
    # still waiting for the rest of the re-sent run.
    resent = [
        {**state.aliases, **{item.id: item.stands_for for item in state.items.values() if item.stands_for}}
        for state in states.values()
    ]
    for stands_for in resent:
        for alias, original in stands_for.items():
            if alias in targets.ids:
                targets.ids.add(original)
                seen.add(original)  # named through the alias: not an id the caller gave
    for sid, logged in decoded.items():
        for _, event in logged:
            if not isinstance(event, RealtimeRecorded):
                continue
            recorded = event.event
            item = getattr(recorded, "item_id", None)
            if item is None:
                continue
            targets.realtime.add(item)
            if item not in targets.ids:
                continue
            if sid == view.session_id:
                seen.add(item)
                targets.items.add(item)
            # A call (or output) is placed in another item's message: the one
            # holding its tool use (or result), in this log or, for a fork,
            # in the log it was forked from.
            if targets.records_only:
                continue
            if isinstance(recorded, FunctionCall):
                targets.made.add(recorded.call_id)
                called.setdefault(recorded.call_id, []).append(item)
            elif isinstance(recorded, FunctionCallOutput):
                targets.answered.add(recorded.call_id)
                called.setdefault(recorded.call_id, []).append(item)
    for items in out_of_band:
        if any(item in targets.items or item in targets.ids for item in items):
            targets.items.update(items)
    messages: list[Message] = []
    elsewhere: list[Message] = []
    for sid, logged in decoded.items():
        for message in _messages_of(event for _, event in logged):
            (messages if view.shows(sid, message) else elsewhere).append(message)
    seen.update(message.id for message in messages if message.id in targets.ids)
    for message in messages:  # named by the provider's item id (an adapter's item, say)
        item = message.provider_item_id
        if item is not None and item in targets.ids:
            seen.add(item)
            targets.items.add(item)
    grown = True
    while grown:  # a message hit may bring more items, calls and content (whose copies elsewhere are hit)
        before = (len(targets.items), len(targets.uses), len(targets.results), len(targets.blocks))
        for message in messages:
            if targets.hit(message):
                targets.add(message)
        for message in elsewhere:
            if targets.hit_elsewhere(message):
                targets.add(message)
        grown = (len(targets.items), len(targets.uses), len(targets.results), len(targets.blocks)) != before
    for state in states.values():
        placed = [item.id for item in state.items.values() if item.anchor is not None and item.anchor in targets.items]
        targets.items.update(placed)
    for stands_for in resent:
        targets.items.update(alias for alias, original in stands_for.items() if original in targets.items)
    for message in messages:  # a call the erased session shows, in a message of another item
        if targets.holds_call(message):
            for block in message.blocks:
                call = block.id if isinstance(block, ToolUse) else getattr(block, "tool_use_id", None)
                seen.update(called.get(call, ()) if call is not None else ())
    return seen


class ErasedLog(msgspec.Struct, frozen=True):
    """One log's erasure: its events that held erased content, as they are
    to be stored now, and the audit event to append."""

    replaced: tuple[tuple[int, Event], ...]
    audit: MessagesErased


def erase_log(
    head: Session,
    decoded: Sequence[tuple[int, Event]],
    previous_head: str,
    targets: Targets,
    why: Reason,
    actor: str | None,
    now: datetime,
    view: View,
) -> ErasedLog | None:
    """The erasure of ``targets`` from one session's log (``None`` if the log
    holds none of their content): by id in what the erased session shows
    (``view``), elsewhere only copies of the erased content."""
    replaced: list[tuple[int, Event]] = []
    erased: dict[tuple[str, str], None] = {}  # (id, digest) pairs, in order: two messages may share an id
    items: dict[str, None] = {}  # realtime items emptied, in order

    def shown(message: Message) -> bool:
        return view.shows(head.id, message)

    for version, event in decoded:
        cleaned = _erased_event(event, targets, erased, shown, items)
        if cleaned is not event:
            replaced.append((version, cleaned))
    # An item whose records held no content yet (a spoken item waiting for
    # its transcription) is still recorded: what comes for it later is not kept.
    known = {ident for _, event in decoded if isinstance(event, MessagesErased) for ident in event.items}
    if not replaced and items.keys() <= known:
        return None
    versions = tuple(version for version, _ in replaced)
    return ErasedLog(tuple(replaced), _audit(head, erased, versions, previous_head, why, actor, now, tuple(items)))


def erase_inherited(
    head: Session,
    erased: Collection[tuple[str, str]],
    previous_head: str,
    why: Reason,
    actor: str | None,
    now: datetime,
    items: Collection[str] = (),
) -> ErasedLog | None:
    """The audit record for a session whose own log held none of the erased
    content but whose transcript shows some of it, inherited from the
    session it was forked from (``erased``: the (message id, digest) pairs
    of the logs that held it). Recording it there changes the session's
    log, so a copy cached anywhere catches up and shows the placeholders."""
    ids = {ident for ident, _ in erased}
    shown = {
        (m.id, m.digest): None for m in head.messages if m.id in ids and m.erased is None and (m.id, m.digest) in erased
    }
    if not shown:
        return None
    # What the family's logs emptied: the call the fork shows may be delivered to it.
    return ErasedLog((), _audit(head, shown, (), previous_head, why, actor, now, tuple(items)))


def _audit(
    head: Session,
    erased: dict[tuple[str, str], None],
    versions: tuple[int, ...],
    previous_head: str,
    why: Reason,
    actor: str | None,
    now: datetime,
    items: tuple[str, ...] = (),
) -> MessagesErased:
    """The audit event of an erasure: who, when, why, which ids and digests,
    which stored versions were rewritten, which realtime items it emptied;
    never the content."""
    return MessagesErased(
        at=at(now, head),
        actor=actor,
        message_ids=tuple(ident for ident, _ in erased),
        digests=tuple(digest for _, digest in erased),
        versions=versions,
        reason=why.kind,
        note=why.note,
        previous_head=previous_head,
        items=items,
    )


def _messages_of(events: Iterable[Event]) -> Iterable[Message]:
    for event in events:
        if isinstance(event, (MessagesAppended, MessagesRewritten)):
            yield from event.messages
        elif isinstance(event, SessionForked) and event.replacement is not None:
            yield event.replacement


def _erased_event(
    event: Event,
    targets: Targets,
    erased: dict[tuple[str, str], None],
    shown: Callable[[Message], bool],
    items: dict[str, None],
) -> Event:
    """``event`` with the targets' content removed, or ``event`` itself if it
    holds none (``shown``: whether a message of it is in what the erased
    session shows). Records each erased message's id and digest in
    ``erased``, and the realtime items emptied in ``items``."""

    def cleaned(message: Message, copies: bool = False) -> Message:
        hit = targets.hit_copy if copies else targets.hit if shown(message) else targets.hit_elsewhere
        if message.erased is not None or not hit(message):
            return message
        placeholder = message.erasure()
        assert placeholder.erased is not None
        erased.setdefault((message.id or "", placeholder.erased))
        if message.provider_item_id in targets.realtime:  # an item of a realtime call, not of another API
            items.setdefault(message.provider_item_id)
        return placeholder

    if isinstance(event, (MessagesAppended, MessagesRewritten)):
        messages = tuple(cleaned(message) for message in event.messages)
        if any(new is not old for new, old in zip(messages, event.messages, strict=True)):
            return _replace(event, messages=messages)
    elif isinstance(event, SessionForked) and event.replacement is not None:
        replacement = cleaned(event.replacement, copies=True)
        if replacement is not event.replacement:
            return _replace(event, replacement=replacement)
    elif isinstance(event, RealtimeRecorded) and targets.hit_realtime(event.event):
        ident = getattr(event.event, "item_id", None)
        if isinstance(ident, str):  # the item, not its call id: the call's other side may be kept
            items.setdefault(ident)
        inner = scrubbed(event.event)
        if inner is not event.event:
            return _replace(event, event=inner)
    return event
