"""Part 8: PostgreSQL writers. One process appending 200-byte messages, one
per call (a commit each), against raw psycopg inserting the same bytes with a
commit per call, interleaved run by run; then 1 and 8 processes appending to
as many different sessions at once, and the rate they reach together. Runs
against the server in ``ENGINE_BENCH_POSTGRES_DSN`` (or
``ENGINE_TEST_POSTGRES_DSN``), each run in tables of its own."""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks._report import (
    Line,
    format_table,
    machine_line,
    median,
    paired_median,
    paired_ratios,
    part_document,
    print_report,
    progress,
    ratio_target,
)
from engine import Message, Transcripts

__all__ = ["PostgresConfig", "dsn", "run"]


@dataclass(frozen=True)
class PostgresConfig:
    runs: int = 5
    appends: int = 500  # per process and run
    processes: int = 8
    quick: bool = False


def dsn() -> str | None:
    return os.environ.get("ENGINE_BENCH_POSTGRES_DSN") or os.environ.get("ENGINE_TEST_POSTGRES_DSN")


def _text(number: int) -> str:
    return f"message {number:06d} " + "x" * 185  # 200 bytes


def _engine(target: str, prefix: str, appends: int) -> float:
    store = Transcripts.open(target, table_prefix=prefix)
    sid = store.create()
    started = time.perf_counter()
    for number in range(appends):
        store.append(sid, Message.user(_text(number)))
    took = time.perf_counter() - started
    store.close()
    return took


_RAW_TABLE = "CREATE TABLE {} (id bigserial PRIMARY KEY, session text, version int, body bytea)"


def _raw_inserts(connection: Any, table: str, session: str, appends: int) -> None:
    """What raw psycopg does for one message per call: an insert of the same
    JSON bytes that commits by itself (an autocommit connection: one round
    trip, the fewest a durable insert takes), prepared as the engine's are."""
    insert = f"INSERT INTO {table} (session, version, body) VALUES (%s, %s, %s)"
    for number in range(appends):
        body = ('{"role":"user","text":"' + _text(number) + '"}').encode()
        connection.execute(insert, (session, number, body), prepare=True)


def _raw(target: str, table: str, appends: int) -> float:
    import psycopg

    with psycopg.connect(target, autocommit=True) as connection:
        connection.execute(_RAW_TABLE.format(table))
        started = time.perf_counter()
        _raw_inserts(connection, table, "s", appends)
        took = time.perf_counter() - started
        connection.execute(f"DROP TABLE {table}")
    return took


def _writer(target: str, prefix: str, appends: int, ready: object, go: object, results: object) -> None:
    store = Transcripts.open(target, table_prefix=prefix)
    sid = store.create()
    ready.put(True)  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    started = time.perf_counter()
    for number in range(appends):
        store.append(sid, Message.user(_text(number)))
    results.put((started, time.perf_counter()))  # type: ignore[attr-defined]
    store.close()


def _raw_writer(target: str, table: str, appends: int, ready: object, go: object, results: object) -> None:
    import psycopg

    with psycopg.connect(target, autocommit=True) as connection:
        ready.put(True)  # type: ignore[attr-defined]
        go.wait()  # type: ignore[attr-defined]
        started = time.perf_counter()
        _raw_inserts(connection, table, str(os.getpid()), appends)
        results.put((started, time.perf_counter()))  # type: ignore[attr-defined]


def _raw_together(target: str, processes: int, appends: int) -> float:
    """As :func:`_together`, for raw psycopg inserts into one plain table."""
    import psycopg

    table = "braw" + uuid.uuid4().hex[:10]
    with psycopg.connect(target, autocommit=True) as connection:
        connection.execute(_RAW_TABLE.format(table))
    rate = _spawned(_raw_writer, (target, table, appends), processes, appends)
    with psycopg.connect(target, autocommit=True) as connection:
        connection.execute(f"DROP TABLE {table}")
    return rate


def _spawned(target: Any, args: tuple[Any, ...], processes: int, appends: int) -> float:
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=target, args=(*args, ready, go, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    go.set()
    spans = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    return processes * appends / (max(end for _, end in spans) - min(start for start, _ in spans))


def _refusal(target: str) -> float:
    """Seconds to refuse an append of one 50 MB message (EventTooLarge)."""
    from engine import EventTooLarge

    prefix = "bp" + uuid.uuid4().hex[:10]
    store = Transcripts.open(target, table_prefix=prefix)
    sid = store.create()
    huge = Message.user("x" * (50 << 20))
    started = time.perf_counter()
    try:
        store.append(sid, huge)
    except EventTooLarge:
        took = time.perf_counter() - started
    else:
        raise AssertionError("a 50 MB message was stored")
    store.close()
    _drop(target, prefix)
    return took


def _together(target: str, processes: int, appends: int) -> float:
    """Appends per second that ``processes`` writers reach together, each on
    a session of its own in one store (first start to last end)."""
    prefix = "bp" + uuid.uuid4().hex[:10]
    Transcripts.open(target, table_prefix=prefix).close()  # the tables, made once
    rate = _spawned(_writer, (target, prefix, appends), processes, appends)
    _drop(target, prefix)
    return rate


def _drop(target: str, prefix: str) -> None:
    import psycopg

    with psycopg.connect(target, autocommit=True) as connection:
        for table in ("events", "sessions", "snapshots", "feed", "seal"):
            connection.execute(f"DROP TABLE IF EXISTS {prefix}_{table}")


def _rates(
    benchmark: str, short: str, measured: list[float], compared: list[float], *, at_least: float | None = None
) -> Line:
    """Two sides' rates per run: their medians, the median of their paired
    ratios (with an at-least target, if given) and the ratio run by run."""
    ratio = paired_median(measured, compared)
    target, met = ratio_target(ratio, at_least=at_least) if at_least is not None else ("", None)
    return Line(
        benchmark,
        "appends/s",
        median(measured),
        median(compared),
        ratio,
        target=target,
        met=met,
        run_ratios=tuple(paired_ratios(measured, compared)),
        short=short,
    )


def run(config: PostgresConfig) -> dict[str, object]:
    target = dsn()
    if target is None:
        raise SystemExit(
            "part 8 needs a PostgreSQL server: set ENGINE_BENCH_POSTGRES_DSN (or ENGINE_TEST_POSTGRES_DSN)"
        )
    engine_s, raw_s, one, many, raw_one, raw_many, refusals = [], [], [], [], [], [], []
    for number in range(config.runs):
        prefix = "bp" + uuid.uuid4().hex[:10]

        def ours(prefix: str = prefix) -> None:
            engine_s.append(_engine(target, prefix, config.appends))
            _drop(target, prefix)
            one.append(_together(target, 1, config.appends))
            many.append(_together(target, config.processes, config.appends))

        def theirs() -> None:
            raw_s.append(_raw(target, "braw" + uuid.uuid4().hex[:10], config.appends))
            raw_one.append(_raw_together(target, 1, config.appends))
            raw_many.append(_raw_together(target, config.processes, config.appends))

        # Who goes first alternates from run to run, as in the other parts.
        for side in (ours, theirs) if number % 2 == 0 else (theirs, ours):
            side()
        refusals.append(_refusal(target))
        progress(f"  postgres: run {number + 1}/{config.runs} done")
    ours = [config.appends / seconds for seconds in engine_s]
    theirs = [config.appends / seconds for seconds in raw_s]
    lines = [
        _rates("one writer, 1 message per call: appends/s", "one writer", ours, theirs, at_least=0.5),
        _rates(
            f"{config.processes} processes on {config.processes} sessions: appends/s together",
            "writers",
            many,
            one,
            at_least=3.0,
        ),
        _rates(
            f"    raw psycopg, {config.processes} processes against 1 (what the machine allows)",
            "raw writers",
            raw_many,
            raw_one,
        ),
        Line(
            "a 50 MB message refused (EventTooLarge), ms",
            "ms",
            median(refusals) * 1000,
            spread=(min(refusals) * 1000, max(refusals) * 1000),
            short="refusal",
        ),
    ]
    print_report(
        machine_line(f"PostgreSQL at {target.split('@')[-1]}", config.runs, config.quick),
        format_table(lines, "engine (median)", "raw psycopg / 1 process (median)"),
        [
            "one writer: the engine's append of one 200-byte message per call (its event, listing row and "
            "commit), against raw psycopg inserting the same JSON bytes in autocommit (each insert commits by "
            "itself: one round trip)",
            f"writers: {config.processes} processes each appending {config.appends} messages to a session of "
            "its own in one store, against 1 process doing the same (rate from the first start to the last end)",
        ],
        f"targets met: {sum(line.met is True for line in lines)}/{sum(line.met is not None for line in lines)}",
    )
    return part_document(
        config,
        lines,
        engine_seconds=engine_s,
        raw_seconds=raw_s,
        one=one,
        many=many,
        raw_one=raw_one,
        raw_many=raw_many,
        refusal_seconds=refusals,
    )
