"""Realtime ingestion after an erasure, found by an adversarial pass: an
erased reply replayed as one that said nothing (later items went to the
wrong place, a late truncation of it read as a duplicate), a history
re-seeded after an erasure came back, an output that waited kept its
content in its earlier record once it joined an erased message, erasing
out-of-band output by one item id left the other's content, and a deletion
or truncation naming a re-sent item's id did nothing. Also parallel results
split in two by arrival order. Every expected result is read off the
OpenAI Realtime events a test sends (what the provider means by them) and
the promises of docs/realtime.md and docs/erasure.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import Transcripts
from tests.conftest import StoreFactory
from tests.test_realtime_caller_changes import (
    call,
    event,
    output,
    parallel_calls,
    resent_after_a_reconnect,
    spoken_then_answered,
    stored_anywhere,
    transcription,
    two_calls_answered_once,
    typed,
)


def rows(store: Transcripts, sid: str) -> list[tuple[str, str, bool]]:
    """(role, text, erased) of each message of the transcript."""
    return [(m.role, m.text, m.erased is not None) for m in store.get(sid).messages]


def spoken_reply(response: str, item: str, previous: str | None, text: str) -> list[dict[str, Any]]:
    """The events of one spoken assistant reply ``item`` of ``response``, in
    the conversation, right after ``previous``."""
    started = {"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    finished = {**started, "status": "completed", "content": [{"type": "output_audio", "transcript": text}]}
    return [
        event("response.created", response={"id": response, "status": "in_progress"}),
        event("response.output_item.added", response_id=response, output_index=0, item=started),
        event("conversation.item.added", previous_item_id=previous, item=started),
        event(
            "response.output_audio_transcript.delta",
            response_id=response,
            item_id=item,
            output_index=0,
            content_index=0,
            delta=text,
        ),
        event("response.done", response={"id": response, "status": "completed", "output": [finished]}),
    ]


def three_calls_one_answered(store: Transcripts, sid: str) -> None:
    """User u1; response r1 makes calls fc1, fc2, fc3 (c1, c2, c3), one
    assistant message; c1's output o1 is placed as a message of results."""
    answered = event("conversation.item.added", previous_item_id="fc3", item=output("o1", "c1", "one"))
    store.ingest_many(sid, [*parallel_calls(3), answered], provider="openai")


# -- 1. an output that waited, then joins a message of results erased meanwhile --------


@pytest.mark.parametrize("placed_by", ["resolve_pending", "a_later_response"])
def test_an_output_that_waited_keeps_nothing_once_it_joins_an_erased_message_of_results(
    stores: StoreFactory, tmp_path: Path, placed_by: str
) -> None:
    store = stores.open()
    sid = store.create()
    two_calls_answered_once(store, sid)  # calls c1, c2 (fc1, fc2); c1's output o1 is a message of results
    # c2's output is announced after an item that never comes (lost on the way): it waits.
    waiting = event("conversation.item.added", previous_item_id="o_lost", item=output("o2", "c2", "SSN 078-05-1120"))
    assert store.ingest(sid, waiting, provider="openai").status == "staged"
    assert store.erase(sid, "o1") == [sid]  # the message of results is erased meanwhile
    # What waits is placed at the end, after o1 (realtime.md "Nothing waits
    # forever"): an output placed right after another joins its message
    # (rule 4), here an erased one, so what o2 brings to it is kept as the
    # erasure left the rest of it: without content ("A caller's change stands").
    if placed_by == "resolve_pending":
        store.resolve_pending(sid, "place")
    else:  # a response that started after o2 ends (a barge-in: cancelled, no output)
        store.ingest_many(
            sid,
            [
                event("response.created", response={"id": "r2", "status": "in_progress"}),
                event("response.done", response={"id": "r2", "status": "cancelled", "output": []}),
            ],
            provider="openai",
        )
    assert store.pending(sid).items == ()
    [results] = [m for m in store.get(sid).messages if m.role == "tool_results"]
    assert results.erased is not None and results.blocks == ()
    assert not stored_anywhere(stores, store, sid, "078-05-1120", tmp_path)


# -- 2. the ingestion state rebuilt after an erasure places later items wrongly ---------


@pytest.mark.parametrize("reopened", [False, True], ids=["cached", "reopened"])
def test_items_announced_after_an_erased_reply_go_right_after_it(stores: StoreFactory, reopened: bool) -> None:
    store = stores.open()
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "hi")),
            *spoken_reply("r1", "a1", "u1", "Your balance is 1,234."),
        ],
        provider="openai",
    )
    store.erase(sid, "a1")
    if reopened:
        store = stores.open()
    # Two typed items, each announced right after a1 (insert-after: the later
    # one goes first, realtime.md rule 2): u3 then u2 follow a1's placeholder.
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id="a1", item=typed("u2", "second said")),
            event("conversation.item.added", previous_item_id="a1", item=typed("u3", "first said")),
        ],
        provider="openai",
    )
    assert rows(store, sid) == [
        ("user", "hi", False),
        ("assistant", "", True),  # a placeholder keeps its place (erasure.md)
        ("user", "first said", False),
        ("user", "second said", False),
    ]


@pytest.mark.parametrize("reopened", [False, True], ids=["cached", "reopened"])
def test_an_item_at_the_conversation_start_goes_before_an_erased_greeting(stores: StoreFactory, reopened: bool) -> None:
    store = stores.open()
    sid = store.create()
    # The assistant greets first (previous_item_id null: the start), the user answers.
    store.ingest_many(
        sid,
        [
            *spoken_reply("r0", "a0", None, "Hello Ms Smith, calling about your loan."),
            event("conversation.item.added", previous_item_id="a0", item=typed("u1", "yes")),
        ],
        provider="openai",
    )
    assert [text for _, text, _ in rows(store, sid)] == ["Hello Ms Smith, calling about your loan.", "yes"]
    store.erase(sid, "a0")
    if reopened:
        store = stores.open()
    system = {"id": "s0", "type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be brief."}]}
    store.ingest(sid, event("conversation.item.added", previous_item_id=None, item=system), provider="openai")
    # null: the very start of the provider's conversation, before a0 (its placeholder keeps its place).
    assert rows(store, sid) == [("system", "Be brief.", False), ("assistant", "", True), ("user", "yes", False)]


# -- 3. re-seeding a history after an erasure (a redaction alone: not reproduced) ---------


def reseed(store: Transcripts, sid: str, items: list[dict[str, Any]]) -> list[str]:
    """A new connection, then the client re-creates ``items`` in order (the
    server answers each with a new id); the outcomes' statuses."""
    previous = None
    events = [event("session.created", session={"id": "sess_new"})]
    for item in items:
        events.append(event("conversation.item.added", previous_item_id=previous, item=item))
        previous = item["id"]
    return [o.status for o in store.ingest_many(sid, events, provider="openai")]


def answer(item: str, text: str) -> dict[str, Any]:
    return {
        "id": item,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text}],
    }


def spoken_answer(item: str, transcript: str) -> dict[str, Any]:
    """An assistant item whose content is speech, with its transcript."""
    return {**answer(item, ""), "content": [{"type": "output_audio", "transcript": transcript}]}


def typed_history(store: Transcripts, sid: str) -> None:
    """u1 "my card 4111 1111", a1 "Noted.", u2 "thanks", a2 "You're welcome."
    on a first connection."""
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "my card 4111 1111")),
            event("conversation.item.added", previous_item_id="u1", item=answer("a1", "Noted.")),
            event("conversation.item.added", previous_item_id="a1", item=typed("u2", "thanks")),
            event("conversation.item.added", previous_item_id="u2", item=answer("a2", "You're welcome.")),
        ],
        provider="openai",
    )


RESENT = [
    typed("n1", "my card 4111 1111"),
    answer("n2", "Noted."),
    typed("n3", "thanks"),
    answer("n4", "You're welcome."),
]


@pytest.mark.parametrize("erased", ["u1", "a2"])
def test_a_history_re_seeded_after_an_erasure_is_recognised(stores: StoreFactory, tmp_path: Path, erased: str) -> None:
    store = stores.open()
    sid = store.create()
    typed_history(store, sid)
    store.erase(sid, erased)
    before = rows(store, sid)
    # The client still holds the call's history and re-sends it whole on a
    # new connection: a run equal to the items the messages were made of
    # stands for them, nothing is added twice (realtime.md rule 11).
    reseed(store, sid, RESENT)
    assert rows(store, sid) == before
    # Nor does the re-sent copy of the erased item bring its content back
    # (erasure.md: the records of an item re-sent in place of an erased
    # message are emptied).
    secret = {"u1": "4111 1111", "a2": "welcome"}[erased]
    assert not stored_anywhere(stores, store, sid, secret, tmp_path)


# -- 4. out-of-band output erased by its item id --------------------------------------


def out_of_band_reply(store: Transcripts, sid: str) -> None:
    """A conversation (u1, a1), then an out-of-band response r2 (conversation
    "none") that says something (x1) and calls a function (x2)."""
    said = {
        "id": "x1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Filing the report."}],
    }
    filing = call("x2", "cx", '{"account": "DE89-3704-0044-0532-0130-00"}')
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "report me")),
            *spoken_reply("r1", "a1", "u1", "Sure."),
            event("response.created", response={"id": "r2", "status": "in_progress", "conversation_id": None}),
            event(
                "response.output_item.added",
                response_id="r2",
                output_index=0,
                item={**said, "status": "in_progress", "content": []},
            ),
            event(
                "response.output_text.delta",
                response_id="r2",
                item_id="x1",
                output_index=0,
                content_index=0,
                delta="Filing the report.",
            ),
            event(
                "response.output_item.added",
                response_id="r2",
                output_index=1,
                item={**filing, "arguments": "", "status": "in_progress"},
            ),
            event(
                "response.function_call_arguments.done",
                response_id="r2",
                item_id="x2",
                output_index=1,
                call_id="cx",
                arguments=filing["arguments"],
            ),
            event(
                "response.done",
                response={"id": "r2", "status": "completed", "conversation_id": None, "output": [said, filing]},
            ),
        ],
        provider="openai",
    )


@pytest.mark.parametrize("named", ["x1", "x2"])
def test_erasing_out_of_band_output_by_an_item_id_erases_all_of_it(
    stores: StoreFactory, tmp_path: Path, named: str
) -> None:
    store = stores.open()
    sid = store.create()
    out_of_band_reply(store, sid)
    [reported] = store.out_of_band(sid)
    [message] = reported.messages  # the out-of-band output: one message, provider item id x1
    assert message.provider_item_id == "x1" and message.text == "Filing the report."
    assert "DE89" in message.tool_uses[0].arguments
    # realtime.md rule 7 / erasure.md: out-of-band output has no message id;
    # to erase it, name its provider item id (x1), and a realtime function
    # call's item id (x2) erases the message that holds its tool use.
    store.erase(sid, named)
    shown = repr(store.out_of_band(sid))
    assert "DE89" not in shown and "Filing the report" not in shown
    assert "Filing the report" not in repr(store.history(sid))
    assert not stored_anywhere(stores, store, sid, "DE89-3704", tmp_path)


# -- 5. deleting or truncating an item re-sent on a new connection ---------------------


def test_deleting_an_item_re_sent_on_a_new_connection_deletes_its_message(store: Transcripts) -> None:
    sid = store.create()
    resent_after_a_reconnect(store, sid)  # n1, n2 re-send u1 and a1
    assert [m.text for m in store.get(sid).messages] == ["my card 4111 1111", "Noted."]
    # The live conversation knows a1 as n2: deleting n2 deletes that message (rule 9).
    outcome = store.ingest(sid, event("conversation.item.deleted", item_id="n2"), provider="openai")
    assert outcome.status == "materialised"
    assert [m.text for m in store.get(sid).messages] == ["my card 4111 1111"]
    assert store.revisions(sid)[-1].reason.kind == "provider_deleted"


def test_truncating_an_item_re_sent_on_a_new_connection_truncates_its_message(store: Transcripts) -> None:
    sid = store.create()
    spoken = spoken_answer("a1", "Your order ships today.")
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "where is my order?")),
            event("conversation.item.added", previous_item_id="u1", item=spoken),
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed("n1", "where is my order?")),
            event("conversation.item.added", previous_item_id="n1", item={**spoken, "id": "n2"}),
        ],
        provider="openai",
    )
    assert [m.text for m in store.get(sid).messages] == ["where is my order?", "Your order ships today."]
    # The user barges in on n2's audio, played on the new connection: rule 8.
    outcome = store.ingest(
        sid, event("conversation.item.truncated", item_id="n2", content_index=0, audio_end_ms=800), provider="openai"
    )
    assert outcome.status == "materialised"
    block = store.get(sid).messages[1].blocks[0]
    assert block.truncated_at_ms == 800  # type: ignore[union-attr]


# -- 6. a late word about an erased item is discarded, not a duplicate ---------------


@pytest.mark.parametrize("word", ["late_transcription", "truncation"])
def test_a_late_word_about_an_erased_message_is_discarded_and_stored_without_content(
    store: Transcripts, word: str
) -> None:
    sid = store.create()
    spoken_then_answered(store, sid)  # u1 placed without its text (none yet), a1 "Hello!"
    if word == "late_transcription":
        store.erase(sid, "u1")
        late = transcription("u1", "my card is 4111 1111")
    else:
        store.erase(sid, "a1")
        late = event("conversation.item.truncated", item_id="a1", content_index=0, audio_end_ms=300)
    stored = len(store.history(sid))
    outcome = store.ingest(sid, late, provider="openai")
    # A new event (its id never seen), a late word about a message the
    # caller erased: realtime.md's table says `discarded`, stored without
    # its content ("what arrives for them ... later is stored without its
    # content"); `duplicate` is for what was seen before or adds nothing.
    # (After a redaction instead of the erasure, both come back discarded.)
    assert outcome.status == "discarded", outcome.reason
    assert len(store.history(sid)) == stored + 1
    assert "4111 1111" not in repr(store.history(sid))


# -- found beside them ------------------------------------------------------------


def test_parallel_results_stay_one_message_whatever_order_they_arrive_in(store: Transcripts) -> None:
    # Calls c1, c2, c3; o1 is placed; o3 (announced after o2) arrives before
    # o2. Order comes from previous_item_id, never from arrival (rule 2), and
    # results of parallel calls sent one by one stay one message (rule 4):
    # o1, o2, o3 make one message of results, as when o2 arrives first.
    sid = store.create()
    three_calls_one_answered(store, sid)
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id="o2", item=output("o3", "c3", "three")),
            event("conversation.item.added", previous_item_id="o1", item=output("o2", "c2", "two")),
        ],
        provider="openai",
    )
    results = [m for m in store.get(sid).messages if m.role == "tool_results"]
    assert [[r.tool_use_id for r in m.blocks] for m in results] == [["c1", "c2", "c3"]]  # type: ignore[attr-defined]


def test_a_replay_of_an_event_whose_content_was_erased_brings_nothing_back(store: Transcripts) -> None:
    sid = store.create()
    trace = [
        event("conversation.item.added", previous_item_id=None, item=typed("u1", "hi")),
        *spoken_reply("r1", "a1", "u1", "Your balance is 1,234."),
    ]
    store.ingest_many(sid, trace, provider="openai")
    store.erase(sid, "a1")
    stored = len(store.history(sid))
    # realtime.md: after an erasure, an event about an erased item under an
    # accepted id is a duplicate whatever it says (its stored copy no longer
    # says what it said), and nothing of it comes back. trace[4] is a1's
    # delta; the second says something else under the same id.
    for delta in (trace[4], {**trace[4], "delta": "Your balance is 9,999."}):
        outcome = store.ingest(sid, delta, provider="openai")
        assert outcome.status == "duplicate", outcome
    assert [m.text for m in store.get(sid).messages] == ["hi", ""]
    assert len(store.history(sid)) == stored
    assert "1,234" not in repr(store.history(sid)) and "9,999" not in repr(store.history(sid))


def test_a_copy_re_sent_in_an_earlier_call_is_erased_once_the_run_shows_what_it_stands_for(
    stores: StoreFactory, tmp_path: Path
) -> None:
    # n1 comes in one call and waits (it may re-send u1, whose content is
    # gone); n2 to n4 come later and end the run: n1's record, stored by the
    # first call with the text, is erased then.
    store = stores.open()
    sid = store.create()
    typed_history(store, sid)
    store.erase(sid, "u1")
    before = rows(store, sid)
    first, *rest = RESENT
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_new"}),
            event("conversation.item.added", previous_item_id=None, item=first),
        ],
        provider="openai",
    )
    previous = first["id"]
    for item in rest:
        store.ingest(sid, event("conversation.item.added", previous_item_id=previous, item=item), provider="openai")
        previous = item["id"]
    assert rows(store, sid) == before
    erasures = [entry for entry in store.history(sid) if entry.kind == "messages_erased"]
    assert len(erasures) == 2  # the caller's, then ingestion's of n1's copy
    assert not stored_anywhere(stores, store, sid, "4111 1111", tmp_path)


def test_a_new_message_is_not_taken_for_an_erased_one_without_a_run_that_matches(store: Transcripts) -> None:
    # Old transcript: u1 (erased) and a1. On a new connection the user types
    # something new, and a response starts: the run never re-sent a1, so the
    # new message is placed as written, not swallowed as a copy of u1.
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "my card 4111 1111")),
            event("conversation.item.added", previous_item_id="u1", item=answer("a1", "Noted.")),
        ],
        provider="openai",
    )
    store.erase(sid, "u1")
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed("n1", "what is my balance?")),
            event("response.created", response={"id": "r2", "status": "in_progress"}),
        ],
        provider="openai",
    )
    assert rows(store, sid) == [
        ("user", "", True),
        ("assistant", "Noted.", False),
        ("user", "what is my balance?", False),
    ]


def test_when_every_message_was_erased_a_new_message_is_never_a_copy(store: Transcripts) -> None:
    # Nothing left to compare: no run can show that a new item re-sends one.
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "my card 4111 1111")),
        ],
        provider="openai",
    )
    store.erase(sid, "u1")
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed("n1", "hello again")),
        ],
        provider="openai",
    )
    assert rows(store, sid) == [("user", "", True), ("user", "hello again", False)]


def test_a_reply_erased_while_it_streams_takes_its_place_as_a_placeholder(stores: StoreFactory, tmp_path: Path) -> None:
    # a1 is erased while its response still streams; the rest of it comes,
    # then the response ends. The reply said something (the provider keeps
    # it), so it takes its place after u1, as a placeholder: no content, no
    # empty assistant message that reads as one that said nothing.
    store = stores.open()
    sid = store.create()
    started = {"id": "a1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    said = {"response_id": "r1", "item_id": "a1", "output_index": 0, "content_index": 0}
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "hi")),
            event("response.created", response={"id": "r1", "status": "in_progress"}),
            event("response.output_item.added", response_id="r1", output_index=0, item=started),
            event("conversation.item.added", previous_item_id="u1", item=started),
            event("response.output_audio_transcript.delta", **said, delta="Your PIN is orange-kite"),
        ],
        provider="openai",
    )
    assert store.erase(sid, "a1") == [sid]
    finished = {
        **started,
        "status": "completed",
        "content": [{"type": "output_audio", "transcript": "PIN orange-kite"}],
    }
    store.ingest_many(
        sid,
        [
            event("response.output_audio_transcript.delta", **said, delta=", I repeat: orange-kite"),
            event("response.done", response={"id": "r1", "status": "completed", "output": [finished]}),
        ],
        provider="openai",
    )
    assert rows(store, sid) == [("user", "hi", False), ("assistant", "", True)]
    assert not stored_anywhere(stores, store, sid, "orange-kite", tmp_path)
