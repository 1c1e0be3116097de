"""The persistent message sequence behind every ``Session``.

A sequence is a short tuple of *pieces*; a piece is a length into a shared,
append-only *buffer*. Versions, forks and rewrites of one transcript share
buffers instead of copying messages:

* appending to the newest version extends its last buffer in place (the other
  versions see only their own lengths): O(k) for k messages;
* a prefix (an earlier length, ``fork_at``) copies only the piece tuple;
* replacing a range keeps the prefix's pieces and puts the replacement and the
  old suffix in one new buffer: O(size of the replacement + suffix).

Pieces are flattened into one buffer when there are more than
``MAX_PIECES``, so lookups stay O(log pieces) and the tuple stays short.

Each buffer also keeps the prefix revision after each of its messages
(``engine.state.revisions``), filled lazily: a position whose revision is unknown is
computed by chaining from the nearest known one before it and then
remembered. A buffer's *base* is the revision of everything before its first
message; every piece starts at its buffer's first message, so a piece always
sits in the context its buffer's revisions were computed for.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeAlias, overload

from engine.state.content import Message
from engine.state.revisions import EMPTY_REVISION_BYTES, chain_each, stored_revision_bytes

__all__ = ["MAX_PIECES", "MessageSeq", "index_ids"]

MAX_PIECES = 32

#: A prefix revision as kept: raw bytes, a ``sha256:<hex>`` id not parsed
#: yet (a cold load keeps the ids its events record and parses one only
#: when it is asked for), or ``None`` (unknown: computed when needed).
Known: TypeAlias = bytes | str | None
_LOCK = threading.Lock()  # guards in-place growth of shared buffers
_new_seq = object.__new__


class _Buffer:
    """Append-only storage shared by several sequences."""

    __slots__ = ("base", "base_of", "first_at", "messages", "revisions")

    def __init__(
        self,
        messages: list[Message],
        revisions: list[Known],
        base: bytes | None,
        base_of: MessageSeq | None = None,
    ) -> None:
        self.messages = messages
        self.revisions = revisions
        self.base = base  # revision before messages[0]; None: ask base_of
        self.base_of = base_of
        self.first_at: dict[str, int] | None = None  # id -> first position, made when first asked

    def positions(self) -> dict[str, int]:
        """The first position in the buffer of each id a message carries, as
        its id or its provider item id (``erase`` takes either), indexed
        when first asked, then kept as the buffer grows."""
        first_at = self.first_at
        if first_at is None:
            with _LOCK:
                first_at = self.first_at
                if first_at is None:
                    first_at = {}
                    index_ids(first_at, self.messages, 0)
                    self.first_at = first_at
        return first_at

    def resolve_base(self) -> bytes:
        base = self.base
        if base is None:
            assert self.base_of is not None
            base = self.base = self.base_of.revision_at(len(self.base_of))
            self.base_of = None  # no longer needed: let it be collected
        return base


def index_ids(first_at: dict[str, int], messages: Sequence[Message], start: int) -> None:
    """Add to ``first_at`` the first position of each id and provider item
    id (``erase`` takes either) of ``messages``, the first at ``start``."""
    for position, message in enumerate(messages, start):
        if message.id is not None:
            first_at.setdefault(message.id, position)
        if message.provider_item_id is not None:
            first_at.setdefault(message.provider_item_id, position)


class MessageSeq(Sequence[Message]):
    """An immutable sequence of messages with structural sharing."""

    __slots__ = ("_ends", "_length", "_pieces")

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        items = list(messages)
        pieces: tuple[tuple[_Buffer, int], ...] = ()
        if items:
            pieces = ((_Buffer(items, [None] * len(items), EMPTY_REVISION_BYTES), len(items)),)
        self._set(pieces)

    @classmethod
    def _of(cls, pieces: tuple[tuple[_Buffer, int], ...]) -> MessageSeq:
        seq = cls.__new__(cls)
        seq._set(pieces)
        if len(pieces) > MAX_PIECES:
            return seq._flattened()
        return seq

    def _set(self, pieces: tuple[tuple[_Buffer, int], ...]) -> None:
        self._pieces = pieces
        ends = []
        total = 0
        for _, stop in pieces:
            total += stop
            ends.append(total)
        self._ends = tuple(ends)
        self._length = total

    def _flattened(self) -> MessageSeq:
        messages: list[Message] = []
        revisions: list[Known] = []
        for buffer, stop in self._pieces:
            messages += buffer.messages[:stop]
            revisions += buffer.revisions[:stop]
        seq = MessageSeq.__new__(MessageSeq)
        seq._set(((_Buffer(messages, revisions, EMPTY_REVISION_BYTES), len(messages)),))
        return seq

    # -- building ---------------------------------------------------------

    def extended(self, messages: Sequence[Message], revisions: Sequence[Known] | None = None) -> MessageSeq:
        """This sequence followed by ``messages``; ``revisions[i]``, if known,
        is the prefix revision after ``messages[i]``."""
        if not messages:
            return self
        known: list[Known] = list(revisions) if revisions is not None else [None] * len(messages)
        pieces = self._pieces
        with _LOCK:
            if pieces:
                buffer, stop = pieces[-1]
                if stop == len(buffer.messages):  # the tip of its buffer: grow in place
                    if buffer.first_at is not None:
                        index_ids(buffer.first_at, messages, stop)
                    buffer.messages.extend(messages)
                    buffer.revisions.extend(known)
                    # The same pieces but the last, longer: ends and length
                    # follow without a pass over the pieces (every append).
                    count = len(messages)
                    grown = _new_seq(MessageSeq)
                    grown._pieces = (*pieces[:-1], (buffer, stop + count))
                    grown._ends = (*self._ends[:-1], self._ends[-1] + count)
                    grown._length = self._length + count
                    return grown
        base = EMPTY_REVISION_BYTES if not pieces else None
        fresh = _Buffer(list(messages), known, base, None if base is not None else self)
        return MessageSeq._of((*pieces, (fresh, len(messages))))

    def prefix(self, length: int) -> MessageSeq:
        """The first ``length`` messages, sharing storage."""
        length = max(0, min(length, self._length))
        if length == self._length:
            return self
        if length == 0:
            return MessageSeq()
        index = bisect.bisect_left(self._ends, length)
        start = self._ends[index - 1] if index else 0
        buffer, _ = self._pieces[index]
        return MessageSeq._of((*self._pieces[:index], (buffer, length - start)))

    def replaced(
        self,
        start: int,
        end: int,
        replacement: Sequence[Message],
        revisions: Sequence[Known] | None = None,
    ) -> MessageSeq:
        """``self[:start] + replacement + self[end:]``; ``revisions`` as in
        :meth:`extended`, for the replacement followed by the old suffix."""
        head = self.prefix(start)
        tail = list(replacement)
        tail.extend(self._range(end, self._length))
        if not tail:
            return head
        known: list[Known] = list(revisions) if revisions is not None else [None] * len(tail)
        base = EMPTY_REVISION_BYTES if start == 0 else None
        fresh = _Buffer(tail, known, base, None if base is not None else head)
        return MessageSeq._of((*head._pieces, (fresh, len(tail))))

    def position_of(self, ident: str) -> int | None:
        """The index of the first message with id (or provider item id)
        ``ident``, or ``None``: a lookup per piece (each buffer is indexed
        when first asked)."""
        start = 0
        for (buffer, stop), end in zip(self._pieces, self._ends, strict=True):
            position = buffer.positions().get(ident)
            if position is not None and position < stop:
                return start + position
            start = end
        return None

    # -- revisions --------------------------------------------------------

    def revision_at(self, length: int) -> bytes:
        """The revision of the first ``length`` messages (32 raw bytes)."""
        if not 0 <= length <= self._length:
            raise IndexError(f"no prefix of length {length} in a sequence of {self._length}")
        if length == 0:
            return EMPTY_REVISION_BYTES
        index = bisect.bisect_left(self._ends, length)
        buffer, _ = self._pieces[index]
        position = length - 1 - (self._ends[index - 1] if index else 0)
        revisions = buffer.revisions
        known = position
        while known >= 0 and revisions[known] is None:
            known -= 1
        found = revisions[known] if known >= 0 else buffer.resolve_base()
        if isinstance(found, str):
            found = revisions[known] = stored_revision_bytes(found, "a recorded revision")
        assert found is not None
        filled = chain_each(found, buffer.messages[known + 1 : position + 1])
        revisions[known + 1 : position + 1] = filled  # benign race: every writer computes the same values
        return filled[-1] if filled else found

    # -- Sequence ---------------------------------------------------------

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...
    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            if step == 1:
                return tuple(self._range(start, stop))
            return tuple(self)[index]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("message index out of range")
        piece = bisect.bisect_right(self._ends, index)
        start = self._ends[piece - 1] if piece else 0
        return self._pieces[piece][0].messages[index - start]

    def __iter__(self) -> Iterator[Message]:
        for buffer, stop in self._pieces:
            yield from buffer.messages[:stop]

    def _range(self, start: int, stop: int) -> Iterator[Message]:
        """Messages ``start`` to ``stop`` (clamped), without touching the others."""
        if start >= stop:
            return
        piece = bisect.bisect_right(self._ends, start)
        offset = self._ends[piece - 1] if piece else 0
        for buffer, length in self._pieces[piece:]:
            if offset >= stop:
                return
            yield from buffer.messages[max(0, start - offset) : min(length, stop - offset)]
            offset += length

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageSeq):
            return self._length == other._length and (self._pieces == other._pieces or list(self) == list(other))
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # ``messages + [reply]``, as one builds a model's next request: a list
    # with a list, else a tuple (this sequence itself never changes).
    @overload
    def __add__(self, other: list[Message]) -> list[Message]: ...
    @overload
    def __add__(self, other: tuple[Message, ...] | MessageSeq) -> tuple[Message, ...]: ...
    def __add__(self, other: object) -> list[Message] | tuple[Message, ...]:
        if isinstance(other, list):
            return [*self, *other]
        if isinstance(other, (tuple, MessageSeq)):
            return (*self, *other)
        return NotImplemented

    @overload
    def __radd__(self, other: list[Message]) -> list[Message]: ...
    @overload
    def __radd__(self, other: tuple[Message, ...]) -> tuple[Message, ...]: ...
    def __radd__(self, other: object) -> list[Message] | tuple[Message, ...]:
        if isinstance(other, list):
            return [*other, *self]
        if isinstance(other, tuple):
            return (*other, *self)
        return NotImplemented

    def __repr__(self) -> str:
        return f"MessageSeq({list(self)!r})"

    @property
    def piece_count(self) -> int:
        """How many shared buffers this sequence spans (for tests and benchmarks)."""
        return len(self._pieces)
