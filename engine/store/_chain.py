"""Tamper evidence for stored records: a hash chain over every record of a
session and a seal over its listing row.

The chain runs over a session's records in order: each record (its version,
type name and every byte of the stored event) is framed and hashed after all
the records before it, so the head after record ``n`` commits to record
``n`` and everything before it. Any edit, removal, reordering or insertion
changes every head after it. The head after the last record is kept in the
session's listing row, and the row is sealed (a SHA-256, or an HMAC when the
store has a seal key) over all its fields. Reads compare the records they
read with the sealed head.

The records are hashed in spans of 64: a running SHA-256 over a span starts
from the link the span before it ended with, and its digest at the end of
the span is the next link; the head is the running hash's digest after the
last record. So the chain costs what one running hash costs (a third of a
hash per record), and it can be resumed from any link: a snapshot keeps the
link of its span, and a read of a session's tail checks only the records
after that link (the link itself is checked too: the chain from it must
reach the sealed head). Stores whose heads were made by the single running
hash of earlier builds still read (``legacy_head_of``); their sessions take
the new head at their next write.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from engine.errors import CorruptStore, InvalidArgument
from engine.store._records import Record, SessionRow

__all__ = [
    "Chain",
    "chain_from",
    "chain_of",
    "check_legacy_sealing",
    "check_seal_mode",
    "checkpoints_of",
    "extended",
    "head_of",
    "legacy_head_of",
    "removed_seals",
    "seal_mode",
    "seal_mode_of",
    "seal_of",
    "sealed_row",
    "sealed_with",
    "unknown_seal_mode",
]


class Chain(Protocol):
    """The chain after some records."""

    def copy(self) -> Chain: ...

    def digest(self) -> bytes:
        """The head: what the listing row keeps."""
        ...

    def checkpoint(self) -> tuple[int, bytes]:
        """Where the chain can be resumed from (:func:`chain_from`): the
        version the current span began after, and the link there."""
        ...


_FRAME = struct.Struct(">QHI").pack  # version, type name length, state length
_TOPICS: dict[str, bytes] = {}


_SPAN = 64  # records per link
_sha256 = hashlib.sha256


class _Spans:
    """The chain after some records: the link where the current span began
    (at version ``start``, a multiple of ``_SPAN``), and the running hash of
    the span so far."""

    __slots__ = ("count", "link", "running", "start")

    def __init__(self, start: int, link: bytes, running: Any, count: int) -> None:
        self.start, self.link, self.running, self.count = start, link, running, count

    def copy(self) -> Chain:
        return _Spans(self.start, self.link, self.running.copy(), self.count)

    def digest(self) -> bytes:
        return bytes(self.running.digest())

    def checkpoint(self) -> tuple[int, bytes]:
        return self.start, self.link


def _origin(session_id: str) -> bytes:
    return b"transcript-engine/session\x00" + session_id.encode("utf-8", "surrogatepass")


def chain_of(session_id: str) -> Chain:
    """The chain before a session's first record: the log of one session
    cannot be passed off as another's."""
    link = _sha256(_origin(session_id)).digest()
    return _Spans(0, link, _sha256(link), 0)


def chain_from(start: int, link: bytes) -> Chain:
    """The chain after record ``start`` (a multiple of 64; 0 is before the
    first), given the link the chain had there (from :meth:`Chain.checkpoint`)."""
    if start % _SPAN or start < 0 or len(link) != 32:
        raise ValueError(f"not a chain checkpoint: {start}, {len(link)} bytes")
    return _Spans(start, link, _sha256(link), 0)


def _framed(version: int, name: bytes, state: bytes) -> bytes:
    """One record as the chain hashes it."""
    try:
        return _FRAME(version, len(name), len(state)) + name + state
    except struct.error:  # a damaged version: read as a damaged type, as the callers expect
        raise TypeError(f"a stored version {version!r} out of range") from None


def extended(chain: Chain, records: Iterable[Record]) -> Chain:
    """A new chain: ``chain`` followed by ``records`` (``chain`` is unchanged)."""
    result = chain.copy()
    assert isinstance(result, _Spans)
    running, count, topics = result.running, result.count, _TOPICS
    for version, topic, state in records:
        name = topics.get(topic)
        if name is None:
            name = topic.encode("utf-8", "surrogatepass")
            if len(topics) < 256:  # the engine's own type names; a damaged store may hold others
                topics[topic] = name
        try:  # _framed inline: this loop runs for every record read
            running.update(_FRAME(version, len(name), len(state)) + name + state)
        except struct.error:
            running.update(_framed(version, name, state))  # raises the damage as a TypeError
        count += 1
        if count == _SPAN:
            result.link = running.digest()
            result.start += _SPAN
            running, count = _sha256(result.link), 0
    result.running, result.count = running, count
    return result


def checkpoints_of(session_id: str, records: Sequence[Record]) -> dict[int, bytes]:
    """The link at every checkpoint of a session whose log is ``records``
    (by the version its span begins after: 0, 64, 128...)."""
    chain = chain_of(session_id)
    links = dict((chain.checkpoint(),))
    for start in range(0, len(records) - _SPAN + 1, _SPAN):
        chain = extended(chain, records[start : start + _SPAN])
        links.update((chain.checkpoint(),))
    return links


def head_of(session_id: str, records: Iterable[Record]) -> bytes:
    """The head of a session whose log is ``records``."""
    return extended(chain_of(session_id), records).digest()


def legacy_head_of(session_id: str, records: Iterable[Record]) -> bytes:
    """The head earlier builds kept: one running SHA-256 over the framed
    records (it cannot be resumed from a link, so tail reads need the new one)."""
    running = _sha256(_origin(session_id))
    for version, topic, state in records:
        name = topic.encode("utf-8", "surrogatepass")
        running.update(_framed(version, name, state))
    return running.digest()


_ENCODE = msgspec.json.encode


def seal_of(row: SessionRow, key: bytes | None) -> str:
    """The seal of a listing row over every field but the seal itself."""
    # A row written before rows had a summary was sealed without one.
    fields = _ENCODE(tuple(row)[:8] if row.summary is None else (*row[:8], row.summary))
    if key is None:
        return hashlib.sha256(b"transcript-engine/row\x00" + fields).hexdigest()
    return hmac.new(key, fields, "sha256").hexdigest()


def seal_mode(key: bytes | None) -> str:
    """How a store's listing rows are sealed, as the store records it: with
    SHA-256, or with an HMAC under a key it names by a check value (never
    the key itself), so that it is never opened and written with another."""
    if key is None:
        return "sha256"
    return "hmac-sha256:" + hmac.new(key, b"transcript-engine/seal-mode", "sha256").hexdigest()[:32]


def sealed_with(row: SessionRow, key: bytes | None) -> bool:
    """Whether ``row``'s seal is the one ``key`` (``None``: no key) gives it."""
    try:
        return isinstance(row.seal, str) and hmac.compare_digest(seal_of(row, key), row.seal)
    except (TypeError, ValueError):  # fields of types no write of the engine stores: damage
        return False


def seal_mode_of(rows: Iterable[SessionRow], key: bytes | None) -> str | None:
    """The seal mode a store has that recorded none (a new store, or one of
    an earlier build), told from its listing rows by an opening with
    ``key``: this opening's way if it has no rows; that key's if a row is
    sealed with it (so whoever sealed them held it); no key if every row is
    sealed without one; else ``None`` (rows sealed with a key this opening
    lacks, or damage: then it writes nothing, and reads say which rows)."""
    unkeyed, empty = True, True
    for row in rows:
        if key is not None and sealed_with(row, key):
            return seal_mode(key)
        unkeyed, empty = unkeyed and sealed_with(row, None), False
    if empty:
        return seal_mode(key)  # a new store: sealed the way its first opening seals
    return seal_mode(None) if unkeyed else None


def check_seal_mode(where: str, recorded: object, key: bytes | None) -> None:
    """``InvalidArgument`` unless the store's recorded seal mode (``None``:
    not recorded) is the one ``key`` gives: a store sealed one way and
    written another would hold rows no single key reads."""
    mode = seal_mode(key)
    if recorded is None or recorded == mode:
        return
    if recorded == seal_mode(None):
        raise InvalidArgument(
            f"the store at {where} records that its listing rows are sealed without a key, but it was opened with "
            "seal_key=: if it never had a key, open it without one; if its rows were sealed with this key, someone "
            "without the key replaced them or that record, so treat what it holds as altered"
        )
    if key is None:
        raise InvalidArgument(
            f"the store at {where} seals its listing rows with a key: open it with seal_key= (on the command line, "
            "--seal-key-file)"
        )
    raise InvalidArgument(f"the store at {where} seals its listing rows with another key than the seal_key given")


def unknown_seal_mode(where: str) -> InvalidArgument:
    """The refusal of a write to a store whose seal mode is not known (see
    ``seal_mode_of``): a row sealed this opening's way could be one no
    opening reads along with the others."""
    return InvalidArgument(
        f"the store at {where} cannot tell how its listing rows are sealed (none is sealed the way this opening "
        "seals them): open it with the seal_key its rows are sealed with; nothing was written"
    )


def check_legacy_sealing(where: str, key: bytes | None, seal_legacy: bool) -> None:
    """A store without row seals is sealed when opened, unless a seal key is
    in use and the caller did not say the store is an old one: anyone who can
    write to the store can drop the seals, and sealing would then vouch for
    whatever they left."""
    if key is not None and not seal_legacy:
        raise CorruptStore(
            f"the store at {where} has no row seals, but is opened with a seal key: either it was written by "
            "transcript-engine 0.1 (then open it once with seal_legacy=True) or someone removed its seals"
        )


def removed_seals(where: str, later: Sequence[str]) -> CorruptStore:
    """The refusal of a store whose listing rows lack their chain head or
    seal, although it has ``later``: tables or columns of a build that
    sealed every row (only a store of version 0.1 was never sealed).
    Sealing it would vouch for whatever someone who removed the columns
    left."""
    return CorruptStore(
        f"the store at {where} has listing rows without a chain head and seal, yet it has "
        f"{', '.join(later)}, which only builds that seal every row make: the columns were removed, so what it "
        "holds may have been altered; nothing was written"
    )


def sealed_row(row: SessionRow, records: Iterable[Record], key: bytes | None) -> SessionRow:
    """A row of a store written before rows were sealed, given the head of
    its records and its seal (once, when the store is upgraded)."""
    row = row._replace(head=head_of(row.session_id, records).hex())
    return row._replace(seal=seal_of(row, key))
