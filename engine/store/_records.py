"""The rows a backend stores: records (events), listing rows, snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["FeedEntry", "Record", "Rewrite", "SessionRow", "StoredSnapshot"]


class Record(NamedTuple):
    """One stored event: its version in the session, type name and bytes."""

    version: int
    topic: str
    state: bytes


class SessionRow(NamedTuple):
    """The listing row kept for every session (times are ISO-8601 UTC text).

    ``head`` is the hex link of the session's last record (see
    ``engine.store._chain``); ``seal`` covers every other field and is set
    and checked by the backend, so callers leave it empty."""

    session_id: str
    title: str | None
    created_at: str
    updated_at: str
    message_count: int
    revision: str
    version: int
    head: str
    seal: str = ""


class StoredSnapshot(NamedTuple):
    version: int
    state: bytes


class Rewrite(NamedTuple):
    """One session's part of an erasure: stored records whose bytes are
    replaced (same version and type), records appended after the log, and
    the listing row after both."""

    session_id: str
    replaced: Sequence[Record]
    appended: Sequence[Record]
    row: SessionRow


class FeedEntry(NamedTuple):
    """One stored event in the store-wide feed: its position (increasing in
    commit order across all sessions; gaps where sessions were deleted), its
    session and the record itself."""

    position: int
    session_id: str
    record: Record
