"""Revision ids: a chained content digest over a transcript's messages.

``rev_0`` is the digest of the empty transcript and
``rev_n = sha256(rev_{n-1} || digest(message_n))``, so an append costs O(1),
any prefix has a known revision, and equal transcripts have equal revisions
whatever session, time or message ids they came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from engine.content import Message
from engine.errors import InvalidRevision

__all__ = ["EMPTY_REVISION", "chain", "format_revision", "parse_revision", "revision_of"]

_PREFIX = "sha256:"
EMPTY_REVISION_BYTES = hashlib.sha256(b"").digest()


def format_revision(raw: bytes) -> str:
    return _PREFIX + raw.hex()


EMPTY_REVISION = format_revision(EMPTY_REVISION_BYTES)


def parse_revision(revision: object) -> bytes:
    """The 32 raw bytes of a ``sha256:<hex>`` revision id, or ``InvalidRevision``."""
    if not isinstance(revision, str) or not revision.startswith(_PREFIX) or len(revision) != 71:
        raise InvalidRevision(
            f"a revision id looks like 'sha256:' followed by 64 hex digits, got {revision!r}"
        )
    try:
        return bytes.fromhex(revision[7:])
    except ValueError:
        raise InvalidRevision(f"revision {revision!r} has non-hex digits") from None


def chain(previous: bytes, messages: Iterable[Message]) -> bytes:
    """The revision reached by appending ``messages`` to the revision ``previous``."""
    sha256 = hashlib.sha256
    current = previous
    for message in messages:
        current = sha256(current + message.digest_bytes()).digest()
    return current


def revision_of(messages: Iterable[Message]) -> str:
    """The revision id of a whole transcript."""
    return format_revision(chain(EMPTY_REVISION_BYTES, messages))
