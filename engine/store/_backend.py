"""The storage contract, and its one implementation over eventsourcing recorders.

A backend stores, per session, an append-only sequence of encoded events keyed
by (session id, version), a one-row summary per session (for listing), and
small snapshots keyed by (session id, version). The summary row and any
snapshot are written in the same transaction as the events, so neither is ever
out of date or orphaned.

Driver and eventsourcing exceptions are translated into ``engine.errors`` here
and nowhere else.
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeAlias

from eventsourcing import persistence as es

from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    InvalidArgument,
    SessionExists,
    StorageError,
    StorageUnavailable,
)
from engine.state.content import shown
from engine.store._chain import check_seal_mode, seal_of, sealed_with, unknown_seal_mode
from engine.store._records import FeedEntry, ListingFilter, Record, Rewrite, SessionRow, StoredSnapshot

#: The most events one write stores, on every backend: a PostgreSQL store
#: gives each transaction this many feed positions (and one more), and a
#: write of more would take positions of the transactions after it.
MAX_EVENTS_PER_WRITE = 2**20 - 1
# The largest position a SQL integer column holds: every feed position is below it.
_LAST_POSITION = 2**63 - 1
_new_tuple = tuple.__new__

#: What is left to do after an erasure or a deletion has committed: make the
#: old bytes unrecoverable from the store where the backend can. It may wait
#: up to ``lock_timeout`` for readers that still hold them (then
#: ``StorageUnavailable`` saying the change is committed), so a caller runs it
#: after releasing its own locks.
Purge: TypeAlias = Callable[[], None]


def _too_many(session_id: str, count: int) -> InvalidArgument:
    return InvalidArgument(
        f"session {shown(session_id)}: this write would store {count:,} events at once, over the "
        f"{MAX_EVENTS_PER_WRITE:,} one write may store; nothing was written. Split it into smaller calls"
    )


class Backend(abc.ABC):
    """What the facade needs from storage. One contract for every backend."""

    def forget_cached(self) -> None:  # noqa: B027  # most backends keep nothing: no need to override
        """Drop what the backend keeps from the database between calls (a
        SQLite store's type codes), so that the next reads see the database
        as it is now, however it was changed since: for audits."""

    @abc.abstractmethod
    def append(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None = None,
        *,
        previous_head: str | None = None,
        source_head: str | None = None,
    ) -> None:
        """Store ``records``, upsert ``row`` and add ``snapshot`` in one transaction.

        Raises ``ConcurrentWriteError`` (or ``SessionExists`` for version 1)
        when a version is already taken; then nothing is written.
        ``previous_head``: the chain head of the listing row the records
        extend, as the writer read it. When given, the write happens only if
        the row still holds that head; otherwise the log changed underneath
        the writer (another writer, an erasure, or the session was deleted
        and created again with the same id): ``ConcurrentWriteError``, or
        ``SessionNotFound`` when there is no row, and nothing is written.
        ``source_head``: for the first records of a fork, the chain head of
        its source's listing row the fork was made from; when given, the
        fork is written only while the source's row still holds it.
        """

    @abc.abstractmethod
    def writing_alone(self, session_id: str) -> contextlib.AbstractContextManager[None]:
        """A block in which no other writer, in any process, can write to
        ``session_id``: a write decided inside on the session as read inside
        cannot lose a race. The block's one :meth:`append` of the session
        commits (nothing else may be written in it); if it has none, nothing
        is. For a writer that kept losing races: it waits for the other
        writers' turns instead of racing them. A backend may hold more than
        the session (SQLite holds the whole database). Waited for
        ``lock_timeout`` at most (``StorageUnavailable``)."""

    @abc.abstractmethod
    def rewriting_alone(self, session_ids: Sequence[str]) -> contextlib.AbstractContextManager[None]:
        """A block in which no other writer, in any process, can write to
        the store (PostgreSQL: its events table's lock and the listing rows
        of ``session_ids``; SQLite: the database's; memory: its lock): an
        erasure that reads the family inside, then makes the block's one
        :meth:`rewrite`, cannot lose a race. That rewrite commits; without
        one, nothing is. For an erasure that kept losing races: it waits for
        the other writers' turns instead of racing them. Waited for
        ``lock_timeout`` at most (``StorageUnavailable``)."""

    @abc.abstractmethod
    def read(self, session_id: str, *, after: int = 0, upto: int | None = None) -> list[Record]:
        """Records with ``after < version <= upto``, in version order."""

    @abc.abstractmethod
    def snapshot(self, session_id: str, *, upto: int | None = None) -> StoredSnapshot | None:
        """The session's newest snapshot with version ``<= upto``, if any."""

    @abc.abstractmethod
    def snapshots(self, session_id: str) -> list[StoredSnapshot]:
        """Every snapshot of the session, oldest first (for audits)."""

    @abc.abstractmethod
    def unlisted_snapshots(self) -> list[str]:
        """The ids of sessions with snapshots but no listing row, sorted:
        damage (a deletion removes a session's snapshots with its row)."""

    @abc.abstractmethod
    def session_rows(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        """Every session's listing row, oldest first; with ``wanted``, the
        database may leave out rows whose summary cannot match it (the
        caller tests the rows returned exactly, with ``summary_matches``)."""

    @abc.abstractmethod
    def session_row(self, session_id: str) -> SessionRow | None:
        """One session's listing row, if it has one."""

    @abc.abstractmethod
    def fork_records(self) -> list[tuple[str, Record]]:
        """The first record of every fork that has a listing row (session id
        and record), in one read: what finding a session's family or its
        forks starts from."""

    @abc.abstractmethod
    def feed(self, after: int = 0, limit: int = 100) -> list[FeedEntry]:
        """Up to ``limit`` stored events of every session, in commit order,
        after position ``after``: a read model or a follower catches up by
        asking again from the last position it got, until a page is empty.
        Records hold the stored bytes as they are now (an erasure's rewrite
        keeps their positions)."""

    @abc.abstractmethod
    def rewrite(self, changes: Sequence[Rewrite], *, family: Sequence[str] | None = None) -> Purge:
        """Erasure: apply every change in one transaction (``ConcurrentWriteError``
        if an appended version is taken, or a change's ``previous_head`` is no
        longer its row's; then nothing is written). Returns the :data:`Purge`
        that makes the replaced bytes unrecoverable from the store where the
        backend can (SQLite: secure delete in the transaction, then a
        truncating WAL checkpoint; PostgreSQL: VACUUM). ``family``: the
        sessions the erasure read as the family, root first; when given, a
        fork of that root made since refuses the rewrite the same way."""

    @abc.abstractmethod
    def delete(self, session_ids: Sequence[str]) -> Purge:
        """Remove the sessions' records, listing rows and snapshots in one
        transaction; returns the :data:`Purge` of their bytes, as ``rewrite`` does."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, for messages (no password)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SummaryRecorder(Protocol):
    """What ``RecorderBackend`` needs of an eventsourcing recorder subclass."""

    def insert_records(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None,
        previous_head: str | None,
        source_head: str | None,
    ) -> None: ...

    def holding_writes(self, session_id: str) -> contextlib.AbstractContextManager[None]: ...

    def holding_rewrites(self, session_ids: Sequence[str]) -> contextlib.AbstractContextManager[None]: ...

    def select_records(self, session_id: str, after: int, upto: int | None) -> list[Record]: ...

    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None: ...

    def select_snapshots(self, session_id: str) -> list[StoredSnapshot]: ...

    def select_unlisted_snapshots(self) -> list[str]: ...

    def select_sessions(self, wanted: ListingFilter | None = None) -> list[SessionRow]: ...

    def select_session(self, session_id: str) -> SessionRow | None: ...

    def select_fork_records(self) -> list[tuple[str, str, bytes]]: ...

    def rewrite_records(self, changes: Sequence[Rewrite], family: Sequence[str] | None) -> Purge: ...

    def select_feed(self, after: int, limit: int) -> list[FeedEntry]: ...

    def delete_sessions(self, session_ids: Sequence[str]) -> Purge: ...

    def forget_cached(self) -> None: ...

    def select_seal_mode(self) -> str | None:
        """How the store's listing rows are sealed (``seal_mode``), as it
        recorded when it was made, or ``None`` if it could not tell."""
        ...


class ClosedBackend(Backend):
    """What a store's backend becomes when it is closed: every use raises
    ``StorageUnavailable`` (memory included, so a closed store never goes on
    working on one backend and fails on another)."""

    def __init__(self, where: str) -> None:
        self._where = where

    def closed_error(self) -> StorageUnavailable:
        return StorageUnavailable(f"the store at {self._where} is closed; open it again with Transcripts.open()")

    def append(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None = None,
        *,
        previous_head: str | None = None,
        source_head: str | None = None,
    ) -> None:
        raise self.closed_error()

    def writing_alone(self, session_id: str) -> contextlib.AbstractContextManager[None]:
        raise self.closed_error()

    def rewriting_alone(self, session_ids: Sequence[str]) -> contextlib.AbstractContextManager[None]:
        raise self.closed_error()

    def read(self, session_id: str, *, after: int = 0, upto: int | None = None) -> list[Record]:
        raise self.closed_error()

    def snapshot(self, session_id: str, *, upto: int | None = None) -> StoredSnapshot | None:
        raise self.closed_error()

    def snapshots(self, session_id: str) -> list[StoredSnapshot]:
        raise self.closed_error()

    def unlisted_snapshots(self) -> list[str]:
        raise self.closed_error()

    def session_rows(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        raise self.closed_error()

    def session_row(self, session_id: str) -> SessionRow | None:
        raise self.closed_error()

    def fork_records(self) -> list[tuple[str, Record]]:
        raise self.closed_error()

    def feed(self, after: int = 0, limit: int = 100) -> list[FeedEntry]:
        raise self.closed_error()

    def rewrite(self, changes: Sequence[Rewrite], *, family: Sequence[str] | None = None) -> Purge:
        raise self.closed_error()

    def delete(self, session_ids: Sequence[str]) -> Purge:
        raise self.closed_error()

    def describe(self) -> str:
        return self._where


_ROW_TYPES: tuple[type | tuple[type, ...], ...] = (
    str,
    (str, type(None)),
    str,
    str,
    int,
    str,
    int,
    str,
    str,
    (str, type(None)),
)


def _checked(row: SessionRow, key: bytes | None) -> SessionRow:
    """A listing row as it was written: the types it was written with (SQLite
    keeps any value in any column) and a seal that matches every field."""
    for value, kind in zip(row, _ROW_TYPES, strict=True):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CorruptStore(f"the listing row of session {row.session_id!r} is damaged: {value!r} is misplaced")
    if not sealed_with(row, key):
        raise CorruptStore(
            f"the listing row of session {row.session_id!r} does not match its seal: it was altered"
            + (
                " (or the store is sealed with a key: open it with seal_key=)"
                if key is None
                else " (or the store was opened with another seal key)"
            )
        )
    return row


#: Errors of optional drivers (PostgreSQL's), registered by their backend
#: module as (driver error type, engine error type), most specific first:
#: those the driver raises outside eventsourcing's own translation.
DRIVER_ERRORS: list[tuple[type[BaseException], type[StorageError]]] = []


def _engine_error(
    exc: BaseException, operation: str, where: str, session_id: str | None, version: int
) -> tuple[EngineError, bool] | None:
    """The engine error for a storage exception, and whether to keep the
    exception as its cause (not for damage or conflicts: the driver's text
    adds nothing there); ``None`` for anything else (a bug, not storage)."""
    if session_id is not None:
        operation = f"{operation} of session {shown(session_id)}"
    if isinstance(exc, (es.IntegrityError, sqlite3.IntegrityError)):
        if session_id is None:
            return StorageError(f"{operation} on {where}: integrity error"), False
        if version == 1:
            return SessionExists(session_id), False
        return ConcurrentWriteError(session_id, version), False
    if _missing_table(exc):
        # A table the store made is gone: dropped, or the file replaced by
        # another database under the store's feet. Damage, not an outage.
        return CorruptStore(f"{operation} on {where}: a table of the store is missing: {exc}"), False
    if isinstance(exc, sqlite3.Error):
        # Our own SQLite statements (eventsourcing translates only its own).
        text = str(exc)
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
            return StorageError(f"{operation} on {where} failed: {text}"), True  # a misuse, not damage
        if isinstance(exc, sqlite3.OperationalError) and "decode" not in text:
            if "locked" in text and session_id is not None:  # a lock wait ran out: the transaction rolled back
                text += "; nothing was written"
            return StorageUnavailable(f"{operation} on {where} failed: {text}"), True  # busy, locked, I/O
        return CorruptStore(f"{operation} on {where}: the file is damaged: {text}"), False
    if isinstance(exc, es.ConnectionPoolClosedError):  # reads hold a share close() waits for; typed all the same
        return StorageUnavailable(f"{operation} on {where} failed: the store was closed meanwhile"), False
    if isinstance(exc, (es.InterfaceError, es.OperationalError)):
        return StorageUnavailable(f"{operation} on {where} failed: {exc}"), True
    if isinstance(exc, es.PersistenceError):
        return StorageError(f"{operation} on {where} failed: {exc}"), True
    for driver_error, engine_error in DRIVER_ERRORS:
        if isinstance(exc, driver_error):
            # The server's first line says what happened; its CONTEXT and
            # LINE lines (which row, which statement) stay on the cause.
            first = str(exc).strip().split("\n", 1)[0]
            if "lock timeout" in first and session_id is not None:  # the transaction rolled back
                first += "; nothing was written"
            return engine_error(f"{operation} on {where} failed: {first}"), True
    return None


#: Driver errors that say a table is missing (PostgreSQL's UndefinedTable
#: is added by its backend); SQLite says so in an OperationalError's text.
MISSING_TABLE_ERRORS: list[type[BaseException]] = []


def _missing_table(exc: BaseException) -> bool:
    """Whether ``exc`` (or the driver's error eventsourcing wrapped in it)
    says a table is missing."""
    for error in (exc, exc.__cause__):
        if isinstance(error, (sqlite3.OperationalError, es.OperationalError)) and str(error).startswith(
            "no such table"
        ):
            return True
        if any(isinstance(error, kind) for kind in MISSING_TABLE_ERRORS):
            return True
    return False


def leftover_snapshots(session_id: str) -> CorruptStore:
    """The error for a new session whose id has snapshots in the store: a
    deletion removes them with its events, so they were put there (and
    would refuse the new session's own)."""
    return CorruptStore(
        f"the store holds snapshots of session {shown(session_id)}, which it does not list: they were put there "
        "outside the engine; nothing was written"
    )


def unreachable_position(position: object, effect: str) -> CorruptStore:
    """The error for an event at a feed position no write gives; ``effect``
    says what that does to the feed's readers."""
    return CorruptStore(
        f"an event of the log is at feed position {shown(position)}, which no write of the engine gives "
        f"({effect}): the log was altered"
    )


def check_feed_versions(found: Sequence[Sequence[Any]], *, version_at: int) -> None:
    """Feed rows (position, session id, ...) read in one statement: a
    version that is no int from 1 up was written outside the engine (a
    session's checked reads read it too, and refuse it), and so were
    events of one session whose versions do not rise with their positions
    (positions are not in a session's chain: only the feed can tell)."""
    last: dict[object, int] = {}
    for row in found:
        version = row[version_at]
        if type(version) is not int or version < 1:
            raise CorruptStore(
                f"the event at feed position {row[0]} (session {shown(row[1])}) has version {shown(version)}, "
                "which no event of the engine has: the log was altered"
            )
        if last.get(row[1], 0) >= version:
            raise CorruptStore(
                f"the event at feed position {row[0]} (session {shown(row[1])}, version {version}) comes after "
                f"its version {last[row[1]]}: events of the log were moved"
            )
        last[row[1]] = version


class _damaged_types:
    """A stored value of the wrong type (text where bytes were written: SQLite
    keeps any value in any column) is damage, not a bug of the caller."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (TypeError, AttributeError)):
            raise CorruptStore(f"a stored snapshot of session {self.session_id!r} is damaged: {exc}") from None


def described(location: str, prefix: str) -> str:
    """Where a store lives, for messages and to tell stores apart: the file
    (or server and database), and the tables' prefix unless it is the default."""
    return location if prefix == "transcripts" else f"{location} (tables {prefix}_*)"


class translated_errors:
    """Translate storage exceptions into engine errors: the one place that does,
    for every backend, when opening a store as for every read and write.

    While ``opening``, anything but damage means the store cannot be used
    (``StorageUnavailable``: a missing server, a file that is no database).
    A class rather than a generator-based context manager: it wraps every
    append, and this costs a fraction of ``@contextmanager``'s overhead.
    """

    __slots__ = ("opening", "operation", "session_id", "version", "where")

    def __init__(
        self, operation: str, where: str, session_id: str | None = None, version: int = 0, *, opening: bool = False
    ) -> None:
        self.operation, self.where, self.session_id, self.version = operation, where, session_id, version
        self.opening = opening

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, EngineError):
            return
        found = _engine_error(exc, self.operation, self.where, self.session_id, self.version)
        if found is None:
            return
        error, keep_cause = found
        if self.opening and not isinstance(error, CorruptStore):
            cause = exc.__cause__ or exc
            error, keep_cause = StorageUnavailable(f"cannot open the store at {self.where}: {cause}"), False
        if keep_cause:
            raise error from exc
        raise error from None


class RecorderBackend(Backend):
    """A ``Backend`` over one eventsourcing application recorder."""

    def __init__(
        self, recorder: SummaryRecorder, where: str, *, on_close: Any = None, seal_key: bytes | None = None
    ) -> None:
        self._recorder = recorder
        self._where = where
        self._on_close = on_close
        self._key = seal_key
        self._sealing_known = self._check_sealing()

    def _check_sealing(self) -> bool:
        """Refuse an opening that seals rows otherwise than the store records
        (``check_seal_mode``); whether the store's way is known at all."""
        with translated_errors("open", self._where):
            recorded = self._recorder.select_seal_mode()
        check_seal_mode(self._where, recorded, self._key)
        return recorded is not None

    def _writable(self) -> None:
        """Refuse a write while the store's way of sealing is not known (it
        may have been recorded since: then checked again)."""
        if not self._sealing_known:
            self._sealing_known = self._check_sealing()
            if not self._sealing_known:
                raise unknown_seal_mode(self._where)

    def append(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None = None,
        *,
        previous_head: str | None = None,
        source_head: str | None = None,
    ) -> None:
        if len(records) > MAX_EVENTS_PER_WRITE:
            raise _too_many(session_id, len(records))
        self._writable()
        row = _new_tuple(SessionRow, (*row[:8], seal_of(row, self._key), row.summary))  # its __new__ is Python code
        with translated_errors("write", self._where, session_id, records[0].version):
            self._recorder.insert_records(session_id, records, row, snapshot, previous_head, source_head)

    @contextlib.contextmanager
    def writing_alone(self, session_id: str) -> Iterator[None]:
        self._writable()
        with translated_errors("write", self._where, session_id), self._recorder.holding_writes(session_id):
            yield

    @contextlib.contextmanager
    def rewriting_alone(self, session_ids: Sequence[str]) -> Iterator[None]:
        self._writable()
        with translated_errors("erase", self._where, session_ids[0]), self._recorder.holding_rewrites(session_ids):
            yield

    def read(self, session_id: str, *, after: int = 0, upto: int | None = None) -> list[Record]:
        with translated_errors("read", self._where):
            return self._recorder.select_records(session_id, after, upto)

    def forget_cached(self) -> None:
        with translated_errors("read", self._where):
            self._recorder.forget_cached()

    def snapshot(self, session_id: str, *, upto: int | None = None) -> StoredSnapshot | None:
        with translated_errors("read snapshot", self._where), _damaged_types(session_id):
            return self._recorder.select_snapshot(session_id, upto)

    def snapshots(self, session_id: str) -> list[StoredSnapshot]:
        with translated_errors("read snapshots", self._where), _damaged_types(session_id):
            return self._recorder.select_snapshots(session_id)

    def unlisted_snapshots(self) -> list[str]:
        with translated_errors("read snapshots", self._where):
            found = self._recorder.select_unlisted_snapshots()
        if not all(type(session_id) is str for session_id in found):  # SQLite keeps any value in any column
            raise CorruptStore(f"the snapshots of {self._where} name a session by a value that is not text")
        return found

    def session_rows(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        with translated_errors("list sessions", self._where):
            rows = self._recorder.select_sessions(wanted)
        return [_checked(row, self._key) for row in rows]

    def session_row(self, session_id: str) -> SessionRow | None:
        with translated_errors("read a listing row", self._where):
            row = self._recorder.select_session(session_id)
        return None if row is None else _checked(row, self._key)

    def fork_records(self) -> list[tuple[str, Record]]:
        with translated_errors("read the forks", self._where):
            found = self._recorder.select_fork_records()
        return [(session_id, Record(1, topic, bytes(state))) for session_id, topic, state in found]

    def feed(self, after: int = 0, limit: int = 100) -> list[FeedEntry]:
        if type(after) is not int or after < 0:
            raise InvalidArgument(f"after= is a feed position (an int >= 0), got {shown(after)}")
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit= is 1 to 10,000 entries per page, got {shown(limit)}")
        if after >= _LAST_POSITION:  # no event is after it (and SQL could not bind a larger one)
            return []
        try:
            with translated_errors("read the feed", self._where):
                return self._recorder.select_feed(after, limit)
        except (TypeError, ValueError):  # SQLite keeps any value in any column
            raise CorruptStore(f"the feed of {self._where} holds a stored event of a damaged type") from None

    def rewrite(self, changes: Sequence[Rewrite], *, family: Sequence[str] | None = None) -> Purge:
        appended = sum(len(change.appended) for change in changes)
        if appended > MAX_EVENTS_PER_WRITE:
            raise _too_many(changes[0].session_id, appended)
        self._writable()
        changes = [change._replace(row=change.row._replace(seal=seal_of(change.row, self._key))) for change in changes]
        first = next((change for change in changes if change.appended), None)
        session_id, version = (first.session_id, first.appended[0].version) if first else (None, 0)
        with translated_errors("erase", self._where, session_id, version):
            purge = self._recorder.rewrite_records(changes, family)
        return self._translated(purge, "erase")

    def delete(self, session_ids: Sequence[str]) -> Purge:
        with translated_errors("delete", self._where):
            purge = self._recorder.delete_sessions(session_ids)
        return self._translated(purge, "delete")

    def _translated(self, purge: Purge, action: str) -> Purge:
        def run() -> None:
            with translated_errors(action, self._where):
                purge()

        return run

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
