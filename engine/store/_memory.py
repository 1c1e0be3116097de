"""The in-memory backend: eventsourcing's POPO recorder plus listing rows and
snapshots kept in dicts under the recorder's lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from engine.store._backend import RecorderBackend, SessionRow, StoredSnapshot


class MemoryRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[str, SessionRow] = {}
        self._snapshots: dict[str, StoredSnapshot] = {}

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Runs under the database lock, after the uniqueness check passed.
        ids = super()._update_table(stored_events, **kwargs)
        row: SessionRow | None = kwargs.get("session_row")
        if row is not None:
            previous = self._sessions.get(row.session_id)
            self._sessions[row.session_id] = row if previous is None else row._replace(created_at=previous.created_at)
        return ids

    def select_events(
        self, originator_id: Any, *, gt: int | None = None, lte: int | None = None,
        desc: bool = False, limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        # Versions are dense from 1, so a range is sliced, not scanned (the
        # POPO recorder scans every version of the session).
        with self._database_lock:
            index = self._stored_events_index.get(str(originator_id))
            if not index:
                return []
            last = len(index) if lte is None else min(lte, len(index))
            versions = range((gt or 0) + 1, last + 1)
            if desc:
                versions = versions[::-1]
            if limit is not None:
                versions = versions[:limit]
            return [self._stored_events[index[version]] for version in versions]

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        with self._database_lock:
            snapshot = self._snapshots.get(session_id)
        if snapshot is None or (upto is not None and snapshot.version > upto):
            return None
        return snapshot

    def upsert_snapshot(self, session_id: str, version: int, state: bytes) -> None:
        with self._database_lock:
            current = self._snapshots.get(session_id)
            if current is None or current.version < version:
                self._snapshots[session_id] = StoredSnapshot(version, state)

    def select_sessions(self) -> list[SessionRow]:
        with self._database_lock:
            rows = list(self._sessions.values())
        rows.sort(key=lambda row: (row.created_at, row.session_id))
        return rows


def open_memory() -> RecorderBackend:
    return RecorderBackend(MemoryRecorder(), "memory")
