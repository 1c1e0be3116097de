"""The commands a session takes, as values. Each ``of`` checks a caller's
arguments (typed errors naming the bad value) and gives ids to new
messages; the deciders (``engine.decisions.transcript``, ``.forks``) then
turn a command and a state into events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import msgspec

from engine.decisions._checks import (
    check_actor,
    check_given_ids,
    check_metadata,
    check_no_placeholders,
    check_optional_str,
    check_stored_text,
    check_title,
    in_order,
    message_id,
    new_session_id,
    stamped,
)
from engine.errors import InvalidArgument, InvalidForkPoint, InvalidMessage
from engine.state.content import (
    Message,
    ReplaceBlock,
    ToolResult,
    Usage,
    check_again,
    check_block_again,
    got,
    shown,
    unicode_error,
)
from engine.state.header import HEADER_FIELDS, STATUSES
from engine.state.revisions import Reason, format_revision, parse_revision

__all__ = [
    "Append",
    "Command",
    "Create",
    "Fork",
    "RecordUsage",
    "Restore",
    "Rewrite",
    "SetHeader",
    "SetTitle",
    "UpdateMetadata",
]


class Create(msgspec.Struct, frozen=True, kw_only=True):
    """A new session; ``header`` holds checked header fields it starts with."""

    session_id: str
    title: str | None = None
    metadata: dict[str, Any] = {}
    header: dict[str, Any] = {}
    actor: str | None = None

    @classmethod
    def of(
        cls,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        session_id: str | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> Create:
        check_title(title)
        check_actor(actor)
        changes = SetHeader.of(header).changes if header else {}
        return cls(
            session_id=new_session_id(session_id),
            title=title,
            metadata=check_metadata(metadata),
            header=changes,
            actor=actor,
        )


class Append(msgspec.Struct, frozen=True, kw_only=True):
    messages: tuple[Message, ...]
    usage: Usage | None = None
    actor: str | None = None
    expected_revision: str | None = None
    given_ids: tuple[str, ...] = ()  # the ids the caller gave (the others are named when decided)

    @classmethod
    def of(
        cls,
        messages: Iterable[Message],
        *,
        usage: Usage | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Append:
        given: list[str] = []
        messages = stamped(messages, "append()", given, make_ids=False)  # named when decided
        if not messages:
            raise InvalidArgument("append() needs at least one message")
        check_given_ids(messages, "append()")
        check_no_placeholders(messages, "append()")
        if usage is not None and not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        check_actor(actor)
        return cls(
            messages=messages,
            usage=usage,
            actor=actor,
            expected_revision=_expected(expected_revision),
            given_ids=tuple(given),
        )


class SetTitle(msgspec.Struct, frozen=True, kw_only=True):
    title: str | None
    actor: str | None = None

    @classmethod
    def of(cls, title: str | None, *, actor: str | None = None) -> SetTitle:
        check_title(title)
        check_actor(actor)
        return cls(title=title, actor=actor)


class SetHeader(msgspec.Struct, frozen=True, kw_only=True):
    """New values for some fields of the session header."""

    changes: dict[str, Any]
    actor: str | None = None

    @classmethod
    def of(cls, changes: Mapping[str, Any], *, actor: str | None = None) -> SetHeader:
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidArgument("a header change needs at least one field")
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in HEADER_FIELDS:
                hint = "; a new session's id is session_id=" if name in ("child_id", "id", "sid") else ""
                raise InvalidArgument(
                    f"the session header has no field {shown(name)}; its fields are {list(HEADER_FIELDS)}{hint}"
                )
            checked[name] = _header_value(name, value)
        check_actor(actor)
        return cls(changes=checked, actor=actor)


def _header_value(name: str, value: Any) -> Any:
    if name == "status":
        if type(value) is not str or value not in STATUSES:
            raise InvalidArgument(f"status must be one of {list(STATUSES)}, got {got(value)}")
        return value
    if name == "pinned":
        if not isinstance(value, bool):
            raise InvalidArgument(f"pinned must be True or False, got {shown(value)}")
        return value
    if name == "tags":
        tags = in_order(value, "tags")
        for tag in tags:
            if type(tag) is not str or not tag or not tag.isprintable() or len(tag) > 100:
                raise InvalidArgument(f"a tag is 1-100 printable characters, got {got(tag)}")
        if len(set(tags)) != len(tags):
            raise InvalidArgument(f"tags must not repeat, got {shown(list(tags))}")
        return list(tags)  # as it reads back from the stored event
    check_stored_text(value, name)
    return value


class UpdateMetadata(msgspec.Struct, frozen=True, kw_only=True):
    set: dict[str, Any]
    unset: tuple[str, ...] = ()
    actor: str | None = None

    @classmethod
    def of(
        cls, values: Mapping[str, Any] | None = None, *, remove: Iterable[str] = (), actor: str | None = None
    ) -> UpdateMetadata:
        checked = check_metadata(values)
        if isinstance(remove, (str, bytes)):
            # A bare string would be taken apart into its characters.
            raise InvalidArgument(
                f"remove= takes an iterable of keys, got the string {shown(remove)}; pass [{shown(remove)}]"
            )
        if isinstance(remove, Mapping):  # its values would be ignored: say which keys
            raise InvalidArgument(
                f"remove= takes the keys to remove (a list or set of str), got a {type(remove).__name__}; "
                f"pass list({type(remove).__name__.lower()}) if its keys are what goes"
            )
        # A set's order changes from run to run: stored sorted, the same every time.
        unordered = isinstance(remove, AbstractSet)
        removed = tuple(remove) if unordered else in_order(remove, "remove=")
        if not all(type(key) is str for key in removed):
            raise InvalidArgument("remove= must hold metadata keys (plain str: a subclass would read back as str)")
        if unordered:
            removed = tuple(sorted(removed))
        for key in removed:
            if not key.isascii():
                unicode_error(key, f"remove= key {shown(key)}", InvalidArgument)
        if not checked and not removed:
            raise InvalidArgument("update_metadata() needs values to set or keys to remove")
        both = sorted(set(checked) & set(removed))
        if both:
            raise InvalidArgument(
                f"update_metadata() would both set and remove {', '.join(shown(key) for key in both)}: "
                "set a key or remove it, not both"
            )
        check_actor(actor)
        return cls(set=checked, unset=removed, actor=actor)


class RecordUsage(msgspec.Struct, frozen=True, kw_only=True):
    usage: Usage
    response_id: str | None = None
    actor: str | None = None

    @classmethod
    def of(cls, usage: Usage, *, response_id: str | None = None, actor: str | None = None) -> RecordUsage:
        if not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        check_optional_str(response_id, "response_id")
        check_actor(actor)
        return cls(usage=usage, response_id=response_id, actor=actor)


class AddToolResults(msgspec.Struct, frozen=True, kw_only=True):
    """Results of the last assistant message's tool calls, as they come:
    the first start the ``tool_results`` message after it, later ones join
    that message (see ``decide``)."""

    results: tuple[ToolResult, ...]
    message_id: str  # for the tool_results message, if the results start one
    actor: str | None = None
    expected_revision: str | None = None

    @classmethod
    def of(
        cls, results: Iterable[ToolResult], *, actor: str | None = None, expected_revision: str | None = None
    ) -> AddToolResults:
        if isinstance(results, (str, bytes, ToolResult)) or not isinstance(results, Iterable):
            raise InvalidArgument(f"add_tool_results() takes ToolResults, got {type(results).__name__}")
        given = tuple(results)
        if not given:
            raise InvalidArgument("add_tool_results() needs at least one ToolResult")
        for index, result in enumerate(given):
            if not isinstance(result, ToolResult):
                raise InvalidMessage(
                    f"add_tool_results() results[{index}] is a {type(result).__name__}, not a ToolResult; "
                    "build one with ToolResult.of(call_id, output)"
                )
        [message] = stamped([Message.tool_results(*given)], "add_tool_results()")  # checked as an append's
        check_actor(actor)
        results = tuple(block for block in message.blocks if isinstance(block, ToolResult))
        assert message.id is not None
        return cls(results=results, message_id=message.id, actor=actor, expected_revision=_expected(expected_revision))


class Rewrite(msgspec.Struct, frozen=True, kw_only=True):
    """Replace ``[start, end)`` (checked against the state by the decider)."""

    start: int
    end: int
    messages: tuple[Message, ...]
    reason: Reason
    actor: str | None = None
    expected_revision: str | None = None
    given_ids: tuple[str, ...] = ()  # the ids the caller gave (the others are fresh)

    @classmethod
    def of(
        cls,
        start: int,
        end: int,
        replacement: Iterable[Message] | Message = (),
        reason: str | Reason = "edit",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Rewrite:
        why = Reason.of(reason, note)
        given: list[str] = []
        messages = stamped(replacement if not isinstance(replacement, Message) else (replacement,), "rewrite()", given)
        check_given_ids(messages, "rewrite()")
        check_actor(actor)
        # The range is checked by the decider, against the state's length.
        return cls(
            start=start,
            end=end,
            messages=messages,
            reason=why,
            actor=actor,
            expected_revision=_expected(expected_revision),
            given_ids=tuple(given),
        )


class Restore(msgspec.Struct, frozen=True, kw_only=True):
    """Make the transcript ``target``: the messages of ``revision``, which the
    facade reads from the log (the decider does no I/O)."""

    revision: str
    target: tuple[Message, ...]
    reason: Reason
    actor: str | None = None
    expected_revision: str | None = None

    @classmethod
    def of(
        cls,
        revision: str,
        reason: str | Reason = "restore",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Restore:
        parse_revision(revision)
        if note is None and not isinstance(reason, Reason):
            note = f"back to {revision}"
        why = Reason.of(reason, note)
        check_actor(actor)
        return cls(
            revision=revision, target=(), reason=why, actor=actor, expected_revision=_expected(expected_revision)
        )


class Fork(msgspec.Struct, frozen=True, kw_only=True):
    """A new session ``child_id`` from the source's head: all of it
    (``index`` None), ``messages[:index]``, or ``messages[:index]`` and a
    replacement of message ``index`` (whole, or one block), which gets
    ``replacement_id``."""

    child_id: str
    index: int | None = None
    replacement: Message | ReplaceBlock | None = None
    replacement_id: str | None = None
    actor: str | None = None

    @classmethod
    def whole(cls, *, actor: str | None = None, child_id: str | None = None) -> Fork:
        check_actor(actor)
        return cls(child_id=new_session_id(child_id), actor=actor)

    @classmethod
    def at(cls, index: int, *, actor: str | None = None, child_id: str | None = None) -> Fork:
        _check_index(index)
        check_actor(actor)
        return cls(child_id=new_session_id(child_id), index=index, actor=actor)

    @classmethod
    def replacing(
        cls,
        index: int,
        replacement: Message | ReplaceBlock,
        *,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> Fork:
        if not isinstance(replacement, (Message, ReplaceBlock)):
            raise InvalidArgument(f"replacement must be a Message or a ReplaceBlock, got {type(replacement).__name__}")
        _check_index(index)
        check_actor(actor)
        # Checked again, as appends check theirs: a block changed since it
        # was made (force_setattr) would be written and never read back.
        if isinstance(replacement, Message):
            check_again(replacement)
            check_no_placeholders((replacement,), "fork_replacing()")
        else:
            check_block_again(replacement.block)
        return cls(
            child_id=new_session_id(child_id),
            index=index,
            replacement=replacement,
            replacement_id=message_id(),
            actor=actor,
        )


Command = (
    Create | Append | AddToolResults | SetTitle | SetHeader | UpdateMetadata | RecordUsage | Rewrite | Restore | Fork
)


def _expected(expected_revision: object) -> str | None:
    """The expected revision in the form the engine writes it (hex digits
    in lowercase), so that comparing ids compares revisions."""
    return None if expected_revision is None else format_revision(parse_revision(expected_revision))


def _check_index(index: object) -> None:
    if type(index) is not int:
        raise InvalidForkPoint(f"a message index must be an int, got {got(index)}")
