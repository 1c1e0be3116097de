"""The async twin beyond the contract suite (which runs on it too): it never
blocks the event loop, keeps one store's calls in order, and after close
raises the store's typed error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
