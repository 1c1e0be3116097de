"""Whole voice calls as real ones go: barge-ins, rate-limited and cut
responses, transcription on or off (and transcripts that arrive late or
never), out-of-band responses in between. The expected transcript comes from
the script the call was generated from, not from the engine; after the last
``response.done`` nothing is pending."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Transcripts

OUTCOMES = ("answered", "answered", "cut", "barge_in", "rate_limited")


@dataclass
class Call:
    events: list[dict[str, Any]] = field(default_factory=list)
    expected: list[tuple[str, str, bool]] = field(default_factory=list)
    out_of_band: list[str] = field(default_factory=list)
    late: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (earliest index, transcription)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    ids = count(1)
    call = Call()

    def emit(kind: str, **fields: Any) -> None:
        call.events.append({"type": kind, "event_id": f"event_{next(ids)}", **fields})

    transcribing = draw(st.booleans())
    transcription = {"model": "gpt-4o-transcribe"} if transcribing else None
    emit("session.created", session={"id": "sess_1", "audio": {"input": {"transcription": transcription}}})
    previous: str | None = None
    turns = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=7))
    turns[-1] = draw(st.sampled_from(OUTCOMES))  # every turn ends with a response.done
    for turn, outcome in enumerate(turns):
        user = f"item_u{turn}"
        emit("input_audio_buffer.committed", item_id=user, previous_item_id=previous)
        emit(
            "conversation.item.added",
            previous_item_id=previous,
            item={
                "id": user,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
        )
        said = ""
        if transcribing:
            fate = draw(st.sampled_from(["arrives", "arrives", "failed", "lost"]), label=f"transcript {turn}")
            if fate == "arrives":
                said = f"words of turn {turn}"
                call.late.append(
                    (
                        len(call.events),
                        {
                            "type": "conversation.item.input_audio_transcription.completed",
                            "event_id": f"tr_{turn}",
                            "item_id": user,
                            "content_index": 0,
                            "transcript": said,
                        },
                    )
                )
            elif fate == "failed":
                call.late.append(
                    (
                        len(call.events),
                        {
                            "type": "conversation.item.input_audio_transcription.failed",
                            "event_id": f"tr_{turn}",
                            "item_id": user,
                            "content_index": 0,
                            "error": {"type": "transcription_error"},
                        },
                    )
                )
        call.expected.append(("user", said, False))
        previous = user
        response = f"resp_{turn}"
        emit(
            "response.created",
            response={"id": response, "status": "in_progress", "conversation_id": "conv_1", "output": []},
        )
        if outcome in ("barge_in", "rate_limited"):
            status = "cancelled" if outcome == "barge_in" else "failed"
            emit(
                "response.done", response={"id": response, "status": status, "conversation_id": "conv_1", "output": []}
            )
        else:
            previous = _spoken_reply(
                emit,
                response,
                f"item_a{turn}",
                user,
                outcome == "cut",
                draw(st.integers(1, 6), label=f"words {turn}"),
                call,
            )
        if draw(st.booleans(), label=f"out-of-band after {turn}"):
            _out_of_band(emit, f"resp_oob{turn}", f"item_oob{turn}", call)
    # Transcriptions run beside the responses: each lands anywhere after its item.
    events = call.events
    for earliest, transcript in call.late:
        position = draw(st.integers(earliest, len(events)), label="transcript arrives at")
        events.insert(position, transcript)
    return call


def _spoken_reply(emit: Any, response: str, item: str, previous: str, cut: bool, words: int, call: Call) -> str:
    spoken = [f"word{n} " for n in range(words)]
    text = "".join(spoken[: max(1, words // 2)] if cut else spoken)
    announced = {"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    emit("response.output_item.added", response_id=response, output_index=0, item=announced)
    emit("conversation.item.added", previous_item_id=previous, item=announced)
    for word in spoken[: max(1, words // 2)] if cut else spoken:
        emit(
            "response.output_audio_transcript.delta",
            response_id=response,
            item_id=item,
            output_index=0,
            content_index=0,
            delta=word,
        )
    finished = {
        **announced,
        "status": "incomplete" if cut else "completed",
        "content": [{"type": "output_audio", "transcript": text}],
    }
    emit(
        "response.output_audio_transcript.done",
        response_id=response,
        item_id=item,
        output_index=0,
        content_index=0,
        transcript=text,
    )
    emit("conversation.item.done", previous_item_id=previous, item=finished)
    emit(
        "response.done",
        response={
            "id": response,
            "status": "cancelled" if cut else "completed",
            "conversation_id": "conv_1",
            "output": [finished],
            "usage": {"input_tokens": 10, "output_tokens": words},
        },
    )
    call.expected.append(("assistant", text, cut))
    return item


def _out_of_band(emit: Any, response: str, item: str, call: Call) -> None:
    """A classifier run with ``conversation: "none"``: never part of the transcript."""
    announced = {"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    finished = {**announced, "status": "completed", "content": [{"type": "output_text", "text": "label: ok"}]}
    emit("response.created", response={"id": response, "status": "in_progress", "conversation_id": None, "output": []})
    emit("response.output_item.added", response_id=response, output_index=0, item=announced)
    emit(
        "response.output_text.delta",
        response_id=response,
        item_id=item,
        output_index=0,
        content_index=0,
        delta="label: ok",
    )
    emit("conversation.item.done", previous_item_id=None, item=finished)  # real GA streams send this too
    emit(
        "response.done", response={"id": response, "status": "completed", "conversation_id": None, "output": [finished]}
    )
    call.out_of_band.append("label: ok")


@settings(max_examples=100)
@given(call=calls())
def test_a_generated_call_rebuilds_its_script_and_leaves_nothing_pending(call: Call) -> None:
    store = Transcripts.open()
    sid = store.create()
    outcomes = store.ingest_many(sid, call.events, provider="openai")
    assert "rejected" not in {outcome.status for outcome in outcomes}
    session = store.get(sid)
    assert [(m.role, m.text, m.incomplete) for m in session.messages] == call.expected
    assert store.pending(sid).items == ()
    assert store.pending(sid).responses == ()
    assert [m.text for r in store.out_of_band(sid) for m in r.messages] == call.out_of_band


@settings(max_examples=50)
@given(call=calls(), data=st.data())
def test_a_call_delivered_in_pieces_twice_gives_the_same(call: Call, data: st.DataObject) -> None:
    store = Transcripts.open()
    sid = store.create()
    events = call.events
    cut = data.draw(st.integers(0, len(events)), label="reconnect at")
    replay = data.draw(st.integers(0, cut), label="replay from")
    for event in [*events[:cut], *events[replay:], *events]:
        store.ingest(sid, event, provider="openai")
    assert [(m.role, m.text, m.incomplete) for m in store.get(sid).messages] == call.expected
    assert store.pending(sid).items == ()
