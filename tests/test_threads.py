"""Threads sharing one store: calls on different sessions go on at once, one
session's calls take turns, and a call stuck on a database lock holds back
no call on another session (nor, on SQLite, waits a multiple of
``lock_timeout`` behind other threads). PostgreSQL's writers:
tests/test_postgres_writers.py."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    InvalidArgument,
    Message,
    SessionNotFound,
    StorageUnavailable,
    Transcripts,
)
from engine.facade._locks import SessionLocks
from tests.conftest import StoreFactory


def _in_thread(action: Any) -> tuple[threading.Thread, list[Any]]:
    """``action`` started on a thread of its own; the list gets what it
    returned or raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:  # reported by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _holder(locks: SessionLocks, *session_ids: str) -> tuple[threading.Thread, threading.Event]:
    """A thread holding ``session_ids`` until the event is set."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with locks.holding(*session_ids):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    return thread, release


def _entered(locks: SessionLocks, *session_ids: str) -> tuple[threading.Thread, threading.Event]:
    """A thread that takes ``session_ids`` and lets go; the event says it got them."""
    got = threading.Event()

    def take() -> None:
        with locks.holding(*session_ids):
            got.set()

    thread = threading.Thread(target=take)
    thread.start()
    return thread, got


def test_calls_on_different_sessions_hold_different_locks() -> None:
    locks = SessionLocks()
    holder, release = _holder(locks, "a")
    other, got_other = _entered(locks, "b")
    assert got_other.wait(5)  # another session: at once, while "a" is held
    same, got_same = _entered(locks, "b", "a")
    assert not got_same.wait(0.2)  # the same session waits for it
    release.set()
    assert got_same.wait(5)
    for thread in (holder, other, same):
        thread.join(5)
    assert not any(entry.users for entry in locks._entries.values())


def test_one_sessions_calls_take_turns_and_the_lock_entry_goes_when_unused() -> None:
    locks = SessionLocks()
    inside = 0
    most = 0
    guard = threading.Lock()

    def call() -> None:
        nonlocal inside, most
        for _ in range(50):
            with locks.holding("s"):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert not any(entry.users for entry in locks._entries.values())


def test_locks_of_sessions_no_call_holds_are_not_kept_for_ever() -> None:
    locks = SessionLocks()
    for number in range(3000):
        with locks.holding(f"s{number}"):
            pass
    assert len(locks._entries) <= 1025


def test_the_whole_store_waits_for_calls_under_way_and_holds_back_new_ones() -> None:
    locks = SessionLocks()
    holder, release = _holder(locks, "a")
    whole_got = threading.Event()
    whole_release = threading.Event()

    def whole_call() -> None:
        with locks.whole():
            whole_got.set()
            whole_release.wait(10)

    whole = threading.Thread(target=whole_call)
    whole.start()
    assert not whole_got.wait(0.2)  # waits for the call under way
    later, later_got = _entered(locks, "b")
    assert not later_got.wait(0.2)  # a new call waits behind the waiting whole-store call
    release.set()
    assert whole_got.wait(5)
    assert not later_got.wait(0.2)  # and behind it while it runs
    whole_release.set()
    assert later_got.wait(5)
    for thread in (holder, whole, later):
        thread.join(5)


def test_a_call_nested_in_a_whole_store_call_goes_on() -> None:
    locks = SessionLocks()
    with locks.whole(), locks.holding("a"), locks.whole():
        pass
    with locks.holding("a"), pytest.raises(RuntimeError), locks.whole():  # it would wait for itself
        pass


def test_holding_if_free_does_not_wait() -> None:
    locks = SessionLocks()
    holder, release = _holder(locks, "a")
    with locks.holding_if_free("a") as held:
        assert held is False
    with locks.holding_if_free("b") as held:
        assert held is True
    release.set()
    holder.join(5)
    with locks.holding_if_free("a") as held:
        assert held is True
    assert not any(entry.users for entry in locks._entries.values())


def test_ids_that_are_not_strings_still_get_the_typed_error(store: Transcripts) -> None:
    sid = store.create()
    # Locks are taken by session id before the call checks its arguments.
    for bad in (123, ["a"], None):
        with pytest.raises(InvalidArgument):
            store.get(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            store.append(bad, Message.user("x"))  # type: ignore[arg-type]
    for bad in (123, ["a"]):
        with pytest.raises(InvalidArgument):
            store.fork(sid, child_id=bad)  # type: ignore[arg-type]
    assert store.get(sid).version == 1


def _locked_sqlite(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_sqlite_a_write_stuck_on_the_database_lock_holds_back_no_read_of_another_session(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), lock_timeout=3)
    stuck, other = store.create(title="stuck"), store.create(title="other")
    store.append(other, Message.user("read me"))
    blocker = _locked_sqlite(path)
    try:
        writer, outcome = _in_thread(lambda: store.append(stuck, Message.user("waits for the lock")))
        time.sleep(0.2)
        assert writer.is_alive()  # waiting for the database's lock
        # Reads of other sessions go on meanwhile (the stuck session's own
        # calls take their turn after its write).
        assert [m.text for m in store.get(other).messages] == ["read me"]
        assert store.get(other, last=1).messages[0].text == "read me"
        assert [m.text for m in store.history(other)[-1].event.messages] == ["read me"]  # type: ignore[attr-defined]
        assert {info.id for info in store.sessions()} == {stuck, other}
        assert writer.is_alive()  # all of that while the write still waited
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    writer.join(10)
    assert isinstance(outcome[0], str)  # it went through once the lock was free
    assert [m.text for m in store.get(stuck).messages] == ["waits for the lock"]
    store.close()


def _timed_behind_a_held_lock(path: Path, actions: list[Any]) -> tuple[list[float], list[BaseException]]:
    """Each of ``actions`` on a thread of its own, all started at once while
    another connection holds the database's write lock: how long each took,
    and what they raised."""
    took: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(actions))

    def call(action: Any) -> None:
        start.wait()
        began = time.monotonic()
        try:
            action()
        except BaseException as exc:  # returned to the test
            errors.append(exc)
        took.append(time.monotonic() - began)

    blocker = _locked_sqlite(path)
    threads = [threading.Thread(target=call, args=(action,)) for action in actions]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    return took, errors


def test_sqlite_threads_queued_behind_a_stuck_lock_each_give_up_within_lock_timeout(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), lock_timeout=1)
    sessions = [store.create() for _ in range(4)]
    took, errors = _timed_behind_a_held_lock(
        path, [lambda sid=sid: store.append(sid, Message.user("never stored")) for sid in sessions]
    )
    assert len(errors) == 4 and all(isinstance(error, StorageUnavailable) for error in errors), errors
    # One lock_timeout each (the queue used to wait 1, 2, 3 and 4 of them).
    assert max(took) < 1.9, took
    assert all(store.get(sid).version == 1 for sid in sessions)  # nothing was written
    store.close()


def test_sqlite_calls_queued_on_one_session_behind_a_stuck_lock_wait_a_bounded_time(tmp_path: Path) -> None:
    # Found by a newcomer's run: five requests for one chat behind another
    # client's lock failed after 1, 2, 3, 4 and 5 times lock_timeout, and a
    # read queued behind them after 5.
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), lock_timeout=1)
    sid = store.create()
    appends = [lambda n=n: store.append(sid, Message.user(f"request {n}")) for n in range(5)]
    took, errors = _timed_behind_a_held_lock(path, [*appends, lambda: store.get(sid)])
    # Each waits for its turn on the session, then for the database, one
    # lock_timeout at most each (a read needs no database lock).
    assert max(took) < 2.6, sorted(took)
    assert len(errors) >= 5 and all(isinstance(error, StorageUnavailable) for error in errors), errors
    assert any("this call did nothing" in str(error) for error in errors)
    assert store.get(sid).version == 1  # nothing was written
    store.close()


# Found by an adversarial run: reads that held no lock raced close() (an
# untyped ConnectionPoolClosedError, or a crash in SQLite), delete (a false
# CorruptStore naming the fork's source missing) and create (a false
# CorruptStore: events but no listing row).


def test_close_waits_for_reads_under_way_and_later_calls_get_a_typed_error(store: Transcripts) -> None:
    sid = store.create(title="x")
    store.append(sid, Message.user("hi"))
    untyped: list[BaseException] = []
    reading = threading.Barrier(5)

    def read() -> None:
        reading.wait()
        try:
            while True:
                store.sessions()
                store.feed(0, 100)
                store.history(sid)
                store.get(sid, at=1)
                store.revisions(sid)
        except EngineError:
            pass  # the store is closed: StorageUnavailable
        except BaseException as exc:  # reported below
            untyped.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    reading.wait()
    time.sleep(0.05)
    store.close()
    for reader in readers:
        reader.join(10)
        assert not reader.is_alive()
    assert untyped == []


def _read_fork(store: Transcripts, fork: str, go: threading.Event, damage: list[BaseException]) -> None:
    go.wait()
    try:
        for _ in range(20):
            store.verify(fork)
            store.get(fork, at=1)
            store.revisions(fork)
    except SessionNotFound:
        pass
    except BaseException as exc:  # reported by the test
        damage.append(exc)


def test_a_fork_deleted_with_its_source_while_read_is_not_found_never_corrupt(store: Transcripts) -> None:
    damage: list[BaseException] = []
    for round_number in range(30):
        root = store.create(title="root")
        store.append(root, *[Message.user(f"m{n}") for n in range(5)])
        fork = store.fork(root)
        store.append(fork, Message.user("in fork"))
        go = threading.Event()
        reader = threading.Thread(target=_read_fork, args=(store, fork, go, damage))
        reader.start()
        go.set()
        time.sleep(0.0005 * (round_number % 5))
        store.delete(root, with_forks=True)
        reader.join(10)
        assert not reader.is_alive()
    assert damage == []


def _poll(store: Transcripts, sid: str, started: threading.Event, damage: list[BaseException]) -> None:
    started.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            store.history(sid)
            store.revisions(sid)
            return
        except SessionNotFound:
            continue
        except BaseException as exc:  # reported by the test
            damage.append(exc)
            return


def test_a_session_created_while_another_thread_polls_for_it_is_never_corrupt(store: Transcripts) -> None:
    damage: list[BaseException] = []
    for number in range(60):
        sid = f"chat-{number}"
        started = threading.Event()
        poller = threading.Thread(target=_poll, args=(store, sid, started, damage))
        poller.start()
        started.wait()
        store.create(title="new", session_id=sid)
        poller.join(15)
        assert not poller.is_alive()
    assert damage == []


def test_a_store_made_from_a_backend_refuses_a_lock_timeout_that_would_wait_for_ever() -> None:
    from engine.store import open_backend

    for bad in (0, -1, float("nan"), True, "10"):
        with pytest.raises(InvalidArgument):
            Transcripts(open_backend(None), lock_timeout=bad)  # type: ignore[arg-type]


# Found by an adversarial pass on PostgreSQL: another thread's call evicting a
# session from a small cache between reading its head and writing made the
# write skip the check of the listing row's head, so an append decided on a
# session deleted and created again (by another process) landed on the new
# log, and the store read as damaged from then on.


@pytest.mark.parametrize("fork", [False, True], ids=["append", "fork"])
def test_a_session_being_written_is_not_evicted_from_the_cache_by_other_threads(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    import engine.facade.transcripts as facade

    writer = stores.open(cache_size=1)
    sid = writer.create(session_id="s")
    writer.append(sid, Message.user("one"))
    writer.append(sid, Message.user("two"))
    other = writer.create(session_id="other")
    writer.get(sid)  # cached at version 3
    elsewhere = stores.open()  # another process

    decide = facade.decide
    switched: list[bool] = []

    def decide_then_switch(head: Any, command: Any, now: Any) -> Any:
        decision = decide(head, command, now)
        if head is not None and head.id == sid and not switched:
            switched.append(True)

            # Meanwhile: another process deletes the session and makes it
            # again, and another thread's call, on another session, runs.
            def made_again() -> None:
                elsewhere.delete(sid)
                elsewhere.create(session_id=sid)
                elsewhere.append(sid, Message.user("new"))

            for call in (made_again, lambda: writer.get(other)):
                switch = threading.Thread(target=call)
                switch.start()
                switch.join()
        return decision

    monkeypatch.setattr(facade, "decide", decide_then_switch)
    with pytest.raises(ConcurrentWriteError):
        if fork:
            writer.fork(sid, child_id="child")
        else:
            writer.append(sid, Message.user("decided on the old log"))
    monkeypatch.setattr(facade, "decide", decide)
    reopened = stores.open()
    assert [m.text for m in reopened.verify(sid).messages] == ["new"]  # nothing landed on the new log
    assert "child" not in {info.id for info in reopened.sessions()}
    writer.append(sid, Message.user("retried"))  # the retry reads the log again
    assert [m.text for m in reopened.get(sid).messages] == ["new", "retried"]


def test_the_cache_keeps_its_size_once_the_sessions_in_use_are_done(tmp_path: Path) -> None:
    store = Transcripts.open(str(tmp_path / "s.db"), cache_size=2)
    ids = [store.create() for _ in range(5)]
    for sid in ids:
        store.append(sid, Message.user("hi"))
    assert len(store._repository.cache) == 2  # type: ignore[attr-defined]
    store.close()


# Found by an adversarial run: one process reading a session while another
# deleted it, created it again and deleted it again between the reader's
# round trips got a false CorruptStore ("has events but no listing row").


def test_a_session_created_and_deleted_again_between_a_readers_round_trips_is_not_damage(
    store: Transcripts, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = store.create(title="churned", session_id="S")
    store.append(sid, Message.user("hello"))
    backend = store._repository.backend  # type: ignore[attr-defined]
    real_row = backend.session_row
    # The row as the reader's first two reads saw it: the session deleted,
    # then (its events read in between) created again and deleted again.
    missing = iter([None, None])

    def churned(session_id: str) -> Any:
        if session_id == sid:
            for row in missing:
                return row
        return real_row(session_id)

    store._repository.forget(sid)  # type: ignore[attr-defined]  # nothing cached: the read goes to the log
    monkeypatch.setattr(backend, "session_row", churned)
    assert [m.text for m in store.get(sid).messages] == ["hello"]


def test_events_without_a_listing_row_on_every_read_are_still_damage() -> None:
    # The memory store finds events by session id, so a listing row removed
    # behind its back leaves events that every attempt finds.
    with Transcripts.open() as store:
        sid = store.create(title="x")
        store.append(sid, Message.user("hello"))
        store._repository.forget(sid)  # type: ignore[attr-defined]
        del store._repository.backend._recorder._sessions[sid]  # type: ignore[attr-defined]
        with pytest.raises(CorruptStore, match="has events but no listing row"):
            store.get(sid)
