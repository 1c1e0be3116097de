"""Immutable session state and ``evolve(state, event)``.

``Session`` is what ``Transcripts.get`` returns. Its message sequence shares
structure between versions: appending to the newest version extends a shared
append-only buffer in place (each version sees only its own length), so an
append costs O(1) and taking an earlier version or a prefix copies nothing.
"""

from __future__ import annotations

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
from engine.revisions import EMPTY_REVISION_BYTES, chain, format_revision, parse_revision

__all__ = ["MessageSeq", "Session", "evolve", "replay"]

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
    altered and raises :class:`CorruptStore`.
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
    if version != state.version + 1:
        raise CorruptStore(
            f"session {session_id!r}: expected version {state.version + 1}, got {version}"
        )
    if isinstance(event, MessagesAppended):
        if verify:
            raw = chain(state._revision_bytes, event.messages)
            revision = format_revision(raw)
            if revision != event.revision:
                raise CorruptStore(
                    f"session {session_id!r}: version {version} records revision {event.revision}, "
                    f"but its messages chain to {revision}; the stored history was altered"
                )
        else:
            revision = event.revision
            raw = parse_revision(revision)
        return _replace(
            state, version, event.at,
            messages=state.messages.extended(event.messages), revision=revision, _revision_bytes=raw,
        )
    if isinstance(event, UsageRecorded):
        return _replace(state, version, event.at, usage=state.usage + event.usage)
    if isinstance(event, MetadataChanged):
        metadata = dict(state.metadata)
        for key in event.unset:
            metadata.pop(key, None)
        metadata.update(event.set)
        return _replace(state, version, event.at, metadata=MappingProxyType(metadata))
    if isinstance(event, TitleChanged):
        return _replace(state, version, event.at, title=event.title)
    if isinstance(event, SessionCreated):
        raise CorruptStore(f"session {session_id!r}: SessionCreated again at version {version}")
    raise CorruptStore(f"session {session_id!r}: cannot apply {type(event).__name__}")  # pragma: no cover


def _replace(state: Session, version: int, at: datetime, **changes: Any) -> Session:
    values = {name: getattr(state, name) for name in Session.__dataclass_fields__}
    values.update(changes)
    values["version"] = version
    values["updated_at"] = at
    return Session(**values)


def replay(session_id: str, events: Iterable[tuple[int, Event]], state: Session | None = None) -> Session | None:
    """Fold :func:`evolve` over ``(version, event)`` pairs."""
    for version, event in events:
        state = evolve(state, session_id, version, event)
    return state
