"""Argument checks shared by the commands: each value is refused with a
typed error naming it, or comes back exactly as the store will give it back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec.structs import force_setattr

from engine.errors import InvalidArgument, InvalidMessage
from engine.state.content import Message, Usage, check_again, got, kind_of, shown, unicode_error, with_default_objects
from engine.state.json_values import JSON_DEPTH, check_json_value
from engine.state.revisions import id_mask, revision_id
from engine.state.transcript import Session

MAX_SESSION_ID = 200
#: How deep metadata may nest: deeper values are refused, not met by a RecursionError later.
MAX_METADATA_DEPTH = JSON_DEPTH
#: The most tokens of one kind a session counts: what an INTEGER column of
#: SQLite and PostgreSQL's bigint hold (a read model keeps the totals there).
MAX_TOKENS = 2**63 - 1


def check_session_id(session_id: object) -> None:
    """A session id a store could hold (looked up, never created, here)."""
    if type(session_id) is not str:
        raise InvalidArgument(f"session id must be a str, got {kind_of(session_id)}")
    if not session_id.isascii():
        unicode_error(session_id, "session id", InvalidArgument)


def new_session_id(session_id: object) -> str:
    """The id of a session to create: the caller's, checked, or a fresh UUID."""
    if session_id is None:
        return str(uuid.uuid4())
    if not (type(session_id) is str and 0 < len(session_id) <= MAX_SESSION_ID and session_id.isprintable()):
        raise InvalidArgument(f"a session id must be 1-{MAX_SESSION_ID} printable characters, got {got(session_id)}")
    return session_id


def message_id() -> str:
    return "msg_" + os.urandom(10).hex()


def in_order(values: object, what: str, of: str = "str") -> tuple[Any, ...]:
    """``values`` as a tuple, for a parameter whose order is stored: a str
    (taken apart), a set or a mapping (an order that changes from run to
    run, or only keys) and anything not iterable are refused."""
    if type(values) not in (tuple, list) and (
        isinstance(values, (str, bytes, AbstractSet, Mapping)) or not isinstance(values, Iterable)
    ):
        unordered = " (its order is not kept): pass a sorted list" if isinstance(values, (AbstractSet, Mapping)) else ""
        raise InvalidArgument(f"{what} must be a list of {of}, got {shown(values)}{unordered}")
    assert isinstance(values, Iterable)
    return tuple(values)


#: Calls given a list of messages, by their argument's name.
_LISTS = {"append()": "messages", "rewrite()": "replacement"}


def _given(where: str, index: int) -> str:
    """A message a call was given, as errors name it: by the argument and its
    index from 0, as Python indexes it (``append() messages[1]``), beside
    the session's messages, which errors name by their index from 0 too."""
    name = _LISTS.get(where)
    if name is not None:
        return f"{where} {name}[{index}]"
    return f"{where} replacement" if where == "fork_replacing()" else f"{where}: the message"


def stamped(
    messages: Iterable[object], where: str, given: list[str] | None = None, *, make_ids: bool = True
) -> tuple[Message, ...]:
    """The messages, each checked again (see ``check_again``), in the form
    new content is hashed in (``with_default_objects``), and with an id (a
    fresh one where it had none; with ``make_ids=False`` none: an append
    names its messages after their revisions, see ``with_revision_ids``).
    ``given``: collects the ids the caller gave."""
    if type(messages) not in (tuple, list) and (
        isinstance(messages, (str, bytes, Message, AbstractSet, Mapping)) or not isinstance(messages, Iterable)
    ):
        unordered = " (its order is not kept)" if isinstance(messages, (AbstractSet, Mapping)) else ""
        raise InvalidMessage(f"{where} takes a list of messages, got {type(messages).__name__}{unordered}")
    # A tuple of what iterating gives: a sequence's own __len__ could say otherwise.
    items = tuple(messages)
    # Random bytes for every message's id from one os.urandom call (a call
    # per message was a fifth of the cost of stamping a long list).
    digits = os.urandom(10 * len(items)).hex() if make_ids else ""
    result = []
    for index, message in enumerate(items):
        if not isinstance(message, Message):
            several = where == "append()" and isinstance(message, Iterable) and not isinstance(message, (str, bytes))
            raise InvalidMessage(
                f"{_given(where, index)} is a {type(message).__name__}, not a Message; "
                + (
                    "append() takes each message as an argument of its own: append(session_id, *messages)"
                    if several
                    else "build one with Message.user(...), Message.assistant(...), ..."
                )
            )
        check_again(message)
        message = with_default_objects(message)  # equal content, one digest
        if message.id is None:
            if make_ids:
                # A copy with only the id set (an id of ours needs no check).
                message = message.__copy__()  # type: ignore[attr-defined]  # msgspec's stubs omit it
                force_setattr(message, "id", "msg_" + digits[20 * index : 20 * index + 20])
        elif given is not None:
            given.append(message.id)
        result.append(message)
    return tuple(result)


def with_revision_ids(
    messages: tuple[Message, ...],
    revisions: Sequence[bytes],
    session_id: str,
    version: int,
    position_of: Callable[[str], int | None],
    reserved: AbstractSet[str] = frozenset(),
) -> tuple[Message, ...]:
    """The messages of an append to ``session_id`` (its event at
    ``version``), each without an id given the one its revision names
    (``revision_id``: made from the revision the session reached with it,
    the session's id and the version). Such an id costs the stored form no
    bytes, and the same appends to a session of the same id give the same
    ids.

    Distinct revisions and versions give distinct ids, so it is a new id
    unless a caller chose it (or a digest repeats by chance).
    An id taken (``position_of`` finds it in the session, as an id or a
    provider item id; a realtime item of the session has it, ``reserved``)
    or taken in this call is replaced by a random one: an id names one
    message."""
    if all(message.id is not None for message in messages):
        return messages
    mask = id_mask(session_id, version)
    # What the call's messages carry (with one message, only its item id is looked at).
    taken = (
        {ident for m in messages for ident in (m.id, m.provider_item_id) if ident is not None}
        if len(messages) > 1
        else None
    )
    result = list(messages)
    for index, message in enumerate(messages):
        if message.id is not None:
            continue
        ident = revision_id(revisions[index], mask)
        held = ident in taken if taken is not None else ident == message.provider_item_id
        if held or position_of(ident) is not None or ident in reserved:
            ident = message_id()
        message = message.__copy__()  # type: ignore[attr-defined]  # msgspec's stubs omit it
        force_setattr(message, "id", ident)
        if taken is not None:
            taken.add(ident)
        result[index] = message
    return tuple(result)


def check_actor(actor: object) -> None:
    check_optional_str(actor, "actor")


def check_title(title: object) -> None:
    check_stored_text(title, "title")


def check_stored_text(value: object, name: str) -> None:
    """A str or None that a text column can keep: stores keep titles and
    header fields as text, which PostgreSQL cannot hold with NUL characters;
    refuse them on every backend alike."""
    check_optional_str(value, name)
    if type(value) is str and "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters (\\x00)")


def check_optional_str(value: object, name: str) -> None:
    if value is None:
        return
    if type(value) is not str:
        raise InvalidArgument(f"{name} must be a str or None, got {kind_of(value)}")
    if not value.isascii():
        unicode_error(value, name, InvalidArgument)


def at(now: datetime, state: Session | None = None) -> datetime:
    """``now``, but never before the session's last event: times stay
    monotonic per session, which time travel by datetime relies on."""
    return now if state is None or now >= state.updated_at else state.updated_at


def clock() -> datetime:
    return datetime.now(UTC)


_JSON = msgspec.json.Encoder()


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata exactly as a reload gives it back, or ``InvalidArgument`` naming
    the value that would come back different (never converted silently)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, got {type(metadata).__name__}")
    checked = dict(metadata)
    check_json_value(checked, "metadata", MAX_METADATA_DEPTH)
    # A copy the caller cannot change afterwards, equal to what a reload gives.
    result: dict[str, Any] = msgspec.json.decode(_JSON.encode(checked))
    return result


def check_usage_added(before: Usage, added: Usage) -> None:
    """Refuse ``added`` if it would bring a session's total ``before`` of
    any kind of token over ``MAX_TOKENS``: the store would keep it, but no
    read model could."""
    for name in Usage.__struct_fields__:
        total = getattr(before, name) + getattr(added, name)
        if total > MAX_TOKENS:
            raise InvalidArgument(
                f"usage.{name}: {getattr(added, name):,} more tokens would bring the session's total to {total:,}, "
                f"over {MAX_TOKENS:,} (the most a store's tables hold); nothing was written"
            )


def check_given_ids(messages: Sequence[Message], where: str) -> None:
    """Refuse two messages of one call with the same id, or one whose id is
    another's provider item id: an id names one message (``erase`` takes
    every message that has it, as its id or its provider item id)."""
    if len(messages) < 2:
        return
    seen: dict[str, int] = {}
    for index, message in enumerate(messages):
        ident = message.id
        if ident is None:
            continue
        first = seen.setdefault(ident, index)
        if first != index:
            raise InvalidMessage(
                f"{_given(where, first)} and {_given(where, index)} both have the id {shown(ident)}: an id names one "
                "message; give each its own, or none (the store makes one)"
            )
    for index, message in enumerate(messages):
        item = message.provider_item_id
        other = seen.get(item) if item is not None else None
        if other is not None and other != index:
            raise InvalidMessage(
                f"{_given(where, other)} has the id {shown(item)}, which is the provider item id of "
                f"{_given(where, index)}: erase() would take both; give it another id, or none (the store makes one)"
            )


def check_ids_free(ids: Iterable[str], position_of: Callable[[str], int | None], where: str) -> None:
    """Refuse an id a message of the session already has (``position_of``
    gives its index): an id names one message, and ``erase`` takes every
    message that has it."""
    for ident in ids:
        found = position_of(ident)
        if found is not None:
            raise InvalidMessage(
                f"{where}: the session's message {found} already has the id {shown(ident)} (as its id or its "
                "provider item id): an id names one message (erase() takes every message that has it); give "
                "this one another id, or none (the store makes one)"
            )


def check_ids_not_items(ids: Iterable[str], reserved: AbstractSet[str], where: str) -> None:
    """Refuse an id a realtime item of the session has (``reserved``), placed
    or still waiting: the item's message takes it as its provider item id,
    and ``erase`` takes every message that has it either way."""
    for ident in ids:
        if ident in reserved:
            raise InvalidMessage(
                f"{where}: {shown(ident)} is the id of a realtime item of this session (its message may still be "
                "waiting to be placed): erase() would take both; give this message another id, or none (the store "
                "makes one)"
            )


def check_items_not_realtime(
    messages: Sequence[Message], reserved: AbstractSet[str], where: str, kept: AbstractSet[str | None] = frozenset()
) -> None:
    """Refuse a message whose provider item id a realtime item of the
    session has (``reserved``): ingestion finds an item's message by that
    id, so the item's content would land in this one. ``kept``: the item
    ids of the messages a rewrite replaces, which their replacements keep."""
    for index, message in enumerate(messages):
        item = message.provider_item_id
        if item is not None and item in reserved and item not in kept:
            raise InvalidMessage(
                f"{_given(where, index)} has the provider item id {shown(message.provider_item_id)}, which a "
                "realtime item of this session has: ingestion would put that item's content in it; leave "
                "provider_item_id out (the provider's items name their own messages)"
            )


def check_items_free(
    messages: Sequence[Message], position_of: Callable[[str], int | None], held: Sequence[Message], where: str
) -> None:
    """Refuse a message whose provider item id is the id of a message the
    session holds (``held``; ``position_of`` gives the first index of an id
    or provider item id there): ``erase`` takes every message that has the
    id either way, so it would take both."""
    for index, message in enumerate(messages):
        item = message.provider_item_id
        found = position_of(item) if item is not None else None
        if found is not None and held[found].id == item:
            raise InvalidMessage(
                f"{_given(where, index)} has the provider item id {shown(item)}, which is the id of the "
                f"session's message {found}: erase() takes every message that has it, as its id or its provider "
                "item id, so it would take both"
            )


def check_no_placeholders(messages: Sequence[Message], where: str, erased: Mapping[str, str] | None = None) -> None:
    """Refuse erased placeholders a caller made: only ``erase`` makes them,
    and it records the erasure. ``erased``: the placeholders the session
    holds (id to digest), which a rewrite may move."""
    for index, message in enumerate(messages):
        if message.erased is None:
            continue
        if erased is not None and message.id is not None and erased.get(message.id) == message.erased:
            continue
        raise InvalidMessage(
            f"{_given(where, index)} is an erased placeholder ({shown(message.erased)}) that no erasure of "
            "this session left: placeholders are made by erase(), which records the erasure; build messages "
            "without erased="
        )
