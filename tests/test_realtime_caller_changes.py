"""A caller's change to a realtime message (a rewrite, an erasure) stands
against what the provider says of its item later: found by an adversarial
pass, where a late transcription undid a redaction (it was put before the
caller's text), un-erased an erased message, and was reported as
``materialised`` after a rewrite took its item out. The message ingestion
rewrites in place keeps its id. Expected transcripts are read off the
events each test sends and the rewrites it makes."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

import pytest

from engine import Message, Transcripts
from tests.conftest import StoreFactory

_ids = count()


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"cc_{next(_ids)}", **fields}


def spoken_then_answered(store: Transcripts, sid: str) -> None:
    """A user's spoken item u1 (its transcription not come yet), then the
    assistant's reply a1, "Hello!": u1 is placed without its text."""
    user = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    reply = {"id": "a1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    finished = {**reply, "status": "completed", "content": [{"type": "output_audio", "transcript": "Hello!"}]}
    store.ingest_many(
        sid,
        [
            event("input_audio_buffer.committed", item_id="u1", previous_item_id=None),
            event("conversation.item.added", previous_item_id=None, item=user),
            event("response.output_item.added", response_id="r1", output_index=0, item=reply),
            event("conversation.item.added", previous_item_id="u1", item=reply),
            event("response.done", response={"id": "r1", "status": "completed", "output": [finished]}),
        ],
        provider="openai",
    )


def transcription(item: str, text: str) -> dict[str, Any]:
    return event(
        "conversation.item.input_audio_transcription.completed", item_id=item, content_index=0, transcript=text
    )


def rows(store: Transcripts, sid: str) -> list[tuple[str, str, str | None]]:
    return [(m.role, m.text, m.provider_item_id) for m in store.get(sid).messages]


def test_a_late_transcription_lands_in_the_same_message_under_its_id(store: Transcripts) -> None:
    sid = store.create()
    spoken_then_answered(store, sid)
    placed = store.get(sid).messages[0]
    outcome = store.ingest(sid, transcription("u1", "Hi there."), provider="openai")
    assert outcome.status == "materialised"
    landed = store.get(sid).messages[0]
    assert (landed.text, landed.provider_item_id) == ("Hi there.", "u1")
    assert landed.id == placed.id  # an app's notes on the message stay on it


@pytest.mark.parametrize("reopened", [False, True], ids=["cached", "reopened"])
def test_a_late_transcription_does_not_undo_a_callers_rewrite(stores: StoreFactory, reopened: bool) -> None:
    store = stores.open()
    sid = store.create()
    spoken_then_answered(store, sid)
    placed = store.get(sid).messages[0]
    # The caller redacts the user's message, keeping it the item's.
    redacted = Message.user("[redacted]", provider_item_id="u1")
    store.rewrite(sid, 0, 1, [redacted], reason="redaction")
    revisions = len(store.revisions(sid))
    if reopened:  # what ingestion wrote is known from the log alone
        store = stores.open()
    outcome = store.ingest(sid, transcription("u1", "My card number is 4111."), provider="openai")
    assert outcome.status == "discarded"
    assert outcome.reason is not None and "item u1 was rewritten since ingestion placed it" in outcome.reason
    assert rows(store, sid) == [("user", "[redacted]", "u1"), ("assistant", "Hello!", "a1")]
    assert len(store.revisions(sid)) == revisions
    assert store.get(sid).messages[0].id != placed.id  # the caller's message, as the rewrite made it
    # A later word about the item changes nothing either; other items go on.
    assert store.ingest(sid, transcription("u1", "Again."), provider="openai").status in ("discarded", "duplicate")
    assert rows(store, sid)[0] == ("user", "[redacted]", "u1")
    user = {"id": "u2", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Bye"}]}
    added = store.ingest(sid, event("conversation.item.added", previous_item_id="a1", item=user), provider="openai")
    assert added.status == "materialised"
    assert rows(store, sid)[-1] == ("user", "Bye", "u2")
    assert stores.open().verify(sid).messages == store.get(sid).messages


def test_a_late_transcription_after_a_rewrite_took_its_item_out_says_so(store: Transcripts) -> None:
    sid = store.create()
    spoken_then_answered(store, sid)
    store.rewrite(sid, 0, 1, [Message.user("[redacted]")], reason="redaction")  # no item id kept
    outcome = store.ingest(sid, transcription("u1", "Secret."), provider="openai")
    assert outcome.status == "discarded"
    assert outcome.reason is not None and "no message holds item u1" in outcome.reason
    assert rows(store, sid) == [("user", "[redacted]", None), ("assistant", "Hello!", "a1")]


def test_a_late_transcription_of_an_erased_item_is_not_stored(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open()
    sid = store.create()
    spoken_then_answered(store, sid)
    store.erase(sid, "u1")
    delta = event(
        "conversation.item.input_audio_transcription.delta", item_id="u1", content_index=0, delta="My card number"
    )
    outcomes = store.ingest_many(sid, [delta, transcription("u1", "My card number is 4111.")], provider="openai")
    for outcome in outcomes:
        assert outcome.status in ("discarded", "duplicate", "staged")
        assert outcome.reason is not None and "item u1 was erased" in outcome.reason
    [user, answer] = store.get(sid).messages
    assert user.erased is not None and user.text == "" and user.provider_item_id == "u1"
    assert answer.text == "Hello!"
    shown = repr(store.history(sid))
    assert "4111" not in shown and "My card number" not in shown
    if stores.kind == "sqlite":
        stores.close()
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert b"My card number" not in path.read_bytes(), path.name


def test_late_output_of_a_reply_closed_by_rule_does_not_undo_a_callers_rewrite(store: Transcripts) -> None:
    sid = store.create()
    reply = {"id": "a1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    user = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=user),
            event("response.created", response={"id": "r1", "status": "in_progress"}),
            event("conversation.item.added", previous_item_id="u1", item=reply),
            event(
                "response.output_audio_transcript.delta", response_id="r1", item_id="a1", content_index=0, delta="Hel"
            ),
        ],
        provider="openai",
    )
    store.resolve_pending(sid, "place")  # the reply is placed unfinished; its end may still come
    assert rows(store, sid) == [("user", "Hi", "u1"), ("assistant", "Hel", "a1")]
    store.rewrite(sid, 1, 2, [Message.assistant("[withheld]", provider_item_id="a1")], reason="moderation")
    finished = {**reply, "status": "completed", "content": [{"type": "output_audio", "transcript": "Hello, Bob."}]}
    outcome = store.ingest(
        sid,
        event("response.done", response={"id": "r1", "status": "completed", "output": [finished]}),
        provider="openai",
    )
    assert outcome.reason is not None and "item a1 was rewritten since ingestion placed it" in outcome.reason
    assert rows(store, sid) == [("user", "Hi", "u1"), ("assistant", "[withheld]", "a1")]
