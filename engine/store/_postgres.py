"""The PostgreSQL backend: eventsourcing's PostgreSQL recorder plus a listing
table updated in the same transaction and a one-row-per-session snapshot table."""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError, ProgrammingError
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row, tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    InvalidArgument,
    SessionNotFound,
    StorageError,
    StorageUnavailable,
    WriteOutcomeUnknown,
)
from engine.state.content import shown
from engine.store._backend import (
    DRIVER_ERRORS,
    MAX_EVENTS_PER_WRITE,
    MISSING_TABLE_ERRORS,
    RecorderBackend,
    check_feed_versions,
    described,
    leftover_snapshots,
    translated_errors,
    unreachable_position,
)
from engine.store._chain import check_legacy_sealing, removed_seals, seal_mode_of, sealed_row
from engine.store._codec import (
    decode_event,
    fork_source,
    refuse_children,
    refuse_new_forks,
    refuse_orphans,
    spawn_parent,
    spawn_parents,
)
from engine.store._packed import PACKED_TOPICS
from engine.store._records import (
    LISTING_COLUMNS,
    ROW_COLUMNS,
    FeedEntry,
    ListingFilter,
    Record,
    Rewrite,
    SessionRow,
    StoredSnapshot,
)

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")

#: Feed positions of stored events start here (below: an older store's
#: positions) unless the store was written in a cluster whose transaction
#: ids were further on (its ``<prefix>_feed`` row says where they start then);
#: each transaction has ``_PER_TRANSACTION`` of them.
POSITION_BASE = 2**40
_PER_TRANSACTION = MAX_EVENTS_PER_WRITE + 1
# Transactions a held write takes at most to hold a session's row with an
# id past its newest event's (see PostgresRecorder.holding_writes).
_HOLD_TRIES = 5
# No position or base the engine gives reaches this: 2**20 positions for each
# of 2**40 transaction ids still leave 2**62 (and bigint) far off.
_POSITION_LIMIT = 2**61
STATEMENT_TIMEOUT = 60.0  # seconds: the longest any statement may run
# Seconds a transaction of the store may sit idle between its statements:
# the engine sends them one after another, so only a process paused or hung
# mid-transaction (a debugger, a frozen machine) reaches it. Until the server
# ends such a transaction, its locks hold back erasures and deletions and its
# id holds back the feed.
IDLE_TRANSACTION_TIMEOUT = 60.0
# A connection that failed sooner than this was dropped by the server (it
# answered: it is there); later, it timed out (gone from the network).
_DROPPED_WITHIN = 1.0
WRITER_IDLE_CHECK = 5.0  # seconds idle after which the appends' connection is checked before use
# How long a write whose connection was lost waits for the server process
# that ran it to end, so that whether it was stored can be told.
SETTLE_WAIT = 1.0
RECONNECT_TIMEOUT = 3.0  # seconds a failed pool connection is retried before a new one is asked for
# libpq's settings for a server gone from the network (a failover, a dropped
# route): it answers nothing, not even a reset, and without these a call
# waits for as long as the kernel retransmits (about 15 minutes) or, waiting
# for a reply, forever. Data or a keepalive probe unanswered for 30 s ends
# the connection. A connection string (or a service file) that sets any of
# them keeps its own.
NETWORK_SETTINGS = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}

# A table of the store gone: damage (see _backend._engine_error).
MISSING_TABLE_ERRORS.append(psycopg.errors.UndefinedTable)
# What psycopg raises outside eventsourcing's translation (our own
# connections: schema creation, vacuum; the pool's timeout on a dead server).
DRIVER_ERRORS.extend(
    [
        (psycopg.OperationalError, StorageUnavailable),
        (psycopg.InterfaceError, StorageUnavailable),
        (psycopg.Error, StorageError),
    ]
)


#: How long a deletion or erasure waits in PostgreSQL's lock queue at a
#: time for the events table (see PostgresRecorder._take_events_lock).
_LOCK_SLICE = 0.05


def _wait_locks_for(curs: Any, seconds: float) -> None:
    """The rest of the (sub)transaction of ``curs`` waits at most ``seconds``
    for a lock: whole milliseconds rounded up, and at least one (PostgreSQL
    reads 0 as no limit)."""
    curs.execute(SQL("SET LOCAL lock_timeout = {}").format(Literal(f"{max(1, math.ceil(seconds * 1000))}ms")))


def _timeouts(lock_timeout: float) -> Composed:
    """The lock, statement and idle-transaction timeouts, in whole
    milliseconds rounded up: PostgreSQL reads 0 as no limit, so a timeout
    under a millisecond must not become 0."""
    lock_ms, statement_ms, idle_ms = (
        math.ceil(seconds * 1000) for seconds in (lock_timeout, STATEMENT_TIMEOUT, IDLE_TRANSACTION_TIMEOUT)
    )
    return SQL(
        "SET lock_timeout = {}; SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}"
    ).format(Literal(f"{lock_ms}ms"), Literal(f"{statement_ms}ms"), Literal(f"{idle_ms}ms"))


class _Datastore(PostgresDatastore):
    """eventsourcing's datastore, whose every connection gets the store's
    lock and statement timeouts when the pool makes it: a read, too, waits
    no longer than ``lock_timeout`` for a lock (an ALTER TABLE or VACUUM
    FULL of someone else), so no call of the store can hang."""

    def __init__(self, *, timeouts: Composed, **options: Any) -> None:
        self.timeouts = timeouts
        # Per thread: whether a connection it was given broke (see _read_again_if_lost).
        self.lost = threading.local()
        super().__init__(**options)

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        # A store left open is collected at interpreter exit, after the
        # modules psycopg's pool closes with are torn down (this module's
        # globals too: hence the default argument): closing then fails inside
        # the pool, which Python prints as an ignored exception. The server
        # drops the connections of a process that ended anyway.
        if not _finalizing():
            super().__del__()

    def after_connect_func(self) -> Any:
        configure, timeouts = super().after_connect_func(), self.timeouts

        def after_connect(conn: Any) -> None:  # a closure, not a bound method: no cycle through the pool
            configure(conn)
            conn.execute(timeouts)

        return after_connect

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[Any]:
        with super().get_connection() as conn:
            try:
                yield conn
            except BaseException:
                if conn.broken:
                    # The server dropped it (a restart, say): its idle
                    # siblings too, most likely. Checked now, they fail no
                    # later call one after another.
                    self.lost.connection = True
                    self.pool.check()
                raise

    def own_connection(self) -> Any:
        """A connection outside the pool, made as the pool makes its own
        (same settings, same timeouts): for DDL under an advisory lock, and
        for VACUUM, which no transaction may hold."""
        conn = psycopg.connect(self.pool.conninfo, autocommit=True, **self.pool.kwargs)  # type: ignore[arg-type]
        try:
            conn.execute(self.timeouts)
        except BaseException:
            conn.close()
            raise
        return conn


def _outcome_unknown(exc: BaseException) -> WriteOutcomeUnknown:
    """The error for a write whose connection was lost under way: it may
    have committed before the reply was lost, and "failed" would invite a
    retry that stores it twice."""
    return WriteOutcomeUnknown(
        f"the connection was lost while the write was under way ({exc}); whether it was stored is unknown: "
        "read the session before writing it again"
    )


def _read_again_if_lost(
    read: Callable[Concatenate[Any, _Params], _Result],
) -> Callable[Concatenate[Any, _Params], _Result]:
    """A read whose connection the server had dropped (a restart, a
    failover, an idle-session timeout) made once more, on a connection the
    pool has checked: it changes nothing, so a second one is safe, and the
    first call after a restart does not fail. Not one that failed by timing
    out (a server gone from the network): another would time out as well."""

    def reading(self: Any, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        lost = self.datastore.lost
        lost.connection = False
        started = time.monotonic()
        try:
            return read(self, *args, **kwargs)
        except Exception:
            if not getattr(lost, "connection", False) or time.monotonic() - started > _DROPPED_WITHIN:
                raise
        lost.connection = False
        return read(self, *args, **kwargs)

    return reading


def _lost_under_way(conn: Any, exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` lost its connection, as the
    driver's error says (its outcome can then be asked on another, see
    ``_settle_lost_write``); ``False`` for the driver's error on a
    connection that is as it was (the statement ended: ``exc`` is the
    outcome). An interruption of the caller's (a signal handler's
    exception, Ctrl-C) may come after the statement was sent, even after
    it committed: a statement still under way is cancelled and the
    connection closed, and an exception is raised as
    :class:`WriteOutcomeUnknown` from it; Ctrl-C and other exceptions that
    stop a program (``False``: raised as they are) get a note saying so."""
    if isinstance(exc, (psycopg.Error, PersistenceError)):  # the driver's (as eventsourcing's, translated)
        return bool(conn.broken)  # else the statement ended, and the server said how
    # Not the driver's: the statement may have been sent, and committed
    # before (or while) the interruption came, whatever state it left.
    if not conn.broken and not conn.closed and conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=1.0)
        conn.close()
    if not isinstance(exc, Exception):
        # Ctrl-C, SystemExit: still what they are (a caller stopping must
        # not be caught as an error), with what is known said on them.
        exc.add_note("the write under way when it came may have been stored, or not: read the session first")
        return False
    raise _outcome_unknown(exc) from exc


def _written_by(session_id: str, found: Sequence[tuple[Any, ...]], records: Sequence[Record]) -> bool:
    """Whether the stored events ``found`` (version, type name, bytes) are
    ``records`` themselves: the same bytes, or, for an event of messages
    an erasure rewrote since (their content replaced by placeholders), the
    same type, time, actor and revision (a digest of every message)."""
    if len(found) != len(records):
        return False
    for (version, topic, state), record in zip(found, records, strict=True):
        state = bytes(state)
        if (version, topic, state) == tuple(record):
            continue
        try:
            stored = decode_event(topic, state, "a stored event", session_id=session_id, version=version)
            ours = decode_event(record.topic, record.state, "a write", session_id=session_id, version=version)
        except EngineError:
            return False
        if (
            getattr(ours, "revision", None) is None
            or type(stored) is not type(ours)
            or any(getattr(stored, field, None) != getattr(ours, field, None) for field in ("at", "actor", "revision"))
        ):
            return False
    return True


def _answering(pool: Any) -> Any:
    """A connection from ``pool`` checked with a round trip; a broken one is
    given back (the pool drops it) and its error raised."""
    conn = pool.getconn()
    try:
        pool.check_connection(conn)
    except BaseException:
        pool.putconn(conn)
        raise
    return conn


class PostgresRecorder(PostgresApplicationRecorder):
    datastore: _Datastore

    def __init__(
        self,
        datastore: _Datastore,
        prefix: str,
        *,
        lock_timeout: float = 10.0,
        seal_key: bytes | None = None,
        seal_legacy: bool = False,
    ) -> None:
        self._seal_key = seal_key
        self._seal_legacy = seal_legacy
        self._lock_timeout = lock_timeout
        super().__init__(datastore, events_table_name=f"{prefix}_events")
        schema = Identifier(datastore.schema)
        sessions = Identifier(f"{prefix}_sessions")
        snapshots = Identifier(f"{prefix}_snapshots")
        feed = Identifier(f"{prefix}_feed")
        seal = Identifier(f"{prefix}_seal")
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (session_id text PRIMARY KEY, title text, "
                "created_at text NOT NULL, updated_at text NOT NULL, message_count bigint NOT NULL, "
                "revision text NOT NULL, version bigint NOT NULL, head text NOT NULL, seal text NOT NULL, summary text)"
            ).format(schema, sessions),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (session_id text NOT NULL, "
                "version bigint NOT NULL, state bytea NOT NULL, PRIMARY KEY (session_id, version))"
            ).format(schema, snapshots),
        ]
        # One row: where this store's feed positions start (see POSITION_BASE),
        # made with the table in one transaction (create_table).
        self._create_feed = _rendered(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                "base bigint NOT NULL)"
            ).format(schema, feed)
        )
        # One row: how the listing rows are sealed (see engine.store._chain.seal_mode).
        self._create_seal = _rendered(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} "
                "(one boolean PRIMARY KEY DEFAULT true CHECK (one), mode text NOT NULL)"
            ).format(schema, seal)
        )
        self._select_seal_mode = _rendered(SQL("SELECT mode FROM {}.{}").format(schema, seal))
        self._insert_seal_mode = _rendered(
            SQL("INSERT INTO {}.{} (mode) VALUES (%s) ON CONFLICT DO NOTHING").format(schema, seal)
        )
        self._upsert_session = SQL(
            "INSERT INTO {}.{} AS s (" + ROW_COLUMNS + ") VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (session_id) DO UPDATE "
            "SET title=excluded.title, updated_at=excluded.updated_at, "
            "message_count=excluded.message_count, revision=excluded.revision, version=excluded.version, "
            "head=excluded.head, seal=excluded.seal, summary=excluded.summary"
        ).format(schema, sessions)
        self._sessions_name = f"{prefix}_sessions"
        self._snapshots_name = f"{prefix}_snapshots"
        self._feed_name = f"{prefix}_feed"
        self._seal_name = f"{prefix}_seal"
        self._writer: Any = None  # the connection appends use (see _append_alone_on_writer)
        self._writer_cursor: Any = None  # and its cursor
        self._writer_used = 0.0  # when it last served an append (time.monotonic)
        self._writer_pid = 0  # its server process (see _settle_lost_write)
        self._writer_lock = threading.Lock()
        self._held: dict[int, Any] = {}  # a thread in ``holding_writes``: its cursor, until its write
        self._held_rewrites: dict[int, Any] = {}  # a thread in ``holding_rewrites``: its cursor, until its rewrite
        events = Identifier(self.events_table_name)
        # A stored event's position in the store-wide feed: after every
        # position of an older store (those are below POSITION_BASE), by the
        # id of the transaction that wrote it, then in write order within it;
        # from the store's base (POSITION_BASE, or more for a store restored
        # from a cluster whose transaction ids were further on).
        # A reader only reads positions of transactions older than every one
        # still running (see select_feed), so none commits below a position
        # already read: writers never wait on one lock to keep that true.
        # The events go as the session id and three plain arrays (version,
        # topic, state): adapting them costs a fraction of a composite-type array.
        into_events = SQL("INSERT INTO {}.{} AS t (originator_id, originator_version, topic, state, position) ").format(
            schema, events
        )
        # NULL, which the column refuses (the whole statement fails), when the
        # store has no base, or holds a position of a transaction id this
        # cluster has not given (restored from a cluster further on while
        # open here, or its base altered): the event would land below
        # positions readers may have passed.
        # (This transaction's own rows are seen too, and its id may be past
        # the snapshot's: a snapshot's xmax is one past the newest ended.)
        # A base the engine never gives (altered) is refused the same way.
        position = SQL(
            "(SELECT CASE WHEN f.base < {} OR f.base >= {} OR (SELECT max(position) FROM {}.{}) >= f.base + greatest("
            "pg_snapshot_xmax(pg_current_snapshot())::text::bigint, x.id + 1) * {} "
            "THEN NULL ELSE f.base + x.id * {} END "
            "FROM {}.{} f, (SELECT pg_current_xact_id()::text::bigint AS id) x)"
        ).format(
            Literal(POSITION_BASE),
            Literal(_POSITION_LIMIT),
            schema,
            events,
            Literal(_PER_TRANSACTION),
            Literal(_PER_TRANSACTION),
            schema,
            feed,
        )
        self._insert_positioned = SQL(
            "{}SELECT %s, e.version, e.topic, e.state, {} + %s + e.ord "
            "FROM unnest(%s::bigint[], %s::text[], %s::bytea[]) WITH ORDINALITY AS e(version, topic, state, ord)"
        ).format(into_events, position)
        # Only while the row still holds the head the writer's records extend
        # (NULL: not checked).
        update_session = SQL(
            "UPDATE {}.{} SET title=%s, updated_at=%s, message_count=%s, revision=%s, version=%s, head=%s, "
            "seal=%s, summary=%s WHERE session_id=%s AND (%s::text IS NULL OR head=%s)"
        ).format(schema, sessions)
        self._append_row = _rendered(SQL("WITH ev AS ({}) {}").format(self._insert_positioned, update_session))
        # The same write as one statement that commits on its own (the
        # connection is in autocommit): one round trip instead of three
        # (BEGIN, statement, COMMIT). The listing row is updated first and the
        # events are inserted only for the row it returns, so a session
        # deleted meanwhile gets nothing (no transaction is left to roll back).
        self._append_alone = _rendered(
            SQL("WITH up AS ({} RETURNING 1) {}, up").format(update_session, self._insert_positioned)
        )
        # One event (nearly every append): plain values, not arrays to adapt.
        self._append_one_alone = _rendered(
            SQL("WITH up AS ({} RETURNING 1) {}SELECT %s, %s, %s, %s, {} + 1 FROM up").format(
                update_session, into_events, position
            )
        )
        self._create_row = _rendered(SQL("WITH ev AS ({}) {}").format(self._insert_positioned, self._upsert_session))
        # What the feed may read up to (see select_feed): the first
        # transaction id not yet assigned when the statement began, the
        # ids (32 bits) of the transactions holding a lock on the events
        # table as it ran (each one's own id: the lock table is read once),
        # and the store's base; and whether the store's newest position is
        # one its base could give.
        # A hot standby sees none of the primary's locks: there the oldest
        # transaction still running on the primary, as the snapshot knows it.
        events_class = Literal(Identifier(datastore.schema, self.events_table_name).as_string(None))
        base = SQL("(SELECT base FROM {}.{})").format(schema, feed)
        self._select_feed_horizon = _rendered(
            SQL(
                "WITH locks AS MATERIALIZED (SELECT * FROM pg_locks WHERE NOT pg_is_in_recovery()) "
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin(snap.s) "
                "ELSE pg_snapshot_xmax(snap.s) END)::text::bigint, ARRAY("
                "SELECT t.transactionid::text::bigint FROM locks l JOIN locks t "
                "ON t.virtualtransaction = l.virtualtransaction AND t.locktype = 'transactionid' "
                "WHERE l.locktype = 'relation' AND l.relation = {}::regclass AND l.mode <> 'SIReadLock' "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())), {}, "
                "pg_snapshot_xmax(snap.s)::text::bigint, (SELECT max(position) FROM {}.{}) "
                "FROM (SELECT pg_current_snapshot() AS s) AS snap"
            ).format(events_class, base, schema, events)
        )
        # Whether the store holds positions of transaction ids this cluster
        # has not reached (it was restored from another): its newest
        # position, how many base rows it has and one's base, and the first
        # id not yet assigned.
        self._select_feed_reach = _rendered(
            SQL(
                "SELECT (SELECT max(position) FROM {}.{}), (SELECT count(*) FROM {}.{}), "
                "(SELECT base FROM {}.{} LIMIT 1), pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
                "pg_is_in_recovery()"
            ).format(schema, events, schema, feed, schema, feed)
        )
        self._reset_feed_base = _rendered(
            SQL("UPDATE {}.{} SET base = {}").format(schema, feed, Literal(POSITION_BASE))
        )
        self._insert_feed_base = _rendered(
            SQL("INSERT INTO {}.{} (base) VALUES ({}) ON CONFLICT DO NOTHING").format(
                schema, feed, Literal(POSITION_BASE)
            )
        )
        # No write beside it: a writer that took its position from the old
        # base after this one read the newest position could land below it.
        self._lock_out_writers = _rendered(SQL("LOCK TABLE {}.{} IN SHARE ROW EXCLUSIVE MODE").format(schema, events))
        self._raise_feed_base = _rendered(
            SQL(
                "UPDATE {}.{} SET base = greatest(base, "
                "(SELECT max(position) FROM {}.{}) + 1 - pg_snapshot_xmax(pg_current_snapshot())::text::bigint * {})"
            ).format(schema, feed, schema, events, Literal(_PER_TRANSACTION))
        )
        # With whether the event's session is listed: an event of no listing
        # row is damage (the two are written and deleted together).
        self._select_feed = _rendered(
            SQL(
                "SELECT e.position, e.originator_id, e.originator_version, e.topic, e.state, "
                "s.session_id IS NOT NULL FROM {}.{} e LEFT JOIN {}.{} s ON s.session_id = e.originator_id "
                "WHERE e.position > %s AND e.position < %s ORDER BY e.position LIMIT %s"
            ).format(schema, events, schema, sessions)
        )
        # Positions no write gives, none or below 1: readers start past them,
        # so an event there would never be shown. (No upper bound: a store
        # restored into another cluster holds positions of transaction ids
        # that cluster has not reached.)
        unreachable = SQL("(SELECT position FROM {}.{} WHERE {} LIMIT 1)")
        self._select_unreachable = _rendered(
            SQL(" UNION ALL ").join(
                unreachable.format(schema, events, condition)
                for condition in (SQL("position IS NULL"), SQL("position < 1"))
            )
            + SQL(" LIMIT 1")
        )
        # What settles an append whose connection was lost: whether the
        # server process that ran it is still there, then (it is gone, so its
        # transaction has ended) whether its events are stored.
        self._backend_alive = _rendered(SQL("SELECT count(*) FROM pg_stat_activity WHERE pid = %s"))
        self._select_written = _rendered(
            SQL(
                "SELECT originator_version, topic, state FROM {}.{} WHERE originator_id=%s "
                "AND originator_version BETWEEN %s AND %s ORDER BY originator_version"
            ).format(schema, Identifier(self.events_table_name))
        )
        self._select_snapshot = _rendered(
            SQL(
                "SELECT version, state FROM {}.{} WHERE session_id=%s AND version<=%s ORDER BY version DESC LIMIT 1"
            ).format(schema, snapshots)
        )
        self._select_unlisted_snapshots = _rendered(
            SQL(
                "SELECT DISTINCT n.session_id FROM {}.{} n WHERE NOT EXISTS "
                "(SELECT 1 FROM {}.{} s WHERE s.session_id = n.session_id) ORDER BY n.session_id"
            ).format(schema, snapshots, schema, sessions)
        )
        self._select_parents = _rendered(
            SQL(
                "SELECT session_id, summary::jsonb ->> 'parent' AS parent FROM {}.{} WHERE summary::jsonb ? 'parent'"
            ).format(schema, sessions)
        )
        self._select_any_snapshot = _rendered(
            SQL("SELECT 1 FROM {}.{} WHERE session_id=%s LIMIT 1").format(schema, snapshots)
        )
        self._select_snapshots = _rendered(
            SQL("SELECT version, state FROM {}.{} WHERE session_id=%s ORDER BY version").format(schema, snapshots)
        )
        self._insert_snapshot = _rendered(
            SQL("INSERT INTO {}.{} (session_id, version, state) VALUES (%s,%s,%s)").format(schema, snapshots)
        )
        # A read from the start has no lower bound on versions, and a read to
        # the end no upper one: a row at a version no write of the engine
        # makes (0, below, or past any count) is read, and fails the check.
        records = SQL("SELECT originator_version, topic, state FROM {}.{} WHERE originator_id=%s ").format(
            schema, Identifier(self.events_table_name)
        )
        self._select_records = _rendered(
            records + SQL("AND originator_version>%s AND originator_version<=%s ORDER BY originator_version")
        )
        self._select_records_upto = _rendered(records + SQL("AND originator_version<=%s ORDER BY originator_version"))
        self._select_all_records = _rendered(records + SQL("ORDER BY originator_version"))
        self._select_session = _rendered(
            SQL("SELECT " + ROW_COLUMNS + " FROM {}.{} WHERE session_id=%s").format(schema, sessions)
        )
        self._select_head = _rendered(
            SQL("SELECT head, version FROM {}.{} WHERE session_id=%s").format(schema, sessions)
        )
        self._lock_session_row = _rendered(
            SQL("SELECT 1 FROM {}.{} WHERE session_id=%s FOR UPDATE").format(schema, sessions)
        )
        # In one order (the ids sorted), as every writer of several rows takes them.
        self._lock_session_rows = _rendered(
            SQL("SELECT 1 FROM {}.{} WHERE session_id = ANY(%s) ORDER BY session_id FOR UPDATE").format(
                schema, sessions
            )
        )
        # Whether the session's newest event has a position at or past those
        # of this transaction's id, and its version: a transaction that took
        # its id while it waited for the row (a row lock gives one) can find
        # another writer's later event committed by the time it holds it.
        self._behind_newest = _rendered(
            SQL(
                "SELECT n.position >= f.base + pg_current_xact_id()::text::bigint * {}, n.version FROM {}.{} f, "
                "(SELECT position, originator_version AS version FROM {}.{} WHERE originator_id=%s "
                "ORDER BY originator_version DESC LIMIT 1) n"
            ).format(Literal(_PER_TRANSACTION), schema, feed, schema, events)
        )
        self._select_unsummarised_firsts = _rendered(
            SQL(
                "SELECT e.originator_id, e.topic, e.state FROM {}.{} e JOIN {}.{} s ON s.session_id = e.originator_id "
                "WHERE s.summary IS NULL AND e.originator_version = 1"
            ).format(schema, events, schema, sessions)
        )
        self._select_fork_firsts = _rendered(
            SQL(
                "SELECT originator_id, topic, state FROM {}.{} WHERE originator_version=1 "
                "AND topic LIKE 'SessionForked.%%'"
            ).format(schema, events)
        )
        self._select_fork_records = _rendered(
            SQL(
                "SELECT e.originator_id, e.topic, e.state FROM {}.{} e JOIN {}.{} s ON s.session_id = e.originator_id "
                "WHERE e.originator_version=1 AND e.topic LIKE 'SessionForked.%%'"
            ).format(schema, events, schema, sessions)
        )
        self._lock_for_insert = _rendered(SQL("LOCK TABLE {}.{} IN ROW EXCLUSIVE MODE").format(schema, events))
        # Not eventsourcing's lock_table_statements: they set the lock
        # timeout to its datastore's (0, no limit) for the transaction.
        self._lock_events = _rendered(SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(schema, events))
        self._select_sessions = SQL("SELECT " + ROW_COLUMNS + " FROM {}.{}").format(schema, sessions)

    def create_table(self) -> None:
        # Serialise schema creation between processes opening a new store at
        # once: concurrent CREATE ... IF NOT EXISTS can fail in PostgreSQL's
        # catalog ("tuple concurrently updated").
        # The lock is held on a connection of its own: the pool's connections
        # are needed by the statements themselves.
        # One key for every prefix: eventsourcing also creates objects shared
        # by the whole database (a function and a type), so stores of different
        # prefixes opening at once collided there ("tuple concurrently updated").
        key = zlib.crc32(b"transcript-engine:create-tables")
        with self.datastore.own_connection() as conn:
            self._refuse_foreign_feed_table(conn)
            if self._schema_ready(conn):
                # No DDL at all: even CREATE INDEX IF NOT EXISTS waits for
                # every open write transaction, and writers queue behind it.
                self._seal_unsealed_rows(conn)
                self._record_seal_mode(conn)
                self._catch_up_feed_base(conn)
                return
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            # Before the DDL below adds what is missing: a refusal changes nothing.
            self._refuse_unsealable(conn, before_ddl=True)
            super().create_table()
            with conn.transaction():  # the table and its row at once: no write ever finds it empty
                conn.execute(self._create_feed)
                conn.execute(self._insert_feed_base)
            conn.execute(self._create_seal)
            # A store written before listing rows had a summary gets the
            # column (its rows keep NULL until their session is next written).
            conn.execute(
                SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS summary text").format(
                    Identifier(self.datastore.schema), Identifier(self._sessions_name)
                )
            )
            # Feed positions (see __init__); the events of a store written
            # before them keep their old positions, all below the new ones.
            schema, events = Identifier(self.datastore.schema), Identifier(self.events_table_name)
            conn.execute(SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS position bigint").format(schema, events))
            conn.execute(
                SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {}.{} (position)").format(
                    Identifier(f"{self.events_table_name}_position_idx"), schema, events
                )
            )
            unplaced, placed = conn.cursor(row_factory=tuple_row).execute(
                SQL(
                    "SELECT EXISTS (SELECT 1 FROM {}.{} WHERE position IS NULL), "
                    "EXISTS (SELECT 1 FROM {}.{} WHERE position IS NOT NULL)"
                ).format(schema, events, schema, events)
            ).fetchone() or (False, False)
            if unplaced and placed:  # a store of before positions has none; one since has all
                raise CorruptStore(
                    f"{self.events_table_name} holds events at no feed position beside events at one: no write of "
                    "the engine leaves that (its column was altered)"
                )
            conn.execute(
                SQL("UPDATE {}.{} SET position = notification_id WHERE position IS NULL").format(schema, events)
            )
            # Every event has a position: a write that cannot give one (see
            # __init__) fails instead of storing an event no reader sees.
            conn.execute(SQL("ALTER TABLE {}.{} ALTER COLUMN position SET NOT NULL").format(schema, events))
            self._seal_unsealed_rows(conn)
            self._record_seal_mode(conn)
            self._catch_up_feed_base(conn)

    def _refuse_foreign_feed_table(self, conn: psycopg.Connection[Any]) -> None:
        """``StorageUnavailable`` if the database has a table of the feed
        table's name that is not the engine's (an application's own
        ``<prefix>_feed``): opening the store would write into it."""
        columns = {
            row[0]
            for row in conn.cursor(row_factory=tuple_row)
            .execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (self.datastore.schema or "public", self._feed_name),
            )
            .fetchall()
        }
        if columns and columns != {"one", "base"}:
            raise StorageUnavailable(
                f"the database has a table {self._feed_name} that is not this engine's (its columns are "
                f"{', '.join(sorted(columns))}): open the store with another table_prefix"
            )

    def _catch_up_feed_base(self, conn: psycopg.Connection[Any]) -> None:
        """Give the store its base row, and raise the base past its newest
        position if that is of a transaction id this cluster has not reached:
        a store restored from another cluster (``pg_dump``) holds such
        positions, and without this the feed would show none of its events
        until this cluster's ids passed them, and new events would come
        before them. Checked whenever the store is opened; a write only if
        the row is missing or the base is behind."""
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
            found = cursor.execute(self._select_feed_reach).fetchone()
            assert found is not None  # a SELECT without FROM: one row
            newest, rows, base, next_id, standby = found
            if standby:
                return  # read-only; the primary's writers keep its base
            where = f"the store's {self._feed_name} table"
            if rows > 1:
                raise CorruptStore(f"{where} holds {rows} rows, where the engine keeps one: it was altered")
            self._refuse_base_of_another_type(base)
            if newest is not None and (type(newest) is not int or newest >= _POSITION_LIMIT):
                raise CorruptStore(
                    f"the store holds feed position {shown(newest)}, beyond any the engine gives: its log was altered"
                )
            if not rows:
                cursor.execute(self._insert_feed_base)
                base = POSITION_BASE
            elif base is None or not POSITION_BASE <= base < _POSITION_LIMIT:
                # Removed or altered with SQL: the base is where positions
                # start (raised below if the store is ahead), never data.
                cursor.execute(self._reset_feed_base)
                base = POSITION_BASE
            if newest is None or newest < base + next_id * _PER_TRANSACTION:
                return
            cursor.execute(self._lock_out_writers)
            cursor.execute(self._raise_feed_base)

    def _refuse_base_of_another_type(self, base: object) -> None:
        """``CorruptStore`` for a base column altered to another type (which
        opening the store cannot put right)."""
        if base is not None and type(base) is not int:
            raise CorruptStore(
                f"the store's {self._feed_name} table holds a base of type {type(base).__name__}, not bigint: "
                "it was altered"
            )

    def _schema_ready(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether the store's tables have every column and index this
        version writes (then opening it needs no DDL)."""
        schema = self.datastore.schema or "public"
        found = (
            conn.cursor(row_factory=tuple_row)
            .execute(
                "SELECT (SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND ("
                "(table_name = %s AND column_name IN ('summary', 'seal')) OR "
                "(table_name = %s AND column_name = 'position' AND is_nullable = 'NO'))), "
                "to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL, "
                "to_regclass(%s) IS NOT NULL",
                (
                    schema,
                    self._sessions_name,
                    self.events_table_name,
                    f"{schema}.{self.events_table_name}_position_idx",
                    f"{schema}.{self._snapshots_name}",
                    f"{schema}.{self._feed_name}",
                    f"{schema}.{self._seal_name}",
                ),
            )
            .fetchone()
        )
        return found is not None and found[0] == 3 and all(found[1:])

    def _later_layout(self, conn: psycopg.Connection[Any]) -> list[str]:
        """What the store has of what builds that seal every row add (the
        seal-mode and feed tables, the events' position column, the listing
        rows' summary column, events in a packed form): only a store of
        version 0.1, which has none of them, was never sealed."""
        schema = self.datastore.schema or "public"
        column = (
            "EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name = %s)"
        )
        cursor = conn.cursor(row_factory=tuple_row)
        found = cursor.execute(
            f"SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL, {column}, {column}",
            (
                f"{schema}.{self._seal_name}",
                f"{schema}.{self._feed_name}",
                *(schema, self.events_table_name, "position"),
                *(schema, self._sessions_name, "summary"),
            ),
        ).fetchone()
        packed = cursor.execute(
            SQL("SELECT 1 FROM {}.{} WHERE topic = ANY(%s) LIMIT 1").format(
                Identifier(schema), Identifier(self.events_table_name)
            ),
            (list(PACKED_TOPICS),),
        ).fetchone()
        names = (
            self._seal_name,
            self._feed_name,
            f"the position column of {self.events_table_name}",
            f"the summary column of {self._sessions_name}",
            "events in a packed form",
        )
        return [name for name, present in zip(names, (*(found or ()), packed is not None), strict=True) if present]

    def _seal_columns(self, conn: psycopg.Connection[Any]) -> set[str] | None:
        """Which of the head and seal columns the listing table has (``None``:
        no listing table yet, a new store)."""
        found = (
            conn.cursor(row_factory=tuple_row)
            .execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
                (self.datastore.schema or "public", self._sessions_name),
            )
            .fetchall()
        )
        return {name for (name,) in found if name in ("head", "seal")} if found else None

    def _refuse_unsealable(self, conn: psycopg.Connection[Any], *, before_ddl: bool) -> set[str] | None:
        """Refuse, before anything is written, a store whose rows lack their
        head or seal that is not one of 0.1 (what it has of a later layout,
        looked at ``before_ddl`` only: the opening's DDL adds it; see
        ``removed_seals``), or that is, opened with a key without
        ``seal_legacy`` (see ``check_legacy_sealing``). Returns which of the
        two columns the listing table has (``None``: no listing table yet)."""
        columns = self._seal_columns(conn)
        if columns is None or columns == {"head", "seal"}:
            return columns
        where = f"{self.datastore.schema}.{self._sessions_name}"
        later = self._later_layout(conn) if before_ddl else []
        if later or columns:
            raise removed_seals(where, later or ["one of the two columns"])
        check_legacy_sealing(where, self._seal_key, self._seal_legacy)
        return columns

    def _seal_unsealed_rows(self, conn: psycopg.Connection[Any]) -> None:
        """Give a store written before rows were sealed its chain heads and
        seals, once, in one transaction: when the columns are added. A row
        with an empty seal is never sealed later: that is damage."""
        schema = self.datastore.schema
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
            # Refused before any DDL if the store is not one of 0.1 (or is, opened
            # with a key alone); a store since then reaches here with one column.
            if self._refuse_unsealable(conn, before_ddl=False) == {"head", "seal"}:
                return
            table = SQL("{}.{}").format(Identifier(schema), Identifier(self._sessions_name))
            cursor.execute(
                SQL(
                    "ALTER TABLE {} ADD COLUMN head text NOT NULL DEFAULT '', ADD COLUMN seal text NOT NULL DEFAULT ''"
                ).format(table)
            )
            for values in cursor.execute(SQL("SELECT " + ROW_COLUMNS + " FROM {}").format(table)).fetchall():
                legacy = SessionRow(*values)
                records = cursor.execute(self._select_records, (legacy.session_id, 0, legacy.version)).fetchall()
                row = sealed_row(legacy, (Record(v, t, bytes(b)) for v, t, b in records), self._seal_key)
                cursor.execute(
                    SQL("UPDATE {} SET head=%s, seal=%s WHERE session_id=%s").format(table),
                    (row.head, row.seal, row.session_id),
                )

    def _record_seal_mode(self, conn: psycopg.Connection[Any]) -> None:
        """Record how the listing rows are sealed, once, if the store can tell
        (``seal_mode_of``): as this opening seals them in a new store, else as
        its rows tell (a store of an earlier build). A standby records nothing."""
        schema = Identifier(self.datastore.schema)
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
            if cursor.execute(self._select_seal_mode).fetchone() is not None:
                return
            standby = cursor.execute("SELECT pg_is_in_recovery()").fetchone()
            if standby is None or standby[0]:
                return
            found = cursor.execute(
                SQL("SELECT " + ROW_COLUMNS + " FROM {}.{}").format(schema, Identifier(self._sessions_name))
            ).fetchall()
            mode = seal_mode_of((SessionRow(*row) for row in found), self._seal_key)
            if mode is not None:
                cursor.execute(self._insert_seal_mode, (mode,))

    def select_seal_mode(self) -> str | None:
        try:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(self._select_seal_mode)
                found = curs.fetchone()
        except ProgrammingError:  # no such table: a store of an earlier build read where it cannot be changed
            return None
        return None if found is None else found["mode"]

    def has_tables(self) -> bool:
        """Whether the store's tables are there (to open without creating
        them): its listing table, with the engine's columns (a table of that
        name without them belongs to someone else), and its events table."""
        schema = self.datastore.schema or "public"
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (schema, self._sessions_name),
            )
            columns = {row["column_name"] for row in curs.fetchall()}
            curs.execute("SELECT to_regclass(%s) AS found", (f"{schema}.{self.events_table_name}",))
            row = curs.fetchone()
        return columns >= LISTING_COLUMNS and row is not None and row["found"] is not None

    @contextlib.contextmanager
    def _locked_write(self, session_ids: Sequence[str]) -> Iterator[Any]:
        """A cursor in one write transaction, under the lock and statement
        timeouts, holding the events table lock and the listing rows of
        ``session_ids``: erasures and deletions, which rewrite or remove
        records of several sessions at once, run with no append beside them.

        Both are waited for a short slice at a time up to ``lock_timeout``
        (see ``_take_events_lock``). A row another client holds is not
        waited for with the table locked, which would hold back the writers
        of every session: the transaction ends, and the next try takes both
        again."""
        deadline = time.monotonic() + self._lock_timeout
        pause = 0.01
        with self._writing() as conn:
            while True:
                held = contextlib.ExitStack()
                curs = held.enter_context(conn.cursor())
                held.enter_context(conn.transaction())
                try:
                    self._take_events_lock(conn, curs, deadline)
                    if self._took_rows(conn, curs, session_ids, deadline):
                        break
                except BaseException as exc:
                    held.__exit__(type(exc), exc, exc.__traceback__)  # rolled back
                    raise
                held.__exit__(psycopg.Rollback, psycopg.Rollback(), None)  # the table lock let go
                if time.monotonic() + pause >= deadline:
                    raise psycopg.errors.LockNotAvailable(
                        "a listing row of the sessions written stayed locked by another transaction for the "
                        "whole lock timeout"
                    )  # as a lock timeout is: the caller's StorageUnavailable
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            with held:
                yield curs

    def _took_rows(self, conn: Any, curs: Any, session_ids: Sequence[str], deadline: float) -> bool:
        """Whether the listing rows of ``session_ids`` were locked within a
        slice (then the rest of the transaction waits for locks as long as
        any write); ``False``, and none of them held, if another
        transaction holds one."""
        if session_ids:
            try:
                with conn.transaction():  # a savepoint: a refusal ends only it, and lets its row locks go
                    _wait_locks_for(curs, min(_LOCK_SLICE, deadline - time.monotonic()))
                    curs.execute(self._lock_session_rows, (sorted(set(session_ids)),), prepare=True)
            except psycopg.errors.LockNotAvailable:
                return False
        _wait_locks_for(curs, self._lock_timeout)
        return True

    def _take_events_lock(self, conn: Any, curs: Any, deadline: float) -> None:
        """The events table's lock, waited for in PostgreSQL's queue a short
        slice at a time (``_LOCK_SLICE``), with pauses between, up to
        ``deadline``: a request waiting in that queue holds back every
        append that comes after it (they need a weaker lock it conflicts
        with), so one waiting there behind a writer stuck on a session would
        stop the writers of every other session until that one gave up.
        Appends are one short statement each: without a stuck one, the
        first slice gets the lock."""
        pause = 0.01
        while True:
            try:
                with conn.transaction():  # a savepoint: a refusal ends only it
                    _wait_locks_for(curs, min(_LOCK_SLICE, deadline - time.monotonic()))
                    curs.execute(self._lock_events, prepare=True)
                break
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() + pause >= deadline:
                    raise  # as a lock timeout is: the caller's StorageUnavailable
            time.sleep(pause)  # the appends queued behind the slice go on meanwhile
            pause = min(pause * 2, 0.1)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """A pooled connection for one write transaction: a lost connection
        makes the outcome unknown, and the error says so."""
        with self.datastore.get_connection() as conn:
            try:
                yield conn
            except EngineError:
                raise
            except BaseException as exc:
                if conn.broken:
                    raise _outcome_unknown(exc) from exc
                raise

    def insert_records(
        self,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None,
        previous_head: str | None = None,
        source_head: str | None = None,
    ) -> None:
        """The events, the listing row and the snapshot, in one transaction.
        An append without a snapshot is one statement that commits by itself
        (one round trip); otherwise one statement for events and row, the
        snapshot, and the commit. No table lock: writers of different
        sessions run at once; the unique (session, version) key orders the
        writers of one session (the second gets ``ConcurrentWriteError``).

        Not through eventsourcing's ``insert_events``: it sends the statements
        in psycopg's pipeline mode, where an event of a few megabytes left the
        client and the server each waiting for the other. Every statement
        here is bounded by the lock and statement timeouts."""
        first = records[0]
        # Every field but the id and creation time, then the head checked.
        changes = (*row[1:2], *row[3:], row.session_id, previous_head, previous_head)
        if self._held:
            held = self._held.pop(threading.get_ident(), None)
            if held is not None:  # the one write of a holding_writes block, in its transaction
                with self._committing(held):
                    self._insert_in(held, session_id, records, row, snapshot, changes, source_head)
                return
        if first.version != 1 and snapshot is None:
            self._append_alone_on_writer(session_id, records, changes)
            return
        with self._placing():
            self._settled_write(
                session_id,
                records,
                lambda curs: self._insert_in(curs, session_id, records, row, snapshot, changes, source_head),
            )

    def _insert_in(
        self,
        curs: Any,
        session_id: str,
        records: Sequence[Record],
        row: SessionRow,
        snapshot: StoredSnapshot | None,
        changes: tuple[Any, ...],
        source_head: str | None,
    ) -> None:
        """The statements of :meth:`insert_records`, in the transaction of ``curs``."""
        first = records[0]
        source = fork_source(session_id, first.topic, first.state) if first.version == 1 else None
        parent = spawn_parent(session_id, first.topic, first.state) if first.version == 1 else None
        if source is not None or parent is not None:
            # The lock the insert takes anyway, taken before the source
            # (or a child's parent) is checked: a deletion under way (it
            # holds the events table exclusively) ends first and the
            # check sees it; one that starts later waits for this write,
            # then refuses to orphan it.
            curs.execute(self._lock_for_insert)
            if source is not None:
                self._check_head(curs, source, source_head)  # deleted, or changed, since the fork was made
            if parent is not None:
                self._check_head(curs, parent, None)  # deleted since the child was recorded
        events = _columns(session_id, 0, records)
        if first.version == 1:
            # The row first: a session that exists (snapshots and all) is
            # SessionExists, and only snapshots without a row are damage.
            curs.execute(self._create_row, (*events, *row), prepare=True)
            if curs.execute(self._select_any_snapshot, (session_id,)).fetchone() is not None:
                raise leftover_snapshots(session_id)
        else:
            curs.execute(self._append_row, (*events, *changes), prepare=True)
            if curs.rowcount != 1:  # raised in the transaction: its events are rolled back
                self._refuse_stale(curs, session_id, first.version)
        if snapshot is not None:
            curs.execute(self._insert_snapshot, (row.session_id, snapshot.version, snapshot.state), prepare=True)

    @contextlib.contextmanager
    def holding_writes(self, session_id: str) -> Iterator[None]:
        """The session's listing row locked (``FOR UPDATE``) from the start
        of the block to its one write (see ``Backend.writing_alone``): every
        write of the session updates that row, so other writers of it wait,
        and writers of other sessions do not. The write runs in this
        transaction and commits it; without one, the block's end rolls it
        back. The lock is waited for ``lock_timeout`` at most, each time it
        is taken (see below: rarely more than once)."""
        with self._writing() as conn, conn.cursor() as curs:
            curs.execute("BEGIN")
            ident = threading.get_ident()
            self._held[ident] = curs
            try:
                for _ in range(_HOLD_TRIES):
                    # The events table's lock first, as every write of the engine
                    # takes it before its transaction has an id (the row lock
                    # gives it one): the feed holds back the positions such a
                    # transaction may still take, and erasures and deletions,
                    # which take the table first too, wait instead of deadlocking.
                    curs.execute(self._lock_for_insert)
                    curs.execute(self._lock_session_row, (session_id,), prepare=True)
                    # Positions follow transaction ids, and the id came with the
                    # row lock, while it was waited for: another writer may have
                    # taken the row first and committed a later event at a
                    # higher position. An event of this transaction would come
                    # before it in the feed; a new transaction's id is past it.
                    with conn.cursor(row_factory=tuple_row) as check:
                        behind = check.execute(self._behind_newest, (session_id,), prepare=True).fetchone()
                    if behind is None or not behind[0]:
                        break
                    curs.execute("ROLLBACK")
                    curs.execute("BEGIN")
                else:
                    raise ConcurrentWriteError(session_id, behind[1] + 1)
                yield
            finally:
                if self._held.pop(ident, None) is curs and not conn.broken:  # no write ended the transaction
                    try:
                        curs.execute("ROLLBACK")
                    except psycopg.Error:  # the idle timeout's error is of class 25, not an OperationalError
                        if not conn.broken:
                            raise
                        # The server ended the transaction (left idle too long,
                        # or the connection was lost): it wrote nothing, so the
                        # block's own outcome stands; the pool drops the connection.

    @contextlib.contextmanager
    def holding_rewrites(self, session_ids: Sequence[str]) -> Iterator[None]:
        """The events table's lock and the listing rows of ``session_ids``
        from the start of the block to its one rewrite (see
        ``Backend.rewriting_alone``), as an erasure's write takes them: no
        other write of the store runs meanwhile. The rewrite runs in this
        transaction, which commits at the block's end (holding nothing but
        locks if there was none). Waited for ``lock_timeout`` at most."""
        ident = threading.get_ident()
        with self._locked_write(session_ids) as curs:
            self._held_rewrites[ident] = curs
            try:
                yield
            finally:
                self._held_rewrites.pop(ident, None)

    @contextlib.contextmanager
    def _committing(self, curs: Any) -> Iterator[None]:
        """Commit the transaction of ``curs`` after the block, or roll it
        back if the block raised (a lost connection: the outcome is unknown)."""
        try:
            with self._placing():
                yield
                curs.execute("COMMIT")
        except BaseException as exc:
            if curs.connection.broken:
                raise _outcome_unknown(exc) from exc
            curs.execute("ROLLBACK")
            raise

    def _append_alone_on_writer(self, session_id: str, records: Sequence[Record], changes: tuple[Any, ...]) -> None:
        """An append as one statement that commits by itself, on a connection
        this recorder keeps for them: taking one from the pool and giving it
        back cost about a fifth of an append's time on the client. A
        connection that failed is given back to the pool (which drops a
        broken one) and the next append takes another.

        While another thread's append holds that connection, this one takes
        a pooled connection of its own at once: appends of different
        sessions never wait for each other's round trips (or for a writer
        stuck behind a row lock)."""
        if not self._writer_lock.acquire(blocking=False):
            self._settled_write(
                session_id, records, lambda curs: self._execute_append(curs, session_id, records, changes)
            )
            return
        try:
            conn = self._writer
            if conn is None or time.monotonic() - self._writer_used > WRITER_IDLE_CHECK:
                if conn is not None:
                    # Idle a while: the server may have dropped it meanwhile
                    # (a restart, idle_session_timeout); a check costs one
                    # round trip, a dropped connection a failed append.
                    self._writer = None
                    self.datastore.pool.putconn(conn)
                conn = self._checked_connection()
                try:
                    # One cursor for every append on it: making one per
                    # append cost about a tenth of an append's client CPU.
                    cursor, pid = conn.cursor(), conn.info.backend_pid
                except BaseException:
                    self.datastore.pool.putconn(conn)
                    raise
                # Kept together, at once: an interruption between them left
                # the cursor of a connection given back to the pool.
                self._writer, self._writer_cursor, self._writer_pid = conn, cursor, pid
            cursor, pid = self._writer_cursor, self._writer_pid
            try:
                self._execute_append(cursor, session_id, records, changes)
            except EngineError:
                raise  # a refusal (_refuse_stale): the connection is as good as before
            except BaseException as exc:  # the driver's error, or an interruption with a statement under way
                self._writer = None
                try:
                    lost = _lost_under_way(conn, exc)
                finally:
                    self.datastore.pool.putconn(conn)
                if not lost:
                    raise
                failure = exc
            else:
                return
            finally:
                self._writer_used = time.monotonic()
        finally:
            self._writer_lock.release()
        self._settle_lost_write(
            failure, pid, session_id, records, lambda curs: self._execute_append(curs, session_id, records, changes)
        )

    def _settled_write(self, session_id: str, records: Sequence[Record], write: Callable[[Any], None]) -> None:
        """``write`` (given a cursor) of ``records`` in a transaction of its
        own on a pooled connection; if the connection is lost under way, its
        outcome settled (see :meth:`_settle_lost_write`)."""
        with self.datastore.get_connection() as conn:
            pid = conn.info.backend_pid
            try:
                with conn.transaction(), conn.cursor() as curs:
                    write(curs)
            except EngineError:
                raise
            except BaseException as exc:
                if not _lost_under_way(conn, exc):
                    raise
                failure = exc
            else:
                return
        self._settle_lost_write(failure, pid, session_id, records, write)

    def _settle_lost_write(
        self, lost: BaseException, pid: int, session_id: str, records: Sequence[Record], write: Callable[[Any], None]
    ) -> None:
        """A write of ``records`` whose connection was lost under way, found
        out on another connection: stored (then done), never stored (then
        written again, once, on that connection: it extends the head it was
        made on or nothing, so it cannot be stored twice; not a new
        session's, which has no head), or, if that cannot be told,
        :class:`WriteOutcomeUnknown`. It can be told once the
        server process that ran the write (``pid``) is gone: its transaction
        has ended then, committed or not. So a server restart, a failover,
        or a connection the server ended while idle fails no append."""
        try:
            # A new connection, not the pool's: after a restart its idle ones
            # are all lost, and while the server is gone from the network
            # asking it for one would upset its reconnection schedule.
            conn = self.datastore.own_connection()
        except psycopg.Error as exc:  # no connection to tell it on
            raise _outcome_unknown(lost) from exc
        try:
            try:
                with conn.cursor(row_factory=tuple_row) as curs:
                    # A process whose client went away ends within moments
                    # of noticing; one that has not noticed yet (its client
                    # gone from the network) may still commit: then it is
                    # not known.
                    deadline = time.monotonic() + SETTLE_WAIT
                    while curs.execute(self._backend_alive, (pid,)).fetchone()[0]:
                        if time.monotonic() >= deadline:
                            raise _outcome_unknown(lost) from lost
                        time.sleep(0.02)
                    span = (session_id, records[0].version, records[-1].version)
                    found = curs.execute(self._select_written, span).fetchall()
            except psycopg.Error as exc:  # not told: cancelled, or lost again
                raise _outcome_unknown(lost) from exc
            if _written_by(session_id, found, records):
                return  # stored before the connection was lost
            if records[0].version == 1 and not found:
                # A new session's write has no head to extend: stored, then
                # deleted by another client meanwhile, it reads as never
                # stored, and making it again would undo the deletion.
                raise _outcome_unknown(lost) from lost
            try:
                with conn.transaction(), conn.cursor() as curs:
                    write(curs)
            except psycopg.IntegrityError as exc:  # as the pool's connections translate it
                raise IntegrityError(str(exc)) from exc
            except EngineError:
                raise  # refused (another writer went first): nothing of this write is stored
            except BaseException as exc:
                if conn.broken:
                    raise _outcome_unknown(exc) from exc
                raise  # ended before it committed: nothing of it is stored
        finally:
            conn.close()

    def _execute_append(self, curs: Any, session_id: str, records: Sequence[Record], changes: tuple[Any, ...]) -> None:
        with self._placing():
            try:
                if len(records) == 1:
                    curs.execute(self._append_one_alone, (*changes, session_id, *records[0]), prepare=True)
                else:
                    curs.execute(self._append_alone, (*changes, *_columns(session_id, 0, records)), prepare=True)
            except psycopg.IntegrityError as exc:
                raise IntegrityError(str(exc)) from exc  # as eventsourcing's connections translate it
        if curs.rowcount != len(records):  # nothing was written
            self._refuse_stale(curs, session_id, records[0].version)

    @contextlib.contextmanager
    def _placing(self) -> Iterator[None]:
        """Writes of events: a position the events table refused (see
        ``__init__``) is damage, said so (not a conflict to retry)."""
        try:
            yield
        except (psycopg.IntegrityError, IntegrityError) as exc:  # the driver's, or as eventsourcing translates it
            if _unplaced(exc) or _unplaced(exc.__cause__):
                raise self._unplaceable() from None
            raise

    def _unplaceable(self) -> CorruptStore:
        return CorruptStore(
            f"no feed position can be given to this write: the store's {self._feed_name} table has no base, or the "
            "store holds positions past any it gives this cluster's transactions (it was restored from another "
            "cluster while it was open here, or the table was altered); nothing was written. Opening the store "
            "again puts the base right"
        )

    def _checked_connection(self) -> Any:
        """A connection from the pool that answers (one round trip): after a
        server restart the pool's idle connections are all broken, and each
        would fail an append. After a broken one, the pool checks all its
        idle ones (dropping the broken) before giving another; not after one
        that timed out (a server gone from the network), since each check
        would take as long."""
        pool = self.datastore.pool
        started = time.monotonic()
        try:
            return _answering(pool)
        except psycopg.OperationalError:
            if time.monotonic() - started > _DROPPED_WITHIN:
                # It failed by timing out: the server is gone from the network,
                # and checking each idle connection would cost as long again.
                raise
            pool.check()
            return _answering(pool)

    def close_writer(self) -> None:
        """Give the appends' connection back to the pool (before it closes)."""
        with self._writer_lock:
            conn, self._writer = self._writer, None
            if conn is not None:
                self.datastore.pool.putconn(conn)

    def _fork_firsts(self, curs: Any) -> list[tuple[str, str, bytes]]:
        """The first record of every fork (session id, type name, bytes)."""
        curs.execute(self._select_fork_firsts, prepare=True)
        return [(row["originator_id"], row["topic"], row["state"]) for row in curs.fetchall()]

    def _check_head(self, curs: Any, session_id: str, expected: str | None) -> None:
        """``SessionNotFound`` if the session has no listing row;
        ``ConcurrentWriteError`` if ``expected`` is given and the row holds
        another head (its log changed since it was read)."""
        curs.execute(self._select_head, (session_id,), prepare=True)
        found = curs.fetchone()
        if found is None:
            raise SessionNotFound(session_id)
        if expected is not None and found["head"] != expected:
            raise ConcurrentWriteError(session_id, found["version"])

    def _refuse_stale(self, curs: Any, session_id: str, version: int) -> None:
        """An append whose listing row was not updated: the session was
        deleted since the writer read it (``SessionNotFound``), or its log
        changed under the writer: another writer, an erasure, or the session
        deleted and created again (``ConcurrentWriteError``)."""
        curs.execute(self._select_head, (session_id,), prepare=True)
        if curs.fetchone() is None:
            raise SessionNotFound(session_id)
        raise ConcurrentWriteError(session_id, version)

    def forget_cached(self) -> None:
        pass  # every read asks the database

    @_read_again_if_lost
    def select_feed(self, after: int, limit: int) -> list[FeedEntry]:
        """The events after position ``after`` whose positions no
        transaction can still commit below.

        A position is its writer's transaction id (times a span). Every
        write of the engine locks the events table before it has an id: the
        statement that takes the id names the table (or a ``LOCK TABLE``
        comes first). So one statement finds the oldest transaction holding
        a lock on the table, prepared ones included (or the first id not yet
        assigned when it began, if that is older), and the next reads the
        events below it, with a snapshot that sees every transaction below
        that point that has ended since. A transaction that has not locked
        the table holds nothing back (another database's, or an idle one of
        this database's); nor does a serializable one's read lock, which
        outlives it. Should such a transaction write events later, they
        would take positions that readers may have passed: a write to the
        table outside the engine must lock it in the statement that gives
        its transaction an id, or before. On a hot standby, which sees none
        of the primary's locks, the feed reads up to the oldest transaction
        still running on the primary, as before."""
        # No transaction around the two: each statement takes a snapshot of
        # its own (in autocommit, whatever default_transaction_isolation says).
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit
            curs.execute(self._select_feed_horizon, prepare=True)
            next_id, running, base, unassigned, newest = curs.fetchone()
            self._refuse_base_of_another_type(base)
            if base is None or not POSITION_BASE <= base < _POSITION_LIMIT:
                raise CorruptStore(
                    f"the store's {self._feed_name} table holds no base (where its feed positions start) the engine "
                    f"gives, but {shown(base)}: it was altered; opening the store again puts it right"
                )
            if newest is not None and newest >= base + unassigned * _PER_TRANSACTION:
                # Of a transaction id this cluster has not given: written
                # from a base further on than the stored one. New events
                # would land below positions readers have passed.
                raise CorruptStore(
                    f"the store's newest feed position ({newest}) is past any its {self._feed_name} row gives "
                    "this cluster's transactions: the store was restored from another cluster while it was open "
                    "here, or the row was altered; opening the store again moves the row past it"
                )
            horizon = _feed_horizon(next_id, running, base)
            curs.execute(self._select_feed, (after, horizon, limit), prepare=True)
            found = curs.fetchall()
            if after == 0:  # a reader's first page: the store's positions are checked once
                unreachable = curs.execute(self._select_unreachable).fetchone()
                if unreachable is not None:
                    raise unreachable_position(unreachable[0], "readers would pass it by")
        # Every row is an event of the engine's (any other is damage, reported,
        # not left out): a type name, bytes and a version from 1.
        for position, session_id, _, topic, state, listed in found:
            if not listed:
                raise CorruptStore(
                    f"the event at feed position {position} names session {shown(session_id)}, which has no "
                    "listing row: the log was altered"
                )
            if not isinstance(topic, str) or state is None:
                raise CorruptStore(
                    f"the event at feed position {position} (session {shown(session_id)}) has no "
                    f"{'type name' if not isinstance(topic, str) else 'bytes'}: the log was altered"
                )
        check_feed_versions(found, version_at=2)
        return [
            FeedEntry(position, session_id, Record(version, topic, bytes(state)))
            for position, session_id, version, topic, state, _ in found
        ]

    def rewrite_records(self, changes: Sequence[Rewrite], family: Sequence[str] | None = None) -> Callable[[], None]:
        events = Identifier(self.events_table_name)
        schema = Identifier(self.datastore.schema)
        replace = SQL("UPDATE {}.{} SET topic=%s, state=%s WHERE originator_id=%s AND originator_version=%s").format(
            schema, events
        )
        snapshot_replace = SQL("UPDATE {}.{} SET state=%s WHERE session_id=%s AND version=%s").format(
            schema, Identifier(self._snapshots_name)
        )
        written = 0  # events this transaction inserted: the next one's place in it
        held = self._held_rewrites.pop(threading.get_ident(), None)
        locked = (
            contextlib.nullcontext(held)
            if held is not None
            else self._locked_write([change.session_id for change in changes])
        )
        with self._placing(), locked as curs:
            if family:
                refuse_new_forks(family, self._fork_firsts(curs))
            for change in changes:
                self._check_head(curs, change.session_id, change.previous_head)  # appends wait for the lock
                for version, topic, state in change.replaced:
                    curs.execute(replace, (topic, state, change.session_id, version))
                    if curs.rowcount != 1:
                        raise IntegrityError(f"record {version} of {change.session_id!r} changed meanwhile")
                if change.appended:
                    curs.execute(self._insert_positioned, _columns(change.session_id, written, change.appended))
                    written += len(change.appended)
                for snapshot in change.snapshots:
                    curs.execute(snapshot_replace, (snapshot.state, change.session_id, snapshot.version))
                    if curs.rowcount != 1:
                        raise IntegrityError(f"snapshot {snapshot.version} of {change.session_id!r} is gone")
                curs.execute(self._upsert_session, tuple(change.row), prepare=True)
            xid = _transaction_id(curs)
        return lambda: self._vacuum(xid, "erasure")

    def delete_sessions(self, session_ids: Sequence[str]) -> Callable[[], None]:
        schema = Identifier(self.datastore.schema)
        tables = (
            (Identifier(self.events_table_name), "originator_id"),
            (Identifier(self._snapshots_name), "session_id"),
            (Identifier(self._sessions_name), "session_id"),
        )
        with self._locked_write(session_ids) as curs:
            refuse_orphans(session_ids, self._fork_firsts(curs))
            curs.execute(self._select_parents)
            parents = [(row["session_id"], row["parent"]) for row in curs.fetchall()]
            curs.execute(self._select_unsummarised_firsts)
            firsts = [(row["originator_id"], row["topic"], row["state"]) for row in curs.fetchall()]
            refuse_children(session_ids, [*parents, *spawn_parents(firsts)])
            for table, column in tables:
                curs.execute(
                    SQL("DELETE FROM {}.{} WHERE {} = ANY(%s)").format(schema, table, Identifier(column)),
                    (list(session_ids),),
                )
            xid = _transaction_id(curs)
        return lambda: self._vacuum(xid, "deletion")

    def _vacuum(self, xid: int, what: str) -> None:
        """Remove the dead row versions an erasure or a deletion (``what``,
        transaction ``xid``) left.
        VACUUM keeps those that a transaction begun before it may still
        read, so it waits (up to the lock timeout) for such transactions to
        end, then vacuums; VACUUM cannot run inside a transaction, so on a
        connection of its own."""
        deadline = time.monotonic() + self._lock_timeout
        try:
            self._vacuum_when_unread(xid, deadline, what)
        except psycopg.Error as exc:
            raise OperationalError(
                f"the {what} is committed, but its old rows could not be removed yet ({exc}); {_then(what)}"
            ) from exc

    def _vacuum_when_unread(self, xid: int, deadline: float, what: str) -> None:
        with self.datastore.own_connection() as conn:
            while True:
                found = (
                    conn.cursor(row_factory=tuple_row)
                    .execute(
                        # This database's only: VACUUM of a table here keeps no row
                        # for a transaction of another database.
                        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                        "AND datname = current_database() "
                        "AND backend_type = 'client backend' AND backend_xmin IS NOT NULL "
                        "AND age(backend_xmin) >= age(%s::text::xid)",
                        (str(xid),),
                    )
                    .fetchone()
                )
                if not found or not found[0]:
                    break
                if time.monotonic() > deadline:
                    raise OperationalError(
                        f"the {what} is committed, but a transaction begun before it can still read the old rows, "
                        f"so PostgreSQL keeps them; when it has ended, {_then(what)}"
                    )
                time.sleep(0.02)
            for name in (self.events_table_name, self._snapshots_name, self._sessions_name):
                conn.execute(SQL("VACUUM {}.{}").format(Identifier(self.datastore.schema), Identifier(name)))

    @_read_again_if_lost
    def select_records(self, session_id: str, after: int, upto: int | None) -> list[Record]:
        if not _holdable(session_id):
            return []
        with self.datastore.get_connection() as connection, connection.cursor(row_factory=tuple_row) as cursor:
            if after > 0:
                high = 2**63 - 1 if upto is None else upto
                cursor.execute(self._select_records, (session_id, after, high), prepare=True)
            elif upto is not None:
                cursor.execute(self._select_records_upto, (session_id, upto), prepare=True)
            else:
                cursor.execute(self._select_all_records, (session_id,), prepare=True)
            found = cursor.fetchall()
        for version, _, state in found:
            if state is None:
                raise CorruptStore(f"session {shown(session_id)}: the stored event at version {version} has no bytes")
        return [Record(version, topic, bytes(state)) for version, topic, state in found]

    @_read_again_if_lost
    def select_snapshot(self, session_id: str, upto: int | None) -> StoredSnapshot | None:
        if not _holdable(session_id):
            return None
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_snapshot, (session_id, upto if upto is not None else 2**62), prepare=True)
            found = curs.fetchone()
        return None if found is None else StoredSnapshot(found["version"], bytes(found["state"]))

    @_read_again_if_lost
    def select_snapshots(self, session_id: str) -> list[StoredSnapshot]:
        if not _holdable(session_id):
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_snapshots, (session_id,))
            return [StoredSnapshot(row["version"], bytes(row["state"])) for row in curs.fetchall()]

    @_read_again_if_lost
    def select_unlisted_snapshots(self) -> list[str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_unlisted_snapshots)
            return [row["session_id"] for row in curs.fetchall()]

    @_read_again_if_lost
    def select_session(self, session_id: str) -> SessionRow | None:
        if not _holdable(session_id):
            return None
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_session, (session_id,), prepare=True)
            found = curs.fetchone()
        return None if found is None else SessionRow(**found)

    @_read_again_if_lost
    def select_fork_records(self) -> list[tuple[str, str, bytes]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_fork_records, prepare=True)
            return [(row["originator_id"], row["topic"], bytes(row["state"])) for row in curs.fetchall()]

    @_read_again_if_lost
    def select_sessions(self, wanted: ListingFilter | None = None) -> list[SessionRow]:
        where, values = (SQL(""), []) if wanted is None else _listing_where(wanted)
        query = SQL("{}{} ORDER BY created_at, session_id").format(self._select_sessions, where)
        try:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(query, values)
                return [SessionRow(**row) for row in curs.fetchall()]
        except Exception as exc:  # as eventsourcing translated it, or psycopg's own
            if "json" not in str(exc).lower() and "unicode escape" not in str(exc).lower():
                raise
            raise CorruptStore(f"a listing row's summary is not the JSON the engine writes ({exc})") from None


def _then(what: str) -> str:
    """How the old rows an erasure or a deletion left are removed later."""
    if what == "erasure":
        return "call again to remove them"
    return "the next erase or delete removes them (as VACUUM of the store's tables does)"


def _unplaced(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the events table refusing an event no position."""
    return isinstance(exc, psycopg.errors.NotNullViolation) and exc.diag.column_name == "position"


def _feed_horizon(next_id: int, running: list[int], base: int = POSITION_BASE) -> int:
    """The first feed position a reader must not pass yet: that of the
    oldest transaction of ``running`` (the 32-bit ids of those that may be
    writing events), or of ``next_id`` (the 64-bit id the reading
    statement's snapshot had not assigned yet) if it is older, from the
    store's ``base``. A running transaction's id is within 2**31 of
    ``next_id``, above or below it: that gives its epoch."""
    oldest = next_id
    for xid in running:
        ahead = (xid - next_id) % 2**32
        full = next_id + (ahead - 2**32 if ahead >= 2**31 else ahead)  # the 64-bit id: epoch and all
        oldest = min(oldest, full)
    return base + oldest * _PER_TRANSACTION


def _rendered(query: Composable) -> bytes:
    """A statement as the bytes psycopg sends: composed once, here, instead
    of on every call (which cost more CPU than the rest of an append)."""
    return query.as_bytes(None)


def _columns(session_id: str, written: int, records: Sequence[Record]) -> tuple[Any, ...]:
    """The parameters of the positioned insert: the session, how many events
    the transaction inserted before, and the records as arrays."""
    return (
        session_id,
        written,
        [record.version for record in records],
        [record.topic for record in records],
        [record.state for record in records],
    )


def _listing_where(wanted: ListingFilter) -> tuple[SQL, list[Any]]:
    """A WHERE clause letting through the rows whose summary may match
    ``wanted`` (the backend tests each exactly), and every row without one.
    jsonb containment: tags all present, metadata items contained."""
    clauses: list[str] = []
    values: list[Any] = []
    for name in ("status", "owner", "parent"):
        value = getattr(wanted, name)
        if value is not None:
            clauses.append(f"(summary::jsonb ->> '{name}') = %s")
            values.append(value)
    if wanted.pinned is not None:
        clauses.append("(summary::jsonb -> 'pinned') = %s::jsonb")
        values.append("true" if wanted.pinned else "false")
    if wanted.tags:
        clauses.append("(summary::jsonb -> 'tags') @> %s::jsonb")
        values.append(json.dumps(list(wanted.tags)))
    if wanted.metadata:
        items = json.dumps(dict(wanted.metadata))
        if "\\u0000" not in items:  # jsonb holds no NUL: such values are tested exactly afterwards only
            clauses.append("(summary::jsonb -> 'metadata') @> %s::jsonb")
            values.append(items)
    if not clauses:
        return SQL(""), []
    return SQL(" WHERE summary IS NULL OR (" + " AND ".join(clauses) + ")"), values


def _transaction_id(cursor: Any) -> int:
    """The current transaction's id as PostgreSQL's 32-bit ``xid``."""
    cursor.execute("SELECT txid_current() % 4294967296 AS xid")
    found = cursor.fetchone()
    assert found is not None
    return int(found["xid"])


def open_postgres(
    dsn: str,
    *,
    prefix: str,
    connect_timeout: float = 5.0,
    pool_size: int = 2,
    lock_timeout: float = 10.0,
    seal_key: bytes | None = None,
    seal_legacy: bool = False,
    create: bool = True,
) -> RecorderBackend:
    if "\x00" in dsn:  # libpq would read the string only up to it
        raise InvalidArgument("a PostgreSQL connection string cannot hold NUL characters (\\x00)")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidArgument(f"not a PostgreSQL connection string: {exc}") from None
    where = "postgresql://{}@{}:{}/{}".format(
        params.get("user") or getpass.getuser(),
        params.get("host") or "localhost",
        params.get("port") or 5432,
        params.get("dbname") or "",
    )
    with translated_errors("open", where, opening=True):
        # One connection first, with libpq's own timeout: its error says what
        # is wrong (no such database, refused, a password), where the pool
        # would only time out, and leave threads trying to connect behind.
        # A connect_timeout of the string's own is kept (libpq takes whole
        # seconds, at least 2).
        if "connect_timeout" not in params:
            dsn = make_conninfo(dsn, connect_timeout=max(2, math.ceil(connect_timeout)))
        with psycopg.connect(dsn) as probe:
            # Named from the connection made: the environment (PGDATABASE,
            # PGUSER, a service file) fills what the string leaves out.
            info = probe.info
            dbname, host, port, user = info.dbname, info.host, info.port, info.user
            # The network settings the string, the environment or a service
            # file leave out: theirs are kept (the connection lists only those
            # not at libpq's default; the string may also set a default).
            own = params.keys() | info.get_parameters().keys()
        dsn = make_conninfo(dsn, **{name: value for name, value in NETWORK_SETTINGS.items() if name not in own})
        where = f"postgresql://{user}@{host}:{port}/{dbname}"
        datastore = _Datastore(
            timeouts=_timeouts(lock_timeout),
            dbname=dbname,  # for eventsourcing's own use; the pool connects with the string (below)
            host=host,
            port=str(port),
            user=user,
            password="",
            connect_timeout=connect_timeout,
            # Not given: eventsourcing would then wait for a full pool on every
            # use, and with connections out in other threads that wait fails
            # (psycopg_pool asserts) or, after the timeout, closes the pool.
            # The pool is opened, and waited for, once here instead.
            pool_open_timeout=None,
            pool_size=pool_size,
            max_overflow=8,
            schema=str(params.get("options_schema") or ""),
            originator_id_type="text",
        )
        # The pool connects with the whole string, as the probe did (it was
        # given only the fields above: options, sslmode, application_name and
        # the environment's settings were lost, and a string without a
        # database made the tables in another one), libpq's timeout and
        # the network settings.
        datastore.pool.conninfo = dsn
        datastore.pool.kwargs = {"row_factory": dict_row}
        # A connection that failed is tried again with a doubling delay until
        # this long has passed, then given up, and the next call asks for a
        # new one at once: with psycopg_pool's 5 minutes, a store whose server
        # was gone for a minute or two stayed unusable for up to as long again
        # after it came back, while the delay ran.
        datastore.pool.reconnect_timeout = RECONNECT_TIMEOUT
        try:
            datastore.pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            datastore.close()
            raise OperationalError(str(exc)) from exc
    try:
        with translated_errors("open", where, opening=True):
            recorder = PostgresRecorder(
                datastore, prefix, lock_timeout=lock_timeout, seal_key=seal_key, seal_legacy=seal_legacy
            )
            if not create and not recorder.has_tables():
                raise StorageUnavailable(
                    f"there is no transcript store at {described(where, prefix)}: the database has no "
                    f"{prefix}_sessions table (another database, or another table prefix?)"
                )
            recorder.create_table()
    except BaseException:
        datastore.close()
        raise

    def close() -> None:
        recorder.close_writer()
        datastore.close()

    return RecorderBackend(recorder, described(where, prefix), on_close=close, seal_key=seal_key)


def _holdable(session_id: str) -> bool:
    """Whether a text column can hold the id: PostgreSQL text cannot hold
    NUL, so no session has such an id (reads say so, as on SQLite, instead
    of failing with a driver error)."""
    return "\x00" not in session_id
