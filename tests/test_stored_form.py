"""The stored form: appended messages packed (every message round-trips
exactly, damaged bytes read as damage), and the SQLite log's lean layout
(a store of the earlier layout is moved to it unchanged)."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import CorruptStore, InvalidArgument, InvalidMessage, Message, Text, ToolResult, ToolUse, Transcripts
from engine.state.content import Image, Reasoning, Transcript
from engine.state.events import MessagesAppended
from engine.store import decode_event
from engine.store._codec import encode_event
from engine.store._packed import (
    PACKED_APPEND_TOPIC,
    PACKED_EVENT_FIELDS,
    PACKED_MESSAGE_FIELDS,
    REVISION_ID_TEXT_APPEND_TOPIC,
    TEXT_APPEND_TOPIC,
    pack_append,
    pack_text_append,
)
from engine.testing.strategies import messages, texts, tool_exchanges

GOLDEN = Path(__file__).parent / "golden" / "store-v0.1.db"
AT = datetime(2026, 11, 29, 18, 20, 27, 81403, tzinfo=UTC)
REVISION = "sha256:" + "5b542e32c55b6641d904888fcdc3b5849b17cbcf7ba6ad3476b0bbd36c68016e"
SESSION, VERSION = "s-1", 2
# The id the engine gives the message that session s-1's append at version 2
# reached REVISION with: the revision's first 10 bytes exclusive-or 10 bytes
# of a digest of the session id and exclusive-or the version (as 10 bytes).
_KEY = hashlib.sha256(b"transcript-engine/message-id\x00" + SESSION.encode()).digest()[:10]
_MIXED = bytes(a ^ b ^ c for a, b, c in zip(bytes.fromhex(REVISION[7:27]), _KEY, VERSION.to_bytes(10), strict=True))
REVISION_ID = "msg_" + _MIXED.hex()
MASK = int.from_bytes(_KEY, "big") ^ VERSION


def _round_trip(event: MessagesAppended) -> MessagesAppended:
    topic, state = encode_event(event, session_id=SESSION, version=VERSION)
    decoded = decode_event(topic, state, "test", session_id=SESSION, version=VERSION)
    assert isinstance(decoded, MessagesAppended)
    return decoded


def _same(a: MessagesAppended, b: MessagesAppended) -> None:
    """Equal, and equal as JSON: same types all the way down (1 is not True)."""
    assert a == b
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert a.at.tzinfo == b.at.tzinfo


def test_the_packed_form_names_every_field_of_the_event_and_of_a_message() -> None:
    # A new field needs a place in the packed form before it can be stored.
    assert set(MessagesAppended.__struct_fields__) == set(PACKED_EVENT_FIELDS)
    assert set(Message.__struct_fields__) == set(PACKED_MESSAGE_FIELDS) - {"engine_id"} | {"id"}


ids = st.one_of(
    st.none(),
    st.just(REVISION_ID),
    st.from_regex(r"msg_[0-9a-f]{20}", fullmatch=True),
    st.from_regex(r"msg_[0-9A-F]{20}", fullmatch=True),  # not the engine's (upper case): kept as text
    st.from_regex(r"msg_[0-9a-f]{19,21}", fullmatch=True),
    texts(30).filter(bool),  # an empty id is refused
)
any_message = st.one_of(messages(), tool_exchanges().map(lambda pair: pair[0]), tool_exchanges().map(lambda p: p[1]))


@given(
    st.lists(
        st.tuples(any_message, ids, st.none() | texts(12), st.booleans(), st.none() | st.just('{"a": [1, true]}')),
        min_size=1,
        max_size=4,
    ),
    st.none() | texts(10),
    st.integers(-(2**40), 2**50),
)
def test_every_appended_message_round_trips_exactly(
    drawn: list[tuple[Message, str | None, str | None, bool, str | None]], actor: str | None, micros: int
) -> None:
    built = tuple(
        msgspec.structs.replace(message, id=ident, provider_item_id=item, incomplete=incomplete, provider_data=data)
        for message, ident, item, incomplete, data in drawn
    )
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    event = MessagesAppended(at=at, actor=actor, messages=built, revision=REVISION)
    plain_text = (
        len(built) == 1
        and actor is None
        and len(built[0].blocks) == 1
        and type(built[0].blocks[0]) is Text
        and re.fullmatch(r"msg_[0-9a-f]{20}", built[0].id or "") is not None
        and (built[0].provider_item_id, built[0].incomplete, built[0].provider_data) == (None, False, None)
    )
    expected = PACKED_APPEND_TOPIC
    if plain_text:
        expected = REVISION_ID_TEXT_APPEND_TOPIC if built[0].id == REVISION_ID else TEXT_APPEND_TOPIC
    assert encode_event(event, session_id=SESSION, version=VERSION)[0] == expected
    _same(_round_trip(event), event)


FIRST_MICROSECOND = -62_135_596_800_000_000  # 0001-01-01, as microseconds from 1970
LAST_MICROSECOND = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999


@given(
    texts(300),
    st.sampled_from(["system", "user", "assistant"]),
    st.integers(-(2**55), 2**55 - 1) | st.integers(FIRST_MICROSECOND, LAST_MICROSECOND),
)
def test_one_text_message_round_trips_exactly_in_its_own_form(text: str, role: str, micros: int) -> None:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    message = Message(role=role, blocks=(Text(text=text),), id="msg_00ff" + "0" * 16)  # type: ignore[arg-type]
    event = MessagesAppended(at=at, messages=(message,), revision=REVISION)
    topic, state = encode_event(event)
    if -(2**55) <= micros < 2**55:  # the years 829 to 3111
        assert topic == TEXT_APPEND_TOPIC
        assert state[50:] == text.encode()
    else:
        assert topic == PACKED_APPEND_TOPIC
    _same(_round_trip(event), event)


def test_blocks_of_every_kind_and_an_erased_placeholder_round_trip() -> None:
    image = Image(media_type="image/png", data=b"\x89PNG\x00\xff")
    message = Message(
        role="assistant",
        blocks=(
            Text(text="é ✓"),
            Transcript(text="said", truncated_at_ms=1500),
            Reasoning(text="hm", signature="s"),
            ToolUse(id="call_1", name="f", arguments='{"x": 1}'),
            image,
        ),
        id="msg_0123456789abcdef0123",
    )
    results = Message(role="tool_results", blocks=(ToolResult(tool_use_id="call_1", content=(Text(text="ok"), image)),))
    event = MessagesAppended(at=AT, messages=(message, results), revision=REVISION)
    _same(_round_trip(event), event)


def test_what_the_packed_form_cannot_hold_exactly_is_stored_as_json() -> None:
    message = Message.user("hi")
    for event in (
        MessagesAppended(at=AT.astimezone(timezone(timedelta(hours=2))), messages=(message,), revision=REVISION),
        MessagesAppended(at=AT, messages=(message,), revision="sha256:" + "AB" * 32),
        MessagesAppended(at=AT, messages=(message,), revision="sha256:abc"),
    ):
        assert pack_append(event) is None
        topic, state = encode_event(event)
        assert topic == "MessagesAppended.v1" and state.startswith(b"{")
        _same(_round_trip(event), event)


def test_a_200_byte_message_is_stored_in_40_bytes_more_with_its_id_in_50_and_with_an_actor_in_62() -> None:
    text = "message 000001 " + "x" * 185
    # The id the engine gives it in session s-1, made from the revision: not stored again.
    named = Message(role="user", blocks=(Text(text=text),), id=REVISION_ID)
    assert pack_text_append(MessagesAppended(at=AT, messages=(named,), revision=REVISION), mask=MASK) == (
        REVISION_ID_TEXT_APPEND_TOPIC,
        # role 1 and at 7 (plus 2**55), revision 32, then the text.
        b"\x01" + (1795976427081403 + 2**55).to_bytes(7, "big") + bytes.fromhex(REVISION[7:]) + text.encode(),
    )
    # The same id in another session or at another version, or with neither named, is kept in the bytes.
    event = MessagesAppended(at=AT, messages=(named,), revision=REVISION)
    for elsewhere in ({"session_id": "s-2", "version": VERSION}, {"session_id": SESSION, "version": 3}, {}):
        assert encode_event(event, **elsewhere)[0] == TEXT_APPEND_TOPIC  # type: ignore[arg-type]
    # Any other id of the engine's shape (earlier builds made random ones): its 10 bytes after the revision.
    message = Message(role="user", blocks=(Text(text=text),), id="msg_d961acc862a4b7b8ffc3")
    plain = MessagesAppended(at=AT, messages=(message,), revision=REVISION)
    state = (
        b"\x01"
        + (1795976427081403 + 2**55).to_bytes(7, "big")
        + bytes.fromhex(REVISION[7:])
        + (bytes.fromhex("d961acc862a4b7b8ffc3") + text.encode())
    )
    assert pack_text_append(plain) == (TEXT_APPEND_TOPIC, state)
    assert encode_event(plain) == (TEXT_APPEND_TOPIC, state)
    acted = MessagesAppended(at=AT, actor="agent", messages=(message,), revision=REVISION)
    assert pack_text_append(acted) is None
    packed = pack_append(acted)
    assert packed is not None
    # at 9, revision 34, id 12, role 1, four array headers, a string's 2, the actor's 6.
    assert len(packed) == 200 + 62 + 6


def test_a_row_whose_id_is_made_from_its_session_is_decoded_with_its_session_id_and_version() -> None:
    message = Message(role="assistant", blocks=(Text(text="hi"),), id=REVISION_ID)
    event = MessagesAppended(at=AT, messages=(message,), revision=REVISION)
    topic, state = encode_event(event, session_id=SESSION, version=VERSION)
    assert topic == REVISION_ID_TEXT_APPEND_TOPIC
    for partial in ({}, {"session_id": SESSION}, {"version": VERSION}):
        with pytest.raises(InvalidArgument, match="pass session_id= and version= to decode it"):
            decode_event(topic, state, "version 2", **partial)  # type: ignore[arg-type]
    for wrong, said in (
        ({"session_id": 123}, "session_id must be a str or None"),
        ({"session_id": b"s-1"}, "session_id must be a str or None"),
        ({"version": "2"}, "version must be an int from 0 to 2\\*\\*63 - 1"),
        ({"version": -1}, "version must be an int from 0 to 2\\*\\*63 - 1"),
        ({"version": True}, "version must be an int from 0 to 2\\*\\*63 - 1"),
    ):
        with pytest.raises(InvalidArgument, match=said):
            decode_event(topic, state, "version 2", **{"session_id": SESSION, "version": VERSION, **wrong})  # type: ignore[arg-type]
    assert decode_event(topic, state, "version 2", session_id=SESSION, version=VERSION) == event
    # Another session's or version's row would name it so: the id is not the one stored.
    for other in ({"session_id": "s-2", "version": VERSION}, {"session_id": SESSION, "version": 3}):
        decoded = decode_event(topic, state, "version 2", **other)  # type: ignore[arg-type]
        assert isinstance(decoded, MessagesAppended) and decoded.messages[0].id != REVISION_ID


@pytest.mark.parametrize(
    "damage",
    [
        lambda state: state[:39],  # cut inside the fixed bytes of either form
        lambda state: b"\x03" + state[1:],  # a tool_results message: holds no text
        lambda state: b"\xff" + state[1:],  # role code 255
        lambda state: state + b"\xff",  # not UTF-8
        lambda state: b"\x04" + state[1:],  # role code 4
    ],
)
@pytest.mark.parametrize(
    ("ident", "form"),
    [(REVISION_ID, REVISION_ID_TEXT_APPEND_TOPIC), ("msg_d961acc862a4b7b8ffc3", TEXT_APPEND_TOPIC)],
)
def test_damaged_text_form_bytes_read_as_corruption(damage: object, ident: str, form: str) -> None:
    message = Message(role="user", blocks=(Text(text="hello"),), id=ident)
    packed = pack_text_append(MessagesAppended(at=AT, messages=(message,), revision=REVISION), mask=MASK)
    assert packed is not None
    topic, state = packed
    assert topic == form
    damaged = damage(state)  # type: ignore[operator]
    assert damaged != state
    with pytest.raises(CorruptStore, match="cannot decode stored MessagesAppended"):
        decode_event(topic, damaged, "session 's-1' version 2", session_id=SESSION, version=VERSION)


@pytest.mark.parametrize(
    "damage",
    [
        lambda state: state[:-3],  # cut short
        lambda state: state[:1] + b"\xc1" + state[2:],  # a byte msgpack never writes
        lambda state: b"\x94" + state[1:] + b"\x05",  # a fifth value where the actor goes: not text
        lambda state: state.replace(b"\xc4\x20", b"\xc4\x1f", 1)[:-1],  # a 31-byte revision
        lambda state: state.replace(b"\x91\x93\x01", b"\x91\x93\x09", 1),  # role code 9
        lambda state: state.replace(b"\x91\x93\x01", b"\x91\x93\xff", 1),  # role code -1
        lambda state: state.replace(b"\xc4\x0a", b"\xc4\x09", 1)[:-1],  # a 9-byte id
    ],
)
def test_damaged_packed_bytes_read_as_corruption(damage: object) -> None:
    message = Message(role="user", blocks=(Text(text="hello"),), id="msg_d961acc862a4b7b8ffc3")
    state = pack_append(MessagesAppended(at=AT, actor=None, messages=(message,), revision=REVISION))
    assert state is not None
    damaged = damage(state)  # type: ignore[operator]
    assert damaged != state
    with pytest.raises(CorruptStore, match="cannot decode stored MessagesAppended"):
        decode_event(PACKED_APPEND_TOPIC, damaged, "session 's' version 2")


def test_an_engine_id_stored_as_text_in_the_packed_form_is_damage() -> None:
    # Written only as bytes: text there was put by someone else.
    forged = msgspec.msgpack.encode([0, b"\x00" * 32, [[1, ["hi"], None, "msg_d961acc862a4b7b8ffc3"]]])
    with pytest.raises(CorruptStore):
        decode_event(PACKED_APPEND_TOPIC, forged, "here")


@pytest.mark.parametrize(
    "ident",
    [
        "msg_0123456789abcdef0123\n",  # a trailing newline
        "msg_0123456789 abcdef012",  # a space (bytes.fromhex skips spaces between bytes)
        "msg_0123456789abcdef01 23",
        "msg_0123456789abcdef012\u0663",  # an Arabic-Indic digit three
        "msg_0123456789ABCDEF0123",  # upper case
        "MSG_0123456789abcdef0123",
        "msg_0123456789abcdef012g",
    ],
)
def test_an_id_that_only_looks_like_the_engines_comes_back_as_given(tmp_path: Path, ident: str) -> None:
    # Only "msg_" and 20 lowercase ASCII hex digits is kept as 10 bytes; the
    # stored form keeps every other id as the very text it was given.
    with Transcripts.open(str(tmp_path / "s.db")) as store:
        sid = store.create()
        store.append(sid, Message.user("hi", id=ident))
        store.append(sid, Message.user("a", id=ident + "x"), Message.user("b", id="y" + ident))
    with Transcripts.open(str(tmp_path / "s.db")) as store:
        assert [message.id for message in store.verify(sid).messages] == [ident, ident + "x", "y" + ident]


def _tables(path: str) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name, type FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall())


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_an_int_over_64_bits_in_a_block_is_stored_as_json_and_reads_back(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial tester: msgpack's 64-bit limit raised an
    # OverflowError out of append(). Such ints are refused now (next test);
    # a store written before, which holds one, still reads it back.
    monkeypatch.setattr("engine.state.content.MAX_STORED_INT", 2**80)  # as engines before did
    message = Message.user(Transcript(text="t", truncated_at_ms=2**64), id="msg_big")
    event = MessagesAppended(at=AT, messages=(message,), revision=REVISION)
    assert pack_append(event) is None
    assert encode_event(event)[0] == "MessagesAppended.v1"
    target = None if backend == "memory" else str(tmp_path / "s.db")
    with Transcripts.open(target) as store:
        sid = store.create()
        store.append(sid, message, Message.assistant("ok"))
        monkeypatch.undo()
        assert store.get(sid).messages[0] == message
        assert store.verify(sid).messages[0] == message
        if target is not None:
            with Transcripts.open(target) as again:
                assert again.verify(sid).messages[0] == message


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_block_int_past_64_bits_is_refused_and_nothing_is_written(tmp_path: Path, backend: str) -> None:
    # Found by an adversarial pass: truncated_at_ms of 10**4400 raised a raw
    # ValueError out of append() (Python's int-to-text limit); with that
    # limit lifted it was stored, and every read of the session was CorruptStore.
    for cut in (2**63, 10**4400):
        with pytest.raises(InvalidMessage, match=r"truncated_at_ms must be at most 2\*\*63 - 1"):
            Transcript(text="t", truncated_at_ms=cut)
    target = None if backend == "memory" else str(tmp_path / "s.db")
    with Transcripts.open(target) as store:
        sid = store.create()
        store.append(sid, Message.user("hi"))
        head = store.get(sid)
        kept = Message.assistant(Transcript(text="t", truncated_at_ms=2**63 - 1), id="m-kept")
        forced = Transcript(text="t", truncated_at_ms=1)
        msgspec.structs.force_setattr(forced, "truncated_at_ms", 10**4400)
        with pytest.raises(InvalidMessage, match="at most 2"):
            store.append(sid, Message.assistant(forced))
        assert store.verify(sid) == head
        store.append(sid, kept)
        assert store.verify(sid).messages[-1] == kept


def test_a_new_store_keeps_integer_keys_and_type_codes_and_a_readable_view(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        first, second = store.create(), store.create()
        store.append(first, Message.user("one"))
        store.append(second, Message.user("two"), Message.assistant("three"))
    assert _tables(path)["transcripts_events"] == "view"
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT position, session, version, kind FROM transcripts_log ORDER BY position").fetchall()
        keys = dict(db.execute("SELECT session_id, key FROM transcripts_sessions").fetchall())
        codes = dict(db.execute("SELECT topic, code FROM transcripts_kinds").fetchall())
        shown = db.execute(
            "SELECT originator_id, originator_version, topic FROM transcripts_events ORDER BY position"
        ).fetchall()
    assert [(session, version) for _, session, version, _ in rows] == [
        (keys[first], 1),
        (keys[second], 1),
        (keys[first], 2),
        (keys[second], 2),
    ]
    assert sorted(keys.values()) == [1, 2]
    # The commonest row's type has code 1, which SQLite keeps in no bytes.
    assert [kind for *_, kind in rows] == [
        codes["SessionCreated.v1"],
        codes["SessionCreated.v1"],
        1,
        codes[PACKED_APPEND_TOPIC],
    ]
    assert codes[REVISION_ID_TEXT_APPEND_TOPIC] == 1
    assert shown == [
        (first, 1, "SessionCreated.v1"),
        (second, 1, "SessionCreated.v1"),
        (first, 2, REVISION_ID_TEXT_APPEND_TOPIC),  # one text message, its id the revision's
        (second, 2, PACKED_APPEND_TOPIC),  # two
    ]


def test_the_earlier_layout_moves_to_the_log_row_for_row(tmp_path: Path) -> None:
    path = str(tmp_path / "golden.db")
    shutil.copy(GOLDEN, path)
    with sqlite3.connect(path) as db:
        before = db.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM transcripts_events ORDER BY rowid"
        ).fetchall()
    assert _tables(path)["transcripts_events"] == "table"
    with Transcripts.open(path) as store:
        feed = store.feed(limit=10_000)
        sessions = sorted(info.id for info in store.sessions())
    assert _tables(path)["transcripts_events"] == "view"
    with sqlite3.connect(path) as db:
        after = db.execute(
            "SELECT position, originator_id, originator_version, topic, state FROM transcripts_events ORDER BY position"
        ).fetchall()
    assert after == before  # same positions, sessions, versions, type names and bytes
    assert [(entry.position, entry.session_id, entry.version) for entry in feed] == [row[:3] for row in before]
    assert sessions == sorted({row[1] for row in before})


def test_events_of_no_listing_row_are_kept_by_the_move_and_reported_by_the_feed(tmp_path: Path) -> None:
    path = str(tmp_path / "golden.db")
    shutil.copy(GOLDEN, path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM transcripts_sessions WHERE session_id = 'golden-1'")
        (count,) = db.execute("SELECT count(*) FROM transcripts_events").fetchone()
    with Transcripts.open(path) as store, pytest.raises(CorruptStore, match="no row of the store has"):
        store.feed(limit=10_000)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM transcripts_log").fetchone() == (count,)
        assert db.execute("SELECT count(*) FROM transcripts_log WHERE session < 0").fetchone()[0] > 0


def test_a_row_the_move_cannot_place_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "golden.db")
    shutil.copy(GOLDEN, path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_events SET topic = NULL WHERE rowid = 3")
    with pytest.raises(CorruptStore, match="cannot be moved"):
        Transcripts.open(path)
    assert _tables(path)["transcripts_events"] == "table"
    assert "transcripts_log" not in _tables(path)


def test_opening_a_current_store_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        store.append(store.create(), Message.user("hi"))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = Path(path).read_bytes()
    with sqlite3.connect(path) as holder:
        holder.execute("BEGIN IMMEDIATE")  # a writer holds the lock: opening must not need it
        Transcripts.open(path, lock_timeout=1).close()
        holder.execute("ROLLBACK")
    assert Path(path).read_bytes() == before


def test_a_listing_row_of_an_empty_session_id_stops_the_move(tmp_path: Path) -> None:
    # Found by an adversarial tester: it failed as StorageUnavailable (a UNIQUE constraint).
    path = str(tmp_path / "golden.db")
    shutil.copy(GOLDEN, path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_sessions SET session_id = '' WHERE session_id = 'golden-1'")
    with pytest.raises(CorruptStore, match="empty session id"):
        Transcripts.open(path)
    assert _tables(path)["transcripts_events"] == "table"


def test_a_stored_version_of_the_wrong_type_reads_as_damage(tmp_path: Path) -> None:
    # A bit flip made one: the chain's framing raised struct.error.
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        sid = store.create()
        store.append(sid, Message.user("hi"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_log SET version = 1.5 WHERE version = 2")  # SQLite keeps a REAL there
    with Transcripts.open(path) as store, pytest.raises(CorruptStore, match="damaged"):
        store.get(sid)


def test_a_forged_tool_results_message_with_text_is_not_given_the_text_form() -> None:
    # The text form has no code for it and reads role code 3 as damage; a
    # Message refuses such blocks, so only a forged one gets here.
    message = Message.tool_results(ToolResult.of("call_1", "ok"))
    msgspec.structs.force_setattr(message, "blocks", (Text(text="hi"),))
    msgspec.structs.force_setattr(message, "id", "msg_d961acc862a4b7b8ffc3")
    forged = MessagesAppended(at=AT, messages=(message,), revision=REVISION)
    assert pack_text_append(forged) is None


def test_decode_event_takes_what_drivers_give_and_refuses_what_is_no_row() -> None:
    # Found by an adversarial pass: a text-revid row given as a memoryview (as
    # psycopg2 gives bytea) raised AttributeError, and so did a topic of None.
    message = Message(role="assistant", blocks=(Text(text="hi"),), id=REVISION_ID)
    event = MessagesAppended(at=AT, messages=(message,), revision=REVISION)
    topic, state = encode_event(event, session_id=SESSION, version=VERSION)
    for driven in (memoryview(state), bytearray(state)):
        assert decode_event(topic, driven, "version 2", session_id=SESSION, version=VERSION) == event  # type: ignore[arg-type]
    json_topic, json_state = encode_event(MessagesAppended(at=AT, actor="a", messages=(message,), revision=REVISION))
    assert decode_event(json_topic, memoryview(json_state), "version 2") == msgspec.structs.replace(event, actor="a")  # type: ignore[arg-type]
    for wrong_topic, wrong_state, said in (
        (None, b"{}", "topic must be a str"),
        (topic.encode(), state, "topic must be a str"),
        (topic, state.hex(), "state must be bytes"),
        (topic, None, "state must be bytes"),
    ):
        with pytest.raises(InvalidArgument, match=said):
            decode_event(wrong_topic, wrong_state, "row", session_id=SESSION, version=VERSION)  # type: ignore[arg-type]
