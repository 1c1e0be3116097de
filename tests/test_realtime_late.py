"""Output of a realtime response that a rule closed (``resolve_pending``,
or a new connection) and that ends later: found by adversarial passes.
Expected transcripts are read off the events each test sends."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from engine import InvalidMessage, Message, Text, ToolResult, ToolUse, Transcripts

_ids = count()


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"late_{next(_ids)}", **fields}


def reply(item: str, status: str = "in_progress", text: str | None = None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_audio", "transcript": text}]
    return {"id": item, "type": "message", "role": "assistant", "status": status, "content": content}


def typed(item: str, previous: str | None, text: str) -> dict[str, Any]:
    message = {"id": item, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return event("conversation.item.added", previous_item_id=previous, item=message)


def delta(response: str, item: str, text: str) -> dict[str, Any]:
    return event(
        "response.output_audio_transcript.delta", response_id=response, item_id=item, content_index=0, delta=text
    )


def started(response: str) -> dict[str, Any]:
    return event("response.created", response={"id": response, "status": "in_progress"})


def done(response: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    return event("response.done", response={"id": response, "status": "completed", "output": output})


def ingest(store: Transcripts, sid: str, *events: dict[str, Any]) -> list[str]:
    return [outcome.status for outcome in store.ingest_many(sid, list(events), provider="openai")]


def reply_under_way(store: Transcripts, sid: str, so_far: str) -> None:
    """A user's "Hi" (u1), then response r1's reply (a1), of which ``so_far`` has come."""
    ingest(store, sid, typed("u1", None, "Hi"), started("r1"))
    ingest(store, sid, event("conversation.item.added", previous_item_id="u1", item=reply("a1")))
    ingest(store, sid, delta("r1", "a1", so_far))


def rows(store: Transcripts, sid: str) -> list[tuple[str, str, bool]]:
    return [(m.role, m.text, m.incomplete) for m in store.get(sid).messages]


def test_a_history_re_sent_after_a_reply_that_ended_late_adds_nothing(store: Transcripts) -> None:
    sid = store.create()
    ingest(store, sid, typed("u1", None, "Hi"), started("r1"))
    ingest(
        store,
        sid,
        event("conversation.item.added", previous_item_id="u1", item=reply("a1")),
        delta("r1", "a1", "Hello "),
    )
    resent = {"id": "n2", "type": "message", "role": "assistant", "status": "completed"}
    resent["content"] = [{"type": "output_text", "text": "Hello there."}]
    ingest(
        store,
        sid,
        event("session.created", session={"id": "second"}),  # a reconnect closes r1 by rule
        delta("r1", "a1", "there."),
        done("r1", [reply("a1", "completed", "Hello there.")]),  # r1's own end, late
        typed("n1", None, "Hi"),  # the client re-sends the history
        event("conversation.item.added", previous_item_id="n1", item=resent),
    )
    assert rows(store, sid) == [("user", "Hi", False), ("assistant", "Hello there.", False)]


def test_a_final_transcript_after_a_close_lands_at_once(store: Transcripts) -> None:
    sid = store.create()
    reply_under_way(store, sid, "Your order ")
    store.resolve_pending(sid, "place")
    final = event(
        "response.output_audio_transcript.done",
        response_id="r1",
        item_id="a1",
        content_index=0,
        transcript="Your order ships today.",
    )
    assert ingest(store, sid, delta("r1", "a1", "ships today."), final) == ["staged", "materialised"]
    assert rows(store, sid)[1] == ("assistant", "Your order ships today.", True)  # its response never ended


def test_a_call_closed_early_gets_its_arguments_and_completes(store: Transcripts) -> None:
    sid = store.create()
    call = {"id": "fc1", "type": "function_call", "status": "in_progress", "name": "book", "call_id": "call_1"}
    call["arguments"] = ""
    ingest(
        store,
        sid,
        typed("u1", None, "Book"),
        started("r1"),
        event("response.output_item.added", response_id="r1", output_index=0, item=call),
        event("conversation.item.added", previous_item_id="u1", item=call),
        event("session.created", session={"id": "only"}),  # the call's only one, delivered late
        event(
            "response.function_call_arguments.done",
            response_id="r1",
            item_id="fc1",
            output_index=0,
            call_id="call_1",
            arguments='{"n": 2}',
        ),
        done("r1", [{**call, "status": "completed", "arguments": '{"n": 2}'}]),
    )
    [placed] = store.get(sid).messages[1:]
    assert (placed.tool_uses, placed.incomplete) == ((ToolUse(id="call_1", name="book", arguments='{"n": 2}'),), False)


def test_a_reply_that_completes_as_placed_is_no_longer_incomplete(store: Transcripts) -> None:
    sid = store.create()
    reply_under_way(store, sid, "Hello there.")
    store.resolve_pending(sid, "place")
    assert rows(store, sid)[1] == ("assistant", "Hello there.", True)
    ingest(store, sid, done("r1", [reply("a1", "completed", "Hello there.")]))
    assert rows(store, sid)[1] == ("assistant", "Hello there.", False)


def test_what_was_heard_stays_when_the_reply_ends_late(store: Transcripts) -> None:
    from engine.realtime import (
        AssistantTranscriptDelta,
        AssistantTranscriptTruncated,
        AssistantTurnCompleted,
        ItemObserved,
        ResponseStarted,
    )

    sid = store.create()
    store.ingest_many(
        sid,
        [
            ResponseStarted(event_id="c", response_id="r1"),
            ItemObserved(event_id="o", item_id="a1", role="assistant", previous_item_id=None, response_id="r1"),
            AssistantTranscriptDelta(event_id="d1", response_id="r1", item_id="a1", delta="Your table is booked "),
        ],
    )
    store.resolve_pending(sid, "place")
    store.ingest_many(
        sid,
        [
            AssistantTranscriptDelta(event_id="d2", response_id="r1", item_id="a1", delta="for seven."),
            AssistantTranscriptTruncated(event_id="t", item_id="a1", audio_end_ms=800, text="Your table"),
            AssistantTurnCompleted(event_id="z", response_id="r1"),
        ],
    )
    assert [m.text for m in store.get(sid).messages] == ["Your table"]


def test_a_dropped_reply_stays_dropped_when_more_of_it_comes(store: Transcripts) -> None:
    sid = store.create()
    reply_under_way(store, sid, "Dropped.")
    store.resolve_pending(sid, "drop")
    second = event("conversation.item.added", previous_item_id="a1", item=reply("a2"))
    output = [reply("a1", "completed", "Dropped."), reply("a2", "completed", "Second.")]
    ingest(store, sid, second, delta("r1", "a2", "Second."), done("r1", output))
    assert rows(store, sid) == [("user", "Hi", False)]


def test_an_appended_message_cannot_claim_a_realtime_item(store: Transcripts) -> None:
    sid = store.create()
    audio = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    ingest(store, sid, event("conversation.item.added", previous_item_id=None, item=audio))
    version = store.get(sid).version
    with pytest.raises(InvalidMessage, match="provider item id 'u1', which a realtime item of this session has"):
        store.append(sid, Message.assistant("noted", provider_item_id="u1"))
    assert store.get(sid).version == version
    transcribed = event(
        "conversation.item.input_audio_transcription.completed", item_id="u1", content_index=0, transcript="It is 4111"
    )
    ingest(store, sid, transcribed)
    assert [(m.role, m.text, m.provider_item_id) for m in store.get(sid).messages] == [("user", "It is 4111", "u1")]


def _paid_call(store: Transcripts) -> str:
    """A spoken reply (a1) and a function call (fc1) placed in its message, then the call's output."""
    sid = store.create()
    call = {"id": "fc1", "type": "function_call", "status": "completed", "name": "charge", "call_id": "call_1"}
    call["arguments"] = '{"card": "4111"}'
    ingest(
        store,
        sid,
        typed("u1", None, "Pay"),
        started("r1"),
        event("conversation.item.added", previous_item_id="u1", item=reply("a1")),
        event("conversation.item.added", previous_item_id="a1", item={**call, "status": "in_progress"}),
        done("r1", [reply("a1", "completed", "Charging."), call]),
    )
    return sid


def test_a_fork_erases_a_realtime_call_by_its_item_id(store: Transcripts) -> None:
    sid = _paid_call(store)
    child = store.fork(sid)
    assert store.erase(child, "fc1") == [sid, child]  # stored in the source's log, which the child shows
    assert [m.erased is not None for m in store.get(child).messages] == [False, True]
    assert '"4111"' not in str(store.history(sid))


def test_erasing_a_realtime_call_leaves_the_applications_own_call_of_that_id(store: Transcripts) -> None:
    sid = _paid_call(store)
    output = {"id": "fo1", "type": "function_call_output", "call_id": "call_1", "output": "ok"}
    ingest(store, sid, event("conversation.item.added", previous_item_id="fc1", item=output))
    weather = ToolUse(id="call_1", name="weather", arguments='{"city": "Oslo"}')  # the application reuses the id
    answer = ToolResult(tool_use_id="call_1", content=(Text(text="rain"),))
    store.append(sid, Message.user("Weather?"), Message.assistant(weather), Message.tool_results(answer))
    store.erase(sid, "fc1")
    erased = [(m.role, m.erased is not None) for m in store.get(sid).messages]
    assert erased == [
        ("user", False),
        ("assistant", True),  # the message holding fc1's tool use
        ("tool_results", False),
        ("user", False),
        ("assistant", False),
        ("tool_results", False),
    ]
