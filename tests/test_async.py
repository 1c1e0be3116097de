"""The async twin beyond the contract suite (which runs on it too): it never
blocks the event loop, keeps one session's calls in order while other
sessions' calls go on, and after close raises the store's typed error."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncTranscripts, InvalidArgument, Message, SessionExists, StorageUnavailable, Transcripts


def test_a_slow_call_does_not_block_the_event_loop(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str]:
        store = await AsyncTranscripts.open(str(tmp_path / "store.db"))
        sid = await store.create()
        real_get = store.sync.get

        def slow_get(*args: object, **kwargs: object) -> object:
            time.sleep(0.5)  # a slow database
            return real_get(*args, **kwargs)  # type: ignore[arg-type]

        store.sync.get = slow_get  # type: ignore[method-assign]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(40):
                await asyncio.sleep(0.01)
                ticks += 1

        session, _ = await asyncio.gather(store.get(sid), ticker())
        await store.close()
        return ticks, session.id  # type: ignore[attr-defined]

    ticks, _ = asyncio.run(scenario())
    assert ticks == 40  # the loop went on while get() slept on the worker


def test_calls_of_one_store_run_in_order_and_errors_are_typed() -> None:
    async def scenario() -> list[str]:
        async with await AsyncTranscripts.open() as store:
            sid = await store.create()
            await asyncio.gather(*(store.append(sid, Message.user(f"m{n}")) for n in range(20)))
            texts = [m.text for m in (await store.get(sid)).messages]
            with pytest.raises(InvalidArgument):
                await store.append(sid)
        with pytest.raises(StorageUnavailable, match="closed"):
            await store.get(sid)
        return texts

    assert asyncio.run(scenario()) == [f"m{n}" for n in range(20)]


def test_it_wraps_only_a_store() -> None:
    with pytest.raises(InvalidArgument):
        AsyncTranscripts("store.db")  # type: ignore[arg-type]
    store = Transcripts.open()
    assert AsyncTranscripts(store).sync is store


def test_every_public_call_of_the_store_has_an_async_twin() -> None:
    # feed() had none: an async reader could not follow the store.
    calls = {name for name, value in vars(Transcripts).items() if callable(value) and not name.startswith("_")}
    twins = {name for name in dir(AsyncTranscripts) if not name.startswith("_")}
    assert calls - {"open", "close"} <= twins


def test_a_write_stuck_on_a_lock_holds_back_no_other_sessions_calls(tmp_path: Path) -> None:
    # Found by a newcomer's run: one worker ran every call of the store, so
    # a write waiting for another client's lock held back every request.
    path = tmp_path / "store.db"

    async def scenario() -> list[str]:
        async with await AsyncTranscripts.open(str(path), lock_timeout=3) as store:
            stuck, other = await store.create(), await store.create()
            await store.append(other, Message.user("read me"))
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            ended: list[str] = []

            async def timed(label: str, call: Any) -> None:
                await call
                ended.append(label)

            async def release_later() -> None:
                await asyncio.sleep(1)
                ended.append("lock released")
                blocker.execute("ROLLBACK")

            await asyncio.gather(
                timed("append to the stuck session", store.append(stuck, Message.user("waits"))),
                timed("get another session", store.get(other)),
                timed("list sessions", store.sessions()),
                timed("feed", store.feed()),
                release_later(),
            )
            blocker.close()
            assert [m.text for m in (await store.get(stuck)).messages] == ["waits"]
            return ended

    ended = asyncio.run(scenario())
    assert ended[-2:] == ["lock released", "append to the stuck session"]
    assert set(ended[:3]) == {"get another session", "list sessions", "feed"}


def _recording(store: AsyncTranscripts, log: list[tuple[str, str]]) -> None:
    """Record when each append starts and ends (slowly) on the sync store
    (at its command cycle: the async twin calls the class's own methods)."""
    real = store.sync._decide

    def decide(session_id: str, command: Any) -> Any:
        text = command.messages[0].text if getattr(command, "messages", None) else type(command).__name__
        log.append(("start", text))
        time.sleep(0.05)
        decision = real(session_id, command)
        log.append(("end", text))
        return decision

    store.sync._decide = decide  # type: ignore[method-assign]


def test_one_sessions_calls_never_overlap_and_run_in_the_order_made() -> None:
    async def scenario() -> tuple[list[tuple[str, str]], list[str], list[str]]:
        async with await AsyncTranscripts.open() as store:
            a, b = await store.create(), await store.create()
            log: list[tuple[str, str]] = []
            _recording(store, log)
            await asyncio.gather(
                *(store.append(a, Message.user(f"a{n}")) for n in range(4)),
                *(store.append(b, Message.user(f"b{n}")) for n in range(4)),
            )
            texts_a = [m.text for m in (await store.get(a)).messages]
            texts_b = [m.text for m in (await store.get(b)).messages]
            return log, texts_a, texts_b

    log, texts_a, texts_b = asyncio.run(scenario())
    assert texts_a == [f"a{n}" for n in range(4)] and texts_b == [f"b{n}" for n in range(4)]
    for prefix in ("a", "b"):  # each session's appends: start, end, start, end...
        mine = [(kind, text) for kind, text in log if text.startswith(prefix)]
        assert mine == [(kind, f"{prefix}{n}") for n in range(4) for kind in ("start", "end")]
    # The two sessions' appends overlapped: b0 started before a0 ended.
    assert log.index(("start", "b0")) < log.index(("end", "a0"))


def test_a_call_cancelled_before_its_turn_is_not_made_and_holds_no_one_back() -> None:
    async def scenario() -> tuple[list[tuple[str, str]], list[str]]:
        async with await AsyncTranscripts.open() as store:
            sid = await store.create()
            log: list[tuple[str, str]] = []
            _recording(store, log)
            first = asyncio.ensure_future(store.append(sid, Message.user("first")))
            second = asyncio.ensure_future(store.append(sid, Message.user("second")))
            third = asyncio.ensure_future(store.append(sid, Message.user("third")))
            await asyncio.sleep(0.01)
            second.cancel()  # still waiting for "first"
            await asyncio.gather(first, third)
            with pytest.raises(asyncio.CancelledError):
                await second
            return log, [m.text for m in (await store.get(sid)).messages]

    log, texts = asyncio.run(scenario())
    assert texts == ["first", "third"]
    assert log == [("start", "first"), ("end", "first"), ("start", "third"), ("end", "third")]


def test_run_sync_follows_every_call_before_it_and_run_on_only_its_sessions() -> None:
    async def scenario() -> tuple[int, list[str]]:
        async with await AsyncTranscripts.open() as store:
            a, b = await store.create(), await store.create()
            log: list[tuple[str, str]] = []
            _recording(store, log)
            seen_by_run_sync = asyncio.ensure_future(
                asyncio.gather(
                    store.append(a, Message.user("a0")),
                    store.append(b, Message.user("b0")),
                    store.run_sync(lambda s: len(s.get(a).messages) + len(s.get(b).messages)),
                    store.append(a, Message.user("a1")),  # after run_sync
                )
            )
            results = await seen_by_run_sync
            order: list[str] = []
            gate = threading.Event()

            def slow_read(s: Transcripts) -> int:
                gate.wait(5)
                order.append("run_on a")
                return len(s.get(a).messages)

            # run_on(a, ...) holds back a's calls only: b's append goes on.
            waiting = asyncio.ensure_future(store.run_on(a, slow_read))
            await store.append(b, Message.user("b1"))
            order.append("append b")
            gate.set()
            await waiting
            return results[2], order

    count, order = asyncio.run(scenario())
    assert count == 2  # both appends made before it, none after
    assert order == ["append b", "run_on a"]


def test_workers_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgument):
            AsyncTranscripts(Transcripts.open(), workers=bad)  # type: ignore[arg-type]


# Found by an adversarial run of the worker threads' ordering.


def test_hundreds_of_calls_cancelled_while_waiting_hold_no_one_back() -> None:
    # Their turns ended one inside another's callback: past about 200 the
    # stack ran out, the chain stopped halfway and the session (and, after
    # any run_sync, the store) waited for ever.
    async def scenario() -> tuple[list[str], int]:
        async with await AsyncTranscripts.open() as store:
            await store.create(session_id="s")
            await store.create(session_id="other")
            # Long enough that every request below gives up first, on a loaded machine too.
            slow = asyncio.ensure_future(store.run_on("s", lambda _: time.sleep(1.5)))
            await asyncio.sleep(0)

            async def request(number: int) -> None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(store.append("s", Message.user(f"r{number}")), 0.02)

            await asyncio.gather(*(request(number) for number in range(400)))
            await slow
            ended = [
                await asyncio.wait_for(call, 5)
                for call in (store.append("s", Message.user("late")), store.run_sync(lambda _: "barrier"))
            ]
            texts = [m.text for m in (await asyncio.wait_for(store.get("s"), 5)).messages]
            idle = len(store._turns._pending) + len(store._turns._last)
            return [*map(str, ended[1:]), *texts], idle

    result: list[tuple[list[str], int]] = []
    runner = threading.Thread(target=lambda: result.append(asyncio.run(scenario())), daemon=True)
    runner.start()
    runner.join(60)
    assert result, "the calls after the cancelled ones never ended"
    ended, idle = result[0]
    assert ended == ["barrier", "late"]  # none of the 400 was made: each gave up waiting for its turn
    assert idle == 0


def test_a_call_that_creates_or_removes_a_session_is_in_order_with_that_sessions_calls() -> None:
    async def scenario() -> list[list[str]]:
        async with await AsyncTranscripts.open() as store:
            await store.create(session_id="p")
            await store.append("p", Message.user("hi"))
            outcomes = []
            pairs = [
                (lambda: store.fork("p", child_id="f"), lambda: store.append("f", Message.user("x"))),
                (lambda: store.spawn("p", session_id="c"), lambda: store.append("c", Message.user("x"))),
            ]
            for first, second in pairs:
                held = asyncio.ensure_future(store.run_on("p", lambda _: time.sleep(0.1)))
                await asyncio.sleep(0)
                done = await asyncio.gather(first(), second(), return_exceptions=True)
                outcomes.append([type(value).__name__ for value in done])
                await held
            await store.fork("p", child_id="f2")
            held = asyncio.ensure_future(store.run_on("f2", lambda _: time.sleep(0.1)))
            await asyncio.sleep(0)
            done = await asyncio.gather(
                store.append("f2", Message.user("x")),
                store.delete("p", with_forks=True, with_children=True),
                return_exceptions=True,
            )
            outcomes.append([type(value).__name__ for value in done])
            await held
            return outcomes

    assert asyncio.run(scenario()) == [["str", "str"], ["str", "str"], ["str", "list"]]


def test_close_runs_nothing_on_the_event_loop_and_refuses_the_calls_still_waiting(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], float]:
        store = await AsyncTranscripts.open(str(tmp_path / "store.db"))
        sid = await store.create()
        threads: list[str] = []
        first = asyncio.ensure_future(store.run_on(sid, lambda _: time.sleep(0.3)))
        waiting = [
            asyncio.ensure_future(store.run_on(sid, lambda _: threads.append(threading.current_thread().name)))
            for _ in range(3)
        ]
        await asyncio.sleep(0.05)
        closing = [asyncio.ensure_future(store.close()), asyncio.ensure_future(store.close())]
        longest, last = 0.0, time.monotonic()
        while not all(task.done() for task in (first, *waiting, *closing)):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
        await first
        outcomes = [type(task.exception()).__name__ for task in waiting]
        with pytest.raises(StorageUnavailable, match="closed"):
            await store.run_sync(lambda _: "made after close")
        with pytest.raises(StorageUnavailable, match="closed"):
            store.sync.get(sid)  # the store itself was closed
        assert threads == []  # none of the waiting calls was made, on any thread
        return outcomes, longest

    outcomes, longest = asyncio.run(scenario())
    assert outcomes == ["StorageUnavailable"] * 3
    assert longest < 0.2  # the event loop never ran a call itself


def test_calls_queued_on_one_session_give_up_within_a_bounded_time(tmp_path: Path) -> None:
    # The async twin waited for a session's turn without a bound: six
    # appends behind another client's lock failed at 1, 2, ... 6 s.
    path = tmp_path / "store.db"

    async def scenario() -> list[float]:
        async with await AsyncTranscripts.open(str(path), lock_timeout=1) as store:
            await store.create(session_id="s")
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()

            async def one(number: int) -> float:
                with pytest.raises(StorageUnavailable):
                    await store.append("s", Message.user(f"r{number}"))
                return time.monotonic() - started

            try:
                return await asyncio.wait_for(asyncio.gather(*(one(number) for number in range(6))), 30)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()

    took = asyncio.run(scenario())
    assert max(took) < 2.6, took  # its turn, then the database's lock: one lock_timeout each at most


def test_a_call_naming_one_session_twice_does_not_wait_for_itself() -> None:
    async def scenario() -> None:
        async with await AsyncTranscripts.open(lock_timeout=1) as store:
            await store.create(session_id="s")
            # The store refuses the id (not StorageUnavailable after waiting for its own turn).
            with pytest.raises(SessionExists):
                await asyncio.wait_for(store.fork("s", child_id="s"), 5)

    asyncio.run(scenario())


def test_a_call_waiting_its_turn_when_its_event_loop_is_closed_holds_back_no_later_call(tmp_path: Path) -> None:
    # Found by an adversarial tester: a loop closed (not run to its end) with
    # a call waiting behind a running one left that call's turn taken while
    # its task object lived, so every later call on the session failed after
    # lock_timeout.
    store = AsyncTranscripts(Transcripts.open(str(tmp_path / "store.db"), lock_timeout=2))
    sid = store.sync.create()
    gate = threading.Event()
    loop = asyncio.new_event_loop()

    async def start() -> list[asyncio.Future[Any]]:
        running = asyncio.ensure_future(store.run_on(sid, lambda _: gate.wait(5)))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(store.append(sid, Message.user("never made")))
        await asyncio.sleep(0.05)
        return [running, waiting]

    tasks = loop.run_until_complete(start())
    loop.close()  # the waiting call's task stays alive, its loop gone
    gate.set()

    async def later() -> float:
        started = time.monotonic()
        await store.append(sid, Message.user("later"))
        return time.monotonic() - started

    took = asyncio.run(later())
    assert took < 1, took  # not lock_timeout (2 s): nothing holds the session
    assert [m.text for m in store.sync.get(sid).messages] == ["later"]  # the abandoned call was not made
    assert not tasks[1].done()
    store.sync.close()


def test_an_async_with_block_on_a_closed_store_fails_at_once(tmp_path: Path) -> None:
    async def scenario() -> bool:
        store = await AsyncTranscripts.open(str(tmp_path / "store.db"))
        await store.close()
        entered = False
        with pytest.raises(StorageUnavailable, match="is closed"):
            async with store:
                entered = True
        return entered

    assert asyncio.run(scenario()) is False


def test_methods_show_the_store_s_signature_and_name_themselves_in_argument_errors() -> None:
    # Found by a newcomer: every method showed (*args, **kwargs), and a
    # misspelled keyword was reported as a mistake of Transcripts.append().
    import inspect

    shown = inspect.signature(AsyncTranscripts.append)
    assert list(shown.parameters) == list(inspect.signature(Transcripts.append).parameters)

    async def main() -> None:
        store = await AsyncTranscripts.open()
        sid = await store.create()
        with pytest.raises(TypeError, match=r"AsyncTranscripts\.append\(\): .*'actr'"):
            await store.append(sid, Message.user("x"), actr="me")  # type: ignore[call-arg]
        assert (await store.get(sid)).messages == ()  # nothing was written
        await store.close()

    asyncio.run(main())


def test_a_call_cancelled_as_its_turn_comes_is_not_made() -> None:
    # Found by an adversarial pass: on Python 3.11, asyncio.wait_for returns
    # when its task is cancelled in the loop iteration its wait ends in: the
    # cancel() said True, yet the append was made and returned. The cancel is
    # timed here to land in that iteration: right after the call before it ends.
    async def race() -> tuple[bool, str, list[str]]:
        store = await AsyncTranscripts.open()
        sid = await store.create()
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        first = asyncio.ensure_future(store.run_on(sid, lambda _: gate.wait()))
        await asyncio.sleep(0.05)
        [turn] = list(store._turns._pending)  # the first call's turn: done when it ends
        second = asyncio.ensure_future(store.append(sid, Message.user("B")))
        await asyncio.sleep(0.05)
        said: list[bool] = []
        turn.add_done_callback(lambda _: loop.call_soon_threadsafe(lambda: said.append(second.cancel())))
        gate.set()
        await first
        try:
            await second
            outcome = "returned"
        except asyncio.CancelledError:
            outcome = "cancelled"
        stored = [message.text for message in (await store.get(sid)).messages]
        await store.close()
        return said == [True], outcome, stored

    for _ in range(20):
        cancelled, outcome, stored = asyncio.run(race())
        if cancelled:  # cancel() said yes: the call raises, and is not made unless a worker had started it
            assert outcome == "cancelled"
        else:  # it had ended already
            assert (outcome, stored) == ("returned", ["B"])


def test_run_sync_and_run_on_refuse_an_async_function() -> None:
    # Found by a newcomer: run_sync(an async def) returned a coroutine never
    # awaited (and Python warned of it); the function is run on a worker
    # thread, which cannot await. Refused before anything runs.
    async def appends(store: Transcripts, sid: str) -> None:
        store.append(sid, Message.user("never"))

    async def scenario() -> list[str]:
        async with await AsyncTranscripts.open() as astore:
            sid = await astore.create()
            with pytest.raises(InvalidArgument, match=r"run_sync\(\): 'appends' is an async function.*plain function"):
                await astore.run_sync(appends, sid)
            with pytest.raises(InvalidArgument, match=r"run_on\(\): 'appends' is an async function"):
                await astore.run_on(sid, appends, sid)
            # A plain function that returns a coroutine: refused, the coroutine closed unrun.
            with pytest.raises(InvalidArgument, match=r"run_sync\(\): '<lambda>' returned coroutine to await"):
                await astore.run_sync(lambda store: appends(store, sid))
            with pytest.raises(InvalidArgument, match=r"run_sync\(\) takes a function to call with the store, got str"):
                await astore.run_sync("appends")  # type: ignore[arg-type]
            assert await astore.run_sync(lambda store: store.get(sid).version) == 1  # the store still serves
            return [m.text for m in (await astore.get(sid)).messages]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        assert asyncio.run(scenario()) == []
