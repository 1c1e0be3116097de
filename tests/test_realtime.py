"""Realtime ingestion: hand-written GA traces, one rule per test, on every backend."""

from __future__ import annotations

import json
import random
import sqlite3

import msgspec
import pytest

from engine import InvalidArgument, Message, Transcript, Transcripts
from engine.realtime import (
    AssistantTranscriptDelta,
    AssistantTranscriptFinalText,
    AssistantTranscriptTruncated,
    AssistantTurnCompleted,
    FunctionCall,
    FunctionCallOutput,
    ItemObserved,
    RealtimeState,
    UserContentFinal,
    UserImage,
    UserTranscriptFinal,
    reduce,
)
from engine.testing.traces import (
    assistant_audio,
    ev,
    response_done,
    sample_conversation,
    transcription,
    user_audio,
    weather_call,
)
from tests.conftest import StoreFactory


def ingest_all(store: Transcripts, sid: str, events: list[dict[str, object]]) -> list[str]:
    return [store.ingest(sid, event, provider="openai").status for event in events]


def transcript(store: Transcripts, sid: str) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in store.get(sid).messages]


def basic_turn() -> list[dict[str, object]]:
    return [
        *user_audio("u1", None),
        transcription("u1", "Hi."),
        *assistant_audio("r1", "a1", "u1", ["Hel", "lo ", "there."]),
    ]


def test_a_turn_becomes_two_messages(store: Transcripts) -> None:
    sid = store.create()
    statuses = ingest_all(store, sid, basic_turn())
    assert "rejected" not in statuses
    assert transcript(store, sid) == [("user", "Hi."), ("assistant", "Hello there.")]
    user, assistant = store.get(sid).messages
    assert user.provider_item_id == "u1" and assistant.provider_item_id == "a1"
    assert isinstance(assistant.blocks[0], Transcript)
    assert store.get(sid).usage.input == 100  # usage of the response, once
    assert store.pending(sid).items == () and store.pending(sid).responses == ()


def test_every_event_twice_changes_nothing_and_stores_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    trace = basic_turn()
    ingest_all(store, sid, trace)
    version, history = store.get(sid).version, store.history(sid)
    again = ingest_all(store, sid, trace)
    assert set(again) <= {"duplicate", "ignored"}
    assert store.get(sid).version == version and store.history(sid) == history
    # Dedupe survives a restart: the state is rebuilt from the log.
    reopened = stores.open()
    assert set(ingest_all(reopened, sid, trace)) <= {"duplicate", "ignored"}
    assert reopened.get(sid).version == version


def test_reconnect_replay_of_a_suffix(store: Transcripts) -> None:
    sid = store.create()
    trace = [
        *basic_turn(),
        *user_audio("u2", "a1"),
        transcription("u2", "Bye."),
        *assistant_audio("r2", "a2", "u2", ["Good", "bye."]),
    ]
    cut = len(trace) // 2
    ingest_all(store, sid, trace[:cut])
    ingest_all(store, sid, trace[cut - 5 :])  # the reconnect replays from a little earlier
    assert transcript(store, sid) == [
        ("user", "Hi."),
        ("assistant", "Hello there."),
        ("user", "Bye."),
        ("assistant", "Goodbye."),
    ]


def test_order_follows_previous_item_id_not_arrival(store: Transcripts) -> None:
    sid = store.create()
    second = [*user_audio("u2", "a1"), transcription("u2", "Second question.")]
    first = basic_turn()
    ingest_all(store, sid, second)  # u2 arrives first but says it follows a1
    assert store.get(sid).messages == [] and store.pending(sid).items[0][0] == "u2"
    ingest_all(store, sid, first)
    assert [t for _, t in transcript(store, sid)] == ["Hi.", "Hello there.", "Second question."]


def test_late_user_transcription_lands_in_its_place(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, [*user_audio("u1", None), *assistant_audio("r1", "a1", "u1", ["Sure."])])
    assert transcript(store, sid) == [("user", ""), ("assistant", "Sure.")]  # held in place, without text
    outcome = store.ingest(sid, transcription("u1", "Can you help?"), provider="openai")
    assert outcome.status == "materialised"
    assert transcript(store, sid) == [("user", "Can you help?"), ("assistant", "Sure.")]
    assert store.revisions(sid)[-1].reason.kind == "late_transcription"


def test_untranscribed_audio_stays_a_user_message_without_text(store: Transcripts) -> None:
    sid = store.create()
    failed = ev(
        "conversation.item.input_audio_transcription.failed",
        item_id="u1",
        content_index=0,
        error={"message": "no speech"},
    )
    ingest_all(store, sid, [*user_audio("u1", None), failed])
    assert transcript(store, sid) == [("user", "")]


def test_deltas_accumulate_and_done_replaces_them(store: Transcripts) -> None:
    sid = store.create()
    trace = [*user_audio("u1", None), transcription("u1", "Hi.")]
    events = assistant_audio("r1", "a1", "u1", ["Hel", "lo"])
    for event in events:  # the done value wins over the deltas
        if event["type"] == "response.output_audio_transcript.done":
            event["transcript"] = "Hello!"
    ingest_all(
        store,
        sid,
        trace
        + [
            e
            for e in events
            if e["type"] != "response.output_item.done"
            and e["type"] != "conversation.item.done"
            and e["type"] != "response.done"
        ]
        + [
            response_done(
                "r1",
                "completed",
                [
                    {
                        "id": "a1",
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_audio", "transcript": ""}],
                    }
                ],
                (1, 1),
            )
        ],
    )
    assert transcript(store, sid)[-1] == ("assistant", "Hello!")


def test_an_empty_payload_never_erases_known_text() -> None:
    state = RealtimeState()
    for event in (
        ItemObserved(item_id="a1", role="assistant", previous_item_id=None, response_id="r1"),
        AssistantTranscriptDelta(event_id="d1", response_id="r1", item_id="a1", delta="kept"),
        AssistantTranscriptFinalText(item_id="a1", text="", response_id="r1"),
    ):
        state, _ = reduce(state, event)
    state, outcome = reduce(state, AssistantTurnCompleted(response_id="r1"))
    assert [m.text for m in outcome.messages] == ["kept"]


def test_blank_or_missing_delta_ids_are_rejected_not_deduplicated_away() -> None:
    state = RealtimeState()
    for event in (
        AssistantTranscriptDelta(response_id="r1", item_id="a1", delta="x"),
        AssistantTranscriptDelta(event_id="  ", response_id="r1", item_id="a1", delta="x"),
        UserTranscriptFinal(item_id=" ", text="x"),
    ):
        new, outcome = reduce(state, event)
        assert outcome.status == "rejected" and outcome.reason
        assert list(new.items.values()) == list(state.items.values())


def test_function_call_and_output_become_tool_use_and_result(store: Transcripts) -> None:
    sid = store.create()
    assert "rejected" not in ingest_all(store, sid, weather_call())
    messages = store.get(sid).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "assistant"]
    assert messages[1].tool_uses[0].name == "weather" and messages[1].tool_uses[0].id == "call_1"
    assert messages[2].blocks[0].tool_use_id == "call_1"  # type: ignore[union-attr]
    assert store.get(sid).usage.input == 150  # two responses, each counted once


def test_items_of_one_response_merge_into_one_message(store: Transcripts) -> None:
    sid = store.create()
    text = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Let me check."}],
    }
    call = {
        "id": "fc1",
        "type": "function_call",
        "call_id": "c1",
        "name": "lookup",
        "arguments": "{}",
        "status": "completed",
    }
    trace = [
        *user_audio("u1", None),
        transcription("u1", "Check it."),
        ev("response.output_item.added", response_id="r1", output_index=0, item=text),
        ev("conversation.item.added", previous_item_id="u1", item=text),
        ev("response.output_item.added", response_id="r1", output_index=1, item=call),
        ev("conversation.item.added", previous_item_id="a1", item=call),
        response_done("r1", "completed", [text, call], (5, 5)),
    ]
    ingest_all(store, sid, trace)
    messages = store.get(sid).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].text == "Let me check." and messages[1].tool_uses[0].id == "c1"


def test_cancelled_response_keeps_partial_output_marked_incomplete(store: Transcripts) -> None:
    sid = store.create()
    trace = [
        *user_audio("u1", None),
        transcription("u1", "Tell me a story."),
        *assistant_audio("r1", "a1", "u1", ["Once ", "upon"], status="cancelled"),
    ]
    ingest_all(store, sid, trace)
    reply = store.get(sid).messages[-1]
    assert reply.text == "Once upon" and reply.incomplete


def test_cancelled_response_without_items_adds_nothing(store: Transcripts) -> None:
    sid = store.create()
    trace = [
        *user_audio("u1", None),
        transcription("u1", "Hello?"),
        ev("response.created", response={"id": "r1"}),
        response_done("r1", "cancelled", [], (3, 0)),
        ev("response.done", response={"id": "r2", "status": "failed", "output": []}),
    ]
    ingest_all(store, sid, trace)
    assert transcript(store, sid) == [("user", "Hello?")]  # the user item that triggered it stays


def test_barge_in_truncation_records_the_point_and_keeps_the_text(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, basic_turn())
    outcome = store.ingest(
        sid, ev("conversation.item.truncated", item_id="a1", content_index=0, audio_end_ms=640), provider="openai"
    )
    assert outcome.status == "materialised"
    block = store.get(sid).messages[-1].blocks[0]
    assert isinstance(block, Transcript) and block.text == "Hello there." and block.truncated_at_ms == 640
    assert store.revisions(sid)[-1].reason.kind == "truncation"


def test_truncation_with_heard_text_is_an_audited_rewrite(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, basic_turn())
    before = store.get(sid).revision
    store.ingest(sid, AssistantTranscriptTruncated(item_id="a1", audio_end_ms=300, text="Hello"))
    assert store.get(sid).messages[-1].text == "Hello"
    last = store.revisions(sid)[-1]
    assert last.reason.kind == "truncation" and last.parent_revision == before
    assert store.revision_messages(sid, before)[-1].text == "Hello there."  # nothing silently dropped


def test_deleted_item_becomes_a_rewrite_and_never_comes_back(store: Transcripts) -> None:
    sid = store.create()
    trace = basic_turn()
    ingest_all(store, sid, trace)
    deleted = ev("conversation.item.deleted", item_id="a1")
    assert store.ingest(sid, deleted, provider="openai").status == "materialised"
    assert transcript(store, sid) == [("user", "Hi.")]
    assert store.revisions(sid)[-1].reason.kind == "provider_deleted"
    redelivered = [dict(e, event_id=e["event_id"] + "-again") for e in trace]
    ingest_all(store, sid, redelivered)
    assert transcript(store, sid) == [("user", "Hi.")]


def test_unknown_predecessor_is_pending_until_resolved(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, [*user_audio("u9", "never_seen"), transcription("u9", "Hello?")])
    pending = store.pending(sid)
    assert pending.items == (("u9", "unknown predecessor never_seen"),)
    outcome = store.resolve_pending(sid, "place", actor="ops")
    assert outcome.status == "materialised" and transcript(store, sid) == [("user", "Hello?")]
    assert store.history(sid)[-2].kind == "realtime_pending_resolved"
    assert store.pending(sid).items == ()


def test_in_flight_responses_are_reported(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, [*user_audio("u1", None), *assistant_audio("r1", "a1", "u1", ["x"])[:4]])
    assert store.pending(sid).responses == ("r1",)
    store.resolve_pending(sid, "drop")
    assert store.pending(sid).responses == () and store.pending(sid).items == ()


def test_bad_input_is_rejected_or_ignored_and_changes_nothing(store: Transcripts) -> None:
    sid = store.create()
    version = store.get(sid).version
    cases = [
        (b"{not json", "rejected"),
        ("[]", "rejected"),
        ({"type": "response.output_audio_transcript.delta", "event_id": "e1"}, "rejected"),
        (
            {
                "type": "response.output_audio_transcript.delta",
                "event_id": "e2",
                "response_id": "r",
                "item_id": "i",
                "delta": 5,
            },
            "rejected",
        ),
        ({"type": "conversation.item.added", "event_id": "e3", "item": {"id": "x"}}, "rejected"),
        ({"type": "response.done", "event_id": "e4", "response": {"id": "r", "status": "weird"}}, "rejected"),
        (
            {
                "type": "response.done",
                "event_id": "e5",
                "response": {"id": "r", "status": "completed", "usage": {"input_tokens": -4}},
            },
            "rejected",
        ),
        (b"\xff\xfe", "rejected"),
        ("x" * (1 << 21), "rejected"),
        (12, "rejected"),
        ({"type": "rate_limits.updated", "event_id": "e6", "rate_limits": []}, "ignored"),
        ({"type": "some.future.event", "event_id": "e7"}, "ignored"),
        (
            {
                "type": "conversation.item.input_audio_transcription.segment",
                "event_id": "e8",
                "item_id": "u",
                "text": "h",
            },
            "ignored",
        ),
        ({"type": "conversation.item.input_audio_transcription.delta", "event_id": "e9", "item_id": "u"}, "rejected"),
    ]
    for raw, expected in cases:
        outcome = store.ingest(sid, raw, provider="openai")
        assert outcome.status == expected and outcome.reason, raw
    with pytest.raises(InvalidArgument, match="event 1 is a dict, not a canonical realtime event"):
        store.ingest_many(sid, [AssistantTurnCompleted(event_id="ok", response_id="r"), {"type": "x"}])
    assert store.get(sid).version == version  # nothing of the call was ingested


def test_resolving_with_nothing_pending_stores_nothing(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, [*user_audio("u1", None), transcription("u1", "Hi.")])
    version = store.get(sid).version
    outcome = store.resolve_pending(sid, "place")
    assert (outcome.status, outcome.version) == ("ignored", version)
    assert store.get(sid).version == version


def test_a_response_closed_by_rule_still_counts_its_usage_and_gets_its_text_when_it_ends(store: Transcripts) -> None:
    sid = store.create()
    reply = assistant_audio("r1", "a1", "u1", ["Your ", "pizza ", "is ", "on ", "its ", "way."])
    ingest_all(store, sid, [*user_audio("u1", None), transcription("u1", "Order?"), *reply[:5]])
    store.resolve_pending(sid, "place")  # the call looked over: the reply is placed as it was so far
    assert transcript(store, sid) == [("user", "Order?"), ("assistant", "Your pizza ")]
    assert store.get(sid).messages[1].incomplete
    outcomes = store.ingest_many(sid, reply[5:], provider="openai")
    # The rest was in flight (the call was not over): the provider's end
    # brings the whole reply, which replaces what was placed, as a rewrite.
    assert outcomes[-1].status == "materialised" and "closed by rule" in (outcomes[-1].reason or "")
    assert transcript(store, sid) == [("user", "Order?"), ("assistant", "Your pizza is on its way.")]
    assert not store.get(sid).messages[1].incomplete  # the response completed
    assert store.revisions(sid)[-1].reason.kind == "late_content"
    assert store.get(sid).usage.input == 100  # counted once, when the provider's end came
    assert store.ingest(sid, reply[-1], provider="openai").status == "duplicate"
    assert store.get(sid).usage.input == 100


def test_beta_event_names(store: Transcripts) -> None:
    sid = store.create()
    trace = [
        ev(
            "conversation.item.created",
            previous_item_id=None,
            item={"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ),
        ev(
            "conversation.item.created",
            previous_item_id="u1",
            item={"id": "a1", "type": "message", "role": "assistant", "status": "in_progress", "content": []},
        ),
        ev("response.audio_transcript.delta", response_id="r1", item_id="a1", content_index=0, delta="Hey"),
        ev("response.audio_transcript.done", response_id="r1", item_id="a1", content_index=0, transcript="Hey!"),
        ev("response.text.delta", response_id="r1", item_id="a1", content_index=1, delta="(wave)"),
        ev("response.text.done", response_id="r1", item_id="a1", content_index=1, text="(waves)"),
        ev("response.done", response={"id": "r1", "status": "completed", "output": []}),
    ]
    assert "rejected" not in ingest_all(store, sid, trace)
    assert transcript(store, sid) == [("user", "Hi"), ("assistant", "Hey!\n(waves)")]


def test_ingest_many_is_one_transaction(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    trace = basic_turn()
    backend, commits = store._repository.backend, []
    original = backend.append
    backend.append = lambda *args, **kwargs: commits.append(args) or original(*args, **kwargs)  # type: ignore[method-assign]
    outcomes = store.ingest_many(sid, trace, provider="openai")
    backend.append = original  # type: ignore[method-assign]
    assert len(outcomes) == len(trace) and outcomes[-1].version == store.get(sid).version
    assert len(commits) == 1  # every event of the call was stored by one commit
    assert len(commits[0][1]) == store.get(sid).version - 1
    assert transcript(stores.open(), sid) == [("user", "Hi."), ("assistant", "Hello there.")]


def test_a_fork_starts_with_empty_ingestion_state(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(store, sid, basic_turn()[:-2])  # the response is still in flight
    assert store.pending(sid).responses == ("r1",)
    child = store.fork(sid)
    assert store.pending(child).items == () and store.pending(child).responses == ()
    ingest_all(store, child, basic_turn())  # the child sees these as new events
    assert transcript(store, child)[-1] == ("assistant", "Hello there.")


def test_shuffled_causal_delivery_gives_the_same_transcript(store: Transcripts) -> None:
    reference = store.create()
    trace = sample_conversation()
    ingest_all(store, reference, trace)
    expected = transcript(store, reference)
    rng = random.Random(7)
    for _ in range(5):
        sid = store.create()
        per_turn = trace[:]
        # user transcriptions may arrive any time after their item
        moved = [e for e in per_turn if e["type"].endswith("transcription.completed")]
        rest = [e for e in per_turn if e not in moved]
        for event in moved:
            rest.insert(rng.randint(len(rest) - 3, len(rest)), event)
        ingest_all(store, sid, rest + rest[: rng.randint(0, len(rest))])  # and some arrive twice
        assert transcript(store, sid) == expected


def test_duplicates_add_no_stored_bytes(stores: StoreFactory) -> None:
    trace = basic_turn()
    if stores.kind != "sqlite":
        store = stores.open()
        sid = store.create()
        ingest_all(store, sid, trace)
        size = sum(len(r.state) for r in store._repository.backend.read(sid))
        ingest_all(store, sid, trace)
        assert sum(len(r.state) for r in store._repository.backend.read(sid)) == size
        return
    store = stores.open()
    sid = store.create()
    ingest_all(store, sid, trace)
    path = stores.target
    assert path is not None

    def stored() -> tuple[int, int]:
        with sqlite3.connect(path) as raw:
            return raw.execute(f"SELECT count(*), sum(length(state)) FROM {stores.prefix}_events").fetchone()

    before = stored()
    ingest_all(store, sid, trace)
    assert stored() == before


def test_canonical_events_round_trip_through_the_store(store: Transcripts) -> None:
    sid = store.create()
    store.ingest(sid, ItemObserved(event_id="1", item_id="u1", role="user", previous_item_id=None))
    store.ingest(sid, UserTranscriptFinal(event_id="2", item_id="u1", text="typed by a test"))
    recorded = [h.event for h in store.history(sid) if h.kind == "realtime_recorded"]
    assert [msgspec.structs.asdict(r.event)["event_id"] for r in recorded] == ["1", "2"]
    assert store.get(sid).messages == [
        Message.user(Transcript(text="typed by a test"), provider_item_id="u1", id=store.get(sid).messages[0].id)
    ]


def test_redelivery_long_after_settling_stores_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    trace: list[dict[str, object]] = []
    previous = None
    for turn in range(12):  # enough events that settled items' event ids are forgotten
        trace += [
            *user_audio(f"u{turn}", previous),
            transcription(f"u{turn}", f"question {turn}"),
            *assistant_audio(f"r{turn}", f"a{turn}", f"u{turn}", ["word "] * 20),
        ]
        previous = f"a{turn}"
    ingest_all(store, sid, trace)
    version, history = store.get(sid).version, store.history(sid)
    state = store._repository.realtime_state(store.get(sid))
    assert len(state.event_ids) < len(trace) / 2  # bounded: settled items' delta ids are gone
    again = ingest_all(stores.open(), sid, trace)
    assert set(again) <= {"duplicate", "ignored"}
    assert store.get(sid).version == version and store.history(sid) == history


def test_reduce_never_changes_its_input() -> None:
    from engine.realtime.providers.openai import translate

    translated = [translate(raw) for raw in basic_turn()]
    canonical = [item for events in translated if isinstance(events, list) for item in events]
    states = [RealtimeState()]
    frozen = []
    for event in canonical:
        frozen.append((dict(states[-1].items.live), dict(states[-1].items.settled), states[-1].tail))
        new, _ = reduce(states[-1], event)
        states.append(new)
    for state, (live, settled, tail) in zip(states, frozen, strict=False):
        assert (state.items.live, state.items.settled, state.tail) == (live, settled, tail)
    assert len(states[-1].items.settled) == 2


def test_a_user_item_with_several_content_parts_keeps_them_all(store: Transcripts) -> None:
    sid = store.create()
    item = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Look at"}, {"type": "input_text", "text": "this."}],
    }
    assert (
        store.ingest(sid, ev("conversation.item.added", previous_item_id=None, item=item), provider="openai").status
        == "materialised"
    )
    message = store.get(sid).messages[0]
    assert [block.text for block in message.blocks] == ["Look at", "this."]  # type: ignore[union-attr]


def test_cached_state_is_bounded_by_the_cache_size(stores: StoreFactory) -> None:
    store = stores.open(cache_size=2)
    sessions = [store.create() for _ in range(4)]
    for sid in sessions:
        ingest_all(store, sid, basic_turn())
    assert len(store._repository.cache) <= 2 and len(store._repository.realtime) <= 2
    trace = basic_turn()
    ingest_all(store, sessions[0], trace)  # rebuilt from the log after eviction
    assert set(ingest_all(store, sessions[0], trace)) <= {"duplicate", "ignored"}
    assert transcript(store, sessions[0])[-1] == ("assistant", "Hello there.")


def test_is_duplicate_agrees_with_apply() -> None:
    from engine.realtime import ItemDeleted
    from engine.realtime.reducer import apply, is_duplicate

    state = RealtimeState()
    turn = [
        ItemObserved(event_id="1", item_id="u1", role="user", previous_item_id=None),
        UserTranscriptFinal(event_id="2", item_id="u1", text="hi"),
        ItemObserved(event_id="3", item_id="a1", role="assistant", previous_item_id="u1", response_id="r1"),
        AssistantTranscriptDelta(event_id="4", response_id="r1", item_id="a1", delta="hello"),
        AssistantTurnCompleted(event_id="5", response_id="r1"),
        ItemObserved(event_id="6", item_id="u2", role="user", previous_item_id="a1"),
    ]
    for event in turn:
        assert not is_duplicate(state, event)
        apply(state, event)
        assert is_duplicate(state, event)  # the same event again
    checks = {
        UserTranscriptFinal(event_id="n1", item_id="u1", text="hi again"): True,  # settled item, nothing new
        AssistantTurnCompleted(event_id="n2", response_id="r1"): True,  # the response already ended
        AssistantTranscriptDelta(event_id="n3", response_id="r1", item_id="a9", delta="x"): True,
        ItemDeleted(event_id="n4", item_id="a1"): False,  # a real change
        UserTranscriptFinal(event_id="n5", item_id="u2", text="new"): False,  # a pending item
        AssistantTurnCompleted(event_id="n6", response_id="r2"): False,  # a response never seen
    }
    for event, expected in checks.items():
        assert is_duplicate(state, event) is expected, event
        assert (reduce(state, event)[1].status == "duplicate") is expected, event


# -- found by adversarial testing ----------------------------------------------------------


def test_a_malformed_canonical_event_is_refused_not_stored(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    version = store.get(sid).version
    bad = [
        AssistantTurnCompleted(event_id="g1", response_id="r1", status="weird"),  # type: ignore[arg-type]
        ItemObserved(event_id=7, item_id="x", role="user", previous_item_id=None),  # type: ignore[arg-type]
        AssistantTranscriptDelta(event_id="g2", response_id="r", item_id="x", delta=None),  # type: ignore[arg-type]
        ItemObserved(event_id="g3", item_id="x", role="tool_results"),  # type: ignore[arg-type]
        UserTranscriptFinal(event_id="g4", item_id="u", text="a\udc00b"),
        AssistantTranscriptTruncated(event_id="g5", item_id="a", audio_end_ms=-1),
    ]
    assert [outcome.status for outcome in store.ingest_many(sid, bad)] == ["rejected"] * len(bad)
    assert stores.open().get(sid).version == version  # and the store still loads


def test_raw_events_that_cannot_be_kept_exactly_are_refused(store: Transcripts) -> None:
    sid = store.create()
    item = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "a\udc00b"}]}
    huge = {
        "type": "response.output_audio_transcript.delta",
        "event_id": "d1",
        "response_id": "r1",
        "item_id": "a1",
        "content_index": 0,
        "delta": "x" * (2 << 20),
    }
    system_image = {
        "id": "s1",
        "type": "message",
        "role": "system",
        "content": [
            {"type": "input_text", "text": "Be brief"},
            {"type": "input_image", "image_url": "https://x/y.png"},
        ],
    }
    blank_output = {"id": "", "type": "message", "role": "assistant", "status": "completed", "content": []}
    for raw in (
        ev("conversation.item.added", previous_item_id=None, item=item),  # not valid Unicode
        huge,  # over the size limit as a dict too
        ev("conversation.item.added", previous_item_id=None, item=system_image),  # a system message holds text
        response_done("r9", "completed", [blank_output], (1, 1)),  # one blank id refuses the whole event
        ev("input_audio_buffer.committed", item_id="\x00unknown", previous_item_id=None),
        ev("conversation.item.truncated", item_id="a1", content_index=-1, audio_end_ms=5),
    ):
        outcome = store.ingest(sid, raw, provider="openai")
        assert outcome.status == "rejected" and outcome.reason, raw
    assert store.get(sid).version == 1


def test_multi_part_event_ids_never_collide_with_a_providers_own(store: Transcripts) -> None:
    sid = store.create()
    typed = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Please cancel my order"}, {"type": "input_text", "text": "42"}],
    }
    store.ingest_many(
        sid,
        [
            {"type": "input_audio_buffer.committed", "event_id": "evt#0", "item_id": "u0", "previous_item_id": None},
            {"type": "conversation.item.added", "event_id": "evt", "previous_item_id": "u0", "item": typed},
        ],
        provider="openai",
    )
    assert transcript(store, sid)[-1] == ("user", "Please cancel my order\n42")


def test_items_the_client_writes_whole_never_block(store: Transcripts) -> None:
    sid = store.create()
    call = {
        "id": "fc1",
        "type": "function_call",
        "status": "completed",
        "call_id": "c1",
        "name": "lookup",
        "arguments": "{}",
    }
    output = {"id": "fo1", "type": "function_call_output", "call_id": "c1", "output": "42"}
    empty_system = {"id": "s1", "type": "message", "role": "system", "content": []}
    note = {
        "id": "n1",
        "type": "message",
        "role": "assistant",
        "status": "incomplete",
        "content": [{"type": "output_text", "text": "(earlier)"}],
    }
    ingest_all(
        store,
        sid,
        [
            ev("conversation.item.added", previous_item_id=None, item=call),
            ev("conversation.item.added", previous_item_id="fc1", item=output),
            ev("conversation.item.added", previous_item_id="fo1", item=empty_system),
            ev("conversation.item.added", previous_item_id="s1", item=note),
            *user_audio("u1", "n1"),
            transcription("u1", "And now?"),
        ],
    )
    assert [(m.role, m.text) for m in store.get(sid).messages] == [
        ("assistant", ""),
        ("tool_results", ""),
        ("system", ""),
        ("assistant", "(earlier)"),
        ("user", "And now?"),
    ]
    assert store.get(sid).messages[0].tool_uses[0].name == "lookup"
    assert store.pending(sid).items == ()


def test_an_old_truncation_replayed_long_after_does_not_move_the_cut(store: Transcripts) -> None:
    sid = store.create()
    first = ev("conversation.item.truncated", item_id="a0", content_index=0, audio_end_ms=900)
    second = ev("conversation.item.truncated", item_id="a0", content_index=0, audio_end_ms=400)
    events = [
        *user_audio("u0", None),
        transcription("u0", "Go."),
        *assistant_audio("r0", "a0", "u0", ["long ", "answer"]),
        first,
        second,
    ]
    previous = "a0"
    for turn in range(1, 40):  # enough accepted events that settled items' ids are forgotten
        events += [
            *user_audio(f"u{turn}", previous),
            transcription(f"u{turn}", "More."),
            *assistant_audio(f"r{turn}", f"a{turn}", f"u{turn}", ["ok"]),
        ]
        previous = f"a{turn}"
    ingest_all(store, sid, events)
    version = store.get(sid).version
    assert store.ingest(sid, first, provider="openai").status == "duplicate"
    assert store.get(sid).version == version
    assert store.get(sid).messages[1].blocks[0].truncated_at_ms == 400


def test_a_cycle_of_predecessors_is_broken_when_a_later_response_ends(store: Transcripts) -> None:
    sid = store.create()
    ingest_all(
        store,
        sid,
        [
            ev("input_audio_buffer.committed", item_id="p", previous_item_id="q"),
            ev("input_audio_buffer.committed", item_id="q", previous_item_id="p"),
            transcription("p", "first"),
            transcription("q", "second"),
            *assistant_audio("r1", "a1", "q", ["Hello"]),
        ],
    )
    assert transcript(store, sid) == [("user", "first"), ("user", "second"), ("assistant", "Hello")]
    assert store.pending(sid).items == ()


def test_a_typed_message_that_repeats_an_old_one_on_a_new_connection_is_kept(store: Transcripts) -> None:
    sid = store.create()
    yes = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "yes"}]}
    ingest_all(
        store,
        sid,
        [
            ev("conversation.item.added", previous_item_id=None, item={**yes, "id": "u1"}),
            *assistant_audio("r1", "a1", "u1", ["Shall ", "I ", "book ", "it?"]),
            ev("session.created", session={"id": "sess_2"}),
            ev("conversation.item.added", previous_item_id=None, item={**yes, "id": "n1"}),  # typed again, not re-sent
            *assistant_audio("r2", "a2", "n1", ["Booked."]),
        ],
    )
    assert transcript(store, sid) == [
        ("user", "yes"),
        ("assistant", "Shall I book it?"),
        ("user", "yes"),
        ("assistant", "Booked."),
    ]


def test_a_long_run_of_waiting_user_items_stays_linear(store: Transcripts) -> None:
    sid = store.create()
    events: list[dict[str, object]] = []
    previous = None
    for turn in range(300):
        events += user_audio(f"u{turn}", previous)
        previous = f"u{turn}"
    events.append(transcription("u0", "first words"))
    outcomes = store.ingest_many(sid, events, provider="openai")
    assert "rejected" not in {outcome.status for outcome in outcomes}
    assert len(store.pending(sid).items) == 299  # waiting for their text or a response: none came
    assert transcript(store, sid) == [("user", "first words")]


def test_one_event_gets_one_status_as_a_dict_as_json_text_and_as_bytes(store: Transcripts) -> None:
    """Found by property_tests/test_public_fuzz.py: a string that is not valid
    Unicode in a field the decoder skips, or in the type of an event it does
    not know, was refused as a dict but accepted (or ignored) as JSON text or
    bytes; an unknown event over 1 MiB was refused as text but ignored as a dict."""
    sid = store.create()
    version = store.get(sid).version
    cases = [
        {"type": "conversation.item.deleted", "event_id": "d1", "item_id": "u9", "obfuscation": "ab\ud800"},
        {"type": "some.future.event\udfff", "event_id": "d2"},
        {"type": "rate_limits.updated", "event_id": "d3", "rate_limits": [], "note": "\udc80"},
        {"type": "rate_limits.updated", "event_id": "d4", "padding": "x" * (1 << 20)},
    ]
    for event in cases:
        text = json.dumps(event, ensure_ascii=False)
        forms = [event, text, text.encode("utf-8", "surrogatepass"), json.dumps(event).encode()]
        outcomes = [store.ingest(sid, form, provider="openai") for form in forms]
        assert [outcome.status for outcome in outcomes] == ["rejected"] * 4, (event["event_id"], outcomes)
        assert all(outcome.reason and outcome.reason.encode() for outcome in outcomes)  # a reason always prints
    assert (
        store.ingest(sid, b'{"type":"rate_limits.updated","event_id":"d5","x":"\xff"}', provider="openai").status
        == "rejected"
    )
    assert store.get(sid).version == version


def _seeded(item_id: str, previous: str | None, **item: object) -> dict[str, object]:
    return ev("conversation.item.added", previous_item_id=previous, item={"id": item_id, **item})


CALL = {"type": "function_call", "status": "completed", "call_id": "c1", "name": "weather", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "rain"}
SAID = {
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Let me check."}],
}


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_items_the_client_writes_stay_separate_messages_however_they_arrive(store: Transcripts, order: str) -> None:
    """Found by property_tests/test_public_fuzz.py: a client's function call
    and its output (or an assistant message and the output after it) that
    arrived out of order were joined into one assistant message, which cannot
    hold a tool result: ingest raised InvalidMessage. Two assistant messages
    the client wrote were joined into one."""
    sid = store.create()
    events = [
        _seeded("u1", None, type="message", role="user", content=[{"type": "input_text", "text": "Weather?"}]),
        _seeded("a1", "u1", **SAID),
        _seeded("f1", "a1", **CALL),
        _seeded("o1", "f1", **OUTPUT),
        _seeded("a2", "o1", **{**SAID, "content": [{"type": "output_text", "text": "Rain."}]}),
        _seeded("a3", "a2", **{**SAID, "content": [{"type": "output_text", "text": "Anything else?"}]}),
    ]
    outcomes = store.ingest_many(sid, events if order == "in order" else events[::-1], provider="openai")
    assert "rejected" not in {outcome.status for outcome in outcomes}
    assert [(m.role, [type(b).__name__ for b in m.blocks]) for m in store.get(sid).messages] == [
        ("user", ["Text"]),
        ("assistant", ["Text"]),
        ("assistant", ["ToolUse"]),
        ("tool_results", ["ToolResult"]),
        ("assistant", ["Text"]),
        ("assistant", ["Text"]),
    ]


def test_a_chain_cut_by_a_lost_event_still_places_the_client_s_tool_exchange(store: Transcripts) -> None:
    """The same join, reached in order: the first announcement is lost, so the
    items wait until a response ends, then go to the end together."""
    sid = store.create()
    store.ingest_many(
        sid,
        [
            _seeded("a1", "lost", **SAID),
            _seeded("f1", "a1", **CALL),
            _seeded("o1", "f1", **OUTPUT),
            *assistant_audio("r1", "a2", "o1", ["Rain."]),
        ],
        provider="openai",
    )
    assert [m.role for m in store.get(sid).messages] == ["assistant", "assistant", "tool_results", "assistant"]


def test_canonical_content_an_item_cannot_hold_is_rejected_not_raised(store: Transcripts) -> None:
    """Found by property_tests/test_public_fuzz.py: these raised InvalidMessage
    from ingest (when the item became a message) instead of being rejected."""
    sid = store.create()
    version = store.get(sid).version
    system = ItemObserved(event_id="s", item_id="s1", role="system", previous_item_id=None)
    cases = [
        [UserImage(event_id="i1", item_id="u1", media_type="image/png", data=b"x", ref="https://x")],
        [UserImage(event_id="i2", item_id="u1", media_type="image/png")],
        [UserImage(event_id="i3", item_id="s1", media_type="image/png", ref="https://x"), system],
        [UserTranscriptFinal(event_id="i4", item_id="s1", text="spoken"), system],
        [
            ItemObserved(event_id="i7", item_id="s2", role="system", response_id="r2"),
            AssistantTranscriptTruncated(event_id="i8", item_id="s2", audio_end_ms=5, text="heard"),
        ],
        [
            ItemObserved(event_id="i5", item_id="o1", role="assistant", response_id="r1"),
            FunctionCallOutput(event_id="i6", item_id="o1", call_id="c1", output="x"),
        ],
    ]
    for events in cases:
        outcomes = store.ingest_many(sid, events)
        assert outcomes[-1].status == "rejected" and outcomes[-1].reason, (events, outcomes)
    assert all(
        m.role != "system" or all(b.__struct_config__.tag == "text" for b in m.blocks) for m in store.get(sid).messages
    )
    assert store.verify(sid).version >= version
    # Late content never joins a message that cannot hold it.
    late = store.create()
    store.ingest_many(
        late,
        [
            FunctionCall(event_id="f", item_id="f0", call_id="c1", name="f", previous_item_id=None),
            FunctionCallOutput(event_id="o", item_id="o1", call_id="c1", output="x", previous_item_id="f0"),
        ],
    )
    outcome = store.ingest(late, UserContentFinal(event_id="t", item_id="o1", content_index=1, text="more"))
    assert outcome.status == "rejected"
    assert [m.role for m in store.get(late).messages] == ["assistant", "tool_results"]
    # A function call is the assistant's, whatever role content that came first guessed.
    guessed = store.create()
    store.ingest_many(
        guessed,
        [
            UserContentFinal(event_id="u", item_id="f1", text="hi"),
            FunctionCall(event_id="f", item_id="f1", call_id="c1", name="f", previous_item_id=None),
        ],
    )
    assert [(m.role, m.tool_uses[0].id) for m in store.get(guessed).messages] == [("assistant", "c1")]


def test_provider_registry_refuses_bad_names_duplicates_and_bad_adapter_output() -> None:
    import uuid

    from engine.realtime import AssistantTurnCompleted, register_provider, registered_providers

    name = "p" + uuid.uuid4().hex[:12]
    for bad in ("", "Upper", "has-dash", 5, None):
        with pytest.raises(InvalidArgument):
            register_provider(bad, lambda raw: [])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        register_provider(name, "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="registered already"):
        register_provider("openai", lambda raw: [])
    outputs: dict[str, object] = {
        "a dict": {"not": "a list"},
        "a list of junk": [object()],
        "a bad canonical event": [AssistantTurnCompleted(event_id=float("inf"), response_id="r")],  # type: ignore[arg-type]
    }
    register_provider(name, lambda raw: outputs[raw])  # type: ignore[index]
    assert name in registered_providers()
    store = Transcripts.open()
    sid = store.create()
    outcomes = store.ingest_many(sid, list(outputs), provider=name)
    assert [o.status for o in outcomes] == ["rejected"] * 3
    assert store.get(sid).version == 1  # nothing stored
    with pytest.raises(InvalidArgument, match="registered provider"):
        store.ingest(sid, {}, provider="no_such_provider")
    register_provider(name, lambda raw: [], replace=True)
    assert store.ingest(sid, "anything", provider=name).status == "ignored"  # means nothing: no events


def test_canonical_event_ids_with_nul_are_rejected() -> None:
    # Found by the fuzz helper: they could collide with the "<id>\x00<n>" ids
    # an adapter derives when one raw event means several canonical events.
    from engine.realtime import AssistantTurnCompleted

    store = Transcripts.open()
    sid = store.create()
    for bad in ("a\x00b", ""):
        outcome = store.ingest(sid, AssistantTurnCompleted(event_id=bad, response_id="r"))
        assert outcome.status == "rejected" and "NUL" in (outcome.reason or "")
    assert store.get(sid).version == 1


def test_an_event_about_a_settled_item_says_once_that_it_is_not_stored(store: Transcripts) -> None:
    # Found by a newcomer: the reason came once per part of the raw event
    # ("...adds nothing; ...adds nothing"), and said "adds nothing" of an
    # event whose text differed.
    def item(text: str) -> dict[str, object]:
        return {"id": "i1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}

    sid = store.create()
    for number, kind in enumerate(("conversation.item.added", "conversation.item.done")):
        store.ingest(
            sid,
            {"type": kind, "event_id": f"e{number}", "previous_item_id": None, "item": item("hi")},
            provider="openai",
        )
    before = store.get(sid)
    again = {"type": "conversation.item.done", "event_id": "e9", "previous_item_id": None, "item": item("changed")}
    outcome = store.ingest(sid, again, provider="openai")
    assert outcome.status == "duplicate"
    assert outcome.reason == "item i1 is settled; events about it after that are not stored"
    assert store.get(sid) == before


def test_a_late_first_session_created_loses_no_reply(store: Transcripts) -> None:
    # Found by ingesting public recordings shuffled: a call's only
    # session.created delivered after response.created is read as a new
    # connection, which closes the reply under way; its item, announced
    # after that, was placed empty and its transcript dropped as "settled".
    sid = store.create()
    reply = assistant_audio("r1", "a1", "u1", ["Your ", "table ", "is ", "booked."])
    late = ev("session.created", session={"id": "sess_1"})
    events = [*user_audio("u1", None), transcription("u1", "A table for two?"), reply[0], late, *reply[1:]]
    outcomes = store.ingest_many(sid, events, provider="openai")
    assert "rejected" not in [outcome.status for outcome in outcomes]
    assert "duplicate" not in [outcome.status for outcome in outcomes]  # every event was new
    assert transcript(store, sid) == [("user", "A table for two?"), ("assistant", "Your table is booked.")]
    assert not store.get(sid).messages[1].incomplete


def test_a_call_placed_before_its_item_ends_keeps_its_final_arguments(store: Transcripts) -> None:
    # Found by cutting a public recording short: the arguments of a call come
    # in response.function_call_arguments.delta/.done, which were ignored, so
    # a call placed by resolve_pending before its item's own end (which never
    # came) was stored with no arguments. Older API versions send no name in
    # the .done event: the announcement's name is kept.
    sid = store.create()
    started = {"id": "fc1", "type": "function_call", "status": "in_progress", "name": "book_table", "call_id": "call_9"}
    arguments = '{"people": 2, "time": "19:30"}'
    done = {"response_id": "r1", "item_id": "fc1", "output_index": 0, "call_id": "call_9", "arguments": arguments}
    events = [
        *user_audio("u1", None),
        transcription("u1", "Book it."),
        ev("response.created", response={"id": "r1", "status": "in_progress"}),
        ev("response.output_item.added", response_id="r1", output_index=0, item={**started, "arguments": ""}),
        ev("conversation.item.added", previous_item_id="u1", item={**started, "arguments": ""}),
        ev("response.function_call_arguments.delta", **{**done, "delta": arguments}),
        ev("response.function_call_arguments.done", **done),  # no name, as older versions send it
    ]
    outcomes = store.ingest_many(sid, events, provider="openai")
    assert outcomes[-1].status == "staged"
    store.resolve_pending(sid, "place")  # the call ended here: nothing more came
    [call] = store.get(sid).messages[1].tool_uses
    assert (call.id, call.name, call.arguments) == ("call_9", "book_table", arguments)


def test_an_append_never_takes_the_id_of_a_realtime_item_still_waiting(stores: StoreFactory) -> None:
    # Found by an adversarial pass: an appended message under the id of an
    # item still waiting (given by the caller, or made by the store from its
    # revision) was accepted; the item could then never be placed (erase()
    # would take both), every later item waited for it, a new connection was
    # rejected, and only resolve_pending("drop") unblocked the call.
    from engine import InvalidMessage
    from engine.state.revisions import chain, id_mask, parse_revision, revision_id

    store = stores.open()
    sid = store.create(session_id="call")
    store.append(sid, Message.user("typed hello"))
    later = Message.user("typed later")
    # The id the store would name the next append after: its revision, session and version.
    named = revision_id(chain(parse_revision(store.get(sid).revision), [later]), id_mask(sid, 5))
    reply = [
        ItemObserved(event_id="e1", item_id=named, role="assistant", previous_item_id=None, response_id="r1"),
        AssistantTranscriptDelta(event_id="e2", response_id="r1", item_id=named, delta="spoken reply"),
    ]
    assert [outcome.status for outcome in store.ingest_many(sid, reply)] == ["staged", "staged"]
    assert store.get(sid).version == 4
    with pytest.raises(InvalidMessage, match=f"'{named}' is the id of a realtime item of this session"):
        store.append(sid, Message.user("typed later", id=named))
    assert store.get(sid).version == 4  # nothing written
    store.append(sid, later)  # the store names it otherwise
    assert store.get(sid).messages[-1].id not in (named, None)
    assert store.ingest(sid, AssistantTurnCompleted(event_id="e3", response_id="r1")).status == "materialised"
    assert [(m.text, m.provider_item_id) for m in store.get(sid).messages[-1:]] == [("spoken reply", named)]
    assert store.pending(sid).items == ()
    fresh = stores.open().get(sid)  # a cold load reserves the same ids
    assert fresh == store.get(sid) and named in fresh.realtime_items
