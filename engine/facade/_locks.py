"""Which thread may work on which session of a store, and when.

A call on one session holds that session's lock (a call on several holds
theirs, taken in sorted order, so two such calls never wait on each other in
a circle); calls on different sessions run at once, each on its own
database round trips. A call whose sessions are found only as it goes
(erasing a family, deleting with forks, closing) takes the whole store: it
waits for the calls under way and holds new ones until it ends. A call waits
for its turn on a session at most the store's ``lock_timeout``: a queue of
calls behind one stuck on a database lock does not wait a multiple of it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from engine.errors import StorageUnavailable
from engine.state.content import shown

__all__ = ["SessionLocks"]


# Locks of sessions no call holds are kept up to this many (making one costs
# more than keeping it), then dropped all at once.
_KEPT_ENTRIES = 1024


class _Entry:
    __slots__ = ("lock", "session_id", "users")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.lock = threading.RLock()
        self.users = 0  # holders and waiters: the entry may go when none is left


class _Holding:
    """What ``SessionLocks.holding`` returns: a class, not a generator, as
    it is entered on every call."""

    __slots__ = ("_entries", "_locks", "_session_ids")

    def __init__(self, locks: SessionLocks, session_ids: tuple[str, ...]) -> None:
        self._locks, self._session_ids = locks, session_ids

    def __enter__(self) -> None:
        ids = self._session_ids
        if not (len(ids) == 1 and type(ids[0]) is str):
            ids = tuple(sorted({sid for sid in ids if isinstance(sid, str)}))
        locks = self._locks
        entries = self._entries = locks._enter(ids)
        taken = 0
        try:
            for entry in entries:
                if not entry.lock.acquire(timeout=locks.timeout):
                    raise StorageUnavailable(
                        f"session {shown(entry.session_id)}: another call of this process on it kept it busy "
                        f"for lock_timeout ({locks.timeout:g} s); this call did nothing. Try again later"
                    )
                taken += 1
        except BaseException:  # timed out or interrupted while waiting: let go of what was taken
            for entry in entries[:taken]:
                entry.lock.release()
            self._locks._leave(entries)
            raise

    def __exit__(self, *exc: object) -> None:
        entries = self._entries
        for entry in reversed(entries):
            entry.lock.release()
        self._locks._leave(entries)


class SessionLocks:
    """``timeout``: the longest a call waits for its turn on a session (the
    store's ``lock_timeout``); then it raises ``StorageUnavailable``."""

    def __init__(self, timeout: float = 10) -> None:
        self.timeout = timeout
        self._guard = threading.Lock()  # over the fields below (``with`` on it is cheaper than on the condition)
        self._state = threading.Condition(self._guard)
        self._entries: dict[str, _Entry] = {}  # kept while unused, up to _KEPT_ENTRIES of them
        self._sharing = 0  # calls holding session locks (they exclude ``whole``)
        self._whole_owner: int | None = None  # the thread holding the whole store
        self._whole_depth = 0
        self._whole_waiting = 0
        self._local = threading.local()  # this thread's depth of session-lock calls

    def holding(self, *session_ids: str) -> _Holding:
        """Hold the locks of ``session_ids`` (and a share of the store), as a
        context manager. An id that is no string names no session: the call
        refuses it itself."""
        return _Holding(self, session_ids)

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
        with self._guard:
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
            with self._guard:
                self._whole_depth -= 1
                if not self._whole_depth:
                    self._whole_owner = None
                    self._state.notify_all()

    def in_use(self, session_id: str) -> bool:
        """Whether a call holds, or waits for, the session's lock: from
        before it waits to after it lets go, so its whole call."""
        entry = self._entries.get(session_id)
        return entry is not None and entry.users > 0

    def _enter(self, session_ids: Sequence[str]) -> list[_Entry]:
        local = self._local
        depth = getattr(local, "depth", 0)
        with self._guard:
            # A call already under way on this thread goes on (it would
            # otherwise wait for a ``whole`` that waits for it).
            whole = self._whole_owner is not None or self._whole_waiting
            if whole and not depth and self._whole_owner != threading.get_ident():
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
        with self._guard:
            for entry in entries:
                entry.users -= 1
            if len(self._entries) > _KEPT_ENTRIES:  # the unused go (a store may see millions of sessions)
                for session_id in [sid for sid, entry in self._entries.items() if not entry.users]:
                    del self._entries[session_id]
            self._sharing -= 1
            if not self._sharing and self._whole_waiting:
                self._state.notify_all()
