"""The read model (``engine.readmodel``) against the store it follows, on
every backend: its tables hold what the store's own reads say, catching up
equals rebuilding, erased content and deleted sessions leave it, and a
damaged store is reported instead of projected."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import (
    CorruptStore,
    InvalidArgument,
    Message,
    Reasoning,
    StorageUnavailable,
    ToolResult,
    ToolUse,
    Transcripts,
    Usage,
)
from engine.readmodel import ReadModel
from tests._erasing import interleaved_erasures, secret, texts_left
from tests._readmodel import dump, expected_tables, projected_tables
from tests.conftest import StoreFactory


def _conversation(store: Transcripts) -> dict[str, str]:
    """A session with tool use, usage, a rewrite, a restore, title and
    metadata changes, and three kinds of fork: what the read model shows."""
    sid = store.create(title="Trip", metadata={"channel": "web", "n": 1})
    store.append(sid, Message.system("Be brief."), Message.user("Is the Bergen line scenic in March?"))
    ask = Message.assistant("Checking.", ToolUse(id="call_1", name="weather", arguments='{"month": "March"}'))
    store.append(sid, ask, usage=Usage(input=100, output=10), actor="agent")
    store.append(sid, Message.tool_results(ToolResult.of("call_1", "Snow on the pass.")))
    store.append(sid, Message.assistant("Yes, very scenic in snow."))
    before = store.get(sid).revision
    store.rewrite(sid, 4, 5, [Message.assistant("Yes: sit on the left.")], "edit", note="shorter", actor="editor")
    store.record_usage(sid, Usage(input=5, output=7, cache_read=3), response_id="resp_1")
    store.update_metadata(sid, {"resolved": True}, remove=["n"])
    store.set_title(sid, "Oslo to Bergen")
    store.set_header(sid, status="active", tags=["rail", "vip"], pinned=True, model="gpt-5", owner="ana")
    fork_at = store.fork_at(sid, 2)
    store.append(fork_at, Message.assistant("It depends on the weather."))
    replaced = store.fork_replacing(sid, 1, Message.user("Is the night train worth it?"))
    whole = store.fork(replaced)
    store.append(whole, Message.user("And in summer?"))
    store.restore(sid, before)
    return {"root": sid, "fork_at": fork_at, "replaced": replaced, "whole": whole}


def test_the_tables_hold_what_the_store_reads(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open()
    _conversation(store)
    with ReadModel(tmp_path / "read.db") as model:
        assert model.catch_up(store) == sum(info.version for info in store.sessions())
        assert projected_tables(model) == expected_tables(store)
        assert model.catch_up(store) == 0  # nothing new


def test_catching_up_step_by_step_equals_a_rebuild(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open()
    with ReadModel(tmp_path / "steps.db") as stepwise:
        sid = store.create(title="steps")
        stepwise.catch_up(store)
        for text in ("one", "two", "three"):
            store.append(sid, Message.user(text))
            stepwise.catch_up(store)
        store.rewrite(sid, 0, 2, [Message.user("merged")], "compaction")
        child = store.fork_at(sid, 1)
        stepwise.catch_up(store)
        store.append(child, Message.assistant("in the fork"))
        stepwise.catch_up(store)
        with ReadModel(tmp_path / "rebuilt.db") as rebuilt:
            rebuilt.rebuild(store)
            assert dump(stepwise) == dump(rebuilt)
            assert projected_tables(stepwise) == expected_tables(store)


def test_search_finds_head_messages_and_forgets_erased_ones(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open()
    ids = _conversation(store)
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        hits = model.search("scenic")
        # The root's head (after the restore) and the forks that kept message 1 hold the question.
        assert {(hit.session_id, hit.position) for hit in hits} == {
            (ids["root"], 1),
            (ids["root"], 4),
            (ids["fork_at"], 1),
        }
        assert all("[scenic]" in hit.snippet for hit in hits)
        assert model.search("left") == []  # rewritten away, then restored: not in any head
        head = store.get(ids["root"]).messages
        store.erase(ids["root"], head[2].id or "", head[4].id or "")  # the tool call, and an answer
        model.catch_up(store)
        assert {(hit.session_id, hit.position) for hit in model.search("scenic")} == {
            (ids["root"], 1),
            (ids["fork_at"], 1),
        }
        assert not [row for row in model.rows("tool_calls") if row["message_id"] == head[2].id]
        erased = [row for row in model.rows("messages") if row["message_id"] in (head[2].id, head[4].id)]
        assert erased and all(row["text"] == "" and row["erased"] for row in erased)
        assert projected_tables(model) == expected_tables(store)
        with ReadModel(tmp_path / "rebuilt.db") as rebuilt:
            rebuilt.rebuild(store)
            assert dump(model) == dump(rebuilt)


def test_deleted_sessions_leave_the_read_model(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open()
    ids = _conversation(store)
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        store.delete(ids["replaced"], with_forks=True)
        model.catch_up(store)
        listed = {row["id"] for row in model.rows("sessions")}
        assert listed == {ids["root"], ids["fork_at"]}
        assert {row["session_id"] for row in model.rows("messages")} == listed
        assert projected_tables(model) == expected_tables(store)


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = Transcripts.open()
    store.append(store.create(), Message.user("hello"))
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        before = dump(model)
        for bad in ("", "   ", 'unbalanced "quote', "NEAR(", 7, "\udcff"):  # "\udcff": bytes of an argument not UTF-8
            with pytest.raises(InvalidArgument):
                model.search(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            model.search("hello", limit=0)
        with pytest.raises(InvalidArgument):
            model.catch_up("store")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            model.rows("sqlite_master")
        assert dump(model) == before
    # Found by an adversarial pass: a read model at the store's WAL file was
    # deleted by the store's next checkpoint, with every position it had kept.
    for sidecar in ("store.db-wal", "store.db-journal", "store.db-shm"):
        Transcripts.open(tmp_path / "store.db").close()
        with pytest.raises(InvalidArgument, match="a file SQLite keeps beside the database"):
            ReadModel(tmp_path / sidecar)
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_bytes(b"not a database at all " * 100)
    with pytest.raises(InvalidArgument):
        ReadModel(not_sqlite)


def test_a_closed_read_model_says_so_with_a_typed_error(tmp_path: Path) -> None:
    # Found by a newcomer pass: sqlite3's own ProgrammingError came through.
    store = Transcripts.open()
    store.append(store.create(), Message.user("hello"))
    model = ReadModel(tmp_path / "read.db")
    model.catch_up(store)
    model.close()
    calls: list[Callable[[], object]] = [
        lambda: model.search("hello"),
        lambda: model.catch_up(store),
        lambda: model.rebuild(store),
        lambda: model.rows("messages"),
        lambda: model.position,
    ]
    for call in calls:
        with pytest.raises(StorageUnavailable, match="is closed; open it again"):
            call()
    model.close()  # again: nothing to do
    with ReadModel(tmp_path / "read.db") as again:
        assert [hit.session_id for hit in again.search("hello")] == [store.sessions()[0].id]


def test_a_read_model_shows_the_store_it_was_last_caught_up_with(tmp_path: Path) -> None:
    first, second = Transcripts.open(tmp_path / "a.db"), Transcripts.open(tmp_path / "b.db")
    first.append(first.create(session_id="a"), Message.user("apple"))
    second.append(second.create(session_id="b"), Message.user("banana"))
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(first)
        model.catch_up(second)  # another store (or the same path, replaced): its sessions, not the first's
        assert projected_tables(model) == expected_tables(second)
        assert [hit.session_id for hit in model.search("banana")] == ["b"] and model.search("apple") == []


def test_a_store_replaced_by_one_whose_feed_resumes_inside_a_session_is_projected_again(tmp_path: Path) -> None:
    # Found by a newcomer pass: the new store's feed, read from the old one's
    # position, began with a session's second event; catch_up raised
    # CorruptStore (its first event was "missing") instead of projecting the
    # session from its checked history, as documented.
    path = tmp_path / "chats.db"
    with Transcripts.open(path) as store:
        store.create(session_id="old")
        store.append("old", Message.user("one"), Message.assistant("two"))
        store.append("old", Message.user("three"))
        with ReadModel(tmp_path / "read.db") as model:
            model.catch_up(store)
            assert model.position == 3
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"chats.db{suffix}").unlink(missing_ok=True)
    with Transcripts.open(path) as store:
        store.append(store.create(session_id="a"), Message.user("hello"))
        store.append(store.create(session_id="b"), Message.user("world"))  # b's append is at position 4
        with ReadModel(tmp_path / "read.db") as model:
            model.catch_up(store)
            assert projected_tables(model) == expected_tables(store)
            assert [hit.session_id for hit in model.search("world")] == ["b"] and model.search("three") == []
            assert model.position == 4


def test_deleting_the_newest_session_and_restoring_a_copy_are_caught_up(tmp_path: Path) -> None:
    # The feed cannot tell a reader about these (a position given again by an
    # old SQLite store, a file put back from a copy): the tables are compared
    # with the store's listing and brought up to date.
    import shutil

    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    store.append(store.create(session_id="keep"), Message.user("first"))
    store.append(store.create(session_id="gone"), Message.user("to be deleted"))
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        store.delete("gone")
        store.append("keep", Message.user("second apple"))
        store.create(session_id="gone")  # made again, with the same id
        model.catch_up(store)
        assert projected_tables(model) == expected_tables(store)
        assert [hit.session_id for hit in model.search("apple")] == ["keep"]
        store.close()
        shutil.copy(path, tmp_path / "copy.db")
        again = Transcripts.open(path)
        again.append("keep", Message.user("third"))
        model.catch_up(again)
        again.close()
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"store.db{suffix}").unlink(missing_ok=True)
        shutil.copy(tmp_path / "copy.db", path)  # the older copy put back
        restored = Transcripts.open(path)
        model.catch_up(restored)
        assert projected_tables(model) == expected_tables(restored)


def test_an_erasure_reaches_its_family_only(tmp_path: Path) -> None:
    # Callers choose message ids: the same id in another family is another message.
    store = Transcripts.open()
    for sid in ("a", "b"):
        store.create(session_id=sid)
        store.append(sid, Message.user(f"secret of {sid} kiwi", id="m1"))
        store.append(sid, Message.assistant("calling", ToolUse(id="c1", name="lookup", arguments="{}"), id="m2"))
        store.append(sid, Message.tool_results(ToolResult.of("c1", f"result {sid}"), id="m3"))
    fork = store.fork("a")
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        store.erase("a", "m1", "m2", "m3")
        model.catch_up(store)
        assert projected_tables(model) == expected_tables(store)
        assert {hit.session_id for hit in model.search("kiwi")} == {"b"}
        assert {row["session_id"] for row in model.rows("tool_calls")} == {"b"}
        assert all(row["erased"] for row in model.rows("messages") if row["session_id"] in ("a", fork))
        with ReadModel(tmp_path / "rebuilt.db") as rebuilt:
            rebuilt.rebuild(store)
            assert dump(model) == dump(rebuilt)


def test_an_erasure_keeps_a_forks_own_message_that_only_shares_the_id(tmp_path: Path) -> None:
    # Found by an adversarial pass: the store keeps the fork's own "turn-4"
    # (docs/erasure.md), but the read model blanked every row under the id in
    # the family, and a rebuild of the healthy store raised CorruptStore.
    store = Transcripts.open()
    source = store.create()
    store.append(source, Message.user("hi"))
    fork = store.fork(source)
    store.append(source, Message.user("source secret kiwi", id="turn-4"))
    store.append(fork, Message.user("fork own words", id="turn-4"))
    grandchild = store.fork(source)  # inherits the source's turn-4
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        store.erase(source, "turn-4")
        model.catch_up(store)
        texts = {(row["session_id"], row["position"]): row["text"] for row in model.rows("messages")}
        assert texts[(fork, 1)] == "fork own words"
        assert texts[(source, 1)] == "" and texts[(grandchild, 1)] == ""
        assert [hit.session_id for hit in model.search("fork")] == [fork]
        assert model.search("kiwi") == []
        assert projected_tables(model) == expected_tables(store)
        with ReadModel(tmp_path / "rebuilt.db") as rebuilt:
            rebuilt.rebuild(store)
            assert dump(model) == dump(rebuilt)


def test_erased_text_leaves_the_read_model_file(tmp_path: Path) -> None:
    store = Transcripts.open(tmp_path / "store.db")
    sid = store.create()
    store.append(sid, Message.user("my passport is XQ987654321"), Message.user("keep this"))
    path = tmp_path / "read.db"
    with ReadModel(path) as model:
        model.catch_up(store)
        store.erase(sid, store.get(sid).messages[0].id or "")
        model.catch_up(store)
        assert model.search("XQ987654321") == []
    files = [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]
    stored = b"".join(file.read_bytes() for file in files if file.exists())
    assert b"keep this" in stored
    assert b"XQ987654321" not in stored and b"xq987654321" not in stored and b"passport" not in stored


def test_two_processes_catching_up_one_read_model_take_turns(tmp_path: Path) -> None:
    import threading

    store = Transcripts.open(tmp_path / "store.db")
    sessions = [store.create() for _ in range(5)]
    for number in range(600):
        store.append(sessions[number % 5], Message.user(f"message {number}"))
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            with ReadModel(tmp_path / "read.db") as model:
                model.catch_up(Transcripts.open(tmp_path / "store.db"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=follow) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ReadModel(tmp_path / "read.db") as model:
        assert projected_tables(model) == expected_tables(store)


def test_a_tamper_is_caught_even_when_the_reader_has_the_session_cached(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(path)  # long-lived: it has every session cached
    sid = store.create()
    store.append(sid, Message.assistant("calling", ToolUse(id="c1", name="pay", arguments='{"amount": 10}')))
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE transcripts_events SET state = CAST(replace(CAST(state AS TEXT), '10', '99') AS BLOB) "
            "WHERE originator_version = 2"
        )
    with ReadModel(tmp_path / "read.db") as model:
        with pytest.raises(CorruptStore):
            model.catch_up(store)
        assert model.position == 0 and list(model.rows("tool_calls")) == []


# Each writes one event, then the test alters one value in its stored bytes.
_TAMPERS = {
    "message text": (lambda s, sid: s.append(sid, Message.user("pay Alice")), b"Alice", b"Mallo"),
    "reasoning": (
        lambda s, sid: s.append(sid, Message.assistant(Reasoning("trust Alice"), "ok")),
        b"trust Alice",
        b"trust Mallo",
    ),
    "tool result": (
        lambda s, sid: s.append(
            sid,
            Message.assistant("calling", ToolUse(id="c0", name="pay")),
            Message.tool_results(ToolResult.of("c0", "paid Alice")),
        ),
        b"paid Alice",
        b"paid Mallo",
    ),
    "usage": (lambda s, sid: s.record_usage(sid, Usage(input=1234, output=5)), b"1234", b"9234"),
    "metadata": (lambda s, sid: s.update_metadata(sid, {"payee": "Alice"}), b"Alice", b"Mallo"),
    "title": (lambda s, sid: s.set_title(sid, "Alice"), b"Alice", b"Mallo"),
    "header": (lambda s, sid: s.set_header(sid, owner="Alice", tags=["Alice"]), b"Alice", b"Mallo"),
}


@pytest.mark.parametrize("warm", [True, False], ids=["reader-cached", "reader-fresh"])
@pytest.mark.parametrize("field", sorted(_TAMPERS))
def test_a_tamper_of_any_projected_value_is_caught(tmp_path: Path, field: str, warm: bool) -> None:
    write, old, new = _TAMPERS[field]
    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    sid = store.create()
    store.append(sid, Message.user("hello"))
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        checked = dump(model)
        write(store, sid)
        if not warm:
            store.close()
            store = Transcripts.open(path)
        with sqlite3.connect(path) as connection:
            (state,) = connection.execute(
                "SELECT state FROM transcripts_events WHERE originator_version = 3"
            ).fetchone()
            assert old in bytes(state)
            connection.execute(
                "UPDATE transcripts_events SET state = ? WHERE originator_version = 3",
                (bytes(state).replace(old, new),),
            )
        with pytest.raises(CorruptStore):
            model.catch_up(store)
        assert dump(model) == checked  # nothing of the altered event was kept


def test_the_store_file_is_not_a_read_model(tmp_path: Path) -> None:
    Transcripts.open(tmp_path / "store.db").create()
    with pytest.raises(InvalidArgument, match="is a transcript store"):
        ReadModel(tmp_path / "store.db")


def test_a_damaged_store_is_reported_not_projected(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    sid = store.create()
    store.append(sid, Message.user("the truth"))
    store.close()
    with sqlite3.connect(path) as connection:
        (state,) = connection.execute("SELECT state FROM transcripts_events WHERE originator_version = 2").fetchone()
        connection.execute(
            "UPDATE transcripts_events SET state = ? WHERE originator_version = 2",
            (bytes(state).replace(b"the truth", b"a lie!!!!"),),
        )
    with ReadModel(tmp_path / "read.db") as model:
        with pytest.raises(CorruptStore):
            model.catch_up(Transcripts.open(path))
        assert model.position == 0  # nothing of the damaged page was kept
        assert list(model.rows("messages")) == [] and list(model.rows("sessions")) == []


def test_two_writer_processes_and_a_follower(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Transcripts.open(path).close()
    writer = textwrap.dedent(
        f"""
        from engine import Message, Transcripts
        store = Transcripts.open({str(path)!r})
        sid = store.create(title="writer")
        for n in range(60):
            store.append(sid, Message.user(f"message {{n}}"))
            if n % 20 == 19:
                store.rewrite(sid, 0, 1, [Message.user(f"first, edited at {{n}}")])
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", writer]) for _ in range(2)]
    store = Transcripts.open(path)
    with ReadModel(tmp_path / "read.db") as model:
        while any(process.poll() is None for process in processes):
            model.catch_up(store)  # while both write
        assert [process.wait() for process in processes] == [0, 0]
        model.catch_up(store)
        assert projected_tables(model) == expected_tables(store)
        assert len(expected_tables(store)["sessions"]) == 2
        with ReadModel(tmp_path / "rebuilt.db") as rebuilt:
            rebuilt.rebuild(store)
            assert dump(model) == dump(rebuilt)


def test_two_messages_with_one_id_keep_their_own_tool_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A message id given twice: refused now, held by stores written before.
    monkeypatch.setattr("engine.decisions.transcript.check_ids_free", lambda *args: None)  # as engines before did
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.assistant("first", ToolUse(id="c1", name="f", arguments="{}"), id="m1"))
    store.append(sid, Message.tool_results(ToolResult.of("c1", "one")))
    store.append(sid, Message.assistant("second", ToolUse(id="c2", name="g", arguments="{}"), id="m1"))
    store.append(sid, Message.tool_results(ToolResult.of("c2", "two")))
    store.rewrite(sid, 0, 2, [])
    with ReadModel(tmp_path / "read.db") as model:
        model.catch_up(store)
        assert [row["name"] for row in model.rows("tool_calls")] == ["g"]
        assert projected_tables(model) == expected_tables(store)
    with ReadModel(tmp_path / "steps.db") as stepwise:
        fresh = Transcripts.open()
        fresh_sid = fresh.create()
        fresh.append(fresh_sid, Message.assistant("first", ToolUse(id="c1", name="f", arguments="{}"), id="m1"))
        fresh.append(fresh_sid, Message.tool_results(ToolResult.of("c1", "one")))
        fresh.append(fresh_sid, Message.assistant("second", ToolUse(id="c2", name="g", arguments="{}"), id="m1"))
        fresh.append(fresh_sid, Message.tool_results(ToolResult.of("c2", "two")))
        stepwise.catch_up(fresh)
        fresh.rewrite(fresh_sid, 0, 2, [])
        stepwise.catch_up(fresh)
        assert [row["name"] for row in stepwise.rows("tool_calls")] == ["g"]
        assert projected_tables(stepwise) == expected_tables(fresh)


def _caught_up_around(
    reader: Transcripts, path: Path, write: Callable[[], object], at: Callable[[list[Any]], bool]
) -> dict[str, list[tuple[Any, ...]]]:
    """Catch a read model up from ``reader`` while ``write()`` runs once,
    just after the first feed page for which ``at(page)`` holds; then again
    with nothing meanwhile. Returns the tables, checked against the store."""
    pages = reader.feed
    done: list[bool] = []

    def feed_then_write(after: int = 0, limit: int = 100) -> Any:
        page = pages(after=after, limit=limit)
        if not done and at(page):
            done.append(True)
            write()
        return page

    reader.feed = feed_then_write  # type: ignore[method-assign]
    with ReadModel(path) as model:
        model.catch_up(reader)
        assert done
        reader.feed = pages  # type: ignore[method-assign]
        model.catch_up(reader)
        tables = projected_tables(model)
    assert tables == expected_tables(reader)
    return tables


@pytest.mark.parametrize("meanwhile", ["erase", "delete and make again"])
def test_a_write_between_the_feed_and_the_check_is_not_corruption(
    stores: StoreFactory, tmp_path: Path, meanwhile: str
) -> None:
    # Found by an adversarial tester: an erasure (or a session deleted and
    # made again) landing after the feed was read and before the tables were
    # checked against the store raised CorruptStore on a healthy store.
    writer = stores.open()
    sid = writer.create(session_id="chat")
    writer.append(sid, Message.user("my card number is 4111 1111"), Message.assistant("noted"))
    secret = writer.get(sid).messages[0].id
    assert secret is not None

    def write() -> None:
        if meanwhile == "erase":
            writer.erase(sid, secret)
        else:
            writer.delete(sid)
            writer.create(session_id=sid)
            writer.append(sid, Message.user("another"), Message.assistant("conversation"))

    # At the last page: the catch-up checks the tables next.
    tables = _caught_up_around(stores.open(), tmp_path / "read.db", write, at=lambda page: not page)
    # With a space: digests, revisions and times in the tables can hold "4111".
    assert "4111 1111" not in str(tables)


def test_a_fork_deleted_after_its_events_were_read_is_no_error(stores: StoreFactory, tmp_path: Path) -> None:
    # Found by an adversarial tester: the catch-up raised SessionNotFound
    # when it read the fork's first state for its row.
    writer = stores.open()
    sid = writer.create(session_id="chat")
    writer.append(sid, Message.user("hello"), Message.assistant("hi"))
    fork = writer.fork(sid)
    writer.append(fork, Message.user("in the fork"))
    # At the first page: the fork's events are read, and it goes before the catch-up reads it again.
    tables = _caught_up_around(stores.open(), tmp_path / "read.db", lambda: writer.delete(fork), at=bool)
    assert [row[0] for row in tables["sessions"]] == [sid]


def test_a_read_model_file_is_never_made_into_a_store(tmp_path: Path) -> None:
    # Found by a newcomer: Transcripts.open() on a read model (the CLI's
    # STORE.read.db) added the store's tables to it, and the read model then
    # refused itself as "a transcript store".
    store_path, model_path = str(tmp_path / "store.db"), str(tmp_path / "store.read.db")
    with Transcripts.open(store_path) as store:
        store.append(store.create(), Message.user("hi"))
        with ReadModel(model_path) as model:
            model.catch_up(store)
    before = sorted(name for (name,) in sqlite3.connect(model_path).execute("SELECT name FROM sqlite_master"))
    with pytest.raises(InvalidArgument, match="is a read model"):
        Transcripts.open(model_path)
    after = sorted(name for (name,) in sqlite3.connect(model_path).execute("SELECT name FROM sqlite_master"))
    assert after == before
    with ReadModel(model_path) as model:  # still the read model it was
        assert model.position > 0


def test_the_command_line_names_a_read_model_given_as_a_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    store_path, model_path = str(tmp_path / "store.db"), str(tmp_path / "store.db.read.db")
    with Transcripts.open(store_path) as store:
        store.append(store.create(), Message.user("hi"))
    assert CliRunner().invoke(cli, ["project", store_path]).exit_code == 0
    result = CliRunner().invoke(cli, ["sessions", model_path])
    assert result.exit_code == 1 and "is a read model (engine.readmodel)" in result.output


def test_a_read_model_catches_up_from_an_async_store_on_its_worker(tmp_path: Path) -> None:
    # Found by a newcomer: catch_up(async_store) said only that it takes a
    # Transcripts store, and run_sync(model.catch_up) crashed with a raw
    # sqlite3.ProgrammingError (the connection belonged to another thread).
    import asyncio

    from engine import AsyncTranscripts

    async def scenario() -> tuple[int, list[Any], int]:
        store = await AsyncTranscripts.open(str(tmp_path / "store.db"))
        sid = await store.create(title="async")
        await store.append(sid, Message.user("hello from asyncio"), Message.assistant("hi"))
        with ReadModel(tmp_path / "read.db") as model:
            with pytest.raises(InvalidArgument, match=r"await store.run_sync\(model.catch_up\)"):
                model.catch_up(store)  # type: ignore[arg-type]
            applied = await store.run_sync(model.catch_up)
            await store.append(sid, Message.user("again"))
            applied += await store.run_sync(model.catch_up)  # another worker thread, maybe
            hits = model.search("asyncio")
            position = model.position
        await store.close()
        return applied, hits, position

    applied, hits, position = asyncio.run(scenario())
    assert applied == 3 and position > 0  # created (with its title), appended, appended
    assert [hit.snippet for hit in hits] == ["hello from [asyncio]"]


def test_erased_and_deleted_text_leaves_every_page_of_the_read_model(tmp_path: Path) -> None:
    # As in the store (an adversarial run found it there): SQLite leaves
    # copies of moved rows in the unused space of pages, which secure_delete
    # does not zero; a deleted session's text was still in the file.
    store = Transcripts.open(str(tmp_path / "store.db"))
    steps: list[int] = []

    with ReadModel(tmp_path / "read.db") as model:

        def catch_up_every_seventh() -> None:
            if len(steps) % 7 == 0:
                model.catch_up(store)
            steps.append(1)

        live, gone = interleaved_erasures(store, seed=2, after_step=catch_up_every_seventh)
        model.catch_up(store)
        kept = {ident: sid for sid, idents in live.items() for ident in idents}
        ident, sid = next(iter(kept.items()))
        hits = model.search(f'"{secret(ident)}"')  # the search index still points at the right rows
        assert [(hit.session_id, hit.message_id) for hit in hits] == [(sid, ident)]
    store.close()
    assert texts_left(tmp_path, "read.db", gone) == []
    assert texts_left(tmp_path, "read.db", [secret(ident) for ident in kept]) == [secret(ident) for ident in kept]


def test_a_catch_up_that_rebuilds_the_search_index_leaves_no_transaction_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass (two processes catching up one read model
    # while a third erased): after an erasure, a catch-up VACUUMs the file and
    # rebuilds the search index if its rows were numbered anew, which they
    # seem to be when another process wrote meanwhile. The rebuild ran in a
    # transaction Python opened by itself and left open, holding the file's
    # write lock: the checkpoint after it failed ("database table is locked"),
    # and every other process waited for the lock until the model was closed,
    # which rolled the rebuild back.
    import engine.readmodel._projection as projection

    path = tmp_path / "read.db"
    connect = sqlite3.connect

    class Meanwhile(sqlite3.Connection):
        """The read model's connection, with another process's write right after its VACUUM."""

        def execute(self, sql: str, *parameters: Any) -> sqlite3.Cursor:
            cursor = super().execute(sql, *parameters)
            if sql == "VACUUM":
                with connect(path, isolation_level=None) as other:
                    other.execute("INSERT INTO messages (rowid, session_id, position) VALUES (999999, 'x', 0)")
            return cursor

    store = Transcripts.open(tmp_path / "store.db")
    sid = store.create()
    store.append(sid, Message.user("card 4111 1111 1111 1111"), Message.assistant("noted"))
    with ReadModel(path) as model:
        model.catch_up(store)
    monkeypatch.setattr(projection.sqlite3, "connect", lambda *a, **k: connect(*a, factory=Meanwhile, **k))
    store.erase(sid, store.get(sid).messages[0].id or "")
    model = ReadModel(path)
    model.catch_up(store)
    assert not model.db.conn.in_transaction
    with connect(path, timeout=0.1, isolation_level=None) as other:  # the write lock is free
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    assert [hit.snippet for hit in model.search("noted")] == ["[noted]"]
    model.close()
    monkeypatch.undo()
    with ReadModel(path) as reopened:
        assert [hit.snippet for hit in reopened.search("noted")] == ["[noted]"] and reopened.search("4111") == []
    files = [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]
    assert b"4111" not in b"".join(file.read_bytes() for file in files if file.exists())


def test_read_model_md_names_every_column_of_the_tables_it_lists(tmp_path: Path) -> None:
    # Found by a newcomer: the sessions row left out outcome, parent,
    # spawn_depth and task. The usage and meta rows describe theirs ("the
    # five token counts", one row per setting), so they are not listed here.
    doc = (Path(__file__).parent.parent / "docs" / "read-model.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")}
    with ReadModel(str(tmp_path / "r.db")) as model:
        for table in ("sessions", "messages", "tool_calls", "tool_results", "revisions", "forks"):
            missing = [column for column in model.db[table].columns_dict if f"`{column}`" not in rows[table]]
            assert missing == [], (table, missing)
