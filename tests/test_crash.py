"""kill -9 crash harness: a child process writes continuously and reports
each operation before and after the engine call; the parent kills it with
SIGKILL at a random moment, reopens the store and checks that:

- single-message appends: every acknowledged append is there exactly once, in
  order, and nothing else but possibly the one in flight;
- batches of 50 sizeable messages in one ``append``: every batch is all there
  or all absent (never torn), and every acknowledged batch is there;
- ``ingest_many`` of a realtime recording in chunks: every acknowledged chunk
  is stored (redelivering it stores nothing), and after redelivering the
  whole stream the session equals an uninterrupted run of the same stream
  (messages, revision, version, usage and the audit log itself);

and, after every crash, that ``verify()`` passes for every session and that
``sessions()`` agrees with ``get()``. The next round's child writes on the
store the previous one crashed (recovery is part of the test), with a small
``snapshot_interval`` so that kills also land on snapshot writes.

Environment: ``ENGINE_CRASH_ROUNDS`` (default 3) kills per test and backend;
``ENGINE_CRASH_SEED`` fixes the kill delays (default: random, shown in every
failure). Runs on SQLite and, with ``ENGINE_TEST_POSTGRES_DSN``, PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine import Session, SessionNotFound, Transcripts
from tests._crash_workers import batch_messages, crash_appends, crash_ingest, single_text
from tests.conftest import BACKENDS, StoreFactory, store_factories
from tests.recordings import RECORDINGS

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("ENGINE_CRASH_ROUNDS", "3"))
SEED = int(os.environ.get("ENGINE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
SNAPSHOT_INTERVAL = 7  # the children's: kills land on snapshot writes too
BATCH, TEXT_SIZE = 50, 1500  # one append of ~75 KB
CHUNK = 5  # raw events per ingest_many call
# Recordings the ingest rounds cycle through, first those with the most going on.
STREAMS = [
    "ga-reconnect-reseed",
    "webrtc-beta-ten-minutes",
    "ga-out-of-band",
    *sorted(set(RECORDINGS) - {"ga-reconnect-reseed", "webrtc-beta-ten-minutes", "ga-out-of-band"}),
]
KILL_AFTER = (0.05, 1.0)  # seconds after the child reports it started
STARTUP_TIMEOUT = 60.0


@pytest.fixture(params=[kind for kind in BACKENDS if kind != "memory"])  # memory lives in one process
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


# -- running and killing a child ----------------------------------------------------


@dataclass
class Crash:
    """What a killed child reported: the operations it began and finished."""

    begun: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    @property
    def in_flight(self) -> str | None:
        """The operation the kill interrupted, if it was inside an engine call."""
        if self.begun and (not self.acked or self.begun[-1] != self.acked[-1]):
            return self.begun[-1]
        return None


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text()
    return text.split("\n")[:-1]  # only complete lines


def run_and_kill(
    worker: Callable[..., None], args: tuple[Any, ...], log: Path, rng: random.Random, seed_note: str
) -> Crash:
    """Start ``worker(log, *args)`` in a new process, SIGKILL it at a random
    moment after it reported ``started``, and read what it reported. On
    PostgreSQL (``args[0]`` a DSN) the server's side of the child's
    connections is waited for too: a transaction whose COMMIT the child sent
    before it died still lands, and the checks must see it if it does."""
    context = multiprocessing.get_context("spawn")
    dsn = args[0] if isinstance(args[0], str) and args[0].startswith("postgresql://") else None
    name = f"crash-child-{os.getpid()}-{time.monotonic_ns()}"
    if dsn is not None:
        args = (f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}", *args[1:])
    child = context.Process(target=worker, args=(str(log), *args), daemon=True)
    child.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "started" not in _lines(log):
            assert child.is_alive(), f"the child died before starting: {_lines(log)} {seed_note}"
            assert time.monotonic() < deadline, f"the child did not start within {STARTUP_TIMEOUT} s {seed_note}"
            time.sleep(0.005)
        time.sleep(rng.uniform(*KILL_AFTER))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    finally:
        if child.is_alive():  # only if an assertion above stopped us
            child.kill()
            child.join(timeout=30)
        if dsn is not None:
            _wait_for_the_server_to_drop(dsn, name, seed_note)
    lines = _lines(log)
    errors = [line for line in lines if line.startswith("error")]
    assert not errors, f"the child failed before it was killed: {errors[0]} {seed_note}"
    assert "finished" not in lines, f"the child finished before it was killed {seed_note}"
    assert child.exitcode == -signal.SIGKILL, f"child exit code {child.exitcode} {seed_note}"
    crash = Crash()
    for line in lines:
        kind, _, op = line.partition(" ")
        if kind == "begin":
            crash.begun.append(op)
        elif kind == "ack":
            assert crash.begun and crash.begun[-1] == op, f"ack {op} without its begin {seed_note}"
            crash.acked.append(op)
    return crash


def _wait_for_the_server_to_drop(dsn: str, name: str, seed_note: str) -> None:
    """Wait until PostgreSQL has ended every backend of the connections
    named ``name`` (a killed client's transaction is finished, committed or
    rolled back, only when its backend is gone)."""
    import psycopg

    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as connection:
        while connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, f"the server kept the killed child's connections 30 s {seed_note}"
            time.sleep(0.01)


# -- checks after every crash ----------------------------------------------------------


def check_whole_store(store: Transcripts, expected_ids: set[str], note: str) -> dict[str, Session]:
    """``verify()`` every session; ``sessions()`` agrees with ``get()``."""
    listed = {info.id: info for info in store.sessions()}
    assert set(listed) == expected_ids, f"sessions() lists {sorted(listed)}, expected {sorted(expected_ids)} {note}"
    heads = {}
    for sid, info in listed.items():
        head = store.get(sid)
        assert store.verify(sid) == head, f"verify() differs from get() for {sid} {note}"
        assert (info.version, info.message_count, info.revision, info.title) == (
            head.version,
            len(head.messages),
            head.revision,
            head.title,
        ), f"sessions() row of {sid} differs from get() {note}"
        heads[sid] = head
    return heads


def reopened(stores: StoreFactory, **options: Any) -> Transcripts:
    assert stores.target is not None
    return Transcripts.open(stores.target, table_prefix=stores.prefix, **options)


def first_difference(expected: Sequence[str], got: Sequence[str]) -> str:
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return f"first difference at message {index}: expected {want[:40]!r}, got {have[:40]!r}"
    return f"{len(got)} messages, {len(expected)} expected"


class Tally:
    """How the kills landed, shown with ``pytest -rP``."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.rounds = self.inside = self.landed = self.acked = 0

    def add(self, crash: Crash, landed: bool) -> None:
        self.rounds += 1
        self.acked += len(crash.acked)
        self.inside += crash.in_flight is not None
        self.landed += landed

    def show(self) -> None:
        print(
            f"{self.name}[{self.kind}]: {self.rounds} kills, {self.inside} inside an engine call, "
            f"{self.landed} of those after the commit (stored, unacknowledged), {self.acked} operations "
            f"acknowledged, seed {SEED}"
        )


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, BATCH], ids=["single", "batch"])
def test_appends_survive_kill_9(shared_stores: StoreFactory, tmp_path: Path, batch: int) -> None:
    stores = shared_stores
    rng = random.Random(f"{SEED}-appends-{batch}-{stores.kind}")
    with reopened(stores) as store:
        sid = store.create(title=f"appends of {batch}")

    def texts_of(op: int) -> list[str]:
        return [single_text(op)] if batch == 1 else [m.text for m in batch_messages(op, batch, TEXT_SIZE)]

    present: list[str] = []  # what the store holds, checked, after the previous round
    tally = Tally("appends" if batch == 1 else "batches", stores.kind)
    for round_ in range(ROUNDS):
        note = f"(round {round_}, {stores.kind}, ENGINE_CRASH_SEED={SEED})"
        first_op = len(present) // batch
        crash = run_and_kill(
            crash_appends,
            (stores.target, stores.prefix, sid, first_op, batch, TEXT_SIZE, SNAPSHOT_INTERVAL),
            tmp_path / f"appends-{round_}.log",
            rng,
            note,
        )
        acked = [int(op) for op in crash.acked]
        assert acked == list(range(first_op, first_op + len(acked))), f"the child skipped an op {note}"
        expected = present + [text for op in acked for text in texts_of(op)]
        in_flight = None if crash.in_flight is None else int(crash.in_flight)
        with reopened(stores) as store:
            head = store.get(sid)
            got = [m.text for m in head.messages]
            landed = in_flight is not None and got == [*expected, *texts_of(in_flight)]
            if not landed:
                if batch > 1 and len(got) != len(expected) and got[: len(expected)] == expected:
                    extra = got[len(expected) :]
                    pytest.fail(
                        f"torn batch: {len(extra)} messages after the {len(acked)} acknowledged batches, "
                        f"not 0 or {batch} (in flight: {in_flight}; first extra {extra[0][:30]!r}) {note}"
                    )
                assert got == expected, (
                    f"after the kill the session holds {len(got)} messages; {len(expected)} acknowledged"
                    f"{'' if in_flight is None else f' (+{batch} in flight)'}: {first_difference(expected, got)} "
                    f"{note}"
                )
            assert head.version == 1 + len(got) // batch, f"v{head.version} for {len(got)} messages {note}"
            check_whole_store(store, {sid}, note)
        tally.add(crash, landed)
        present = got
    tally.show()
    assert tally.acked > 0, "no child ever acknowledged a write: the kills came too early to test anything"


def _log(store: Transcripts, sid: str) -> list[tuple[Any, ...]]:
    return [
        (entry.kind, entry.summary, entry.revision, getattr(entry.event, "event", None)) for entry in store.history(sid)
    ]


def _signature(store: Transcripts, sid: str) -> tuple[Any, ...]:
    """Everything a redelivery must reproduce: the transcript (with provider
    ids and incomplete marks), revision, version, usage, and the audit log
    (each entry's kind, summary, revision and the realtime event it records)."""
    head = store.verify(sid)
    messages = [(m.role, m.text, m.incomplete, m.provider_item_id) for m in head.messages]
    return messages, head.revision, head.version, head.usage, _log(store, sid)


def _ingest(store: Transcripts, sid: str, events: Sequence[dict[str, Any]]) -> list[int]:
    """``events`` in chunks of ``CHUNK``; the session's version after each chunk."""
    versions = []
    for start in range(0, len(events), CHUNK):
        outcomes = store.ingest_many(sid, events[start : start + CHUNK], provider="openai")
        versions.append(outcomes[-1].version)
    return versions


def _mismatch(name: str, want: Any, have: Any) -> str:
    if not isinstance(want, list):
        return f"{name}: expected {want!r}, got {have!r}"
    index = next((i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), None)
    if index is None:
        return f"{name} differ: {len(have)} entries, {len(want)} expected"
    return f"{name} differ, first at {index}: expected {want[index]!r}, got {have[index]!r}"


def _differences(reference: tuple[Any, ...], got: tuple[Any, ...]) -> str:
    names = ("messages", "revision", "version", "usage", "audit log")
    return "; ".join(
        _mismatch(name, want, have) for name, want, have in zip(names, reference, got, strict=True) if want != have
    )


@dataclass
class Reference:
    """An uninterrupted run of a stream: its signature, and the session's
    version after its creation and after each chunk."""

    signature: tuple[Any, ...]
    boundaries: list[int]


def test_ingest_many_survives_kill_9_and_redelivery(shared_stores: StoreFactory, tmp_path: Path) -> None:
    stores = shared_stores
    rng = random.Random(f"{SEED}-ingest-{stores.kind}")
    references: dict[str, Reference] = {}
    expected_ids: set[str] = set()
    tally = Tally("ingest_many", stores.kind)
    for round_ in range(ROUNDS):
        name = STREAMS[round_ % len(STREAMS)]
        events = RECORDINGS[name].events
        note = f"(round {round_}, {name}, {stores.kind}, ENGINE_CRASH_SEED={SEED})"
        if name not in references:  # an uninterrupted run of the same stream, in the same chunks
            with reopened(stores) as store:
                reference = store.create(session_id=f"reference-{name}")
                boundaries = [1, *_ingest(store, reference, events)]
            with reopened(stores) as store:
                references[name] = Reference(_signature(store, reference), boundaries)
            expected_ids.add(reference)
        want = references[name]
        crash = run_and_kill(
            crash_ingest,
            (stores.target, stores.prefix, f"r{round_}", events, CHUNK, SNAPSHOT_INTERVAL),
            tmp_path / f"ingest-{round_}.log",
            rng,
            note,
        )
        created: set[int] = set()
        acked_chunks: dict[int, list[int]] = {}
        for op in crash.acked:
            number, _, what = op.partition(" ")
            if what == "create":
                created.add(int(number))
            else:
                acked_chunks.setdefault(int(number), []).append(int(what))
        sids = {number: f"r{round_}-{number}" for number in sorted({int(op.split()[0]) for op in crash.begun})}
        landed = False
        with reopened(stores) as store:
            for number, sid in sids.items():
                try:
                    store.get(sid)
                except SessionNotFound:
                    assert number not in created, f"the acknowledged create of {sid} is lost {note}"
                    assert crash.in_flight == f"{number} create", f"{sid} is missing {note}"
                    continue
                expected_ids.add(sid)
            heads = check_whole_store(store, expected_ids, note)
            for number, sid in sids.items():
                if sid not in heads:
                    continue
                chunks = acked_chunks.get(number, [])
                assert chunks == list(range(len(chunks))), f"{sid}: the child skipped a chunk {note}"
                # The log is the uninterrupted run's, cut after the acknowledged
                # chunks, or after the one in flight: never inside a chunk.
                version = heads[sid].version
                allowed = {want.boundaries[len(chunks)]}
                if crash.in_flight == f"{number} {len(chunks)}":
                    allowed.add(want.boundaries[len(chunks) + 1])
                if version not in allowed:
                    pytest.fail(
                        f"{sid}: after {len(chunks)} acknowledged chunks the session is at v{version}, not "
                        f"{' or '.join(f'v{v}' for v in sorted(allowed))} as in the uninterrupted run "
                        f"({'an acknowledged chunk is lost' if version < min(allowed) else 'a chunk is torn'}) {note}"
                    )
                landed = landed or crash.in_flight == f"{number} create" or version != want.boundaries[len(chunks)]
                log = _log(store, sid)
                assert log == want.signature[4][:version], (
                    f"{sid}: the log after the kill is not a prefix of the uninterrupted run's "
                    f"({_mismatch('audit log', want.signature[4][:version], log)}) {note}"
                )
                # Redelivering the acknowledged chunks stores nothing.
                assert _ingest(store, sid, events[: len(chunks) * CHUNK])[-1:] in ([], [version]), (
                    f"{sid}: redelivering the acknowledged chunks stored events again {note}"
                )
        with reopened(stores) as store:  # a cold reopen, then the whole stream redelivered
            for sid in sids.values():
                if sid not in expected_ids:
                    store.create(session_id=sid)  # its create was in flight and did not land
                    expected_ids.add(sid)
                _ingest(store, sid, events)
        with reopened(stores) as store:
            for sid in sids.values():
                got = _signature(store, sid)
                assert got == want.signature, (
                    f"{sid}: after the kill and a redelivery of the whole stream, "
                    f"{_differences(want.signature, got)} {note}"
                )
            check_whole_store(store, expected_ids, note)
        tally.add(crash, landed)
    tally.show()
    assert tally.acked > 0, "no child ever acknowledged a write: the kills came too early to test anything"
