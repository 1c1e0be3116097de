"""Shrunk failing examples found by the property tests and benchmarks, kept
so they can never come back."""

from __future__ import annotations

import contextlib
import enum
import json
import random
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    InvalidArgument,
    InvalidMessage,
    Message,
    SessionNotFound,
    StorageUnavailable,
    ToolResult,
    ToolUse,
    Transcripts,
)
from engine.store import Purge, Record, Rewrite
from tests.conftest import StoreFactory


def test_a_title_with_nul_is_refused_on_every_backend(store: Transcripts) -> None:
    # Found by the state machine on PostgreSQL: state.create(title='\x00')
    # failed inside the listing table's text column instead of as bad input.
    with pytest.raises(InvalidArgument):
        store.create(title="\x00")
    sid = store.create()
    with pytest.raises(InvalidArgument):
        store.set_title(sid, "a\x00b")
    assert [info.id for info in store.sessions()] == [sid]


def test_a_large_append_returns_and_other_writers_go_on(stores: StoreFactory) -> None:
    # Found by a newcomer on PostgreSQL: an append of about 5 MB never
    # returned (client and server each waited for the other in pipeline mode)
    # while it held the events table lock, so every other writer waited too.
    store, other = stores.open(), stores.open()
    big, small = store.create(), other.create()
    results: list[object] = []

    def append_big() -> None:
        try:
            results.append(store.append(big, Message.user("x" * (8 << 20))))
        except Exception as exc:  # a typed refusal would be a result too
            results.append(exc)

    writer = threading.Thread(target=append_big, daemon=True)
    writer.start()
    for _ in range(5):
        other.append(small, Message.user("still writing"))
    writer.join(timeout=60)
    assert not writer.is_alive(), "the large append did not return"
    assert isinstance(results[0], str), results[0]
    assert len(stores.open().get(big).messages[0].text) == 8 << 20
    assert len(other.get(small).messages) == 5


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///tmp/x.db", "redis://localhost"])
def test_an_unknown_url_scheme_is_named(url: str) -> None:
    # It was taken for a SQLite path ("directory does not exist").
    with pytest.raises(InvalidArgument, match="unknown URL scheme"):
        Transcripts.open(url)


def test_a_closed_store_raises_a_typed_error_on_every_backend(stores: StoreFactory) -> None:
    # SQLite and PostgreSQL raised eventsourcing's ConnectionPoolClosedError('');
    # memory went on working.
    store = stores.open()
    sid = store.create()
    store.close()
    for use in (
        lambda: store.get(sid),
        lambda: store.append(sid, Message.user("late")),
        store.sessions,
        lambda: store.history(sid),
        lambda: store.create(),
    ):
        with pytest.raises(StorageUnavailable, match="is closed"):
            use()
    store.close()  # closing twice is fine
    assert stores.open().get(sid).version == 1  # nothing was written after the close


def test_fresh_loads_beside_a_writer_never_report_corruption(stores: StoreFactory) -> None:
    # A fresh load read the events, then the newest snapshot in a second
    # query: a write landing between them gave a snapshot newer than the
    # events, and a healthy store raised CorruptStore.
    writer_store = stores.open(snapshot_interval=3)
    sid = writer_store.create()
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(600):  # bounded: every fresh load folds the whole session
                if stop.is_set():
                    return
                writer_store.append(sid, Message.user("more"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for _ in range(150):
            reader = stores.open(snapshot_interval=3)  # a cold cache: every get is a fresh load
            try:
                reader.get(sid)
            finally:
                reader.close()
            if not writer.is_alive():
                break
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not failures, failures


def test_a_damaged_sqlite_file_reads_as_typed_errors_only(tmp_path: Path) -> None:
    # Random byte flips leaked sqlite3.DatabaseError, OperationalError,
    # UnicodeDecodeError and a bare ValueError from sessions().
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), snapshot_interval=5)
    ids = []
    for n in range(3):
        ids.append(store.create(title=f"t{n}", metadata={"n": n}))
        for i in range(12):
            store.append(ids[-1], Message.user(f"hello {i} é"), Message.assistant(f"answer {i}"))
    store.close()
    data = path.read_bytes()
    rng = random.Random(20261129)
    untyped: list[str] = []
    for trial in range(120):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"damaged-{trial}.db"
        copy.write_bytes(damaged)
        try:
            opened = Transcripts.open(str(copy))
        except EngineError:
            continue
        for read in (
            opened.sessions,
            *(partial(opened.get, sid) for sid in ids),
            *(partial(opened.history, sid) for sid in ids),
            *(partial(opened.verify, sid) for sid in ids),
        ):
            try:
                read()
            except EngineError:
                pass
            except Exception as exc:  # the finding: anything untyped
                untyped.append(f"trial {trial}: {type(exc).__name__}: {exc}")
        opened.close()
    assert untyped == []


def test_events_removed_from_the_end_or_a_forged_listing_row_never_read_as_healthy(tmp_path: Path) -> None:
    # Deleting the last events passed get, history and verify: the listing
    # row still said the old version and nothing compared them.
    path = str(tmp_path / "store.db")
    store = Transcripts.open(path, snapshot_interval=None)
    sid = store.create()
    for n in range(5):
        store.append(sid, Message.user(f"message {n}"))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM transcripts_events WHERE originator_id=? AND originator_version>4", (sid,))
    damaged = Transcripts.open(path)
    with pytest.raises(CorruptStore, match="events were removed from the end"):
        damaged.get(sid)
    with pytest.raises(CorruptStore, match="events were removed from the end"):
        damaged.verify(sid)
    damaged.close()

    other = Transcripts.open(path)
    forged = other.create()
    other.append(forged, Message.user("real"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_sessions SET title='forged', message_count=9 WHERE session_id=?", (forged,))
    forger = Transcripts.open(path)
    for read in (forger.sessions, partial(forger.verify, forged)):  # the row's seal no longer matches it
        with pytest.raises(CorruptStore, match="does not match its seal"):
            read()
    forger.close()
    other.close()


def test_an_event_over_max_event_bytes_is_refused_before_anything_is_sent(stores: StoreFactory) -> None:
    # A 50 MB append used to hang PostgreSQL; now the store refuses it at once
    # (the default limit is 16 MiB) and writes nothing; the limit is a setting.
    from engine import EventTooLarge

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("kept"))
    with pytest.raises(EventTooLarge, match="max_event_bytes"):
        store.append(sid, Message.user("x" * (50 << 20)))
    small = stores.open(max_event_bytes=64 << 10)
    with pytest.raises(EventTooLarge):
        small.append(sid, *[Message.user("y" * 1000) for _ in range(100)])  # one call is one event
    small.append(sid, *[Message.user("y" * 1000) for _ in range(10)])
    with pytest.raises(InvalidArgument, match="max_event_bytes"):
        stores.open(max_event_bytes=0)
    fresh = stores.open()
    assert [m.text[:4] for m in fresh.get(sid).messages] == ["kept"] + ["yyyy"] * 10
    assert fresh.verify(sid).version == 3


def test_a_write_of_more_events_than_one_write_may_store_is_refused_and_writes_nothing(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL transaction has 2**20 feed positions: a write of more
    # events would take positions of the transactions after it. Every
    # backend refuses such a write (here with the limit lowered to 1: an
    # append with its usage is two events).
    from engine import Usage
    from engine.store import MAX_EVENTS_PER_WRITE, _backend

    assert MAX_EVENTS_PER_WRITE == 2**20 - 1
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("kept"), usage=Usage(input=1))
    monkeypatch.setattr(_backend, "MAX_EVENTS_PER_WRITE", 1)
    with pytest.raises(InvalidArgument, match="would store 2 events at once, over the 1 one write may store"):
        store.append(sid, Message.user("refused"), usage=Usage(input=1))
    store.append(sid, Message.user("one event"))
    fresh = stores.open()
    assert [m.text for m in fresh.get(sid).messages] == ["kept", "one event"]
    assert fresh.get(sid).usage.input == 1
    assert fresh.verify(sid).version == 4


def test_usage_the_tables_cannot_hold_is_refused(stores: StoreFactory) -> None:
    # Found by a newcomer: record_usage took any int, the store kept 2**64,
    # and the read model (SQLite INTEGER) then refused to catch up at all.
    from engine import Usage
    from engine.readmodel import ReadModel

    store = stores.open()
    sid = store.create()
    most = 2**63 - 1
    for usage in (Usage(input=2**64), Usage(output=most + 1)):
        with pytest.raises(InvalidArgument, match="over 9,223,372,036,854,775,807"):
            store.record_usage(sid, usage)
    store.record_usage(sid, Usage(input=most - 1, reasoning=most))
    with pytest.raises(InvalidArgument, match=r"usage\.input: 2 more tokens would bring the session's total"):
        store.append(sid, Message.user("refused"), usage=Usage(input=2))
    with pytest.raises(InvalidArgument, match=r"usage\.reasoning"):
        store.record_usage(sid, Usage(reasoning=1))
    store.append(sid, Message.user("kept"), usage=Usage(input=1))
    fresh = stores.open()
    assert fresh.get(sid).usage == Usage(input=most, reasoning=most)
    assert [m.text for m in fresh.get(sid).messages] == ["kept"]
    assert fresh.verify(sid).version == 4
    if stores.kind == "sqlite":
        model = ReadModel(":memory:")
        model.catch_up(fresh)  # every total fits its tables


def test_realtime_usage_the_tables_cannot_hold_is_rejected(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    done = {
        "type": "response.done",
        "event_id": "event_1",
        "response": {"id": "resp_1", "status": "completed", "output": [], "usage": {"input_tokens": 2**63}},
    }
    outcome = store.ingest(sid, done, provider="openai")
    assert outcome.status == "rejected" and "input_tokens" in (outcome.reason or "")
    assert store.get(sid).usage.input == 0


def test_two_messages_of_one_call_with_one_id_are_refused(stores: StoreFactory) -> None:
    # Found by a newcomer: erase(id) erases every message with that id, and
    # one append could give two messages the same id.
    from engine import InvalidMessage

    store = stores.open()
    sid = store.create()
    with pytest.raises(
        InvalidMessage, match=r"append\(\) messages\[0\] and append\(\) messages\[2\] both have the id 'm1'"
    ):
        store.append(sid, Message.user("a", id="m1"), Message.assistant("b"), Message.user("c", id="m1"))
    store.append(sid, Message.user("a", id="m1"), Message.assistant("b", id="m2"))
    with pytest.raises(
        InvalidMessage, match=r"rewrite\(\) replacement\[0\] and rewrite\(\) replacement\[1\] both have the id 'x'"
    ):
        store.rewrite(sid, 0, 2, [Message.user("c", id="x"), Message.assistant("d", id="x")], "edit")
    fresh = stores.open()
    assert [(m.id, m.text) for m in fresh.get(sid).messages] == [("m1", "a"), ("m2", "b")]
    assert fresh.verify(sid).version == 2


def test_an_erased_placeholder_no_erasure_left_is_refused(stores: StoreFactory) -> None:
    # Found by a newcomer: a message built with erased= was stored, read as
    # erased, and no MessagesErased event recorded any erasure.
    from engine import InvalidMessage

    store = stores.open()
    sid = store.create()
    forged = Message(role="user", blocks=(), erased="sha256:" + "0" * 64)
    with pytest.raises(InvalidMessage, match=r"append\(\) messages\[0\] is an erased placeholder"):
        store.append(sid, forged)
    store.append(sid, Message.user("hello"))
    with pytest.raises(InvalidMessage, match=r"fork_replacing\(\) replacement is an erased placeholder"):
        store.fork_replacing(sid, 0, forged)
    store.rewrite(sid, 0, 1, [], "edit")
    store.append(sid, Message.user("card 4111", id="card"), Message.assistant("noted"), Message.user("bye"))
    with pytest.raises(InvalidMessage, match=r"rewrite\(\) replacement\[0\] is an erased placeholder"):
        store.rewrite(sid, 2, 3, [forged], "edit")
    store.erase(sid, "card")
    placeholder, *rest = store.get(sid).messages
    # A placeholder the erasure left may be moved by a rewrite (not with another digest)
    store.rewrite(sid, 0, 3, [placeholder, rest[1]], "edit")
    altered = msgspec.structs.replace(placeholder, erased="sha256:" + "1" * 64)
    with pytest.raises(InvalidMessage, match=r"rewrite\(\) replacement\[0\] is an erased placeholder"):
        store.rewrite(sid, 0, 1, [altered], "edit")
    fresh = stores.open()
    assert [m.erased is not None for m in fresh.get(sid).messages] == [True, False]
    assert len(fresh.sessions()) == 1  # no fork was made
    assert fresh.verify(sid).version == 6  # created, appended, emptied, appended, erased, rewritten


def test_setting_and_removing_one_metadata_key_at_once_is_refused(stores: StoreFactory) -> None:
    # Found by a newcomer: the set won, and the history read "set c; removed c".
    store = stores.open()
    sid = store.create(metadata={"c": 0})
    with pytest.raises(InvalidArgument, match="would both set and remove 'c'"):
        store.update_metadata(sid, {"c": 1, "d": 2}, remove=["c"])
    assert dict(stores.open().get(sid).metadata) == {"c": 0}
    assert stores.open().verify(sid).version == 1


def test_a_with_block_on_a_closed_store_fails_at_once(stores: StoreFactory) -> None:
    # Found by a newcomer: it returned the closed store, and the error came at the first call inside.
    store = stores.open()
    store.close()
    entered = False
    with pytest.raises(StorageUnavailable, match="is closed"), store:
        entered = True
    assert not entered


def test_errors_a_newcomer_met_say_what_to_do(tmp_path: Path) -> None:
    from engine import EventTooLarge, InvalidRevision

    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("hi"))
    short = store.get(sid).revision[:19]
    for wrong in (short, "2026-11-30T13:43:01Z"):
        with pytest.raises(InvalidRevision, match=r"pass a whole revision id .* a time is a datetime"):
            store.get(sid, at=wrong)
    with pytest.raises(EventTooLarge, match=r"^creating a session would store a SessionCreated event") as raised:
        store.create(metadata={"blob": "y" * (17 << 20)})
    assert "Store less in one value" in str(raised.value) and "session '" not in str(raised.value)
    assert [info.id for info in store.sessions()] == [sid]
    with pytest.raises(InvalidArgument, match="a leading ~ is not expanded"):
        Transcripts.open("~/no-such-folder-here/x.db")


def test_a_backend_refuses_a_write_of_more_events_than_one_write_may_store(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial tester: only the facade refused, and a raw
    # backend's write of more took positions of the transactions after it.
    from engine.store import _backend

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("one"))
    backend = store._repository.backend
    row = backend.session_row(sid)
    assert row is not None
    records = backend.read(sid)
    more = [Record(3, records[1].topic, records[1].state), Record(4, records[1].topic, records[1].state)]
    monkeypatch.setattr(_backend, "MAX_EVENTS_PER_WRITE", 1)
    with pytest.raises(InvalidArgument, match="would store 2 events at once, over the 1 one write may store"):
        backend.append(sid, more, row._replace(version=4), previous_head=row.head)
    with pytest.raises(InvalidArgument, match="would store 2 events at once"):
        backend.rewrite([Rewrite(sid, (), tuple(more), row._replace(version=4), row.head)])
    assert stores.open().verify(sid).version == 2


@pytest.mark.parametrize("made", ["literal", "built at run time"])
def test_a_snapshot_of_a_field_set_to_its_default_vouches_for_the_log_read_back(
    stores: StoreFactory, made: str
) -> None:
    # Found by the engine's state machine: a status set to its default
    # ("started"; a task's "pending") left out of the live state's snapshot
    # digest (msgspec leaves out only the default object itself) but not out
    # of the same state read back from the log, so a cold load of a healthy
    # store raised CorruptStore ("the snapshot ... does not match the log").
    from engine.state.records import Task

    def text(word: str) -> str:
        return word if made == "literal" else "".join(list(word))  # the same text, another object

    store = stores.open(snapshot_interval=1)
    sid = store.create()
    store.set_status(sid, text("started"))
    store.set_task_list(sid, [Task(id="t1", description="plan", status=text("pending"))])
    store.append(sid, Message.user("hello"))
    expected = store.get(sid)
    fresh = stores.open(snapshot_interval=1)
    assert fresh.get(sid) == expected
    assert fresh.get(sid, at=3) == store.get(sid, at=3)
    assert fresh.verify(sid) == expected
    message_id = expected.messages[0].id
    assert message_id is not None
    store.erase(sid, message_id)  # the erasure keeps the snapshots' digests
    assert stores.open(snapshot_interval=1).get(sid).messages[0].erased is not None


def test_snapshots_and_loads_do_not_read_struct_annotations_again(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The canonical snapshot digest asked msgspec for each struct's fields,
    # which evaluates the class's annotations anew (about 150 µs a call):
    # every snapshot taken and every load from one paid for it again.
    import msgspec

    store = stores.open(snapshot_interval=2)
    sid = store.create()
    store.append(sid, Message.user("warm up"))  # a snapshot at version 2: each struct type is seen once
    calls = []
    fields = msgspec.structs.fields
    monkeypatch.setattr(msgspec.structs, "fields", lambda *args: calls.append(args) or fields(*args))
    for number in range(4):
        store.append(sid, Message.user(f"message {number}"))  # snapshots at versions 4 and 6
    assert stores.open(snapshot_interval=2).get(sid).version == 6  # a load from the snapshot at version 6
    assert calls == []


def test_positions_of_one_postgresql_transaction_stay_below_the_next_ones() -> None:
    from engine.store import MAX_EVENTS_PER_WRITE
    from engine.store._postgres import _PER_TRANSACTION

    assert MAX_EVENTS_PER_WRITE < _PER_TRANSACTION  # positions n = 1 .. MAX_EVENTS_PER_WRITE of a transaction


@pytest.mark.parametrize("interval", [None, 1])
def test_verify_while_another_writer_appends_is_not_corruption(stores: StoreFactory, interval: int | None) -> None:
    # Found by the cross-process stress test: verify() read every snapshot
    # (also ones newer than the log it had read) and compared its replay with
    # a head that had caught up meanwhile, so a write landing in between
    # raised CorruptStore on a healthy store.
    writer = stores.open(snapshot_interval=interval)
    sid = writer.create()
    writer.append(sid, Message.user("hello"))
    reader = stores.open()
    real_read = reader._repository.backend.read
    fired: list[int] = []

    def read_then_write(session_id: str, **options: object) -> object:
        records = real_read(session_id, **options)  # type: ignore[arg-type]
        if not fired:
            fired.append(1)
            writer.append(sid, Message.user("meanwhile"))
        return records

    reader._repository.backend.read = read_then_write  # type: ignore[method-assign]
    assert [m.text for m in reader.verify(sid).messages] == ["hello"]
    assert fired
    reader._repository.backend.read = real_read  # type: ignore[method-assign]
    assert [m.text for m in reader.verify(sid).messages] == ["hello", "meanwhile"]


def test_stores_of_different_prefixes_open_at_once_on_postgres(tmp_path: Path) -> None:
    # Found by the stress test: eventsourcing creates a function and a type
    # shared by the whole database, and the lock serialising table creation
    # was per prefix, so two prefixes opening at once failed with
    # "tuple concurrently updated".
    from tests.conftest import POSTGRES_DSN, drop_postgres_tables

    if POSTGRES_DSN is None:
        return  # PostgreSQL only; CI always sets the DSN
    prefixes = [f"topen{n}_{tmp_path.name[-6:].lower()}" for n in range(4)]
    failures: list[str] = []

    def open_repeatedly(prefix: str) -> None:
        for _ in range(5):
            try:
                Transcripts.open(POSTGRES_DSN, table_prefix=prefix).close()
            except EngineError as exc:
                failures.append(f"{prefix}: {exc}")

    threads = [threading.Thread(target=open_repeatedly, args=(prefix,)) for prefix in prefixes]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for prefix in prefixes:
            drop_postgres_tables(prefix)
    assert failures == []


def _deep(levels: int = 10_000) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


HOSTILE_CALLS = {
    # Found by the public-API fuzz test: each raised an untyped exception.
    "history of a list": lambda s, sid: s.history([]),
    "verify of a list": lambda s, sid: s.verify([]),
    "get of a lone surrogate": lambda s, sid: s.get("\ud800"),
    "history of a huge int": lambda s, sid: s.history(10**30),
    "ingest with a list for a session": lambda s, sid: s.ingest([], {"type": "x"}, provider="openai"),
    "ingest_many of None": lambda s, sid: s.ingest_many(sid, None, provider="openai"),
    "remove= None": lambda s, sid: s.update_metadata(sid, remove=None),
    "remove= a surrogate key": lambda s, sid: s.update_metadata(sid, remove=["\ud800"]),
    "rewrite with None": lambda s, sid: s.rewrite(sid, 0, 0, None),
    "a note with a surrogate": lambda s, sid: s.rewrite(sid, 0, 0, [Message.user("z")], note="\ud800"),
    "a deep reason": lambda s, sid: s.rewrite(sid, 0, 0, [Message.user("z")], reason=_deep()),
    "a deep end": lambda s, sid: s.rewrite(sid, 0, _deep(), []),
    "a deep at=": lambda s, sid: s.get(sid, at=_deep()),
    "a deep fork index": lambda s, sid: s.fork_at(sid, _deep()),
    "a deep revision to restore": lambda s, sid: s.restore(sid, _deep()),
    "a deep session id to create": lambda s, sid: s.create(session_id=_deep()),
    "a deep provider": lambda s, sid: s.ingest(sid, {"type": "x"}, provider=_deep()),
}


@pytest.mark.parametrize("call", sorted(HOSTILE_CALLS))
def test_hostile_arguments_raise_engine_errors_and_change_nothing(stores: StoreFactory, call: str) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("kept"))
    before = store.head_hash(sid)
    with pytest.raises(EngineError):
        HOSTILE_CALLS[call](store, sid)
    assert stores.open().head_hash(sid) == before


@pytest.mark.parametrize(
    "options",
    [
        {"lock_timeout": "10"},
        {"lock_timeout": None},
        {"lock_timeout": float("nan")},
        {"lock_timeout": -1},
        {"cache_size": True},
        {"snapshot_interval": _deep()},
        {"table_prefix": _deep()},
    ],
    ids=[
        "lock_timeout str",
        "lock_timeout None",
        "lock_timeout nan",
        "lock_timeout negative",
        "cache_size bool",
        "deep snapshot_interval",
        "deep table_prefix",
    ],
)
def test_open_refuses_bad_options_with_invalid_argument(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        Transcripts.open(str(tmp_path / "store.db"), **options)  # type: ignore[arg-type]


def test_synchronous_is_refused_where_it_would_do_nothing() -> None:
    # Found by a newcomer pass: synchronous="off" opened a memory or PostgreSQL
    # store without a word, and meant nothing there.
    targets: list[str | None] = [None, ":memory:", "postgresql://nobody@127.0.0.1:1/none"]
    for target in targets:
        for value in ("off", "normal", "fast"):
            with pytest.raises(InvalidArgument, match="is a setting of SQLite files"):
                Transcripts.open(target, synchronous=value)
    with Transcripts.open(synchronous="full") as store:  # what every store does: accepted
        store.create()


def test_open_refuses_invalid_paths(tmp_path: Path) -> None:
    for path in (str(tmp_path / "db-\ud800"), str(tmp_path / "db\x00tail")):
        with pytest.raises(InvalidArgument):
            Transcripts.open(path)
    assert list(tmp_path.iterdir()) == []  # no file was made under a truncated name


@pytest.mark.slow
def test_a_50_mb_append_returns_in_seconds_and_other_writers_wait_at_most_their_lock_timeout(
    stores: StoreFactory,
) -> None:
    # The bar: a 50 MB append on PostgreSQL returns a typed error or
    # succeeds within seconds, and other sessions' writers keep going (waiting
    # for the table lock at most their lock_timeout, then a typed error).
    import time

    if stores.kind == "memory":
        return
    store = stores.open(max_event_bytes=None)
    other = stores.open(lock_timeout=2)
    big, small = store.create(), other.create()
    done: list[tuple[object, float]] = []

    def append_big() -> None:
        started = time.monotonic()
        try:
            outcome: object = store.append(big, Message.user("x" * (50 << 20)))
        except EngineError as exc:
            outcome = exc
        done.append((outcome, time.monotonic() - started))

    writer = threading.Thread(target=append_big, daemon=True)
    writer.start()
    waits = []
    for n in range(5):
        started = time.monotonic()
        with contextlib.suppress(StorageUnavailable):  # waited its lock_timeout, then a typed error: allowed
            other.append(small, Message.user(f"still writing {n}"))
        waits.append(time.monotonic() - started)
    writer.join(timeout=60)
    assert not writer.is_alive(), "the 50 MB append did not return within a minute"
    outcome, seconds = done[0]
    assert isinstance(outcome, (str, EngineError)), outcome
    assert seconds < 30, f"the 50 MB append took {seconds:.1f} s"
    assert max(waits) < 2 + 3, f"another session's writer waited {max(waits):.1f} s (lock_timeout 2 s)"
    if isinstance(outcome, str):
        assert len(stores.open(max_event_bytes=None).get(big).messages[0].text) == 50 << 20


def test_a_long_load_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    # Cold loads of long logs pause the collector while decoding; it must
    # come back on, and stay off for a caller who turned it off.
    import gc

    path = str(tmp_path / "store.db")
    store = Transcripts.open(path, synchronous="normal")
    sid = store.create()
    for n in range(1100):
        store.append(sid, Message.user(f"m{n}"))
    store.close()
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            with Transcripts.open(path) as again:
                assert len(again.get(sid).messages) == 1100
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


def test_the_reference_model_accepts_a_message_after_a_tool_exchange() -> None:
    # Found by the deciders' state machine: the model checked a window that
    # began at a tool_results message without the assistant message it
    # answers, and refused this valid rewrite, which the engine accepts.
    from engine.testing import ReferenceModel

    exchange = [
        Message(role="assistant", blocks=(ToolUse(id="call_1", name="search", arguments="{}"),)),
        Message.tool_results(ToolResult.of("call_1", "found")),
    ]
    model, store = ReferenceModel(), Transcripts.open()
    sid = store.create()
    model.create(sid)
    model.append(sid, [Message.user("q"), *exchange])
    store.append(sid, Message.user("q"), *exchange)
    late = Message.system("note")
    assert model.rewrite(sid, 3, 3, [late]) == store.rewrite(sid, 3, 3, [late]).revision


def test_an_expected_revision_in_capital_hex_is_the_same_revision() -> None:
    # parse_revision accepts either case of hex digit; the check compared the
    # text as given once the deciders took it over, and raised a false conflict.
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("a"))
    shouted = "sha256:" + store.get(sid).revision.removeprefix("sha256:").upper()
    store.append(sid, Message.user("b"), expected_revision=shouted)
    shouted = "sha256:" + store.get(sid).revision.removeprefix("sha256:").upper()
    store.rewrite(sid, 1, 2, [Message.user("c")], expected_revision=shouted)
    assert [m.text for m in store.get(sid).messages] == ["a", "c"]


def test_the_commits_of_a_fork_count_from_the_messages_it_kept() -> None:
    # revisions() counted a fork's first commit from the source's whole
    # transcript, not from the messages fork_at / fork_replacing kept.
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("a"), Message.assistant("b"), Message.user("c"), Message.assistant("d"))
    for child, kept in (
        (store.fork_at(sid, 2), 2),
        (store.fork_replacing(sid, 2, Message.user("C")), 3),
        (store.fork(sid), 4),
    ):
        store.append(child, Message.user("next"))
        [commit] = store.revisions(child)
        assert (commit.start, commit.end, commit.count_before, commit.count_after) == (kept, kept, kept, kept + 1)
        assert len(store.get(child).messages) == commit.count_after


def test_nested_metadata_cannot_be_changed_without_an_event(stores: StoreFactory) -> None:
    # Found by a seed example: a list inside the metadata of a cached head
    # could be appended to, changing what every later get() saw with no
    # event written, until verify() called the store corrupt.
    store = stores.open()
    caps = [1, 2]
    sid = store.create(metadata={"caps": caps, "limits": {"tools": ["search"]}})
    caps.append(3)  # the caller's own list, after the call
    store.get(sid).metadata["caps"].append(4)
    store.get(sid).metadata["limits"]["tools"].append("shell")
    later = ["a"]
    store.update_metadata(sid, {"later": later})
    later.append("b")
    assert dict(store.get(sid).metadata) == {"caps": [1, 2], "limits": {"tools": ["search"]}, "later": ["a"]}
    assert store.verify(sid).version == 2
    assert dict(stores.open().get(sid).metadata) == dict(store.get(sid).metadata)


def test_a_write_from_another_store_object_never_brings_a_deleted_session_back(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a store object whose cached head
    # predated a deletion by another object appended to the deleted log and
    # made a listing row again; the session then read as corrupt and could
    # not even be deleted.
    from engine import SessionNotFound, Task

    writer, other = stores.open(), stores.open()
    sid = writer.create("agent")
    writer.set_task_list(sid, [Task(id="t", description="book the trains")])
    other.delete(sid)
    with pytest.raises(SessionNotFound):
        writer.update_task(sid, "t", status="completed")
    with pytest.raises(SessionNotFound):
        writer.append(sid, Message.user("still there?"))
    with pytest.raises(SessionNotFound):
        writer.get(sid)  # not from a cache the refusal left behind
    fresh = stores.open()
    assert fresh.sessions() == []
    with pytest.raises(SessionNotFound):
        fresh.get(sid)


def test_a_read_racing_an_append_and_a_deletion_finds_no_session(stores: StoreFactory) -> None:
    # Found by an adversarial run on PostgreSQL: the reader read the listing
    # row, another writer appended, the reader read the events, the session
    # was deleted, and the row read again was gone. A healthy store said
    # CorruptStore ("events after where its listing row ends").
    reader, other = stores.open(), stores.open()
    sid = other.create()
    other.append(sid, Message.user("hello"))
    backend = reader._repository.backend
    real_read = backend.read

    def racing_read(session_id: str, *, after: int = 0, upto: int | None = None) -> list[Record]:
        backend.read = real_read  # type: ignore[method-assign]
        other.append(sid, Message.user("one more"))
        found = real_read(session_id, after=after, upto=upto)
        other.delete(sid)
        return found

    backend.read = racing_read  # type: ignore[method-assign]
    with pytest.raises(SessionNotFound):
        reader.get(sid)
    assert sid not in [info.id for info in stores.open().sessions()]


@pytest.mark.parametrize(("cached", "again", "interval"), [(5, 1, 100), (3, 3, 100), (98, 1, 100), (4, 1, 5)])
def test_a_stale_writer_cannot_append_to_a_session_deleted_and_created_again(
    stores: StoreFactory, cached: int, again: int, interval: int
) -> None:
    # Found by an adversarial run: a store object with the session cached
    # appended onto a session another object had deleted and created again
    # with the same id, and both read as damage from then on. The listing
    # row is now updated only while it holds the head the writer read.
    stale, other = stores.open(snapshot_interval=interval), stores.open(snapshot_interval=interval)
    sid = stale.create(title="first", session_id="fixed-id")
    for number in range(cached):
        stale.append(sid, Message.user(f"first {number}"))
    other.delete(sid)
    other.create(title="second", session_id="fixed-id")
    for number in range(again):
        other.append(sid, Message.user(f"second {number}"))
    wanted = [f"second {number}" for number in range(again)]
    with pytest.raises(ConcurrentWriteError):  # the next version may be free, the log is another one
        stale.append(sid, Message.user("stale"))
    fresh = stores.open()
    assert [message.text for message in fresh.verify(sid).messages] == wanted
    assert fresh.get(sid).title == "second"
    stale.append(sid, Message.user("retried"))  # a retry reloads and appends to the session as it is
    assert [message.text for message in stores.open().verify(sid).messages] == [*wanted, "retried"]


def _recreated(store: Transcripts, session_id: str, count: int) -> None:
    store.delete(session_id)
    store.create(title="second", session_id=session_id)
    for number in range(count):
        store.append(session_id, Message.user(f"second {number}"))


def _once_before(backend: Any, method: str, action: Callable[[], object]) -> None:
    """Run ``action`` just before the next call of ``backend.<method>`` (then
    the method as it was): another writer acting between a store's reads and
    its write, in a known order."""
    real = getattr(backend, method)

    def racing(*args: Any, **kwargs: Any) -> Any:
        setattr(backend, method, real)
        action()
        return real(*args, **kwargs)

    setattr(backend, method, racing)


def _a_session_with_a_card_number(store: Transcripts) -> tuple[str, str]:
    """A session whose first message holds a card number, and that message's id."""
    sid = store.create()
    store.append(sid, Message.user("card 4111 1111"), Message.assistant("ok"))
    secret = store.get(sid).messages[0].id
    assert secret is not None
    return sid, secret


@pytest.mark.parametrize("count", [1, 2, 3])
def test_an_erasure_racing_a_deletion_and_creation_again_never_touches_the_new_session(
    stores: StoreFactory, count: int
) -> None:
    # Found by an adversarial run: between the erasure reading the log and
    # writing, another object deleted the session and created it again with
    # the same id; the erasure rewrote the new session's records by version
    # and the new session read as damage from then on. Now the write is
    # refused, and the erasure, read again, finds the id in no log.
    eraser, other = stores.open(), stores.open()
    sid = eraser.create(title="first", session_id="fixed-id")
    for text in ("old secret", "old answer", "old three"):
        eraser.append(sid, Message.user(text))
    secret = eraser.get(sid).messages[0].id
    assert secret is not None
    _once_before(eraser._repository.backend, "rewrite", lambda: _recreated(other, sid, count))
    with pytest.raises(InvalidArgument, match="never occur"):
        eraser.erase(sid, secret)
    fresh = stores.open()
    assert [message.text for message in fresh.verify(sid).messages] == [f"second {n}" for n in range(count)]


@pytest.mark.parametrize("races", [1, 4])
def test_an_erasure_is_tried_again_while_other_writers_change_its_session(stores: StoreFactory, races: int) -> None:
    # Under steady appends from other processes an erasure kept being
    # refused (it read the log, another writer appended, the write was
    # refused): it now reads again and retries, five attempts in all (the
    # fifth holds the other writers back: see test_erasure.py).
    eraser, other = stores.open(), stores.open()
    sid, secret = _a_session_with_a_card_number(eraser)
    backend = eraser._repository.backend
    real_rewrite = backend.rewrite
    raced: list[int] = []

    def racing_rewrite(changes: list[Rewrite], **options: Any) -> Purge:
        if len(raced) < races:
            raced.append(1)
            other.append(sid, Message.user(f"meanwhile {len(raced)}"))
        return real_rewrite(changes, **options)

    backend.rewrite = racing_rewrite  # type: ignore[method-assign]
    assert eraser.erase(sid, secret) == [sid]
    texts = [message.text for message in stores.open().verify(sid).messages]
    assert texts == ["", "ok", *(f"meanwhile {n}" for n in range(1, races + 1))]
    assert len(raced) == races


@pytest.mark.parametrize("at_start", [False, True])
def test_a_fork_racing_a_deletion_and_creation_again_of_its_source_is_refused(
    stores: StoreFactory, at_start: bool
) -> None:
    # Found by an adversarial run: the fork was decided on the old source,
    # the source was deleted and created again with the same id, and the
    # fork was written against the new one: it read as damage, or (a fork at
    # index 0) silently showed the new source's title and metadata.
    forker, other = stores.open(), stores.open()
    sid = forker.create(title="first", session_id="fixed-id", metadata={"who": "old"})
    forker.append(sid, Message.user("old question"), Message.assistant("old answer"))
    _once_before(forker._repository.backend, "append", lambda: _recreated(other, sid, 2))
    with pytest.raises(ConcurrentWriteError):
        forker.fork_at(sid, 0, child_id="the-fork") if at_start else forker.fork(sid, child_id="the-fork")
    fresh = stores.open()
    assert [info.id for info in fresh.sessions()] == [sid]
    assert [message.text for message in fresh.verify(sid).messages] == ["second 0", "second 1"]
    forked = forker.fork(sid, child_id="the-fork")  # a retry forks the session as it is now
    assert [message.text for message in stores.open().verify(forked).messages] == ["second 0", "second 1"]


def test_an_erasure_racing_a_new_fork_reaches_the_fork(stores: StoreFactory) -> None:
    # Found by an adversarial run: a fork made between the erasure reading
    # the family and writing got no erasure record, so the process that made
    # it kept showing the erased text from its cache, even after appending.
    eraser, forker = stores.open(), stores.open()
    sid, secret = _a_session_with_a_card_number(eraser)
    made: list[str] = []
    _once_before(eraser._repository.backend, "rewrite", lambda: made.append(forker.fork(sid)))
    # The first write is refused (the family it read lacks the fork); the
    # erasure reads the family again and reaches the fork too.
    result = eraser.erase(sid, secret)
    [fork] = made
    assert set(result) == {sid, fork}
    for reader in (stores.open(), forker):
        for session in (sid, fork):
            assert [message.erased is not None for message in reader.get(session).messages] == [True, False]


def test_opening_without_creating_writes_nothing_to_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    # Found by an adversarial run: the empty file became a WAL database.
    from engine import StorageUnavailable

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StorageUnavailable, match="no transcript store"):
        Transcripts.open(str(empty), create=False)
    assert empty.read_bytes() == b""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (x)")
    db.close()
    before = other.read_bytes()
    with pytest.raises(StorageUnavailable, match="no transcripts_sessions table"):
        Transcripts.open(str(other), create=False)
    assert other.read_bytes() == before  # still the other application's file, journal mode and all
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.db", "other.db"]


def test_opening_without_creating_leaves_a_file_with_a_table_of_the_same_name_as_it_was(tmp_path: Path) -> None:
    # Found by a newcomer: a table named like the store's listing, and a
    # database in WAL mode (which a read-only read leaves files beside).
    from engine import StorageUnavailable

    notes, wal, view, lone = (tmp_path / name for name in ("notes.db", "wal.db", "view.db", "lone.db"))
    with sqlite3.connect(notes) as db:
        db.execute("CREATE TABLE transcripts_sessions (id INTEGER PRIMARY KEY, speaker TEXT, body TEXT)")
    db.close()
    columns = "session_id, title, created_at, updated_at, message_count, revision, version"
    with sqlite3.connect(view) as db:  # the listing's very columns, in a view
        db.execute(f"CREATE TABLE people ({columns})")
        db.execute("CREATE VIEW transcripts_sessions AS SELECT * FROM people")
    db.close()
    with sqlite3.connect(lone) as db:  # and in a table, with no log beside it
        db.execute(f"CREATE TABLE transcripts_sessions ({columns})")
        db.execute("INSERT INTO transcripts_sessions VALUES ('a', 'not a transcript', 'x', 'y', 1, 'r', 1)")
    db.close()
    db = sqlite3.connect(wal)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE app (x)")
    db.close()
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert sorted(before) == ["lone.db", "notes.db", "view.db", "wal.db"]
    for path in (notes, wal, view, lone):
        with pytest.raises(StorageUnavailable, match="nothing was written to it"):
            Transcripts.open(str(path), create=False)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_memory_store_cannot_be_opened_without_creating_it_and_sqlite_names_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="a memory store never is"):
        Transcripts.open(create=False)
    for prefix in ("sqlite", "sqlite_x", "1abc"):
        with pytest.raises(InvalidArgument, match="starting with a letter or an underscore"):
            Transcripts.open(table_prefix=prefix)


def test_verify_of_a_fork_is_not_fooled_by_an_erasure_of_its_source_between_two_reads(tmp_path: Path) -> None:
    # Found by an adversarial run: verify's last step loads the fork's head,
    # reading the fork's log, then its source's; an erasure of the inherited
    # message committed in between, and a healthy store read as damaged.
    path = str(tmp_path / "s.db")
    auditor, eraser = Transcripts.open(path), Transcripts.open(path)
    root, card = _a_session_with_a_card_number(eraser)
    fork = eraser.fork(root)
    eraser.append(fork, Message.user("thanks"))
    backend = auditor._repository.backend
    real, reads = backend.read, []

    def read(session_id: str, **kwargs: Any) -> Any:
        reads.append(session_id)
        if session_id == root and reads.count(root) == 2:  # the head's read of the source
            eraser.erase(root, card)
        return real(session_id, **kwargs)

    backend.read = read
    try:
        verified = auditor.verify(fork)
    finally:
        backend.read = real
    assert reads.count(root) > 2  # it read again
    assert [m.text for m in verified.messages] == ["", "ok", "thanks"]
    assert verified.messages[0].erased is not None
    auditor.close()
    eraser.close()


def test_a_store_in_use_opens_without_creating_through_a_symbolic_link(tmp_path: Path) -> None:
    # Found by an adversarial run: the WAL file was looked for beside the
    # link, so a store whose tables were still only in its WAL read as none.
    real, link = tmp_path / "chats.db", tmp_path / "link.db"
    link.symlink_to(real)
    with Transcripts.open(str(real)) as writer:
        writer.create(title="live")
        assert (tmp_path / "chats.db-wal").exists() and not (tmp_path / "link.db-wal").exists()
        with Transcripts.open(str(link), create=False) as looker:
            assert [info.title for info in looker.sessions()] == ["live"]


def _tool_call_transcript(arguments: str | None, results: tuple[ToolResult, ...] | None = None) -> list[Message]:
    call = ToolUse(id="c1", name="clock") if arguments is None else ToolUse(id="c1", name="clock", arguments=arguments)
    return [
        Message.user("What time is it?"),
        Message.assistant(call),
        Message.tool_results(*(results or (ToolResult.of("c1", "noon"),))),
    ]


def test_equal_tool_calls_get_equal_revisions_however_they_were_built(stores: StoreFactory) -> None:
    # msgspec leaves a field out of JSON only when it holds the default object
    # itself, so ToolUse(arguments="{}") (any "{}" but the class's own) was
    # hashed with its arguments and ToolUse() without: equal transcripts had
    # two revisions, and strict exports to Anthropic or Gemini refused a tool
    # call without arguments ("would not come back the same").
    import json

    from engine.formats import to_anthropic, to_gemini

    store = stores.open(snapshot_interval=2)
    revisions = set()
    sessions = []
    for arguments in (None, "{}", json.dumps({}), "".join(["{", "}"])):
        sid = store.create()
        revisions.add(store.append(sid, *_tool_call_transcript(arguments)))
        sessions.append(sid)
    assert len(revisions) == 1
    fresh = stores.open(snapshot_interval=2)
    for sid in sessions:
        session = fresh.verify(sid)
        assert session.revision in revisions
        assert session.messages[1].blocks == (ToolUse(id="c1", name="clock"),)
        assert to_anthropic(list(session.messages)) and to_gemini(list(session.messages))


def test_tuple_subclasses_are_refused_as_message_or_result_content() -> None:
    # Found by adversarial passes: an empty tuple subclass as a tool result's
    # content was stored as [] and read back as (), so the revision append()
    # returned did not match the log on a cold load; a non-empty one, and
    # one as a message's blocks, read back as a plain tuple.
    from engine import Text

    class Results(tuple):  # type: ignore[type-arg]
        pass

    for content in (Results(), Results((Text(text="x"),))):
        with pytest.raises(InvalidMessage, match="a subclass of tuple"):
            ToolResult(tool_use_id="c1", content=content)
    with pytest.raises(InvalidMessage, match="a subclass of tuple"):
        Message(role="user", blocks=Results((Text(text="x"),)))


class _Str(str):
    pass


class _Int(int):
    pass


class _Bytes(bytes):
    pass


class _Tuple(tuple):  # type: ignore[type-arg]
    pass


class _Kind(enum.StrEnum):
    DONE = "done"
    ACTIVE = "active"


class _Number(enum.IntEnum):
    ONE = 1


def _subclass_calls(store: Transcripts, sid: str) -> dict[str, Callable[[], object]]:
    """Calls an adversarial pass found raising a bare TypeError (msgspec
    encodes only exact types) or storing a value that read back as another
    type (an enum as its base): each is refused with a typed error now."""
    from engine import Image, Reasoning, Task, Text, Transcript, Usage

    return {
        "text": lambda: Message.user(_Str("hi")),
        "text block": lambda: Text(text=_Kind.DONE),
        "reasoning": lambda: Reasoning(text=_Str("think")),
        "tool arguments": lambda: ToolUse(id="c1", name="f", arguments=_Str('{"a": 1}')),
        "message id": lambda: Message.user("hi", id=_Str("m1")),
        "role": lambda: Message(role=_Str("user"), blocks=(Text(text="hi"),)),  # type: ignore[arg-type]
        "provider data": lambda: Message(role="user", blocks=(Text(text="hi"),), provider_data=_Str("{}")),
        "image data": lambda: Image(media_type="image/png", data=_Bytes(b"x")),
        "truncated at": lambda: Transcript(text="hi", truncated_at_ms=_Number.ONE),
        "usage": lambda: Usage(input=_Int(3)),
        "title": lambda: store.create(title=_Str("t")),
        "enum title": lambda: store.set_title(sid, _Kind.DONE),
        "session id": lambda: store.create(session_id=_Str("s1")),
        "actor": lambda: store.append(sid, Message.user("hi"), actor=_Str("a")),
        "model": lambda: store.create(model=_Str("m")),
        "tags": lambda: store.set_tags(sid, [_Str("t")]),
        "status": lambda: store.set_status(sid, _Kind.ACTIVE),
        "rewrite note": lambda: store.rewrite(sid, 0, 1, [Message.user("x")], note=_Str("n")),
        "rewrite reason": lambda: store.rewrite(sid, 0, 1, [Message.user("x")], _Str("edit")),
        "rewrite range": lambda: store.rewrite(sid, _Int(0), _Int(1), [Message.user("x")]),
        "fork child": lambda: store.fork(sid, child_id=_Str("f")),
        "fork index": lambda: store.fork_at(sid, _Int(1)),
        "task criteria": lambda: store.set_task_list(sid, [Task(id="t1", description="d", criteria=_Tuple())]),
        "task status": lambda: store.set_task_list(sid, [Task(id="t1", description="d", status=_Str("pending"))]),
        "huge metadata int": lambda: store.update_metadata(sid, {"n": 10**5000}),
    }


@pytest.mark.parametrize("name", sorted(_subclass_calls(Transcripts.open(None), "x")))
def test_values_a_store_would_give_back_as_another_type_are_refused_with_a_typed_error(
    stores: StoreFactory, name: str
) -> None:
    store = stores.open(snapshot_interval=2)
    sid = store.create()
    store.append(sid, Message.user("first"))
    before = store.get(sid)
    count = len(store.sessions())
    with pytest.raises(EngineError) as caught:
        _subclass_calls(store, sid)[name]()
    assert isinstance(caught.value, ValueError)  # InvalidArgument and InvalidMessage both are
    assert store.get(sid) == before and len(store.sessions()) == count
    assert stores.open().get(sid) == before  # and a cold load agrees: nothing was stored


def test_a_task_list_of_plain_tuples_takes_snapshots_that_vouch_for_the_log(stores: StoreFactory) -> None:
    # The adversarial pass's CorruptStore: an empty tuple subclass as a task's
    # criteria made the snapshot's digest differ from the log's replay.
    from engine import Task

    store = stores.open(snapshot_interval=2)
    sid = store.create()
    store.set_task_list(sid, [Task(id="t1", description="do it", criteria=tuple(_Tuple()))])
    store.append(sid, Message.user("a"))
    store.append(sid, Message.user("b"))
    assert stores.open(snapshot_interval=2).get(sid) == store.get(sid)


@pytest.mark.parametrize("after", [2**62, 2**63 - 1, 2**63, 2**70])
def test_a_feed_position_beyond_every_event_is_an_empty_page(stores: StoreFactory, after: int) -> None:
    store = stores.open()
    store.append(store.create(), Message.user("hi"))
    assert store.feed(after=after) == []


def test_formats_refuse_what_is_not_a_list_of_messages_with_a_typed_error() -> None:
    from engine.formats import to_anthropic, to_gemini, to_openai_chat, to_openai_responses

    for convert in (to_anthropic, to_gemini, to_openai_chat, to_openai_responses):
        for wrong in (None, 5, "hello", Message.user("hi")):
            with pytest.raises(InvalidArgument, match="takes a list of messages"):
                convert(wrong)  # type: ignore[arg-type]


def test_fork_replacing_one_block_keeps_the_rest_of_the_content(stores: StoreFactory) -> None:
    # Found by an adversarial pass: the incomplete marker (content) was
    # dropped, so the fork's revision was not that of the same transcript
    # built directly. What an adapter kept described the old content (and
    # could repeat what an erasure of the original must reach): it goes.
    from engine import ReplaceBlock, Text
    from engine.state.revisions import revision_of

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("q"))
    kept = json.dumps([{"role": "assistant", "content": "partial more"}])
    partial = Message(
        role="assistant", blocks=(Text(text="partial"), Text(text="more")), incomplete=True, provider_data=kept
    )
    store.append(sid, partial)
    kid = store.fork_replacing(sid, 1, ReplaceBlock(index=1, block=Text(text="changed")))
    replaced = stores.open().get(kid).messages[1]
    assert (replaced.blocks, replaced.incomplete, replaced.provider_data) == (
        (Text(text="partial"), Text(text="changed")),
        True,
        None,
    )
    expected = [Message.user("q"), Message(role="assistant", blocks=replaced.blocks, incomplete=True)]
    assert stores.open().get(kid).revision == revision_of(expected)
    original = store.get(sid).messages[1].id
    assert original is not None
    store.erase(sid, original)
    assert "partial more" not in str(stores.open().get(kid).messages)  # the fork keeps no copy of it


def test_a_child_deleted_and_spawned_again_under_its_id_is_listed_once(stores: StoreFactory) -> None:
    # Found by a newcomer: children() listed the respawned child once per
    # spawn record of its id.
    store = stores.open()
    parent = store.create(session_id="p")
    store.spawn(parent, task="first", session_id="c")
    store.spawn(parent, task="other", session_id="d")
    store.delete("c")
    store.spawn(parent, task="again", session_id="c")
    listed = [(child.id, child.spawn.task if child.spawn else None) for child in stores.open().children(parent)]
    assert listed == [("d", "other"), ("c", "again")]


def test_fork_replacing_checks_its_replacement_again_as_appends_do(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a block changed after it was made
    # (force_setattr) was written by fork_replacing and read back as
    # CorruptStore ("cannot decode stored SessionForked").
    from engine import ReplaceBlock, Text

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("q"))
    broken = Text(text="ok")
    msgspec.structs.force_setattr(broken, "text", 12)
    for replacement in (ReplaceBlock(index=0, block=broken), Message(role="user", blocks=(Text(text="ok"),))):
        if isinstance(replacement, Message):
            msgspec.structs.force_setattr(replacement, "blocks", (broken,))
        with pytest.raises(InvalidMessage, match=r"Text\.text must be a str"):
            store.fork_replacing(sid, 0, replacement)
    assert [info.id for info in stores.open().sessions()] == [sid]


def test_a_second_newcomer_pass_gets_typed_errors_that_say_what_to_do(tmp_path: Path) -> None:
    # Found by a newcomer's second pass: each of these lost data silently or
    # said the wrong thing.
    import enum

    from engine import Usage
    from engine.formats import to_anthropic, to_openai_chat
    from engine.state.content import Reasoning

    thinking = [Message.user("q"), Message.assistant(Reasoning(text="secret plan"), "answer")]
    with pytest.raises(InvalidArgument, match="lossy= is True or False"):
        to_openai_chat(thinking, lossy="false")  # type: ignore[arg-type]  # was taken as lossy=True
    huge = [
        Message.user("q"),
        Message.assistant(ToolUse(id="c1", name="f", arguments='{"x": 1e400}')),
        Message.tool_results(ToolResult.of("c1", "r")),
    ]
    assert to_anthropic(huge, lossy=True)["messages"][1]["content"][0]["input"] == {}  # was {"x": inf}: no JSON
    with pytest.raises(InvalidArgument, match="beyond a float"):
        to_anthropic(huge)

    class Level(enum.IntEnum):
        ONE = 1

    with pytest.raises(InvalidMessage, match=r"pass its \.value"):
        Usage(input=Level.ONE)
    with pytest.raises(InvalidMessage, match="True and False are not numbers"):
        Usage(input=True)
    store = Transcripts.open(None)
    sid = store.create()
    store.append(sid, Message.user("a"))
    with pytest.raises(InvalidArgument, match="last session of the previous page"):
        store.sessions(after=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="start and end are ints, got int and float"):
        store.rewrite(sid, 0, 1.0, [Message.user("b")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"erase\(sid, \*ids\)"):
        store.erase(sid, ["m1"])  # type: ignore[arg-type]


def test_the_command_line_says_what_is_wrong_with_a_seal_key_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    key = b"secret-key-0123456789"
    path = str(tmp_path / "sealed.db")
    with Transcripts.open(path, seal_key=key) as store:
        store.create()
    echoed, short = tmp_path / "echoed.key", tmp_path / "short.key"
    echoed.write_bytes(key + b"\n")  # as `echo` writes it
    short.write_bytes(b"short")
    result = CliRunner().invoke(cli, ["sessions", path, "--seal-key-file", str(echoed)])
    assert result.exit_code == 1 and "ends with a newline, which is part of the key" in result.output
    result = CliRunner().invoke(cli, ["sessions", path, "--seal-key-file", str(short)])
    assert result.exit_code == 2 and "holds 5 bytes" in result.output
