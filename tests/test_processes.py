"""Two processes appending to one session: every acknowledged append survives."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Message, Transcripts
from tests._workers import append_many, race_to_create
from tests.conftest import BACKENDS, StoreFactory, store_factories

PER_PROCESS = 60


@pytest.fixture(params=[kind for kind in BACKENDS if kind != "memory"])  # memory lives in one process
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


@pytest.mark.slow
def test_two_processes_append_to_one_session(shared_stores: StoreFactory) -> None:
    stores = shared_stores
    target = stores.target
    assert target is not None
    store = stores.open()
    sid = store.create(title="contended")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # both children are importing by then
    workers = [
        context.Process(target=append_many, args=(target, stores.prefix, sid, name, PER_PROCESS, start_at, results))
        for name in ("left", "right")
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    failures = [f"{name}: {texts}" for name, texts, conflicts in reports if conflicts < 0]
    assert not failures, failures
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    acknowledged = [text for _, texts, _ in reports for text in texts]
    assert len(acknowledged) == 2 * PER_PROCESS
    final = Transcripts.open(target, table_prefix=stores.prefix)
    try:
        texts = [message.text for message in final.get(sid).messages]
        assert sorted(texts) == sorted(acknowledged), "an acknowledged append is missing or doubled"
        for name in ("left", "right"):  # each writer's own order is kept
            assert [t for t in texts if t.startswith(name)] == [f"{name}-{i}" for i in range(PER_PROCESS)]
        assert final.verify(sid).version == 1 + 2 * PER_PROCESS
        assert final.sessions()[0].message_count == 2 * PER_PROCESS
    finally:
        final.close()


def test_a_refusal_decided_on_a_stale_cached_head_is_decided_again(tmp_path: Path) -> None:
    """Another store object answered the tool call and grew the transcript:
    this one's cached head is behind, and must not refuse what the stored
    head allows."""
    from engine import ToolResult, ToolUse

    path = tmp_path / "store.db"
    first, second = Transcripts.open(path), Transcripts.open(path)
    sid = second.create()
    second.append(sid, Message.user("book"), Message.assistant(ToolUse(id="c1", name="book", arguments="{}")))
    first.append(sid, Message.tool_results(ToolResult.of("c1", "booked")))
    second.append(sid, Message.user("thanks"))  # its cached head ends with an unanswered tool call
    first.get(sid)
    first.append(sid, Message.assistant("You are welcome."))
    commit = second.rewrite(sid, 4, 5, [Message.assistant("Glad to help.")], "edit")  # 5 messages, not 4
    assert commit.count_after == 5
    assert [m.text for m in first.get(sid).messages][-2:] == ["thanks", "Glad to help."]


def test_processes_opening_one_new_file_at_once_all_wait_and_open(tmp_path: Path) -> None:
    """The first to open a new file makes it a WAL database; SQLite answers
    the others "database is locked" at once, without its busy timeout,
    which they must wait out (they failed about one race in twenty)."""
    trials, racers = 60, 2
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(racers), context.Queue()
    workers = [
        context.Process(target=race_to_create, args=(str(tmp_path), trials, barrier, results)) for _ in range(racers)
    ]
    for worker in workers:
        worker.start()
    errors = [error for _ in workers for error in results.get(timeout=300)]
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    for trial in range(trials):
        with Transcripts.open(str(tmp_path / f"{trial}.db"), create=False) as store:
            assert len(store.sessions()) == racers
