"""Rows no write of the engine makes, put into a store with SQL, as an
adversarial tester did: an event at version 0, versions and type names of
the wrong type, a body of NULL, a listing row removed, an unknown type
name. Each is damage: the checked reads and the feed say so with a typed
error, and none of them reads back as healthy or stops the store's other
sessions from working. Also the SQL view's writes, which reach the log
column for column or are refused, saying why."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import (
    CorruptStore,
    EngineError,
    Message,
    SessionNotFound,
    StorageUnavailable,
    Transcripts,
    UnknownEventType,
)
from tests.conftest import POSTGRES_DSN

KINDS = ["sqlite"] + (["postgres"] if POSTGRES_DSN else [])


class _Store:
    """A store on one backend, written through the engine, then changed
    with plain SQL on its events table (the view, on SQLite)."""

    def __init__(self, kind: str, tmp_path: Path, prefix: str) -> None:
        self.kind, self.prefix = kind, prefix
        self.target = str(tmp_path / "store.db") if kind == "sqlite" else POSTGRES_DSN
        assert self.target is not None
        self.events = f"{prefix}_events"

    def open(self) -> Transcripts:
        assert self.target is not None
        return Transcripts.open(self.target, table_prefix=self.prefix)

    def value(self, statement: str, parameters: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row ``statement`` returns."""
        if self.kind == "sqlite":
            with sqlite3.connect(str(self.target)) as db:
                found = db.execute(statement.replace("%s", "?"), parameters).fetchone()
            db.close()
            return found[0]
        import psycopg

        assert POSTGRES_DSN
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            row = conn.execute(statement, parameters).fetchone()
            assert row is not None
            return row[0]

    def sql(self, statement: str, parameters: tuple[Any, ...] = ()) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(str(self.target)) as db:
                db.execute(statement.replace("%s", "?"), parameters)
            db.close()
            return
        import psycopg

        assert POSTGRES_DSN
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(statement, parameters)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> _Store:
    if request.param == "sqlite":
        return _Store("sqlite", tmp_path, "transcripts")
    prefix: str = request.getfixturevalue("prefix")
    return _Store("postgres", tmp_path, prefix)


def _two_sessions(store: _Store) -> tuple[str, str]:
    with store.open() as opened:
        damaged = opened.create(session_id="damaged")
        opened.append(damaged, Message.user("real"))
        other = opened.create(session_id="other")
        opened.append(other, Message.user("untouched"))
    return damaged, other


def _copy_event_to_version(store: _Store, session_id: str, version: object) -> None:
    """The event at version 2, again at ``version`` (a forged message in place),
    with a feed position of its own (SQLite gives one; on PostgreSQL, the one
    after the original's, which its transaction left free)."""
    position = ", position" if store.kind == "postgres" else ""
    store.sql(
        f"INSERT INTO {store.events} (originator_id, originator_version, topic, state{position}) "
        f"SELECT originator_id, %s, topic, state{position.replace('position', 'position + 1')} "
        f"FROM {store.events} WHERE originator_id = %s AND originator_version = 2",
        (version, session_id),
    )


def _checked_reads(opened: Transcripts, session_id: str) -> dict[str, Callable[[], object]]:
    return {
        "get": lambda: opened.get(session_id),
        "history": lambda: opened.history(session_id),
        "verify": lambda: opened.verify(session_id),
        "time travel": lambda: opened.get(session_id, at=1),
    }


@pytest.mark.parametrize("version", [0, -1, -(2**63), 2**62 + 1, 2**63 - 1])
def test_an_event_at_a_version_no_write_makes_is_damage_to_every_checked_read(store: _Store, version: int) -> None:
    # Found by adversarial testers: reads asked for versions from 1 to 2**62
    # only, so get, history and verify passed while the feed served the row.
    damaged, other = _two_sessions(store)
    _copy_event_to_version(store, damaged, version)
    with store.open() as opened:
        reads = _checked_reads(opened, damaged)
        if version > 0:  # a read of the newest messages reads to the end too
            reads["last"] = lambda: opened.get(damaged, last=1)
        for name, read in reads.items():
            with pytest.raises(CorruptStore):
                read()
                pytest.fail(f"{name} read the damaged session as healthy")
        if version < 1:
            with pytest.raises(CorruptStore, match=f"has version {version}"):
                opened.feed(limit=100)
        assert [m.text for m in opened.get(other).messages] == ["untouched"]


def test_an_event_body_of_null_is_damage_not_a_crash(store: _Store) -> None:
    # Found by an adversarial tester: PostgreSQL reads raised a plain TypeError.
    damaged, other = _two_sessions(store)
    try:
        store.sql(
            f"UPDATE {store.events} SET state = NULL WHERE originator_id = %s AND originator_version = 2", (damaged,)
        )
    except sqlite3.IntegrityError:
        assert store.kind == "sqlite"  # the log's column is NOT NULL there: the damage cannot be made
        return
    with store.open() as opened:
        for read in _checked_reads(opened, damaged).values():
            with pytest.raises(CorruptStore):
                read()
        with pytest.raises(CorruptStore, match="no bytes"):
            opened.feed(limit=100)
        assert [m.text for m in opened.get(other).messages] == ["untouched"]


def test_an_event_of_a_type_no_engine_has_is_in_the_feed_as_an_error_not_left_out(store: _Store) -> None:
    # Found by an adversarial tester: PostgreSQL's feed left such rows out.
    damaged, _ = _two_sessions(store)
    store.sql(
        f"UPDATE {store.events} SET topic = 'Evil.v1' WHERE originator_id = %s AND originator_version = 2", (damaged,)
    )
    with store.open() as opened:
        with pytest.raises(UnknownEventType, match=r"Evil\.v1"):
            opened.feed(limit=100)
        with pytest.raises(EngineError):
            opened.get(damaged)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE transcripts_log SET version = 2.5 WHERE version = 2 AND session = 1",
        "UPDATE transcripts_log SET version = '2x' WHERE version = 2 AND session = 1",
        "UPDATE transcripts_events SET topic = CAST(topic AS BLOB) WHERE originator_id = 'damaged'",
    ],
)
def test_a_value_of_the_wrong_type_in_the_feed_is_damage(tmp_path: Path, damage: str) -> None:
    # SQLite keeps any value in any column: the feed returned such a version
    # as it was, and a blob type name made decoding raise a plain TypeError.
    store = _Store("sqlite", tmp_path, "transcripts")
    _two_sessions(store)
    store.sql(damage)
    with store.open() as opened, pytest.raises(CorruptStore):
        opened.feed(limit=100)


def test_a_removed_listing_row_leaves_new_sessions_working_and_the_feed_reports_it(tmp_path: Path) -> None:
    # Found by an adversarial tester: a new session took the key of the
    # orphaned events, and every create() failed with SessionExists.
    store = _Store("sqlite", tmp_path, "transcripts")
    first, last = _two_sessions(store)
    store.sql("DELETE FROM transcripts_sessions WHERE session_id = ?", (last,))  # it held the highest key
    with store.open() as opened:
        created = [opened.create(), opened.create(session_id=last)]
        for sid in created:
            opened.append(sid, Message.user("new"))
            assert [m.text for m in opened.get(sid).messages] == ["new"]
        assert [m.text for m in opened.get(first).messages] == ["real"]
        with pytest.raises(CorruptStore, match="no row of the store has"):
            opened.feed(limit=100)


def _view_store(tmp_path: Path) -> tuple[_Store, str]:
    store = _Store("sqlite", tmp_path, "transcripts")
    sid, _ = _two_sessions(store)
    return store, sid


def test_a_write_through_the_view_for_an_unlisted_session_is_refused_saying_why(tmp_path: Path) -> None:
    store, sid = _view_store(tmp_path)
    for statement in (
        "INSERT INTO transcripts_events (originator_id, originator_version, topic, state) "
        "SELECT 'nobody', 9, topic, state FROM transcripts_events WHERE originator_id = ? AND originator_version = 2",
        "UPDATE transcripts_events SET originator_id = 'nobody' WHERE originator_id = ? AND originator_version = 2",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="no session of that originator_id is listed"):
            store.sql(statement, (sid,))
    with sqlite3.connect(str(store.target)) as db:
        assert db.execute("SELECT count(*) FROM transcripts_kinds WHERE topic LIKE 'nobody%'").fetchone() == (0,)
    with store.open() as opened:
        assert opened.verify(sid).version == 2


def test_a_position_written_through_the_view_reaches_the_log(tmp_path: Path) -> None:
    # Found by an adversarial tester: the update trigger dropped a new position silently.
    store, sid = _view_store(tmp_path)
    store.sql("UPDATE transcripts_events SET position = 999 WHERE originator_id = ? AND originator_version = 2", (sid,))
    with sqlite3.connect(str(store.target)) as db:
        assert db.execute(
            "SELECT position FROM transcripts_events WHERE originator_id = ? AND originator_version = 2", (sid,)
        ).fetchone() == (999,)
    with store.open() as opened:
        assert [(entry.session_id, entry.version) for entry in opened.feed(limit=100)][-1] == (sid, 2)


def test_the_view_triggers_of_an_earlier_build_are_replaced_when_the_store_opens(tmp_path: Path) -> None:
    store, sid = _view_store(tmp_path)
    with sqlite3.connect(str(store.target)) as db:
        for name in ("transcripts_events_insert_v2", "transcripts_events_update_v2"):
            db.execute(f"DROP TRIGGER {name}")
        # As an earlier build named and wrote them (a stand-in body: only the names matter).
        db.execute(
            "CREATE TRIGGER transcripts_events_insert INSTEAD OF INSERT ON transcripts_events BEGIN SELECT 1; END"
        )
        db.execute(
            "CREATE TRIGGER transcripts_events_update INSTEAD OF UPDATE ON transcripts_events BEGIN SELECT 1; END"
        )
    db.close()
    store.open().close()
    with sqlite3.connect(str(store.target)) as db:
        triggers = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    db.close()
    assert triggers == {
        "transcripts_events_insert_v2",
        "transcripts_events_update_v2",
        "transcripts_events_delete",
    }
    with pytest.raises(sqlite3.IntegrityError, match="no session of that originator_id is listed"):
        store.sql("UPDATE transcripts_events SET originator_id = 'nobody' WHERE originator_id = ?", (sid,))


def test_a_session_id_never_listed_is_still_not_found(store: _Store) -> None:
    _two_sessions(store)
    with store.open() as opened, pytest.raises(SessionNotFound):
        opened.get("never-there")


def test_verify_all_reads_the_feed_and_reports_events_of_no_listed_session(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    store = _Store("sqlite", tmp_path, "transcripts")
    _, last = _two_sessions(store)
    healthy = CliRunner().invoke(cli, ["verify", str(store.target), "--all"])
    assert healthy.exit_code == 0 and "ok   the feed  4 events" in healthy.output, healthy.output
    store.sql("DELETE FROM transcripts_sessions WHERE session_id = ?", (last,))
    damaged = CliRunner().invoke(cli, ["verify", str(store.target), "--all"])
    assert damaged.exit_code == 1, damaged.output
    assert "ok   damaged" in damaged.output and "FAIL the feed: CorruptStore" in damaged.output
    assert "failed verification: the feed" in damaged.output  # the one session passed


def test_an_event_of_a_session_with_no_listing_row_is_damage_to_the_feed(store: _Store) -> None:
    # Found by an adversarial tester: PostgreSQL's feed served them, and verify --all passed.
    _, last = _two_sessions(store)
    store.sql(f"DELETE FROM {store.prefix}_sessions WHERE session_id = %s", (last,))
    with store.open() as opened, pytest.raises(CorruptStore, match="row"):
        opened.feed(limit=100)


def test_a_forged_session_key_at_the_top_of_the_range_is_damage_not_a_broken_create(tmp_path: Path) -> None:
    # Found by an adversarial tester: max(key) + 1 overflowed to a REAL key,
    # and every create() after it failed with SessionExists.
    store = _Store("sqlite", tmp_path, "transcripts")
    first, _ = _two_sessions(store)
    store.sql("INSERT INTO transcripts_log (session, version, kind, state) VALUES (?, 1, 1, x'00')", (2**63 - 1,))
    with store.open() as opened:
        with pytest.raises(CorruptStore, match=f"session key of {2**63 - 1}"):
            opened.create()
        assert [m.text for m in opened.get(first).messages] == ["real"]
        assert len(opened.sessions()) == 2  # the refused create wrote nothing


def test_verify_all_skips_a_session_deleted_after_the_listing_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial tester: a deletion by another process during
    # verify --all was reported as a failure of a healthy store.
    from click.testing import CliRunner

    from engine.cli import cli

    store = _Store("sqlite", tmp_path, "transcripts")
    damaged, other = _two_sessions(store)
    listing = Transcripts.sessions

    def listed_then_deleted(self: Transcripts, *args: Any, **kwargs: Any) -> Any:
        found = listing(self, *args, **kwargs)
        self.delete(other)  # as another process would, just after the listing
        return found

    monkeypatch.setattr(Transcripts, "sessions", listed_then_deleted)
    result = CliRunner().invoke(cli, ["verify", str(store.target), "--all"])
    assert result.exit_code == 0, result.output
    assert f"ok   {damaged}" in result.output and f"gone {other}" in result.output
    assert "ok   the feed  2 events" in result.output


def test_a_token_count_over_64_bits_is_a_typed_refusal_of_the_read_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial tester: transcripts project ended in an OverflowError traceback.
    # Such a count is refused now (see test_usage_the_tables_cannot_hold_is_refused); a store
    # written before that still reads, and the read model says what it cannot hold.
    from click.testing import CliRunner

    from engine import StorageError, Usage
    from engine.cli import cli
    from engine.decisions import transcript
    from engine.readmodel import ReadModel

    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as opened:
        sid = opened.create()
        with monkeypatch.context() as earlier_build:
            earlier_build.setattr(transcript, "check_usage_added", lambda before, added: None)
            opened.append(sid, Message.user("u"), usage=Usage(input=2**64))
        assert opened.get(sid).usage.input == 2**64  # the store keeps it
        with pytest.raises(StorageError, match="cannot hold a number"):
            ReadModel(str(tmp_path / "read.db")).catch_up(opened)
    result = CliRunner().invoke(cli, ["project", path, "--into", str(tmp_path / "cli.db")])
    assert result.exit_code == 1 and "cannot hold a number" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _move_an_event(store: _Store, session_id: str, assignment: str) -> None:
    store.sql(
        f"UPDATE {store.events} SET {assignment} WHERE originator_id = %s AND originator_version = 2", (session_id,)
    )


@pytest.mark.parametrize("position", ["-7", "0", "NULL"])
def test_an_event_moved_where_no_reader_of_the_feed_would_see_it_is_damage(store: _Store, position: str) -> None:
    # Found by an adversarial tester: the feed left such events out, and verify --all passed.
    damaged, _ = _two_sessions(store)
    if position == "NULL" and store.kind == "postgres":
        # The column refuses NULL: a tamperer drops that first. Opening the
        # store then says so (see the test of events at no position below).
        store.sql(f"ALTER TABLE {store.events} ALTER COLUMN position DROP NOT NULL")
        _move_an_event(store, damaged, "position = NULL")
        with pytest.raises(CorruptStore, match="events at no feed position beside events at one"):
            store.open()
        return
    try:
        _move_an_event(store, damaged, f"position = {position}")
    except sqlite3.IntegrityError:
        assert store.kind == "sqlite" and position == "NULL"  # the position is the rowid there: never NULL
        return
    with store.open() as opened:
        with pytest.raises(CorruptStore, match="no write of the engine gives"):
            opened.feed(limit=100)
        assert opened.verify(damaged).version == 2  # the session's own log is whole: positions are not in its chain


def test_events_moved_under_the_key_of_no_session_are_damage_to_the_feed(tmp_path: Path) -> None:
    # Found by an adversarial tester: key 0 is the one row of no session the
    # engine keeps after a deletion, and the feed left every row of it out.
    store = _Store("sqlite", tmp_path, "transcripts")
    _, last = _two_sessions(store)
    store.sql("DELETE FROM transcripts_sessions WHERE session_id = ?", (last,))
    store.sql("UPDATE transcripts_log SET session = 0 WHERE session = 2")
    with store.open() as opened, pytest.raises(CorruptStore, match="session key 0"):
        opened.feed(limit=100)


def test_the_row_a_deletion_leaves_is_no_damage(store: _Store) -> None:
    first, last = _two_sessions(store)
    with store.open() as opened:
        opened.delete(last)  # the newest events: SQLite keeps their position taken with a row of no session
        assert [(entry.session_id, entry.version) for entry in opened.feed(limit=100)] == [(first, 1), (first, 2)]
        opened.append(first, Message.user("after"))
        assert [(entry.session_id, entry.version) for entry in opened.feed(limit=100)][-1] == (first, 3)


@pytest.mark.parametrize(
    "earlier_layout",
    [
        "DROP TABLE transcripts_seal",  # a build before seal modes were recorded
        "DROP TRIGGER transcripts_events_insert_v2",  # a build with older view triggers
        "DELETE FROM transcripts_kinds WHERE topic = 'MessagesAppended.v1.text-revid'",  # before that type
    ],
)
def test_the_row_a_deletion_leaves_does_not_stop_a_store_of_an_earlier_layout_from_opening(
    tmp_path: Path, earlier_layout: str
) -> None:
    """Opening a store whose layout needs bringing up to date checks that
    every type code in the log is named; the row a deletion leaves (code
    0, of no session) is not a type, and once read as an unnamed one,
    which made the whole store refuse to open. Found by an adversarial
    tester."""
    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as opened:
        opened.create(session_id="keep")
        opened.append("keep", Message.user("hi"), Message.assistant("hello"))
        opened.create(session_id="gone")
        opened.delete("gone")
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT session, version, kind, state FROM transcripts_log ORDER BY position DESC"
        ).fetchone() == (
            0,
            0,
            0,
            b"",
        )
        db.execute(earlier_layout)
    db.close()
    with Transcripts.open(path) as opened:
        assert [message.text for message in opened.get("keep").messages] == ["hi", "hello"]
        assert opened.verify("keep").version == 2
        opened.append("keep", Message.user("again"))
    with Transcripts.open(path) as opened:
        assert [message.text for message in opened.get("keep").messages] == ["hi", "hello", "again"]


def test_a_type_code_no_row_names_is_still_refused_when_a_store_of_an_earlier_layout_opens(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as opened:
        opened.create(session_id="keep")
        opened.append("keep", Message.user("hi"), Message.assistant("hello"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_log SET kind = 0 WHERE version = 2")  # as the deletion row has, in a session
        db.execute("DROP TABLE transcripts_seal")
    db.close()
    with pytest.raises(CorruptStore, match=r"type codes \[0\] that no row"):
        Transcripts.open(path)


@pytest.mark.parametrize("key", [0, -3, 2**62])
def test_a_listed_session_moved_to_a_key_no_write_gives_is_damage_to_the_feed(tmp_path: Path, key: int) -> None:
    # Found by an adversarial tester: a session moved under key 0 passed every
    # check, and the next deletion of the newest session erased its log.
    store = _Store("sqlite", tmp_path, "transcripts")
    first, _ = _two_sessions(store)
    store.sql("UPDATE transcripts_log SET session = ? WHERE session = 1", (key,))
    store.sql("UPDATE transcripts_sessions SET key = ? WHERE session_id = ?", (key, first))
    with store.open() as opened, pytest.raises(CorruptStore, match=f"session key {key}"):
        opened.feed(limit=100)


def test_an_event_at_the_top_of_sqlite_positions_is_damage_to_the_feed(tmp_path: Path) -> None:
    # Found by an adversarial tester: SQLite then gives the next events positions at random.
    store = _Store("sqlite", tmp_path, "transcripts")
    damaged, _ = _two_sessions(store)
    _move_an_event(store, damaged, f"position = {2**63 - 1}")
    with store.open() as opened, pytest.raises(CorruptStore, match="no write of the engine gives"):
        opened.feed(limit=100)


def test_events_of_a_session_out_of_order_in_the_feed_are_damage(store: _Store) -> None:
    # Found by an adversarial tester: positions are in no session's chain, and the feed served versions 1, 3, 2.
    with store.open() as opened:
        sid = opened.create()
        opened.append(sid, Message.user("two"))
        opened.append(sid, Message.user("three"))
    second, third = (
        store.value(
            f"SELECT position FROM {store.events} WHERE originator_id = %s AND originator_version = %s", (sid, v)
        )
        for v in (2, 3)
    )
    moves = ((2, -1), (3, second), (2, third))  # through a free position: each stays unique
    for version, position in moves:
        store.sql(
            f"UPDATE {store.events} SET position = %s WHERE originator_id = %s AND originator_version = %s",
            (position, sid, version),
        )
    with store.open() as opened:
        assert opened.verify(sid).version == 3  # the session's own log is whole
        with pytest.raises(CorruptStore, match="comes after its version 3"):
            opened.feed(after=1, limit=100)


def test_snapshots_of_a_session_the_store_does_not_list_refuse_its_id_saying_why(store: _Store) -> None:
    # Found by an adversarial tester: snapshots put back after a deletion made
    # every append of a new session of that id fail with ConcurrentWriteError.
    assert store.target is not None
    with Transcripts.open(store.target, table_prefix=store.prefix, snapshot_interval=2) as opened:
        sid = opened.create(session_id="ghost")
        for number in range(3):
            opened.append(sid, Message.user(f"m{number}"))
    snapshots, kept = f"{store.prefix}_snapshots", f"{store.prefix}_kept"
    store.sql(f"CREATE TABLE {kept} AS SELECT * FROM {snapshots}")
    try:
        assert store.value(f"SELECT count(*) FROM {kept}") == 2
        with store.open() as opened:
            opened.delete(sid)
        with store.open() as opened:
            assert opened.unlisted_snapshots() == []  # the deletion took them with the session
        store.sql(f"INSERT INTO {snapshots} SELECT * FROM {kept}")
        with store.open() as opened:
            with pytest.raises(CorruptStore, match="snapshots of session 'ghost'"):
                opened.create(session_id="ghost")
            assert opened.sessions() == []  # nothing was written
            # No session's check reads them; the store-wide audit names them.
            assert opened.unlisted_snapshots() == ["ghost"]
        audit = _verify_all(store)
        assert audit.exit_code == 1, audit.output
        assert "FAIL the snapshots: the store holds snapshots of sessions it does not list: 'ghost'" in audit.output
        assert "failed verification: the snapshots" in audit.output
    finally:
        store.sql(f"DROP TABLE {kept}")


def _verify_all(store: _Store) -> Any:
    from click.testing import CliRunner

    from engine.cli import cli

    assert store.target is not None
    return CliRunner().invoke(cli, ["verify", store.target, "--prefix", store.prefix, "--all"])


def test_verify_all_names_every_kind_of_failure_it_found(store: _Store) -> None:
    damaged, other = _two_sessions(store)
    healthy = _verify_all(store)
    assert healthy.exit_code == 0, healthy.output
    assert "ok   the snapshots  none of a session the store does not list" in healthy.output
    # A session whose event changed (its chain no longer matches), and one whose listing row is gone.
    store.sql(f"UPDATE {store.events} SET state = %s WHERE originator_id = %s", (b"\x00", damaged))
    store.sql(f"DELETE FROM {store.prefix}_sessions WHERE session_id = %s", (other,))
    audit = _verify_all(store)
    assert audit.exit_code == 1, audit.output
    assert f"FAIL {damaged}: CorruptStore" in audit.output and "FAIL the feed: CorruptStore" in audit.output
    assert "failed verification: 1 of 1 session and the feed" in audit.output


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_store_restored_from_a_cluster_further_on_shows_its_events_and_orders_new_ones_after(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    # Found by adversarial testers: a store restored into another cluster (by
    # pg_dump) holds positions of transaction ids that cluster has not
    # reached. The feed first called its first page damage, then showed none
    # of its events (they waited for the cluster's ids to pass them), and
    # events written after them came first.
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    already = store.open()  # a process that had the store open across the restore
    already.get("damaged")
    store.sql(f"UPDATE {store.events} SET position = position + %s", (2**50,))  # what the restore looks like
    restored = sorted(store.value(f"SELECT array_agg(position) FROM {store.events}"))
    assert len(restored) == 4 and restored[0] > 2**50
    try:
        with pytest.raises(CorruptStore, match="restored from another cluster while it was open here"):
            already.feed(limit=100)  # not yet caught up: its new events would land below the restored ones
        # Found by an adversarial tester: its writes went on, below the restored events, for good.
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            already.append("damaged", Message.user("below the restored events"))
        with store.open() as opened:  # opening it raises the base past them
            assert [entry.position for entry in opened.feed(limit=100)] == restored
            opened.append("other", Message.user("after the restore"))
            already.append("damaged", Message.user("from the process that was open"))
            page = opened.feed(after=restored[-1], limit=100)
            assert [(entry.session_id, entry.version) for entry in page] == [("other", 3), ("damaged", 3)]
            assert opened.verify("damaged").version == 3
    finally:
        already.close()
    with store.open() as opened:  # opened again: nothing more to raise
        assert len(opened.feed(limit=100)) == 6


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_store_restored_from_a_cluster_not_as_far_on_keeps_its_base(kind: str, prefix: str, tmp_path: Path) -> None:
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    store.sql(f"UPDATE {store.events} SET position = position - %s", (2**30,))  # ids this cluster has passed
    with store.open() as opened:
        assert len(opened.feed(limit=100)) == 4
        opened.append("other", Message.user("after"))
        assert opened.feed(limit=100)[-1].version == 3
    assert store.value(f"SELECT base FROM {prefix}_feed") == 2**40


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_store_without_its_feed_row_says_so_and_opening_it_puts_the_row_back(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    with store.open() as opened:
        store.sql(f"DELETE FROM {prefix}_feed")
        with pytest.raises(CorruptStore, match=rf"{prefix}_feed table holds no base .* but None"):
            opened.feed(limit=100)
        # Found by an adversarial tester: writes went on, storing events at no position.
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            opened.append("other", Message.user("lost"))
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            opened.create(session_id="third")
    assert store.value(f"SELECT count(*) FROM {store.events} WHERE position IS NULL") == 0
    with store.open() as opened:
        assert len(opened.feed(limit=100)) == 4  # nothing was written meanwhile
        opened.append("other", Message.user("after"))
        assert opened.feed(limit=100)[-1].version == 3


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_feed_base_lowered_under_an_open_store_is_damage_until_the_store_is_opened_again(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    # A base below the store's positions would put new events below positions
    # readers have passed: the feed says so instead of serving a page.
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    with store.open() as opened:
        store.sql(f"UPDATE {prefix}_feed SET base = base - %s", (2**30,))
        with pytest.raises(CorruptStore, match=f"{prefix}_feed table holds no base"):
            opened.feed(after=1, limit=100)
        # Found by an adversarial tester: writes went on below positions readers had passed, or
        # collided with them and read as ConcurrentWriteError and SessionExists.
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            opened.append("other", Message.user("below"))
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            opened.create(session_id="third")
        store.sql(f"UPDATE {prefix}_feed SET base = -5")
        with pytest.raises(CorruptStore, match=r"holds no base .* but -5"):
            opened.feed(after=1, limit=100)
        # Found by an adversarial tester: a base too high for any position took writes at positions no
        # reopening would accept.
        store.sql(f"UPDATE {prefix}_feed SET base = %s", (2**62,))
        with pytest.raises(CorruptStore, match="no feed position can be given to this write"):
            opened.append("other", Message.user("far above"))
    assert store.value(f"SELECT max(position) FROM {store.events}") < 2**61
    with store.open() as opened:  # opening it again puts the base right
        opened.append("other", Message.user("after"))
        page = opened.feed(limit=100)
        assert [(entry.session_id, entry.version) for entry in page][-1] == ("other", 3)
        assert len(page) == 5
    assert store.value(f"SELECT base FROM {prefix}_feed") == 2**40


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_feed_table_altered_beyond_repair_is_damage_when_the_store_is_opened(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    # Found by an adversarial tester: a base of type text made opening raise a
    # TypeError, and a position at the top of bigint an error of the server.
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    store.sql(f"ALTER TABLE {prefix}_feed ALTER COLUMN base TYPE text")
    with pytest.raises(CorruptStore, match="holds a base of type str, not bigint"):
        store.open()
    store.sql(f"ALTER TABLE {prefix}_feed ALTER COLUMN base TYPE bigint USING base::bigint")
    store.sql(
        f"UPDATE {store.events} SET position = %s WHERE originator_id = 'other' AND originator_version = 2",
        (2**63 - 1,),
    )
    with pytest.raises(CorruptStore, match="feed position 9223372036854775807, beyond any the engine gives"):
        store.open()


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_a_table_of_the_feed_tables_name_that_is_not_the_engines_is_left_alone(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    # Found by an adversarial tester: an application's own <prefix>_feed was
    # taken for the engine's, and the engine's row written into it.
    store = _Store(kind, tmp_path, prefix)
    store.sql(f"CREATE TABLE {prefix}_feed (base bigint, note text)")
    store.sql(f"INSERT INTO {prefix}_feed VALUES (7, 'the application''s')")
    with pytest.raises(StorageUnavailable, match=f"a table {prefix}_feed that is not this engine's"):
        store.open()
    assert store.value(f"SELECT count(*) FROM {prefix}_feed") == 1


@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES_DSN else [])
def test_an_event_at_no_position_beside_placed_ones_is_damage_not_an_older_store(
    kind: str, prefix: str, tmp_path: Path
) -> None:
    # Found by an adversarial tester: opening the store took such an event for
    # one written before positions and gave it the old numbering, below every
    # reader; a store of before positions has no position at all.
    store = _Store(kind, tmp_path, prefix)
    _two_sessions(store)
    store.sql(f"ALTER TABLE {store.events} ALTER COLUMN position DROP NOT NULL")
    store.sql(f"UPDATE {store.events} SET position = NULL WHERE originator_id = 'other' AND originator_version = 2")
    with pytest.raises(CorruptStore, match="events at no feed position beside events at one"):
        store.open()
    assert store.value(f"SELECT count(*) FROM {store.events} WHERE position IS NULL") == 1  # left as it was


def _reseal_times(store: _Store, session_id: str, created_at: str, updated_at: str) -> None:
    """Change the listing row's times and compute its seal again, as someone
    who can write to a store without a seal key can."""
    from engine.store import SessionRow
    from engine.store._chain import seal_of
    from engine.store._records import ROW_COLUMNS

    sessions = f"{store.prefix}_sessions"
    row = SessionRow(
        *(
            store.value(f"SELECT {column} FROM {sessions} WHERE session_id = %s", (session_id,))
            for column in ROW_COLUMNS.split(", ")
        )
    )
    row = row._replace(created_at=created_at, updated_at=updated_at)
    store.sql(
        f"UPDATE {sessions} SET created_at = %s, updated_at = %s, seal = %s WHERE session_id = %s",
        (created_at, updated_at, seal_of(row._replace(seal=""), None), session_id),
    )


def test_listing_row_times_changed_and_resealed_fail_verify(store: _Store) -> None:
    # Found by an adversarial tester: verify compared the row's title, count
    # and revision with the replay, not its times, which sessions() shows.
    damaged, other = _two_sessions(store)
    _reseal_times(store, damaged, "2001-01-01T00:00:00+00:00", "2001-01-02T00:00:00+00:00")
    with store.open() as opened:
        assert [info.created_at.year for info in opened.sessions() if info.id == damaged] == [2001]  # read as stored
        with pytest.raises(CorruptStore, match="listing row differs from the replay"):
            opened.verify(damaged)
        assert opened.verify(other).version == 2


@pytest.mark.parametrize("when", ["2001-01-02T00:00:00", "2001-01-02T01:00:00+01:00"])
def test_a_listing_row_time_not_in_utc_is_damage(store: _Store, when: str) -> None:
    # A time without an offset was listed as a naive datetime, and the CLI's
    # sorting of sessions then failed with TypeError.
    damaged, other = _two_sessions(store)
    with store.open() as opened:
        created = next(info.created_at for info in opened.sessions() if info.id == damaged).isoformat()
    _reseal_times(store, damaged, created, when)
    with store.open() as opened:
        with pytest.raises(CorruptStore, match="bad time"):
            opened.sessions()
        assert opened.verify(other).version == 2


def test_a_dropped_snapshots_table_is_damage_not_an_outage(store: _Store) -> None:
    # Found by an adversarial pass: a table of the store dropped read as
    # StorageUnavailable ("try again later") on every load, for ever.
    with store.open() as opened:
        sid = opened.create()
        opened.append(sid, Message.user("hello"))
        store.sql(f"DROP TABLE {store.prefix}_snapshots")
        opened._repository.forget(sid)  # type: ignore[attr-defined]  # a cold read: the snapshot is looked for
        with pytest.raises(CorruptStore, match="a table of the store is missing"):
            opened.get(sid)


def test_a_fork_by_a_store_that_has_not_read_a_damaged_source_reads_as_damage(store: _Store) -> None:
    # A fork of a source this store object has not read is written from the
    # source's listing row, without reading its log: the damage is found
    # when the fork is read, by every read that rebuilds it.
    damaged, other = _two_sessions(store)
    _copy_event_to_version(store, damaged, 3)  # past the listing row's version 2
    with store.open() as opened:
        child = opened.fork(damaged)
        for name, read in {"get": lambda: opened.get(child), "verify": lambda: opened.verify(child)}.items():
            with pytest.raises(CorruptStore):
                read()
                pytest.fail(f"{name} read the fork of a damaged session as healthy")
        assert [m.text for m in opened.get(opened.fork(other)).messages] == ["untouched"]


def test_a_fork_of_a_source_whose_listing_row_was_altered_is_refused_and_writes_nothing(store: _Store) -> None:
    damaged, other = _two_sessions(store)
    store.sql(f"UPDATE {store.prefix}_sessions SET title = 'forged' WHERE session_id = %s", (damaged,))
    with store.open() as opened:
        with pytest.raises(CorruptStore, match="does not match its seal"):
            opened.fork(damaged)
        assert store.value(f"SELECT count(*) FROM {store.prefix}_sessions") == 2  # nothing written
        assert [m.text for m in opened.get(opened.fork(other)).messages] == ["untouched"]


def test_a_fork_written_from_a_damaged_first_event_stays_damage_after_the_event_is_put_back(store: _Store) -> None:
    # Found by an adversarial pass: a fork made by a store object that had
    # not read its source took its root and depth from the source's first
    # event, altered; once that event was put back, the fork read back as
    # healthy with the altered root, and erasures (which find a family by
    # its root) left it out.
    with store.open() as opened:
        root = opened.create(session_id="root")
        opened.append(root, Message.user("secret"))
        middle = opened.fork(root, child_id="middle")
    select = f"SELECT state FROM {store.events} WHERE originator_id = %s AND originator_version = 1"
    original = bytes(store.value(select, ("middle",)))
    altered = original.replace(b'"root":"root"', b'"root":"elsewhere"')
    assert altered != original
    update = f"UPDATE {store.events} SET state = %s WHERE originator_id = %s AND originator_version = 1"
    store.sql(update, (altered, "middle"))
    with store.open() as opened:
        late = opened.fork(middle, child_id="late")  # from the listing row and the altered first event
    store.sql(update, (original, "middle"))  # put back (a backup restored, say)
    with store.open() as opened:
        assert [m.text for m in opened.verify(middle).messages] == ["secret"]
        for name, read in {"get": lambda: opened.get(late), "verify": lambda: opened.verify(late)}.items():
            with pytest.raises(CorruptStore, match="records root 'elsewhere'"):
                read()
                pytest.fail(f"{name} read the fork as healthy")
