"""Tampering with a store, as an adversarial tester did: edit, delete, swap
and truncate events, forge listing rows, flip random bytes. Every read after
it either raises an engine error or returns exactly what it returned before:
never a silently different answer.

The expected answers are the store's own reads *before* the damage, taken
from an untouched copy, so each case compares two states of the same data.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import CorruptStore, EngineError, InvalidArgument, Message, Transcripts, Usage
from engine.state.events import MessagesAppended
from engine.store import decode_event
from engine.store._codec import encode_event
from engine.store._packed import PACKED_APPEND_TOPIC, REVISION_ID_TEXT_APPEND_TOPIC, TEXT_APPEND_TOPIC
from tests._resealing import relink_and_reseal

Reads = dict[str, Any]


def _session_view(state: Any) -> Any:
    return (
        state.id,
        state.version,
        state.revision,
        msgspec.to_builtins(list(state.messages)),
        msgspec.to_builtins(state.usage),
        dict(state.metadata),
        state.title,
        state.created_at,
        state.updated_at,
    )


def _reads(store: Transcripts, ids: list[str]) -> Reads:
    """Every read the public API offers, each either its value or its error type."""
    calls: dict[str, Callable[[], Any]] = {"sessions": lambda: msgspec.to_builtins(store.sessions())}
    for sid in ids:
        calls[f"get {sid}"] = partial(lambda s: _session_view(store.get(s)), sid)
        calls[f"history {sid}"] = partial(lambda s: msgspec.to_builtins(store.history(s)), sid)
        calls[f"revisions {sid}"] = partial(lambda s: msgspec.to_builtins(store.revisions(s)), sid)
        calls[f"verify {sid}"] = partial(lambda s: _session_view(store.verify(s)), sid)
        calls[f"last {sid}"] = partial(lambda s: msgspec.to_builtins(list(store.get(s, last=3).messages)), sid)
        calls[f"time travel {sid}"] = partial(
            lambda s: [_session_view(store.get(s, at=v)) for v in range(1, store.get(s).version + 1)], sid
        )
    results: Reads = {}
    for name, call in calls.items():
        try:
            results[name] = call()
        except EngineError as exc:
            results[name] = ("error", type(exc).__name__)
    return results


def _silent_differences(before: Reads, after: Reads) -> list[str]:
    return [
        name
        for name, value in after.items()
        if not (isinstance(value, tuple) and value[:1] == ("error",)) and value != before[name]
    ]


def _build(path: Path) -> list[str]:
    """Two sessions past a snapshot (default interval 100), with usage,
    metadata, a title, a rewrite and a fork."""
    store = Transcripts.open(str(path))
    first = store.create(title="first", metadata={"team": "a"}, actor="alice")
    for n in range(60):
        store.append(first, Message.user(f"question {n}"), Message.assistant(f"answer {n}"), actor="alice")
        store.record_usage(first, Usage(input=n, output=2 * n))
    store.set_title(first, "renamed")
    store.update_metadata(first, {"stage": 2})
    store.rewrite(first, 3, 4, [Message.user("edited question")], reason="edit")
    child = store.fork_at(first, 10)
    store.append(child, Message.user("in the fork"))
    store.close()
    return [first, child]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Reads]:
    path = tmp_path_factory.mktemp("pristine") / "store.db"
    ids = _build(path)
    store = Transcripts.open(str(path))
    reads = _reads(store, ids)
    store.close()
    assert not any(isinstance(v, tuple) and v[:1] == ("error",) for v in reads.values()), reads
    return path, ids, reads


def _damaged_copy(pristine: tuple[Path, list[str], Reads], tmp_path: Path, damage: Callable[..., None]) -> Reads:
    path, ids, _ = pristine
    copy = tmp_path / "damaged.db"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as db:
        damage(db, ids)
    db.close()
    store = Transcripts.open(str(copy))
    try:
        return _reads(store, ids)
    finally:
        store.close()


def _edit_event(db: sqlite3.Connection, sid: str, version: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change one stored event as someone editing the file would: its JSON,
    or for packed appended messages, the packed bytes in the same form (``_packed``)."""
    (topic, state) = db.execute(
        "SELECT topic, state FROM transcripts_events WHERE originator_id=? AND originator_version=?", (sid, version)
    ).fetchone()
    if topic in (PACKED_APPEND_TOPIC, TEXT_APPEND_TOPIC, REVISION_ID_TEXT_APPEND_TOPIC):
        event = msgspec.to_builtins(decode_event(topic, state, "test", session_id=sid, version=version))
        change(event)
        packed_topic, edited = encode_event(msgspec.convert(event, MessagesAppended), session_id=sid, version=version)
        assert packed_topic == topic
    else:
        event = json.loads(state)
        change(event)
        edited = json.dumps(event, separators=(",", ":")).encode()
    assert edited != state
    db.execute(
        "UPDATE transcripts_events SET state=? WHERE originator_id=? AND originator_version=?",
        (edited, sid, version),
    )


def _first_version_of(db: sqlite3.Connection, sid: str, kind: str) -> int:
    for version, topic, state in db.execute(
        "SELECT originator_version, topic, state FROM transcripts_events WHERE originator_id=? "
        "ORDER BY originator_version",
        (sid,),
    ):
        if msgspec.to_builtins(decode_event(topic, state, "test", session_id=sid, version=version))["kind"] == kind:
            return int(version)
    raise AssertionError(f"no {kind} in {sid}")


def _set_text(event: dict[str, Any]) -> None:
    event["messages"][0]["blocks"][0]["text"] = "forged text"


def _set_usage(event: dict[str, Any]) -> None:
    event["usage"]["input"] = 10**6


def _set_at(event: dict[str, Any]) -> None:
    event["at"] = "2020-01-01T00:00:00Z"


def _set_actor(event: dict[str, Any]) -> None:
    event["actor"] = "mallory"


def _set_message_id(event: dict[str, Any]) -> None:
    event["messages"][0]["id"] = "msg_forged"


def _set_title(event: dict[str, Any]) -> None:
    event["title"] = "forged title"


def _set_metadata(event: dict[str, Any]) -> None:
    event["set"] = {"stage": 99}


EDITS: dict[str, tuple[str, int | None, Callable[[dict[str, Any]], None]]] = {
    # name: (event kind, version or None for the first of that kind, change)
    "message text before the snapshot": ("messages_appended", 2, _set_text),
    "message text after the snapshot": ("messages_appended", 110, _set_text),
    "message id": ("messages_appended", 20, _set_message_id),
    "usage": ("usage_recorded", None, _set_usage),
    "event time": ("usage_recorded", 50, _set_at),
    "actor": ("messages_appended", 40, _set_actor),
    "title": ("title_changed", None, _set_title),
    "metadata": ("metadata_changed", None, _set_metadata),
    "rewrite text": ("messages_rewritten", None, _set_text),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_event_never_reads_back_as_truth(
    pristine: tuple[Path, list[str], Reads], tmp_path: Path, edit: str
) -> None:
    kind, version, change = EDITS[edit]

    def damage(db: sqlite3.Connection, ids: list[str]) -> None:
        _edit_event(db, ids[0], version or _first_version_of(db, ids[0], kind), change)

    after = _damaged_copy(pristine, tmp_path, damage)
    assert _silent_differences(pristine[2], after) == []
    assert after[f"get {pristine[1][0]}"] == ("error", "CorruptStore")
    assert after[f"history {pristine[1][0]}"] == ("error", "CorruptStore")
    assert after[f"verify {pristine[1][0]}"] == ("error", "CorruptStore")


def _delete_middle(db: sqlite3.Connection, ids: list[str]) -> None:
    db.execute("DELETE FROM transcripts_events WHERE originator_id=? AND originator_version=30", (ids[0],))


def _delete_last(db: sqlite3.Connection, ids: list[str]) -> None:
    (last,) = db.execute(
        "SELECT max(originator_version) FROM transcripts_events WHERE originator_id=?", (ids[0],)
    ).fetchone()
    db.execute("DELETE FROM transcripts_events WHERE originator_id=? AND originator_version>=?", (ids[0], last - 2))


def _delete_last_and_roll_back_the_row(db: sqlite3.Connection, ids: list[str]) -> None:
    # Also rewrites the listing row's version and message count (not the seal).
    _delete_last(db, ids)
    db.execute("UPDATE transcripts_sessions SET version=version-3 WHERE session_id=?", (ids[0],))


def _swap(db: sqlite3.Connection, ids: list[str]) -> None:
    rows = db.execute(
        "SELECT originator_version, state FROM transcripts_events WHERE originator_id=? "
        "AND originator_version IN (10, 12)",
        (ids[0],),
    ).fetchall()
    (v1, s1), (v2, s2) = rows
    for version, state in ((v1, s2), (v2, s1)):
        db.execute(
            "UPDATE transcripts_events SET state=? WHERE originator_id=? AND originator_version=?",
            (state, ids[0], version),
        )


def _forge_row(db: sqlite3.Connection, ids: list[str]) -> None:
    db.execute("UPDATE transcripts_sessions SET title='forged', message_count=9 WHERE session_id=?", (ids[0],))


def _forge_fork_source(db: sqlite3.Connection, ids: list[str]) -> None:
    _edit_event(db, ids[0], 2, _set_text)  # inside the fork's shared history


def _add_event_after_the_end(db: sqlite3.Connection, ids: list[str]) -> None:
    # Appends then failed forever with ConcurrentWriteError while reads passed.
    db.execute(
        "INSERT INTO transcripts_events (originator_id, originator_version, topic, state) "
        "SELECT originator_id, originator_version + 1000, topic, state FROM transcripts_events "
        "WHERE originator_id=? AND originator_version=2",
        (ids[0],),
    )
    db.execute(
        "UPDATE transcripts_events SET originator_version=(SELECT version + 1 FROM transcripts_sessions "
        "WHERE session_id=?) WHERE originator_id=? AND originator_version=1002",
        (ids[0], ids[0]),
    )


def _retype_state(db: sqlite3.Connection, ids: list[str]) -> None:
    # Plain UPDATEs like these raised TypeError and AttributeError.
    db.execute("UPDATE transcripts_events SET state=CAST(state AS TEXT) WHERE originator_id=?", (ids[0],))


def _retype_topic(db: sqlite3.Connection, ids: list[str]) -> None:
    db.execute("UPDATE transcripts_events SET topic=CAST(topic AS BLOB) WHERE originator_id=?", (ids[0],))


def _unknown_type_code(db: sqlite3.Connection, ids: list[str]) -> None:
    # Reads map type codes to names in Python (no join with the kinds table):
    # a code no row names must be damage, not a row left out or misread.
    db.execute(
        "UPDATE transcripts_log SET kind=999 WHERE version=5 "
        "AND session=(SELECT key FROM transcripts_sessions WHERE session_id=?)",
        (ids[0],),
    )


def _retype_snapshot(db: sqlite3.Connection, ids: list[str]) -> None:
    db.execute("UPDATE transcripts_snapshots SET state=CAST(state AS TEXT)")


def _retype_version(value: str) -> Callable[[sqlite3.Connection, list[str]], None]:
    # SQLite sorts text and blobs after every number: such a row is read
    # last, and comparing its version raised TypeError.
    def damage(db: sqlite3.Connection, ids: list[str]) -> None:
        db.execute(
            f"UPDATE transcripts_log SET version={value} WHERE version=5 "
            "AND session=(SELECT key FROM transcripts_sessions WHERE session_id=?)",
            (ids[0],),
        )

    return damage


def _retype_snapshot_version(value: str) -> Callable[[sqlite3.Connection, list[str]], None]:
    def damage(db: sqlite3.Connection, ids: list[str]) -> None:
        db.execute(f"UPDATE transcripts_snapshots SET version={value} WHERE session_id=?", (ids[0],))

    return damage


STRUCTURAL = {
    "delete a middle event": _delete_middle,
    "delete the last events": _delete_last,
    "delete the last events and roll the row back": _delete_last_and_roll_back_the_row,
    "swap two events": _swap,
    "forge the listing row": _forge_row,
    "edit the history a fork shares": _forge_fork_source,
    "add an event after the end": _add_event_after_the_end,
    "store event bodies as text": _retype_state,
    "store type names as blobs": _retype_topic,
    "give an event a type code no type name has": _unknown_type_code,
    "store snapshots as text": _retype_snapshot,
    "store an event's version as text": _retype_version("'5x'"),
    "store an event's version as a blob": _retype_version("x'35'"),
    "store a snapshot's version as text": _retype_snapshot_version("CAST(version AS TEXT) || 'x'"),
    "store a snapshot's version as a fraction": _retype_snapshot_version("version + 0.5"),
}


@pytest.mark.parametrize("damage", sorted(STRUCTURAL))
def test_structural_tampering_never_reads_back_as_truth(
    pristine: tuple[Path, list[str], Reads], tmp_path: Path, damage: str
) -> None:
    after = _damaged_copy(pristine, tmp_path, STRUCTURAL[damage])
    assert _silent_differences(pristine[2], after) == []
    errors = [name for name, value in after.items() if isinstance(value, tuple) and value[:1] == ("error",)]
    assert errors, "the damage went unnoticed by every read"
    assert all(after[name][1] == "CorruptStore" for name in errors), after


def test_a_type_code_unknown_to_an_open_store_is_read_from_the_kinds_table(tmp_path: Path) -> None:
    # An open store maps the type codes it read when it opened; a code given
    # since (by another process) is looked up, not taken for damage.
    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as writer:
        sid = writer.create()
        writer.append(sid, Message.user("one"), Message.assistant("two"))
        writer.append(sid, Message.user("three"))
    reader = Transcripts.open(path)
    with sqlite3.connect(path) as db:
        (old,) = db.execute(
            "SELECT code FROM transcripts_kinds WHERE topic=?", (REVISION_ID_TEXT_APPEND_TOPIC,)
        ).fetchone()
        db.execute("UPDATE transcripts_kinds SET code=777 WHERE code=?", (old,))
        db.execute("UPDATE transcripts_log SET kind=777 WHERE kind=?", (old,))
    db.close()
    try:
        assert [m.text for m in reader.get(sid).messages] == ["one", "two", "three"]
        assert reader.verify(sid) is not None
    finally:
        reader.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_log SET kind=778 WHERE kind=777")
    db.close()
    with Transcripts.open(path) as again, pytest.raises(CorruptStore, match="type code 778"):
        again.get(sid)


def test_verify_on_an_open_store_sees_a_type_name_changed_since_it_opened(tmp_path: Path) -> None:
    # Found by an adversarial run: reads map the codes a store read when it
    # opened, so an open store's verify() passed after the kinds table was
    # altered, while a store opened afterwards reported the damage.
    path = str(tmp_path / "store.db")
    store = Transcripts.open(path)
    try:
        sid = store.create()
        store.append(sid, Message.user("one"))
        store.append(sid, Message.assistant("two"))
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE transcripts_kinds SET topic='x' || topic WHERE topic=?", (REVISION_ID_TEXT_APPEND_TOPIC,)
            )
        db.close()
        with pytest.raises(CorruptStore):
            store.verify(sid)
    finally:
        store.close()


def test_an_event_added_after_the_end_is_damage_to_a_read_of_the_newest_messages_too(
    pristine: tuple[Path, list[str], Reads], tmp_path: Path
) -> None:
    # Found by an adversarial run: get(last=) read only up to the listing
    # row's version, so it returned the sealed messages as if nothing was
    # wrong while every other read of the session reported the damage.
    after = _damaged_copy(pristine, tmp_path, _add_event_after_the_end)
    first = pristine[1][0]
    for read in ("get", "history", "verify", "last"):
        assert after[f"{read} {first}"] == ("error", "CorruptStore"), read


def test_a_consistent_rewrite_is_caught_by_a_kept_head_hash_or_a_seal_key(tmp_path: Path) -> None:
    """Someone who can write to the store and recomputes the chain and the
    row seal passes default reads; a head hash kept outside the store, or a
    seal key, still catches it."""
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path))
    sid = store.create()
    store.append(sid, Message.user("the truth"))
    kept = store.head_hash(sid)
    store.close()

    def rewrite_consistently(db: sqlite3.Connection) -> None:
        _edit_event(db, sid, 2, _set_text)
        relink_and_reseal(db, sid)

    with sqlite3.connect(path) as db:
        rewrite_consistently(db)
    db.close()
    reopened = Transcripts.open(str(path))
    # The revision chain over message content still catches this edit...
    with pytest.raises(CorruptStore):
        reopened.get(sid)
    # ...and the kept head hash catches any consistent rewrite of the log.
    with pytest.raises(CorruptStore, match="kept head hash"):
        reopened.verify(sid, head_hash=kept)
    reopened.close()


def test_a_seal_key_refuses_rows_sealed_without_it(tmp_path: Path) -> None:
    key = b"k" * 32
    path = str(tmp_path / "store.db")
    store = Transcripts.open(path, seal_key=key)
    sid = store.create(title="sealed")
    store.append(sid, Message.user("hi"))
    kept = store.head_hash(sid)
    store.close()
    with pytest.raises(InvalidArgument, match="seals its listing rows with a key: open it with seal_key="):
        Transcripts.open(path)  # someone without the key
    with pytest.raises(InvalidArgument, match="with another key"):
        Transcripts.open(path, seal_key=b"x" * 32)
    again = Transcripts.open(path, seal_key=key)
    assert again.verify(sid, head_hash=kept).title == "sealed"
    assert [info.title for info in again.sessions()] == ["sealed"]
    again.close()


def test_a_store_is_never_sealed_two_ways(tmp_path: Path) -> None:
    # Found by a newcomer: a store written without a key and opened with one
    # took the key for its new sessions, and then neither way of opening it
    # read the whole store (each said the other's rows "were altered").
    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as plain:
        plain.create(session_id="old")
    with pytest.raises(InvalidArgument, match="sealed without a key, but it was opened with seal_key="):
        Transcripts.open(path, seal_key=b"k" * 32)
    with Transcripts.open(path) as again:
        assert [info.id for info in again.sessions()] == ["old"]  # nothing was written, all of it reads


@pytest.mark.parametrize("key", [None, b"k" * 32])
def test_a_store_of_an_earlier_build_learns_how_it_is_sealed_from_its_rows(tmp_path: Path, key: bytes | None) -> None:
    path = str(tmp_path / "store.db")
    with Transcripts.open(path, seal_key=key) as store:
        store.create(session_id="s1")
    with sqlite3.connect(path) as db:  # as earlier builds left it: no record of the seal mode
        db.execute("DROP TABLE transcripts_seal")
    db.close()
    if key is None:
        with pytest.raises(InvalidArgument, match="without a key"):  # its rows say so
            Transcripts.open(path, seal_key=b"x" * 32)
    else:
        # Without the key, a row sealed with one reads as one sealed with
        # another, or altered: the store cannot tell, so its reads say so,
        # and it writes nothing (found by an adversarial pass: it wrote rows
        # sealed without a key beside those sealed with one).
        with Transcripts.open(path) as keyless:
            with pytest.raises(CorruptStore, match="open it with seal_key="):
                keyless.sessions()
            with pytest.raises(InvalidArgument, match="cannot tell how its listing rows are sealed"):
                keyless.create(session_id="alpha")
    with Transcripts.open(path, seal_key=key) as store:  # the right way: reads, writes
        store.create(session_id="s2")
        assert sorted(info.id for info in store.sessions()) == ["s1", "s2"]
    with pytest.raises(InvalidArgument):
        Transcripts.open(path, seal_key=None if key is not None else b"x" * 32)


def test_random_byte_flips_never_read_back_as_different_data(
    pristine: tuple[Path, list[str], Reads], tmp_path: Path
) -> None:
    # 300 trials of 1-4 random bit flips gave 15-26 silently different reads
    # (same count here).
    path, ids, before = pristine
    data = path.read_bytes()
    rng = random.Random(20261129)
    different: list[str] = []
    for trial in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"flip-{trial}.db"
        copy.write_bytes(damaged)
        try:
            store = Transcripts.open(str(copy))
        except EngineError:
            continue
        try:
            after = _reads(store, ids)
        finally:
            store.close()
        different += [f"trial {trial}: {name}" for name in _silent_differences(before, after)]
    assert different == []


def test_a_store_replaced_by_one_sealed_without_the_key_is_never_read_as_sealed(tmp_path: Path) -> None:
    # Found by an adversarial pass: whoever can write the file but lacks the
    # key replaces the store with one sealed without a key. The key holder
    # must not be told to drop the key as if it were their mistake alone.
    key = b"k" * 32
    path, forged = tmp_path / "store.db", tmp_path / "forged.db"
    with Transcripts.open(str(path), seal_key=key) as store:
        store.append(store.create(session_id="s"), Message.user("pay Alice 10"))
    with Transcripts.open(str(forged)) as store:
        store.append(store.create(session_id="s"), Message.user("pay Mallory 10000"))
    path.write_bytes(forged.read_bytes())
    with pytest.raises(InvalidArgument, match="treat what it holds as altered"):
        Transcripts.open(str(path), seal_key=key)


@pytest.mark.parametrize("first", ["with the key", "without it"])
def test_a_keyed_store_of_an_earlier_build_is_never_written_without_the_key(tmp_path: Path, first: str) -> None:
    key = b"k" * 32
    path = str(tmp_path / "store.db")
    with Transcripts.open(path, seal_key=key) as store:
        store.append(store.create(session_id="zeta"), Message.user("secret"))
    with sqlite3.connect(path) as db:  # as earlier builds left it: no record of the seal mode
        db.execute("DROP TABLE transcripts_seal")
    db.close()
    if first == "without it":
        with Transcripts.open(path) as keyless, pytest.raises(InvalidArgument, match="cannot tell"):
            keyless.create(session_id="alpha")
    with Transcripts.open(path, seal_key=key) as store:  # learns the key's way from the row it sealed
        store.create(session_id="alpha")
        assert sorted(info.id for info in store.sessions()) == ["alpha", "zeta"]
    with pytest.raises(InvalidArgument, match="with a key: open it with seal_key="):
        Transcripts.open(path)
