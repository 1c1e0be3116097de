"""The second part of ``make bench``: forks, rewrites, loading forks, memory of forks.

What is measured, against what:

(f) time of ``fork``, ``fork_at(n/2)`` and ``fork_replacing(n/2)`` on a session
    of 100,000 messages against the same on a session of 100, in memory and on
    SQLite; target: the 100,000 / 100 ratio at most 1.5 for each kind;
(g) bytes stored per fork in all three tables (the child's event row, its
    listing row, any snapshot row) at both sizes; target: at most 1 KB;
(r) a rewrite of the last 10 messages of a 100,000-message session: bytes
    stored against the encoded size of the 10 replacement messages (target:
    at most twice that plus 1 KB) and against the whole session's events;
    time and bytes against the same rewrite of a 100-message session (info);
(l) a cold load of a fork 10 deep against a cold load of its root (SQLite);
    target: at most 2x;
(m) memory (``tracemalloc``) of 1,000 forks of a 10,000-message session and
    the session, against the session alone (memory backend); target: at
    most 1.2x.

Fairness rules, as in the first part (``benchmarks.suite``):

* the two sides of every ratio run in the same process and the same store,
  interleaved run by run (the side that goes first rotates); the reported
  figure is the median over the runs (``--runs``, default 5);
* both session sizes live in one store (one SQLite file), so the database and
  WAL files are the same for both;
* only the measured loop is timed (``time.perf_counter``); building sessions,
  warming caches and counting bytes are not;
* sessions are built untimed from ~200-character messages, alternating user
  and assistant, in calls of 1,000 messages (the root of (l) in calls of 100,
  so that a snapshot is stored, as in the first part's (c)). SQLite files are
  built with ``synchronous=off``, then reopened with ``--synchronous``
  (default ``full``) for the timed operations.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import msgspec

from benchmarks._report import (
    Line,
    format_table,
    machine_line,
    median,
    part_document,
    print_report,
    progress,
    ratio_line,
    ratio_ranges,
    ratio_target,
    targets_met,
)
from benchmarks.suite import (
    SNAPSHOT_INTERVAL,
    Sample,
    engine_load,
    interleaved,
    message_text,
    runs_from_args,
    seconds_of,
)
from engine import Message, Transcripts
from engine.store import Backend, Record, SessionRow, StoredSnapshot

__all__ = ["BranchConfig", "add_arguments", "config_from_args", "run_and_report", "run_branching"]

BUILD_CALL = 1000  # messages per append call when building the fork and rewrite sessions
LOAD_CALL = 100  # messages per call when building the root of (l): 101 events, a snapshot at version 100
KINDS = ("fork", "fork_at", "fork_replacing")
KIND_LABELS = {"fork": "fork", "fork_at": "fork_at(n/2)", "fork_replacing": "fork_replacing(n/2)"}
MEMORY_MODES = ("mixed", "fork", "fork_at")
FORK_BYTES_TARGET = 1024
REWRITE_OVERHEAD = 1024  # (r): stored bytes may be at most 2x the replacement plus this
INT_BYTES = 8  # an INTEGER column counted as 8 bytes


# -- configuration ----------------------------------------------------------


@dataclass(frozen=True)
class BranchConfig:
    runs: int = 5
    synchronous: str = "full"
    small: int = 100  # (f), (g), (r): the small session
    large: int = 100_000  # (f), (g), (r): the large session
    fork_ops_memory: int = 200  # (f): forks of each kind and size per run, memory
    fork_ops_sqlite: int = 50  # (f): the same on SQLite (one committed transaction each)
    rewrites: int = 10  # (r): rewrites of each size per run
    span: int = 10  # (r): messages replaced at the end of the session
    chain_root: int = 10_000  # (l): messages of the root
    depth: int = 10  # (l): depth of the fork loaded
    memory_messages: int = 10_000  # (m): messages of the session forked
    memory_forks: int = 1000  # (m): forks kept
    quick: bool = False


# -- workload -----------------------------------------------------------------


def role_at(index: int) -> str:
    return "user" if index % 2 == 0 else "assistant"


def branch_message(index: int, text_index: int | None = None) -> Message:
    """The message at ``index`` of a built session: ~200 characters, user at
    even indexes and assistant at odd ones (text from ``text_index`` if given)."""
    text = message_text(index if text_index is None else text_index)
    return Message.user(text) if role_at(index) == "user" else Message.assistant(text)


def edited_message(index: int, serial: int) -> Message:
    """A replacement for message ``index``: the same role and size, new text."""
    return branch_message(index, text_index=1_000_000 + serial)


def build_session(store: Transcripts, total: int, call_size: int = BUILD_CALL, *, title: str = "bench") -> str:
    """A session of ``total`` messages appended ``call_size`` per call (untimed).
    The messages of a call are made just before it, so that nothing else
    holds them afterwards (it matters to (m))."""
    sid = store.create(title=title)
    for start in range(0, total, call_size):
        store.append(sid, *[branch_message(index) for index in range(start, min(total, start + call_size))])
    return sid


# -- stored bytes -------------------------------------------------------------


def _text(value: str | None) -> int:
    return 0 if value is None else len(value.encode())


def event_row_bytes(session_id: str, record: Record) -> int:
    """One row of ``transcripts_events``: id, version, topic, state."""
    return _text(session_id) + INT_BYTES + _text(record.topic) + len(record.state)


def listing_row_bytes(row: SessionRow) -> int:
    """One row of ``transcripts_sessions``: the sum of its fields' lengths."""
    return (
        _text(row.session_id)
        + _text(row.title)
        + _text(row.created_at)
        + _text(row.updated_at)
        + INT_BYTES
        + _text(row.revision)
        + INT_BYTES
    )


def snapshot_row_bytes(session_id: str, snapshot: StoredSnapshot) -> int:
    """One row of ``transcripts_snapshots``: id, version, state."""
    return _text(session_id) + INT_BYTES + len(snapshot.state)


@dataclass(frozen=True)
class Footprint:
    """What one session holds in the three tables, in bytes."""

    events: int
    event_rows: int
    listing: int
    snapshots: int
    snapshot_rows: int

    @property
    def total(self) -> int:
        return self.events + self.listing + self.snapshots


def footprint(backend: Backend, session_id: str, rows: dict[str, SessionRow]) -> Footprint:
    records = backend.read(session_id)
    snapshots = backend.snapshots(session_id)
    return Footprint(
        events=sum(event_row_bytes(session_id, record) for record in records),
        event_rows=len(records),
        listing=listing_row_bytes(rows[session_id]),
        snapshots=sum(snapshot_row_bytes(session_id, snapshot) for snapshot in snapshots),
        snapshot_rows=len(snapshots),
    )


def listing_rows(backend: Backend) -> dict[str, SessionRow]:
    return {row.session_id: row for row in backend.session_rows()}


# -- the stores of (f), (g) and (r) ---------------------------------------------------


@dataclass
class BranchStore:
    """One store holding a small and a large session, kept open (heads cached)."""

    where: str  # "memory" or "sqlite"
    store: Transcripts
    sessions: dict[int, str]  # message count -> session id
    session_bytes: dict[int, Footprint]  # as built

    @property
    def backend(self) -> Backend:
        return self.store._repository.backend


def open_branch_store(config: BranchConfig, where: str, tmp: str) -> BranchStore:
    sizes = (config.small, config.large)
    if where == "memory":
        store = Transcripts.open()
        sessions = {size: build_session(store, size) for size in sizes}
    else:
        path = os.path.join(tmp, "branching.db")
        builder = Transcripts.open(path, synchronous="off")
        try:
            sessions = {size: build_session(builder, size) for size in sizes}
        finally:
            builder.close()
        store = Transcripts.open(path, synchronous=config.synchronous)
    for size, sid in sessions.items():
        if len(store.get(sid).messages) != size:  # on SQLite: the cold load, untimed; then cached
            raise AssertionError(f"built {len(store.get(sid).messages)} messages, expected {size}")
    rows = listing_rows(store._repository.backend)
    built = {size: footprint(store._repository.backend, sid, rows) for size, sid in sessions.items()}
    return BranchStore(where, store, sessions, built)


# -- (f), (g): forks ---------------------------------------------------------------


def fork_call(store: Transcripts, kind: str, sid: str, size: int) -> Callable[[], str]:
    middle = size // 2
    if kind == "fork":
        return partial(store.fork, sid)
    if kind == "fork_at":
        return partial(store.fork_at, sid, middle)
    return partial(store.fork_replacing, sid, middle, edited_message(middle, 0))


def timed_forks(branch: BranchStore, kind: str, size: int, ops: int) -> Sample:
    """Mean seconds per fork over ``ops`` forks of one kind; ``rows``: forks
    made, ``nbytes``: what they stored in all three tables."""
    store, sid = branch.store, branch.sessions[size]
    head = store.get(sid)  # the source's head is cached, as in a long-running process (untimed)
    call = fork_call(store, kind, sid, size)
    children: list[str] = []
    add = children.append
    gc.collect()
    start = time.perf_counter()
    for _ in range(ops):
        add(call())
    seconds = time.perf_counter() - start
    if branch.backend.read(sid, after=head.version):
        raise AssertionError(f"{kind} wrote to its source session")
    rows = listing_rows(branch.backend)
    nbytes = sum(footprint(branch.backend, child, rows).total for child in children)
    return Sample(seconds / ops, len(children), nbytes)


@dataclass
class ForkResults:
    where: str
    ops: int
    samples: dict[str, list[Sample]]  # "<kind>@<size>"
    footprints: dict[str, Footprint]  # one fork of each kind and size, after the runs


def bench_forks(config: BranchConfig, branch: BranchStore) -> ForkResults:
    ops = config.fork_ops_memory if branch.where == "memory" else config.fork_ops_sqlite
    sizes = (config.small, config.large)
    for size in sizes:  # warm-up: the first fork_at of a point fills in lazily kept prefix revisions
        for kind in KINDS:
            fork_call(branch.store, kind, branch.sessions[size], size)()
    sides: dict[str, Callable[[], Sample]] = {
        f"{kind}@{size}": partial(timed_forks, branch, kind, size, ops) for kind in KINDS for size in sizes
    }
    samples = interleaved(f"(f) {branch.where}", config.runs, sides)
    footprints = {}
    for size in sizes:
        for kind in KINDS:
            child = fork_call(branch.store, kind, branch.sessions[size], size)()
            footprints[f"{kind}@{size}"] = footprint(branch.backend, child, listing_rows(branch.backend))
    return ForkResults(branch.where, ops, samples, footprints)


# -- (r): rewrites ---------------------------------------------------------------


@dataclass
class RewriteSample:
    """One run of rewrites of one session: mean seconds and bytes per rewrite."""

    seconds: float
    rewrites: int
    nbytes: int  # all rewrites of the run: event rows + snapshot rows + listing-row growth
    max_bytes: int  # the largest single rewrite (its event row and any snapshot row)
    snapshot_rows: int
    listing_growth: int
    replacement_bytes: float  # mean msgspec.json size of the replacement tuple, as passed

    @property
    def bytes_per_rewrite(self) -> float:
        return self.nbytes / self.rewrites


class _Serial:
    """Numbers for replacement texts, so that no rewrite is a no-op."""

    def __init__(self) -> None:
        self.value = 0

    def take(self) -> int:
        self.value += 1
        return self.value


def timed_rewrites(branch: BranchStore, size: int, count: int, span: int, serial: _Serial) -> RewriteSample:
    store, backend, sid = branch.store, branch.backend, branch.sessions[size]
    start_index = size - span
    replacements = [[edited_message(index, serial.take()) for index in range(start_index, size)] for _ in range(count)]
    head = store.get(sid)  # cached (untimed)
    row_before = listing_rows(backend)[sid]
    rewrite = store.rewrite
    gc.collect()
    start = time.perf_counter()
    for replacement in replacements:
        rewrite(sid, start_index, size, replacement, "edit")
    seconds = time.perf_counter() - start
    records = backend.read(sid, after=head.version)
    snapshots = [snapshot for snapshot in backend.snapshots(sid) if snapshot.version > head.version]
    if len(records) != count:
        raise AssertionError(f"{count} rewrites stored {len(records)} events")
    per_version = {record.version: event_row_bytes(sid, record) for record in records}
    for snapshot in snapshots:
        per_version[snapshot.version] += snapshot_row_bytes(sid, snapshot)
    growth = listing_row_bytes(listing_rows(backend)[sid]) - listing_row_bytes(row_before)
    encoded = [len(msgspec.json.encode(tuple(replacement))) for replacement in replacements]
    return RewriteSample(
        seconds=seconds / count,
        rewrites=count,
        nbytes=sum(per_version.values()) + growth,
        max_bytes=max(per_version.values()),
        snapshot_rows=len(snapshots),
        listing_growth=growth,
        replacement_bytes=statistics.fmean(encoded),
    )


@dataclass
class RewriteResults:
    where: str
    samples: dict[int, list[RewriteSample]]
    session_bytes: dict[int, Footprint]


def bench_rewrites(config: BranchConfig, branch: BranchStore) -> RewriteResults:
    serial = _Serial()
    sizes = (config.small, config.large)
    for size in sizes:  # warm-up: the first rewrite fills in the prefix revision at the rewrite point
        timed_rewrites(branch, size, 1, config.span, serial)
    sides = {str(size): partial(timed_rewrites, branch, size, config.rewrites, config.span, serial) for size in sizes}
    samples = interleaved(f"(r) {branch.where}", config.runs, sides)
    return RewriteResults(branch.where, {size: samples[str(size)] for size in sizes}, branch.session_bytes)


# -- (l): loading a deep fork ------------------------------------------------------------


@dataclass
class Chain:
    path: str
    root: str
    deepest: str
    root_messages: int
    deepest_messages: int
    snapshots: bool
    root_snapshot: int | None  # the version of the root's newest snapshot, if any


def build_chain(path: str, root_messages: int, depth: int, *, snapshots: bool) -> Chain:
    """A root, then ``depth`` forks each of the one before (odd levels
    ``fork``, even levels ``fork_at`` dropping the last message), each level
    then appending two messages. Built with synchronous=off (untimed)."""
    store = Transcripts.open(path, synchronous="off", snapshot_interval=SNAPSHOT_INTERVAL if snapshots else None)
    try:
        root = build_session(store, root_messages, LOAD_CALL, title="root")
        parent, count = root, root_messages
        for level in range(1, depth + 1):
            if level % 2:
                child = store.fork(parent)
            else:
                count -= 1
                child = store.fork_at(parent, count)
            store.append(child, branch_message(count), branch_message(count + 1))
            count += 2
            parent = child
        lineage = store.get(parent).lineage
        if lineage.depth != depth or lineage.root != root:
            raise AssertionError(f"the chain's deepest fork has depth {lineage.depth}, expected {depth}")
        stored = store._repository.backend.snapshot(root)
    finally:
        store.close()
    return Chain(path, root, parent, root_messages, count, snapshots, None if stored is None else stored.version)


@dataclass
class LoadResults:
    chains: list[Chain]
    samples: dict[str, list[Sample]]  # "root", "deep", "root_nosnap", "deep_nosnap"


def bench_loads(config: BranchConfig, tmp: str) -> LoadResults:
    chains = [
        build_chain(os.path.join(tmp, f"chain-{name}.db"), config.chain_root, config.depth, snapshots=snapshots)
        for name, snapshots in (("snapshots", True), ("none", False))
    ]
    sides: dict[str, Callable[[], Sample]] = {}
    for chain in chains:
        suffix = "" if chain.snapshots else "_nosnap"
        sides["root" + suffix] = partial(engine_load, chain.path, chain.root, SNAPSHOT_INTERVAL, chain.root_messages)
        sides["deep" + suffix] = partial(
            engine_load, chain.path, chain.deepest, SNAPSHOT_INTERVAL, chain.deepest_messages
        )
    for load in sides.values():  # warm-up: every file read once before the runs, so no run pays for it
        load()
    return LoadResults(chains, interleaved("(l)", config.runs, sides))


# -- (m): memory of forks ------------------------------------------------------------------


@dataclass
class MemorySample:
    one: int  # traced bytes alive with the store holding the session
    with_forks: int  # the same after the forks (kept: ids held, states cached by the store)
    forks: int

    @property
    def ratio(self) -> float:
        return self.with_forks / self.one

    @property
    def per_fork(self) -> float:
        return (self.with_forks - self.one) / self.forks


def _fork_point(number: int, of: int, messages: int) -> int:
    """The ``number``-th of ``of`` fork_at points, spread evenly inside the session."""
    return ((number + 1) * messages) // (of + 1)


def memory_footprint(messages: int, forks: int, mode: str) -> MemorySample:
    """Traced memory (``tracemalloc``, after ``gc.collect``) of a fresh memory
    store holding one session, then also ``forks`` forks of it. ``mode``:
    ``fork``, ``fork_at`` (spread evenly) or ``mixed`` (alternating)."""
    gc.collect()
    tracemalloc.start()
    try:
        store = Transcripts.open()
        sid = build_session(store, messages)
        gc.collect()
        one = tracemalloc.get_traced_memory()[0]
        children: list[str] = []
        at_count = forks if mode == "fork_at" else forks // 2 if mode == "mixed" else 0
        at_number = 0
        for number in range(forks):
            if mode == "fork" or (mode == "mixed" and number % 2 == 0):
                children.append(store.fork(sid))
            else:
                children.append(store.fork_at(sid, _fork_point(at_number, at_count, messages)))
                at_number += 1
        gc.collect()
        with_forks = tracemalloc.get_traced_memory()[0]
        if len(store.sessions()) != forks + 1:
            raise AssertionError("the store lost sessions")
        store.close()
    finally:
        tracemalloc.stop()
    return MemorySample(one, with_forks, len(children))


def _warm_up() -> None:
    """Import and touch everything (m) uses before anything is traced."""
    with Transcripts.open() as store:
        sid = build_session(store, 10, 5)
        store.fork(sid)
        store.fork_at(sid, 5)
        store.sessions()


def bench_memory(config: BranchConfig) -> dict[str, list[MemorySample]]:
    _warm_up()
    sides = {
        mode: partial(memory_footprint, config.memory_messages, config.memory_forks, mode) for mode in MEMORY_MODES
    }
    return interleaved("(m)", config.runs, sides)


# -- running ----------------------------------------------------------------------------


@dataclass
class BranchResults:
    forks: list[ForkResults] = field(default_factory=list)
    rewrites: list[RewriteResults] = field(default_factory=list)
    loads: LoadResults | None = None
    memory: dict[str, list[MemorySample]] = field(default_factory=dict)


def run_branching(config: BranchConfig) -> BranchResults:
    results = BranchResults()
    for where in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            progress(f"(f, g, r) {where}: building sessions of {config.small:,} and {config.large:,} messages")
            branch = open_branch_store(config, where, tmp)
            try:
                results.forks.append(bench_forks(config, branch))
                results.rewrites.append(bench_rewrites(config, branch))
            finally:
                branch.store.close()
    progress(f"(l) building a {config.chain_root:,}-message root and a chain of {config.depth} forks")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results.loads = bench_loads(config, tmp)
    progress(f"(m) memory of {config.memory_forks:,} forks of a {config.memory_messages:,}-message session")
    results.memory = bench_memory(config)
    return results


# -- the table ----------------------------------------------------------------------


def build_lines(config: BranchConfig, results: BranchResults) -> list[Line]:
    lines: list[Line] = []
    small, large = config.small, config.large
    sizes = f"{large:,} vs {small:,} msgs"
    for forks in results.forks:
        unit, scale = ("us", 1e6) if forks.where == "memory" else ("ms", 1e3)
        for kind in KINDS:
            lines.append(
                ratio_line(
                    f"(f) {forks.where}: {KIND_LABELS[kind]}, time per fork, {sizes}",
                    f"(f) {forks.where} {kind}",
                    seconds_of(forks.samples[f"{kind}@{large}"]),
                    seconds_of(forks.samples[f"{kind}@{small}"]),
                    unit=unit,
                    scale=scale,
                    at_most=1.5,
                )
            )
    for forks in results.forks:
        for kind in KINDS:
            big_bytes = median([s.nbytes / s.rows for s in forks.samples[f"{kind}@{large}"]])
            little_bytes = median([s.nbytes / s.rows for s in forks.samples[f"{kind}@{small}"]])
            lines.append(
                Line(
                    f"(g) {forks.where}: {KIND_LABELS[kind]}, bytes stored per fork, {sizes}",
                    "B",
                    big_bytes,
                    little_bytes,
                    big_bytes / little_bytes,
                    f"<= {FORK_BYTES_TARGET:,} B both",
                    max(big_bytes, little_bytes) <= FORK_BYTES_TARGET,
                    short=f"(g) {forks.where} {kind}",
                )
            )
    for rewrites in results.rewrites:
        where, big_samples, little_samples = rewrites.where, rewrites.samples[large], rewrites.samples[small]
        stored = median([s.bytes_per_rewrite for s in big_samples])
        replacement = median([s.replacement_bytes for s in big_samples])
        limit = 2 * replacement + REWRITE_OVERHEAD
        worst = max(s.max_bytes for s in big_samples)
        session = rewrites.session_bytes[large].events
        little_stored = median([s.bytes_per_rewrite for s in little_samples])
        lines += [
            Line(
                f"(r) {where}: rewrite last {config.span} of {large:,} msgs, bytes stored vs the replacement",
                "B",
                stored,
                replacement,
                stored / replacement,
                "<= 2x + 1 KB",
                max(stored, worst) <= limit,
                short=f"(r) {where} bytes",
            ),
            Line(f"    same, vs all {session:,} B of the session's events", "B", stored, session, stored / session),
            Line(f"    same, bytes stored, {sizes}", "B", stored, little_stored, stored / little_stored),
            ratio_line(
                f"(r) {where}: rewrite last {config.span}, time per rewrite, {sizes}",
                f"(r) {where} time",
                [s.seconds for s in big_samples],
                [s.seconds for s in little_samples],
                unit="ms",
                scale=1e3,
            ),
        ]
    if results.loads is not None:
        loads = results.loads.samples
        variants = (("", "snapshots stored", 2.0), ("_nosnap", "stores written without snapshots", None))
        for suffix, what, at_most in variants:
            name = (
                f"(l) sqlite: cold load, depth-{config.depth} fork vs its {config.chain_root:,}-msg root, {what}"
                if not suffix
                else f"    same, {what}"
            )
            lines.append(
                ratio_line(
                    name,
                    f"(l){suffix.replace('_', ' ')}",
                    seconds_of(loads["deep" + suffix]),
                    seconds_of(loads["root" + suffix]),
                    unit="ms",
                    scale=1e3,
                    at_most=at_most,
                )
            )
    forks_text = f"{config.memory_forks:,}"
    for mode in MEMORY_MODES:
        samples = results.memory.get(mode)
        if not samples:
            continue
        ratio = median([s.ratio for s in samples])  # the median of the per-run ratios
        if mode == "mixed":
            name = (
                f"(m) memory: session + {forks_text} forks (half fork, half fork_at) vs "
                f"the {config.memory_messages:,}-msg session alone"
            )
        else:
            name = f"    same, {forks_text} x {mode}" + (" (points spread evenly)" if mode == "fork_at" else "")
        target, met = ratio_target(ratio, at_most=1.2 if mode == "mixed" else None)
        lines.append(
            Line(
                name,
                "B",
                median([s.with_forks for s in samples]),
                median([s.one for s in samples]),
                ratio,
                target,
                met,
                tuple(s.ratio for s in samples),
                short=f"(m) {mode}",
            )
        )
    return lines


def _breakdown(item: Footprint) -> str:
    text = f"event row {item.events:,} B + listing row {item.listing:,} B"
    return text + (f" + {item.snapshot_rows} snapshot rows {item.snapshots:,} B" if item.snapshot_rows else "")


def notes(config: BranchConfig, results: BranchResults, lines: Sequence[Line]) -> list[str]:
    out = [
        f"(f, g, r) one store per backend holds both sessions ({config.small:,} and {config.large:,} messages of "
        f"~200 characters, alternating user/assistant, built untimed in calls of {BUILD_CALL:,}); the store stays "
        "open and each source's head is loaded (cached) before timing, as in a long-running process. "
        "A warm-up fork of each kind and a warm-up rewrite precede the runs (they fill in lazily kept prefix "
        "revisions at the fork and rewrite points)."
    ]
    for forks in results.forks:
        extra = (
            " Each SQLite fork is one committed transaction (an fsync with FULL), the same at both sizes."
            if (forks.where == "sqlite")
            else ""
        )
        out.append(
            f"(f) {forks.where}: {forks.ops} forks of each kind and size per run, the six sides interleaved; "
            f"mean per fork within a run, median over runs.{extra}"
        )
    for forks in results.forks:
        parts = [f"{KIND_LABELS[kind]} {_breakdown(forks.footprints[f'{kind}@{config.large}'])}" for kind in KINDS]
        out.append(f"(g) {forks.where}, one fork of the {config.large:,}-msg session: " + "; ".join(parts))
    out.append(
        "(g) bytes = the child's event row (len(id) + 8 + len(topic) + len(state)) + its listing row (sum of its "
        "fields' lengths, integers as 8) + any snapshot row; the source's rows are checked to be untouched. "
        "fork_replacing's event carries the ~200-character replacement message."
    )
    for rewrites in results.rewrites:
        big = rewrites.samples[config.large]
        out.append(
            f"(r) {rewrites.where}: {config.rewrites} rewrites of [n-{config.span}, n) per size per run (each "
            f"{config.span} new ~200-character messages, ids stamped by the engine); bytes per rewrite = its event "
            f"row + snapshot rows written ({sum(s.snapshot_rows for s in big)} in all runs at {config.large:,}) + "
            f"listing-row growth ({sum(s.listing_growth for s in big):+,} B in all runs); largest single rewrite "
            f"{max(s.max_bytes for s in big):,} B; replacement = msgspec.json of the 10 messages as passed "
            f"(no ids); target: at most 2 x replacement + {REWRITE_OVERHEAD:,} B."
        )
    if results.loads is not None:
        chain = results.loads.chains[0]
        snapshot = "no snapshot" if chain.root_snapshot is None else f"a snapshot at version {chain.root_snapshot}"
        out.append(
            f"(l) root: {chain.root_messages:,} messages in calls of {LOAD_CALL} ({snapshot} in the first file); "
            f"then {config.depth} forks, each of the one before (odd levels fork, even levels fork_at dropping "
            "the last message), each appending 2 messages: the deepest holds "
            f"{chain.deepest_messages:,}. cold = a new Transcripts.open() + get + close; the OS page cache is warm. "
            "The second file was written with snapshot_interval=None, so loads replay with full revision checks."
        )
    if results.memory:
        per_fork = "; ".join(
            f"{mode} {median([s.per_fork for s in samples]):,.0f} B" for mode, samples in results.memory.items()
        )
        one = median([s.one for s in results.memory["mixed"]])
        out.append(
            f"(m) tracemalloc on a fresh memory store per run (gc.collect before each reading): the session alone "
            f"{one:,.0f} B ({one / config.memory_messages:,.0f} B per message, store and cached head included); "
            f"added per fork kept (ids held, states in the store's cache of 1,024): {per_fork}. fork_at points are "
            "spread evenly, so they fill in the session's lazily kept prefix revisions."
        )
    out.append(ratio_ranges(lines))
    return out


def _to_json(config: BranchConfig, results: BranchResults, lines: Sequence[Line]) -> dict[str, Any]:
    return part_document(
        config,
        lines,
        samples={
            "forks": {
                forks.where: {side: [asdict(s) for s in samples] for side, samples in forks.samples.items()}
                for forks in results.forks
            },
            "fork_footprints": {
                forks.where: {side: asdict(item) for side, item in forks.footprints.items()} for forks in results.forks
            },
            "rewrites": {
                rewrites.where: {str(size): [asdict(s) for s in samples] for size, samples in rewrites.samples.items()}
                for rewrites in results.rewrites
            },
            "loads": {}
            if results.loads is None
            else {side: [s.seconds for s in samples] for side, samples in results.loads.samples.items()},
            "memory": {mode: [asdict(s) for s in samples] for mode, samples in results.memory.items()},
        },
        notes="forks: seconds per fork and bytes of all forks of a run; rewrites: seconds and bytes per run; "
        "loads: seconds per cold load; memory: traced bytes",
    )


# -- options ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The branching part's own options (``--runs``, ``--quick``,
    ``--synchronous`` and ``--json`` come from the suite's)."""
    group = parser.add_argument_group("branching part")
    group.add_argument(
        "--large",
        type=int,
        default=None,
        help="(f), (g), (r): messages of the large session (default 100000; 10000 with --quick)",
    )
    group.add_argument(
        "--fork-ops",
        type=int,
        default=None,
        help="(f): forks of each kind and size per run on SQLite (default 50); memory does 4x as many",
    )


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> BranchConfig:
    quick = bool(args.quick)
    fork_ops = args.fork_ops if args.fork_ops is not None else (20 if quick else 50)
    config = BranchConfig(
        runs=runs_from_args(args),
        synchronous=args.synchronous,
        large=args.large if args.large is not None else (10_000 if quick else 100_000),
        fork_ops_memory=4 * fork_ops,
        fork_ops_sqlite=fork_ops,
        rewrites=5 if quick else 10,
        chain_root=2000 if quick else 10_000,
        memory_messages=2000 if quick else 10_000,
        memory_forks=200 if quick else 1000,
        quick=quick,
    )
    if config.runs < 1 or config.fork_ops_sqlite < 1:
        parser.error("--runs and --fork-ops must be positive")
    if config.large <= config.small or config.large < 2 * config.span:
        parser.error(f"--large must be above {config.small}")
    return config


def run_and_report(config: BranchConfig) -> dict[str, Any]:
    """Run the branching part, print its table and notes; return its JSON document."""
    started = time.perf_counter()
    results = run_branching(config)
    lines = build_lines(config, results)
    print_report(
        machine_line(
            "SQLite stores: journal_mode=WAL, built with synchronous=OFF, timed with "
            f"synchronous={config.synchronous.upper()}",
            config.runs,
            config.quick,
        ),
        format_table(lines, measured="measured (median)", compared="compared with (median)"),
        notes(config, results, lines),
        targets_met(lines, f"branching part took {time.perf_counter() - started:.0f} s"),
    )
    return _to_json(config, results, lines)
