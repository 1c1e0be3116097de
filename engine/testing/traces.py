"""Builders of OpenAI Realtime (GA schema) server-event traces: a user's
audio item, its transcription, a spoken assistant reply, a function call.
Written for this project (not recorded from any third party); every event
gets a fresh ``event_id``."""

from __future__ import annotations

from itertools import count
from typing import Any

_ids = count(1)


__all__ = [
    "assistant_audio",
    "ev",
    "response_done",
    "sample_conversation",
    "transcription",
    "user_audio",
    "weather_call",
]


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    """One server event of type ``kind`` with a fresh event id."""
    return {"type": kind, "event_id": f"event_{next(_ids):04d}", **fields}


def user_audio(item: str, previous: str | None) -> list[dict[str, Any]]:
    return [
        ev("input_audio_buffer.committed", item_id=item, previous_item_id=previous),
        ev(
            "conversation.item.added",
            previous_item_id=previous,
            item={
                "id": item,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
        ),
    ]


def transcription(item: str, text: str) -> dict[str, Any]:
    return ev("conversation.item.input_audio_transcription.completed", item_id=item, content_index=0, transcript=text)


def assistant_audio(
    response: str,
    item: str,
    previous: str,
    words: list[str],
    *,
    status: str = "completed",
    usage: tuple[int, int] = (100, 20),
) -> list[dict[str, Any]]:
    """A spoken assistant reply: item announced, transcript deltas, done events."""
    text = "".join(words)
    announced = {"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    finished = {
        "id": item,
        "type": "message",
        "role": "assistant",
        "status": "completed" if status == "completed" else "incomplete",
        "content": [{"type": "output_audio", "transcript": text}],
    }
    events = [
        ev("response.created", response={"id": response, "status": "in_progress"}),
        ev("response.output_item.added", response_id=response, output_index=0, item=announced),
        ev("conversation.item.added", previous_item_id=previous, item=announced),
    ]
    events += [
        ev(
            "response.output_audio_transcript.delta",
            response_id=response,
            item_id=item,
            output_index=0,
            content_index=0,
            delta=word,
        )
        for word in words
    ]
    events += [
        ev(
            "response.output_audio_transcript.done",
            response_id=response,
            item_id=item,
            output_index=0,
            content_index=0,
            transcript=text,
        ),
        ev("conversation.item.done", previous_item_id=previous, item=finished),
        ev("response.output_item.done", response_id=response, output_index=0, item=finished),
        response_done(response, status, [finished], usage),
    ]
    return events


def response_done(response: str, status: str, output: list[dict[str, Any]], usage: tuple[int, int]) -> dict[str, Any]:
    return ev(
        "response.done",
        response={
            "id": response,
            "status": status,
            "output": output,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        },
    )


def weather_call() -> list[dict[str, Any]]:
    """A user turn, a function call answered by the client, then the answer."""
    call = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city": "Oslo"}',
        "status": "completed",
    }
    output = {"id": "out_1", "type": "function_call_output", "call_id": "call_1", "output": '{"sky": "rain"}'}
    return [
        *user_audio("u_1", None),
        transcription("u_1", "What's the weather in Oslo?"),
        ev("response.output_item.added", response_id="r_1", output_index=0, item={**call, "status": "in_progress"}),
        ev("conversation.item.added", previous_item_id="u_1", item={**call, "status": "in_progress"}),
        ev("response.output_item.done", response_id="r_1", output_index=0, item=call),
        response_done("r_1", "completed", [call], (50, 10)),
        ev("conversation.item.added", previous_item_id="fc_1", item=output),
        *assistant_audio("r_2", "a_2", "out_1", ["It ", "is ", "raining."]),
    ]


def sample_conversation() -> list[dict[str, Any]]:
    """The demo's trace: two turns, a late transcription, a barge-in."""
    return [
        ev("session.created", session={"id": "sess_demo", "model": "gpt-realtime"}),
        *user_audio("item_u1", None),
        *assistant_audio("resp_1", "item_a1", "item_u1", ["Hello! ", "How ", "can ", "I ", "help?"]),
        transcription("item_u1", "Hi there."),  # the user's transcript lands after the reply
        *user_audio("item_u2", "item_a1"),
        transcription("item_u2", "Tell me a long story about trains."),
        *assistant_audio(
            "resp_2",
            "item_a2",
            "item_u2",
            ["Once ", "upon ", "a ", "time ", "a ", "train ", "left ", "Oslo..."],
            status="cancelled",
        ),
        ev("conversation.item.truncated", item_id="item_a2", content_index=0, audio_end_ms=1800),
    ]
