"""PostgreSQL: writers of different sessions do not wait on one another,
and the store-wide feed never skips an event a slower transaction commits
later. Needs ``ENGINE_TEST_POSTGRES_DSN`` (CI sets it)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import EngineError, Message, SessionNotFound, Transcripts
from tests.conftest import POSTGRES_DSN

KINDS = ["postgres"] if POSTGRES_DSN else []


def _open(prefix: str, **options: object) -> Transcripts:
    assert POSTGRES_DSN
    return Transcripts.open(POSTGRES_DSN, table_prefix=prefix, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stuck_writer_holds_back_no_other_session_and_the_feed_skips_nothing(kind: str, prefix: str) -> None:
    import psycopg

    store = _open(prefix, lock_timeout=1)
    stuck, other = store.create(title="stuck"), store.create(title="other")
    seen = store.feed(after=0, limit=1000)
    before = seen[-1].position
    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN) as blocker:
        # A transaction that holds the stuck session's listing row, as a
        # writer sending a large event would, and is still running. Like
        # every write of the engine, it locked the events table before its
        # transaction had an id.
        blocker.execute(f'LOCK TABLE "{prefix}_events" IN ROW EXCLUSIVE MODE')
        blocker.execute(f'UPDATE "{prefix}_sessions" SET title = title WHERE session_id = %s', (stuck,))
        late = _open(prefix, lock_timeout=1)  # opening a store takes no lock a running writer holds
        with pytest.raises(EngineError):
            late.append(stuck, Message.user("waits, then gives up"))
        for number in range(30):  # each would fail after lock_timeout if it waited
            store.append(other, Message.user(f"m{number}"))
        # Committed meanwhile, but behind a transaction still running: not
        # shown yet, so no reader passes a position that one could still take.
        assert store.feed(after=before, limit=1000) == []
    shown = store.feed(after=before, limit=1000)
    assert [(entry.session_id, entry.version) for entry in shown] == [(other, version) for version in range(2, 32)]
    assert [entry.position for entry in shown] == sorted(entry.position for entry in shown)
    store.close()


def test_the_feed_horizon_is_the_oldest_writer_or_the_next_id_across_epochs() -> None:
    from engine.store._postgres import POSITION_BASE, _feed_horizon

    span = 2**20

    def at(xid: int) -> int:
        return POSITION_BASE + xid * span

    assert _feed_horizon(1000, []) == at(1000)
    assert _feed_horizon(1000, [990, 995]) == at(990)
    assert _feed_horizon(1000, [1003]) == at(1000)  # took its id after the snapshot was taken: not older
    epoch = 2**32
    # Next id 5 of epoch 1; a writer running since id 2**32 - 3 of epoch 0 (2**32 - 3 in 32 bits).
    assert _feed_horizon(epoch + 5, [epoch - 3]) == at(epoch - 3)
    # Next id 2**32 - 2 of epoch 0; a writer that took id 1 of epoch 1 meanwhile (1 in 32 bits).
    assert _feed_horizon(epoch - 2, [1]) == at(epoch - 2)


@pytest.mark.parametrize("kind", KINDS)
def test_transactions_that_cannot_be_writing_events_hold_the_feed_back_in_no_database(kind: str, prefix: str) -> None:
    # The feed used to show nothing new while any transaction with an id
    # was running anywhere on the server: an idle session in another
    # database, or another application's in this one, stalled every reader.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    store = _open(prefix)
    sid = store.create()
    before = store.feed(after=0, limit=1000)[-1].position
    assert POSTGRES_DSN
    elsewhere = make_conninfo(POSTGRES_DSN, dbname="postgres")
    assert conninfo_to_dict(POSTGRES_DSN).get("dbname") != "postgres"
    with psycopg.connect(elsewhere) as other_database, psycopg.connect(POSTGRES_DSN) as same_database:
        other_database.execute("SELECT pg_current_xact_id()")  # an id, and idle in its transaction
        same_database.execute("CREATE TEMP TABLE unrelated (n int)")
        same_database.execute("INSERT INTO unrelated VALUES (1)")  # writes here, not to the store
        store.append(sid, Message.user("shown at once"))
        shown = store.feed(after=before, limit=1000)
        assert [(entry.session_id, entry.version) for entry in shown] == [(sid, 2)]
        # Nor does one whose connection read the table in a serializable
        # transaction that has ended: its read lock outlives it while another
        # serializable transaction runs (found by an adversarial run).
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as reader, psycopg.connect(elsewhere) as overlapping:
            overlapping.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            overlapping.execute("SELECT 1")
            reader.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            reader.execute(f'SELECT count(*) FROM "{prefix}_events"')
            reader.execute("COMMIT")
            reader.execute("BEGIN")
            reader.execute("CREATE TEMP TABLE later (n int)")  # then an id, for something else
            store.append(sid, Message.user("shown too"))
            more = store.feed(after=shown[-1].position, limit=1000)
            assert [(entry.session_id, entry.version) for entry in more] == [(sid, 3)]
            shown = more
        # One that has locked the events table, as every write of the engine
        # does before its transaction has an id, holds back what comes after it.
        same_database.execute(f'LOCK TABLE "{prefix}_events" IN ROW EXCLUSIVE MODE')
        store.append(sid, Message.user("held back"))
        assert store.feed(after=shown[-1].position, limit=1000) == []
    assert [entry.version for entry in store.feed(after=shown[-1].position, limit=1000)] == [4]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isolation", ["", "serializable"])
def test_a_reader_tailing_the_feed_sees_every_event_of_concurrent_writers_once(
    kind: str, isolation: str, prefix: str
) -> None:
    # The feed reads with two statements, each needing a snapshot of its
    # own: also when the server's default isolation would share one.
    setup = _open(prefix)
    sessions = [setup.create() for _ in range(4)]
    done = threading.Event()
    errors: list[BaseException] = []

    def write(session_id: str) -> None:
        store = _open(prefix)
        try:
            for number in range(40):
                store.append(session_id, Message.user(f"{session_id[:4]} {number}"))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            store.close()

    writers = [threading.Thread(target=write, args=(sid,)) for sid in sessions]
    for writer in writers:
        writer.start()
    reader, position, seen = _open(prefix), 0, []

    def drained() -> None:
        for writer in writers:
            writer.join()
        done.set()

    threading.Thread(target=drained).start()
    if isolation:
        assert POSTGRES_DSN
        joined = "&" if "?" in POSTGRES_DSN else "?"
        option = f"options=-c%20default_transaction_isolation%3D{isolation}"
        reader.close()
        reader = Transcripts.open(POSTGRES_DSN + joined + option, table_prefix=prefix)
        with reader._repository.backend._recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            shown = conn.execute("SHOW default_transaction_isolation").fetchone()
        assert shown["default_transaction_isolation"] == isolation
    while True:
        finished = done.is_set()
        page = reader.feed(after=position, limit=50)
        seen += [(entry.session_id, entry.version) for entry in page]
        position = page[-1].position if page else position
        if finished and not page:
            break
    assert errors == []
    assert sorted(seen) == sorted((sid, version) for sid in sessions for version in range(1, 42))
    assert len(seen) == len(set(seen))  # each once
    for sid in sessions:  # in each session's own order
        assert [version for session_id, version in seen if session_id == sid] == list(range(1, 42))
    reader.close()
    setup.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_fork_racing_the_deletion_of_its_source_never_leaves_an_orphan(kind: str, prefix: str) -> None:
    # Found by an adversarial run: the fork read its source's row, the
    # deletion (already holding the events table) removed the source, then
    # the fork committed: both calls succeeded and the fork could never be
    # read. An outside transaction holding the source's row parks the
    # deletion inside its transaction, so the order is forced.
    import psycopg

    forking, deleting = _open(prefix), _open(prefix)
    source = forking.create(title="source")
    forking.append(source, Message.user("hi"))
    deleting.get(source)
    outcomes: dict[str, object] = {}

    def attempt(name: str, call: object) -> None:
        try:
            outcomes[name] = call()  # type: ignore[operator]
        except EngineError as exc:
            outcomes[name] = exc

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN) as blocker:
        blocker.execute(f'SELECT 1 FROM "{prefix}_sessions" WHERE session_id = %s FOR UPDATE', (source,))
        delete = threading.Thread(target=attempt, args=("delete", lambda: deleting.delete(source)))
        delete.start()
        _wait_for_lock_waiters(prefix, 1)  # the deletion holds the events table, waiting for the row
        fork = threading.Thread(target=attempt, args=("fork", lambda: forking.fork(source)))
        fork.start()
        _wait_for_lock_waiters(prefix, 2)  # the fork waits behind the deletion
        blocker.rollback()
    delete.join(timeout=30)
    fork.join(timeout=30)
    assert outcomes["delete"] == [source]
    assert isinstance(outcomes["fork"], SessionNotFound)
    assert _open(prefix).sessions() == []


def _wait_for_lock_waiters(prefix: str, count: int) -> None:
    """Until ``count`` statements on this store's tables wait for a lock."""
    import time

    import psycopg

    assert POSTGRES_DSN
    deadline = time.monotonic() + 10
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            (waiting,) = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                (f"%{prefix}%",),
            ).fetchone()
            if waiting >= count:
                return
            time.sleep(0.01)
    raise AssertionError(f"{count} writers never waited for a lock")


@pytest.mark.parametrize("kind", KINDS)
def test_opening_without_creating_leaves_another_applications_table_of_the_same_name_alone(
    kind: str, prefix: str
) -> None:
    # Found by an adversarial run: a listing table of the store's name but
    # other columns was taken for a store, and the events tables were made.
    import psycopg

    from engine import StorageUnavailable

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{prefix}_sessions" (id int, name text)')
    with pytest.raises(StorageUnavailable, match="no transcript store"):
        _open(prefix, create=False)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (prefix + "%",)).fetchall()
    assert tables == [(f"{prefix}_sessions",)]


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_whose_connections_the_server_dropped_is_stored_once_and_the_next_one_too(
    kind: str, prefix: str
) -> None:
    # It raised StorageUnavailable (WriteOutcomeUnknown), although nothing
    # had reached the server: the store now asks on a new connection.
    store = _open(prefix)
    sid = store.create()
    store.append(sid, Message.user("before"))  # the appends' connection is now open
    _drop_every_connection()  # the pool's and the appends' (within the idle check's five seconds)
    store.append(sid, Message.user("during"))
    store.append(sid, Message.user("after"))
    texts = [m.text for m in _open(prefix).get(sid).messages]
    assert texts == ["before", "during", "after"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_reads_on_connections_the_server_dropped_are_made_again(kind: str, prefix: str) -> None:
    # Found by an adversarial pass: after a restart, a failover or an
    # idle-session timeout, the first read of every process (and a fork,
    # which reads first) failed with StorageUnavailable; a read changes
    # nothing, so it is made again on a connection the pool has checked.
    store, sid = _one_message(prefix)
    reader = _open(prefix)
    calls: dict[str, Callable[[], object]] = {
        "history": lambda: reader.history(sid),
        "sessions": lambda: reader.sessions(),
        "feed": lambda: reader.feed(),
        "get": lambda: _open(prefix).get(sid),
        "fork": lambda: reader.fork(sid),
    }
    for name, call in calls.items():
        _drop_every_connection()
        try:
            call()
        except EngineError as exc:
            pytest.fail(f"{name} failed after the server dropped the connections: {exc!r}")
    assert [m.text for m in reader.get(reader.forks(sid)[0]).messages] == ["a"]
    store.close()
    reader.close()


def _holding_row_lock(prefix: str, session_id: str) -> Any:
    """Another connection holding the session's listing row in an open
    transaction, as a writer still sending a large event would."""
    import psycopg

    assert POSTGRES_DSN
    holder = psycopg.connect(POSTGRES_DSN)
    holder.execute(f'UPDATE "{prefix}_sessions" SET title = title WHERE session_id = %s', (session_id,))
    return holder


def _one_message(prefix: str, **options: object) -> tuple[Transcripts, str]:
    """A store and a session of one message "a" in it."""
    store = _open(prefix, **options)
    sid = store.create()
    store.append(sid, Message.user("a"))
    return store, sid


def _refused_soon(call: Any) -> None:
    """``call`` raises StorageUnavailable about when the lock timeout ends:
    well before the 60-second statement timeout (and never hangs)."""
    from engine import StorageUnavailable

    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        call()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("kind", KINDS)
def test_erase_and_delete_wait_no_longer_than_lock_timeout(kind: str, prefix: str) -> None:
    # Found by an adversarial run: they waited for the 60-second statement
    # timeout, holding the events table meanwhile (every other session's
    # appends failed), because eventsourcing's table-lock statements set the
    # transaction's lock timeout to none.

    store = _open(prefix, lock_timeout=1)
    held, other = store.create(title="held"), store.create(title="other")
    store.append(held, Message.user("secret"), Message.assistant("ok"))
    secret = store.get(held).messages[0].id
    assert secret is not None
    holder = _holding_row_lock(prefix, held)
    try:
        for attempt in (lambda: store.erase(held, secret), lambda: store.delete(held)):
            _refused_soon(attempt)
            store.append(other, Message.user("not held back"))  # the events table is free again
    finally:
        holder.close()
    store.erase(held, secret)  # and both work once the row is free
    store.delete(held)
    assert [m.text for m in store.get(other).messages] == ["not held back", "not held back"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_reads_wait_no_longer_than_lock_timeout(kind: str, prefix: str) -> None:
    # Found by an adversarial run: reads carried no lock timeout, so a read
    # behind another application's ALTER TABLE (or VACUUM FULL) waited as
    # long as that took, and held the store's lock meanwhile.
    import psycopg

    setup = _open(prefix)
    sid = setup.create()
    setup.append(sid, Message.user("a"))
    setup.close()
    store = _open(prefix, lock_timeout=1)
    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN) as blocker:
        blocker.execute(f'LOCK TABLE "{prefix}_sessions" IN ACCESS EXCLUSIVE MODE')
        for read in (lambda: store.get(sid), store.sessions, lambda: store.verify(sid)):
            _refused_soon(read)
        blocker.rollback()
    assert [m.text for m in store.get(sid).messages] == ["a"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_lock_timeout_under_a_millisecond_is_still_a_limit(kind: str, prefix: str) -> None:
    # PostgreSQL reads a lock_timeout of 0 as none: 0.5 ms was sent as '0ms'.
    store, sid = _one_message(prefix, lock_timeout=0.0005)
    holder = _holding_row_lock(prefix, sid)
    try:
        _refused_soon(lambda: store.append(sid, Message.user("waits a millisecond at most")))
    finally:
        holder.close()
    store.close()


def _drop_every_connection() -> None:
    """As a server restart does: every client connection to the database
    but this one is terminated."""
    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )


@pytest.mark.parametrize("kind", KINDS)
def test_after_an_idle_while_an_append_checks_its_connection_first(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server restart or idle_session_timeout while the store was idle
    # failed the next append; now the connection is checked after idling.
    from engine.store import _postgres

    store = _open(prefix)
    sid = store.create()
    store.append(sid, Message.user("before"))
    monkeypatch.setattr(_postgres, "WRITER_IDLE_CHECK", 0.0)  # every append counts as after a while
    _drop_every_connection()
    store.append(sid, Message.user("after"))  # no error: a connection that answers was taken
    assert [m.text for m in store.get(sid).messages] == ["before", "after"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("snapshot_interval", [None, 3], ids=["one statement", "with a snapshot"])
def test_an_append_whose_server_process_is_ended_mid_way_is_stored_once_after_all(
    kind: str, prefix: str, snapshot_interval: int | None
) -> None:
    # Its server process ended while it waited for the row, so it was never
    # stored and never will be: the store tells so on another connection and
    # writes it there, once the row is free. It said "whether it was stored
    # is unknown", and the caller had to read the session to find out.
    import psycopg

    store, sid = _one_message(prefix, lock_timeout=30, snapshot_interval=snapshot_interval)
    holder = _holding_row_lock(prefix, sid)  # the next append waits on the row...
    assert POSTGRES_DSN
    killed = []

    def kill_the_waiting_append_then_free_the_row() -> None:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
            for _ in range(200):
                killed.extend(
                    admin.execute(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    ).fetchall()
                )
                if killed:
                    break
                time.sleep(0.05)
        holder.rollback()

    killer = threading.Thread(target=kill_the_waiting_append_then_free_the_row)
    killer.start()
    try:
        store.append(sid, Message.user("b"))  # ...and its connection is dropped while it waits
    finally:
        killer.join(timeout=30)
        holder.close()
    assert killed == [(True,)]
    store.append(sid, Message.user("c"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b", "c"]
    store.close()


def _end_the_appends_connection(store: Transcripts) -> None:
    """The server ends the connection the store keeps for appends (as a
    restart, a failover or an idle-session timeout would), unknown to it."""
    import psycopg

    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    assert POSTGRES_DSN and recorder._writer is not None
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (recorder._writer_pid,)).fetchone()
    assert ended == (True,)


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_on_a_connection_the_server_ended_before_it_is_stored(kind: str, prefix: str) -> None:
    # Found by an adversarial pass: it raised WriteOutcomeUnknown although
    # nothing had reached the server.
    store, sid = _one_message(prefix)
    _end_the_appends_connection(store)
    store.append(sid, Message.user("b"))
    store.append(sid, Message.user("c"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b", "c"]
    store.close()


def _connection_lost(curs: Any) -> None:
    """The connection of ``curs`` lost, as the driver finds it when a reply
    never comes."""
    import psycopg

    curs.connection.pgconn.finish()
    raise psycopg.OperationalError("server closed the connection unexpectedly")


def _after_each_append_commits(
    monkeypatch: pytest.MonkeyPatch, store: Transcripts, then: Callable[[Any], None]
) -> None:
    """``then(cursor)`` after each of ``store``'s appends has run its one
    statement, which commits by itself (undone by ``monkeypatch.undo()``)."""
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    execute = recorder._execute_append

    def committed_then(curs: Any, *args: Any) -> None:
        execute(curs, *args)
        then(curs)

    monkeypatch.setattr(recorder, "_execute_append", committed_then)


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_stored_before_its_reply_was_lost_returns_and_is_stored_once(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, sid = _one_message(prefix)
    _after_each_append_commits(monkeypatch, store, _connection_lost)  # the reply never comes
    store.append(sid, Message.user("b"))
    monkeypatch.undo()
    store.append(sid, Message.user("c"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b", "c"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_erased_before_its_lost_reply_is_told_is_stored_once(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: an erasure of the new message (by a
    # process following the feed) changed its stored bytes before the store
    # asked, so it took the append for never stored, wrote it again, and the
    # erased text was back.
    store, sid = _one_message(prefix)
    scrubber = _open(prefix)

    def erased_then_lost(curs: Any) -> None:
        scrubber.erase(sid, scrubber.get(sid).messages[-1].id)
        _connection_lost(curs)

    _after_each_append_commits(monkeypatch, store, erased_then_lost)
    store.append(sid, Message.user("SECRET-4111"))
    monkeypatch.undo()
    messages = _open(prefix).verify(sid).messages
    assert [m.text for m in messages] == ["a", ""] and messages[1].erased is not None
    store.close()
    scrubber.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_write_another_went_first_of_while_its_connection_was_lost_gets_the_usual_refusal(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: the write made again on the store's own
    # connection raised the driver's unique violation as a StorageError.
    from engine import SessionExists

    store = _open(prefix, snapshot_interval=3)
    other = _open(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    insert_in = recorder._insert_in
    first_call = []

    def another_writer_first_then_lost(curs: Any, session_id: str, *args: Any) -> None:
        if not first_call:
            first_call.append(session_id)
            if session_id == "taken":
                other.create(session_id="taken", title="theirs")
            else:
                other.append(session_id, Message.user("theirs"))  # takes the version of the snapshot's write
            _connection_lost(curs)
        insert_in(curs, session_id, *args)

    monkeypatch.setattr(recorder, "_insert_in", another_writer_first_then_lost)
    with pytest.raises(SessionExists):
        store.create(session_id="taken", title="mine")
    assert _open(prefix).get("taken").title == "theirs"
    monkeypatch.undo()
    sid = store.create()
    store.append(sid, Message.user("a"))  # version 2: the snapshot comes at 3
    first_call.clear()
    monkeypatch.setattr(recorder, "_insert_in", another_writer_first_then_lost)
    store.append(sid, Message.user("mine"))  # refused as a conflict, decided again on their append
    monkeypatch.undo()
    assert [m.text for m in _open(prefix).verify(sid).messages] == ["a", "theirs", "mine"]
    store.close()
    other.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_create_of_an_id_taken_meanwhile_with_an_identical_first_event_is_refused(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: with a frozen clock (as tests have) the
    # other writer's first event had the very bytes of this one's, and the
    # create was taken for stored, header and all, though its second event
    # (the header) was the other's.
    from datetime import UTC, datetime

    import engine.facade.transcripts
    from engine import SessionExists

    frozen = datetime(2026, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(engine.facade.transcripts, "clock", lambda: frozen)
    store, other = _open(prefix), _open(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    insert_in = recorder._insert_in

    def bob_first_then_lost(curs: Any, *args: Any) -> None:
        other.create(session_id="shared", title="t", owner="bob")
        _connection_lost(curs)

    monkeypatch.setattr(recorder, "_insert_in", bob_first_then_lost)
    with pytest.raises(SessionExists):
        store.create(session_id="shared", title="t", owner="alice")
    monkeypatch.setattr(recorder, "_insert_in", insert_in)
    assert _open(prefix).get("shared").header.owner == "bob"
    store.close()
    other.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_whose_outcome_cannot_be_read_says_it_is_unknown(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: a failure of the store's own question
    # (there, a cancelled statement) was raised as a plain StorageUnavailable.
    from engine import WriteOutcomeUnknown

    store, sid = _one_message(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    _after_each_append_commits(monkeypatch, store, _connection_lost)
    monkeypatch.setattr(recorder, "_select_written", b"SELECT no_such_column")  # the question fails
    with pytest.raises(WriteOutcomeUnknown):
        store.append(sid, Message.user("b"))
    monkeypatch.undo()
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b"]  # it was stored: "unknown" was right
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_interrupted_while_its_statement_is_under_way_says_its_outcome_is_unknown(
    kind: str, prefix: str
) -> None:
    # Found by an adversarial pass: an exception raised by a signal handler
    # (a request deadline) while the append waited for a row went up as it
    # was, and the statement, still running on the server, committed when
    # the row was free. It is now cancelled, and the outcome said unknown.
    import signal

    from engine import WriteOutcomeUnknown

    store, sid = _one_message(prefix, lock_timeout=30)
    holder = _holding_row_lock(prefix, sid)

    def deadline(signum: int, frame: Any) -> None:
        raise TimeoutError("the request's deadline passed")

    previous = signal.signal(signal.SIGALRM, deadline)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(WriteOutcomeUnknown) as raised:
            store.append(sid, Message.user("b"))
        assert isinstance(raised.value.__cause__, TimeoutError)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        holder.rollback()
        holder.close()
    time.sleep(0.5)  # a statement left running would commit now
    store.append(sid, Message.user("c"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "c"]  # it was cancelled
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_interrupted_after_it_committed_does_not_pass_for_a_failure(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: Ctrl-C (which psycopg handles itself:
    # it cancels, waits for the reply, then raises) or a signal handler's
    # exception landing after the statement committed went up as it was,
    # and a caller retrying stored the message twice.
    from engine import WriteOutcomeUnknown

    store, sid = _one_message(prefix)
    interruption: list[BaseException] = []

    def interrupted(curs: Any) -> None:
        raise interruption[0]

    _after_each_append_commits(monkeypatch, store, interrupted)
    interruption.append(TimeoutError("the request's deadline passed"))
    with pytest.raises(WriteOutcomeUnknown) as unknown:
        store.append(sid, Message.user("b"))
    assert isinstance(unknown.value.__cause__, TimeoutError)
    interruption[0] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as stopped:  # still what it is: a program stopping
        store.append(sid, Message.user("c"))
    assert "may have been stored" in "".join(getattr(stopped.value, "__notes__", []))
    monkeypatch.undo()
    store.append(sid, Message.user("d"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b", "c", "d"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_create_deleted_before_its_lost_reply_is_told_is_not_made_again(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: a new session's write has no head to
    # extend; stored, then deleted by another client before the store asked,
    # it was taken for never stored and made again: the deletion undone.
    from engine import WriteOutcomeUnknown

    store, other = _open(prefix), _open(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    insert_in, calls = recorder._insert_in, []

    def committed_deleted_then_lost(curs: Any, session_id: str, *args: Any) -> None:
        insert_in(curs, session_id, *args)
        if not calls:  # the first time only: a write made again runs as it would
            calls.append(session_id)
            curs.execute("COMMIT")  # as the server does before a reply is lost
            other.delete(session_id)
            _connection_lost(curs)

    monkeypatch.setattr(recorder, "_insert_in", committed_deleted_then_lost)
    with pytest.raises(WriteOutcomeUnknown):
        store.create(session_id="gone", title="SECRET")
    monkeypatch.undo()
    assert [info.id for info in _open(prefix).sessions()] == []  # still deleted
    store.close()
    other.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_interrupted_while_its_connection_is_taken_leaves_no_cursor_of_another(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: an interruption between keeping the
    # appends' new connection and making its cursor left the cursor of the
    # previous one, given back to the pool: a later append ran in another
    # caller's transaction, and was lost when that one rolled back.
    store, sid = _one_message(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    old_cursor = recorder._writer_cursor
    recorder._writer_used = 0.0  # idle long enough: the next append takes a checked connection
    checked = recorder._checked_connection

    def interrupted_at_its_cursor() -> Any:
        conn = checked()
        cursor = conn.cursor

        def interrupted() -> Any:
            conn.cursor = cursor  # once
            raise KeyboardInterrupt

        conn.cursor = interrupted
        return conn

    monkeypatch.setattr(recorder, "_checked_connection", interrupted_at_its_cursor)
    with pytest.raises(KeyboardInterrupt):
        store.append(sid, Message.user("interrupted"))
    monkeypatch.undo()
    assert recorder._writer_cursor is not old_cursor or recorder._writer is None
    store.append(sid, Message.user("b"))
    assert recorder._writer_cursor is not old_cursor
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "b"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_whose_server_process_stays_says_its_outcome_is_unknown(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process whose client is gone from the network may still commit: the
    # store cannot tell, and says so (after waiting SETTLE_WAIT for it to end).
    from engine import WriteOutcomeUnknown
    from engine.store._postgres import SETTLE_WAIT

    store, sid = _one_message(prefix)
    recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
    _end_the_appends_connection(store)
    monkeypatch.setattr(recorder, "_backend_alive", b"SELECT 1 WHERE %s IS NOT NULL")  # as if still there
    started = time.monotonic()
    with pytest.raises(WriteOutcomeUnknown, match="whether it was stored is unknown"):
        store.append(sid, Message.user("b"))
    assert SETTLE_WAIT <= time.monotonic() - started < SETTLE_WAIT + 10
    monkeypatch.undo()
    store.append(sid, Message.user("c"))
    assert [m.text for m in _open(prefix).get(sid).messages] == ["a", "c"]  # its request never reached the server
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_opening_a_database_that_does_not_exist_says_so(kind: str) -> None:
    # The pool's wait only said "pool initialization incomplete after 5.0 sec".
    from psycopg.conninfo import conninfo_to_dict

    from engine import StorageUnavailable

    assert POSTGRES_DSN
    missing = dict(conninfo_to_dict(POSTGRES_DSN), dbname="no_such_database_" + uuid.uuid4().hex[:8])
    target = "postgresql://{user}@{host}:{port}/{dbname}".format(
        user=missing.get("user", "postgres"),
        host=missing.get("host", "127.0.0.1"),
        port=missing.get("port", 5432),
        dbname=missing["dbname"],
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="does not exist"):
        Transcripts.open(target)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", KINDS)
def test_opening_a_new_store_waits_no_longer_than_lock_timeout(kind: str, prefix: str) -> None:
    # Found by a second adversarial run: schema creation ran on a connection
    # of its own without the timeouts, and waited without end on the
    # advisory lock that serialises it (or on a reader of an old table).
    import zlib

    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as other_opener:
        other_opener.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(b"transcript-engine:create-tables"),))
        _refused_soon(lambda: _open(prefix, lock_timeout=1))
    _open(prefix, lock_timeout=1).close()  # and opens once the lock is free


@pytest.mark.parametrize("kind", KINDS)
def test_an_erasure_says_it_is_committed_when_only_its_vacuum_could_not_run(kind: str, prefix: str) -> None:
    # VACUUM waiting on another VACUUM (or ANALYZE) timed out and the erasure
    # read as failed, though it had committed.
    import psycopg

    from engine import StorageUnavailable

    store, sid = _one_message(prefix, lock_timeout=1)
    [message] = store.get(sid).messages
    assert POSTGRES_DSN and message.id is not None
    with psycopg.connect(POSTGRES_DSN) as vacuuming:
        vacuuming.execute(f'LOCK TABLE "{prefix}_snapshots" IN SHARE UPDATE EXCLUSIVE MODE')
        with pytest.raises(StorageUnavailable, match="the erasure is committed"):
            store.erase(sid, message.id)
    assert _open(prefix).get(sid).messages[0].erased is not None
    # A deletion says so too, and not to call it again (the session is gone).
    with psycopg.connect(POSTGRES_DSN) as vacuuming:
        vacuuming.execute(f'LOCK TABLE "{prefix}_snapshots" IN SHARE UPDATE EXCLUSIVE MODE')
        with pytest.raises(StorageUnavailable, match=r"the deletion is committed.*the next erase or delete removes"):
            store.delete(sid)
    with pytest.raises(SessionNotFound):
        _open(prefix).get(sid)
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_transaction_in_another_database_does_not_hold_back_an_erasure(kind: str, prefix: str) -> None:
    # VACUUM of this database's tables keeps no row for another database's
    # transactions; the wait for them made every erasure fail on a shared server.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    store, sid = _one_message(prefix, lock_timeout=1)
    [message] = store.get(sid).messages
    assert POSTGRES_DSN and message.id is not None
    elsewhere = make_conninfo(POSTGRES_DSN, dbname="postgres")
    assert conninfo_to_dict(POSTGRES_DSN).get("dbname") != "postgres"
    with psycopg.connect(elsewhere) as other:
        other.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        other.execute("SELECT 1")  # a snapshot held open in the other database
        store.erase(sid, message.id)
    assert store.get(sid).messages[0].erased is not None
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_pool_connects_with_the_whole_connection_string_and_its_environment(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool was given only database, host, port, user and password:
    # application_name and other options were lost, and a string without a
    # database made the tables in the user's database, not PGDATABASE's.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    assert POSTGRES_DSN
    params = conninfo_to_dict(POSTGRES_DSN)
    monkeypatch.setenv("PGDATABASE", str(params["dbname"]))
    without_database = "postgresql://{}@{}:{}?application_name={}".format(
        params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432), prefix
    )
    store = Transcripts.open(without_database, table_prefix=prefix)
    sid = store.create()
    store.get(sid)
    assert f"/{params['dbname']}" in repr(store)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        found = admin.execute("SELECT to_regclass(%s)", (f"{prefix}_sessions",)).fetchone()
        assert found is not None and found[0] is not None  # in PGDATABASE's database
        named = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (prefix,))
        assert named.fetchone()[0] >= 1  # type: ignore[index]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_after_the_server_dropped_every_connection_reads_fail_once_at_most(kind: str, prefix: str) -> None:
    # Each idle pooled connection failed a call of its own, one after another.
    from engine import StorageUnavailable

    store, sid = _one_message(prefix)
    threads = [threading.Thread(target=lambda: [store.sessions() for _ in range(20)]) for _ in range(4)]
    for thread in threads:  # the pool grows past its resting size
        thread.start()
    for thread in threads:
        thread.join()
    _drop_every_connection()
    failures = 0
    for _ in range(6):
        try:
            store.sessions()
        except StorageUnavailable:
            failures += 1
    assert failures <= 1
    assert [m.text for m in store.get(sid).messages] == ["a"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_threads_sharing_a_store_keep_writing_other_sessions_while_one_is_stuck(kind: str, prefix: str) -> None:
    # A web server's threads share one store: one session's append stuck
    # behind a row lock (another client's long transaction) held back every
    # thread's calls on every session until it gave up.
    store = _open(prefix, lock_timeout=5)
    stuck = store.create(title="stuck")
    others = [store.create(title=f"other {n}") for n in range(3)]
    holder = _holding_row_lock(prefix, stuck)
    outcome: list[BaseException] = []

    def stuck_append() -> None:
        try:
            store.append(stuck, Message.user("waits for the row"))
        except BaseException as exc:  # checked below
            outcome.append(exc)

    waiting = threading.Thread(target=stuck_append)
    errors: list[BaseException] = []

    def write(session_id: str) -> None:
        try:
            for number in range(20):
                store.append(session_id, Message.user(f"m{number}"))
                store.get(session_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive()
        writers = [threading.Thread(target=write, args=(sid,)) for sid in others]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(30)
        # Every other session's 20 appends and reads are done, while the
        # stuck append still waits.
        assert waiting.is_alive()
        assert errors == []
        for sid in others:
            assert [m.text for m in store.get(sid).messages] == [f"m{number}" for number in range(20)]
    finally:
        holder.rollback()
        holder.close()
    waiting.join(10)
    assert outcome == []  # it went through once the row was free
    assert [m.text for m in store.get(stuck).messages] == ["waits for the row"]
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_deletion_waiting_behind_a_stuck_writer_holds_back_no_other_session(kind: str, prefix: str) -> None:
    # Found by an adversarial pass: a deletion (or erasure) waiting in
    # PostgreSQL's lock queue for the events table, behind a writer stuck
    # on a row, held back every append that came after it, on every session.
    store = _open(prefix, lock_timeout=5)
    deleter = _open(prefix, lock_timeout=5)  # another process's store object
    stuck, doomed, other = (store.create(title=title) for title in ("stuck", "doomed", "other"))
    holder = _holding_row_lock(prefix, stuck)
    outcomes: dict[str, object] = {}

    def attempt(name: str, call: Any) -> None:
        try:
            call()
            outcomes[name] = "done"
        except BaseException as exc:  # checked below
            outcomes[name] = exc

    waiting = [
        threading.Thread(target=attempt, args=("append", lambda: store.append(stuck, Message.user("waits")))),
        threading.Thread(target=attempt, args=("delete", lambda: deleter.delete(doomed))),
    ]
    try:
        for thread in waiting:
            thread.start()
            time.sleep(0.3)
        for number in range(10):
            store.append(other, Message.user(f"m{number}"))
        # Done while the stuck append and the deletion both still wait.
        assert all(thread.is_alive() for thread in waiting) and outcomes == {}
    finally:
        holder.rollback()
        holder.close()
    for thread in waiting:
        thread.join(15)
    assert outcomes == {"append": "done", "delete": "done"}
    assert [m.text for m in store.get(other).messages] == [f"m{number}" for number in range(10)]
    with pytest.raises(SessionNotFound):
        store.get(doomed)
    store.close()
    deleter.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_left_open_at_exit_prints_nothing(kind: str, prefix: str, tmp_path: Path) -> None:
    # Found by a newcomer pass: a PostgreSQL store never closed, collected at
    # interpreter exit, printed "Exception ignored in PostgresDatastore.__del__"
    # with a traceback from inside the connection pool.
    import os
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "left_open.py"  # a file: run with -c, the modules are torn down in another order
    script.write_text(
        textwrap.dedent(
            f"""
            from hypothesis import given, settings
            from engine import Transcripts
            from engine.testing import run_commands, strategies

            store = Transcripts.open({POSTGRES_DSN!r}, table_prefix={prefix!r})

            @settings(max_examples=15, deadline=None, database=None)
            @given(commands=strategies.commands(max_size=8))
            def test(commands):
                run_commands(store, commands)

            test()
            print("ran")
            """
        )
    )
    project = Path(__file__).resolve().parents[1]  # this checkout's engine
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr
    assert done.stderr == ""


@contextlib.contextmanager
def _losing_four_races(
    writer: Transcripts, lose: Callable[[int], object], held: Callable[[], None]
) -> Iterator[list[int]]:
    """``writer``'s commits in the block, each after another writer's: ``lose(n)``
    commits first on tries 1 to 4, ``held()`` runs on the fifth, which holds
    the session. Yields the count of tries."""
    repository = writer._repository  # type: ignore[attr-defined]
    commit, tries = repository.commit, [0]

    def after_another(*args: Any) -> Any:
        tries[0] += 1
        if tries[0] <= 4:
            lose(tries[0])
        else:
            held()
        return commit(*args)

    repository.commit = after_another
    try:
        yield tries
    finally:
        repository.commit = commit


@pytest.mark.parametrize("kind", KINDS)
def test_an_append_on_the_held_last_try_is_never_skipped_by_the_feed(kind: str, prefix: str) -> None:
    # Found by an adversarial pass: the held last try took its transaction id
    # with the row lock, before any lock on the events table, so a feed read
    # meanwhile moved past the position its append then took.
    writer, winner, other, reader = (_open(prefix) for _ in range(4))
    try:
        racing = writer.create(title="racing")
        writer.append(racing, Message.user("seed"))
        winner.get(racing)
        elsewhere = other.create(title="elsewhere")
        position = max([0, *(entry.position for entry in reader.feed(after=0, limit=1000))])

        def meanwhile() -> None:  # the held try: another session is written and the feed read
            nonlocal position
            other.append(elsewhere, Message.user("other session"))
            page = reader.feed(after=position, limit=1000)
            position = page[-1].position if page else position

        with _losing_four_races(
            writer, lambda n: winner.append(racing, Message.user(f"winner {n}")), meanwhile
        ) as tries:
            writer.append(racing, Message.user("held append"))
        assert tries == [5]
        later = reader.feed(after=position, limit=1000)
        assert (racing, 7) in [(entry.session_id, entry.version) for entry in later]  # not skipped
        everything = reader.feed(after=0, limit=1000)
        seen = {(entry.session_id, entry.version) for entry in everything if entry.position <= position}
        seen |= {(entry.session_id, entry.version) for entry in later}
        assert seen == {(entry.session_id, entry.version) for entry in everything}  # nothing skipped at all
    finally:
        for store in (writer, winner, other, reader):
            store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_held_last_try_and_an_erasure_of_the_session_wait_for_each_other(kind: str, prefix: str) -> None:
    # Found by an adversarial pass: the held try locked the listing row, then
    # the events table; an erasure takes them the other way round, and
    # PostgreSQL ended one of them with "deadlock detected".
    writer, winner, eraser = (_open(prefix) for _ in range(3))
    try:
        racing = writer.create()
        writer.append(racing, Message.user("to erase", id="m-first"))
        winner.get(racing)
        eraser.get(racing)
        outcome: dict[str, Any] = {}

        def erase() -> None:
            try:
                outcome["erased"] = eraser.erase(racing, "m-first")
            except EngineError as exc:
                outcome["erased"] = exc

        def meanwhile() -> None:  # the held try: an erasure of the session starts
            outcome["thread"] = threading.Thread(target=erase)
            outcome["thread"].start()
            time.sleep(0.5)  # it asks for the events table while the held try has a share of it

        with _losing_four_races(
            writer, lambda n: winner.append(racing, Message.user(f"winner {n}")), meanwhile
        ) as tries:
            writer.append(racing, Message.user("held append"))
        assert tries == [5]
        outcome["thread"].join(30)
        assert outcome["erased"] == [racing]
        texts = [(m.text, m.erased is not None) for m in _open(prefix).verify(racing).messages]
        assert texts[0] == ("", True) and texts[-1] == ("held append", False)
    finally:
        for store in (writer, winner, eraser):
            store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_held_try_whose_transaction_id_predates_the_sessions_newest_event_lands_after_it_in_the_feed(
    kind: str, prefix: str
) -> None:
    # Found by an adversarial pass (four processes of two threads appending
    # to one session): the held last try's transaction took its id while it
    # waited for the listing row; another writer took the row first and
    # committed the next event, at a position from its later id; the held
    # try then wrote after it in the log but before it in the feed, which
    # from then on raised CorruptStore ("comes after its version ...").
    # Here the held try takes its id, then waits (on an advisory lock the
    # test holds) while the other writer commits; then it locks the row.
    import psycopg

    assert POSTGRES_DSN
    writer, winner, reader = (_open(prefix) for _ in range(3))
    key = uuid.uuid4().int % 2**62
    blocker = psycopg.connect(POSTGRES_DSN, autocommit=True)
    try:
        racing = writer.create()
        writer.append(racing, Message.user("seed"))
        winner.get(racing)
        blocker.execute("SELECT pg_advisory_lock(%s)", (key,))
        recorder = writer._repository.backend._recorder  # type: ignore[attr-defined]

        def lose(n: int) -> None:
            winner.append(racing, Message.user(f"winner {n}"))
            if n == 4:  # the held try: its id first, then a wait, then the row
                recorder._lock_for_insert += (
                    f"; SELECT pg_current_xact_id(), pg_advisory_xact_lock_shared({key})".encode()
                )

        outcome: dict[str, Any] = {}

        def held_append() -> None:
            try:
                with _losing_four_races(writer, lose, lambda: None) as tries:
                    outcome["revision"] = writer.append(racing, Message.user("held append"))
                outcome["tries"] = tries
            except BaseException as exc:  # reported below
                outcome["error"] = exc

        thread = threading.Thread(target=held_append)
        thread.start()
        _wait_for_lock_waiters(prefix, 1)  # the held try, on the advisory lock, its id taken
        winner.append(racing, Message.user("slipped in"))  # committed with a later transaction id
        blocker.execute("SELECT pg_advisory_unlock(%s)", (key,))
        thread.join(30)
        assert "error" not in outcome, outcome.get("error")
        entries = [entry for entry in reader.feed(after=0, limit=1000) if entry.session_id == racing]
        assert [entry.version for entry in entries] == list(range(1, 9))  # in version order, none skipped
        texts = [m.text for m in reader.verify(racing).messages]
        assert texts == ["seed", *(f"winner {n}" for n in range(1, 5)), "slipped in", "held append"]
    finally:
        blocker.close()
        for store in (writer, winner, reader):
            store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_writer_paused_inside_its_transaction_holds_the_feed_back_only_until_the_server_ends_it(
    kind: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: a writer process stopped (SIGSTOP) between
    # two statements of its transaction kept the feed from showing anything
    # new, and erasures and deletions from running, for as long as it stayed
    # stopped: the server never ended an idle transaction. It ends one of the
    # store's after IDLE_TRANSACTION_TIMEOUT now (a second here).
    from engine.store import _postgres

    monkeypatch.setattr(_postgres, "IDLE_TRANSACTION_TIMEOUT", 1.0)
    paused_store, store = _open(prefix), _open(prefix)
    try:
        stuck, other = paused_store.create(), store.create()
        before = max(entry.position for entry in store.feed(after=0, limit=1000))
        backend = paused_store._repository.backend  # type: ignore[attr-defined]
        entered, release = threading.Event(), threading.Event()
        ended: list[BaseException] = []

        def paused() -> None:
            try:
                # The held write's transaction: the events table and the row
                # locked, an id taken; then nothing, as in a stopped process.
                with backend.writing_alone(stuck):
                    entered.set()
                    release.wait(30)
            except EngineError as exc:
                ended.append(exc)

        thread = threading.Thread(target=paused)
        thread.start()
        try:
            assert entered.wait(10)
            store.append(other, Message.user("meanwhile"))
            assert store.feed(after=before, limit=1000) == []  # held back behind the paused transaction
            started = time.monotonic()
            while not store.feed(after=before, limit=1000) and time.monotonic() - started < 15:
                time.sleep(0.05)
            waited = time.monotonic() - started
            shown = store.feed(after=before, limit=1000)
            assert [(entry.session_id, entry.version) for entry in shown] == [(other, 2)]
            assert waited < 10, waited
        finally:
            release.set()
            thread.join(30)
        # The block wrote nothing, so its transaction's end by the server is
        # no error of its own (it was reported as a write of unknown outcome).
        assert ended == []
        store.append(stuck, Message.user("the session is writable again"))
        paused_store.append(stuck, Message.user("and through the paused store too"))
    finally:
        paused_store.close()
        store.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", ["erase", "delete"])
def test_an_erasure_or_deletion_of_a_session_whose_row_another_client_holds_holds_back_no_other_session(
    kind: str, prefix: str, what: str
) -> None:
    # Found by an adversarial pass: the erasure (or deletion) took the events
    # table, then waited for the listing row another client held, keeping the
    # table meanwhile: every append to every other session waited the whole
    # lock timeout. It lets the table go while the row is held, and tries again.
    from engine import StorageUnavailable

    store = _open(prefix, lock_timeout=3)
    admin = _open(prefix, lock_timeout=3)  # another process's store object
    held, other = store.create(), store.create()
    store.append(held, Message.user("card 4111"))
    secret = store.get(held).messages[0].id
    assert secret is not None
    outcome: dict[str, object] = {}

    def attempt() -> None:
        started = time.monotonic()
        try:
            admin.erase(held, secret) if what == "erase" else admin.delete(held)
            outcome["result"] = "done"
        except BaseException as exc:  # checked below
            outcome["result"] = exc
        outcome["took"] = time.monotonic() - started

    holder = _holding_row_lock(prefix, held)
    thread = threading.Thread(target=attempt)
    try:
        thread.start()
        time.sleep(0.3)  # the erasure or deletion is trying meanwhile
        for number in range(10):
            started = time.monotonic()
            store.append(other, Message.user(f"m{number}"))
            assert time.monotonic() - started < 1.0, number  # not the whole lock timeout
        assert thread.is_alive()
        thread.join(15)
    finally:
        holder.rollback()
        holder.close()
    assert isinstance(outcome["result"], StorageUnavailable), outcome
    assert 2.5 < outcome["took"] < 6, outcome  # given up after about lock_timeout
    if what == "erase":
        admin.erase(held, secret)  # works once the row is free
        assert admin.get(held).messages[0].erased is not None
    else:
        admin.delete(held)
        with pytest.raises(SessionNotFound):
            admin.get(held)
    assert [m.text for m in store.get(other).messages] == [f"m{number}" for number in range(10)]
    store.close()
    admin.close()
