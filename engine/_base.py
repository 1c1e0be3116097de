"""The engine's internals shared by every part of the facade: loading a
session from its log (snapshots, forks), the head cache, committing events,
and the argument checks. ``Transcripts`` (``engine.app``) is built on it."""

from __future__ import annotations

import gc
import math
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from engine.content import Message, shown, unicode_error
from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EventTooLarge,
    InvalidArgument,
    InvalidMessage,
    InvalidRewriteRange,
    NoOpRewrite,
    RevisionConflict,
    RevisionNotFound,
    SessionNotFound,
    VersionNotFound,
)
from engine.events import (
    CONTENT_EVENTS,
    Event,
    MessagesRewritten,
    SessionForked,
)
from engine.realtime.reducer import (
    RealtimeState,
)
from engine.revisions import (
    EMPTY_REVISION,
    Reason,
    chain_each,
    format_revision,
    parse_revision,
    span_digest,
)
from engine.store import (
    Backend,
    Chain,
    Record,
    SessionRow,
    Snapshot,
    StoredSnapshot,
    chain_of,
    decode_events,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    extended,
)
from engine.transcript import Session, check_shape, evolve, fold, forked

_MAX_ID = 200
#: The largest stored event a store accepts unless opened with another ``max_event_bytes``.
DEFAULT_MAX_EVENT_BYTES = 16 << 20
_MAX_FORK_DEPTH = 10_000


class _Base:
    """State and internals of a store; the public methods live in the mixins
    (``engine._branching``, ``engine._ingesting``) and in ``engine.app``."""

    def __init__(
        self,
        backend: Backend,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
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
        self._max_event_bytes = max_event_bytes
        self._backend = backend
        self._snapshot_interval = snapshot_interval
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._realtime: dict[str, tuple[int, RealtimeState]] = {}
        # The record chain after each cached head's last record: (version, chain).
        self._chains: dict[str, tuple[int, Chain]] = {}
        self._lock = threading.RLock()

    def get(self, session_id: str, at: int | str | datetime | None = None) -> Session:
        """The session now, or as of an event version, a revision or a time.

        ``at`` may be an ``int`` (event version, 1 = creation), a revision id
        (``"sha256:..."``: the last state that had that revision), or an aware
        ``datetime`` (the state after the last event recorded at or before it).
        """
        with self._lock:
            head = self._head(session_id)
        if at is None:
            return head
        if isinstance(at, bool) or not isinstance(at, (int, str, datetime)):
            raise InvalidArgument(
                f"at= takes an event version (int), a revision id (str) or a datetime, got {shown(at)}"
            )
        if isinstance(at, int):
            if not 1 <= at <= head.version:
                raise VersionNotFound(
                    f"session {shown(session_id)} has versions 1 to {head.version}; there is no version {at}"
                )
            return head if at == head.version else self._state_at(session_id, at)
        if isinstance(at, str):
            parse_revision(at)
            if at == head.revision:
                return head
            version = self._last_version_with_revision(session_id, at, head.version)
            return self._state_at(session_id, version)
        if at.tzinfo is None:
            raise InvalidArgument("at= datetime must be timezone-aware (for example datetime.now(UTC))")
        version = self._last_version_at_time(session_id, at, head)
        return head if version == head.version else self._state_at(session_id, version)

    def _decoded(self, session_id: str, records: Sequence[Record]) -> Iterator[tuple[int, Event]]:
        return iter(decode_events(session_id, records))

    def _log(self, session_id: str) -> tuple[SessionRow, list[Record], Chain]:
        """Every record of the session up to its listing row's version, checked
        against the chain head sealed in that row: what every read starts from.

        The row is read first: written in the same transaction as the events,
        it is never ahead of events read after it. A mismatch is damage unless
        the row changed meanwhile (an erasure re-links the log): then read again."""
        check_session_id(session_id)
        problem = ""
        for _ in range(3):
            row = self._backend.session_row(session_id)
            if row is None:
                if self._backend.read(session_id, upto=1):
                    raise CorruptStore(f"session {shown(session_id)} has events but no listing row")
                raise SessionNotFound(session_id)
            with _collection_paused(row.version):
                records = self._backend.read(session_id)
            if records and records[-1].version > row.version:
                # A writer committed after the row was read (then the row now
                # covers it), or an event was added behind the row's back.
                again = self._backend.session_row(session_id)
                if again is None or again.version < records[-1].version:
                    raise CorruptStore(
                        f"session {shown(session_id)} has events after version {row.version}, where its listing row "
                        "ends: they were added outside the engine"
                    )
                records = records[: row.version]
            problem, chain = _chain_problem(session_id, row, records)
            if not problem:
                return row, records, chain
            if self._backend.session_row(session_id) == row:
                break
        raise CorruptStore(problem)

    def _records(self, session_id: str, upto: int | None = None) -> list[Record]:
        records = self._log(session_id)[1]
        return records if upto is None else records[:upto]

    def _load(self, session_id: str, upto: int | None = None, *, use_snapshot: bool = True, depth: int = 0) -> Session:
        """Rebuild a state from the log (checked against its chain head). A
        snapshot at or before ``upto`` lets the events it covers be folded
        without re-hashing their messages; the result is cross-checked against
        the snapshot, then the rest is verified. A fork starts from its
        source's state at the fork point (loaded the same way)."""
        row, records, chain = self._log(session_id)
        if upto is None:
            self._chains[session_id] = (row.version, chain)
        else:
            records = records[:upto]
        with _collection_paused(len(records)):
            events = decode_events(session_id, records)
        initial: Session | None = None
        first = events[0][1]
        if isinstance(first, SessionForked):
            initial = forked(session_id, first, self._source_state(session_id, first, depth))
            events = events[1:]
        use_snapshot = use_snapshot and self._snapshot_interval is not None
        # Bounded by what was just read: a snapshot another writer adds
        # meanwhile is newer than these events, and would not match them.
        stored = self._backend.snapshot(session_id, upto=records[-1].version) if use_snapshot else None
        with _collection_paused(len(records)):
            if stored is None:
                state = fold(session_id, events, start=initial)
            else:
                snapshot = decode_snapshot(session_id, stored.state)
                covered = snapshot.version - (1 if initial is not None else 0)
                prefix = fold(session_id, events[:covered], start=initial, verify=False)
                if prefix is None or Snapshot.of(prefix) != snapshot:
                    raise CorruptStore(
                        f"session {shown(session_id)}: the snapshot at version {snapshot.version} "
                        "does not match the log"
                    )
                state = fold(session_id, events[covered:], start=prefix)
        assert state is not None
        return state

    def _source_state(self, session_id: str, event: SessionForked, depth: int) -> Session:
        """The source of a fork as of the fork point: the cached head if it is
        that version, else rebuilt from the source's log."""
        if depth > _MAX_FORK_DEPTH:
            raise CorruptStore(f"session {shown(session_id)}: fork chain deeper than {_MAX_FORK_DEPTH}; is it a cycle?")
        try:
            cached = self._cache.get(event.source)
            if cached is not None and cached.version == event.source_version:
                # Checked against the listing row first: another process may
                # have rewritten the source's log (an erasure) since it was cached.
                current = self._head(event.source)
                if current.version == event.source_version:
                    return current
            source = self._load(event.source, upto=event.source_version, depth=depth + 1)
        except SessionNotFound:
            raise CorruptStore(f"session {shown(session_id)} is a fork of {event.source!r}, which is missing") from None
        if source.version != event.source_version:
            raise CorruptStore(
                f"session {shown(session_id)} forks {event.source!r} at version {event.source_version}, "
                f"which has only {source.version} versions"
            )
        return source

    def _remember(self, state: Session) -> Session:
        cache = self._cache
        cache[state.id] = state
        cache.move_to_end(state.id)
        if len(cache) > self._cache_size:
            evicted, _ = cache.popitem(last=False)
            self._realtime.pop(evicted, None)  # its ingestion state is rebuilt from the log when needed
            self._chains.pop(evicted, None)
        return state

    def _forget(self, session_id: str) -> None:
        self._cache.pop(session_id, None)
        self._realtime.pop(session_id, None)
        self._chains.pop(session_id, None)

    def _head(self, session_id: str) -> Session:
        """The newest state, caught up with what other writers stored: the
        listing row says whether anything changed; new records must chain on
        from the cached head to the row's."""
        check_session_id(session_id)
        state = self._cache.get(session_id)
        known = self._chains.get(session_id)
        if state is not None and known is not None and known[0] == state.version:
            row = self._backend.session_row(session_id)
            if row is not None and row.version >= state.version:
                if row.version == state.version:
                    if row.head == known[1].digest().hex():
                        return self._remember(state)
                else:
                    newer = self._backend.read(session_id, after=state.version, upto=row.version)
                    try:
                        chain = extended(known[1], newer)
                    except (TypeError, AttributeError):  # damaged types: the full load below says so
                        chain = chain_of(session_id)
                    if len(newer) == row.version - state.version and chain.digest().hex() == row.head:
                        caught_up = fold(session_id, self._decoded(session_id, newer), start=state)
                        assert caught_up is not None
                        self._chains[session_id] = (row.version, chain)
                        return self._remember(caught_up)
        # Not cached, or the log no longer extends the cached head (an erasure
        # re-linked it, or it is damaged): a full load tells which.
        self._forget(session_id)
        return self._remember(self._load(session_id))

    def _chain_of(self, state: Session) -> Chain:
        """The record chain after the last record of ``state`` (a cached head)."""
        known = self._chains.get(state.id)
        if known is not None and known[0] == state.version:
            return known[1]
        return extended(chain_of(state.id), self._records(state.id, state.version))

    def _head_for_write(self, session_id: str, expected: tuple[bytes, str] | None) -> Session:
        """The state to write on. Uses the cache without a round trip; a stale
        cache is caught by the version check when the write is stored."""
        check_session_id(session_id)
        state = self._cache.get(session_id) or self._remember(self._load(session_id))
        if expected is not None and expected[0] != state._revision_bytes:
            state = self._head(session_id)  # the cache may be behind another writer
            if expected[0] != state._revision_bytes:
                raise RevisionConflict(session_id, expected[1], state.revision)
        return state

    def _commit(
        self,
        session_id: str,
        state: Session | None,
        events: list[Event],
        *,
        result: Session | None = None,
        known: Mapping[int, Sequence[bytes]] | None = None,
    ) -> Session:
        """Store ``events`` after ``state`` in one transaction and cache the
        state they lead to: ``result`` when the caller has already built it
        (a fork's first state comes from its source; ingestion stages its
        events one by one), else the fold of the events."""
        version = state.version if state is not None else 0
        records, numbered = [], []
        limit = self._max_event_bytes
        for event in events:
            version += 1
            topic, data = encode_event(event)
            if limit is not None and len(data) > limit:
                raise EventTooLarge(
                    f"session {shown(session_id)}: this write would store a {type(event).__name__} event of "
                    f"{len(data):,} bytes, over the store's max_event_bytes ({limit:,}); nothing was written. "
                    "Split it into smaller calls, or open the store with a larger max_event_bytes"
                )
            records.append(Record(version, topic, data))
            numbered.append((version, event))
        new_state = result or fold(session_id, numbered, start=state, verify=False, known=known)
        assert new_state is not None and new_state.version == version
        updated = new_state.updated_at.isoformat()
        created = updated if new_state.created_at == new_state.updated_at else new_state.created_at.isoformat()
        chain = extended(chain_of(session_id) if state is None else self._chain_of(state), records)
        row = SessionRow(
            session_id,
            new_state.title,
            created,
            updated,
            len(new_state.messages),
            new_state.revision,
            new_state.version,
            chain.digest().hex(),
        )
        snapshot = None
        interval = self._snapshot_interval
        if interval is not None and new_state.version // interval > (state.version if state else 0) // interval:
            snapshot = StoredSnapshot(new_state.version, encode_snapshot(new_state))
        try:
            self._backend.append(session_id, records, row, snapshot)
        except ConcurrentWriteError:
            self._forget(session_id)  # reload on the next call, so a retry succeeds
            raise
        self._chains[session_id] = (new_state.version, chain)
        return self._remember(new_state)

    def _state_at(self, session_id: str, version: int, *, use_snapshot: bool = True) -> Session:
        return self._load(session_id, upto=version, use_snapshot=use_snapshot)

    def _last_version_with_revision(self, session_id: str, revision: str, head_version: int) -> int:
        found = 0
        current = EMPTY_REVISION
        for version, event in self._decoded(session_id, self._records(session_id, head_version)):
            if isinstance(event, CONTENT_EVENTS):
                current = event.revision
            if current == revision:
                found = version
        if not found:
            raise RevisionNotFound(f"session {shown(session_id)} never reached revision {revision}")
        return found

    def _last_version_at_time(self, session_id: str, at: datetime, head: Session) -> int:
        if at >= head.updated_at:
            return head.version
        found = 0
        for version, event in self._decoded(session_id, self._records(session_id, head.version)):
            if event.at > at:
                break
            found = version
        if not found:
            raise VersionNotFound(f"session {shown(session_id)} did not exist yet at {at.isoformat()}")
        return found

    def _rewrite_event(
        self,
        state: Session,
        start: object,
        end: object,
        stamped: list[Message],
        why: Reason,
        actor: str | None,
        *,
        check: bool = True,
    ) -> MessagesRewritten:
        count = len(state.messages)
        if (
            not isinstance(start, int)
            or not isinstance(end, int)
            or isinstance(start, bool)
            or isinstance(end, bool)
            or not 0 <= start <= end <= count
        ):
            raise InvalidRewriteRange(start, end, count)
        result = state.messages.replaced(start, end, stamped)
        if check:  # realtime changes mirror the provider's conversation as it is
            check_shape(result, start, start + len(stamped))
        base = state.messages.revision_at(start)
        tail_revisions = chain_each(base, result[start:])
        revision = format_revision(tail_revisions[-1] if tail_revisions else base)
        if revision == state.revision:
            raise NoOpRewrite(revision)
        return MessagesRewritten(
            at=_now(state),
            actor=actor,
            start=start,
            end=end,
            messages=tuple(stamped),
            parent_revision=state.revision,
            revision=revision,
            reason=why.kind,
            note=why.note,
            removed_digest=span_digest(state.messages[start:end]),
            replacement_digest=span_digest(stamped),
            count_before=count,
            generation=state.generation + 1,
        )

    def _stage(self, session_id: str, state: Session, event: Event, to_store: list[Event]) -> Session:
        to_store.append(event)
        return evolve(state, session_id, state.version + 1, event, verify=False)


class _collection_paused:
    """Pause the cyclic garbage collector while a long log is decoded and
    folded. Those steps allocate tens of thousands of small containers and no
    cycles, and the collector's passes over them cost about a quarter of a
    cold load of 10,000 events. Short logs are left alone; the collector is
    switched back on only if it was on, so a caller who turned it off keeps
    it off (another thread's load finishing first may switch it back on
    early, which is harmless)."""

    __slots__ = ("paused",)

    def __init__(self, size: int) -> None:
        self.paused = size >= 1000 and gc.isenabled()

    def __enter__(self) -> None:
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()


def check_session_id(session_id: object) -> None:
    """A session id a store could hold (looked up, never created, here)."""
    if not isinstance(session_id, str):
        raise InvalidArgument(f"session id must be a str, got {type(session_id).__name__}")
    if not session_id.isascii():
        unicode_error(session_id, "session id", InvalidArgument)


def _new_session_id(session_id: object) -> str:
    if session_id is None:
        return str(uuid.uuid4())
    if not (isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID and session_id.isprintable()):
        raise InvalidArgument(f"a session id must be 1-{_MAX_ID} printable characters, got {shown(session_id)}")
    return session_id


def _observable(state: Session) -> tuple[Any, ...]:
    return (
        state.id,
        state.version,
        state.revision,
        list(state.messages),
        state.usage,
        dict(state.metadata),
        state.title,
        state.created_at,
        state.updated_at,
    )


def _now(state: Session | None = None) -> datetime:
    """Now, but never before the session's last event: times stay monotonic
    per session, which time travel by datetime relies on."""
    now = datetime.now(UTC)
    return now if state is None or now >= state.updated_at else state.updated_at


_replace = msgspec.structs.replace


def _stamped(messages: Iterable[object], where: str) -> list[Message]:
    """The messages, each with an id (a fresh one where it had none)."""
    if type(messages) not in (tuple, list) and (
        isinstance(messages, (str, bytes, Message)) or not isinstance(messages, Iterable)
    ):
        raise InvalidMessage(f"{where} takes a list of messages, got {type(messages).__name__}")
    stamped = []
    for index, message in enumerate(messages):
        if not isinstance(message, Message):
            raise InvalidMessage(
                f"{where} message {index + 1} is a {type(message).__name__}, not a Message; "
                "build one with Message.user(...), Message.assistant(...), ..."
            )
        stamped.append(message if message.id is not None else _replace(message, id=_message_id()))
    return stamped


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
    if len(records) != row.version or chain.digest().hex() != row.head:
        return (
            f"session {shown(session_id)}: its events do not match the chain head of its listing row: "
            "an event was altered, removed, inserted or reordered"
        ), chain
    return "", chain


def _message_id() -> str:
    return "msg_" + os.urandom(10).hex()


def _check_actor(actor: object) -> None:
    _check_optional_str(actor, "actor")


def _check_title(title: object) -> None:
    _check_optional_str(title, "title")
    if isinstance(title, str) and "\x00" in title:
        # The listing table keeps titles as text, which PostgreSQL cannot hold
        # with NUL characters; refuse them on every backend alike.
        raise InvalidArgument("title must not contain NUL characters (\\x00)")


def _check_optional_str(value: object, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str or None, got {type(value).__name__}")
    if not value.isascii():
        unicode_error(value, name, InvalidArgument)


#: How deep metadata may nest: deeper values are refused, not met by a RecursionError later.
MAX_METADATA_DEPTH = 64
_HINTS = {
    "bytes": "encode it as text yourself (for example base64)",
    "bytearray": "encode it as text yourself (for example base64)",
    "tuple": "pass a list",
    "set": "pass a sorted list",
    "frozenset": "pass a sorted list",
    "datetime": "pass an ISO 8601 string",
    "date": "pass an ISO 8601 string",
}


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata exactly as a reload gives it back, or ``InvalidArgument`` naming
    the value that would come back different (never converted silently)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, got {type(metadata).__name__}")
    checked = dict(metadata)
    _check_json_value(checked, "metadata", 0)
    # A copy the caller cannot change afterwards, equal to what a reload gives.
    result: dict[str, Any] = msgspec.json.decode(_JSON.encode(checked))
    return result


_JSON = msgspec.json.Encoder()


def _check_json_value(value: object, where: str, depth: int) -> None:
    kind = type(value)
    if kind not in _JSON_TYPES:  # exact types: a subclass (an enum, an OrderedDict) comes back as its base
        hint = _HINTS.get(kind.__name__, "use str, int, float, bool, None, list or dict")
        raise InvalidArgument(
            f"{where} is a {kind.__name__}, which would not come back as itself from the store; {hint}"
        )
    if isinstance(value, str):
        if not value.isascii():
            unicode_error(value, where, InvalidArgument)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{where} is {value!r}: JSON has no NaN or infinity, so it would come back as null")
    elif isinstance(value, (list, dict)):
        if depth >= MAX_METADATA_DEPTH:
            raise InvalidArgument(f"{where} nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check_json_value(item, f"{where}[{index}]", depth + 1)
            return
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidArgument(f"{where} keys must be str, got {key!r}")
            _check_json_value(key, f"{where} key {key!r}", depth + 1)
            _check_json_value(item, f"{where}[{key!r}]", depth + 1)


_JSON_TYPES = frozenset((type(None), bool, int, float, str, list, dict))
