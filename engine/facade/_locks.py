"""Which thread may work on which session of a store, and when.

A call on one session holds that session's lock (a call on several holds
theirs, taken in sorted order, so two such calls never wait on each other in
a circle); calls on different sessions run at once, each on its own
database round trips. A call whose sessions are found only as it goes
(erasing a family, deleting with forks, closing) takes the whole store: it
waits for the calls under way and holds new ones until it ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["SessionLocks"]


class _Entry:
    __slots__ = ("lock", "session_id", "users")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.lock = threading.RLock()
        self.users = 0  # holders and waiters: the entry goes when none is left


class SessionLocks:
    def __init__(self) -> None:
        self._state = threading.Condition(threading.Lock())
        self._entries: dict[str, _Entry] = {}
        self._sharing = 0  # calls holding session locks (they exclude ``whole``)
        self._whole_owner: int | None = None  # the thread holding the whole store
        self._whole_depth = 0
        self._whole_waiting = 0
        self._local = threading.local()  # this thread's depth of session-lock calls

    @contextlib.contextmanager
    def holding(self, *session_ids: str) -> Iterator[None]:
        """Hold the locks of ``session_ids`` (and a share of the store). An id
        that is no string names no session: the call refuses it itself."""
        entries = self._enter(sorted({sid for sid in session_ids if isinstance(sid, str)}))
        acquired: list[_Entry] = []
        try:
            for entry in entries:
                entry.lock.acquire()
                acquired.append(entry)
            yield
        finally:
            for entry in reversed(acquired):
                entry.lock.release()
            self._leave(entries)

    @contextlib.contextmanager
    def holding_if_free(self, session_id: str) -> Iterator[bool]:
        """Hold ``session_id``'s lock if no other thread holds it now; say
        whether it is held. For reading a session on the way to another (a
        fork's source): waiting there could wait in a circle."""
        [entry] = self._enter([session_id])
        got = entry.lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                entry.lock.release()
            self._leave([entry])

    @contextlib.contextmanager
    def whole(self) -> Iterator[None]:
        """Hold the whole store: no other thread's call runs meanwhile."""
        me = threading.get_ident()
        with self._state:
            if self._whole_owner == me:
                self._whole_depth += 1
            else:
                if getattr(self._local, "depth", 0):
                    raise RuntimeError("a call holding session locks cannot take the whole store")
                self._whole_waiting += 1
                try:
                    self._state.wait_for(lambda: self._whole_owner is None and not self._sharing)
                finally:
                    self._whole_waiting -= 1
                self._whole_owner, self._whole_depth = me, 1
        try:
            yield
        finally:
            with self._state:
                self._whole_depth -= 1
                if not self._whole_depth:
                    self._whole_owner = None
                    self._state.notify_all()

    def _enter(self, session_ids: list[str]) -> list[_Entry]:
        local = self._local
        depth = getattr(local, "depth", 0)
        with self._state:
            if self._whole_owner != threading.get_ident() and not depth:
                # A call already under way on this thread goes on (it would
                # otherwise wait for a ``whole`` that waits for it).
                self._state.wait_for(lambda: self._whole_owner is None and not self._whole_waiting)
            self._sharing += 1
            entries = []
            for session_id in session_ids:
                entry = self._entries.get(session_id)
                if entry is None:
                    entry = self._entries[session_id] = _Entry(session_id)
                entry.users += 1
                entries.append(entry)
        local.depth = depth + 1
        return entries

    def _leave(self, entries: list[_Entry]) -> None:
        self._local.depth -= 1
        with self._state:
            for entry in entries:
                entry.users -= 1
                if not entry.users:
                    del self._entries[entry.session_id]
            self._sharing -= 1
            if not self._sharing and self._whole_waiting:
                self._state.notify_all()
