"""The in-memory backend: eventsourcing's POPO recorder plus listing rows and
snapshots kept in dicts under the recorder's lock."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from engine.errors import ConcurrentWriteError, SessionNotFound
from engine.store._backend import RecorderBackend
from engine.store._chain import seal_mode
from engine.store._codec import (
    READABLE_TOPICS,
    decode_summary,
    fork_source,
    refuse_children,
    refuse_new_forks,
    refuse_orphans,
    spawn_parent,
    spawn_parents,
)
from engine.store._records import FeedEntry, ListingFilter, Record, Rewrite, SessionRow, StoredSnapshot


class MemoryRecorder(POPOApplicationRecorder):
    # Deleted sessions leave empty records at their positions (eventsourcing
    # numbers positions by list index); the feed shows only real event types.
    feed_topics = tuple(READABLE_TOPICS)

    def __init__(self, seal_mode: str) -> None:
        super().__init__()
        self._sessions: dict[str, SessionRow] = {}
        self._snapshots: dict[str, list[StoredSnapshot]] = {}
        self._seal_mode = seal_mode

    def select_seal_mode(self) -> str | None:
        return self._seal_mode

    def insert_records(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None,
        previous_head: str | None,
        source_head: str | None,
    ) -> None:
        stored = [StoredEvent(session_id, version, topic, state) for version, topic, state in records]
        self.insert_events(
            stored, session_row=row, snapshot=snapshot, previous_head=previous_head, source_head=source_head
        )

    @contextlib.contextmanager
    def holding_writes(self, session_id: str) -> Iterator[None]:
        """The database lock for the whole block (see
        ``Backend.writing_alone``): other threads' writes wait; this
        thread's own write takes it again."""
        with self._database_lock:
            yield

    @contextlib.contextmanager
    def holding_rewrites(self, session_ids: Sequence[str]) -> Iterator[None]:
        """The database lock for the whole block (see
        ``Backend.rewriting_alone``), as :meth:`holding_writes` holds it."""
        with self._database_lock:
            yield

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Runs under the database lock, after the uniqueness check passed.
        first = stored_events[0] if stored_events else None
        written = first is not None and first.originator_version > 1 and kwargs.get("session_row") is not None
        if written and first is not None:
            current = self._sessions.get(str(first.originator_id))
            if current is None:
                raise SessionNotFound(str(first.originator_id))  # deleted since this writer read it
            expected = kwargs.get("previous_head")
            if expected is not None and current.head != expected:
                # The log changed under the writer (an erasure re-linked it, or
                # the session was deleted and created again with the same id).
                raise ConcurrentWriteError(str(first.originator_id), first.originator_version)
        if first is not None and first.originator_version == 1:
            source = fork_source(str(first.originator_id), first.topic, first.state)
            if source is not None:
                found = self._sessions.get(source)
                if found is None:
                    raise SessionNotFound(source)  # deleted since the fork was prepared
                expected = kwargs.get("source_head")
                if expected is not None and found.head != expected:
                    raise ConcurrentWriteError(source, found.version)  # its log changed since
            parent = spawn_parent(str(first.originator_id), first.topic, first.state)
            if parent is not None and parent not in self._sessions:
                raise SessionNotFound(parent)  # deleted since the child was recorded
        ids = super()._update_table(stored_events, **kwargs)
        row: SessionRow | None = kwargs.get("session_row")
        if row is not None:
            self._sessions[row.session_id] = row
        snapshot: StoredSnapshot | None = kwargs.get("snapshot")
        if snapshot is not None and row is not None:
            self._snapshots.setdefault(row.session_id, []).append(snapshot)  # versions only grow
        return ids

    def rewrite_records(self, changes: Sequence[Rewrite], family: Sequence[str] | None = None) -> Callable[[], None]:
        with self._database_lock:
            if family:
                refuse_new_forks(family, self._first_records())
            for change in changes:  # checked first: all or nothing
                row = self._sessions.get(change.session_id)
                if row is None:
                    raise SessionNotFound(change.session_id)
                if change.previous_head is not None and row.head != change.previous_head:
                    raise ConcurrentWriteError(change.session_id, row.version)  # its log changed since it was read
                index = self._stored_events_index.get(change.session_id, {})
                for record in change.appended:
                    if record.version in index:
                        raise IntegrityError(f"version {record.version} of {change.session_id!r} is taken")
                if any(record.version not in index for record in change.replaced):
                    raise IntegrityError(f"a replaced record of {change.session_id!r} does not exist")
                kept = {snapshot.version for snapshot in self._snapshots.get(change.session_id, [])}
                if any(snapshot.version not in kept for snapshot in change.snapshots):
                    raise IntegrityError(f"a replaced snapshot of {change.session_id!r} does not exist")
            for change in changes:
                index = self._stored_events_index[change.session_id]
                for version, topic, state in change.replaced:
                    self._stored_events[index[version]] = StoredEvent(change.session_id, version, topic, state)
                replacing = {snapshot.version: snapshot for snapshot in change.snapshots}
                if replacing:
                    self._snapshots[change.session_id] = [
                        replacing.get(snapshot.version, snapshot) for snapshot in self._snapshots[change.session_id]
                    ]
                self._update_table(
                    [StoredEvent(change.session_id, *record) for record in change.appended], session_row=change.row
                )
        return _nothing_left  # the replaced bytes are gone with their objects

    def _first_records(self) -> list[tuple[str, str, bytes]]:
        """Every session's first record (session id, type name, bytes)."""
        firsts = [
            (child, self._stored_events[index[1]]) for child, index in self._stored_events_index.items() if 1 in index
        ]
        return [(child, first.topic, first.state) for child, first in firsts]

    def delete_sessions(self, session_ids: Sequence[str]) -> Callable[[], None]:
        with self._database_lock:
            refuse_orphans(session_ids, self._first_records())
            parents = [
                (sid, decode_summary(sid, row.summary).parent)
                for sid, row in self._sessions.items()
                if row.summary is not None
            ]
            unsummarised = {sid for sid, row in self._sessions.items() if row.summary is None}
            firsts = [first for first in self._first_records() if first[0] in unsummarised]
            refuse_children(session_ids, [*parents, *spawn_parents(firsts)])
            for session_id in session_ids:
                index = self._stored_events_index.pop(session_id, {})
                for version, position in index.items():
                    # The position stays taken (eventsourcing numbers notifications by it); the bytes go.
                    self._stored_events[position] = StoredEvent(session_id, version, "", b"")
                self._sessions.pop(session_id, None)
                self._snapshots.pop(session_id, None)
        return _nothing_left

    def select_records(self, session_id: str, after: int, upto: int | None) -> list[Record]:
        # Versions are dense from 1, so a range is sliced, not scanned (the
        # POPO recorder's select_events scans every version of the session).
        with self._database_lock:
            index = self._stored_events_index.get(session_id)
            if not index:
                return []
            last = len(index) if upto is None else min(upto, len(index))
            events = self._stored_events
            return [
                Record(version, event.topic, event.state)
                for version in range(after + 1, last + 1)
                for event in (events[index[version]],)
            ]

    def forget_cached(self) -> None:
        pass  # the memory is the store

    def select_feed(self, after: int, limit: int) -> list[FeedEntry]:
        found = self.select_notifications(after, limit, topics=self.feed_topics, inclusive_of_start=False)
        return [
            FeedEntry(note.id, str(note.originator_id), Record(note.originator_version, note.topic, bytes(note.state)))
            for note in found
        ]

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        with self._database_lock:
            snapshots = self._snapshots.get(session_id, [])
            position = len(snapshots) if upto is None else bisect.bisect_right(snapshots, upto, key=lambda s: s.version)
            return snapshots[position - 1] if position else None

    def select_snapshots(self, session_id: str) -> list[StoredSnapshot]:
        with self._database_lock:
            return list(self._snapshots.get(session_id, []))

    def select_unlisted_snapshots(self) -> list[str]:
        with self._database_lock:
            return sorted(
                session_id for session_id, kept in self._snapshots.items() if kept and session_id not in self._sessions
            )

    def select_session(self, session_id: str) -> SessionRow | None:
        with self._database_lock:
            return self._sessions.get(session_id)

    def select_fork_records(self) -> list[tuple[str, str, bytes]]:
        with self._database_lock:
            return [
                first
                for first in self._first_records()
                if first[1].startswith("SessionForked.") and first[0] in self._sessions
            ]

    def select_sessions(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        # The backend tests each row against ``wanted``: nothing to narrow here.
        with self._database_lock:
            rows = list(self._sessions.values())
        rows.sort(key=lambda row: (row.created_at, row.session_id))
        return rows


def open_memory(seal_key: bytes | None = None) -> RecorderBackend:
    return RecorderBackend(MemoryRecorder(seal_mode(seal_key)), "memory", seal_key=seal_key)


def _nothing_left() -> None:
    """What is left to purge after a memory store's rewrite: nothing."""
