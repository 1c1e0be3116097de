"""Realtime ingestion after an erasure, a second adversarial pass over the
first pass's fixes (test_realtime_after_erasure.py): a new message taken
for the re-sent copy of an erased one (and erased), ingestion's own erasure
reaching a results message nobody erased, parallel outputs split by an
item announced between them, a deletion of a re-sent item before its run
ended, erased calls shown as calls with empty arguments, an audit record
too large for the store, and input whose text is the erasure mark. Every
expected result is read off what the OpenAI Realtime events mean and what
docs/realtime.md and docs/erasure.md promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Transcripts
from engine.state.realtime_events import ERASED_TEXT
from tests.conftest import StoreFactory
from tests.test_realtime_after_erasure import answer, out_of_band_reply, rows
from tests.test_realtime_caller_changes import (
    call,
    event,
    output,
    parallel_calls,
    stored_anywhere,
    two_calls_answered_once,
    typed,
)

# -- 1. a new message taken for the re-sent copy of an erased one -------------------


@pytest.mark.parametrize("reopened", [False, True], ids=["cached", "reopened"])
def test_a_new_message_after_a_re_seed_that_left_out_the_erased_message_is_kept(
    stores: StoreFactory, tmp_path: Path, reopened: bool
) -> None:
    # The last message of the first connection (u2) is erased. The client
    # re-seeds its history on a new connection from what it still has: u1
    # and a1 (the erased message has no content left to re-send; a client
    # re-seeding from store.get() sees an empty placeholder). Then the user
    # types a NEW question and a response starts for it.
    store = stores.open()
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "hi")),
            event("conversation.item.added", previous_item_id="u1", item=answer("a1", "Hello! How can I help?")),
            event("conversation.item.added", previous_item_id="a1", item=typed("u2", "my card is 4111 1111")),
        ],
        provider="openai",
    )
    store.erase(sid, "u2")
    if reopened:
        store = stores.open()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed("n1", "hi")),
            event("conversation.item.added", previous_item_id="n1", item=answer("n2", "Hello! How can I help?")),
            event("conversation.item.added", previous_item_id="n2", item=typed("n3", "Where is my order 5512?")),
            event("response.created", response={"id": "r9", "status": "in_progress"}),
        ],
        provider="openai",
    )
    # realtime.md rule 11: "new items go after everything the old connection
    # left", and "a typed 'yes' that repeats an old message is never
    # swallowed"; a question that repeats nothing is new. Here n3 is taken
    # for the erased u2 ("item n3 re-sends message u2; nothing added") and
    # its text is erased from the store by ingestion's own MessagesErased:
    # the user's words, which the response answers, are lost.
    assert rows(store, sid) == [
        ("user", "hi", False),
        ("assistant", "Hello! How can I help?", False),
        ("user", "", True),
        ("user", "Where is my order 5512?", False),
    ]
    assert "Where is my order 5512?" in repr(store.history(sid))


# -- 2. ingestion's extra erasure erases a results message nobody erased -------------


@pytest.mark.parametrize("placed_by", ["resolve_pending", "a_later_response"])
def test_the_extra_erasure_of_a_joining_output_leaves_other_messages_of_results_alone(
    stores: StoreFactory, tmp_path: Path, placed_by: str
) -> None:
    # r1 calls fc1 (c1) and fc2 (c2). c2's output o2 is placed (results
    # message M2), the user speaks up (u2), then c1's output o1 is placed
    # (results message M1, last). A second output for c2 (o9) is announced
    # after an item that never comes: it waits. The caller erases M1 only.
    store = stores.open()
    sid = store.create()
    store.ingest_many(
        sid,
        [
            *parallel_calls(2),
            event("conversation.item.added", previous_item_id="fc2", item=output("o2", "c2", "KEPT-RESULT")),
            event("conversation.item.added", previous_item_id="o2", item=typed("u2", "and?")),
            event("conversation.item.added", previous_item_id="u2", item=output("o1", "c1", "private")),
            event("conversation.item.added", previous_item_id="o_lost", item=output("o9", "c2", "again")),
        ],
        provider="openai",
    )
    kept = store.get(sid).messages[2]
    assert (kept.role, kept.provider_item_id) == ("tool_results", "o2")
    store.erase(sid, "o1")
    # o9 goes to the end (realtime.md "Nothing waits forever"), right after
    # o1: it joins M1, erased, so ingestion erases o9's earlier record
    # ("A caller's change stands"). Nothing in the docs lets that erase M2:
    # erasure.md: "the other side of a call, in a message that is kept,
    # keeps its records", and only M1 was named.
    if placed_by == "resolve_pending":
        store.resolve_pending(sid, "place")
    else:
        store.ingest_many(
            sid,
            [
                event("response.created", response={"id": "r2", "status": "in_progress"}),
                event("response.done", response={"id": "r2", "status": "cancelled", "output": []}),
            ],
            provider="openai",
        )
    after = store.get(sid).messages[2]
    assert after.erased is None, "a results message nobody erased was erased"
    assert [r.content_text for r in after.blocks] == ["KEPT-RESULT"]  # type: ignore[attr-defined]
    assert not stored_anywhere(stores, store, sid, "private", tmp_path)


# -- 3. parallel outputs split by an item announced in between ----------------------


def test_an_output_announced_right_after_another_joins_it_when_another_item_went_there_first(
    store: Transcripts,
) -> None:
    # Calls c1, c2; o1 (c1) is placed. The user's typed u2 is announced after
    # o1, then c2's output o2 is announced after o1 too. Insert-after (rule
    # 2): "of two items announced after the same predecessor the later one
    # comes first", so o2 goes right after o1, before u2. Rule 4: "an output
    # placed right after another joins its message ... the results of
    # parallel calls, sent one by one, stay one message, as model APIs want
    # them". Two tool_results messages in a row is what no model API takes.
    sid = store.create()
    two_calls_answered_once(store, sid)
    store.ingest(
        sid, event("conversation.item.added", previous_item_id="o1", item=typed("u2", "hm")), provider="openai"
    )
    store.ingest(
        sid, event("conversation.item.added", previous_item_id="o1", item=output("o2", "c2", "two")), provider="openai"
    )
    messages = store.get(sid).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "user"]
    assert [r.tool_use_id for r in messages[2].blocks] == ["c1", "c2"]  # type: ignore[attr-defined]


# -- 4. a deletion naming a re-sent item before its run ended is lost ---------------


def test_deleting_a_re_sent_item_before_the_run_ends_deletes_the_message_it_stands_for(store: Transcripts) -> None:
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "where is my order?")),
            event("conversation.item.added", previous_item_id="u1", item=answer("a1", "It ships today.")),
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed("n1", "where is my order?")),
            event("conversation.item.deleted", item_id="n1"),  # the client drops it from the live conversation
            event("conversation.item.added", previous_item_id="n1", item=answer("n2", "It ships today.")),
        ],
        provider="openai",
    )
    # The run n1, n2 re-sends u1, a1 (the outcome says "item n1 re-sends
    # message u1"). Rule 11: "a deletion or a truncation naming that id
    # deletes or cuts the message it stands for"; rule 9: a deletion removes
    # the item's message. The provider's conversation no longer holds it.
    assert [m.text for m in store.get(sid).messages] == ["It ships today."]


# -- 5. an erased call placed later as a call with arguments it never had ------------


def test_a_call_erased_while_its_response_streams_is_not_placed_as_a_call_with_empty_arguments(
    store: Transcripts,
) -> None:
    sid = store.create()
    paying = call("fc1", "c1", '{"card": "4111 1111"}')
    streaming = {**paying, "arguments": "", "status": "in_progress"}
    store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "pay")),
            event("response.created", response={"id": "r1", "status": "in_progress"}),
            event("response.output_item.added", response_id="r1", output_index=0, item=streaming),
            event("conversation.item.added", previous_item_id="u1", item=streaming),
            event(
                "response.function_call_arguments.done",
                response_id="r1",
                item_id="fc1",
                output_index=0,
                call_id="c1",
                arguments=paying["arguments"],
            ),
        ],
        provider="openai",
    )
    assert store.erase(sid, "fc1") == [sid]  # erased while waiting (erasure.md: it is recorded)
    store.ingest(
        sid,
        event("response.done", response={"id": "r1", "status": "completed", "output": [paying]}),
        provider="openai",
    )
    # realtime.md: an emptied record's texts read ⟨erased⟩ "and call
    # arguments {}; no message ever shows that mark". The message placed
    # for fc1 shows ToolUse(c1, lookup, "{}"), unmarked (erased is None):
    # a call the model never made, which to_openai() etc. will send on.
    for message in store.get(sid).messages:
        for use in message.tool_uses:
            assert use.arguments != "{}" or message.erased is not None, message


@pytest.mark.parametrize("named", ["x1", "x2"])
def test_erased_out_of_band_output_shows_no_call_with_arguments_it_never_had(store: Transcripts, named: str) -> None:
    sid = store.create()
    out_of_band_reply(store, sid)  # x1 says "Filing the report.", x2 calls lookup with an IBAN
    store.erase(sid, named)
    # erasure.md: out-of-band output "is one message: any of its items' ids
    # erases all of it". What out_of_band() reports afterwards still holds a
    # tool use lookup("{}") (the arguments' erasure mark), not flagged erased.
    for response in store.out_of_band(sid):
        for message in response.messages:
            assert message.blocks == () or message.erased is not None, message


# -- 6. the extra erasure's audit record is over max_event_bytes: ingest raises ----------


def test_ingest_never_raises_when_the_extra_erasure_record_is_large(stores: StoreFactory, tmp_path: Path) -> None:
    store = stores.open(max_event_bytes=20_000)
    sid = store.create()
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_1"}),
            event("conversation.item.added", previous_item_id=None, item=typed("u1", "card 4111 1111")),
            event("conversation.item.added", previous_item_id="u1", item=typed("u2", "pin 9999")),
            event("conversation.item.added", previous_item_id="u2", item=answer("a1", "Noted.")),
        ],
        provider="openai",
    )
    store.erase(sid, "u1", "u2")
    long1, long2 = "n" + "x" * 6000, "m" + "y" * 6000  # each event stays well under the limit
    store.ingest_many(
        sid,
        [
            event("session.created", session={"id": "sess_2"}),
            event("conversation.item.added", previous_item_id=None, item=typed(long1, "card 4111 1111")),
            event("conversation.item.added", previous_item_id=long1, item=typed(long2, "pin 9999")),
        ],
        provider="openai",
    )
    # realtime.md: "No event raises: a bad event is rejected with a reason".
    # The run's last item makes ingestion erase long1's and long2's records,
    # with a note and item list naming both ids (24 KB): EventTooLarge is
    # raised, and the copies' content stays stored.
    last = event("conversation.item.added", previous_item_id=long2, item=answer("n3", "Noted."))
    outcome = store.ingest(sid, last, provider="openai")
    assert outcome.status in ("staged", "materialised", "rejected")
    assert not stored_anywhere(stores, store, sid, "4111 1111", tmp_path)


# -- 7. content that is the erasure mark -----------------------------------------------


def test_content_that_is_the_erasure_mark_is_rejected_not_dropped(store: Transcripts) -> None:
    # ERASED_TEXT is what an erasure leaves in the records it empties, and no
    # message shows it: input whose text is that mark would be read as erased
    # content and dropped without a word. It is rejected with a reason.
    sid = store.create()
    outcomes = store.ingest_many(
        sid,
        [
            event("conversation.item.added", previous_item_id=None, item=typed("u1", ERASED_TEXT)),
            event("conversation.item.added", previous_item_id=None, item=typed("u2", f"{ERASED_TEXT} is a mark")),
        ],
        provider="openai",
    )
    assert outcomes[0].status == "rejected" and "erasure" in (outcomes[0].reason or "")
    assert [(m.role, m.text) for m in store.get(sid).messages] == [("user", f"{ERASED_TEXT} is a mark")]
