"""Erasure and deletion: the content is gone from every read, every stored
event, and the store's files (SQLite) or tables (PostgreSQL), while
revisions, snapshots and the chain still verify."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    EventTooLarge,
    InvalidArgument,
    Message,
    SessionHasForks,
    SessionNotFound,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
)
from engine.facade import _erasure
from tests._erasing import interleaved_erasures, secret, texts_left
from tests.conftest import POSTGRES_DSN, StoreFactory, store_factories

SECRET = "SSN 078-05-1120 of Ada Q. Example"


def _everything(store: Transcripts, sid: str) -> bytes:
    """Every read of a session, as bytes to search."""
    head = store.get(sid)
    parts: list[object] = [
        list(head.messages),
        store.history(sid),
        store.revisions(sid),
        [list(store.get(sid, at=v).messages) for v in range(1, head.version + 1)],
        [list(store.revision_messages(sid, c.revision)) for c in store.revisions(sid)],
        list(store.verify(sid).messages),
    ]
    return msgspec.json.encode(parts)


def _stored_bytes(stores: StoreFactory) -> bytes:
    """Everything the backend holds: the SQLite files byte for byte, every
    column of every PostgreSQL row, or the memory recorder's records."""
    if stores.kind == "sqlite":
        return b"".join(path.read_bytes() for path in Path(stores.path).glob("store.db*"))
    if stores.kind == "postgres":
        import psycopg

        assert POSTGRES_DSN
        found = b""
        with psycopg.connect(POSTGRES_DSN) as conn:
            for table in ("events", "sessions", "snapshots", "feed", "seal"):
                for (row,) in conn.execute(f'SELECT t::text FROM "{stores.prefix}_{table}" AS t'):  # type: ignore[arg-type]
                    found += row.encode()
        return found
    assert stores._memory is not None
    recorder = stores._memory._recorder  # type: ignore[attr-defined]
    return b"".join(event.state for event in recorder._stored_events) + repr(recorder._sessions).encode()


def _encoded_secret() -> list[bytes]:
    """The secret as any backend could hold it (PostgreSQL shows bytea as hex)."""
    raw = SECRET.encode()
    return [raw, raw.hex().encode(), json.dumps(SECRET).encode()]


def _holds_secret(data: bytes) -> bool:
    return any(form in data for form in _encoded_secret())


def _holds_bytes(data: bytes, raw: bytes) -> bool:
    """``raw`` as any backend could hold it: itself, base64 (msgspec's JSON
    form of bytes), and both in PostgreSQL's hex display of bytea."""
    encoded = base64.b64encode(raw)[:24]
    return any(form in data for form in (raw, raw.hex().encode(), encoded, encoded.hex().encode()))


def test_erase_removes_the_content_everywhere_and_everything_still_verifies(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=3)
    sid = store.create(title="support")
    store.append(sid, Message.user("hello"), Message.assistant("hi, how can I help?"))
    store.append(sid, Message.user(f"my number is {SECRET}"))
    secret_id = store.get(sid).messages[2].id
    assert secret_id is not None
    store.append(sid, Message.assistant("thanks, checking"))
    fork = store.fork(sid)  # made before: shares the secret through the log
    store.rewrite(sid, 2, 3, [Message.user("my number is [redacted]")], reason="redaction")
    revisions_before = [store.get(sid, at=v).revision for v in range(1, store.get(sid).version + 1)]
    digest = store.get(sid, at=3).messages[2].digest
    assert _holds_secret(_everything(store, sid)), "the redaction alone keeps the secret in history"
    assert _holds_secret(_stored_bytes(stores))

    rewritten = store.erase(sid, secret_id, reason="erasure", note="deletion request #42", actor="dpo")
    assert rewritten == [sid, fork]  # the fork only shows it, and gets an audit record of its own

    for reader in (store, stores.open()):  # this process's store and a cold one
        assert not _holds_secret(_everything(reader, sid))
        assert not _holds_secret(_everything(reader, fork))
        placeholder = reader.get(sid, at=3).messages[2]
        assert placeholder.erased == digest and placeholder.blocks == () and placeholder.id == secret_id
        assert placeholder.role == "user"
        assert [reader.get(sid, at=v).revision for v in range(1, len(revisions_before) + 1)] == revisions_before
        assert reader.verify(sid).messages[2].text == "my number is [redacted]"
        assert reader.get(fork).messages[2].erased == digest
        audit = reader.history(sid)[-1]
        assert (audit.kind, audit.actor) == ("messages_erased", "dpo")
        assert audit.event.message_ids == (secret_id,) and audit.event.digests == (digest,)
        assert audit.event.reason == "erasure" and audit.event.note == "deletion request #42"
        assert SECRET not in audit.summary
        inherited = reader.history(fork)[-1].event
        assert (inherited.message_ids, inherited.digests, inherited.versions) == ((secret_id,), (digest,), ())
    assert not _holds_secret(_stored_bytes(stores))
    # Idempotent: erasing again changes nothing.
    assert store.erase(sid, secret_id) == []


def test_erase_refuses_unknown_ids_and_changes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user(SECRET))
    before = store.head_hash(sid)
    with pytest.raises(InvalidArgument, match="never occur"):
        store.erase(sid, "msg_nope")
    with pytest.raises(InvalidArgument):
        store.erase(sid)
    with pytest.raises(InvalidArgument):
        store.erase(sid, store.get(sid).messages[0].id or "", reason="Not A Kind")
    with pytest.raises(SessionNotFound):
        store.erase("no-such-session", "msg_x")
    # Found by an adversarial pass: None was taken for "no wrong id" (erase(sid, None)
    # returned [] and erase(sid, an_id, None) erased an_id).
    for wrong in ([None], [store.get(sid).messages[0].id, None], [None, store.get(sid).messages[0].id]):
        with pytest.raises(InvalidArgument, match=r"each a str .*got None"):
            store.erase(sid, *wrong)
    assert stores.open().head_hash(sid) == before
    assert _holds_secret(_stored_bytes(stores))


def test_a_kept_head_hash_tells_an_erasure_happened(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user(SECRET))
    kept = store.head_hash(sid)
    store.erase(sid, store.get(sid).messages[0].id or "")
    with pytest.raises(CorruptStore, match="erasure"):
        store.verify(sid, head_hash=kept)
    assert store.history(sid)[-1].event.previous_head == kept.split(":")[1]
    store.verify(sid, head_hash=store.head_hash(sid))


def test_erase_in_a_fork_reaches_the_log_it_inherited_from_and_tool_pairs_stay_valid(stores: StoreFactory) -> None:
    store = stores.open()
    parent = store.create()
    call = ToolUse(id="call_1", name="lookup", arguments=json.dumps({"ssn": SECRET}))
    store.append(parent, Message.user("look me up"), Message.assistant(call))
    store.append(parent, Message.tool_results(ToolResult(tool_use_id="call_1", content=(Text(text=SECRET),))))
    child = store.fork(parent)
    store.append(child, Message.assistant("found you"))
    ids = [m.id or "" for m in store.get(child).messages[1:3]]
    # The parent's log held the content; the child, which showed it, is told.
    assert store.erase(child, *ids) == [parent, child]
    assert not _holds_secret(_stored_bytes(stores))
    fresh = stores.open()
    assert [m.erased is not None for m in fresh.get(child).messages] == [False, True, True, False]
    fresh.verify(parent)
    fresh.verify(child)
    # The erased pair does not block later changes around it.
    fresh.rewrite(child, 3, 4, [Message.assistant("found you, Ada")], reason="edit")
    fresh.fork_at(child, 3)


def test_erase_removes_realtime_audit_records_about_the_item(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    user = {"id": "item_u", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    reply = {"id": "item_a", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    done = {**reply, "status": "completed", "content": [{"type": "output_audio", "transcript": "noted"}]}
    events = [
        {"type": "input_audio_buffer.committed", "event_id": "e1", "item_id": "item_u", "previous_item_id": None},
        {"type": "conversation.item.added", "event_id": "e2", "previous_item_id": None, "item": user},
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "event_id": "e3",
            "item_id": "item_u",
            "content_index": 0,
            "delta": SECRET[:12],
        },
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e4",
            "item_id": "item_u",
            "content_index": 0,
            "transcript": SECRET,
        },
        {
            "type": "response.output_item.added",
            "event_id": "e5",
            "response_id": "resp_1",
            "output_index": 0,
            "item": reply,
        },
        {"type": "conversation.item.added", "event_id": "e6", "previous_item_id": "item_u", "item": reply},
        {
            "type": "response.output_audio_transcript.delta",
            "event_id": "e7",
            "response_id": "resp_1",
            "item_id": "item_a",
            "output_index": 0,
            "content_index": 0,
            "delta": "noted",
        },
        {
            "type": "response.done",
            "event_id": "e8",
            "response": {"id": "resp_1", "status": "completed", "output": [done]},
        },
    ]
    store.ingest_many(sid, events, provider="openai")
    messages = store.get(sid).messages
    assert [m.text for m in messages] == [SECRET, "noted"]
    assert _holds_secret(_stored_bytes(stores))
    store.erase(sid, messages[0].id or "")
    assert not _holds_secret(_stored_bytes(stores))
    assert SECRET[:12].encode() not in _stored_bytes(stores)  # the transcription delta too
    assert not _holds_secret(_everything(stores.open(), sid))
    # Redelivery after the erasure is still recognised as a duplicate.
    again = stores.open()
    again.ingest_many(sid, events, provider="openai")
    assert [m.erased is not None for m in again.get(sid).messages] == [True, False]


def test_delete_removes_a_session_and_refuses_one_with_forks(stores: StoreFactory) -> None:
    store = stores.open()
    keep = store.create(title="other")
    store.append(keep, Message.user("unrelated"))
    parent = store.create()
    store.append(parent, Message.user(SECRET))
    child = store.fork(parent)
    grandchild = store.fork(child)
    with pytest.raises(SessionHasForks) as refused:
        store.delete(parent)
    assert sorted(refused.value.forks) == sorted([child, grandchild])
    assert store.get(child).messages[0].text == SECRET  # nothing was deleted
    assert sorted(store.delete(parent, with_forks=True)) == sorted([parent, child, grandchild])
    for reader in (store, stores.open()):
        for gone in (parent, child, grandchild):
            with pytest.raises(SessionNotFound):
                reader.get(gone)
        assert [info.id for info in reader.sessions()] == [keep]
        assert reader.verify(keep).messages[0].text == "unrelated"
    assert not _holds_secret(_stored_bytes(stores))
    again = store.create(session_id=parent)  # the id is free again
    assert store.get(again).version == 1


def test_a_cached_head_in_another_store_sees_the_erasure(stores: StoreFactory) -> None:
    if stores.kind == "memory":
        return  # one process: the same backend is the same cache's source
    writer, reader = stores.open(), stores.open()
    sid = writer.create()
    writer.append(sid, Message.user(SECRET))
    assert reader.get(sid).messages[0].text == SECRET  # cached in the reader
    writer.erase(sid, writer.get(sid).messages[0].id or "")
    assert reader.get(sid).messages[0].erased is not None


# -- found by an adversarial review ---------------------------------------------


def _ingest(store: Transcripts, sid: str, raws: list[dict[str, object]]) -> None:
    for raw in raws:
        store.ingest(sid, raw, provider="openai")


def test_erase_reaches_function_calls_their_outputs_and_images_in_realtime_records(stores: StoreFactory) -> None:
    # The function call's arguments (its message is tied to the response's
    # first item), the function output and inline image bytes stayed.
    store = stores.open()
    sid = store.create()
    image = SECRET.encode() * 3
    said = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_audio", "transcript": "Let me check."}],
    }
    call = {
        "id": "fc1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "lookup",
        "status": "completed",
        "arguments": json.dumps({"card": SECRET}),
    }
    _ingest(
        store,
        sid,
        [
            {
                "type": "conversation.item.added",
                "event_id": "e1",
                "previous_item_id": None,
                "item": {
                    "id": "u1",
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            },
            {"type": "response.created", "event_id": "e2", "response": {"id": "r1", "status": "in_progress"}},
            {
                "type": "response.output_item.added",
                "event_id": "e3",
                "response_id": "r1",
                "output_index": 0,
                "item": {**said, "status": "in_progress", "content": []},
            },
            {
                "type": "conversation.item.added",
                "event_id": "e4",
                "previous_item_id": "u1",
                "item": {**said, "status": "in_progress", "content": []},
            },
            {
                "type": "response.output_item.added",
                "event_id": "e5",
                "response_id": "r1",
                "output_index": 1,
                "item": {**call, "status": "in_progress", "arguments": ""},
            },
            {
                "type": "conversation.item.added",
                "event_id": "e6",
                "previous_item_id": "a1",
                "item": {**call, "status": "in_progress", "arguments": ""},
            },
            {
                "type": "response.done",
                "event_id": "e7",
                "response": {"id": "r1", "status": "completed", "output": [said, call]},
            },
            {
                "type": "conversation.item.added",
                "event_id": "e8",
                "previous_item_id": "fc1",
                "item": {"id": "fo1", "type": "function_call_output", "call_id": "call_1", "output": SECRET},
            },
            {
                "type": "conversation.item.added",
                "event_id": "e9",
                "previous_item_id": "fo1",
                "item": {
                    "id": "u2",
                    "type": "message",
                    "role": "user",
                    "content": [
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64," + base64.b64encode(image).decode(),
                        }
                    ],
                },
            },
        ],
    )
    messages = store.get(sid).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "user"]
    stored = _stored_bytes(stores)
    assert _holds_secret(stored) and _holds_bytes(stored, image)
    store.erase(sid, *(m.id or "" for m in messages[1:]))
    after = _stored_bytes(stores) + _everything(stores.open(), sid)
    assert not _holds_secret(after)
    assert not _holds_bytes(after, image)


def test_erase_reaches_a_fork_replacement_that_kept_the_erased_blocks(stores: StoreFactory) -> None:
    # fork_replacing with a ReplaceBlock copies the blocks it does not
    # replace into a new message with a new id; erasing the original left it.
    from engine import ReplaceBlock

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user(SECRET, "please check"))
    original = store.get(sid).messages[0]
    retry = store.fork_replacing(sid, 0, ReplaceBlock(index=1, block=Text(text="please check again")))
    edited = store.fork_replacing(sid, 0, Message.user("a new question"))  # nothing of the original: kept
    assert sorted(store.erase(sid, original.id or "")) == sorted([sid, retry])
    assert store.get(retry).messages[0].erased is not None
    assert store.get(retry).messages[0].blocks == ()  # the fork's own block too: a placeholder is a whole message
    assert store.get(edited).messages[0].text == "a new question"
    assert not _holds_secret(_stored_bytes(stores))


def test_erase_takes_a_provider_item_id_for_out_of_band_output(stores: StoreFactory) -> None:
    # Out-of-band messages have no message id, so their text could not be erased.
    store = stores.open()
    sid = store.create()
    item = {
        "id": "x1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": SECRET}],
    }
    store.ingest_many(
        sid,
        [
            {
                "type": "response.created",
                "event_id": "c",
                "response": {"id": "r2", "status": "in_progress", "conversation_id": None},
            },
            {
                "type": "response.output_item.added",
                "event_id": "o",
                "response_id": "r2",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            },
            {
                "type": "response.done",
                "event_id": "z",
                "response": {"id": "r2", "status": "completed", "output": [item], "conversation_id": None},
            },
        ],
        provider="openai",
    )
    assert store.out_of_band(sid)[0].messages[0].text == SECRET
    assert store.erase(sid, "x1") == [sid]
    assert not _holds_secret(_stored_bytes(stores))
    # out_of_band() rebuilds from the erased audit records: none of the text is left.
    assert all(SECRET not in m.text for r in stores.open().out_of_band(sid) for m in r.messages)


def test_a_fork_read_through_a_cached_source_sees_the_erasure(stores: StoreFactory) -> None:
    # Another store had the source cached at the fork's version and served
    # the erased content the first time it read the fork.
    if stores.kind == "memory":
        return
    writer, reader = stores.open(), stores.open()
    source = writer.create()
    writer.append(source, Message.user(SECRET))
    fork = writer.fork(source)
    reader.get(source)
    writer.erase(source, writer.get(source).messages[0].id or "")
    assert reader.get(fork).messages[0].erased is not None
    assert not _holds_secret(_everything(reader, fork))


def test_delete_and_fork_racing_never_leave_an_orphan(stores: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both checked outside the write: a fork of a session being deleted
    # could be committed, then every read of it raised CorruptStore.
    forker, deleter = stores.open(), stores.open()
    parent = forker.create()
    forker.append(parent, Message.user("hello"))
    cached = forker.get(parent)
    deleter.delete(parent)
    repository = forker._repository
    real_head = repository.head
    monkeypatch.setattr(repository, "head", lambda sid: cached if sid == parent else real_head(sid))
    with pytest.raises(SessionNotFound):
        forker.fork(parent)  # the fork was prepared from a stale view; the write refuses it
    assert stores.open().sessions() == []

    other = deleter.create()
    deleter.append(other, Message.user("hi"))
    child = forker.fork(other)
    monkeypatch.setattr(_erasure, "_forks", lambda repository: iter(()))  # a stale view: no forks yet
    with pytest.raises(SessionHasForks):
        deleter.delete(other)
    assert stores.open().get(child).messages[0].text == "hi"


def test_forks_deleted_under_every_attempt_make_erase_a_conflict_not_not_found(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial run: with other processes making and deleting
    # forks, erase raised SessionNotFound naming a deleted fork, which a
    # caller may read as "the session is gone already".
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user(SECRET))
    ident = store.get(sid).messages[0].id or ""
    attempts: list[str] = []

    def fork_gone(repository: Any, session_id: str, *args: Any, **options: Any) -> Any:
        attempts.append(session_id)
        raise SessionNotFound(f"fork-{len(attempts)}")

    monkeypatch.setattr(_erasure, "_erase_once", fork_gone)
    with pytest.raises(ConcurrentWriteError):
        store.erase(sid, ident)
    assert attempts == [sid] * 5
    monkeypatch.undo()
    assert store.get(sid).messages[0].text == SECRET  # nothing was erased: a retry does it
    assert store.erase(sid, ident) == [sid]


def test_an_erasure_that_keeps_losing_races_to_appends_holds_them_back_on_its_last_attempt(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: on a session appended to many times a
    # second, every attempt read the log, and another writer's append landed
    # before its rewrite (5 of 8 erasures failed at 20 appends/s). Here
    # another writer appends, in a thread of its own, just before every
    # rewrite: the first four attempts lose; the last holds every other
    # writer back from before its reads to its rewrite, so that append
    # waits, and lands after the erasure.
    store, other = stores.open(), stores.open()
    sid = store.create()
    store.append(sid, Message.user(SECRET), Message.assistant("noted"))
    ident = store.get(sid).messages[0].id or ""
    backend = store._repository.backend  # type: ignore[attr-defined]
    rewrite, writers = backend.rewrite, []

    def another_writer_first(changes: Any, **options: Any) -> Any:
        number = len(writers)
        writer = threading.Thread(target=lambda: other.append(sid, Message.user(f"busy {number}")))
        writers.append(writer)
        writer.start()
        writer.join(timeout=1.0)  # held back on the last attempt: the rewrite goes first
        return rewrite(changes, **options)

    monkeypatch.setattr(backend, "rewrite", another_writer_first)
    assert store.erase(sid, ident) == [sid]
    for writer in writers:
        writer.join(timeout=30)
    monkeypatch.undo()
    assert len(writers) == 5 and not any(writer.is_alive() for writer in writers)
    stored = stores.open().verify(sid)
    assert [m.text for m in stored.messages] == ["", "noted", "busy 0", "busy 1", "busy 2", "busy 3", "busy 4"]
    kinds = [entry.kind for entry in stores.open().history(sid)]
    assert kinds[-2:] == ["messages_erased", "messages_appended"]  # the held-back append came after


def test_delete_with_forks_takes_a_fork_made_since_it_listed_them(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial run: a fork made while delete(with_forks=True)
    # ran made it raise SessionHasForks, telling the caller to pass the
    # with_forks=True they had passed.
    store = stores.open()
    parent = store.create()
    store.append(parent, Message.user("hello"))
    child = store.fork(parent)
    real = _erasure._forks
    views: list[int] = []

    def stale_once(repository: Any) -> Any:
        views.append(1)
        return iter(()) if len(views) == 1 else real(repository)  # the first listing: no forks yet

    monkeypatch.setattr(_erasure, "_forks", stale_once)
    assert store.delete(parent, with_forks=True) == [parent, child]
    assert len(views) == 2 and stores.open().sessions() == []
    with pytest.raises(SessionHasForks):  # without with_forks the refusal stands
        fresh = store.create()
        store.fork(fresh)
        views.clear()
        store.delete(fresh)


def test_an_erasure_record_over_max_event_bytes_is_refused_before_anything_changes(stores: StoreFactory) -> None:
    # Found by an adversarial run: every write refused an event over
    # max_event_bytes but erase, which stored a note of any length.
    store = stores.open(max_event_bytes=1024)
    sid = store.create()
    store.append(sid, Message.user(SECRET), Message.assistant("noted"))
    ident = store.get(sid).messages[0].id or ""
    before = store.history(sid)
    for fields in ({"note": "n" * 5_000}, {"actor": "a" * 5_000}):
        with pytest.raises(EventTooLarge, match=r"MessagesErased event of .* over the store's max_event_bytes"):
            store.erase(sid, ident, **fields)  # type: ignore[arg-type]
    assert stores.open().history(sid) == before
    assert stores.open().get(sid).messages[0].text == SECRET
    assert store.erase(sid, ident, note="n" * 100) == [sid]


def test_calling_erase_again_finishes_removing_old_pages(tmp_path: Path) -> None:
    # A reader holding an old snapshot kept the WAL; the second call
    # returned [] without checkpointing, and the secret stayed in the WAL.
    import sqlite3

    from engine import StorageUnavailable

    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), lock_timeout=1)
    sid = store.create()
    store.append(sid, Message.user(SECRET))
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM transcripts_events").fetchone()
    with pytest.raises(StorageUnavailable, match="call again"):
        store.erase(sid, store.get(sid).messages[0].id or "")
    reader.rollback()
    reader.close()
    assert store.erase(sid, store.get(sid).messages[0].id or "") == []
    assert not any(_holds_secret(p.read_bytes()) for p in tmp_path.glob("store.db*"))
    store.close()


def test_postgres_erase_waits_for_older_transactions_or_says_so() -> None:
    # A transaction begun before the erasure kept the old row version alive
    # (VACUUM cannot remove it) while erase() reported success.
    if POSTGRES_DSN is None:
        return  # PostgreSQL only; CI always sets the DSN
    import psycopg

    from engine import StorageUnavailable
    from tests.conftest import drop_postgres_tables

    prefix = "terase_old_snapshot"
    store = Transcripts.open(POSTGRES_DSN, table_prefix=prefix, lock_timeout=1)
    try:
        sid = store.create()
        store.append(sid, Message.user(SECRET))
        with psycopg.connect(POSTGRES_DSN) as other:
            other.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            other.execute(f"SELECT count(*) FROM {prefix}_events").fetchone()  # type: ignore[arg-type]
            with pytest.raises(StorageUnavailable, match="call again"):
                store.erase(sid, store.get(sid).messages[0].id or "")
            other.rollback()
        assert store.erase(sid, store.get(sid).messages[0].id or "") == []
        with psycopg.connect(POSTGRES_DSN) as conn:
            rows = conn.execute(f"SELECT t::text FROM {prefix}_events AS t").fetchall()  # type: ignore[arg-type]
        assert not _holds_secret("".join(row for (row,) in rows).encode())
    finally:
        store.close()
        drop_postgres_tables(prefix)


def test_a_fork_cached_by_another_process_shows_an_erasure_at_once(stores: StoreFactory) -> None:
    # A reader that had loaded a fork kept showing the content erased from
    # the session it was forked from (the fork's own log did not change), and
    # its verify() then reported a healthy store as damaged.
    writer, reader = stores.open(), stores.open()
    source = writer.create()
    writer.append(source, Message.user(SECRET), Message.assistant("noted"))
    fork = writer.fork_at(source, 2)
    deeper = writer.fork(fork)
    assert reader.get(fork).messages[0].text == SECRET and reader.get(deeper).messages[0].text == SECRET
    secret_id = writer.get(source).messages[0].id or ""
    assert writer.erase(source, secret_id) == sorted([source, fork, deeper], key=lambda s: (s != source, s))
    for sid in (source, fork, deeper):
        assert reader.get(sid).messages[0].erased is not None, sid
        assert reader.verify(sid).messages[0].erased is not None, sid
        assert not _holds_secret(_everything(reader, sid))


def test_messages_that_share_an_id_are_each_in_the_erasure_record(
    stores: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by a newcomer: two appends giving one id were both erased, but
    # the record kept one digest; the read model then gave both placeholders
    # that digest and reported the healthy store as altered. Appends refuse
    # a taken id now; stores written before hold such sessions.
    from engine.readmodel import ReadModel
    from tests._readmodel import expected_tables, projected_tables

    store = stores.open()
    sid = store.create()
    monkeypatch.setattr("engine.decisions.transcript.check_ids_free", lambda *args: None)  # as engines before did
    store.append(sid, Message.user("first", id="shared"))
    store.append(sid, Message.assistant("between"))
    store.append(sid, Message.user("second", id="shared"))
    monkeypatch.undo()
    fork = store.fork(sid)
    model = ReadModel(tmp_path / "read.db")
    model.catch_up(store)
    assert store.erase(sid, "shared") == [sid, fork]
    first, second = Message.user("first").digest, Message.user("second").digest  # content digests hold no id
    for session in (sid, fork):
        [record] = [entry.event for entry in store.history(session) if entry.kind == "messages_erased"]
        assert (record.message_ids, record.digests) == (("shared", "shared"), (first, second))
        assert [m.erased for m in store.get(session).messages] == [first, None, second]
    assert "2 messages erased" in store.history(sid)[-1].summary
    model.catch_up(store)  # across the erasure
    assert projected_tables(model) == expected_tables(store)
    model.close()
    with ReadModel(tmp_path / "fresh.db") as fresh:  # from the rewritten log
        fresh.catch_up(store)
        assert projected_tables(fresh) == expected_tables(store)


def test_a_fork_deleted_by_another_process_while_erasing_is_read_again_not_a_missing_session(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass on PostgreSQL: erase(root) raised
    # SessionNotFound naming a fork deleted after the family was listed.
    store = stores.open()
    root = store.create()
    store.append(root, Message.user(SECRET, id="secret"))
    fork = store.fork(root)
    elsewhere = stores.open()
    family = _erasure._family
    deleted: list[str] = []

    def listed_then_deleted(repository: Any, root_id: str) -> list[str]:
        members = family(repository, root_id)
        if not deleted:  # another process deletes the fork just after the family is listed
            deleted.append(fork)
            elsewhere.delete(fork)
        return members

    monkeypatch.setattr(_erasure, "_family", listed_then_deleted)
    assert store.erase(root, "secret") == [root]
    assert deleted == [fork] and store.get(root).messages[0].erased is not None


@contextmanager
def _old_reader(factory: StoreFactory) -> Iterator[None]:
    """Another client reading the store in an open transaction, so that it
    still holds the bytes an erasure replaces (SQLite: its WAL snapshot;
    PostgreSQL: its xmin keeps the old rows from VACUUM)."""
    if factory.base == "sqlite":
        import sqlite3

        assert factory.target is not None
        reader = sqlite3.connect(factory.target, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute(f"SELECT count(*) FROM {factory.prefix}_log").fetchall()
        try:
            yield
        finally:
            reader.execute("ROLLBACK")
            reader.close()
        return
    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN) as reader:  # a transaction, open until the block ends
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute(f'SELECT count(*) FROM "{factory.prefix}_events"').fetchall()
        yield


@pytest.mark.parametrize("kind", ["sqlite"] + (["postgres"] if POSTGRES_DSN else []))
@pytest.mark.parametrize("operation", ["erase", "delete"])
def test_waiting_for_readers_of_the_old_bytes_holds_back_no_other_call_of_the_store(
    kind: str, operation: str, tmp_path: Path
) -> None:
    # Found by an adversarial pass: an erasure or deletion waited for old
    # readers (VACUUM on PostgreSQL, the WAL checkpoint on SQLite) inside the
    # store object's whole-store lock, so every other call of that object,
    # on any session, waited up to lock_timeout behind it.
    with contextmanager(store_factories)(kind, tmp_path) as factory:
        store = factory.open(lock_timeout=3)
        target, other = store.create(), store.create()
        store.append(target, Message.user("my pin is 1234"))
        store.append(other, Message.user("unrelated"))
        [secret] = store.get(target).messages
        assert secret.id is not None
        outcome: list[object] = []

        def remove() -> None:
            try:
                if operation == "erase":
                    outcome.append(store.erase(target, secret.id))
                else:
                    outcome.append(store.delete(target))
            except EngineError as exc:
                outcome.append(exc)

        with _old_reader(factory):
            worker = threading.Thread(target=remove)
            worker.start()
            committed = time.monotonic() + 10
            while _removed(factory, target, operation) is False:  # until it has committed
                assert time.monotonic() < committed, "the erasure or deletion never committed"
                time.sleep(0.01)
            # It now waits for the reader; this store's other calls go on.
            store.append(other, Message.user("meanwhile"))
            assert [m.text for m in store.get(other).messages] == ["unrelated", "meanwhile"]
            assert worker.is_alive()  # still waiting: the calls above did not wait behind it
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert outcome == [[target]], outcome  # done once the reader ended
        assert _removed(factory, target, operation) is True


def _removed(factory: StoreFactory, session_id: str, operation: str) -> bool:
    """Whether the erasure (its audit event) or the deletion has committed,
    as a new store object reads it."""
    with factory.open() as fresh:
        if operation == "delete":
            return session_id not in [info.id for info in fresh.sessions()]
        return fresh.get(session_id).messages[0].erased is not None


def test_erased_and_deleted_text_is_in_no_page_sqlite_moved_it_from(tmp_path: Path) -> None:
    # Found by an adversarial run: as sessions interleave and rows are
    # erased or deleted, SQLite moves rows between pages and leaves the old
    # copies in the unused space of the pages they left (secure_delete only
    # zeroes what a write frees); 20 of 100 erased texts, and texts of
    # deleted sessions, were still in the file.
    store = Transcripts.open(str(tmp_path / "store.db"), snapshot_interval=3)
    live, gone = interleaved_erasures(store, seed=1)
    store.close()
    assert len(gone) > 150
    assert texts_left(tmp_path, "store.db", gone) == []
    kept = [secret(ident) for idents in live.values() for ident in idents]
    assert kept and texts_left(tmp_path, "store.db", kept) == kept  # the search finds what is still there


# Found by an adversarial pass: another process's erasure re-links the log,
# and the next append of a process that had the session cached failed with
# ConcurrentWriteError, although an append is decided again by the store.


def test_an_append_decided_before_another_process_erased_is_decided_again(stores: StoreFactory) -> None:
    here, elsewhere = stores.open(), stores.open()  # think: two processes
    sid = here.create(session_id="S")
    here.append(sid, Message.user("hello"), Message.user("my card 4111"))
    revision = here.append(sid, Message.user("from here"))  # cached here at this version
    card = elsewhere.get(sid).messages[1]
    elsewhere.erase(sid, card.id)
    here.append(sid, Message.user("again"))
    here.append(sid, Message.user("expected"), expected_revision=here.get(sid).revision)
    stored = elsewhere.get(sid)
    assert [m.text for m in stored.messages] == ["hello", "", "from here", "again", "expected"]
    assert stored.messages[1].erased is not None and stored.messages[1].id == card.id
    assert revision == "sha256:" + stored.messages.revision_at(3).hex()  # an erasure keeps every revision
    elsewhere.verify(sid)


def test_an_append_decided_before_another_process_deleted_and_created_again_is_still_refused(
    stores: StoreFactory,
) -> None:
    here, elsewhere = stores.open(), stores.open()
    sid = here.create(session_id="S", title="first")
    here.append(sid, Message.user("old"))
    elsewhere.delete(sid)
    elsewhere.create(session_id=sid, title="second")
    elsewhere.append(sid, Message.user("new one"))
    elsewhere.append(sid, Message.user("and more"))  # version 3: further on than the old log's 2
    with pytest.raises(ConcurrentWriteError):
        here.append(sid, Message.user("meant for the first"))
    assert [m.text for m in elsewhere.get(sid).messages] == ["new one", "and more"]


def test_an_id_a_branch_gave_its_own_message_is_not_the_sources_message(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a fork's own message under an id the
    # source's later message has (both branches numbering their turns) was
    # erased with the source's: erase() took every message with the id in
    # the family. It takes what the erased session shows, and copies of it.
    store = stores.open()
    a = store.create(title="chat")
    store.append(a, Message.user("Plan my trip", id="turn-1"), Message.assistant("Go to Rome", id="turn-2"))
    store.append(a, Message.user("Cheaper?", id="turn-3"), Message.assistant("Try Porto", id="turn-4"))
    b = store.fork_at(a, 3)  # retry the last answer
    store.append(b, Message.assistant("Try Kraków", id="turn-4"))
    c = store.fork_at(a, 3)
    store.append(c, Message.assistant("Try Porto", id="turn-4"))  # the same answer again: a copy of a's

    assert store.erase(a, "turn-4") == [a, c]  # the root first, then the forks it reached
    shown = {
        sid: [(m.id, m.text, m.erased is not None) for m in stores.open().verify(sid).messages] for sid in (a, b, c)
    }
    assert shown[a][-1] == ("turn-4", "", True)
    assert shown[c][-1] == ("turn-4", "", True)
    assert shown[b][-1] == ("turn-4", "Try Kraków", False)  # another message: kept

    assert store.erase(b, "turn-4") == [b]  # b's own message only
    assert stores.open().get(b).messages[-1].erased is not None
    erased = store.erase(b, "turn-1")  # what b shows of a: erased where it is stored, shown so in forks
    assert erased[0] == a and sorted(erased) == sorted([a, b, c])
    for sid in (a, b, c):
        assert stores.open().verify(sid).messages[0].erased is not None
    with pytest.raises(InvalidArgument, match="never occur in the history of session"):
        store.erase(b, "turn-9")


def test_a_fork_that_left_out_the_sources_later_messages_never_showed_them(stores: StoreFactory) -> None:
    # Found by a second adversarial pass: erasure took a fork's view of its
    # source as the source's log up to the fork point, so a fork_at or
    # fork_replacing child could erase the source's messages from the cut
    # on, which it never showed: U's own answer went, and the child was not
    # even among the sessions erased.
    store = stores.open()
    u = store.create()
    store.append(u, Message.user("hello"))
    store.append(u, Message.assistant("U's answer, only U has it", id="Z"))
    h = store.fork_at(u, 1)  # [hello]
    retried = store.fork_replacing(u, 1, Message.assistant("a retry"))
    replaced_id = store.get(u).messages[1].id
    for fork, ident in ((h, "Z"), (retried, replaced_id)):
        with pytest.raises(InvalidArgument, match=f"never occur in the history of session '{fork}'"):
            store.erase(fork, ident or "")
    assert stores.open().verify(u).messages[1].text == "U's answer, only U has it"
    # The other way round: the fork numbers its own next turn as the source did.
    store.append(h, Message.assistant("H's own answer", id="Z"))
    assert store.erase(h, "Z") == [h]
    assert stores.open().verify(h).messages[1].erased is not None
    assert stores.open().verify(u).messages[1].text == "U's answer, only U has it"
    # A message the source rewrote away before the fork is not what the fork shows either.
    s = store.create()
    store.append(s, Message.user("hi"), Message.assistant("an old answer", id="Y"))
    store.rewrite(s, 1, 2, [])
    g = store.fork(s)
    store.append(g, Message.assistant("a new answer", id="Y"))
    assert store.erase(g, "Y") == [g]
    assert [m.text for m in stores.open().get(s, at=2).messages] == ["hi", "an old answer"]


def test_a_fork_that_continued_an_erased_message_under_its_id_loses_that_content_too(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a fork that added a result to the
    # source's tool_results message (add_tool_results keeps its id), or
    # rewrote it keeping a block, still showed the erased content.
    store = stores.open()
    a = store.create()
    store.append(a, Message.user("q"), Message.assistant(ToolUse(id="c1", name="f"), ToolUse(id="c2", name="g")))
    store.add_tool_results(a, ToolResult.of("c1", "SECRET-ONE"))
    results_id = store.get(a).messages[-1].id
    b = store.fork(a)
    store.add_tool_results(b, ToolResult.of("c2", "b-answer"))  # b's own copy of the message, continued
    c = store.create()
    store.append(c, Message.user("hi"), Message.assistant("SECRET-TWO", "tail", id="m2"))
    d = store.fork(c)
    store.rewrite(d, 1, 2, [Message.assistant("SECRET-TWO", "changed", id="m2")])  # keeps an erased block

    assert store.erase(a, results_id) == [a, b]
    assert store.erase(c, "m2") == [c, d]
    reopened = stores.open()
    for sid, erased_text in ((a, "SECRET-ONE"), (b, "SECRET-ONE"), (c, "SECRET-TWO"), (d, "SECRET-TWO")):
        head = reopened.verify(sid)
        for version in range(1, head.version + 1):
            assert erased_text not in repr(reopened.get(sid, at=version).messages)


def test_the_history_says_where_an_erasure_rewrote_the_log(stores: StoreFactory) -> None:
    # Found by a newcomer pass: "1 message erased from 1 stored events", and
    # "from 0 stored events" for a fork that showed the content without holding it.
    store = stores.open()
    source = store.create()
    store.append(source, Message.user("my card is 4111", id="card"))
    fork = store.fork(source)
    assert store.erase(source, "card") == [source, fork]
    assert store.history(source)[-1].summary == "erasure: 1 message erased from 1 stored event"
    assert store.history(fork)[-1].summary == "erasure: 1 message erased where the log it was forked from holds them"


def _realtime_call_events(arguments: str) -> list[dict[str, Any]]:
    """A spoken question, then a response of a spoken answer (item iA) and a
    function call (item iF) that the engine places in the same message, and
    the call's output (item iO) as the next message."""
    answer = {"id": "iA", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    call = {
        "id": "iF",
        "type": "function_call",
        "status": "completed",
        "name": "check_card",
        "call_id": "call_1",
        "arguments": arguments,
    }
    question = {"id": "iU", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "my card?"}]}
    output = {"id": "iO", "type": "function_call_output", "call_id": "call_1", "output": '{"valid": true}'}
    done = {
        "id": "r1",
        "status": "completed",
        "conversation_id": "c",
        "output": [
            {**answer, "status": "completed", "content": [{"type": "output_audio", "transcript": "Checking."}]},
            call,
        ],
    }

    def event(kind: str, number: int, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": f"e{number}", **fields}

    return [
        event("conversation.item.added", 1, previous_item_id=None, item=question),
        event("response.created", 2, response={"id": "r1", "status": "in_progress", "conversation_id": "c"}),
        event("conversation.item.added", 3, previous_item_id="iU", item=answer),
        event(
            "conversation.item.added", 4, previous_item_id="iA", item={**call, "status": "in_progress", "arguments": ""}
        ),
        event("response.done", 5, response=done),
        event("conversation.item.added", 6, previous_item_id="iF", item=output),
    ]


@pytest.mark.parametrize("item", ["iF", "iO"])
def test_erasing_a_realtime_call_by_its_item_id_erases_the_message_that_holds_it(
    stores: StoreFactory, item: str
) -> None:
    # Found by a newcomer pass: a function call's item is placed in the
    # message of the response's first item (iA), so no message carries its
    # id; erase(sid, "iF") reported success ("0 messages erased") and the
    # card number stayed in the message's tool use, and on disk.
    store = stores.open()
    sid = store.create()
    outcomes = store.ingest_many(sid, _realtime_call_events(json.dumps({"card": SECRET})), provider="openai")
    assert "rejected" not in [outcome.status for outcome in outcomes]
    question, answer, results = store.get(sid).messages
    assert (question.text, answer.provider_item_id, [use.id for use in answer.tool_uses]) == (
        "my card?",
        "iA",
        ["call_1"],
    )
    assert results.role == "tool_results" and _holds_secret(_stored_bytes(stores))
    assert store.erase(sid, item) == [sid]
    held = stores.open().get(sid).messages
    # The call's item is in the answer's message; its output's, in the results message.
    erased = 1 if item == "iF" else 2
    assert [message.erased is not None for message in held] == [index == erased for index in range(3)]
    assert held[0] == question
    if item == "iF":
        assert not _holds_secret(_stored_bytes(stores)) and not _holds_secret(_everything(stores.open(), sid))
        assert store.history(sid)[-1].summary.startswith("erasure: 1 message erased")
    assert stores.open().verify(sid).version == store.get(sid).version


def test_a_placeholder_keeps_no_provider_data(stores: StoreFactory) -> None:
    # Found by a newcomer pass: provider_data went with the erasure, which the
    # docs did not say. It may hold the same personal data, so it goes (said now).
    store = stores.open()
    sid = store.create()
    traced = Message(role="user", blocks=(Text(text="hello"),), provider_data=json.dumps({"note": SECRET}), id="m1")
    store.append(sid, traced, Message.assistant("hi"))
    store.erase(sid, "m1")
    placeholder = stores.open().get(sid).messages[0]
    assert (placeholder.id, placeholder.erased, placeholder.provider_data) == ("m1", traced.digest, None)
    assert not _holds_secret(_stored_bytes(stores))
