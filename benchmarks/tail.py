"""Part 6: the newest messages of a long session. One session of
``messages`` messages (appended five at a time, as turns of an agent) in a
SQLite store, and the same conversation as items in the OpenAI Agents SDK's
``SQLiteSession``; then the last 20, side by side:

* ``Transcripts.get(sid, last=20)`` warm (the same store object, read again)
  and cold (a store opened just before, nothing cached);
* ``TranscriptSession.get_items(20)`` (the engine's Agents SDK session) and
  ``SQLiteSession.get_items(20)`` on the same items, each on a session object
  opened just before and read again;
* for scale, a cold ``get(sid)`` of the whole session.

Each figure is the median of ``runs`` timed calls (cold ones each on a newly
opened store); the OS file cache is warm for all of them."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._report import (
    Line,
    format_table,
    machine_line,
    median,
    paired_median,
    part_document,
    print_report,
    progress,
)
from engine import Transcripts
from engine.adapters.openai_agents import TranscriptSession

__all__ = ["TailConfig", "run"]


@dataclass(frozen=True)
class TailConfig:
    runs: int = 7
    messages: int = 100_000
    last: int = 20
    quick: bool = False


def _items(count: int) -> list[dict[str, Any]]:
    """A conversation of user questions and assistant answers, as SDK items."""
    items: list[dict[str, Any]] = []
    for number in range(count):
        text = f"message {number}: " + "x" * 120
        if number % 2:
            items.append(
                {
                    "id": f"msg_{number}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
        else:
            items.append({"role": "user", "content": text})
    return items


def _timed(
    call: Callable[[], object], runs: int, fresh: Callable[[], Callable[[], object]] | None = None
) -> list[float]:
    samples = []
    for _ in range(runs):
        target = fresh() if fresh is not None else call
        started = time.perf_counter()
        target()
        samples.append(time.perf_counter() - started)
    return samples


def run(config: TailConfig) -> dict[str, object]:
    from agents import SQLiteSession  # the bench extra installs the SDK

    items = _items(config.messages)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "store.db")
        store = Transcripts.open(path, synchronous="normal")
        progress(f"  tail: writing {config.messages:,} messages")
        ours = TranscriptSession("long", store)
        sdk_path = os.path.join(folder, "sdk.db")
        theirs = SQLiteSession("long", sdk_path)

        async def fill() -> None:
            for start in range(0, len(items), 5):
                await ours.add_items(items[start : start + 5])
                await theirs.add_items(items[start : start + 5])

        asyncio.run(fill())
        theirs.close()
        last = config.last
        expected = items[-last:]
        sid = "long"
        store.get(sid, last=last)
        warm = _timed(lambda: store.get(sid, last=last), config.runs * 20)

        def cold_tail() -> Callable[[], object]:
            opened = Transcripts.open(path)
            return lambda: opened.get(sid, last=last)

        cold = _timed(lambda: None, config.runs, fresh=cold_tail)

        def items_reader(make: Callable[[], Any]) -> Callable[[], Callable[[], object]]:
            """A session made just before, and a call reading its last items."""

            def fresh() -> Callable[[], object]:
                session = make()

                def call() -> object:
                    got = asyncio.run(session.get_items(last))
                    assert got == expected
                    return got

                return call

            return fresh

        ours_items = items_reader(lambda: TranscriptSession(sid, Transcripts.open(path)))
        theirs_items = items_reader(lambda: SQLiteSession(sid, sdk_path))
        ours_cold = _timed(lambda: None, config.runs, fresh=ours_items)
        theirs_cold = _timed(lambda: None, config.runs, fresh=theirs_items)
        whole_runs = 1 if config.quick else 3

        def cold_whole() -> Callable[[], object]:
            opened = Transcripts.open(path)
            return lambda: opened.get(sid)

        whole = _timed(lambda: None, whole_runs, fresh=cold_whole)
        store.close()
    lines = [
        Line(
            f"get(sid, last={last}) of {config.messages:,} messages, warm",
            "us",
            median(warm) * 1e6,
            target="< 1,000 us",
            met=median(warm) < 1e-3,
            spread=(min(warm) * 1e6, max(warm) * 1e6),
            short="tail warm",
        ),
        Line(
            f"get(sid, last={last}), cold (store just opened)",
            "us",
            median(cold) * 1e6,
            target="a few ms",
            met=median(cold) < 5e-3,
            spread=(min(cold) * 1e6, max(cold) * 1e6),
            short="tail cold",
        ),
        Line(
            f"TranscriptSession.get_items({last}), cold",
            "us",
            median(ours_cold) * 1e6,
            raw=median(theirs_cold) * 1e6,
            ratio=paired_median(ours_cold, theirs_cold),
            short="items",
        ),
        Line(
            "    get(sid) of the whole session, cold (for scale)",
            "us",
            median(whole) * 1e6,
            spread=(min(whole) * 1e6, max(whole) * 1e6),
        ),
    ]
    print_report(
        machine_line(
            "SQLite store and the SDK's SQLiteSession, both files on the same disk", config.runs, config.quick
        ),
        format_table(lines, compared="SDK SQLiteSession (median)"),
        [
            f"one session of {config.messages:,} messages appended five at a time ({config.messages // 5:,} "
            "appends), a snapshot every 100 events; the same items in the Agents SDK's SQLiteSession",
            f"warm: {config.runs * 20} calls on one store object; cold: {config.runs} calls, each on a store opened "
            "just before (its open not timed); the items calls include asyncio.run and check the 20 items",
            "a cold tail reads the records written since the newest snapshot's chain checkpoint and checks them "
            "against the sealed head; the SDK's session reads its newest rows and checks nothing",
        ],
        f"targets met: {sum(line.met is True for line in lines)}/2",
    )
    return part_document(
        config,
        lines,
        samples_seconds={"warm": warm, "cold": cold, "items": ours_cold, "sdk_items": theirs_cold, "whole": whole},
    )
