"""Immutable session state and ``evolve(state, event)``.

``Session`` is what ``Transcripts.get`` returns. Its message sequence shares
structure between versions: appending to the newest version extends a shared
append-only buffer in place (each version sees only its own length), so an
append costs O(1) and taking an earlier version or a prefix copies nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, overload

from engine.content import Message, Usage
from engine.errors import CorruptStore
from engine.events import (
    Event,
    MessagesAppended,
    MetadataChanged,
    SessionCreated,
    TitleChanged,
    UsageRecorded,
)
from engine.revisions import EMPTY_REVISION_BYTES, format_revision, parse_revision

__all__ = ["MessageSeq", "Session", "evolve", "fold"]

_EXTEND_LOCK = threading.Lock()


class MessageSeq(Sequence[Message]):
    """A persistent sequence of messages.

    Versions of one transcript share one append-only ``list``; a version is a
    length into it. Extending the newest version appends in place; extending an
    older one (a divergent branch) copies its prefix once.
    """

    __slots__ = ("_items", "_length")

    def __init__(self, items: Iterable[Message] = ()) -> None:
        self._items: list[Message] = list(items)
        self._length = len(self._items)

    @classmethod
    def _view(cls, items: list[Message], length: int) -> MessageSeq:
        seq = cls.__new__(cls)
        seq._items = items
        seq._length = length
        return seq

    def extended(self, messages: Sequence[Message]) -> MessageSeq:
        """A new sequence with ``messages`` after this one; this one is unchanged."""
        if not messages:
            return self
        with _EXTEND_LOCK:
            items = self._items
            if len(items) != self._length:
                items = items[: self._length]
            items.extend(messages)
            return MessageSeq._view(items, len(items))

    def prefix(self, length: int) -> MessageSeq:
        """The first ``length`` messages, sharing storage."""
        return MessageSeq._view(self._items, max(0, min(length, self._length)))

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...
    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            return tuple(self._items[: self._length][index])
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("message index out of range")
        return self._items[index]

    def __iter__(self) -> Iterator[Message]:
        items = self._items
        for index in range(self._length):
            yield items[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageSeq):
            return self._length == other._length and (
                (self._items is other._items) or self._items[: self._length] == other._items[: other._length]
            )
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageSeq({list(self)!r})"


_EMPTY_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Session:
    """A session as of one version: immutable; every field is a plain value.

    ``revision`` is the content address of ``messages`` (see
    ``engine.revisions``); ``version`` counts the session's recorded events.
    """

    id: str
    version: int
    revision: str
    messages: MessageSeq
    usage: Usage
    metadata: Mapping[str, Any]
    title: str | None
    created_at: datetime
    updated_at: datetime
    _revision_bytes: bytes = field(repr=False, compare=False, default=EMPTY_REVISION_BYTES)

    @property
    def message_count(self) -> int:
        return len(self.messages)


def evolve(state: Session | None, session_id: str, version: int, event: Event, *, verify: bool = True) -> Session:
    """The state after ``event`` (recorded as ``version``) is applied to ``state``.

    Pure: never mutates ``state``. With ``verify`` (the default, used on every
    replay) the revision recorded in a ``MessagesAppended`` event is checked
    against the recomputed chain; a mismatch means the stored history was
    altered and raises :class:`CorruptStore`. One step of :func:`fold`.
    """
    if state is None:
        if not isinstance(event, SessionCreated):
            raise CorruptStore(
                f"session {session_id!r}: version {version} is a {type(event).__name__}, "
                "but a session's history must start with SessionCreated"
            )
        return Session(
            id=session_id,
            version=version,
            revision=format_revision(EMPTY_REVISION_BYTES),
            messages=MessageSeq(),
            usage=Usage(),
            metadata=MappingProxyType(dict(event.metadata)) if event.metadata else _EMPTY_METADATA,
            title=event.title,
            created_at=event.at,
            updated_at=event.at,
        )
    folded = fold(session_id, ((version, event),), start=state, verify=verify)
    assert folded is not None
    return folded


def fold(
    session_id: str, events: Iterable[tuple[int, Event]], start: Session | None = None, *, verify: bool = True
) -> Session | None:
    """The state after applying ``(version, event)`` pairs to ``start``.

    Equal to reducing :func:`evolve` over the events (a property test holds it
    to that), but builds one ``Session`` at the end instead of one per event,
    which is what makes a cold load cheap. ``verify=False`` trusts the
    revisions recorded in the events instead of re-hashing the messages; the
    store does that only for a prefix a verified snapshot vouches for.
    """
    iterator = iter(events)
    if start is None:
        first = next(iterator, None)
        if first is None:
            return None
        start = evolve(None, session_id, first[0], first[1])
    sha256 = hashlib.sha256
    version = start.version
    revision, raw = start.revision, start._revision_bytes
    usage, title, updated = start.usage, start.title, start.updated_at
    metadata: dict[str, Any] | None = None  # copied on the first change only
    new_messages: list[Message] = []
    for number, event in iterator:
        version += 1
        if number != version:
            raise CorruptStore(f"session {session_id!r}: expected version {version}, got {number}")
        if isinstance(event, MessagesAppended):
            if verify:
                for message in event.messages:
                    raw = sha256(raw + message.digest_bytes()).digest()
                revision = format_revision(raw)
                if revision != event.revision:
                    raise CorruptStore(
                        f"session {session_id!r}: version {number} records revision {event.revision}, "
                        f"but its messages chain to {revision}; the stored history was altered"
                    )
            else:
                revision = event.revision
            new_messages.extend(event.messages)
        elif isinstance(event, UsageRecorded):
            usage = usage + event.usage
        elif isinstance(event, MetadataChanged):
            if metadata is None:
                metadata = dict(start.metadata)
            for key in event.unset:
                metadata.pop(key, None)
            metadata.update(event.set)
        elif isinstance(event, TitleChanged):
            title = event.title
        else:
            raise CorruptStore(f"session {session_id!r}: {type(event).__name__} again at version {number}")
        updated = event.at
    if version == start.version:
        return start
    return Session(
        id=session_id,
        version=version,
        revision=revision,
        messages=start.messages.extended(new_messages),
        usage=usage,
        metadata=start.metadata if metadata is None else MappingProxyType(metadata),
        title=title,
        created_at=start.created_at,
        updated_at=updated,
        _revision_bytes=raw if verify else parse_revision(revision),
    )
