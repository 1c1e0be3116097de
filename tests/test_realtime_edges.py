"""Realtime ingestion against shapes a real server sends that the hand-written
traces did not: found by an adversarial pass. Each expected transcript is
written from the events, by the provider's documented meaning."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Image, Message, Text, ToolUse, Transcripts
from engine.realtime import ItemObserved, UserContentFinal, UserImage
from tests.conftest import StoreFactory


def _event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": event_id, **fields}


def _call(status: str, arguments: str) -> dict[str, Any]:
    return {
        "id": "f1",
        "type": "function_call",
        "status": status,
        "call_id": "c1",
        "name": "get_weather",
        "arguments": arguments,
    }


def _statuses(store: Transcripts, sid: str, events: list[dict[str, Any]]) -> list[str]:
    return [outcome.status for outcome in store.ingest_many(sid, events, provider="openai")]


def test_a_call_announced_while_streaming_gets_the_arguments_its_response_ends_with(store: Transcripts) -> None:
    # The conversation announces a response's function call "in_progress"
    # with no arguments yet; they come with the response's end. It was taken
    # for a call the client wrote, placed at once with "{}" as its arguments,
    # and the real arguments were dropped as duplicates.
    for announced_first in (True, False):
        sid = store.create()
        conversation = _event("conversation.item.added", "a", previous_item_id=None, item=_call("in_progress", ""))
        output = _event(
            "response.output_item.added", "o", response_id="r1", output_index=0, item=_call("in_progress", "")
        )
        done = _event(
            "response.done",
            "d",
            response={"id": "r1", "status": "completed", "output": [_call("completed", '{"city":"Oslo"}')]},
        )
        started = [conversation, output] if announced_first else [output, conversation]
        statuses = _statuses(
            store,
            sid,
            [_event("response.created", "c", response={"id": "r1", "status": "in_progress"}), *started, done],
        )
        assert statuses[-1] == "materialised" and "duplicate" not in statuses, statuses
        [message] = store.get(sid).messages
        assert message.role == "assistant"
        assert message.blocks == (ToolUse(id="c1", name="get_weather", arguments='{"city":"Oslo"}'),)


def test_a_call_the_client_writes_whole_is_placed_at_once(store: Transcripts) -> None:
    sid = store.create()
    written = _event(
        "conversation.item.added", "a", previous_item_id=None, item=_call("completed", '{"city":"Bergen"}')
    )
    assert _statuses(store, sid, [written]) == ["materialised"]
    [message] = store.get(sid).messages
    assert message.blocks == (ToolUse(id="c1", name="get_weather", arguments='{"city":"Bergen"}'),)


def test_function_items_without_the_fields_the_api_requires_are_rejected_not_filled_in(store: Transcripts) -> None:
    # A missing call_id became the item id, a missing name "", missing
    # arguments "{}", a missing output "": values the provider never sent.
    sid = store.create()
    whole = _call("completed", "{}")
    broken = [
        {key: value for key, value in whole.items() if key != "call_id"},
        {key: value for key, value in whole.items() if key != "name"},
        {key: value for key, value in whole.items() if key != "arguments"},
        {"id": "o1", "type": "function_call_output", "output": "42"},
        {"id": "o1", "type": "function_call_output", "call_id": "c1"},
    ]
    outcomes = store.ingest_many(
        sid,
        [_event("conversation.item.added", f"e{n}", previous_item_id=None, item=item) for n, item in enumerate(broken)],
        provider="openai",
    )
    assert [outcome.status for outcome in outcomes] == ["rejected"] * 5
    reasons = [outcome.reason or "" for outcome in outcomes]
    for reason, missing in zip(reasons, ["call_id", "name", "arguments", "call_id", "output"], strict=True):
        assert missing in reason, reason
    assert store.get(sid).messages == ()


def test_an_assistant_message_the_client_writes_without_a_status_holds_nothing_back(store: Transcripts) -> None:
    # status is optional in the schema; without it the item waited for a
    # response that never comes, and every later item waited behind it.
    def typed(item_id: str, previous: str | None, text: str, role: str) -> dict[str, Any]:
        part = {"type": "input_text" if role == "user" else "output_text", "text": text}
        item = {"id": item_id, "type": "message", "role": role, "content": [part]}
        return _event("conversation.item.added", f"{item_id}_a", previous_item_id=previous, item=item)

    sid = store.create()
    events = [
        typed("u1", None, "hi", "user"),
        typed("m1", "u1", "Earlier answer", "assistant"),
        typed("u2", "m1", "next", "user"),
    ]
    assert _statuses(store, sid, events) == ["materialised"] * 3
    assert [(m.role, m.text) for m in store.get(sid).messages] == [
        ("user", "hi"),
        ("assistant", "Earlier answer"),
        ("user", "next"),
    ]
    assert not store.pending(sid).items


def test_late_transcription_deltas_replayed_after_many_events_are_not_counted_twice(store: Transcripts) -> None:
    # The ids of settled items' events are forgotten after a while (a settled
    # item recognises its own redeliveries), but a user item placed without
    # its text still takes deltas: replayed, they doubled its text.
    sid = store.create()
    user = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    transcription = {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    deltas = [
        _event("conversation.item.input_audio_transcription.delta", f"t{n}", item_id="u1", content_index=0, delta=text)
        for n, text in enumerate(["Hello ", "there"])
    ]
    notes = [
        _event(
            "conversation.item.added",
            f"x{n}",
            previous_item_id="u1" if n == 0 else f"n{n - 1}",
            item={"id": f"n{n}", "type": "message", "role": "system", "content": [{"type": "input_text", "text": "."}]},
        )
        for n in range(300)  # enough accepted ids for the engine to forget those of settled items
    ]
    store.ingest_many(
        sid,
        [
            _event("session.created", "s1", session=transcription),
            _event("conversation.item.added", "a1", previous_item_id=None, item=user),
            _event("response.created", "rc", response={"id": "r1", "status": "in_progress"}),
            _event("response.done", "rd", response={"id": "r1", "status": "cancelled", "output": []}),
            *deltas,
            *notes,
        ],
        provider="openai",
    )
    assert _statuses(store, sid, deltas) == ["duplicate", "duplicate"]
    final = _event(
        "conversation.item.input_audio_transcription.completed", "t9", item_id="u1", content_index=0, transcript=""
    )
    assert _statuses(store, sid, [final]) == ["materialised"]
    assert store.get(sid).messages[0].text == "Hello there"


def test_content_the_transcript_cannot_hold_is_refused_or_reported_never_dropped_quietly(store: Transcripts) -> None:
    # An unknown item type or role came back "staged" with no reason and
    # never became a message; parts a user item cannot hold vanished.
    sid = store.create()

    def added(event_id: str, previous: str | None, **item: Any) -> dict[str, Any]:
        return _event("conversation.item.added", event_id, previous_item_id=previous, item=item)

    user_parts: list[list[dict[str, Any]]] = [
        [{"type": "input_text", "text": "Hello"}, {"type": "input_file", "text": "ATTACHED"}],
        [{"type": "input_text", "text": "Hello"}, {"type": "input_image", "image_url": ""}],
        [{"type": "input_text", "text": "t", "transcript": "spoken"}],
    ]
    refused = store.ingest_many(
        sid,
        [
            added(f"p{n}", None, id=f"u{n}", type="message", role="user", content=parts)
            for n, parts in enumerate(user_parts)
        ],
        provider="openai",
    )
    assert [o.status for o in refused] == ["rejected"] * 3
    assert "input_file" in (refused[0].reason or "") and "image_url" in (refused[1].reason or "")
    assert "transcript" in (refused[2].reason or "")
    reported = store.ingest_many(
        sid,
        [
            added("m", None, id="m1", type="mcp_call", name="lookup", server_label="crm", arguments="{}", output="42"),
            added("d", "m1", id="d1", type="message", role="developer", content=[{"type": "input_text", "text": "x"}]),
            added("u", "d1", id="u9", type="message", role="user", content=[{"type": "input_text", "text": "after"}]),
        ],
        provider="openai",
    )
    assert [o.status for o in reported] == ["discarded", "discarded", "materialised"]
    assert "mcp_call" in (reported[0].reason or "") and "developer" in (reported[1].reason or "")
    assert [(m.role, m.text) for m in store.get(sid).messages] == [("user", "after")]  # in its place, after both


def test_outputs_of_parallel_calls_sent_one_by_one_join_one_tool_results_message(store: Transcripts) -> None:
    # Each output became a tool_results message of its own: a transcript the
    # engine's own append refuses, and no model API takes.
    def call(item_id: str, call_id: str, status: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "call_id": call_id,
            "name": "f",
            "arguments": "{}",
        }

    def output(item_id: str, call_id: str, text: str) -> dict[str, Any]:
        return {"id": item_id, "type": "function_call_output", "call_id": call_id, "output": text}

    sid = store.create()
    user = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "both"}]}
    events = [
        _event("conversation.item.added", "e0", previous_item_id=None, item=user),
        _event("response.created", "e1", response={"id": "r1", "status": "in_progress"}),
        _event(
            "response.output_item.added", "e2", response_id="r1", output_index=0, item=call("f1", "c1", "in_progress")
        ),
        _event("conversation.item.added", "e3", previous_item_id="u1", item=call("f1", "c1", "in_progress")),
        _event(
            "response.output_item.added", "e4", response_id="r1", output_index=1, item=call("f2", "c2", "in_progress")
        ),
        _event("conversation.item.added", "e5", previous_item_id="f1", item=call("f2", "c2", "in_progress")),
        _event(
            "response.done",
            "e6",
            response={
                "id": "r1",
                "status": "completed",
                "output": [call("f1", "c1", "completed"), call("f2", "c2", "completed")],
            },
        ),
        _event("conversation.item.added", "e7", previous_item_id="f2", item=output("o1", "c1", "A")),
        _event("conversation.item.added", "e8", previous_item_id="o1", item=output("o2", "c2", "B")),
    ]
    statuses = _statuses(store, sid, events)
    assert statuses[-2:] == ["materialised", "materialised"], statuses
    messages = store.get(sid).messages
    assert [(m.role, len(m.blocks)) for m in messages] == [("user", 1), ("assistant", 2), ("tool_results", 2)]
    assert [(r.tool_use_id, r.content_text) for r in messages[2].blocks] == [("c1", "A"), ("c2", "B")]  # type: ignore[union-attr]
    assert store.revisions(sid)[-1].reason.kind == "late_content"
    again = store.create()
    store.append(again, *(Message(role=m.role, blocks=m.blocks) for m in messages))  # a shape append takes
    assert _statuses(store, sid, events) == ["duplicate"] * len(events)


def test_an_output_that_answers_no_call_is_discarded_and_the_next_append_still_works(store: Transcripts) -> None:
    # It became a tool_results message answering nothing, after which the
    # caller's own append was refused over a message the engine wrote.
    sid = store.create()
    orphan = {"id": "o1", "type": "function_call_output", "call_id": "nope", "output": "42"}
    [outcome] = store.ingest_many(
        sid, [_event("conversation.item.added", "e1", previous_item_id=None, item=orphan)], provider="openai"
    )
    assert outcome.status == "discarded" and "'nope'" in (outcome.reason or ""), outcome
    store.append(sid, Message.user("hello"))
    assert [(m.role, m.text) for m in store.get(sid).messages] == [("user", "hello")]


def test_items_at_the_start_of_the_conversation_go_after_what_the_caller_appended_first(store: Transcripts) -> None:
    # previous_item_id null means the start of the provider's conversation.
    # The first such item went after the caller's system prompt, the second
    # before it: the prompt is not part of the provider's conversation.
    sid = store.create()
    store.append(sid, Message.system("You are a phone agent."))

    def added(event_id: str, item_id: str, text: str) -> dict[str, Any]:
        item = {"id": item_id, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        return _event("conversation.item.added", event_id, previous_item_id=None, item=item)

    assert _statuses(store, sid, [added("e1", "u1", "first")]) == ["materialised"]
    assert _statuses(store, sid, [added("e2", "u0", "second")]) == ["materialised"]
    # Insert-after: of two items after the same predecessor, the later announced comes first.
    assert [m.text for m in store.get(sid).messages] == ["You are a phone agent.", "second", "first"]


def test_a_new_connection_re_sending_history_with_a_tool_exchange_adds_nothing(store: Transcripts) -> None:
    # Messages without text (a function call, its output) were left out of
    # what a new connection may re-send, so the re-sent run broke there and
    # every re-sent item was added again, tool call id and all.
    def add(event_id: str, previous: str | None, item: dict[str, Any]) -> dict[str, Any]:
        return _event("conversation.item.added", event_id, previous_item_id=previous, item=item)

    def history(ids: list[str]) -> list[dict[str, Any]]:
        user, call, output, said = ids
        return [
            add(
                f"{user}_a",
                None,
                {
                    "id": user,
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Weather in Oslo?"}],
                },
            ),
            add(
                f"{call}_a",
                user,
                {
                    "id": call,
                    "type": "function_call",
                    "status": "completed",
                    "call_id": "c1",
                    "name": "weather",
                    "arguments": "{}",
                },
            ),
            add(
                f"{output}_a", call, {"id": output, "type": "function_call_output", "call_id": "c1", "output": "sunny"}
            ),
            add(
                f"{said}_a",
                output,
                {
                    "id": said,
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Sunny."}],
                },
            ),
        ]

    sid = store.create()
    store.ingest_many(
        sid, [_event("session.created", "s1", session={}), *history(["u1", "f1", "o1", "a1"])], provider="openai"
    )
    first = [(m.role, m.text, m.provider_item_id) for m in store.get(sid).messages]
    assert [role for role, _, _ in first] == ["user", "assistant", "tool_results", "assistant"]
    outcomes = store.ingest_many(
        sid, [_event("session.created", "s2", session={}), *history(["n1", "n2", "n3", "n4"])], provider="openai"
    )
    assert [(m.role, m.text, m.provider_item_id) for m in store.get(sid).messages] == first
    assert "re-sends" in (outcomes[-1].reason or "")
    # The conversation goes on after the re-sent run, after its last message.
    more = {"id": "n5", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}]}
    store.ingest(sid, add("n5_a", "n4", more), provider="openai")
    assert [m.text for m in store.get(sid).messages][-2:] == ["Sunny.", "Thanks"]


def test_duplicate_reasons_name_the_raw_event_and_what_became_of_the_item(store: Transcripts) -> None:
    sid = store.create()
    typed = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}
    added = _event("conversation.item.added", "e1", previous_item_id=None, item=typed)
    store.ingest(sid, added, provider="openai")
    again = store.ingest(sid, added, provider="openai")
    assert again.status == "duplicate" and again.reason == "event e1 was already accepted"  # not its parts' keys
    # An item deleted before it was seen: its announcement is about a deleted item, not "settled".
    gone = store.ingest_many(
        sid,
        [
            _event("conversation.item.deleted", "d", item_id="u2"),
            _event("conversation.item.added", "a", previous_item_id="u1", item={**typed, "id": "u2"}),
        ],
        provider="openai",
    )
    assert gone[1].status == "duplicate" and "u2 was deleted" in (gone[1].reason or ""), gone


def test_an_input_image_holding_other_media_is_rejected(store: Transcripts) -> None:
    sid = store.create()
    part = {"type": "input_image", "image_url": "data:audio/wav;base64,UklGRg=="}
    item = {"id": "u1", "type": "message", "role": "user", "content": [part]}
    [outcome] = store.ingest_many(
        sid, [_event("conversation.item.added", "e", previous_item_id=None, item=item)], provider="openai"
    )
    assert outcome.status == "rejected" and "audio/wav" in (outcome.reason or "")


def test_an_input_image_of_no_bytes_is_rejected_and_one_an_older_build_recorded_still_replays(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by a newcomer: an image of no bytes (a data URL with nothing
    # after the comma; a canonical UserImage of data=b"" or ref="") was
    # taken, and went out to a provider as "data": "" or "url": "".
    from engine.realtime import reducer
    from engine.state import content
    from engine.state.content import as_stored

    store = stores.open()
    sid = store.create()
    part = {"type": "input_image", "image_url": "data:image/png;base64,"}
    item = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}, part]}
    added = _event("conversation.item.added", "e", previous_item_id=None, item=item)
    [outcome] = store.ingest_many(sid, [added], provider="openai")
    assert outcome.status == "rejected" and "the data URL holds no bytes" in (outcome.reason or ""), outcome
    for image in (
        UserImage(event_id="i1", item_id="u2", media_type="image/png", data=b""),
        UserImage(event_id="i2", item_id="u2", media_type="image/*", ref=""),
    ):
        outcome = store.ingest(sid, image)
        assert outcome.status == "rejected" and "is empty" in (outcome.reason or ""), outcome
    assert store.get(sid).messages == ()

    # A log an earlier build wrote, which took such an image: it still loads and replays.
    old = store.create()
    unfit = reducer._unfit
    monkeypatch.setattr(
        reducer, "_unfit", lambda state, event: None if isinstance(event, UserImage) else unfit(state, event)
    )
    monkeypatch.setattr(content, "_require_some_image", lambda image: None)
    recorded = [
        UserContentFinal(event_id="c0", item_id="u1", text="Hi", role="user"),
        UserImage(event_id="c1", item_id="u1", content_index=1, media_type="image/png", data=b""),
        ItemObserved(event_id="c2", item_id="u1", role="user", previous_item_id=None, complete=True),
    ]
    assert store.ingest_many(old, recorded)[-1].status == "materialised"
    monkeypatch.undo()
    reopened = stores.open()  # a cold cache: the ingestion state is rebuilt from the log
    with as_stored():
        empty = Image(media_type="image/png", data=b"")
    assert reopened.verify(old).messages[0].blocks == (Text(text="Hi"), empty)
    more = {"id": "u9", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Still there?"}]}
    later = _event("conversation.item.added", "f", previous_item_id="u1", item=more)
    assert reopened.ingest_many(old, [later], provider="openai")[0].status == "materialised"
    assert [m.text for m in reopened.get(old).messages] == ["Hi", "Still there?"]


def test_a_lone_surrogate_escape_in_json_text_is_named_as_such(store: Transcripts) -> None:
    sid = store.create()
    kind = "conversation.item.input_audio_transcription.completed"
    raw = '{"type": "' + kind + '", "event_id": "e", "item_id": "u", "transcript": "\\ud800"}'
    outcome = store.ingest(sid, raw, provider="openai")
    assert outcome.status == "rejected" and "lone surrogate" in (outcome.reason or ""), outcome
    # Any other \u escape (json.dumps writes one for every non-ASCII character)
    # beside a field of the wrong value: the reason names the field, not a surrogate.
    wrong = '{"type": "response.done", "event_id": "f", "response": {"id": "r", "status": "bogus", "output": [], '
    outcome = store.ingest(sid, wrong + '"metadata": {"note": "caf\\u00e9"}}}', provider="openai")
    assert outcome.status == "rejected" and "Invalid enum value 'bogus'" in (outcome.reason or ""), outcome


def test_an_event_id_reused_with_other_content_is_rejected_not_taken_for_a_redelivery(
    stores: StoreFactory,
) -> None:
    # A redelivered event repeats its content. Another event under an id
    # already accepted was counted a duplicate, and what it said was dropped
    # with the word "duplicate" as the only trace.
    store = stores.open()
    sid = store.create()
    transcription = {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    user = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    hello = _event(
        "conversation.item.input_audio_transcription.delta", "t1", item_id="u1", content_index=0, delta="Hi "
    )
    store.ingest_many(
        sid,
        [
            _event("session.created", "s1", session=transcription),
            _event("conversation.item.added", "a1", previous_item_id=None, item=user),
            hello,
        ],
        provider="openai",
    )
    other = {**hello, "delta": "Bye "}
    [outcome] = store.ingest_many(sid, [other], provider="openai")
    assert outcome.status == "rejected", outcome
    assert outcome.reason is not None and "event t1 was already accepted with other content" in outcome.reason
    # The same event again is still a redelivery, also once the store is opened anew.
    assert _statuses(store, sid, [hello]) == ["duplicate"]
    reopened = stores.open()  # a cold reopen: the ingestion state is rebuilt from the log
    assert _statuses(reopened, sid, [hello, other]) == ["duplicate", "rejected"]
    final = _event(
        "conversation.item.input_audio_transcription.completed", "t2", item_id="u1", content_index=0, transcript=""
    )
    assert _statuses(reopened, sid, [final]) == ["materialised"]
    assert reopened.get(sid).messages[0].text == "Hi "  # written from the events: only the accepted delta


def test_a_raw_event_reusing_an_accepted_id_is_judged_whole_whatever_its_parts(stores: StoreFactory) -> None:
    # Found by a second adversarial pass: ids were compared part by part, and
    # a raw event means one canonical event (keyed "<id>") or several
    # ("<id>\x00<n>"). Another event under an accepted id that meant another
    # number of them was accepted, its text placed in the transcript; one
    # that changed only some of its parts came back "duplicate".
    store = stores.open()
    sid = store.create()
    hello = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    store.ingest_many(
        sid,
        [
            _event("conversation.item.added", "e1", previous_item_id=None, item=hello),
            _event("input_audio_buffer.committed", "e2", item_id="u2", previous_item_id="u1"),  # one part
        ],
        provider="openai",
    )
    version = store.get(sid).version
    injected = {**hello, "id": "u3", "content": [{"type": "input_text", "text": "INJECTED"}]}
    changed_text = {**hello, "content": [{"type": "input_text", "text": "bye"}]}
    for reused in (
        _event("conversation.item.added", "e2", previous_item_id="u1", item=injected),  # several parts under e2
        _event("conversation.item.added", "e1", previous_item_id=None, item=changed_text),  # some parts changed
    ):
        for store_now in (store, stores.open()):  # also once the ingestion state is rebuilt from the log
            [outcome] = store_now.ingest_many(sid, [reused], provider="openai")
            assert outcome.status == "rejected", outcome
            assert f"event {reused['event_id']} was already accepted with other content" in (outcome.reason or "")
    assert store.get(sid).version == version
    assert [message.text for message in stores.open().get(sid).messages] == ["hi"]  # written from the events
    assert _statuses(store, sid, [_event("conversation.item.added", "e1", previous_item_id=None, item=hello)]) == [
        "duplicate"
    ]


def _user_item(event_id: str, item_id: str, text: str, previous: str | None) -> dict[str, Any]:
    item = {"id": item_id, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return _event("conversation.item.added", event_id, previous_item_id=previous, item=item)


def test_an_event_whose_change_cannot_be_stored_is_rejected_and_the_batch_goes_on(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a response.done whose usage took the
    # session's total past 2**63 - 1, or an item over max_event_bytes, made
    # ingest() raise and ingest_many() store none of its batch.
    store = stores.open(max_event_bytes=64 * 1024)
    sid = store.create()

    def done(number: int) -> dict[str, Any]:
        response = {"id": f"r{number}", "status": "completed", "output": [], "usage": {"input_tokens": 2**62}}
        return _event("response.done", f"done{number}", response=response)

    events = [
        _user_item("u1", "item_u1", "hello", None),
        done(1),
        done(2),  # 2**63 tokens in all: one past the most a store holds
        _user_item("u2", "item_u2", "x" * 100_000, "item_u1"),  # over max_event_bytes
        _user_item("u3", "item_u3", "still here", "item_u1"),
    ]
    outcomes = store.ingest_many(sid, events, provider="openai")
    statuses = [outcome.status for outcome in outcomes]
    assert statuses == ["materialised", "staged", "rejected", "rejected", "materialised"]
    assert "the most a store's tables hold" in (outcomes[2].reason or "")
    assert "over max_event_bytes (65,536)" in (outcomes[3].reason or "")
    head = stores.open().verify(sid)
    assert [m.text for m in head.messages] == ["hello", "still here"]
    assert head.usage.input == 2**62
    for event in (done(2), events[3]):  # nothing of them was kept: each is rejected again, not a duplicate
        assert store.ingest(sid, event, provider="openai").status == "rejected"
    assert stores.open().verify(sid) == head


def test_an_ingestion_that_loses_a_race_is_decided_again(stores: StoreFactory, monkeypatch: Any) -> None:
    # Found by an adversarial pass: ingest() raised ConcurrentWriteError when
    # another process set the title between its read and its write.
    store, elsewhere = stores.open(), stores.open()
    sid = store.create()
    store.ingest(sid, _user_item("u0", "item_u0", "first", None), provider="openai")
    elsewhere.get(sid)
    repository = store._repository  # type: ignore[attr-defined]
    commit, tries = repository.commit, [0]

    def another_writer_first(*args: Any) -> Any:
        tries[0] += 1
        if tries[0] <= 4:  # four lost races: the fifth try holds the session
            elsewhere.set_title(sid, f"title {tries[0]}")
        return commit(*args)

    monkeypatch.setattr(repository, "commit", another_writer_first)
    outcome = store.ingest(sid, _user_item("u1", "item_u1", "second", "item_u0"), provider="openai")
    monkeypatch.undo()
    assert outcome.status == "materialised" and tries[0] == 5
    head = stores.open().verify(sid)
    assert [m.text for m in head.messages] == ["first", "second"] and head.title == "title 4"
    assert store.ingest(sid, _user_item("u1", "item_u1", "second", "item_u0"), provider="openai").status == "duplicate"


def test_an_item_whose_id_is_a_messages_id_is_rejected_and_the_batch_goes_on(stores: StoreFactory) -> None:
    # Found by an adversarial pass: the item became a message whose provider
    # item id was another message's id, and erase(sid, that id) took both.
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("my card is 4111", id="msg_card"))
    outcomes = store.ingest_many(
        sid,
        [_user_item("e1", "msg_card", "unrelated", None), _user_item("e2", "item_2", "hello", None)],
        provider="openai",
    )
    assert outcomes[0].status == "rejected"
    assert "provider item id 'msg_card', which is the id of the session's message 0" in (outcomes[0].reason or "")
    assert outcomes[1].status != "rejected"
    assert [m.text for m in stores.open().get(sid).messages] == ["my card is 4111", "hello"]
    store.erase(sid, "msg_card")
    assert [m.erased is not None for m in stores.open().get(sid).messages] == [True, False]


def test_a_canonical_image_of_a_media_type_that_is_no_image_is_rejected_not_raised(store: Transcripts) -> None:
    # Found by a newcomer pass: ingest() "never raises for bad input", yet a
    # canonical UserImage of media type audio/wav raised InvalidMessage
    # (the raw OpenAI event of such a data URL was rejected already).
    sid = store.create()
    outcome = store.ingest(sid, UserImage(event_id="w1", item_id="u1", media_type="audio/wav", data=b"RIFF"))
    assert outcome.status == "rejected" and "must name an image" in (outcome.reason or ""), outcome
    assert store.get(sid).messages == () and store.pending(sid).items == ()
