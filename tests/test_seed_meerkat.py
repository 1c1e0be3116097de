"""meerkat-core's ``Session`` methods (examples/seeds/meerkat.py) on every
backend: each documented method is called through the engine, its change is in
the history, earlier states stay readable, and it survives a reopen. Expected
values are the inputs the tests give."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine import (
    EMPTY_REVISION,
    Image,
    InvalidArgument,
    InvalidForkPoint,
    InvalidRevision,
    Message,
    Reason,
    ReplaceBlock,
    ReplacementMismatch,
    RevisionConflict,
    SessionExists,
    Text,
    ToolResult,
    ToolUse,
    Transcript,
    Usage,
)
from engine.realtime import AssistantTranscriptDelta, AssistantTurnCompleted, ItemObserved, UserTranscriptFinal
from examples.seeds.meerkat import MeerkatSession
from tests.conftest import StoreFactory


def texts(session: MeerkatSession) -> list[str]:
    return [m.text for m in session.snapshot.messages]


def test_constructors_pushes_and_accessors(stores: StoreFactory) -> None:
    store = stores.open()
    chat = MeerkatSession.new(store, actor="meerkat-core")
    fixed = MeerkatSession.with_id(store, "meerkat-fixed", actor="loader")
    assert fixed.id == "meerkat-fixed" and fixed.snapshot.id == "meerkat-fixed"
    with pytest.raises(SessionExists):  # with_id never overwrites a session
        MeerkatSession.with_id(store, "meerkat-fixed")
    assert fixed.snapshot.version == 1

    chat.push(Message.system("Be terse."))
    chat.push(Message.user("What is 6 x 7?"))
    chat.push_batch([Message.assistant("42."), Message.user("And 6 x 8?")])  # one event
    session = chat.snapshot
    assert (session.id, session.version) == (chat.id, 4)
    assert texts(chat) == ["Be terse.", "What is 6 x 7?", "42.", "And 6 x 8?"]
    assert session.created_at <= session.updated_at and dict(session.metadata) == {}
    assert session.has_pending_boundary and session.last_assistant_text == "42."
    assert [m.text for m in store.get(chat.id, last=2).messages] == ["42.", "And 6 x 8?"]  # last_n, hosted directly

    chat.append_external_assistant_blocks(["48."], "end_turn", Usage(input=20, output=3))
    chat.record_usage(Usage(input=5, output=1))
    assert chat.snapshot.usage == Usage(input=25, output=4) and chat.snapshot.usage.total == 29
    assert not chat.snapshot.has_pending_boundary and chat.snapshot.messages[-1].incomplete is False
    chat.append_external_user_content("Show me.")
    chat.append_external_user_content([Text(text="This one:"), Image(media_type="image/png", data=b"PNG1")])
    chat.append_external_assistant_blocks(
        [ToolUse(id="call_1", name="look", arguments="{}")], "tool_use", Usage(input=9, output=2)
    )
    chat.push(Message.tool_results(ToolResult.of("call_1", "a cat")))
    chat.append_external_assistant_blocks(["It is a c"], "max_tokens", Usage(output=4))
    session = chat.snapshot
    assert session.tool_call_count == 1 and session.last_assistant_text == "It is a c"
    assert session.messages[-1].incomplete is True and session.usage == Usage(input=34, output=10)
    assert [m.role for m in session.messages[5:7]] == ["user", "user"]
    assert session.messages[6].blocks[1] == Image(media_type="image/png", data=b"PNG1")

    kinds = [entry.kind for entry in store.history(chat.id)]
    assert kinds[:4] == ["session_created", "messages_appended", "messages_appended", "messages_appended"]
    assert "usage_recorded" in kinds and store.history(chat.id)[1].actor == "meerkat-core"
    assert len(store.get(chat.id, at=4).messages) == 4  # before the external appends
    listed = next(info for info in store.sessions() if info.id == chat.id)  # meerkat's SessionMeta
    assert (listed.message_count, listed.version) == (10, 14)  # an append with usage is two events
    assert MeerkatSession(stores.open(), chat.id).snapshot == chat.snapshot  # reopen


def test_metadata_and_control_state(stores: StoreFactory) -> None:
    store = stores.open()
    chat = MeerkatSession.new(store)
    chat.set_metadata("channel", "voice")
    assert chat.backfill_metadata_if_absent("channel", "web") is False
    assert chat.backfill_metadata_if_absent("locale", "nb-NO") is True
    chat.remove_metadata("channel")
    assert dict(chat.snapshot.metadata) == {"locale": "nb-NO"}

    pairs: list[tuple[Callable[[Any], None], Callable[[], Any], dict[str, Any]]] = [
        (chat.set_session_metadata, chat.session_metadata, {"model": "claude-sonnet", "provider": "anthropic"}),
        (chat.set_system_context_state, chat.system_context_state, {"applied": ["tz"], "pending": []}),
        (chat.set_deferred_turn_state, chat.deferred_turn_state, {"deferred": True}),
        (chat.set_build_state, chat.build_state, {"profile": "voice"}),
        (chat.set_tool_visibility_state, chat.tool_visibility_state, {"hidden": ["shell"]}),
        (chat.set_mob_tool_authority_context, chat.mob_tool_authority_context, {"operator": "ana"}),
    ]
    for put, read, value in pairs:
        assert read() is None
        put(value)
        assert read() == value
    assert chat.try_tool_visibility_state() == {"hidden": ["shell"]}
    version = chat.snapshot.version
    chat.set_deferred_turn_state(None)  # None clears
    assert chat.deferred_turn_state() is None and chat.snapshot.version == version + 1
    assert store.get(chat.id, at=version).metadata["session_deferred_turn_state"] == {"deferred": True}

    with pytest.raises(InvalidArgument):  # metadata is JSON: a set is refused, nothing written
        chat.set_build_state({"ids": {1, 2}})
    assert chat.snapshot.version == version + 1 and chat.build_state() == {"profile": "voice"}
    chat.set_metadata("session_tool_visibility_state_v1", "not an object")
    with pytest.raises(InvalidArgument, match="not a JSON object"):
        chat.try_tool_visibility_state()

    summaries = [entry.summary for entry in store.history(chat.id)]
    assert summaries[1] == "metadata set channel"
    reopened = MeerkatSession(stores.open(), chat.id)
    assert reopened.session_metadata() == {"model": "claude-sonnet", "provider": "anthropic"}
    assert reopened.snapshot.metadata["locale"] == "nb-NO"


def test_rewrites_revisions_and_system_prompt(stores: StoreFactory) -> None:
    store = stores.open()
    chat = MeerkatSession.new(store, actor="meerkat-core")
    chat.push_batch([Message.user("Hi."), Message.assistant("Hello."), Message.user("Plan a trip.")])
    chat.set_system_prompt("You plan trips.")  # inserted at the start
    chat.set_system_prompt("You plan trips.")  # unchanged: nothing recorded
    assert texts(chat)[0] == "You plan trips." and chat.snapshot.version == 3
    chat.set_system_prompt("You plan rail trips.")  # replaced
    chat.append_system_context_blocks(["[Runtime System Context] tz=Europe/Oslo"])
    assert chat.snapshot.messages[0].blocks == (
        Text(text="You plan rail trips."),
        Text(text="[Runtime System Context] tz=Europe/Oslo"),
    )
    assert len(chat.snapshot.messages) == 4

    before = chat.snapshot
    commit = chat.commit_transcript_rewrite(
        (1, 3), [Message.user("(they greeted)")], Reason(kind="edit", note="tidy"), "curator", before.revision
    )
    assert (commit.start, commit.end, commit.count_before, commit.count_after) == (1, 3, 4, 3)
    assert (commit.parent_revision, commit.reason, commit.actor) == (
        before.revision,
        Reason(kind="edit", note="tidy"),
        "curator",
    )
    assert texts(chat)[1:] == ["(they greeted)", "Plan a trip."]
    version = chat.snapshot.version
    with pytest.raises(RevisionConflict):  # fenced on a stale revision: refused, nothing written
        chat.commit_transcript_rewrite((1, 2), [], "edit", expected_parent_revision=before.revision)
    assert chat.snapshot.version == version

    compaction = chat.commit_transcript_rewrite((1, 3), [Message.user("Summary: a trip.")], Reason(kind="compaction"))
    assert compaction.reason.kind == "compaction" and len(chat.snapshot.compactions) == 1
    assert texts(chat)[1:] == ["Summary: a trip."]

    history = store.revisions(chat.id)  # transcript_history_state, hosted directly
    assert history[-1].revision == chat.snapshot.revision and history[-1] == compaction
    assert [c.generation for c in history] == list(range(1, len(history) + 1))
    store.verify(chat.id)  # validate_transcript_history_state, hosted directly
    assert [m.text for m in chat.transcript_revision_messages(before.revision) or []] == [
        m.text for m in before.messages
    ]
    body = chat.transcript_revision_body(commit.revision)
    assert body is not None and body.revision == commit.revision and len(body.messages) == 3
    assert chat.transcript_revision_messages(EMPTY_REVISION) == []
    assert chat.transcript_revision_body("sha256:" + "0" * 64) is None  # never reached
    with pytest.raises(InvalidRevision):
        chat.transcript_revision_messages("not-a-revision")

    restored = store.restore(chat.id, before.revision, actor="ops")  # meerkat's service-level restore
    assert restored.reason.kind == "restore" and chat.snapshot.messages == before.messages
    kinds = [entry.kind for entry in store.history(chat.id)]
    assert kinds.count("messages_rewritten") == 6
    assert len(store.get(chat.id, at=compaction.version).messages) == 2
    assert MeerkatSession(stores.open(), chat.id).snapshot.revision == before.revision


def test_externalize_media(stores: StoreFactory) -> None:
    store = stores.open()
    chat = MeerkatSession.new(store)
    chat.push(Message.user("Look:", Image(media_type="image/png", data=b"PNG1")))
    chat.push(Message.assistant(ToolUse(id="c1", name="snap")))
    chat.push(Message.tool_results(ToolResult.of("c1", Image(media_type="image/jpeg", data=b"JPG2"))))
    chat.push(Message.assistant("Two pictures."))
    blobs: dict[str, bytes] = {}

    def put(data: bytes, media_type: str) -> str:
        blobs[f"blob:{len(blobs) + 1}"] = data
        return f"blob:{len(blobs)}"

    with pytest.raises(InvalidArgument):
        chat.externalize_media(put, start=-1)
    before = chat.snapshot
    chat.externalize_media(put)
    after = chat.snapshot
    assert blobs == {"blob:1": b"PNG1", "blob:2": b"JPG2"} and len(after.messages) == 4
    assert after.messages[0].blocks[1] == Image(media_type="image/png", ref="blob:1")
    assert after.messages[2].blocks[0] == ToolResult.of("c1", Image(media_type="image/jpeg", ref="blob:2"))
    assert store.revisions(chat.id)[-1].reason.kind == "externalize_media"
    assert (store.revisions(chat.id)[-1].start, store.revisions(chat.id)[-1].end) == (0, 3)
    chat.externalize_media(put)  # nothing inline left: nothing recorded
    assert chat.snapshot.version == after.version
    assert store.get(chat.id, at=before.version).messages[0].blocks[1] == Image(media_type="image/png", data=b"PNG1")


def test_forks(stores: StoreFactory) -> None:
    store = stores.open()
    chat = MeerkatSession.new(store, actor="meerkat-core")
    chat.push_batch([Message.user("Hi."), Message.assistant("Hello."), Message.user("Rain?"), Message.assistant("No.")])
    chat.record_usage(Usage(input=10, output=2))

    whole = chat.fork()
    assert texts(whole) == texts(chat) and whole.snapshot.lineage.source == chat.id
    assert whole.snapshot.usage == Usage()  # the engine starts a fork's usage at zero
    early = chat.fork_at(2)
    assert texts(early) == ["Hi.", "Hello."] and early.snapshot.lineage.fork_index == 2
    edited = chat.fork_replacing(2, Message.user("Snow?"))
    assert texts(edited) == ["Hi.", "Hello.", "Snow?"]
    block = chat.fork_replacing(1, ReplaceBlock(index=0, block=Text(text="Hey.")))
    assert texts(block) == ["Hi.", "Hey."]
    edited.push(Message.assistant("Yes."))
    assert texts(chat)[-1] == "No." and texts(edited)[-1] == "Yes."  # branches never share changes

    count = len(store.sessions())
    with pytest.raises(InvalidForkPoint):
        chat.fork_at(9)
    with pytest.raises(ReplacementMismatch):
        chat.fork_replacing(2, Message.assistant("Snow?"))  # index 2 is a user message
    assert len(store.sessions()) == count  # nothing created
    assert store.history(edited.id)[0].kind == "session_forked"
    reopened = stores.open()
    assert [m.text for m in reopened.get(edited.id).messages] == ["Hi.", "Hello.", "Snow?", "Yes."]


def test_realtime_transcript_events(stores: StoreFactory) -> None:
    store = stores.open()
    call = MeerkatSession.new(store)
    events = [
        ItemObserved(event_id="e1", item_id="u1", role="user", previous_item_id=None),
        UserTranscriptFinal(event_id="e2", item_id="u1", text="Hola."),
        ItemObserved(event_id="e3", item_id="a1", role="assistant", previous_item_id="u1", response_id="r1"),
        AssistantTranscriptDelta(event_id="e4", response_id="r1", item_id="a1", delta="Hello, "),
        AssistantTranscriptDelta(event_id="e5", response_id="r1", item_id="a1", delta="how can I help?"),
    ]
    statuses = [call.append_realtime_transcript_event(event).status for event in events]
    assert statuses == ["staged", "materialised", "staged", "staged", "staged"]
    assert list(store.pending(call.id).responses) == ["r1"]  # in_flight_realtime_assistant_response_ids
    done = call.append_realtime_transcript_event(
        AssistantTurnCompleted(event_id="e6", response_id="r1", usage=Usage(input=30, output=6))
    )
    assert done.status == "materialised" and done.messages[0].blocks == (Transcript(text="Hello, how can I help?"),)
    assert list(store.pending(call.id).responses) == []
    assert call.append_realtime_transcript_event(events[3]).status == "duplicate"  # a replayed delta
    assert [(m.role, m.text) for m in call.snapshot.messages] == [
        ("user", "Hola."),
        ("assistant", "Hello, how can I help?"),
    ]
    assert call.snapshot.usage == Usage(input=30, output=6)
    with pytest.raises(InvalidArgument):  # a raw event needs its provider: nothing ingested
        call.append_realtime_transcript_event({"type": "response.done", "event_id": "x"})
    assert "realtime_recorded" in [entry.kind for entry in store.history(call.id)]
    reopened = MeerkatSession(stores.open(), call.id)
    assert reopened.append_realtime_transcript_event(events[0]).status == "duplicate"  # dedupe survives reopen
    assert len(reopened.snapshot.messages) == 2
