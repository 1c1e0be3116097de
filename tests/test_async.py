"""The async twin beyond the contract suite (which runs on it too): it never
blocks the event loop, keeps one session's calls in order while other
sessions' calls go on, and after close raises the store's typed error."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncTranscripts, InvalidArgument, Message, StorageUnavailable, Transcripts


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
