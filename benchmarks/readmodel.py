"""Part 5: the read model. How long a read model takes to catch up on new
events of a SQLite store (a stream of appends of 200-byte messages in calls
of one message, some with usage, to several sessions), and how that compares
with rebuilding it from nothing. Each run builds a fresh store, catches a
read model up on a first batch, writes ``events`` more, then times the
catch-up on them; the rebuild is timed on the same store afterwards."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from benchmarks._report import Line, format_table, machine_line, median, part_document, print_report, progress
from engine import Message, Transcripts, Usage
from engine.readmodel import ReadModel

__all__ = ["ReadModelConfig", "run"]


@dataclass(frozen=True)
class ReadModelConfig:
    runs: int = 5
    events: int = 10_000
    sessions: int = 10
    quick: bool = False


def _write(store: Transcripts, sessions: list[str], count: int, offset: int) -> None:
    for number in range(count):
        sid = sessions[number % len(sessions)]
        text = f"message {offset + number}: " + "x" * 180
        usage = Usage(input=10, output=5) if number % 10 == 0 else None
        store.append(sid, Message.user(text) if number % 2 else Message.assistant(text), usage=usage)


def _events(store: Transcripts) -> int:
    return sum(info.version for info in store.sessions())


def one_run(config: ReadModelConfig, folder: str) -> tuple[float, float, float, int]:
    path = os.path.join(folder, "store.db")
    store = Transcripts.open(path, synchronous="normal")
    sessions = [store.create(title=f"session {n}") for n in range(config.sessions)]
    _write(store, sessions, 200, 0)
    model = ReadModel(os.path.join(folder, "read.db"))
    model.catch_up(store)
    later = ReadModel(os.path.join(folder, "later.db"))  # caught up later by a process of its own
    later.catch_up(store)
    before = _events(store)
    # Calls with usage store two events: write until the count is reached.
    while _events(store) - before < config.events:
        _write(store, sessions, min(500, config.events - (_events(store) - before)), _events(store))
    new = _events(store) - before
    started = time.perf_counter()
    applied = model.catch_up(store)
    caught_up = time.perf_counter() - started
    assert applied == new, (applied, new)
    opened = Transcripts.open(path, synchronous="normal")  # as the CLI's `project` opens it
    started = time.perf_counter()
    applied = later.catch_up(opened)
    cold = time.perf_counter() - started
    assert applied == new, (applied, new)
    opened.close()
    later.close()
    fresh = ReadModel(os.path.join(folder, "rebuilt.db"))
    started = time.perf_counter()
    fresh.rebuild(store)
    rebuilt = time.perf_counter() - started
    model.close()
    fresh.close()
    store.close()
    return caught_up, cold, rebuilt, new


def run(config: ReadModelConfig) -> dict[str, object]:
    caught, colds, rebuilt, counts = [], [], [], []
    for number in range(config.runs):
        with tempfile.TemporaryDirectory() as folder:
            seconds, cold_seconds, rebuild_seconds, new = one_run(config, folder)
        caught.append(seconds)
        colds.append(cold_seconds)
        rebuilt.append(rebuild_seconds)
        counts.append(new)
        progress(f"  readmodel: run {number + 1}/{config.runs} done")
    new = counts[0]
    total = median(rebuilt)
    lines = [
        Line(
            f"catch up on {new:,} new events ({config.sessions} sessions)",
            "ms",
            median(caught) * 1000,
            target="< 1,000 ms",
            met=median(caught) < 1.0,
            spread=(min(caught) * 1000, max(caught) * 1000),
            short="catch-up",
        ),
        Line(
            "    same, events per second",
            "events/s",
            new / median(caught),
            spread=(new / max(caught), new / min(caught)),
        ),
        Line(
            "same, by a process that just opened the store",
            "ms",
            median(colds) * 1000,
            spread=(min(colds) * 1000, max(colds) * 1000),
        ),
        Line(
            "rebuild from nothing (the whole store)",
            "ms",
            total * 1000,
            spread=(min(rebuilt) * 1000, max(rebuilt) * 1000),
        ),
    ]
    print_report(
        machine_line(
            "SQLite store at synchronous=normal, read model in a second SQLite file", config.runs, config.quick
        ),
        format_table(lines),
        [
            "each run: a fresh store, a read model caught up on 200 appends, then the timed catch-up on the new "
            "events (pages of 1,000 events, one transaction, checked against the store's checked reads before it "
            "commits) by the process that wrote them",
            "a process that just opened the store reads every touched session's whole log once, to check it "
            "against its sealed chain head; the writing process has those heads checked and cached already",
        ],
        f"targets met: {sum(line.met is True for line in lines)}/1",
    )
    return part_document(
        config, lines, samples_seconds={"catch_up": caught, "catch_up_opened": colds, "rebuild": rebuilt}
    )
