"""The golden stores, each written once (tests/golden/make_golden.py) and
loaded by every later version: store-v0.1.db by 0.1 (eventsourcing's events
table, JSON events), store-v0.2.db with the packed log, store-v0.3.db with
one-text-message appends in their own form and snapshots as digests,
store-v0.4.db with appended messages named after their revisions (the text
form keeps no id). If these tests fail,
a change broke old stores: add an upcaster instead of editing the files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import CorruptStore, Message, ReplaceBlock, Text, ToolUse, Transcripts, Usage
from engine.formats import to_anthropic, to_gemini, to_openai_chat, to_openai_responses
from engine.state.content import with_default_objects
from engine.state.events import UsageRecorded
from engine.state.revisions import format_revision, revision_of
from engine.store import Record, head_of
from tests.conftest import StoreFactory

FOLDER = Path(__file__).parent / "golden"
STORES = ["store-v0.1.db", "store-v0.2.db", "store-v0.3.db", "store-v0.4.db"]


def _copy(tmp_path: Path, name: str = "store-v0.1.db") -> str:
    target = tmp_path / "golden.db"
    shutil.copy(FOLDER / name, target)  # never open the committed file itself
    return str(target)


def test_the_packed_golden_stores_hold_the_same_sessions_but_for_message_ids() -> None:
    # Written by the same script in two stored forms: the same content gives
    # the same revisions, so the later file's expectations are the earlier's.
    def without_ids(name: str) -> object:
        wanted = json.loads((FOLDER / name).with_suffix(".expected.json").read_text())
        for session in wanted.values():
            for message in session["messages"]:
                del message["id"]
        return wanted

    assert without_ids("store-v0.3.db") == without_ids("store-v0.2.db")
    assert without_ids("store-v0.4.db") == without_ids("store-v0.3.db")
    text_forms = {"store-v0.3.db": "MessagesAppended.v1.text", "store-v0.4.db": "MessagesAppended.v1.text-revid"}
    for name, text_form in text_forms.items():
        with sqlite3.connect(f"file:{FOLDER / name}?immutable=1", uri=True) as db:  # never written
            topics = {topic for (topic,) in db.execute("SELECT DISTINCT topic FROM transcripts_events")}
        db.close()
        assert {text_form, "MessagesAppended.v1.packed"} <= topics


def test_messages_appended_since_0_4_are_named_after_their_revisions() -> None:
    # golden-2 is one append (version 2) of one message: its id is the first
    # 10 bytes of the revision of that message alone, exclusive-or 10 bytes
    # of a digest of the session id and exclusive-or the version.
    wanted = json.loads((FOLDER / "store-v0.4.expected.json").read_text())
    [message] = wanted["golden-2"]["messages"]
    reached = bytes.fromhex(revision_of([Message.user("second session")]).removeprefix("sha256:"))
    key = hashlib.sha256(b"transcript-engine/message-id\x00golden-2").digest()
    mixed = bytes(a ^ b ^ c for a, b, c in zip(reached[:10], key[:10], (2).to_bytes(10, "big"), strict=True))
    assert message["id"] == "msg_" + mixed.hex()
    # 0.3 gave the same message a random id: it still reads as it was stored.
    [earlier] = json.loads((FOLDER / "store-v0.3.expected.json").read_text())["golden-2"]["messages"]
    assert earlier["id"] != message["id"]


@pytest.mark.parametrize("name", STORES)
def test_golden_store_loads_exactly(tmp_path: Path, name: str) -> None:
    wanted = json.loads((FOLDER / name).with_suffix(".expected.json").read_text())
    store = Transcripts.open(_copy(tmp_path, name))
    try:
        assert sorted(info.id for info in store.sessions()) == sorted(wanted)
        for sid, expected in wanted.items():
            session = store.verify(sid)
            assert session.version == expected["version"]
            assert session.revision == expected["revision"]
            assert session.title == expected["title"]
            assert dict(session.metadata) == expected["metadata"]
            assert msgspec.to_builtins(session.usage) == expected["usage"]
            assert json.loads(msgspec.json.encode(list(session.messages))) == expected["messages"]
            history = [[h.version, h.kind, h.actor, h.revision] for h in store.history(sid)]
            assert history == expected["history"]
            revisions = [store.get(sid, at=v).revision for v in range(1, session.version + 1)]
            assert revisions == expected["revisions_by_version"]
            commits = [[c.version, c.generation, c.reason.kind, c.revision] for c in store.revisions(sid)]
            assert commits == expected["commits"]
            lineage = session.lineage
            assert [lineage.root, lineage.depth, lineage.source] == expected["lineage"]
    finally:
        store.close()


@pytest.mark.parametrize("name", STORES)
def test_golden_store_upcasts_the_v1_usage_row(tmp_path: Path, name: str) -> None:
    path = _copy(tmp_path, name)
    with sqlite3.connect(path) as raw:
        (version,) = raw.execute(
            "SELECT originator_version FROM transcripts_events WHERE topic = 'UsageRecorded.v1'"
        ).fetchone()
    store = Transcripts.open(path)
    try:
        entry = store.history("golden-1")[version - 1]
        assert isinstance(entry.event, UsageRecorded)
        assert entry.event.usage == Usage(input=7, output=11)
        assert entry.actor == "legacy"
        assert store.get("golden-1").usage == Usage(input=27, output=16, cache_read=3, cache_write=1, reasoning=2)
    finally:
        store.close()


@pytest.mark.parametrize("name", STORES)
def test_golden_store_accepts_new_writes(tmp_path: Path, name: str) -> None:
    path = _copy(tmp_path, name)
    store = Transcripts.open(path)
    before = store.get("golden-1")
    store.append("golden-1", Message.user("still writable"))
    store.close()
    again = Transcripts.open(path)
    assert len(again.get("golden-1").messages) == len(before.messages) + 1
    again.close()


def _store_of_version_0_1(stores: StoreFactory) -> tuple[str, str]:
    """Make ``stores`` a store as version 0.1 left it, before rows were
    sealed; one of its sessions, and its title. On SQLite the file 0.1
    wrote (its tables renamed to the factory's prefix); on PostgreSQL, of
    which no store of 0.1 is kept, that file's rows in the tables of a
    store made now, with all that later builds add taken away: the head,
    seal and summary columns, the seal-mode and feed tables and the
    events' positions."""
    golden = FOLDER / "store-v0.1.db"
    if stores.base == "sqlite":
        assert stores.target is not None
        shutil.copy(golden, stores.target)
        _execute(
            stores,
            [
                f"ALTER TABLE transcripts_{name} RENAME TO {stores.prefix}_{name}"
                for name in ("events", "sessions", "snapshots")
            ],
        )
        return "golden-1", "Golden (renamed)"
    stores.open().close()  # the tables, empty
    prefix = stores.prefix
    _execute(
        stores,
        [
            f"ALTER TABLE {prefix}_sessions DROP COLUMN seal, DROP COLUMN head, DROP COLUMN summary",
            f"DROP TABLE {prefix}_seal",
            f"DROP TABLE {prefix}_feed",
            f"ALTER TABLE {prefix}_events DROP COLUMN position",
        ],
    )
    with sqlite3.connect(f"file:{golden}?immutable=1", uri=True) as db:  # never written
        rows = {
            name: db.execute(f"SELECT {columns} FROM transcripts_{name}").fetchall()
            for name, columns in (
                ("sessions", "session_id, title, created_at, updated_at, message_count, revision, version"),
                ("events", "originator_id, originator_version, topic, state"),
                ("snapshots", "session_id, version, state"),
            )
        }
    db.close()
    _execute(
        stores,
        [
            (f"INSERT INTO {prefix}_{name} VALUES ({', '.join(['%s'] * len(row))})", tuple(row))
            for name, found in rows.items()
            for row in found
        ],
    )
    return "golden-1", "Golden (renamed)"


def _unsealed_head(stores: StoreFactory, session_id: str) -> str:
    """The head hash of a session of a store of 0.1, computed from its
    events as read with SQL (0.1 kept none)."""
    statement = (
        f"SELECT originator_version, topic, state FROM {stores.prefix}_events WHERE originator_id = %s "
        "ORDER BY originator_version"
    )
    rows = _execute(stores, [(statement, (session_id,))])
    records = [Record(version, topic, bytes(state)) for version, topic, state in rows]
    return f"{len(records)}:{head_of(session_id, records).hex()}"


def test_a_store_written_before_rows_were_sealed_is_sealed_once(stores: StoreFactory) -> None:
    """Opening a store whose listing table has no chain head or seal (as 0.1
    wrote it) adds both, computed from the events, in one transaction; a row
    whose seal is emptied later is damage, never sealed again."""
    if stores.base == "memory":
        return  # nothing persists between openings
    sid, title = _store_of_version_0_1(stores)
    kept = _unsealed_head(stores, sid)
    upgraded = stores.open()
    assert upgraded.verify(sid, head_hash=kept).title == title
    assert title in [info.title for info in upgraded.sessions()]
    upgraded.close()
    _execute(stores, [f"UPDATE {stores.prefix}_sessions SET seal = ''"])
    with pytest.raises(CorruptStore, match="seal"):
        stores.open().sessions()


def _execute(stores: StoreFactory, statements: list[str | tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Run ``statements`` in order on one connection of the store's backend,
    each a str or one with its ``%s`` parameters; the rows the last returns."""
    rows: list[tuple[Any, ...]] = []
    if stores.base == "sqlite":
        with sqlite3.connect(stores.target or "") as raw:
            for statement, parameters in (item if isinstance(item, tuple) else (item, ()) for item in statements):
                rows = raw.execute(statement.replace("%s", "?"), parameters).fetchall()
        raw.close()
        return rows
    import psycopg

    with psycopg.connect(stores.target or "", autocommit=True) as conn:
        for statement, parameters in (item if isinstance(item, tuple) else (item, ()) for item in statements):
            cursor = conn.execute(statement, parameters)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description else []
    return rows


def test_a_store_opened_with_a_seal_key_is_never_sealed_silently(stores: StoreFactory) -> None:
    """Found by an adversarial review: someone without the key edited events,
    dropped the seal columns, and the owner's next open sealed the forgery
    with the owner's key. With a key, sealing an unsealed store takes an
    explicit seal_legacy=True."""
    if stores.base == "memory":
        return
    key = b"k" * 32
    sid, title = _store_of_version_0_1(stores)
    with pytest.raises(CorruptStore, match="seal_legacy=True"):
        stores.open(seal_key=key)
    upgraded = stores.open(seal_key=key, seal_legacy=True)
    assert upgraded.verify(sid).title == title


def _disguise_as_version_0_1(stores: StoreFactory, *, summary_too: bool) -> None:
    """Make a store of today look like one of 0.1 with DDL alone: its events
    back in an events table of 0.1's shape (on SQLite), the head and seal
    columns and every table and column later builds add dropped; the
    listing rows' summary (and key) column too if ``summary_too``. No hash
    is computed; the events keep the packed forms 0.1 never wrote."""
    prefix = stores.prefix
    if stores.base == "sqlite":
        statements = [
            "CREATE TABLE moved (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "PRIMARY KEY (originator_id, originator_version))",
            f"INSERT INTO moved SELECT originator_id, originator_version, topic, state FROM {prefix}_events",
            f"DROP VIEW {prefix}_events",
            *(f"DROP TABLE {prefix}_{name}" for name in ("log", "kinds", "seal")),
            f"ALTER TABLE moved RENAME TO {prefix}_events",
            f"DROP INDEX {prefix}_sessions_key",
            *(f"ALTER TABLE {prefix}_sessions DROP COLUMN {name}" for name in ("head", "seal")),
        ]
        if summary_too:
            statements += [f"ALTER TABLE {prefix}_sessions DROP COLUMN {name}" for name in ("summary", "key")]
    else:
        statements = [
            f"ALTER TABLE {prefix}_sessions DROP COLUMN head, DROP COLUMN seal",
            f"DROP TABLE {prefix}_seal",
            f"DROP TABLE {prefix}_feed",
            f"ALTER TABLE {prefix}_events DROP COLUMN position",
        ]
        if summary_too:
            statements.append(f"ALTER TABLE {prefix}_sessions DROP COLUMN summary")
    _execute(stores, statements)


@pytest.mark.parametrize("summary_too", [False, True])
def test_a_store_of_today_disguised_as_one_of_version_0_1_is_damage_not_an_old_store(
    stores: StoreFactory, summary_too: bool
) -> None:
    """Found by an adversarial pass on the fix below: on PostgreSQL, dropping
    the seal-mode and feed tables and the events' positions as well made the
    store look like one of 0.1, and an edited actor was sealed and read back.
    The listing rows' summary column and the packed events, which 0.1 never
    had, tell it from one of 0.1."""
    if stores.base == "memory":
        return
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("hello"), actor="original")
    store.close()
    _edit_state(stores, sid, 2, b"original", b"FORGED!!")
    _disguise_as_version_0_1(stores, summary_too=summary_too)
    for _ in range(2):
        with pytest.raises(CorruptStore, match="the columns were removed"):
            stores.open(seal_legacy=True)


def _edit_state(stores: StoreFactory, session_id: str, version: int, old: bytes, new: bytes) -> None:
    """Replace bytes in one stored event, with SQL, as someone with write access could."""
    select = f"SELECT state FROM {stores.prefix}_events WHERE originator_id = %s AND originator_version = %s"
    update = f"UPDATE {stores.prefix}_events SET state = %s WHERE originator_id = %s AND originator_version = %s"
    [(state,)] = _execute(stores, [(select, (session_id, version))])
    assert old in bytes(state)
    _execute(stores, [(update, (bytes(state).replace(old, new), session_id, version))])


@pytest.mark.parametrize("dropped", [("seal", "head"), ("seal",), ("head",)])
@pytest.mark.parametrize("seal_key", [None, b"k" * 32])
def test_seal_columns_removed_from_a_store_of_a_later_layout_are_damage_not_an_old_store(
    stores: StoreFactory, dropped: tuple[str, ...], seal_key: bytes | None
) -> None:
    """Found by an adversarial pass: edit events, drop the listing table's
    head and seal columns, and the next opening took the store for one of
    0.1 and sealed the edit, which every read then vouched for; no hash
    had to be computed. Only a store in 0.1's layout is sealed now; this
    one is refused on every opening and changes nothing."""
    if stores.base == "memory":
        return
    store = stores.open(seal_key=seal_key)
    sid = store.create()
    store.append(sid, Message.user("pay 100 EUR"), actor="alice")
    store.close()
    _edit_state(stores, sid, 2, b"alice", b"mallo")
    table = f"{stores.prefix}_sessions"
    _execute(stores, [f"ALTER TABLE {table} DROP COLUMN {column}" for column in dropped])
    for _ in range(2):  # the refusal wrote nothing: the next opening finds the same
        with pytest.raises(CorruptStore, match="the columns were removed"):
            stores.open(seal_key=seal_key, seal_legacy=True)


# -- store-v0.3-default-arguments.db: tool calls hashed before digests were canonical


_DEFAULT_ARGUMENTS = "store-v0.3-default-arguments.db"


def _default_arguments_store(tmp_path: Path) -> tuple[Transcripts, dict[str, Any]]:
    wanted = json.loads((FOLDER / _DEFAULT_ARGUMENTS).with_suffix(".expected.json").read_text())
    return Transcripts.open(_copy(tmp_path, _DEFAULT_ARGUMENTS)), wanted


def test_the_default_arguments_store_holds_revisions_that_today_would_hash_otherwise(tmp_path: Path) -> None:
    # What makes the file worth keeping: its tool calls given arguments="{}"
    # were hashed with their arguments, which new content never is.
    store, wanted = _default_arguments_store(tmp_path)
    with store:
        messages = store.get("calls").messages
        assert messages[1].blocks == (ToolUse(id="c1", name="clock"),)  # equal content
        assert revision_of(messages) == wanted["calls"]["revision"]  # the stored form hashes as it did
        assert revision_of(with_default_objects(m) for m in messages) != wanted["calls"]["revision"]


def test_the_default_arguments_store_loads_and_verifies_exactly(tmp_path: Path) -> None:
    store, wanted = _default_arguments_store(tmp_path)
    with store:
        assert sorted(info.id for info in store.sessions()) == sorted(wanted)
        for sid, expected in wanted.items():
            session = store.verify(sid)  # a replay that hashes every message again
            assert session.version == expected["version"]
            assert session.revision == expected["revision"]
            assert json.loads(msgspec.json.encode(list(session.messages))) == expected["messages"]
            assert [store.get(sid, at=v).revision for v in range(1, session.version + 1)] == expected[
                "revisions_by_version"
            ]
            prefixes = [format_revision(session.messages.revision_at(n)) for n in range(len(session.messages) + 1)]
            assert prefixes == expected["prefix_revisions"]
    with Transcripts.open(str(tmp_path / "golden.db")) as again:  # nothing cached: loads from snapshots
        for sid, expected in wanted.items():
            assert again.get(sid).revision == expected["revision"]


def test_the_default_arguments_store_takes_erasure_restore_forks_and_exports(tmp_path: Path) -> None:
    store, wanted = _default_arguments_store(tmp_path)
    with store:
        calls = store.get("calls")
        legacy_call = calls.messages[1]
        assert legacy_call.id is not None
        # An erasure keeps the digest the chain used: the revisions stand.
        store.erase("calls", legacy_call.id)
        erased = store.verify("calls")
        assert erased.revision == wanted["calls"]["revision"]
        assert erased.messages[1].erased == legacy_call.digest
        assert store.verify("calls-fork").revision == wanted["calls-fork"]["revision"]
        # A restore of a revision hashed the old way gives that revision back.
        first = wanted["calls"]["revisions_by_version"][2]  # after the first tool call
        assert store.restore("calls", first).revision == first
        assert store.verify("calls").revision == first
        # New writes of the same content hash it the one way: a copy of the
        # legacy messages appended now gets the canonical revision.
        copy = store.create()
        made = store.append(copy, *(Message(role=m.role, blocks=m.blocks) for m in wanted_messages(wanted, "erased")))
        assert made == revision_of([Message.user("Call it."), Message.assistant(ToolUse(id="e1", name="secret"))])
        assert made != wanted["erased"]["revisions_by_version"][2]
        # A fork replacing a block of a legacy message is new content: one form.
        block = ToolUse(id="c1", name="clock", arguments='{"tz": "UTC"}')
        fork = store.fork_replacing("erased", 1, ReplaceBlock(index=0, block=block))
        assert store.verify(fork).revision == revision_of([Message.user("Call it."), Message.assistant(block)])
        # Strict exports compare content, not the form it was hashed in.
        legacy = store.get("erased").messages[:2]
        for convert in (to_anthropic, to_gemini, to_openai_chat, to_openai_responses):
            assert convert(list(legacy))


def wanted_messages(wanted: dict[str, Any], sid: str) -> list[Message]:
    """The first two messages of a session of the file, as decoded from its expectations."""
    return [msgspec.convert(m, Message) for m in wanted[sid]["messages"][:2]]


def test_a_fork_copy_of_a_legacy_block_is_erased_with_its_original(tmp_path: Path) -> None:
    # Found by an adversarial pass: fork_replacing copies the blocks it does
    # not replace in today's form, and the erasure looked for the stored form.
    store, _ = _default_arguments_store(tmp_path)
    with store:
        both_calls = store.get("calls").messages[5]  # text, then two tool uses given arguments="{}"
        assert both_calls.id is not None
        fork = store.fork_replacing("calls", 5, ReplaceBlock(index=0, block=Text(text="other")))
        assert store.get(fork).messages[5].blocks[1:] == both_calls.blocks[1:]
        store.erase("calls", both_calls.id)
        assert store.get(fork).messages[5].erased is not None
        assert store.verify(fork).revision == store.get(fork).revision


def test_a_restore_gives_back_a_legacy_revision_after_equal_content_was_written(tmp_path: Path) -> None:
    # Found by an adversarial pass: a rewrite with equal content (hashed
    # today's way) made a restore of the legacy revision keep today's form
    # (it compared messages by equality alone), so it returned another
    # revision, or refused as a no-op.
    store, wanted = _default_arguments_store(tmp_path)
    with store:
        legacy = store.get("calls")
        call = legacy.messages[1]
        same = store.rewrite("calls", 1, 2, [Message(role="assistant", blocks=call.blocks, id=call.id)])
        assert same.revision != legacy.revision  # equal content, hashed today's way
        assert store.restore("calls", legacy.revision).revision == legacy.revision == wanted["calls"]["revision"]
        assert store.verify("calls").revision == legacy.revision
