"""The storage contract itself (``engine.store.Backend``), run against every
backend, below the facade: what any backend must do with records, listing
rows, snapshots, the feed, rewrites and deletes, and that every failure is a
typed engine error that changes nothing. A new backend passes this suite
first (as eventsourcing's recorders pass its recorder test cases)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import (
    ConcurrentWriteError,
    InvalidArgument,
    Message,
    SessionExists,
    SessionHasForks,
    SessionNotFound,
    StorageUnavailable,
)
from engine.state.events import MessagesAppended, SessionCreated, SessionForked, TitleChanged
from engine.store import (
    Backend,
    ClosedBackend,
    Record,
    Rewrite,
    SessionRow,
    StoredSnapshot,
    encode_event,
    head_of,
    open_backend,
)
from tests.conftest import BACKENDS, POSTGRES_DSN, drop_postgres_tables

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    prefix = "b" + uuid.uuid4().hex[:12]
    target = {"memory": None, "sqlite": str(tmp_path / "store.db"), "postgres": POSTGRES_DSN}[request.param]
    opened = open_backend(target, table_prefix=prefix)
    try:
        yield opened
    finally:
        opened.close()
        if request.param == "postgres":
            drop_postgres_tables(prefix)


def _created(title: str = "t") -> Record:
    return Record(1, *encode_event(SessionCreated(at=AT, actor=None, title=title, metadata={})))


def _appended(version: int, text: str) -> Record:
    event = MessagesAppended(at=AT, actor=None, messages=(Message.user(text),), revision="sha256:" + "0" * 64)
    return Record(version, *encode_event(event))


def _row(session_id: str, records: list[Record], title: str = "t") -> SessionRow:
    stamp = AT.isoformat()
    return SessionRow(
        session_id,
        title,
        stamp,
        stamp,
        0,
        "sha256:" + "0" * 64,
        records[-1].version,
        head_of(session_id, records).hex(),
    )


def _forked(source: str, version: int) -> list[Record]:
    """The log of a fork of ``source`` at ``version``: one record."""
    event = SessionForked(
        at=AT,
        actor=None,
        source=source,
        source_version=version,
        index=None,
        replacement=None,
        revision="sha256:" + "0" * 64,
        root=source,
        depth=1,
    )
    return [Record(1, *encode_event(event))]


def _store(backend: Backend, session_id: str, count: int) -> list[Record]:
    records = [_created(), *(_appended(version, f"m{version}") for version in range(2, count + 1))]
    backend.append(session_id, records, _row(session_id, records))
    return records


def test_appended_records_read_back_exactly_and_in_ranges(backend: Backend) -> None:
    records = _store(backend, "s", 5)
    assert backend.read("s") == records
    assert backend.read("s", after=2) == records[2:]
    assert backend.read("s", upto=3) == records[:3]
    assert backend.read("s", after=1, upto=4) == records[1:4]
    assert backend.read("s", after=5) == []
    assert backend.read("nobody") == []
    assert all(type(record.state) is bytes for record in backend.read("s"))


def test_an_append_to_a_deleted_session_is_refused_and_writes_nothing(backend: Backend) -> None:
    # A writer that read the session before another deleted it: one event or
    # several, with a snapshot or without, naming the head it read or not
    # (PostgreSQL, and SQLite for one event naming its head, write an append
    # without a snapshot as one statement that commits by itself, so
    # nothing may be left to roll back).
    records = _store(backend, "s", 3)
    head = backend.session_row("s").head  # type: ignore[union-attr]
    _store(backend, "other", 2)
    feed = backend.feed()
    backend.delete(["s"])
    one, two = [_appended(4, "late")], [_appended(4, "late"), _appended(5, "later")]
    for late, snapshot, named in (
        (one, None, None),
        (one, None, head),
        (two, None, None),
        (two, None, head),
        (one, StoredSnapshot(4, b"{}"), head),
    ):
        with pytest.raises(SessionNotFound):
            backend.append("s", late, _row("s", [*records, *late]), snapshot, previous_head=named)
        assert backend.read("s") == [] and backend.session_row("s") is None
        assert backend.snapshot("s") is None
        assert [entry.session_id for entry in backend.feed()] == [
            entry.session_id for entry in feed if entry.session_id != "s"
        ]


def test_an_append_extends_only_the_head_it_names(backend: Backend) -> None:
    records = _store(backend, "s", 3)
    head = backend.session_row("s").head  # type: ignore[union-attr]
    before = (backend.read("s"), backend.session_row("s"), backend.feed())
    late = [*records, _appended(4, "late")]
    for snapshot in (None, StoredSnapshot(4, b"{}")):  # one statement, or a transaction (PostgreSQL)
        with pytest.raises(ConcurrentWriteError):
            backend.append("s", late[3:], _row("s", late), snapshot, previous_head="0" * 64)
        assert (backend.read("s"), backend.session_row("s"), backend.feed()) == before
        assert backend.snapshot("s") is None
    backend.append("s", late[3:], _row("s", late), previous_head=head)
    assert backend.read("s") == late
    more = [*late, _appended(5, "unchecked")]
    backend.append("s", more[4:], _row("s", more))  # no head named: not checked
    assert backend.read("s") == more


def test_listing_rows_are_sealed_and_listed_oldest_first(backend: Backend) -> None:
    first = _store(backend, "a", 2)
    _store(backend, "b", 1)
    row = backend.session_row("a")
    assert row is not None and row.seal  # the backend seals what it stores
    assert row._replace(seal="") == _row("a", first)
    assert [listed.session_id for listed in backend.session_rows()] == ["a", "b"]
    assert backend.session_row("nobody") is None


def test_a_taken_version_is_a_typed_conflict_and_writes_nothing(backend: Backend) -> None:
    records = _store(backend, "s", 3)
    before = (backend.read("s"), backend.session_row("s"))
    with pytest.raises(SessionExists):
        backend.append("s", [_created("again")], _row("s", [_created("again")], "again"))
    late = [_appended(3, "late"), _appended(4, "late")]
    with pytest.raises(ConcurrentWriteError):
        backend.append("s", late, _row("s", [*records[:2], *late], "late"))
    assert (backend.read("s"), backend.session_row("s")) == before


def test_snapshots_are_found_by_version(backend: Backend) -> None:
    records = [_created(), _appended(2, "a")]
    backend.append("s", records, _row("s", records), StoredSnapshot(2, b"two"))
    more = [_appended(3, "b"), _appended(4, "c")]
    backend.append("s", more, _row("s", records + more), StoredSnapshot(4, b"four"))
    assert backend.snapshot("s") == StoredSnapshot(4, b"four")
    assert backend.snapshot("s", upto=3) == StoredSnapshot(2, b"two")
    assert backend.snapshot("s", upto=1) is None
    assert backend.snapshots("s") == [StoredSnapshot(2, b"two"), StoredSnapshot(4, b"four")]
    assert backend.snapshots("nobody") == []
    assert backend.unlisted_snapshots() == []  # each is of a listed session


def test_the_feed_pages_every_record_once_in_commit_order(backend: Backend) -> None:
    _store(backend, "a", 3)
    _store(backend, "b", 2)
    appended = [_appended(4, "after")]
    backend.append("a", appended, _row("a", [*backend.read("a"), *appended]))
    seen, position = [], 0
    while page := backend.feed(after=position, limit=2):
        assert len(page) <= 2
        seen += page
        position = page[-1].position
    positions = [entry.position for entry in seen]
    assert positions == sorted(set(positions))
    assert [(e.session_id, e.record.version) for e in seen] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
        ("a", 4),
    ]
    assert seen[-1].record == appended[0]
    assert backend.feed(after=position) == []
    for bad in ({"after": -1}, {"after": "0"}, {"limit": 0}, {"limit": 10_001}, {"limit": True}):
        with pytest.raises(InvalidArgument):
            backend.feed(**bad)  # type: ignore[arg-type]


def test_a_rewrite_replaces_bytes_in_place_and_appends_in_one_transaction(backend: Backend) -> None:
    records = _store(backend, "s", 3)
    position = backend.feed(after=0, limit=10)[1].position
    cleaned = _appended(2, "(erased)")
    audit = Record(4, *encode_event(TitleChanged(at=AT, actor=None, title="audit")))
    log = [records[0], cleaned, records[2], audit]
    backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", log))])
    assert backend.read("s") == log
    assert backend.feed(after=0, limit=10)[1] == backend.feed(after=0, limit=10)[1]._replace(record=cleaned)
    assert backend.feed(after=0, limit=10)[1].position == position  # the feed keeps its positions

    stale = [Rewrite("s", [cleaned], [Record(4, audit.topic, audit.state)], _row("s", log))]
    with pytest.raises(ConcurrentWriteError):
        backend.rewrite(stale)  # version 4 is taken: nothing of it is written
    assert backend.read("s") == log


def test_a_rewrite_replaces_the_snapshots_it_names_and_only_those_that_exist(backend: Backend) -> None:
    records = [_created(), _appended(2, "a")]
    backend.append("s", records, _row("s", records), StoredSnapshot(2, b"two"))
    more = [_appended(3, "b")]
    log = records + more
    backend.append("s", more, _row("s", log), StoredSnapshot(3, b"three"))
    cleaned = _appended(2, "(erased)")
    audit = Record(4, *encode_event(TitleChanged(at=AT, actor=None, title="audit")))
    erased = [records[0], cleaned, more[0], audit]
    before = (backend.read("s"), backend.session_row("s"), backend.snapshots("s"))
    with pytest.raises(ConcurrentWriteError):  # no snapshot at version 5 (gone meanwhile): nothing is written
        backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", erased), snapshots=[StoredSnapshot(5, b"x")])])
    assert (backend.read("s"), backend.session_row("s"), backend.snapshots("s")) == before
    backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", erased), snapshots=[StoredSnapshot(3, b"relinked")])])
    assert backend.snapshots("s") == [StoredSnapshot(2, b"two"), StoredSnapshot(3, b"relinked")]
    assert backend.read("s") == erased


def test_a_rewrite_or_a_fork_of_a_log_that_changed_since_it_was_read_writes_nothing(backend: Backend) -> None:
    records = _store(backend, "s", 3)
    row = backend.session_row("s")
    assert row is not None
    cleaned = _appended(2, "(erased)")
    audit = Record(4, *encode_event(TitleChanged(at=AT, actor=None, title="audit")))
    log = [records[0], cleaned, records[2], audit]
    before = (backend.read("s"), backend.session_row("s"), backend.feed())
    with pytest.raises(ConcurrentWriteError):
        backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", log), previous_head="0" * 64)])
    fork = _forked("s", 3)
    with pytest.raises(ConcurrentWriteError):
        backend.append("fork", fork, _row("fork", fork), source_head="0" * 64)
    assert (backend.read("s"), backend.session_row("s"), backend.feed()) == before
    assert backend.read("fork") == [] and backend.session_row("fork") is None
    backend.append("fork", fork, _row("fork", fork), source_head=row.head)  # the head it was made from
    backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", log), previous_head=row.head)])
    assert backend.read("s") == log and backend.read("fork") == fork


def test_a_rewrite_naming_its_family_is_refused_when_a_fork_joined_it(backend: Backend) -> None:
    records = _store(backend, "s", 3)
    fork = _forked("s", 3)  # its root is "s"
    backend.append("fork", fork, _row("fork", fork))
    cleaned = _appended(2, "(erased)")
    audit = Record(4, *encode_event(TitleChanged(at=AT, actor=None, title="audit")))
    log = [records[0], cleaned, records[2], audit]
    with pytest.raises(ConcurrentWriteError):
        backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", log))], family=["s"])
    assert backend.read("s") == records
    backend.rewrite([Rewrite("s", [cleaned], [audit], _row("s", log))], family=["s", "fork"])
    assert backend.read("s") == log


def test_the_first_records_of_forks_come_in_one_read(backend: Backend) -> None:
    _store(backend, "source", 2)
    _store(backend, "plain", 3)
    assert backend.fork_records() == []
    first = _forked("source", 2)
    backend.append("fork", first, _row("fork", first))
    second = _forked("fork", 1)
    backend.append("fork of fork", second, _row("fork of fork", second))
    found = sorted(backend.fork_records())
    assert found == [("fork", first[0]), ("fork of fork", second[0])]
    assert all(type(record.state) is bytes for _, record in found)
    backend.delete(["fork of fork"])
    assert backend.fork_records() == [("fork", first[0])]


def test_delete_removes_everything_and_refuses_to_orphan_a_fork(backend: Backend) -> None:
    records = [_created(), _appended(2, "a")]
    backend.append("source", records, _row("source", records), StoredSnapshot(2, b"two"))
    fork = _forked("source", 2)
    backend.append("fork", fork, _row("fork", fork))
    with pytest.raises(SessionHasForks):
        backend.delete(["source"])
    assert len(backend.read("source")) == 2
    backend.delete(["source", "fork"])
    assert backend.read("source") == backend.read("fork") == []
    assert backend.session_rows() == []
    assert backend.snapshots("source") == []
    assert backend.feed(after=0) == []
    assert backend.unlisted_snapshots() == []


def test_a_fork_of_a_missing_session_is_refused(backend: Backend) -> None:
    fork = _forked("gone", 1)
    with pytest.raises(SessionNotFound):
        backend.append("fork", fork, _row("fork", fork))
    assert backend.read("fork") == [] and backend.session_row("fork") is None


def test_a_closed_store_refuses_everything_with_a_typed_error() -> None:
    # What the facade puts in place of a backend it closed.
    closed = ClosedBackend("somewhere")
    assert closed.describe() == "somewhere"
    for call in (
        lambda: closed.read("s"),
        lambda: closed.snapshot("s"),
        lambda: closed.snapshots("s"),
        lambda: closed.unlisted_snapshots(),
        lambda: closed.session_rows(),
        lambda: closed.session_row("s"),
        lambda: closed.feed(),
        lambda: closed.rewrite([]),
        lambda: closed.delete(["s"]),
        lambda: closed.append("s", [_created()], _row("s", [_created()])),
    ):
        with pytest.raises(StorageUnavailable):
            call()


def test_opening_what_cannot_be_a_store_is_a_typed_error(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"these are notes, not a database " * 64)
    with pytest.raises(StorageUnavailable, match="not a database"):
        open_backend(str(not_a_database))
    with pytest.raises(InvalidArgument):
        open_backend(str(tmp_path / "missing-directory" / "store.db"))
    with pytest.raises(InvalidArgument):
        open_backend("postgresql://user@localhost/db\x00")
    with pytest.raises(InvalidArgument):
        open_backend("postgresql://[::1")


def test_a_postgres_server_that_is_not_there_is_unavailable() -> None:
    # A port nothing listens on: the driver's pool times out; that must come
    # out as the engine's StorageUnavailable, not as a driver exception.
    with pytest.raises(StorageUnavailable, match="cannot open the store"):
        open_backend("postgresql://postgres@127.0.0.1:1/test")


def test_the_feed_never_gives_a_position_twice_after_deleting_the_newest(backend: Backend) -> None:
    # SQLite hands out the largest rowid + 1: deleting the newest session's
    # events gave the next event a position readers had already passed.
    _store(backend, "keep", 1)
    _store(backend, "gone", 2)
    seen = backend.feed(after=0, limit=100)
    backend.delete(["gone"])
    _store(backend, "later", 1)
    newer = backend.feed(after=seen[-1].position, limit=100)
    assert [(entry.session_id, entry.record.version) for entry in newer] == [("later", 1)]
    everything = backend.feed(after=0, limit=100)
    assert [(e.session_id, e.record.version) for e in everything] == [("keep", 1), ("later", 1)]
    backend.delete(["later"])
    _store(backend, "again", 1)  # deleting the newest twice: still no position is given twice
    assert [e.session_id for e in backend.feed(after=newer[-1].position, limit=100)] == ["again"]
