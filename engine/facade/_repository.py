"""The repository: a store's sessions as states. It loads a session from its
log (snapshots, forks, the chain check every read starts from), keeps the
newest states in a cache, and commits what a decider decided. The facade's
commands and queries share one repository; nothing here decides anything."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime

from engine.decisions import Fork, ForkSource, check_session_id, realtime_state, whole_fork
from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    EventTooLarge,
    InvalidArgument,
    RevisionNotFound,
    SessionNotFound,
    VersionNotFound,
)
from engine.facade._locks import SessionLocks
from engine.realtime.reducer import RealtimeState
from engine.state.content import Message, Text, shown
from engine.state.events import CONTENT_EVENTS, Event, MessagesAppended, SessionCreated, SessionForked
from engine.state.revisions import EMPTY_REVISION
from engine.state.transcript import KnownAppend, Session, Tail, fold, forked
from engine.store import (
    Backend,
    Chain,
    ClosedBackend,
    Record,
    SessionRow,
    StoredSnapshot,
    chain_of,
    decode_events,
    decode_for_load,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    extended,
    forked_summary,
    legacy_head_of,
    listing_summary,
)

# A NamedTuple's own __new__ is Python code; every append builds these.
_new_tuple = tuple.__new__

#: The largest stored event a store accepts unless opened with another ``max_event_bytes``.
DEFAULT_MAX_EVENT_BYTES = 16 << 20
_MAX_FORK_DEPTH = 10_000


class Repository:
    """Load, cache and commit the sessions of one backend. A call holds the
    ``locks`` of the sessions it works on (see ``SessionLocks``) from reading
    their heads to caching what it committed: a session's cached state is
    changed only by the thread holding its lock, and calls on other sessions
    go on meanwhile, each on its own database round trips."""

    def __init__(
        self,
        backend: Backend,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        lock_timeout: float = 10,
    ) -> None:
        if snapshot_interval is not None and (
            not isinstance(snapshot_interval, int) or isinstance(snapshot_interval, bool) or snapshot_interval < 1
        ):
            raise InvalidArgument(f"snapshot_interval must be a positive int or None, got {shown(snapshot_interval)}")
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 1:
            raise InvalidArgument(f"cache_size must be a positive int, got {shown(cache_size)}")
        if max_event_bytes is not None and (
            not isinstance(max_event_bytes, int) or isinstance(max_event_bytes, bool) or max_event_bytes < 1024
        ):
            raise InvalidArgument(
                f"max_event_bytes must be an int of at least 1024, or None, got {shown(max_event_bytes)}"
            )
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not 0 < lock_timeout < 86400:
            raise InvalidArgument(
                f"lock_timeout is in seconds: a number above 0 and below a day, got {shown(lock_timeout)}"
            )
        self.backend = backend
        self._max_event_bytes = max_event_bytes
        self._snapshot_interval = snapshot_interval
        self.cache_size = cache_size
        self.cache: OrderedDict[str, Session] = OrderedDict()
        self.realtime: dict[str, tuple[int, RealtimeState]] = {}
        # The record chain after each cached head's last record: (version, chain).
        # (version, chain, the head the listing row had when it was checked).
        self.chains: dict[str, tuple[int, Chain, str]] = {}
        # The newest messages last read by ``get(last=)``, with the head they were checked against.
        self.tails: dict[str, tuple[str, Tail]] = {}
        # The listing row's creation time and summary as last written per
        # session, with what they were made from: most writes change neither
        # header, metadata nor parent, and no write the creation time.
        self.summaries: dict[str, tuple[object, object, str | None, datetime, str, str | None]] = {}
        # Sessions whose cached head lost a write to another writer: the next
        # write catches it up from the listing row, reading only the records
        # added since, not the whole log (a writer that keeps losing on a
        # long log would otherwise spend its time re-reading it).
        self.behind: set[str] = set()
        self.locks = SessionLocks(lock_timeout)
        # Guards the caches' order and size (evictions touch other sessions).
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        with self.locks.whole():
            self.backend.close()
            self.backend = ClosedBackend(self.backend.describe())
            self.cache.clear()
            self.realtime.clear()
            self.chains.clear()
            self.tails.clear()
            self.summaries.clear()
            self.behind.clear()

    def decoded(self, session_id: str, records: Sequence[Record]) -> Iterator[tuple[int, Event]]:
        return iter(decode_events(session_id, records))

    def log(self, session_id: str) -> tuple[SessionRow, list[Record], Chain]:
        """Every record of the session up to its listing row's version, checked
        against the chain head sealed in that row: what every read starts from.

        The row is read first: written in the same transaction as the events,
        it is never ahead of events read after it. A mismatch is damage unless
        the row changed meanwhile (an erasure re-links the log): then read again.
        So are events found without a row: the session may have been created
        between the two reads (and deleted again before a third); damage is
        what every attempt finds."""
        check_session_id(session_id)
        problem = ""
        for _ in range(3):
            row = self.backend.session_row(session_id)
            if row is None:
                if not self.backend.read(session_id, upto=1):
                    raise SessionNotFound(session_id)
                problem = f"session {shown(session_id)} has events but no listing row"
                continue
            with _collection_paused(row.version):
                records = self.backend.read(session_id)
            if records and type(records[-1].version) is not int:
                # SQLite keeps any value in any column, and sorts text and
                # blobs after every number: a damaged version comes last.
                raise CorruptStore(
                    f"session {shown(session_id)}: a stored event's version is {shown(records[-1].version)}, "
                    "which no write of the engine makes: its log was damaged or altered"
                )
            if records and records[-1].version > row.version:
                # A writer committed after the row was read (then the row now
                # covers it), or an event was added behind the row's back.
                again = self.backend.session_row(session_id)
                if again is None:
                    raise SessionNotFound(session_id)  # deleted since: the events read were its last ones
                if again.version < records[-1].version:
                    raise CorruptStore(
                        f"session {shown(session_id)} has events after version {row.version}, where its listing row "
                        "ends: they were added outside the engine"
                    )
                records = records[: row.version]
            problem, chain = _chain_problem(session_id, row, records)
            if not problem:
                return row, records, chain
            if self.backend.session_row(session_id) == row:
                break
        raise CorruptStore(problem)

    def records(self, session_id: str, upto: int | None = None) -> list[Record]:
        records = self.log(session_id)[1]
        return records if upto is None else records[:upto]

    def load(self, session_id: str, upto: int | None = None, *, use_snapshot: bool = True) -> Session:
        """Rebuild a state from the log (checked against its chain head). A
        snapshot at or before ``upto`` lets the events it covers be folded
        without re-hashing their messages; the result is cross-checked against
        the snapshot, then the rest is verified. A fork starts from its
        source's state at the fork point (loaded the same way)."""
        # One pause for the whole load: the records and events it builds are
        # freed when it returns, before the collector is back on, so no pass
        # of the collector ever walks them.
        with _collection_paused():
            return self._rebuilt(session_id, upto, use_snapshot, None)

    def source_state(self, session_id: str, event: SessionForked) -> Session:
        """The source of a fork (``event``, the first event of
        ``session_id``) as of the fork point: the cached head if it is that
        version, else rebuilt from the source's log."""
        with _collection_paused():
            return self._rebuilt(session_id, None, True, event)

    def _rebuilt(self, session_id: str, upto: int | None, use_snapshot: bool, fork: SessionForked | None) -> Session:
        """``session_id`` at ``upto`` or, given ``fork`` (its first event),
        its source at the fork point. A fork's sources are read one after
        another down the chain, not by recursion: a chain of forks can be
        thousands long. The walk stops at a log that is not a fork, or at a
        source whose cached head is at the fork point; then each state is
        folded on the one before it."""
        # (session id, version it must reach or None, the fork it is the source of, records, events)
        links: list[tuple[str, int | None, str, list[Record], list[tuple[int, Event | KnownAppend]]]] = []
        if fork is None:
            records, events = self._read_for_load(session_id, upto)
            links.append((session_id, None, session_id, records, events))
            first = events[0][1]
            fork = first if isinstance(first, SessionForked) else None
        forks, walked = [session_id], {(session_id, upto)}  # the sessions walked, each a fork of the next
        base: Session | None = None
        while fork is not None:
            source, version = fork.source, fork.source_version
            if (source, version) in walked or len(walked) > _MAX_FORK_DEPTH:
                cycle = (source, version) in walked
                shape = f"comes back to {source!r}" if cycle else f"is over {_MAX_FORK_DEPTH:,} deep"
                raise CorruptStore(
                    f"session {shown(session_id)}: its chain of forks {shape}, which no write of the engine makes"
                )
            walked.add((source, version))
            base = self._cached_source(fork)
            if base is not None:
                break
            try:
                records, events = self._read_for_load(source, version)
            except SessionNotFound:
                raise self._missing_source(forks, source) from None
            links.append((source, version, forks[-1], records, events))
            forks.append(source)
            first = events[0][1]
            fork = first if isinstance(first, SessionForked) else None
        state = base
        for link_id, fork_point, forked_by, records, events in reversed(links):
            state = self._folded(link_id, records, events, state, use_snapshot)
            if fork_point is not None and state.version != fork_point:
                raise CorruptStore(
                    f"session {shown(forked_by)} forks {link_id!r} at version {fork_point}, "
                    f"which has only {state.version} versions"
                )
        assert state is not None
        return state

    def _read_for_load(
        self, session_id: str, upto: int | None
    ) -> tuple[list[Record], list[tuple[int, Event | KnownAppend]]]:
        """The session's checked records up to ``upto`` (all: the chain is
        kept for the next write) and their events."""
        row, records, chain = self.log(session_id)
        if upto is None:
            self.chains[session_id] = (row.version, chain, row.head)
        else:
            records = records[:upto]
        return records, decode_for_load(session_id, records)

    def _folded(
        self,
        session_id: str,
        records: list[Record],
        events: list[tuple[int, Event | KnownAppend]],
        source: Session | None,
        use_snapshot: bool,
    ) -> Session:
        """The state ``events`` lead to: on ``source`` (the state at the fork
        point) when the first of them is a fork."""
        initial: Session | None = None
        first = events[0][1]
        if isinstance(first, SessionForked):
            assert source is not None
            initial = forked(session_id, first, source)
            events = events[1:]
        use_snapshot = use_snapshot and self._snapshot_interval is not None
        # Bounded by what was just read: a snapshot another writer adds
        # meanwhile is newer than these events, and would not match them.
        stored = self.backend.snapshot(session_id, upto=records[-1].version) if use_snapshot else None
        if stored is None:
            state = fold(session_id, events, start=initial)
        else:
            snapshot = decode_snapshot(session_id, stored.state)
            covered = snapshot.version - (1 if initial is not None else 0)
            prefix = fold(session_id, events[:covered], start=initial, verify=False)
            if prefix is None or not snapshot.vouches_for(prefix):
                raise CorruptStore(
                    f"session {shown(session_id)}: the snapshot at version {snapshot.version} does not match the log"
                )
            state = fold(session_id, events[covered:], start=prefix)
        assert state is not None
        return state

    def _cached_source(self, fork: SessionForked) -> Session | None:
        """The source's cached head, if it is at the fork point and its
        listing row says it still is the source's head."""
        with self.locks.holding_if_free(fork.source) as held:
            # The cached source only while no other thread is writing it:
            # waiting for it could wait in a circle, and what is read
            # without its lock could be older than a state that thread is
            # caching. Checked against the listing row: another process may
            # have rewritten the source's log (an erasure) since it was cached.
            cached = self.cache.get(fork.source) if held else None
            if cached is None or cached.version != fork.source_version:
                return None
            known = self.chains.get(fork.source)
            row = self.backend.session_row(fork.source)
            if known is None or row is None or known[0] != cached.version or row.version != cached.version:
                return None
            return self.remember(cached) if row.head == known[2] else None

    def _missing_source(self, forks: list[str], source: str) -> EngineError:
        """The error for a source that has no log: ``forks`` are the sessions
        walked, each a fork of the next, the last one of ``source``. Read as
        the sessions deleted with it, where they were; else damage."""
        for index in range(len(forks) - 1, -1, -1):
            if self.backend.session_row(forks[index]) is not None:
                missing = forks[index + 1] if index + 1 < len(forks) else source
                return CorruptStore(f"session {shown(forks[index])} is a fork of {missing!r}, which is missing")
        return SessionNotFound(forks[0])

    def remember(self, state: Session) -> Session:
        cache = self.cache
        with self._cache_lock:
            cache[state.id] = state
            cache.move_to_end(state.id)
            excess = len(cache) - self.cache_size
            if excess > 0:
                # The oldest first, but never a session a call is working
                # on: its write checks the chain head cached with the state
                # it decided on (the cache may grow past its size meanwhile).
                in_use = self.locks.in_use
                evicted = []
                for session_id in cache:
                    if not in_use(session_id):
                        evicted.append(session_id)
                        if len(evicted) == excess:
                            break
                for session_id in evicted:
                    del cache[session_id]
                    self.summaries.pop(session_id, None)
                    self.realtime.pop(session_id, None)  # its ingestion state is rebuilt from the log when needed
                    self.chains.pop(session_id, None)
                    self.tails.pop(session_id, None)
        return state

    def remember_tail(self, session_id: str, head: str, tail: Tail) -> None:
        """Keep the newest messages read by ``get(last=)`` with the head they
        were checked against; the oldest read goes first."""
        tails = self.tails
        with self._cache_lock:
            tails.pop(session_id, None)
            tails[session_id] = (head, tail)
            if len(tails) > self.cache_size:
                del tails[next(iter(tails))]

    def realtime_state(self, head: Session) -> RealtimeState:
        """The session's ingestion state as of ``head``, rebuilt from its
        recorded realtime events unless the cached one is for this version."""
        cached = self.realtime.get(head.id)
        if cached is not None and cached[0] == head.version:
            return cached[1]
        state = realtime_state(self.decoded(head.id, self.records(head.id, head.version)))
        self.realtime[head.id] = (head.version, state)
        return state

    def forget(self, session_id: str) -> None:
        with self._cache_lock:
            self.cache.pop(session_id, None)
            self.realtime.pop(session_id, None)
            self.chains.pop(session_id, None)
            self.tails.pop(session_id, None)
            self.summaries.pop(session_id, None)
            self.behind.discard(session_id)

    def head(self, session_id: str) -> Session:
        """The newest state, caught up with what other writers stored: the
        listing row says whether anything changed; new records must chain on
        from the cached head to the row's."""
        check_session_id(session_id)
        extending = self.caught_up(session_id)
        if extending is not None:
            return extending
        # Not cached, or the log no longer extends the cached head (an erasure
        # re-linked it, or it is damaged): a full load tells which.
        self.forget(session_id)
        return self.remember(self.load(session_id))

    def caught_up(self, session_id: str) -> Session | None:
        """The cached head with what other writers appended since, if the
        stored log still extends it; ``None`` if it is not cached or the log
        was rewritten under it (an erasure, a deletion and a new session
        under the same id, damage). Reads the listing row and the newer
        records only."""
        state = self.cache.get(session_id)
        known = self.chains.get(session_id)
        if state is None or known is None or known[0] != state.version:
            return None
        row = self.backend.session_row(session_id)
        if row is None or row.version < state.version:
            return None
        if row.version == state.version:
            if row.head != known[2]:
                return None
            self.behind.discard(session_id)
            return self.remember(state)
        newer = self.backend.read(session_id, after=state.version, upto=row.version)
        try:
            chain = extended(known[1], newer)
        except (TypeError, AttributeError):  # damaged types: a full load says so
            return None
        if len(newer) != row.version - state.version or chain.digest().hex() != row.head:
            return None
        caught_up = fold(session_id, self.decoded(session_id, newer), start=state)
        assert caught_up is not None
        self.chains[session_id] = (row.version, chain, row.head)
        self.behind.discard(session_id)
        return self.remember(caught_up)

    def relinked(self, session_id: str, decided_on: Session) -> Session | None:
        """The session as stored now, if its log is the one ``decided_on``
        came from, re-linked since by an erasure (same creation time and
        lineage, further on); ``None`` if the id names another session now
        (deleted and created again), or none. Loads the whole log: for a
        write that lost a race and whose head :meth:`caught_up` could not
        extend."""
        try:
            fresh = self.head(session_id)
        except SessionNotFound:
            return None
        if (
            fresh.created_at == decided_on.created_at
            and fresh.lineage == decided_on.lineage
            and fresh.version > decided_on.version
        ):
            return fresh
        return None

    def chain_after(self, state: Session) -> Chain:
        """The record chain after the last record of ``state`` (a cached head)."""
        known = self.chains.get(state.id)
        if known is not None and known[0] == state.version:
            return known[1]
        return extended(chain_of(state.id), self.records(state.id, state.version))

    def head_for_write(self, session_id: str, expected_revision: str | None = None) -> Session:
        """The state to decide on. Uses the cache without a round trip; a
        stale cache is caught by the version check when the write is stored,
        or, when the caller expects a revision the cache is not at, by
        catching up first (the decider then says whether it conflicts)."""
        check_session_id(session_id)
        if session_id in self.behind:
            self.behind.discard(session_id)
            return self.head(session_id)
        state = self.cache.get(session_id) or self.remember(self.load(session_id))
        if expected_revision is not None and expected_revision != state.revision:
            state = self.head(session_id)  # the cache may be behind another writer
        return state

    def _created_and_summary(self, state: Session) -> tuple[str, str | None]:
        """The listing row's creation time (ISO text) and summary for ``state``."""
        made = self.summaries.get(state.id)
        if (
            made is not None
            and made[0] is state.header
            and made[1] is state.metadata
            and made[2] == state.parent
            and made[3] is state.created_at
        ):
            return made[4], made[5]
        created, text = state.created_at.isoformat(), listing_summary(state)
        self.summaries[state.id] = (state.header, state.metadata, state.parent, state.created_at, created, text)
        return created, text

    def refuse_oversized(self, session_id: str, messages: Sequence[Message]) -> None:
        """Refuse, before any hashing or encoding, messages whose text alone
        is over ``max_event_bytes``: a lower bound of the event they would
        make (each character is at least a byte of its JSON)."""
        limit = self._max_event_bytes
        if limit is None:
            return
        size = 0
        for message in messages:
            for block in message.blocks:
                if type(block) is Text:  # the commonest block, without the lookups below
                    size += len(block.text)
                    continue
                size += len(getattr(block, "text", "")) + len(getattr(block, "arguments", ""))
                data = getattr(block, "data", None)
                size += len(data) if isinstance(data, bytes) else 0
                for part in getattr(block, "content", ()):
                    size += len(getattr(part, "text", ""))
            if size > limit:
                raise EventTooLarge(
                    f"session {shown(session_id)}: this write would store an event of over {size:,} bytes, over the "
                    f"store's max_event_bytes ({limit:,}); nothing was written. Split it into smaller calls, or "
                    "open the store with a larger max_event_bytes"
                )

    def too_large(self, session_id: str | None, event: Event, size: int) -> EventTooLarge:
        """The refusal of an event of ``size`` stored bytes, over
        ``max_event_bytes`` (``session_id`` ``None``: a new session's)."""
        what = f"session {shown(session_id)}: this write" if session_id is not None else "creating a session"
        fix = (
            "Split it into smaller calls"
            if isinstance(event, MessagesAppended)
            else "Store less in one value (a title, metadata, a note, a record)"
        )
        return EventTooLarge(
            f"{what} would store a {type(event).__name__} event of {size:,} bytes, over the store's "
            f"max_event_bytes ({self._max_event_bytes:,}); nothing was written. {fix}, or open the store with "
            "a larger max_event_bytes"
        )

    def first_too_large(self, before: Session, events: Sequence[Event]) -> tuple[int, str]:
        """The index of the first of ``events`` (which follow ``before``)
        whose stored form is over ``max_event_bytes`` (after :meth:`commit`
        refused them for it), and why, in a few words."""
        limit = self._max_event_bytes
        assert limit is not None
        for index, event in enumerate(events):
            size = len(encode_event(event, session_id=before.id, version=before.version + index + 1)[1])
            if size > limit:
                return index, f"its {type(event).__name__} event of {size:,} bytes is over max_event_bytes ({limit:,})"
        raise AssertionError("commit refused none of these events for its size")

    @property
    def max_event_bytes(self) -> int | None:
        return self._max_event_bytes

    def commit(self, before: Session | None, events: Sequence[Event], after: Session) -> Session:
        """Store ``events`` (which lead from ``before``, ``None`` for a new
        session, to ``after``) in one transaction, with the listing row, its
        chain head and a snapshot when one is due, and cache ``after``."""
        session_id = after.id
        version = before.version if before is not None else 0
        records = []
        limit = self._max_event_bytes
        for event in events:
            version += 1
            # An append's revision is the state's (a usage event after it
            # changes none): its bytes need no parsing from hex.
            held = after._revision_bytes if getattr(event, "revision", None) == after.revision else None
            topic, data = encode_event(event, held, session_id=session_id, version=version)
            if limit is not None and len(data) > limit:
                raise self.too_large(session_id if before is not None else None, event, len(data))
            records.append(_new_tuple(Record, (version, topic, data)))
        assert after.version == version
        created, summary = self._created_and_summary(after)
        updated = created if after.updated_at is after.created_at else after.updated_at.isoformat()
        chain = extended(chain_of(session_id) if before is None else self.chain_after(before), records)
        fields = (session_id, after.title, created, updated, len(after.messages), after.revision, after.version)
        row = _new_tuple(SessionRow, (*fields, chain.digest().hex(), "", summary))
        snapshot = None
        interval = self._snapshot_interval
        if interval is not None and after.version // interval > (before.version if before else 0) // interval:
            snapshot = StoredSnapshot(after.version, encode_snapshot(after, chain.checkpoint()))
        # The head of the listing row ``before`` was read with: the write
        # happens only if the row still holds it (a log that changed under a
        # cached head, say a session deleted and created again, is refused).
        # Never unchecked: without the head (only if the cache lost it), the
        # write is refused as a conflict, and the retry reads the log again.
        previous_head = None
        if before is not None:
            known = self.chains.get(session_id)
            if known is None or known[0] != before.version:
                self.forget(session_id)
                raise ConcurrentWriteError(session_id, before.version + 1)
            previous_head = known[2]
        # A fork is written only while its source's row holds the head it
        # was read at (a source deleted and created again is another log);
        # a fork of a past state was read at a later head.
        source, source_head = after.lineage.source, None
        if before is None and source is not None and after.lineage.depth > 0:
            made_from = self.chains.get(source)
            if made_from is None or made_from[0] < (after.lineage.source_version or 0):
                self.forget(source)
                raise ConcurrentWriteError(source, (after.lineage.source_version or 0) + 1)
            source_head = made_from[2]
        try:
            self.backend.append(
                session_id, records, row, snapshot, previous_head=previous_head, source_head=source_head
            )
        except ConcurrentWriteError:
            # Caught up on the next write (a fork's source too: the error may
            # be about it); a log that no longer extends the cached head (the
            # session deleted and created again) is then loaded whole.
            self.behind.add(session_id)
            if source_head is not None and source is not None:
                self.behind.add(source)
            raise
        except SessionNotFound:
            # Reload on the next call, which finds it deleted (or the fork's
            # source: the error may be about it).
            self.forget(session_id)
            if source_head is not None and source is not None:
                self.forget(source)
            raise
        self.chains[session_id] = (after.version, chain, row.head)
        return self.remember(after)

    def fork_unread(self, source_id: str, command: Fork, now: datetime) -> bool:
        """Write a fork of ``source_id``'s whole head from its listing row
        and first record, without reading its log: what a fork of a source
        this object has not cached costs (O(1), as a fork of a cached one).
        ``False`` (nothing written) if the row cannot say what the fork's
        listing row needs (no summary) or a snapshot is due at the fork's
        first version (it needs the state): fork from the state then.

        The row's seal is checked, the source's events are not: damage in
        them is found when the fork or the source is read, as for any
        session. The fork is written only while the source's row still holds
        the head read here."""
        check_session_id(source_id)
        row = self.backend.session_row(source_id)
        if row is None:
            raise SessionNotFound(source_id)
        if row.summary is None or self._snapshot_interval == 1:
            return False
        first = decode_events(source_id, self.backend.read(source_id, upto=1))
        if len(first) != 1:
            return False  # no first record: a full read says what is wrong
        origin = first[0][1]
        if isinstance(origin, SessionForked):
            root, depth = origin.root, origin.depth
        elif isinstance(origin, SessionCreated):
            root, depth = source_id, 0
        else:
            return False  # damage: a full read says so
        event = whole_fork(ForkSource(source_id, row.version, row.revision, root, depth), command, now)
        child_id = command.child_id
        topic, data = encode_event(event, session_id=child_id, version=1)
        limit = self._max_event_bytes
        if limit is not None and len(data) > limit:
            raise self.too_large(None, event, len(data))
        records = [Record(1, topic, data)]
        chain = extended(chain_of(child_id), records)
        created = event.at.isoformat()
        fields = (child_id, row.title, created, created, row.message_count, row.revision, 1)
        child_row = SessionRow(*fields, chain.digest().hex(), "", forked_summary(source_id, row.summary))
        try:
            self.backend.append(child_id, records, child_row, previous_head=None, source_head=row.head)
        except (ConcurrentWriteError, SessionNotFound):
            self.forget(source_id)  # changed or deleted since its row was read
            raise
        # What this object may hold of an earlier session under the child's
        # id (deleted since by another process) is not the fork: the next
        # call reads the fork.
        self.forget(child_id)
        return True

    def state_at(self, session_id: str, version: int, *, use_snapshot: bool = True) -> Session:
        return self.load(session_id, upto=version, use_snapshot=use_snapshot)

    def last_version_with_revision(self, session_id: str, revision: str, head_version: int) -> int:
        found = 0
        current = EMPTY_REVISION
        for version, event in self.decoded(session_id, self.records(session_id, head_version)):
            if isinstance(event, CONTENT_EVENTS):
                current = event.revision
            if current == revision:
                found = version
        if not found:
            raise RevisionNotFound(f"session {shown(session_id)} never reached revision {revision}")
        return found

    def last_version_at_time(self, session_id: str, at: datetime, head: Session) -> int:
        if at >= head.updated_at:
            return head.version
        found = 0
        for version, event in self.decoded(session_id, self.records(session_id, head.version)):
            if event.at > at:
                break
            found = version
        if not found:
            raise VersionNotFound(f"session {shown(session_id)} did not exist yet at {at.isoformat()}")
        return found


class _collection_paused:
    """Pause the cyclic garbage collector while a long log is decoded and
    folded. Those steps allocate tens of thousands of small containers and no
    cycles, and the collector's passes over them cost about a quarter of a
    cold load of 10,000 events. Short reads (``size`` under 1,000) are left
    alone; a whole load is always paused. The collector is switched back on
    only if it was on, so a caller who turned it off keeps it off (another
    thread's load finishing first may switch it back on early, which is
    harmless)."""

    __slots__ = ("paused",)

    def __init__(self, size: int | None = None) -> None:
        self.paused = (size is None or size >= 1000) and gc.isenabled()

    def __enter__(self) -> None:
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()


def _chain_problem(session_id: str, row: SessionRow, records: Sequence[Record]) -> tuple[str, Chain]:
    """What is wrong with a session's records (read up to its listing row's
    version) against the chain head sealed in the row (empty if nothing),
    and the chain over them."""
    try:
        chain = extended(chain_of(session_id), records)
    except (TypeError, AttributeError):  # SQLite keeps any value in any column
        return f"session {shown(session_id)}: a stored event has a damaged type name or body", chain_of(session_id)
    if not records:
        return f"session {shown(session_id)} is listed at version {row.version}, but has no events", chain
    if records[-1].version < row.version:
        return (
            f"session {shown(session_id)}: the log ends at version {records[-1].version}, but its listing row "
            f"says {row.version}: events were removed from the end"
        ), chain
    if len(records) != row.version or (
        chain.digest().hex() != row.head and legacy_head_of(session_id, records).hex() != row.head
    ):
        return (
            f"session {shown(session_id)}: its events do not match the chain head of its listing row: "
            "an event was altered, removed, inserted or reordered"
        ), chain
    return "", chain
