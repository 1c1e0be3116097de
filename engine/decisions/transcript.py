"""The deciders: a state and a command in, the events that carry it out
and the state they lead to out. All the rules of a change live here (ranges,
tool pairing, no-op rewrites, fork points, expected revisions); nothing here
reads or writes a store, or the clock (``now`` is given)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from engine.decisions._checks import (
    at,
    check_ids_free,
    check_ids_not_items,
    check_items_free,
    check_items_not_realtime,
    check_no_placeholders,
    check_usage_added,
    with_revision_ids,
)
from engine.decisions.commands import (
    AddToolResults,
    Append,
    Command,
    Create,
    Fork,
    RecordUsage,
    Restore,
    Rewrite,
    SetHeader,
    SetTitle,
    UpdateMetadata,
)
from engine.errors import (
    InvalidArgument,
    InvalidForkPoint,
    InvalidMessage,
    InvalidRewriteRange,
    InvalidStatusTransition,
    InvalidTranscriptShape,
    NoOpRewrite,
    ReplacementMismatch,
    RevisionConflict,
)
from engine.state.content import Message, ReplaceBlock, ToolResult, a_role, hashed_alike, shown, with_default_objects
from engine.state.events import (
    Event,
    HeaderChanged,
    MessagesAppended,
    MessagesRewritten,
    MetadataChanged,
    SessionCreated,
    SessionForked,
    TitleChanged,
    UsageRecorded,
)
from engine.state.header import FINAL_STATUSES, TRANSITIONS
from engine.state.json_values import same_json
from engine.state.revisions import Commit, Reason, chain, chain_each, format_revision, span_digest
from engine.state.sequence import index_ids
from engine.state.transcript import Session, appended, check_shape, fold, forked, involves_tools, revision_bytes

__all__ = ["Decision", "changed_span", "commit_of", "decide", "decided", "rewrite_event"]


class Decision(NamedTuple):
    """The events a command stores, and the state after them."""

    events: tuple[Event, ...]
    state: Session


def decide(state: Session | None, command: Command, now: datetime) -> Decision:
    """The events that carry out ``command`` on ``state`` (``None`` for a
    session that does not exist yet: ``Create``; the source's head for
    ``Fork``), or the typed error that refuses it."""
    if isinstance(command, Create):
        if state is not None:
            raise InvalidArgument("Create starts a session; it takes no state")
        return _create(command, now)
    if state is None:
        raise InvalidArgument(f"{type(command).__name__} needs the session's state")
    if isinstance(command, Append):
        return _append(state, command, now)
    if isinstance(command, AddToolResults):
        return _add_tool_results(state, command, now)
    if isinstance(command, Rewrite):
        return _rewrite(state, command, now)
    if isinstance(command, Restore):
        return _restore(state, command, now)
    if isinstance(command, Fork):
        return _fork(state, command, now)
    # A title, header or metadata write that changes nothing writes nothing
    # (an agent that sets its status every turn would fill the audit trail).
    if isinstance(command, SetTitle):
        if command.title == state.title:
            return Decision((), state)
        event: Event = TitleChanged(at=at(now, state), actor=command.actor, title=command.title)
    elif isinstance(command, SetHeader):
        header = msgspec.structs.asdict(state.header)
        changes = {
            name: value
            for name, value in header_changes(state, command.changes).items()
            # Tags are a tuple in the header, a list in a change (as stored).
            if not same_json(list(header[name]) if name == "tags" else header[name], value)
        }
        if not changes:
            return Decision((), state)
        event = HeaderChanged(at=at(now, state), actor=command.actor, changes=changes)
    elif isinstance(command, UpdateMetadata):
        held = state.metadata
        values = {key: new for key, new in command.set.items() if key not in held or not same_json(held[key], new)}
        unset = tuple(key for key in command.unset if key in held)
        if not values and not unset:
            return Decision((), state)
        event = MetadataChanged(at=at(now, state), actor=command.actor, set=values, unset=unset)
    elif isinstance(command, RecordUsage):
        check_usage_added(state.usage, command.usage)
        event = UsageRecorded(
            at=at(now, state), actor=command.actor, usage=command.usage, response_id=command.response_id
        )
    else:
        raise InvalidArgument(f"not a command: {type(command).__name__}")
    return decided(state, (event,))


def header_changes(state: Session, changes: dict[str, Any]) -> dict[str, Any]:
    """The header change that carries out ``changes`` on ``state``: a status
    the lifecycle allows from the current one; an outcome only with a status
    that ended (finished, failed, cancelled); a session that starts running
    again loses the outcome of the run that ended."""
    current = state.header
    status = changes.get("status", current.status)
    if status != current.status and status not in TRANSITIONS[current.status]:
        allowed = sorted(TRANSITIONS[current.status])
        raise InvalidStatusTransition(
            f"session {state.id!r} is {current.status}; it can become {allowed}, not {status}"
        )
    if status not in FINAL_STATUSES:
        if changes.get("outcome") is not None:
            raise InvalidArgument(
                f"session {state.id!r} would be {status}: an outcome is kept only with a status that ended "
                f"{sorted(FINAL_STATUSES)}; give it with that status"
            )
        if current.outcome is not None and "outcome" not in changes:
            return {**changes, "outcome": None}
    return changes


def decided(
    state: Session,
    events: tuple[Event, ...],
    known: Mapping[int, Sequence[bytes]] | None = None,
    *,
    events_before: tuple[Event, ...] = (),
) -> Decision:
    """The decision storing ``events_before`` (which led to ``state``), then
    ``events`` applied to ``state``."""
    numbered = [(state.version + offset, event) for offset, event in enumerate(events, 1)]
    # The events were just built from this state: their revisions need no re-hashing.
    result = fold(state.id, numbered, start=state, verify=False, known=known)
    assert result is not None
    return Decision(events_before + events, result)


def _create(command: Create, now: datetime) -> Decision:
    event = SessionCreated(at=now, actor=command.actor, title=command.title, metadata=command.metadata)
    state = fold(command.session_id, [(1, event)])
    assert state is not None
    if not command.header:
        return Decision((event,), state)
    header = HeaderChanged(at=now, actor=command.actor, changes=header_changes(state, command.header))
    return decided(state, (header,), events_before=(event,))


def _check_expected(state: Session, expected: str | None) -> None:
    if expected is not None and expected != state.revision:
        raise RevisionConflict(state.id, expected, state.revision)


def _append(state: Session, command: Append, now: datetime) -> Decision:
    _check_expected(state, command.expected_revision)
    if command.given_ids:
        check_ids_free(command.given_ids, state.messages.position_of, "append()")
        check_ids_not_items(command.given_ids, state.realtime_items, "append()")
    check_items_free(command.messages, state.messages.position_of, state.messages, "append()")
    if state.realtime_items:
        check_items_not_realtime(command.messages, state.realtime_items, "append()")
    stamped = command.messages
    # The rules every other change of content follows: tool uses are
    # answered by the next message, results answer the message before.
    count = len(state.messages)
    if (count and involves_tools((state.messages[count - 1],))) or involves_tools(stamped):
        # Only tool traffic can break pairing: plain appends skip the window.
        before = state.messages[max(0, count - 2) : count]  # the seam's neighbour and its predecessor
        check_shape([*before, *stamped], len(before), len(before) + len(stamped), offset=count - len(before))
    when = at(now, state)
    # Every message's prefix revision, kept with the messages: what makes a
    # later fork_at or rewrite at any index cost O(1).
    revisions = chain_each(revision_bytes(state), stamped)
    stamped = with_revision_ids(
        stamped, revisions, state.id, state.version + 1, state.messages.position_of, state.realtime_items
    )
    event = MessagesAppended(at=when, actor=command.actor, messages=stamped, revision=format_revision(revisions[-1]))
    if command.usage is None:
        return Decision((event,), appended(state, event, revisions))
    check_usage_added(state.usage, command.usage)
    usage = UsageRecorded(at=when, actor=command.actor, usage=command.usage)
    return decided(state, (event, usage), known={state.version + 1: revisions})


def _add_tool_results(state: Session, command: AddToolResults, now: datetime) -> Decision:
    """Results of the last assistant message's calls: after it, a new
    ``tool_results`` message; after the ``tool_results`` message that
    answers it in part, that message rewritten with them added (its id
    kept, reason ``late_content``). The shape rules then refuse a result
    for a call that is not there, or answered already."""
    _check_expected(state, command.expected_revision)
    messages = state.messages
    count = len(messages)
    last = messages[count - 1] if count else None
    if last is not None and last.role == "assistant" and last.tool_uses:
        appended = Append(
            messages=(Message.tool_results(*command.results, id=command.message_id),), actor=command.actor
        )
        return _append(state, appended, now)
    if (
        last is not None
        and last.role == "tool_results"
        and last.erased is None  # an erased one keeps its placeholder
        and count > 1
        and messages[count - 2].tool_uses
    ):
        held = [block for block in last.blocks if isinstance(block, ToolResult)]  # all it holds
        joined = Message.tool_results(*held, *command.results, id=last.id)
        event = rewrite_event(state, count - 1, count, (joined,), Reason(kind="late_content"), command.actor, now)
        return decided(state, (event,))
    raise InvalidTranscriptShape(
        f"add_tool_results(): session {state.id!r} does not end with tool calls waiting for results (it "
        + (f"ends with {a_role(last.role)} message" if last is not None else "has no message")
        + "); append the results with append(sid, Message.tool_results(...)) where they belong"
    )


def _rewrite(state: Session, command: Rewrite, now: datetime) -> Decision:
    _check_expected(state, command.expected_revision)
    if any(message.erased is not None for message in command.messages):  # moved, or forged
        held = {m.id: m.erased for m in state.messages if m.erased is not None and m.id is not None}
        check_no_placeholders(command.messages, "rewrite()", held)
    event = rewrite_event(state, command.start, command.end, command.messages, command.reason, command.actor, now)
    items = any(message.provider_item_id is not None for message in command.messages)
    if items and state.realtime_items:
        # A realtime message the rewrite keeps in place (its own item id) is not another message's.
        kept_items = {m.provider_item_id for m in state.messages[event.start : event.end]}
        check_items_not_realtime(command.messages, state.realtime_items, "rewrite()", kept_items)
    if command.given_ids or items:  # the messages it keeps must not have them
        kept: dict[str, int] = {}
        index_ids(kept, state.messages[: event.start], 0)
        index_ids(kept, state.messages[event.end :], event.end)
        check_ids_free(command.given_ids, kept.get, "rewrite()")
        check_ids_not_items(command.given_ids, state.realtime_items, "rewrite()")
        check_items_free(command.messages, kept.get, state.messages, "rewrite()")
    return decided(state, (event,))


def _restore(state: Session, command: Restore, now: datetime) -> Decision:
    _check_expected(state, command.expected_revision)
    start, removed_end, added_end = changed_span(state.messages, command.target)
    event = rewrite_event(
        state, start, removed_end, command.target[start:added_end], command.reason, command.actor, now
    )
    return decided(state, (event,))


def rewrite_event(
    state: Session,
    start: object,
    end: object,
    stamped: Sequence[Message],
    why: Reason,
    actor: str | None,
    now: datetime,
    *,
    check: bool = True,
) -> MessagesRewritten:
    """The event replacing ``[start, end)`` of ``state`` by ``stamped``.
    ``check=False`` skips tool pairing: realtime changes mirror the
    provider's conversation as it is."""
    count = len(state.messages)
    if type(start) is not int or type(end) is not int or not 0 <= start <= end <= count:
        raise InvalidRewriteRange(start, end, count)
    result = state.messages.replaced(start, end, stamped)
    if check:
        check_shape(result, start, start + len(stamped))
    base = state.messages.revision_at(start)
    tail_revisions = chain_each(base, result[start:])
    revision = format_revision(tail_revisions[-1] if tail_revisions else base)
    if revision == state.revision:
        raise NoOpRewrite(revision)
    return MessagesRewritten(
        at=at(now, state),
        actor=actor,
        start=start,
        end=end,
        messages=tuple(stamped),
        parent_revision=state.revision,
        revision=revision,
        reason=why.kind,
        note=why.note,
        removed_digest=span_digest(state.messages[start:end]),
        replacement_digest=span_digest(stamped),
        count_before=count,
        generation=state.generation + 1,
    )


class ForkSource(NamedTuple):
    """What a fork's event needs of its source: its id, version, revision
    and lineage's root and depth. From its state, or, for a fork of its
    whole head whose state is not at hand, from its listing row (id,
    version, revision) and first event (root, depth)."""

    session_id: str
    version: int
    revision: str
    root: str
    depth: int


def _fork(source: Session, command: Fork, now: datetime) -> Decision:
    messages = source.messages
    count = len(messages)
    index = command.index
    kept = count if index is None else index
    new_message = None
    if command.replacement is None:
        if not 0 <= kept <= count:
            raise InvalidForkPoint(f"fork_at index {kept} is outside 0..{count} of session {source.id!r}")
        if 0 < kept < count and messages[kept - 1].tool_uses:
            raise InvalidForkPoint(
                f"fork_at index {kept} would split message {kept - 1}'s tool uses from their results; "
                f"fork at {kept - 1} or {kept + 1} instead"
            )
    else:
        if count == 0:  # "0..-1" would name no range
            raise InvalidForkPoint(
                f"fork_replacing index {kept}: session {source.id!r} has no messages (at version {source.version}), "
                "so there is none to replace; fork it with fork_at(session_id, 0), then append"
            )
        if not 0 <= kept < count:
            raise InvalidForkPoint(f"fork_replacing index {kept} is outside 0..{count - 1} of session {source.id!r}")
        new_message = _replacing(messages[kept], kept, command.replacement, command.replacement_id)
        prefix = messages.prefix(kept)
        check_items_free((new_message,), prefix.position_of, prefix, "fork_replacing()")
        check_shape(prefix.extended((new_message,)), kept, kept + 1)
    raw = revision_bytes(source) if kept == count else messages.revision_at(kept)
    if new_message is not None:
        raw = chain(raw, (new_message,))
    lineage = source.lineage
    of = ForkSource(source.id, source.version, source.revision, lineage.root, lineage.depth)
    event = _fork_event(of, command, now, format_revision(raw), new_message)
    return Decision((event,), forked(command.child_id, event, source, verify=False))


def whole_fork(source: ForkSource, command: Fork, now: datetime) -> SessionForked:
    """The event of a fork of ``source``'s whole head (``command`` keeps
    every message and replaces none): what :func:`decide` gives for the
    source's state, from what the source's listing row and first event say,
    without its messages. A fork of every message needs no check of them."""
    if command.index is not None or command.replacement is not None:
        raise InvalidArgument("a fork at an index or with a replacement needs the source's state: use decide()")
    return _fork_event(source, command, now, source.revision, None)


def _fork_event(
    source: ForkSource, command: Fork, now: datetime, revision: str, replacement: Message | None
) -> SessionForked:
    """The event of ``command`` on ``source``: the fork's revision (with
    ``replacement``, if any) and its lineage, one deeper than the source's."""
    return SessionForked(
        at=now,
        actor=command.actor,
        source=source.session_id,
        source_version=source.version,
        index=command.index,
        replacement=replacement,
        revision=revision,
        root=source.root,
        depth=source.depth + 1,
    )


def _replacing(original: Message, index: int, replacement: Message | ReplaceBlock, new_id: str | None) -> Message:
    """The message that replaces ``original`` in ``fork_replacing``, with a new id."""
    if isinstance(replacement, Message):
        if replacement.role != original.role:
            raise ReplacementMismatch(
                f"message {index} is {a_role(original.role)} message; it cannot be replaced by "
                f"{a_role(replacement.role)} message"
            )
        return with_default_objects(msgspec.structs.replace(replacement, id=new_id))
    if not isinstance(replacement.index, int) or not 0 <= replacement.index < len(original.blocks):
        raise ReplacementMismatch(
            f"message {index} has {len(original.blocks)} blocks; "
            f"there is no block {shown(replacement.index)} to replace"
        )
    blocks = list(original.blocks)
    blocks[replacement.index] = replacement.block
    try:
        # Only the block changes: the rest of the content (the incomplete
        # marker) stays; what an adapter kept described the old content, and
        # could repeat what an erasure of the original must reach.
        made = msgspec.structs.replace(original, blocks=tuple(blocks), id=new_id, provider_data=None)
    except InvalidMessage as exc:
        raise ReplacementMismatch(f"block {replacement.index} of message {index}: {exc}") from None
    return with_default_objects(made)


def changed_span(old: Sequence[Message], new: Sequence[Message]) -> tuple[int, int, int]:
    """``(start, old_end, new_end)``: ``old[start:old_end]`` became ``new[start:new_end]``."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and hashed_alike(old[start], new[start]):
        start += 1
    suffix = 0
    while suffix < limit - start and hashed_alike(old[-1 - suffix], new[-1 - suffix]):
        suffix += 1
    return start, len(old) - suffix, len(new) - suffix


def commit_of(event: MessagesRewritten, version: int, count_after: int) -> Commit:
    """The commit a rewrite event records, as :meth:`Transcripts.revisions` lists it."""
    return Commit(
        version=version,
        generation=event.generation,
        parent_revision=event.parent_revision,
        revision=event.revision,
        start=event.start,
        end=event.end,
        removed_digest=event.removed_digest,
        replacement_digest=event.replacement_digest,
        count_before=event.count_before,
        count_after=count_after,
        reason=Reason(kind=event.reason, note=event.note),
        actor=event.actor,
        at=event.at,
    )
