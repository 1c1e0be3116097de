"""``Transcripts``: the public facade over the event log (commands and queries)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import msgspec

from engine.content import Message, ToolResult, Usage
from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    InvalidArgument,
    InvalidMessage,
    RevisionConflict,
    RevisionNotFound,
    SessionNotFound,
    VersionNotFound,
)
from engine.events import (
    Event,
    MessagesAppended,
    MetadataChanged,
    SessionCreated,
    TitleChanged,
    UsageRecorded,
    kind_of,
)
from engine.revisions import EMPTY_REVISION, chain, format_revision, parse_revision
from engine.store import (
    Backend,
    Record,
    SessionRow,
    Snapshot,
    StoredSnapshot,
    decode_events,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    open_backend,
)
from engine.transcript import Session, evolve, fold

__all__ = ["HistoryEntry", "SessionInfo", "Transcripts"]

_log = logging.getLogger("engine")
_MAX_ID = 200


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of :meth:`Transcripts.sessions`."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    revision: str
    version: int


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event of a session, as :meth:`Transcripts.history` lists it."""

    version: int
    at: datetime
    actor: str | None
    kind: str
    summary: str
    revision: str
    event: Any  # the typed event itself (an ``engine.events`` Struct)


class Transcripts:
    """A store of sessions, each an append-only log of typed events.

    Open one with :meth:`open`. Every method is safe to call from several
    threads; several processes may share a SQLite file or a PostgreSQL
    database (writers of one session are serialised by optimistic concurrency).
    """

    def __init__(self, backend: Backend, *, snapshot_interval: int | None = 100, cache_size: int = 1024) -> None:
        if snapshot_interval is not None and (
            not isinstance(snapshot_interval, int) or isinstance(snapshot_interval, bool) or snapshot_interval < 1
        ):
            raise InvalidArgument(f"snapshot_interval must be a positive int or None, got {snapshot_interval!r}")
        if not isinstance(cache_size, int) or cache_size < 1:
            raise InvalidArgument(f"cache_size must be a positive int, got {cache_size!r}")
        self._backend = backend
        self._snapshot_interval = snapshot_interval
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str] | None = None,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        table_prefix: str = "transcripts",
        synchronous: str = "full",
        lock_timeout: int = 10,
    ) -> Transcripts:
        """Open a store: in memory (no argument), a SQLite file, or PostgreSQL.

        ``snapshot_interval``: write a snapshot every that many events of a
        session (``None``: never); snapshots only speed up loading.
        ``synchronous`` (SQLite): ``"full"`` (default, durable on power loss) or
        ``"normal"``. ``table_prefix`` names the tables, so several stores can
        share one database.
        """
        backend = open_backend(target, table_prefix=table_prefix, synchronous=synchronous, lock_timeout=lock_timeout)
        try:
            return cls(backend, snapshot_interval=snapshot_interval, cache_size=cache_size)
        except BaseException:
            backend.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._backend.close()
            self._cache.clear()

    def __enter__(self) -> Transcripts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transcripts({self._backend.describe()!r})"

    # -- commands ---------------------------------------------------------

    def create(
        self,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Start a session and return its id (a fresh UUID unless ``session_id``)."""
        _check_title(title)
        _check_actor(actor)
        if session_id is None:
            session_id = str(uuid.uuid4())
        elif not (isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID and session_id.isprintable()):
            raise InvalidArgument(f"session_id must be 1-{_MAX_ID} printable characters, got {session_id!r}")
        event = SessionCreated(at=_now(), actor=actor, title=title, metadata=_check_metadata(metadata))
        with self._lock:
            self._commit(session_id, None, [event])
        return session_id

    def append(
        self,
        session_id: str,
        *messages: Message,
        expected_revision: str | None = None,
        usage: Usage | None = None,
        actor: str | None = None,
    ) -> str:
        """Append messages (and optionally their usage) in one transaction.

        Messages without an ``id`` get one. Returns the new head revision.
        With ``expected_revision``, raises :class:`RevisionConflict` (and
        writes nothing) unless the session is at exactly that revision.
        """
        if not messages:
            raise InvalidArgument("append() needs at least one message")
        stamped = []
        for index, message in enumerate(messages):
            if not isinstance(message, Message):
                raise InvalidMessage(
                    f"append() argument {index + 1} is a {type(message).__name__}, not a Message; "
                    "build one with Message.user(...), Message.assistant(...), ..."
                )
            stamped.append(message if message.id is not None else _replace(message, id=_message_id()))
        if usage is not None and not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        _check_actor(actor)
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            at = _now(state)
            revision = format_revision(chain(state._revision_bytes, stamped))
            events: list[Event] = [MessagesAppended(at=at, actor=actor, messages=tuple(stamped), revision=revision)]
            if usage is not None:
                events.append(UsageRecorded(at=at, actor=actor, usage=usage))
            self._commit(session_id, state, events)
            return revision

    def set_title(self, session_id: str, title: str | None, *, actor: str | None = None) -> None:
        """Set (or, with ``None``, clear) the session's title."""
        _check_title(title)
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            self._commit(session_id, state, [TitleChanged(at=_now(state), actor=actor, title=title)])

    def update_metadata(
        self,
        session_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        remove: Iterable[str] = (),
        actor: str | None = None,
    ) -> None:
        """Set the keys in ``values`` and remove the keys in ``remove``."""
        checked = _check_metadata(values)
        removed = tuple(remove)
        if not all(isinstance(key, str) for key in removed):
            raise InvalidArgument("remove= must hold metadata keys (str)")
        if not checked and not removed:
            raise InvalidArgument("update_metadata() needs values to set or keys to remove")
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            event = MetadataChanged(at=_now(state), actor=actor, set=checked, unset=removed)
            self._commit(session_id, state, [event])

    def record_usage(
        self, session_id: str, usage: Usage, *, response_id: str | None = None, actor: str | None = None
    ) -> None:
        """Add the token usage of one model response to the session's total."""
        if not isinstance(usage, Usage):
            raise InvalidArgument(f"usage must be a Usage, got {type(usage).__name__}")
        _check_optional_str(response_id, "response_id")
        _check_actor(actor)
        with self._lock:
            state = self._head_for_write(session_id, None)
            event = UsageRecorded(at=_now(state), actor=actor, usage=usage, response_id=response_id)
            self._commit(session_id, state, [event])

    # -- queries ----------------------------------------------------------

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
                f"at= takes an event version (int), a revision id (str) or a datetime, got {at!r}"
            )
        if isinstance(at, int):
            if not 1 <= at <= head.version:
                raise VersionNotFound(
                    f"session {session_id!r} has versions 1 to {head.version}; there is no version {at}"
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

    def history(self, session_id: str) -> list[HistoryEntry]:
        """Every recorded event of the session, oldest first."""
        records = self._backend.read(session_id)
        if not records:
            raise SessionNotFound(session_id)
        entries = []
        revision = EMPTY_REVISION
        for version, event in self._decoded(session_id, records):
            if isinstance(event, MessagesAppended):
                revision = event.revision
            entries.append(
                HistoryEntry(
                    version=version, at=event.at, actor=event.actor, kind=kind_of(event),
                    summary=_summary(event), revision=revision, event=event,
                )
            )
        return entries

    def sessions(self) -> list[SessionInfo]:
        """Every session in the store, oldest first (read from a listing table
        kept in the same transaction as each write, so it is never stale)."""
        parse = datetime.fromisoformat
        return [
            SessionInfo(
                id=row.session_id, title=row.title, created_at=parse(row.created_at),
                updated_at=parse(row.updated_at), message_count=row.message_count,
                revision=row.revision, version=row.version,
            )
            for row in self._backend.session_rows()
        ]

    def verify(self, session_id: str) -> Session:
        """Audit one session: replay its whole history from scratch, re-hashing
        every revision, and check every snapshot and the cached head against
        that replay. Returns the verified head; raises :class:`CorruptStore`
        on any disagreement."""
        records = self._backend.read(session_id)
        if not records:
            raise SessionNotFound(session_id)
        states: list[Session] = []
        state: Session | None = None
        for version, event in self._decoded(session_id, records):
            state = evolve(state, session_id, version, event)
            states.append(state)
        assert state is not None
        for stored in self._backend.snapshots(session_id):
            if not 1 <= stored.version <= len(states) or (
                decode_snapshot(session_id, stored.state) != Snapshot.of(states[stored.version - 1])
            ):
                raise CorruptStore(
                    f"session {session_id!r}: the snapshot at version {stored.version} differs from replay"
                )
        with self._lock:
            head = self._head(session_id)
        if _observable(head) != _observable(state):
            raise CorruptStore(f"session {session_id!r}: the loaded head differs from a full replay")
        return state

    # -- internals --------------------------------------------------------

    def _decoded(self, session_id: str, records: Sequence[Record]) -> Iterator[tuple[int, Event]]:
        return iter(decode_events(session_id, records))

    def _load(self, session_id: str, upto: int | None = None, *, use_snapshot: bool = True) -> Session:
        """Rebuild a state from the log. A snapshot at or before ``upto`` lets
        the events it covers be folded without re-hashing; the result is
        cross-checked against the snapshot, then the rest is verified."""
        records = self._backend.read(session_id, upto=upto)
        if not records:
            raise SessionNotFound(session_id)
        events = self._decoded(session_id, records)
        stored = self._backend.snapshot(session_id, upto=upto) if use_snapshot else None
        if stored is None:
            state = fold(session_id, events)
        else:
            snapshot = decode_snapshot(session_id, stored.state)
            prefix = fold(session_id, islice(events, snapshot.version), verify=False)
            if prefix is None or Snapshot.of(prefix) != snapshot:
                raise CorruptStore(
                    f"session {session_id!r}: the snapshot at version {snapshot.version} does not match the log"
                )
            state = fold(session_id, events, start=prefix)
        assert state is not None
        return state

    def _remember(self, state: Session) -> Session:
        cache = self._cache
        cache[state.id] = state
        cache.move_to_end(state.id)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return state

    def _head(self, session_id: str) -> Session:
        """The newest state, caught up with what other writers stored."""
        if not isinstance(session_id, str):
            raise InvalidArgument(f"session id must be a str, got {type(session_id).__name__}")
        state = self._cache.get(session_id)
        if state is None:
            return self._remember(self._load(session_id))
        newer = self._backend.read(session_id, after=state.version)
        if newer:
            caught_up = fold(session_id, self._decoded(session_id, newer), start=state)
            assert caught_up is not None
            state = caught_up
        return self._remember(state)

    def _head_for_write(self, session_id: str, expected: tuple[bytes, str] | None) -> Session:
        """The state to write on. Uses the cache without a round trip; a stale
        cache is caught by the version check when the write is stored."""
        if not isinstance(session_id, str):
            raise InvalidArgument(f"session id must be a str, got {type(session_id).__name__}")
        state = self._cache.get(session_id) or self._remember(self._load(session_id))
        if expected is not None and expected[0] != state._revision_bytes:
            state = self._head(session_id)  # the cache may be behind another writer
            if expected[0] != state._revision_bytes:
                raise RevisionConflict(session_id, expected[1], state.revision)
        return state

    def _commit(self, session_id: str, state: Session | None, events: list[Event]) -> Session:
        version = state.version if state is not None else 0
        records, numbered = [], []
        for event in events:
            version += 1
            records.append(Record(version, *encode_event(event)))
            numbered.append((version, event))
        new_state = fold(session_id, numbered, start=state, verify=False)
        assert new_state is not None
        row = SessionRow(
            session_id, new_state.title, new_state.created_at.isoformat(), new_state.updated_at.isoformat(),
            len(new_state.messages), new_state.revision, new_state.version,
        )
        snapshot = None
        interval = self._snapshot_interval
        if interval is not None and new_state.version // interval > (state.version if state else 0) // interval:
            snapshot = StoredSnapshot(new_state.version, encode_snapshot(new_state))
        try:
            self._backend.append(session_id, records, row, snapshot)
        except ConcurrentWriteError:
            self._cache.pop(session_id, None)  # reload on the next call, so a retry succeeds
            raise
        return self._remember(new_state)

    def _state_at(self, session_id: str, version: int, *, use_snapshot: bool = True) -> Session:
        return self._load(session_id, upto=version, use_snapshot=use_snapshot)

    def _last_version_with_revision(self, session_id: str, revision: str, head_version: int) -> int:
        found = 0
        current = EMPTY_REVISION
        for version, event in self._decoded(session_id, self._backend.read(session_id, upto=head_version)):
            if isinstance(event, MessagesAppended):
                current = event.revision
            if current == revision:
                found = version
        if not found:
            raise RevisionNotFound(f"session {session_id!r} never reached revision {revision}")
        return found

    def _last_version_at_time(self, session_id: str, at: datetime, head: Session) -> int:
        if at >= head.updated_at:
            return head.version
        found = 0
        for version, event in self._decoded(session_id, self._backend.read(session_id, upto=head.version)):
            if event.at > at:
                break
            found = version
        if not found:
            raise VersionNotFound(f"session {session_id!r} did not exist yet at {at.isoformat()}")
        return found


def _observable(state: Session) -> tuple[Any, ...]:
    return (
        state.id, state.version, state.revision, list(state.messages), state.usage,
        dict(state.metadata), state.title, state.created_at, state.updated_at,
    )


def _now(state: Session | None = None) -> datetime:
    """Now, but never before the session's last event: times stay monotonic
    per session, which time travel by datetime relies on."""
    now = datetime.now(UTC)
    return now if state is None or now >= state.updated_at else state.updated_at


_replace = msgspec.structs.replace


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
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str or None, got {type(value).__name__}")


_JSON = msgspec.json.Encoder()


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, got {type(metadata).__name__}")
    checked = dict(metadata)
    for key in checked:
        if not isinstance(key, str):
            raise InvalidArgument(f"metadata keys must be str, got {key!r}")
    try:
        # Round-trip so that what is kept is exactly what a reload gives back.
        result: dict[str, Any] = msgspec.json.decode(_JSON.encode(checked))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidArgument(f"metadata must be JSON (str, int, float, bool, None, list, dict): {exc}") from None
    return result


def _clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _gist(message: Message) -> str:
    """A few words about a message for a timeline line."""
    if message.text:
        return repr(_clip(message.text, 30))
    parts = [f"calls {use.name}" for use in message.tool_uses]
    parts += [f"result for {block.tool_use_id}" for block in message.blocks if isinstance(block, ToolResult)]
    return ", ".join(parts) or "(no text)"


def _summary(event: Event) -> str:
    if isinstance(event, SessionCreated):
        return "created" + (f" {event.title!r}" if event.title else "")
    if isinstance(event, MessagesAppended):
        count = len(event.messages)
        shown = ", ".join(f"{m.role} {_gist(m)}" for m in event.messages[:3])
        more = f", +{count - 3} more" if count > 3 else ""
        return f"appended {count} message{'s' if count != 1 else ''}: {shown}{more}"
    if isinstance(event, UsageRecorded):
        return f"usage +{event.usage.input} in, +{event.usage.output} out"
    if isinstance(event, MetadataChanged):
        parts = []
        if event.set:
            parts.append("set " + ", ".join(sorted(event.set)))
        if event.unset:
            parts.append("removed " + ", ".join(event.unset))
        return "metadata " + "; ".join(parts)
    if isinstance(event, TitleChanged):
        return f"title set to {event.title!r}" if event.title is not None else "title cleared"
    return kind_of(event)  # pragma: no cover
