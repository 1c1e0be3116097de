"""Cross-process consistency under load: three writer processes append to one
shared session and each to a session of its own (one in batches) while
reader processes open fresh stores over and over and read every session every
way: ``sessions()``, ``get``, ``history``, time travel by version, revision
and time, ``verify()``, cross-checking the answers (a listing row against the
session at its version, a past version as a prefix of the head, each
writer's calls whole, in order and without gaps).

Writers use small, different ``snapshot_interval``s, so snapshots are written
all through the run, and readers open with snapshots on or off at random.

On this healthy store a reader must never see ``CorruptStore``, an exception
that is not an ``EngineError``, a typed error a valid query cannot deserve
(``SessionNotFound`` for a listed session, ...) or two answers that cannot
both be true; ``StorageError``s other than ``CorruptStore`` (a busy database)
are allowed and counted. Every acknowledged write must be in the store at the
end, and readers must have done real work.

Environment: ``ENGINE_STRESS_SECONDS`` (default 4) is how long writers and
readers run, per backend; ``ENGINE_STRESS_READERS`` (default 3) how many
readers. Runs on SQLite and, with ``ENGINE_TEST_POSTGRES_DSN``, PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Transcripts
from tests._crash_workers import ordered_by_writer, stress_reader, stress_writer
from tests.conftest import BACKENDS, StoreFactory, store_factories

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("ENGINE_STRESS_SECONDS", "4"))
READERS = int(os.environ.get("ENGINE_STRESS_READERS", "3"))
STARTUP = 4.0  # seconds for the children to import before they start together
# name: (session id, messages per call) cycled through, snapshot_interval
WRITERS: dict[str, tuple[list[tuple[str, int]], int]] = {
    "w0": ([("shared", 1), ("solo-0", 1)], 3),
    "w1": ([("shared", 1), ("solo-1", 1)], 5),
    "w2": ([("batches", 20), ("shared", 5)], 4),
}
SESSIONS = sorted({sid for plan, _ in WRITERS.values() for sid, _ in plan})
MIN_READS = 5  # per reader: a session read whole, every way, without error
MIN_WRITES = 20  # per writer and session


@pytest.fixture(params=[kind for kind in BACKENDS if kind != "memory"])  # memory lives in one process
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


def test_readers_of_fresh_stores_see_consistent_sessions_while_writers_append(shared_stores: StoreFactory) -> None:
    stores = shared_stores
    target = stores.target
    assert target is not None
    with Transcripts.open(target, table_prefix=stores.prefix) as store:
        for sid in SESSIONS:
            store.create(title=sid, session_id=sid)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + STARTUP
    stop_at = start_at + SECONDS
    children = [
        context.Process(
            target=stress_writer,
            args=(target, stores.prefix, name, plan, interval, start_at, stop_at, results, MIN_WRITES),
            daemon=True,
        )
        for name, (plan, interval) in WRITERS.items()
    ] + [
        context.Process(
            target=stress_reader,
            args=(target, stores.prefix, f"r{i}", SESSIONS, start_at, stop_at, results),
            daemon=True,
        )
        for i in range(READERS)
    ]
    for child in children:
        child.start()
    try:
        reports: dict[str, dict[str, Any]] = {}
        for _ in children:
            _, name, report = results.get(timeout=STARTUP + SECONDS + 180)
            reports[name] = report
        for child in children:
            child.join(timeout=60)
            assert child.exitcode == 0, f"a child exited with {child.exitcode}"
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(timeout=30)

    # Writers: no error but lost races (retried), and real work.
    errors = {name: report["error"] for name, report in reports.items() if "error" in report}
    assert not errors, f"a process failed: {errors}"
    for name in WRITERS:
        made = {sid: len(texts) for sid, texts in reports[name]["acknowledged"].items()}
        assert min(made.values()) >= MIN_WRITES, f"writer {name} wrote too little to test anything: {made}"

    # The store at the end, once the writers are done: healthy, with every
    # acknowledged write, once, in each writer's order.
    with Transcripts.open(target, table_prefix=stores.prefix) as store:
        listed = {info.id: info for info in store.sessions()}
        assert sorted(listed) == SESSIONS
        for sid in SESSIONS:
            head = store.get(sid)
            texts = [m.text for m in head.messages]
            acknowledged = {name: reports[name]["acknowledged"].get(sid, []) for name in WRITERS}
            assert sorted(texts) == sorted(t for mine in acknowledged.values() for t in mine), (
                f"{sid}: an acknowledged append is missing or doubled"
            )
            for name, mine in acknowledged.items():
                assert [t for t in texts if t.startswith(f"{name}-")] == mine, f"{sid}: {name}'s order is lost"
            ordered_by_writer(texts, sid)
            assert store.verify(sid) == head
            info = listed[sid]
            assert (info.version, info.message_count, info.revision) == (head.version, len(texts), head.revision)
            snapshots = store._repository.backend.snapshots(sid)
            assert len(snapshots) >= head.version // 10, f"{sid}: {len(snapshots)} snapshots in {head.version} events"

    # Readers: nothing false, and real work.
    readers = {name: report for name, report in reports.items() if name not in WRITERS}
    totals = {kind: sum(r["counts"][kind] for r in readers.values()) for kind in next(iter(readers.values()))["counts"]}
    summary = f"{stores.kind}, {SECONDS} s: readers {totals}; writers " + ", ".join(
        f"{name} {reports[name]['conflicts']} lost races" for name in WRITERS
    )
    messages: dict[str, int] = {}
    for report in readers.values():
        for gist, count in report["messages"].items():
            messages[gist] = messages.get(gist, 0) + count
    summary += "".join(f"\n  {count} x {gist}" for gist, count in sorted(messages.items(), key=lambda m: -m[1]))
    print(summary)
    examples = {
        kind: "\n".join([example for r in readers.values() for example in r["examples"].get(kind, [])][:3])
        for kind in ("corrupt", "untyped", "typed", "inconsistent")
    }
    assert totals["corrupt"] == 0, f"false CorruptStore on a healthy store ({summary}):\n{examples['corrupt']}"
    assert totals["untyped"] == 0, f"exceptions that are not EngineErrors ({summary}):\n{examples['untyped']}"
    assert totals["typed"] == 0, f"typed errors a valid query cannot deserve ({summary}):\n{examples['typed']}"
    assert totals["inconsistent"] == 0, f"answers that contradict each other ({summary}):\n{examples['inconsistent']}"
    for name, report in readers.items():
        assert report["counts"]["reads"] >= MIN_READS, f"reader {name} did too little: {report['counts']}"
