"""The benchmark suite: workloads, interleaved runs, the results table.

Fairness rules followed throughout:

* The engine and raw ``sqlite3`` run in the same process, interleaved run by
  run (the side that goes first rotates), each run on fresh files in a
  temporary directory; the reported figure is the median over the runs.
* Both sides use WAL and the same ``PRAGMA synchronous`` (``--synchronous``).
* The raw side writes the bytes the engine writes: the rows are produced by the
  engine itself (an untimed in-memory run of the same calls, re-encoded with
  ``engine.store.encode_event``), one row per call, one commit per call, into a
  table shaped like the engine's log (integer session key and type code). The
  engine's timing includes everything an ``append`` does (validation, ids,
  revision hashing, encoding, the listing-table upsert, snapshots at the
  default ``snapshot_interval=100``); the raw side only inserts pre-encoded
  bytes, which is the physical limit.
* Only the measured loop is timed (``time.perf_counter``); building messages,
  creating sessions and pre-filling are not.
* Appends are timed on a warm file: every side first makes as many calls of
  the same shape, untimed, on the same file. A new file grows its WAL while
  it is written, and a commit that grows the file costs more than one into a
  WAL already at its size (a long-running store's); the raw side writes
  fewer pages per commit, so on new files it spent longer growing, which
  flattered the engine.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from benchmarks import raw
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
    ratio_line,
    ratio_ranges,
    ratio_target,
    targets_met,
    write_json,
)
from engine import Message, Transcripts
from engine.store import encode_event

__all__ = ["Config", "main", "run_suite"]

T = TypeVar("T")

BATCH = 100  # messages per call in (b), in the (c) "calls of 100" shape and in pre-filling
SNAPSHOT_INTERVAL = 100  # the engine's default
ENGINE_EVENTS_TABLE = "transcripts_events"
MESSAGE_CHARS = 200
_FILLER = (
    "Please look at the failing test in the parser module and explain why the tokenizer drops the "
    "trailing newline before the final dedent token; then propose a minimal fix with a regression test. "
)


# -- configuration ----------------------------------------------------------


@dataclass(frozen=True)
class Config:
    runs: int = 5
    synchronous: str = "full"
    appends: int = 1000  # (a): single-message calls
    messages: int = 10_000  # (b), (c) and the large session of (d)
    small: int = 100  # (d): the small session
    tail: int = 200  # (d): single-message appends timed on each session (a multiple of the snapshot interval)
    load_shapes: tuple[int, ...] = (BATCH, 1)  # (c): messages per call when the session was built
    memory: bool = True  # (d) also in memory
    sessions: int = 10_000  # (e): sessions in the store when listing
    quick: bool = False


# -- workload -----------------------------------------------------------------


def message_text(index: int) -> str:
    """A ~200-character user message, different for every index."""
    return (f"[{index:06d}] " + _FILLER * 2)[:MESSAGE_CHARS]


def build_messages(count: int, start: int = 0) -> list[Message]:
    return [Message.user(message_text(start + index)) for index in range(count)]


def in_calls(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[index : index + size]) for index in range(0, len(items), size)]


def engine_rows(session_id: str, calls: Sequence[Sequence[Message]]) -> list[raw.EventRow]:
    """The rows the engine stores for these calls (creation first), made by the
    engine itself in memory, untimed: the raw side inserts exactly this shape
    and size of bytes. (Message ids, times and revisions differ from the timed
    engine run's, their encoded lengths do not.)"""
    store = Transcripts.open(snapshot_interval=None)
    try:
        sid = store.create(title="bench")
        for call in calls:
            store.append(sid, *call)
        history = store.history(sid)
    finally:
        store.close()
    rows: list[raw.EventRow] = []
    for entry in history:
        topic, state = encode_event(entry.event, session_id=sid, version=entry.version)
        rows.append((session_id, entry.version, topic, state))
    return rows


# -- samples and interleaved runs ----------------------------------------------


@dataclass
class Sample:
    """One timed run: ``seconds`` of the measured loop; ``rows``/``nbytes``:
    what the run left in its events table (0 when not applicable)."""

    seconds: float
    rows: int = 0
    nbytes: int = 0


def seconds_of(samples: Sequence[Sample]) -> list[float]:
    return [sample.seconds for sample in samples]


def interleaved(label: str, runs: int, sides: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Run every side once per run, rotating which side goes first."""
    names = list(sides)
    samples: dict[str, list[T]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            samples[name].append(sides[name]())
        progress(f"  {label}: run {run + 1}/{runs} done")
    return samples


def stored_rows(path: str, table: str) -> tuple[int, int]:
    """Rows in ``table``, and the bytes of the file's pages in use once its
    WAL is checkpointed into it (free pages not counted)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (rows,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        pages, free, size = (
            connection.execute(f"PRAGMA {pragma}").fetchone()[0]
            for pragma in ("page_count", "freelist_count", "page_size")
        )
    finally:
        connection.close()
    return int(rows), int((pages - free) * size)


# -- (a), (b): appends ------------------------------------------------------------


def engine_appends(
    config: Config, warm: Sequence[Sequence[Message]], calls: Sequence[Sequence[Message]], snapshot_interval: int | None
) -> Sample:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        path = os.path.join(tmp, "engine.db")
        store = Transcripts.open(path, synchronous=config.synchronous, snapshot_interval=snapshot_interval)
        try:
            sid = store.create(title="bench")
            append = store.append
            for call in warm:
                append(sid, *call)
            start = time.perf_counter()
            for call in calls:
                append(sid, *call)
            seconds = time.perf_counter() - start
        finally:
            store.close()
        rows, nbytes = stored_rows(path, ENGINE_EVENTS_TABLE)
    return Sample(seconds, rows, nbytes)


def raw_appends(config: Config, warm: int, rows: Sequence[raw.LogRow]) -> Sample:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        path = os.path.join(tmp, "raw.db")
        connection = raw.connect_writer(path, config.synchronous)
        try:
            # The creation row and the warming calls, untimed like the engine's.
            raw.insert_calls(connection, rows[: 1 + warm])
            seconds = raw.insert_calls(connection, rows[1 + warm :])
        finally:
            connection.close()
        count, nbytes = stored_rows(path, raw.EVENTS_TABLE)
    return Sample(seconds, count, nbytes)


def statement_appends(config: Config, warm: int, rows: Sequence[raw.EventRow]) -> Sample:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        path = os.path.join(tmp, "statements.db")
        return Sample(raw.engine_statement_calls(path, config.synchronous, rows, warm))


def essential_appends(config: Config, warm: int, messages: Sequence[Message]) -> Sample:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        return Sample(raw.essential_calls(os.path.join(tmp, "essential.db"), config.synchronous, messages, warm))


def bench_appends(
    label: str, config: Config, warm: list[list[Message]], calls: list[list[Message]], *, statements: bool = False
) -> dict[str, list[Sample]]:
    """Each side makes the ``warm`` calls untimed, then ``calls`` timed, on
    one new file (see the module's fairness rules)."""
    rows = engine_rows(str(uuid.uuid4()), warm + calls)
    log_rows = raw.log_rows(rows)
    sides: dict[str, Callable[[], Sample]] = {
        "engine": lambda: engine_appends(config, warm, calls, SNAPSHOT_INTERVAL),
        "engine_no_snapshots": lambda: engine_appends(config, warm, calls, None),
        "raw": lambda: raw_appends(config, len(warm), log_rows),
    }
    if statements:
        messages = [call[0] for call in warm + calls]
        sides["statements"] = lambda: statement_appends(config, len(warm), rows)
        sides["essential"] = lambda: essential_appends(config, len(warm), messages)
    return interleaved(label, config.runs, sides)


# -- (c): cold loads --------------------------------------------------------------


def build_session(path: str, total: int, call_size: int, synchronous: str) -> str:
    """A session of ``total`` messages appended ``call_size`` per call (default
    snapshot interval, so the latest snapshot is stored). Untimed."""
    store = Transcripts.open(path, synchronous=synchronous)
    try:
        sid = store.create(title="bench")
        for call in in_calls(build_messages(total), call_size):
            store.append(sid, *call)
    finally:
        store.close()
    return sid


def engine_load(path: str, session_id: str, snapshot_interval: int | None, expected: int) -> Sample:
    start = time.perf_counter()
    store = Transcripts.open(path, snapshot_interval=snapshot_interval)
    try:
        session = store.get(session_id)
    finally:
        store.close()
    seconds = time.perf_counter() - start
    if len(session.messages) != expected:
        raise AssertionError(f"engine loaded {len(session.messages)} messages, expected {expected}")
    return Sample(seconds)


def raw_load(path: str, session_id: str, expected: int) -> Sample:
    start = time.perf_counter()
    messages = raw.load_messages(path, session_id)
    seconds = time.perf_counter() - start
    if len(messages) != expected:
        raise AssertionError(f"raw loaded {len(messages)} messages, expected {expected}")
    return Sample(seconds)


def _snapshot_version(path: str, session_id: str) -> int | None:
    connection = sqlite3.connect(path)
    try:
        found = connection.execute(
            "SELECT max(version) FROM transcripts_snapshots WHERE session_id=?", (session_id,)
        ).fetchone()
    finally:
        connection.close()
    return None if found is None or found[0] is None else int(found[0])


@dataclass
class LoadShape:
    call_size: int
    events: int
    built_with: str
    snapshot_version: int | None
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def bench_loads(config: Config, tmp: str) -> list[LoadShape]:
    shapes = []
    total = config.messages
    for call_size in config.load_shapes:
        # One-message calls with fsync on every commit would take minutes to
        # build; the build is not timed and loading only reads, so that shape
        # is built with synchronous=normal.
        built_with = config.synchronous if call_size >= BATCH else "normal"
        path = os.path.join(tmp, f"load-{call_size}.db")
        progress(f"  (c) building a {total:,}-message session in calls of {call_size} (synchronous={built_with})")
        sid = build_session(path, total, call_size, built_with)
        events = stored_rows(path, ENGINE_EVENTS_TABLE)[0]
        snapshot_version = _snapshot_version(path, sid)
        samples = interleaved(
            f"(c) load, calls of {call_size}",
            config.runs,
            {
                "engine": partial(engine_load, path, sid, SNAPSHOT_INTERVAL, total),
                "engine_no_snapshots": partial(engine_load, path, sid, None, total),
                "raw": partial(raw_load, path, sid, total),
            },
        )
        shapes.append(LoadShape(call_size, events, built_with, snapshot_version, samples))
    return shapes


# -- (d): append cost against session size -------------------------------------------------


def engine_tail(config: Config, prefill: int, on_disk: bool) -> Sample:
    """Mean seconds per single-message append onto a session pre-filled (in
    calls of 100, untimed) to ``prefill`` messages; the store stays open so its
    head is cached, as in a long-running process.

    Both stores hold ``config.messages`` messages when timing starts: below
    that, another session (built the same way) makes up the difference. So
    the database and its WAL file are the same size on both sides and only the
    size of the session appended to differs. (Without this, the small store's
    WAL file still grows during the timed loop, and a file growing on every
    commit makes each fsync dearer on common filesystems, which would flatter
    the ratio.)
    """
    tail = build_messages(config.tail, start=prefill)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        store = (
            Transcripts.open(os.path.join(tmp, "engine.db"), synchronous=config.synchronous)
            if on_disk
            else Transcripts.open()
        )
        try:
            ballast = config.messages - prefill
            if ballast:
                other = store.create(title="ballast")
                for call in in_calls(build_messages(ballast), BATCH):
                    store.append(other, *call)
            sid = store.create(title="bench")
            for call in in_calls(build_messages(prefill), BATCH):
                store.append(sid, *call)
            gc.collect()
            append = store.append
            start = time.perf_counter()
            for message in tail:
                append(sid, message)
            seconds = time.perf_counter() - start
        finally:
            store.close()
    return Sample(seconds / len(tail))


def bench_tail(config: Config, on_disk: bool) -> dict[str, list[Sample]]:
    where = "sqlite" if on_disk else "memory"
    return interleaved(
        f"(d) {where}",
        config.runs,
        {
            "small": lambda: engine_tail(config, config.small, on_disk),
            "large": lambda: engine_tail(config, config.messages, on_disk),
        },
    )


# -- the table ----------------------------------------------------------------------


def _rate_line(
    name: str, unit: str, count: int, engine: Sequence[Sample], raw_side: Sequence[Sample], minimum: float | None
) -> Line:
    engine_rate = count / median(seconds_of(engine))
    raw_rate = count / median(seconds_of(raw_side))
    # Equal counts: the rate ratio is the inverse time ratio.
    ratio = paired_median(seconds_of(raw_side), seconds_of(engine))
    target, met = ratio_target(ratio, at_least=minimum)
    run_ratios = tuple(paired_ratios(seconds_of(raw_side), seconds_of(engine)))
    return Line(name, unit, engine_rate, raw_rate, ratio, target, met, run_ratios, short=name.split(" ")[0])


def _time_line(
    name: str, short: str, engine: Sequence[Sample], raw_side: Sequence[Sample], maximum: float | None
) -> Line:
    return ratio_line(name, short, seconds_of(engine), seconds_of(raw_side), unit="ms", scale=1000, at_most=maximum)


def build_lines(config: Config, results: dict[str, Any]) -> list[Line]:
    lines: list[Line] = []
    n, m = config.appends, config.messages
    a, b = results["a"], results["b"]
    # The per-call targets of the append issue: 0.85x raw at FULL, 0.6x at NORMAL.
    per_call_target = 0.85 if config.synchronous == "full" else 0.6
    lines += [
        _rate_line(f"(a) append 1 msg/call, {n:,} calls", "appends/s", n, a["engine"], a["raw"], per_call_target),
        _rate_line("    same, snapshot_interval=None", "appends/s", n, a["engine_no_snapshots"], a["raw"], None),
        _rate_line("    the engine's SQL alone (no engine code)", "appends/s", n, a["statements"], a["raw"], None),
        _rate_line("    an append's essential work alone (floor)", "appends/s", n, a["essential"], a["raw"], None),
        _rate_line(f"(b) append {m:,} msgs in calls of {BATCH}", "msg/s", m, b["engine"], b["raw"], 0.5),
        _rate_line("    same, snapshot_interval=None", "msg/s", m, b["engine_no_snapshots"], b["raw"], None),
    ]
    shape: LoadShape
    for shape in results["c"]:
        what = f"(c) cold load {m:,} msgs in {shape.events:,} events (calls of {shape.call_size})"
        short = f"(c) calls of {shape.call_size}"
        snapshot = "none stored" if shape.snapshot_version is None else f"at v{shape.snapshot_version:,}"
        samples = shape.samples
        lines.append(_time_line(f"{what}, snapshot {snapshot}", short, samples["engine"], samples["raw"], 2.0))
        lines.append(
            _time_line("    same, snapshot_interval=None", short, samples["engine_no_snapshots"], samples["raw"], None)
        )
    for where, samples in results["d"].items():
        small, large = seconds_of(samples["small"]), seconds_of(samples["large"])
        small_ms = median(small) * 1000
        large_ms = median(large) * 1000
        ratio = paired_median(large, small)
        lines += [
            Line(f"(d) {where}: mean append, session at {config.small:,} msgs", "ms", small_ms),
            Line(f"(d) {where}: mean append, session at {m:,} msgs", "ms", large_ms),
            Line(
                f"(d) {where}: ratio {m:,} / {config.small:,}",
                "",
                None,
                None,
                ratio,
                "<= 1.25",
                ratio <= 1.25,
                tuple(paired_ratios(large, small)),
                short=f"(d) {where}",
            ),
        ]
    listing = results["e"]
    lines.append(
        _time_line(
            f"(e) sessions() listing {config.sessions:,} sessions, cold open",
            "(e)",
            listing["engine"],
            listing["raw"],
            None,
        )
    )
    return lines


def notes(config: Config, results: dict[str, Any], lines: Sequence[Line]) -> list[str]:
    out = [
        "(a), (b): each side first makes as many calls of the same shape untimed, on the same new file, so "
        "that every side is timed with its WAL at its size, as in a long-running store (a new file's growing "
        "WAL made the raw side's commits dearer than the engine's)"
    ]
    for key, what in (("a", "(a)"), ("b", "(b)")):
        engine, raw_side = results[key]["engine"][0], results[key]["raw"][0]
        out.append(
            f"{what} stored, run 1 (warming calls included): engine {engine.rows:,} events in a file of "
            f"{engine.nbytes:,} B, "
            f"raw {raw_side.rows:,} rows in a file of {raw_side.nbytes:,} B (pages in use once the WAL is "
            "checkpointed; the engine's file also holds its listing row, type names and, every 100 events, "
            "a snapshot)"
        )
    for shape in results["c"]:
        if shape.built_with != config.synchronous:
            out.append(
                f"(c) the calls-of-{shape.call_size} session was built with synchronous={shape.built_with} "
                "(building is untimed; loading only reads)"
            )
    out.append(
        "(a) the engine's SQL alone: the statement an append runs (one insert into its append view, whose "
        "trigger advances the listing row and inserts the event, in a transaction of its own), pre-built from "
        "the same rows, on a store the engine made: what its layout allows before any engine code runs"
    )
    out.append(
        "(a) an append's essential work alone: in one plain loop with no engine layers, what every append "
        "must do (check the message again, hash its content and chain the revision, name it after that, pack the "
        "event, extend the record chain, seal the listing row) and the same statements; no lock, cache, "
        "tool-pairing check or snapshot. No arrangement of the engine's code can append faster than this "
        "floor; the store it writes verifies (a test checks it)"
    )
    out.append(
        "(c) cold = a new Transcripts.open() (or sqlite3.connect) + get + close, nothing cached in the process; "
        "the OS page cache is warm. Raw selects the same rows of the engine's own log table and decodes each "
        "with the decoder the engine's loads use (no projection, no chain or revision check); the engine "
        "replays with its checks."
    )
    out.append(ratio_ranges(lines))
    out.append(
        f"(d) {config.tail} single-message appends timed per run on a session pre-filled in calls of {BATCH} "
        f"(untimed), the store kept open; both sessions cross the same number of snapshot points; the "
        f"{config.small:,}-message store also holds a {config.messages - config.small:,}-message second session so "
        "that both database files (and WAL files) are the same size."
    )
    return out


# -- (e): listing sessions --------------------------------------------------------


def build_sessions(path: str, count: int) -> None:
    """``count`` sessions of two messages each (built with synchronous=off: untimed)."""
    store = Transcripts.open(path, synchronous="off")
    try:
        for index in range(count):
            sid = store.create(title=f"session {index}")
            store.append(sid, Message.user(message_text(index)), Message.assistant("ok"))
    finally:
        store.close()


def engine_listing(path: str, expected: int) -> Sample:
    start = time.perf_counter()
    store = Transcripts.open(path)
    try:
        listed = store.sessions()
    finally:
        store.close()
    seconds = time.perf_counter() - start
    if len(listed) != expected:
        raise RuntimeError(f"engine listed {len(listed)} sessions, expected {expected}")
    return Sample(seconds, len(listed), 0)


def raw_listing(path: str, expected: int) -> Sample:
    start = time.perf_counter()
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT session_id, title, created_at, updated_at, message_count, revision, version "
            "FROM transcripts_sessions ORDER BY created_at, session_id"
        ).fetchall()
    finally:
        connection.close()
    seconds = time.perf_counter() - start
    if len(rows) != expected:
        raise RuntimeError(f"raw listed {len(rows)} sessions, expected {expected}")
    return Sample(seconds, len(rows), 0)


def bench_listing(config: Config, tmp: str) -> dict[str, list[Sample]]:
    path = os.path.join(tmp, "listing.db")
    build_sessions(path, config.sessions)
    return interleaved(
        "(e)",
        config.runs,
        {"engine": lambda: engine_listing(path, config.sessions), "raw": lambda: raw_listing(path, config.sessions)},
    )


# -- running ----------------------------------------------------------------------------


def run_suite(config: Config) -> dict[str, Any]:
    results: dict[str, Any] = {}
    progress(f"(a) {config.appends:,} single-message appends")
    singles = [[message] for message in build_messages(2 * config.appends)]
    results["a"] = bench_appends("(a)", config, singles[: config.appends], singles[config.appends :], statements=True)
    progress(f"(b) {config.messages:,} messages in calls of {BATCH}")
    batches = in_calls(build_messages(2 * config.messages), BATCH)
    results["b"] = bench_appends("(b)", config, batches[: len(batches) // 2], batches[len(batches) // 2 :])
    progress("(c) cold loads")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results["c"] = bench_loads(config, tmp)
    progress("(d) append cost against session size")
    results["d"] = {"sqlite": bench_tail(config, on_disk=True)}
    if config.memory:
        results["d"]["memory"] = bench_tail(config, on_disk=False)
    progress(f"(e) listing {config.sessions:,} sessions")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results["e"] = bench_listing(config, tmp)
    return results


def _to_json(config: Config, results: dict[str, Any], lines: Sequence[Line]) -> dict[str, Any]:
    raw_results: dict[str, Any] = {
        "a": {side: seconds_of(samples) for side, samples in results["a"].items()},
        "b": {side: seconds_of(samples) for side, samples in results["b"].items()},
        "c": [
            {
                "call_size": shape.call_size,
                "events": shape.events,
                "built_with": shape.built_with,
                "snapshot_version": shape.snapshot_version,
                **{side: seconds_of(samples) for side, samples in shape.samples.items()},
            }
            for shape in results["c"]
        ],
        "d": {
            where: {side: seconds_of(samples) for side, samples in sides.items()}
            for where, sides in results["d"].items()
        },
        "e": {side: seconds_of(samples) for side, samples in results["e"].items()},
    }
    return part_document(
        config,
        lines,
        samples_seconds=raw_results,
        notes="a, b: seconds per run of the whole loop; c: seconds per load; d: seconds per append; "
        "e: seconds per listing",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options (``--runs``, ``--quick``, ``--synchronous`` and
    ``--json`` are shared with the branching part)."""
    parser.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="PRAGMA synchronous for both the engine and raw sqlite3, and for the timed SQLite stores of the "
        "branching part (default: full)",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 5; 3 with --quick)")
    parser.add_argument("--appends", type=int, default=None, help="(a): single-message calls per run (default 1000)")
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help="(b), (c), (d): messages of the large session (default 10000; a multiple of 100)",
    )
    parser.add_argument(
        "--tail", type=int, default=None, help="(d): appends timed per run (default 200; a multiple of 100)"
    )
    parser.add_argument(
        "--no-calls-of-one", action="store_true", help="(c): skip the session built one message per call"
    )
    parser.add_argument("--no-memory", action="store_true", help="(d): skip the in-memory store")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run: 3 runs, 200 appends, 2,000-message sessions (branching: 10,000-message large "
        "session, 2,000-message root and memory session)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help='also write the results as JSON to PATH ({"suite": ..., "branching": ..., "realtime": ..., "peers": ...}: '
        "the parts that ran)",
    )


def runs_from_args(args: argparse.Namespace) -> int:
    """``--runs``, else the default every part shares: 5, or 3 with ``--quick``."""
    return int(args.runs) if args.runs is not None else (3 if args.quick else 5)


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Config:
    quick = bool(args.quick)
    config = Config(
        runs=runs_from_args(args),
        synchronous=args.synchronous,
        appends=args.appends if args.appends is not None else (200 if quick else 1000),
        messages=args.messages if args.messages is not None else (2000 if quick else 10_000),
        tail=args.tail if args.tail is not None else (100 if quick else 200),
        load_shapes=(BATCH,) if args.no_calls_of_one else (BATCH, 1),
        memory=not args.no_memory,
        sessions=1000 if quick else 10_000,
        quick=quick,
    )
    if config.runs < 1 or config.appends < 1:
        parser.error("--runs and --appends must be positive")
    if config.messages < BATCH or config.messages % BATCH or config.messages <= config.small:
        parser.error(f"--messages must be a multiple of {BATCH} above {config.small}")
    if config.tail < 1 or config.tail % SNAPSHOT_INTERVAL:
        parser.error(f"--tail must be a positive multiple of {SNAPSHOT_INTERVAL}")
    return config


def parse_args(argv: Sequence[str] | None) -> tuple[Config, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the transcript engine against raw sqlite3 (medians of interleaved runs).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return config_from_args(parser, args), args.json


def run_and_report(config: Config) -> dict[str, Any]:
    """Run the suite, print its table and notes; return its JSON document."""
    started = time.perf_counter()
    results = run_suite(config)
    lines = build_lines(config, results)
    print_report(
        machine_line(
            f"journal_mode=WAL, synchronous={config.synchronous.upper()} on both sides", config.runs, config.quick
        ),
        format_table(lines),
        notes(config, results, lines),
        targets_met(lines, f"suite took {time.perf_counter() - started:.0f} s"),
    )
    return _to_json(config, results, lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The suite alone, its JSON unwrapped (``python -m benchmarks --only suite`` runs the same)."""
    config, json_path = parse_args(argv)
    document = run_and_report(config)
    if json_path:
        write_json(json_path, document)
    return 0
