"""``get(sid, last=N)``: the newest messages from the records written since
the newest snapshot's chain checkpoint, on every backend; the whole checked
log when those do not hold the tail; tampering caught either way. Expected
messages are the ones the tests append ("m0", "m1", ...)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import CorruptStore, InvalidArgument, Message, SessionNotFound, Transcripts
from engine.store import Record, SessionRow, legacy_head_of
from engine.store._chain import seal_of
from tests.conftest import StoreFactory


def _long_session(store: Transcripts, count: int = 300) -> str:
    """``count`` appends of one message each: version n + 1 holds "m{n}"."""
    sid = store.create()
    for number in range(count):
        store.append(sid, Message.user(f"m{number}") if number % 2 else Message.assistant(f"m{number}"))
    return sid


class ReadSpy:
    """Records which record ranges the store's backend reads."""

    def __init__(self, store: Transcripts) -> None:
        self.backend = store._repository.backend
        self.reads: list[tuple[int, int | None]] = []
        self.original = self.backend.read

    def __enter__(self) -> ReadSpy:
        def read(session_id: str, *, after: int = 0, upto: int | None = None) -> list[Record]:
            self.reads.append((after, upto))
            return self.original(session_id, after=after, upto=upto)

        self.backend.read = read  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.read = self.original  # type: ignore[method-assign]


@pytest.fixture
def long(stores: StoreFactory) -> Iterator[tuple[StoreFactory, str]]:
    sid = _long_session(stores.open())
    yield stores, sid


def test_the_newest_messages_come_from_the_records_since_the_checkpoint(long: tuple[StoreFactory, str]) -> None:
    stores, sid = long
    store = stores.open()  # cold: nothing cached
    with ReadSpy(store) as spy:
        tail = store.get(sid, last=20)
    assert [m.text for m in tail.messages] == [f"m{n}" for n in range(280, 300)]
    assert (tail.start, tail.message_count, tail.version) == (280, 300, 301)
    # The snapshot at version 301 resumes the chain after record 256 (spans of 64).
    assert spy.reads == [(256, None)]  # to the end: an event past the row would be damage
    history = store.history(sid)
    assert list(tail.written_at) == [history[n + 1].at for n in range(280, 300)]
    with ReadSpy(store) as spy:
        assert store.get(sid, last=5).messages == tail.messages[-5:]
    assert spy.reads == []  # kept while the listing row shows the same head


def test_after_an_erasure_the_newest_messages_still_come_from_the_checkpoint(long: tuple[StoreFactory, str]) -> None:
    """An erasure re-links the chain from the erased record on; the
    checkpoints its snapshots keep are moved with it (they were left
    pointing at the old chain, so every later tail read the whole log)."""
    stores, sid = long
    store = stores.open()
    early = store.get(sid).messages[3]
    store.erase(sid, early.id)
    cold = stores.open()
    with ReadSpy(cold) as spy:
        tail = cold.get(sid, last=3)
    assert [m.text for m in tail.messages] == ["m297", "m298", "m299"]
    assert spy.reads == [(256, None)]
    assert cold.verify(sid).messages[3].erased is not None  # every checkpoint checked against the log


def test_a_store_erased_by_an_earlier_build_still_verifies(tmp_path: Path) -> None:
    """Earlier builds left the checkpoints pointing at the chain before an
    erasure: such a store is healthy, and verify must not call it damaged."""
    path, sid = _sqlite_long(tmp_path)
    with sqlite3.connect(path) as connection:
        before = connection.execute("SELECT version, state FROM transcripts_snapshots").fetchall()
    connection.close()
    with Transcripts.open(path) as store:
        store.erase(sid, store.get(sid).messages[3].id)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version, state FROM transcripts_snapshots").fetchall() != before
        connection.executemany(
            "UPDATE transcripts_snapshots SET state = ? WHERE version = ?", [(s, v) for v, s in before]
        )
    connection.close()
    with Transcripts.open(path) as store:
        assert store.verify(sid).messages[3].erased is not None
        assert [m.text for m in store.get(sid, last=2).messages] == ["m298", "m299"]


def test_a_tail_longer_than_the_checkpoint_holds_reads_the_whole_log(long: tuple[StoreFactory, str]) -> None:
    stores, sid = long
    store = stores.open()
    tail = store.get(sid, last=100)
    assert [m.text for m in tail.messages] == [f"m{n}" for n in range(200, 300)]
    assert [m.text for m in store.get(sid, last=1000).messages] == [f"m{n}" for n in range(300)]
    assert store.get(sid, last=0).messages == ()


def test_rewrites_erasures_and_forks_show_in_the_tail(stores: StoreFactory) -> None:
    store = stores.open()
    sid = _long_session(store, 270)
    store.rewrite(sid, 265, 268, [Message.user("r1")], "edit")  # m265..m267 -> r1
    erased = store.get(sid).messages[262]
    store.erase(sid, erased.id, reason="request")
    fork = store.fork_at(sid, 266)
    store.append(fork, Message.user("f1"), Message.assistant("f2"))
    store = stores.open()
    expected = list(store.get(sid).messages)[-8:]
    assert [m.text for m in expected] == ["m260", "m261", "", "m263", "m264", "r1", "m268", "m269"]
    assert list(store.get(sid, last=8).messages) == expected
    fork_tail = stores.open().get(fork, last=5)
    assert [m.text for m in fork_tail.messages] == ["m263", "m264", "r1", "f1", "f2"]
    assert fork_tail.messages[:3] == store.get(sid).messages[263:266]


@pytest.mark.parametrize("last", [-1, "3", True, 2.0])
def test_bad_counts_are_refused(stores: StoreFactory, last: Any) -> None:
    store = stores.open()
    sid = store.create()
    with pytest.raises(InvalidArgument, match="last="):
        store.get(sid, last=last)
    with pytest.raises(InvalidArgument, match="not both"):
        store.get(sid, 1, last=1)  # type: ignore[call-overload]
    with pytest.raises(SessionNotFound):
        store.get("no-such-session", last=1)


def _sqlite_long(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    sid = _long_session(store)
    store.close()
    return path, sid


def test_an_altered_record_in_the_tail_is_caught(tmp_path: Path) -> None:
    path, sid = _sqlite_long(tmp_path)
    with sqlite3.connect(path) as connection:
        (state,) = connection.execute("SELECT state FROM transcripts_events WHERE originator_version = 300").fetchone()
        connection.execute(
            "UPDATE transcripts_events SET state = ? WHERE originator_version = 300",
            (bytes(state).replace(b"m298", b"m999"),),
        )
    with pytest.raises(CorruptStore):
        Transcripts.open(path).get(sid, last=3)


def test_a_damaged_checkpoint_is_a_hint_the_whole_log_overrules(tmp_path: Path) -> None:
    path, sid = _sqlite_long(tmp_path)
    with sqlite3.connect(path) as connection:
        for version, state in connection.execute("SELECT version, state FROM transcripts_snapshots").fetchall():
            schema, at, digest, start, _ = msgspec.msgpack.decode(state)
            damaged = msgspec.msgpack.encode((schema, at, digest, start, bytes(32)))  # a wrong link
            assert damaged != state
            connection.execute("UPDATE transcripts_snapshots SET state = ? WHERE version = ?", (damaged, version))
    store = Transcripts.open(path)
    with ReadSpy(store) as spy:
        tail = store.get(sid, last=3)
    assert [m.text for m in tail.messages] == ["m297", "m298", "m299"]
    assert spy.reads[-1] == (0, None)  # the whole log, checked
    with pytest.raises(CorruptStore, match=r"keeps a chain checkpoint .* that the log does not give"):
        store.verify(sid)  # the damage is still reported


def test_a_store_with_the_heads_of_earlier_builds_reads_and_moves_on(tmp_path: Path) -> None:
    """Earlier builds kept one running hash as the head; their stores read,
    and a session takes the new head at its next write."""
    path, sid = _sqlite_long(tmp_path)
    with sqlite3.connect(path) as connection:
        records = [
            Record(version, topic, bytes(state))
            for version, topic, state in connection.execute(
                "SELECT originator_version, topic, state FROM transcripts_events WHERE originator_id = ? "
                "ORDER BY originator_version",
                (sid,),
            )
        ]
        found = connection.execute(
            "SELECT session_id, title, created_at, updated_at, message_count, revision, version, head, seal "
            "FROM transcripts_sessions WHERE session_id = ?",
            (sid,),
        ).fetchone()
        # Those builds kept no listing summary either.
        row = SessionRow(*found)._replace(head=legacy_head_of(sid, records).hex())
        row = row._replace(seal=seal_of(row, None))
        connection.execute(
            "UPDATE transcripts_sessions SET head = ?, seal = ?, summary = NULL WHERE session_id = ?",
            (row.head, row.seal, sid),
        )
    store = Transcripts.open(path)
    assert [m.text for m in store.get(sid, last=2).messages] == ["m298", "m299"]
    assert len(store.verify(sid).messages) == 300
    store.append(sid, Message.user("m300"))
    with sqlite3.connect(path) as connection:
        (head,) = connection.execute("SELECT head FROM transcripts_sessions WHERE session_id = ?", (sid,)).fetchone()
    assert head != legacy_head_of(sid, [*records, store._repository.records(sid)[-1]]).hex()
    assert [m.text for m in Transcripts.open(path).get(sid, last=2).messages] == ["m299", "m300"]


def test_the_async_twin_reads_tails_and_pages(tmp_path: Path) -> None:
    from engine import AsyncTranscripts

    async def run() -> None:
        store = await AsyncTranscripts.open(tmp_path / "store.db")
        sid = await store.create(title="long")
        for number in range(130):
            await store.append(sid, Message.user(f"m{number}"))
        tail = await store.get(sid, last=3)
        assert [m.text for m in tail.messages] == ["m127", "m128", "m129"]
        assert [entry.version for entry in await store.history(sid, limit=2)] == [130, 131]
        assert [info.id for info in await store.sessions(title="LONG", limit=1)] == [sid]
        await store.close()

    import asyncio

    asyncio.run(run())
