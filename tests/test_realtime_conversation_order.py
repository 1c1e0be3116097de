"""The order of the conversation, found by a fourth adversarial pass:
re-seeding matched a re-sent history against the order messages were
placed in, not the conversation's (a note inserted at the start, outputs
inserted before others); a whole re-sent history whose start repeats its
end ended its run early; and an output placed among the results after its
call took the calls' message for its own (results out of call order, a
later output rejected, a deletion removing a call); a message that got a
later content part was compared as first placed. Every expected result
is read off what the OpenAI Realtime events mean and what docs/realtime.md
promises."""

from __future__ import annotations

from typing import Any

from engine import Transcripts
from tests.test_realtime_after_erasure import answer, rows
from tests.test_realtime_caller_changes import call, calls_made, event, output, typed
from tests.test_realtime_reseed_after_erasure import (
    added,
    first_connection,
    reseeded,
    tool_blocks,
)


def system(item: str, text: str) -> dict[str, Any]:
    return {"id": item, "type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}


def answered(store: Transcripts, sid: str, announced: list[tuple[str, str]]) -> list[Any]:
    """Outputs o<n> (for call c<n>), each announced right after the given item, in this arrival order."""
    return store.ingest_many(
        sid,
        [added(previous, output(item, "c" + item[1:], "r" + item[1:])) for previous, item in announced],
        provider="openai",
    )


# -- A. re-seeding follows the order messages were settled in, not the conversation's -------


def test_a_history_with_a_note_inserted_at_the_start_re_sent_in_order_adds_nothing(store: Transcripts) -> None:
    # Rule 2: an item announced with previous_item_id null goes at the start
    # (the docs' own "Be brief." example). The transcript reads s0, u1, a1.
    # Rule 11: "a run of items whose roles and contents equal the items the
    # transcript's messages were made of, up to the last one, stands for
    # them ... nothing is added twice". The client re-sends its history in
    # conversation order: s0, u1, a1. The engine builds the list to match in
    # settlement order (u1, a1, s0), so n0 alone "reaches the end" and n1, n2
    # are added again.
    sid = store.create()
    first_connection(store, sid, [typed("u1", "hi"), answer("a1", "Hello")])
    store.ingest(sid, added(None, system("s0", "Be brief.")), provider="openai")
    before = rows(store, sid)
    assert before == [("system", "Be brief.", False), ("user", "hi", False), ("assistant", "Hello", False)]
    reseeded(store, sid, [system("n0", "Be brief."), typed("n1", "hi"), answer("n2", "Hello")])
    assert rows(store, sid) == before


def test_parallel_results_re_sent_in_conversation_order_add_nothing(store: Transcripts) -> None:
    # o2 announced after fc2, then o1 after fc2: the conversation reads fc2,
    # o1, o2 and the results message is [c1, c2] (the engine gets that
    # right). The client re-sends its history in that order; the engine
    # matches against settlement order (o2 before o1), the run "differs" at
    # n4, and the whole history is added again: the calls twice, as two
    # assistant messages, each call answered twice.
    sid = store.create()
    store.ingest(sid, event("session.created", session={"id": "sess_1"}), provider="openai")
    calls_made(store, sid, 2)
    answered(store, sid, [("fc2", "o2"), ("fc2", "o1")])
    before = tool_blocks(store, sid)
    assert before == [("user", ["look up"]), ("assistant", ["c1", "c2"]), ("tool_results", ["c1", "c2"])]
    reseeded(
        store,
        sid,
        [
            typed("n1", "look up"),
            call("n2", "c1"),
            call("n3", "c2"),
            output("n4", "c1", "r1"),
            output("n5", "c2", "r2"),
        ],
    )
    assert tool_blocks(store, sid) == before


# -- B. the first way to reach the end wins, though the whole history is being re-sent --------


def test_a_whole_history_whose_start_repeats_its_end_is_not_added_again(store: Transcripts) -> None:
    # Nothing erased. Old call: "yes", "OK", "yes", "OK". The client re-sends
    # its whole history. Rule 11: the run equals the old messages up to the
    # last one and stands for them: "nothing is added twice". The engine
    # finishes the run after n2 (n1, n2 equal the last two messages) and
    # adds n3, n4 as new messages: six messages.
    sid = store.create()
    history = [typed("u1", "yes"), answer("a1", "OK"), typed("u2", "yes"), answer("a2", "OK")]
    first_connection(store, sid, history)
    before = rows(store, sid)
    reseeded(store, sid, [{**item, "id": "n" + item["id"]} for item in history])
    assert rows(store, sid) == before


# -- C. an output placed among results after a call keeps the call's message as its own -----


def test_outputs_each_announced_after_its_own_call_keep_call_order(store: Transcripts) -> None:
    # o1 after fc1, o2 after fc2, o3 after fc3, arriving in that order. Rule
    # 4: an output placed right after a call whose message's results follow
    # it "goes among them after the results of the calls before its own,
    # whatever order the outputs arrive in". Expected [c1, c2, c3]; the
    # engine makes [c1, c3, c2] (o2 was recorded in the assistant message,
    # so o3 does not see it among the results).
    sid = store.create()
    calls_made(store, sid, 3)
    answered(store, sid, [("fc1", "o1"), ("fc2", "o2"), ("fc3", "o3")])
    assert tool_blocks(store, sid)[1:] == [("assistant", ["c1", "c2", "c3"]), ("tool_results", ["c1", "c2", "c3"])]


def test_outputs_announced_after_the_last_call_read_in_insert_after_order(store: Transcripts) -> None:
    # All three announced right after fc3, arriving o3, o2, o1. Rule 2: "of
    # two items announced after the same predecessor the later one comes
    # first": fc3, o1, o2, o3, which is call order too (rule 4). Expected
    # [c1, c2, c3]; the engine makes [c2, c1, c3].
    sid = store.create()
    calls_made(store, sid, 3)
    answered(store, sid, [("fc3", "o3"), ("fc3", "o2"), ("fc3", "o1")])
    assert tool_blocks(store, sid)[2:] == [("tool_results", ["c1", "c2", "c3"])]


def test_an_output_announced_after_an_output_placed_among_results_is_not_lost(store: Transcripts) -> None:
    # o1 after fc1, o2 after fc2, o3 right after o2. Rule 4: "an output
    # placed right after another joins its message": [c1, c2, c3]. "No event
    # raises: a bad event is rejected" -- this one is not bad. The engine
    # rejects o3 ("an assistant message cannot hold block 2 (tool_result)"):
    # it tried to put c3's result into the calls' message, and c3's result
    # is lost for good (a redelivery is rejected the same way).
    sid = store.create()
    calls_made(store, sid, 3)
    outcomes = answered(store, sid, [("fc1", "o1"), ("fc2", "o2"), ("o2", "o3")])
    assert [o.status for o in outcomes] == ["materialised"] * 3, [(o.status, o.reason) for o in outcomes]
    assert tool_blocks(store, sid)[1:] == [("assistant", ["c1", "c2", "c3"]), ("tool_results", ["c1", "c2", "c3"])]


def test_deleting_an_output_placed_among_results_leaves_its_call(store: Transcripts) -> None:
    # Rule 9: conversation.item.deleted removes *the item's* message content.
    # o2 is a tool result; deleting it must not touch the assistant's calls.
    # The engine removes the tool use c2 from the assistant message and
    # keeps c2's result: a result that answers no call.
    sid = store.create()
    calls_made(store, sid, 3)
    answered(store, sid, [("fc1", "o1"), ("fc2", "o2")])
    assert tool_blocks(store, sid)[1:] == [("assistant", ["c1", "c2", "c3"]), ("tool_results", ["c1", "c2"])]
    store.ingest(sid, event("conversation.item.deleted", item_id="o2"), provider="openai")
    assert tool_blocks(store, sid)[1:] == [("assistant", ["c1", "c2", "c3"]), ("tool_results", ["c1"])]


# -- D. a message's later content part is what a new connection re-sends ---------------


def test_a_message_that_got_a_later_content_part_is_recognised_when_re_sent(store: Transcripts) -> None:
    # Rule 10: "a later part of a message already placed joins it". The user
    # item said "Look:" (typed) and its audio part's transcription came after
    # it was placed. A new connection re-sends it as it now reads, then the
    # reply: the run equals the old messages up to the last one (rule 11).
    sid = store.create()
    mixed = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Look:"}, {"type": "input_audio", "transcript": None}],
    }
    first_connection(store, sid, [mixed, answer("a1", "Sure")])
    store.ingest(
        sid,
        event(
            "conversation.item.input_audio_transcription.completed",
            item_id="u1",
            content_index=1,
            transcript="the red one",
        ),
        provider="openai",
    )
    before = rows(store, sid)
    assert before == [("user", "Look:\nthe red one", False), ("assistant", "Sure", False)]
    resent = {
        "id": "n1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Look:"}, {"type": "input_text", "text": "the red one"}],
    }
    reseeded(store, sid, [resent, answer("n2", "Sure")])
    assert rows(store, sid) == before
