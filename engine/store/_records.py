"""The rows a backend stores: records (events), listing rows, snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["LISTING_COLUMNS", "FeedEntry", "ListingFilter", "Record", "Rewrite", "SessionRow", "StoredSnapshot"]


class Record(NamedTuple):
    """One stored event: its version in the session, type name and bytes."""

    version: int
    topic: str
    state: bytes


#: Columns every build's listing table has had: a table of that name
#: without them belongs to someone else.
LISTING_COLUMNS = frozenset(("session_id", "title", "created_at", "updated_at", "message_count", "revision", "version"))


class SessionRow(NamedTuple):
    """The listing row kept for every session (times are ISO-8601 UTC text).

    ``head`` is the hex link of the session's last record (see
    ``engine.store._chain``); ``seal`` covers every other field and is set
    and checked by the backend, so callers leave it empty. ``summary`` is
    the JSON text listings filter on (``engine.store._codec.listing_summary``:
    status, tags, pinned, owner, parent, metadata); ``None`` in a row
    written before rows had one, whose seal then covers the other fields."""

    session_id: str
    title: str | None
    created_at: str
    updated_at: str
    message_count: int
    revision: str
    version: int
    head: str
    seal: str = ""
    summary: str | None = None


#: The listing table's columns in row order, as the backends' SQL names them.
ROW_COLUMNS = ", ".join(SessionRow._fields)


class ListingFilter(NamedTuple):
    """What a listing asks of each session's summary: that status, owner,
    parent and pinned (if given), every one of ``tags``, and every item of
    ``metadata`` (equal as JSON values). Backends may use it to read fewer
    rows; what they return is checked exactly by ``summary_matches``."""

    status: str | None = None
    tags: tuple[str, ...] = ()
    pinned: bool | None = None
    owner: str | None = None
    parent: str | None = None
    metadata: tuple[tuple[str, object], ...] = ()


class StoredSnapshot(NamedTuple):
    version: int
    state: bytes


class Rewrite(NamedTuple):
    """One session's part of an erasure: stored records whose bytes are
    replaced (same version and type), records appended after the log, and
    the listing row after both. ``previous_head``: the chain head of the
    listing row the erasure read; when given, the rewrite happens only while
    the row still holds it (``ConcurrentWriteError`` otherwise).
    ``snapshots``: stored snapshots whose bytes are replaced (same version),
    as the chain checkpoints they keep move with the records."""

    session_id: str
    replaced: Sequence[Record]
    appended: Sequence[Record]
    row: SessionRow
    previous_head: str | None = None
    snapshots: Sequence[StoredSnapshot] = ()


class FeedEntry(NamedTuple):
    """One stored event in the store-wide feed: its position (increasing in
    commit order across all sessions; gaps where sessions were deleted), its
    session and the record itself."""

    position: int
    session_id: str
    record: Record
