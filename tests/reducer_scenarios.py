"""Named scenarios for the pure realtime reducer: canonical event sequences
that exercise each rule, including orders the OpenAI traces rarely produce."""

from __future__ import annotations

from engine.realtime import (
    AssistantTextDelta,
    AssistantTranscriptDelta,
    AssistantTranscriptFinalText,
    AssistantTranscriptTruncated,
    AssistantTurnCompleted,
    AssistantTurnInterrupted,
    FunctionCall,
    FunctionCallOutput,
    ItemDeleted,
    ItemObserved,
    ItemSkipped,
    RealtimeEvent,
    ResponseStarted,
    SessionConfigured,
    UserContentFinal,
    UserTranscriptFailed,
    UserTranscriptFinal,
)
from engine.realtime.providers.openai import translate
from engine.testing.traces import sample_conversation, weather_call

Usage = __import__("engine").Usage


def _from_raw(raw_events: list[dict[str, object]]) -> list[RealtimeEvent]:
    events: list[RealtimeEvent] = []
    for raw in raw_events:
        translated = translate(raw)
        if isinstance(translated, list):
            events += translated
    return events


def _turn(n: int, previous: str | None, *, final: str = "Hello.", status: str = "completed") -> list[RealtimeEvent]:
    user, assistant, response = f"u{n}", f"a{n}", f"r{n}"
    return [
        ItemObserved(event_id=f"{n}.1", item_id=user, role="user", previous_item_id=previous),
        UserTranscriptFinal(event_id=f"{n}.2", item_id=user, text=f"question {n}"),
        ItemObserved(
            event_id=f"{n}.3", item_id=assistant, role="assistant", previous_item_id=user, response_id=response
        ),
        AssistantTranscriptDelta(event_id=f"{n}.4", response_id=response, item_id=assistant, delta="Hel"),
        AssistantTextDelta(event_id=f"{n}.5", response_id=response, item_id=assistant, content_index=1, delta="(hi)"),
        AssistantTranscriptFinalText(event_id=f"{n}.6", item_id=assistant, text=final, response_id=response),
        AssistantTurnCompleted(
            event_id=f"{n}.7",
            response_id=response,
            status=status,  # type: ignore[arg-type]
            usage=Usage(input=10 * (n + 1), output=n + 1),
        ),
    ]


SCENARIOS: dict[str, list[RealtimeEvent]] = {
    "two turns in order": _turn(0, None) + _turn(1, "a0"),
    "second turn first": _turn(1, "a0") + _turn(0, None),
    "every event twice": [e for e in _turn(0, None) for _ in range(2)],
    "transcription before the item": [
        UserTranscriptFinal(event_id="t1", item_id="u0", text="early words"),
        ItemObserved(event_id="t2", item_id="u0", role="user", previous_item_id=None),
    ],
    "late transcription": [
        ItemObserved(event_id="l1", item_id="u0", role="user", previous_item_id=None),
        ItemObserved(event_id="l2", item_id="a0", role="assistant", previous_item_id="u0", response_id="r0"),
        AssistantTranscriptDelta(event_id="l3", response_id="r0", item_id="a0", delta="Sure."),
        AssistantTurnCompleted(event_id="l4", response_id="r0"),
        UserTranscriptFinal(event_id="l5", item_id="u0", text="Can you?"),
        UserTranscriptFinal(event_id="l6", item_id="u0", text="Can you, again?"),
        UserTranscriptFailed(event_id="l7", item_id="u0"),
    ],
    "transcription failed": [
        ItemObserved(event_id="f1", item_id="u0", role="user", previous_item_id=None),
        UserTranscriptFailed(event_id="f2", item_id="u0"),
        UserTranscriptFinal(event_id="f3", item_id="u0", text="too late"),
    ],
    "typed and system input": [
        UserContentFinal(event_id="s1", item_id="sys", role="system", text="Be brief.", previous_item_id=None),
        UserContentFinal(event_id="s2", item_id="u0", text="Hi", previous_item_id="sys"),
        UserContentFinal(event_id="s3", item_id="u0", content_index=1, text="there", previous_item_id="sys"),
    ],
    "empty final keeps deltas": [
        ItemObserved(event_id="e1", item_id="a0", role="assistant", previous_item_id=None, response_id="r0"),
        AssistantTranscriptDelta(event_id="e2", response_id="r0", item_id="a0", delta="kept"),
        AssistantTranscriptFinalText(event_id="e3", item_id="a0", text="", response_id="r0"),
        AssistantTranscriptDelta(event_id="e4", response_id="r0", item_id="a0", delta=" late"),
        AssistantTurnCompleted(event_id="e5", response_id="r0"),
        AssistantTranscriptDelta(event_id="e6", response_id="r0", item_id="a0", delta="after"),
        AssistantTurnCompleted(event_id="e7", response_id="r0"),
    ],
    "cancelled with and without output": [
        ItemObserved(event_id="c1", item_id="u0", role="user", previous_item_id=None),
        UserTranscriptFinal(event_id="c2", item_id="u0", text="story?"),
        ItemObserved(event_id="c3", item_id="a0", role="assistant", previous_item_id="u0", response_id="r0"),
        AssistantTranscriptDelta(event_id="c4", response_id="r0", item_id="a0", delta="Once"),
        AssistantTurnCompleted(event_id="c5", response_id="r0", status="cancelled"),
        ItemObserved(event_id="c6", item_id="a1", role="assistant", previous_item_id="a0", response_id="r1"),
        AssistantTurnCompleted(event_id="c7", response_id="r1", status="failed", output_item_ids=()),
        AssistantTurnInterrupted(event_id="c8", response_id="r1"),
    ],
    "interrupted in flight": [
        ItemObserved(event_id="i1", item_id="a0", role="assistant", previous_item_id=None, response_id="r0"),
        AssistantTextDelta(event_id="i2", response_id="r0", item_id="a0", delta="Partial"),
        AssistantTurnInterrupted(event_id="i3", response_id="r0"),
    ],
    "function calls grouped": [
        ItemObserved(event_id="g1", item_id="u0", role="user", previous_item_id=None),
        UserTranscriptFinal(event_id="g2", item_id="u0", text="two lookups"),
        FunctionCall(event_id="g3", item_id="fc1", call_id="c1", name="a", response_id="r0", previous_item_id="u0"),
        FunctionCall(
            event_id="g4",
            item_id="fc2",
            call_id="c2",
            name="b",
            arguments='{"x": 1}',
            response_id="r0",
            previous_item_id="fc1",
        ),
        AssistantTurnCompleted(event_id="g5", response_id="r0"),
        FunctionCallOutput(event_id="g6", item_id="o2", call_id="c2", output="2", previous_item_id="o1"),
        FunctionCallOutput(event_id="g7", item_id="o1", call_id="c1", output="1", previous_item_id="fc2"),
        FunctionCall(event_id="g8", item_id="fc1", call_id="c1", name="a", response_id="r0"),
        FunctionCallOutput(event_id="g9", item_id="o1", call_id="c1", output="1"),
    ],
    "skipped items keep the chain": [
        ItemSkipped(event_id="k1", item_id="x0", previous_item_id=None),
        ItemObserved(event_id="k2", item_id="u0", role="user", previous_item_id="x0"),
        UserTranscriptFinal(event_id="k3", item_id="u0", text="after a skipped item"),
        ItemSkipped(event_id="k4", item_id="u0"),
        ItemObserved(event_id="k5", item_id="x0", role="user"),
    ],
    "deletions": _turn(0, None)
    + _turn(1, "a0")
    + [
        ItemDeleted(event_id="d1", item_id="a0"),
        ItemDeleted(event_id="d2", item_id="a0"),
        ItemDeleted(event_id="d3", item_id="ghost"),
        ItemObserved(event_id="d4", item_id="ghost", role="user", previous_item_id="a1"),
        ItemObserved(event_id="d5", item_id="u2", role="user", previous_item_id="a1"),
        ItemDeleted(event_id="d6", item_id="u2"),
        UserTranscriptFinal(event_id="d7", item_id="u2", text="deleted words"),
        ItemObserved(event_id="d8", item_id="u3", role="user", previous_item_id="u2"),
        UserTranscriptFinal(event_id="d9", item_id="u3", text="after the deleted one"),
    ],
    "truncations": [
        *_turn(0, None),
        AssistantTranscriptTruncated(event_id="x1", item_id="a0", audio_end_ms=500),
        AssistantTranscriptTruncated(event_id="x2", item_id="a0", audio_end_ms=500),
        AssistantTranscriptTruncated(event_id="x3", item_id="a0", audio_end_ms=300, text="Hel"),
        AssistantTranscriptTruncated(event_id="x4", item_id="nope", audio_end_ms=1),
        ItemObserved(event_id="x5", item_id="a1", role="assistant", previous_item_id="a0", response_id="r9"),
        AssistantTranscriptDelta(event_id="x6", response_id="r9", item_id="a1", delta="Long answer"),
        AssistantTranscriptTruncated(event_id="x7", item_id="a1", audio_end_ms=200, text="Long"),
        AssistantTurnCompleted(event_id="x8", response_id="r9"),
    ],
    "insertion after an earlier item": _turn(0, None)
    + _turn(1, "a0")
    + [
        ItemObserved(event_id="n1", item_id="ins", role="user", previous_item_id="u0"),
        UserTranscriptFinal(event_id="n2", item_id="ins", text="inserted"),
    ],
    "unknown predecessor": [
        ItemObserved(event_id="p1", item_id="u5", role="user", previous_item_id="missing"),
        UserTranscriptFinal(event_id="p2", item_id="u5", text="stuck"),
        ItemObserved(event_id="p3", item_id="a5", role="assistant", response_id="r5"),
        AssistantTranscriptDelta(event_id="p4", response_id="r5", item_id="a5", delta="waiting"),
    ],
    "no previous_item_id at all": [
        ItemObserved(event_id="z1", item_id="u0", role="user"),
        UserTranscriptFinal(event_id="z2", item_id="u0", text="first"),
        ItemObserved(event_id="z3", item_id="u1", role="user"),
        UserTranscriptFinal(event_id="z4", item_id="u1", text="second"),
    ],
    "bad ids": [
        AssistantTranscriptDelta(response_id="r", item_id="a", delta="no id"),
        AssistantTextDelta(event_id=" ", response_id="r", item_id="a", delta="blank id"),
        ItemObserved(event_id="b1", item_id="", role="user"),
        AssistantTurnCompleted(event_id="b2", response_id=" "),
    ],
    "content before the item is observed": [
        AssistantTranscriptDelta(event_id="o1", response_id="r0", item_id="a0", previous_item_id=None, delta="Spo"),
        AssistantTextDelta(event_id="o2", response_id="r0", item_id="a0", content_index=1, delta="writ"),
        AssistantTranscriptFinalText(event_id="o3", item_id="a1", text="second item", lane="text", response_id="r0"),
        AssistantTranscriptDelta(event_id="o4", response_id="r0", item_id="a0", delta="ken"),
        AssistantTurnCompleted(event_id="o5", response_id="r0", usage=Usage(input=1, output=2)),
        AssistantTranscriptDelta(event_id="o6", response_id="r0", item_id="a9", delta="after the end"),
        AssistantTextDelta(event_id="o7", response_id="r0", item_id="a0", delta="settled"),
        AssistantTranscriptFinalText(event_id="o8", item_id="a0", text="settled"),
        FunctionCall(event_id="o9", item_id="a1", call_id="c", name="n"),
    ],
    "tool output alone": [
        FunctionCallOutput(event_id="q1", item_id="o1", call_id="c1", output="result", previous_item_id=None),
        FunctionCallOutput(event_id="q2", item_id="o1", call_id="c1", output="again"),
        UserContentFinal(event_id="q3", item_id="u1", text="next", previous_item_id="o1"),
    ],
    "edits inside a merged message": [
        ItemObserved(event_id="m1", item_id="a1", role="assistant", previous_item_id=None, response_id="r0"),
        AssistantTranscriptDelta(event_id="m2", response_id="r0", item_id="a1", delta="spoken one"),
        AssistantTranscriptDelta(event_id="m3", response_id="r0", item_id="a1", content_index=1, delta="spoken two"),
        ItemObserved(event_id="m4", item_id="a2", role="assistant", previous_item_id="a1", response_id="r0"),
        AssistantTranscriptDelta(event_id="m5", response_id="r0", item_id="a2", delta="later words"),
        ItemObserved(event_id="m6", item_id="a3", role="assistant", previous_item_id="a2", response_id="r0"),
        AssistantTextDelta(event_id="m7", response_id="r0", item_id="a3", delta="written"),
        AssistantTurnCompleted(event_id="m8", response_id="r0"),
        ItemDeleted(event_id="m9", item_id="a1"),
        AssistantTranscriptTruncated(event_id="m10", item_id="a2", audio_end_ms=70),
        AssistantTranscriptTruncated(event_id="m11", item_id="a2", audio_end_ms=70, text="later"),
        ItemDeleted(event_id="m12", item_id="a3"),
        AssistantTranscriptTruncated(event_id="m13", item_id="a3", audio_end_ms=1),
        ItemDeleted(event_id="m14", item_id="a2"),
    ],
    "late parts of a user message": [
        ItemObserved(event_id="w1", item_id="u1", role="user", previous_item_id=None),
        UserContentFinal(event_id="w2", item_id="u1", text="first"),
        ItemObserved(event_id="w3", item_id="u2", role="user", previous_item_id="u1"),
        UserContentFinal(event_id="w4", item_id="u2", text="other message"),
        UserContentFinal(event_id="w5", item_id="u1", content_index=2, text="third"),
        UserTranscriptFinal(event_id="w6", item_id="u1", content_index=1, text="second"),
        UserContentFinal(event_id="w7", item_id="u1", content_index=2, text="third again"),
        ItemDeleted(event_id="w8", item_id="u2"),
    ],
    "resolving mixed pending items": [
        ItemObserved(event_id="v1", item_id="u1", role="user", previous_item_id="gone"),
        ItemObserved(event_id="v2", item_id="a1", role="assistant", previous_item_id="u1", response_id="r1"),
        AssistantTranscriptDelta(event_id="v3", response_id="r1", item_id="a1", delta="half"),
        FunctionCallOutput(event_id="v4", item_id="o1", call_id="c9", output="x", previous_item_id="a1"),
        ItemObserved(event_id="v5", item_id="a2", role="assistant", previous_item_id="o1", response_id="r2"),
    ],
    "a pending head item deleted": [
        ItemObserved(event_id="h1", item_id="u0", role="user", previous_item_id=None),
        ItemDeleted(event_id="h2", item_id="u0"),
        ItemObserved(event_id="h3", item_id="u1", role="user", previous_item_id="u0"),
        UserTranscriptFinal(event_id="h4", item_id="u1", text="after the deleted head"),
        ItemObserved(event_id="h5", item_id="u2", role="user", previous_item_id="u1"),
        ItemObserved(event_id="h6", item_id="u3", role="user", previous_item_id="u2"),
        UserTranscriptFinal(event_id="h7", item_id="u3", text="waits for u2"),
        ItemDeleted(event_id="h8", item_id="u2"),
        ItemDeleted(event_id="h9", item_id="u7"),
        ItemObserved(event_id="h10", item_id="u8", role="user"),
    ],
    # A call's only session.created delivered after its first events: read as
    # a new connection, it closes the reply by rule; the reply's own end then
    # brings its text, which replaces what was placed.
    "connection announced late": [
        ItemObserved(event_id="l1", item_id="u1", role="user", previous_item_id=None),
        UserContentFinal(event_id="l2", item_id="u1", text="Hi"),
        ResponseStarted(event_id="l2r", response_id="r1"),
        ItemObserved(event_id="l3", item_id="a1", role="assistant", previous_item_id="u1"),
        SessionConfigured(event_id="l0", new_connection=True),
        AssistantTranscriptDelta(event_id="l4", response_id="r1", item_id="a1", delta="Hello "),
        AssistantTranscriptFinalText(event_id="l5", item_id="a1", text="Hello there.", response_id="r1"),
        AssistantTurnCompleted(event_id="l6", response_id="r1", status="completed"),
    ],
    "openai weather call": _from_raw(weather_call()),
    "openai sample conversation": _from_raw(sample_conversation()),
}
