"""Tamper evidence for stored records: a hash chain over every record of a
session and a seal over its listing row.

Each record's link commits to the link before it and to everything the
record holds (version, type name, every byte of the stored event), so any
edit, removal, reordering or insertion changes every link after it. The last
link, the session's *head*, is kept in its listing row, and the row is sealed
(a SHA-256, or an HMAC when the store has a seal key) over all its fields.
Loads compare the records they read with the sealed head; nothing the store
returns has skipped that check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import msgspec

from engine.store._records import Record, SessionRow

__all__ = ["genesis", "head_of", "link", "links", "seal_of", "sealed_row"]

_sha256 = hashlib.sha256


def genesis(session_id: str) -> bytes:
    """The link before a session's first record: the chain of one session
    cannot be passed off as another's."""
    return _sha256(b"transcript-engine/session\x00" + session_id.encode("utf-8", "surrogatepass")).digest()


def link(previous: bytes, record: Record) -> bytes:
    version, topic, state = record
    step = _sha256(previous)
    step.update(b"%d\x00%s\x00" % (version, topic.encode("utf-8", "surrogatepass")))
    step.update(state)
    return step.digest()


def head_of(previous: bytes, records: Iterable[Record]) -> bytes:
    """The link after ``records``, chained on from ``previous``."""
    current = previous
    for record in records:
        current = link(current, record)
    return current


def links(previous: bytes, records: Iterable[Record]) -> list[bytes]:
    """The link after each of ``records``."""
    result = []
    current = previous
    for record in records:
        current = link(current, record)
        result.append(current)
    return result


_ENCODE = msgspec.json.encode


def seal_of(row: SessionRow, key: bytes | None) -> str:
    """The seal of a listing row over every field but the seal itself."""
    fields = _ENCODE(tuple(row)[:-1])
    if key is None:
        return _sha256(b"transcript-engine/row\x00" + fields).hexdigest()
    return hmac.new(key, fields, "sha256").hexdigest()


def sealed_row(row: SessionRow, records: Iterable[Record], key: bytes | None) -> SessionRow:
    """A row of a store written before rows were sealed, given the head of
    its records and its seal (once, when the store is upgraded)."""
    row = row._replace(head=head_of(genesis(row.session_id), records).hex())
    return row._replace(seal=seal_of(row, key))
