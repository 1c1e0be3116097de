"""Revision ids: a chained content digest over a transcript's messages.

``rev_0`` is the digest of the empty transcript and
``rev_n = sha256(rev_{n-1} || digest(message_n))``, so an append costs O(1),
any prefix has a known revision, and equal transcripts have equal revisions
whatever session, time or message ids they came from.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from datetime import datetime

import msgspec

from engine.errors import CorruptStore, InvalidArgument, InvalidRevision
from engine.state.content import Message, kind_of, shown, unicode_error

__all__ = [
    "EMPTY_REVISION",
    "Commit",
    "Reason",
    "chain",
    "chain_each",
    "format_revision",
    "id_mask",
    "message_id_key",
    "parse_revision",
    "revision_id",
    "revision_of",
    "span_digest",
    "stored_revision_bytes",
]

_PREFIX = "sha256:"
EMPTY_REVISION_BYTES = hashlib.sha256(b"").digest()


def format_revision(raw: bytes) -> str:
    return _PREFIX + raw.hex()


EMPTY_REVISION = format_revision(EMPTY_REVISION_BYTES)


def parse_revision(revision: object) -> bytes:
    """The 32 raw bytes of a ``sha256:<hex>`` revision id, or ``InvalidRevision``."""
    if not isinstance(revision, str) or not revision.startswith(_PREFIX) or len(revision) != 71:
        raise InvalidRevision(f"a revision id looks like 'sha256:' followed by 64 hex digits, got {shown(revision)}")
    try:
        return bytes.fromhex(revision[7:])
    except ValueError:
        raise InvalidRevision(f"revision {shown(revision)} has non-hex digits") from None


@functools.lru_cache(maxsize=4096)  # once per session, not per append
def message_id_key(session_id: str) -> int:
    """What :func:`id_mask` takes from a session: 10 bytes of a digest of
    its id, so that sessions (a fork and its source among them) that reach
    the same revision still name their messages apart."""
    digest = hashlib.sha256(b"transcript-engine/message-id\x00" + session_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:10], "big")


def id_mask(session_id: str, version: int) -> int:
    """What :func:`revision_id` mixes into the ids of the messages an event
    of ``session_id`` at ``version`` appends: the session's
    :func:`message_id_key` exclusive-or the version (as 10 bytes), so that a
    revision reached again by a later append (after a rewrite took the
    session back) names another message."""
    return message_id_key(session_id) ^ version


def revision_id(revision: bytes, mask: int) -> str:
    """The id the engine gives a message it appends: ``msg_`` and 20 hex
    digits, the first 10 bytes of the revision ``revision`` (32 raw bytes)
    that the session reached with it, exclusive-or :func:`id_mask` of the
    append. The stored form, which keeps the revision, keeps no copy."""
    return "msg_" + (int.from_bytes(revision[:10], "big") ^ mask).to_bytes(10, "big").hex()


def stored_revision_bytes(revision: str, where: str) -> bytes:
    """The raw bytes of a revision read back from the store: cheaper than
    :func:`parse_revision` (a cold load parses one per event), and a malformed
    value is damage (``CorruptStore``), not a caller's mistake."""
    try:
        raw = bytes.fromhex(revision[7:])
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32 or not revision.startswith("sha256:"):
        raise CorruptStore(f"{where}: malformed revision {shown(revision)}")
    return raw


def chain(previous: bytes, messages: Iterable[Message]) -> bytes:
    """The revision reached by appending ``messages`` to the revision ``previous``."""
    sha256 = hashlib.sha256
    current = previous
    for message in messages:
        current = sha256(current + message.digest_bytes()).digest()
    return current


def chain_each(previous: bytes, messages: Iterable[Message]) -> list[bytes]:
    """The revision after each of ``messages``, appended one by one to ``previous``."""
    sha256 = hashlib.sha256
    current = previous
    revisions = []
    for message in messages:
        current = sha256(current + message.digest_bytes()).digest()
        revisions.append(current)
    return revisions


def revision_of(messages: Iterable[Message]) -> str:
    """The revision id of a whole transcript."""
    return format_revision(chain(EMPTY_REVISION_BYTES, messages))


#: The digest of a span of messages is the revision of the span on its own.
span_digest = revision_of


_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")


class Reason(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why a transcript changed: a kind (``edit``, ``compaction``,
    ``redaction``, ``restore``, ``truncation``, ``provider_deleted``, or a
    caller's own lowercase word) and an optional note. Audit only: the engine
    applies no policy by kind."""

    kind: str
    note: str | None = None

    @classmethod
    def of(cls, reason: object, note: object = None) -> Reason:
        if isinstance(reason, Reason):
            if note is not None:
                raise InvalidArgument("give the note inside the Reason or as note=, not both")
            note = reason.note
            reason = reason.kind
        if type(reason) is not str or not _KIND.fullmatch(reason):
            raise InvalidArgument(
                f"reason must be a kind such as 'edit' or 'compaction' (lowercase letters, digits, "
                f"underscores; a plain str), got {shown(reason)}"
            )
        if note is not None and type(note) is not str:
            raise InvalidArgument(f"note must be a str or None, got {kind_of(note)}")
        if note is not None and not note.isascii():
            unicode_error(note, "note", InvalidArgument)
        return cls(kind=reason, note=note)


class Commit(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a transcript's content, from ``parent_revision`` to
    ``revision``: ``[start, end)`` of ``count_before`` messages replaced by a
    span whose digest is ``replacement_digest`` (an append replaces the empty
    span at the end). ``generation`` numbers the session's commits 1, 2, ...
    so a revision reached twice is told apart; ``version`` is the event that
    recorded the commit."""

    version: int
    generation: int
    parent_revision: str
    revision: str
    start: int
    end: int
    removed_digest: str
    replacement_digest: str
    count_before: int
    count_after: int
    reason: Reason
    actor: str | None
    at: datetime
