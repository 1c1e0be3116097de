"""Re-seeding a history on a new connection after an erasure, and where tool
outputs go, found by a third adversarial pass: a re-sent end of a history
matched to the wrong erased message, a history whose first re-sent message
occurs twice added again, an erased reply and call output re-sent at the
end of a run, a truncation of a re-sent item before its run ended, outputs
announced after a re-sent output or after their calls split into several
messages or out of call order, deltas that spell the erasure mark, and a
new typed message swallowed. Every expected result is read off what the
OpenAI Realtime events mean and what docs/realtime.md and docs/erasure.md
promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import Transcripts
from tests.conftest import StoreFactory
from tests.test_realtime_after_erasure import answer, rows, spoken_answer
from tests.test_realtime_caller_changes import call, calls_made, event, output, stored_anywhere, typed


def added(previous: str | None, item: dict[str, Any]) -> dict[str, Any]:
    return event("conversation.item.added", previous_item_id=previous, item=item)


def chained(items: list[dict[str, Any]], start: str | None = None) -> list[dict[str, Any]]:
    """``items`` announced one after another (each right after the one before)."""
    events, previous = [], start
    for item in items:
        events.append(added(previous, item))
        previous = item["id"]
    return events


def first_connection(store: Transcripts, sid: str, items: list[dict[str, Any]]) -> None:
    store.ingest_many(sid, [event("session.created", session={"id": "sess_1"}), *chained(items)], provider="openai")


def reseeded(store: Transcripts, sid: str, items: list[dict[str, Any]], *, more: list[dict[str, Any]] = ()) -> list:
    """A new connection, then the client re-creates ``items`` in order."""
    return store.ingest_many(
        sid, [event("session.created", session={"id": "sess_2"}), *chained(items), *more], provider="openai"
    )


def tool_blocks(store: Transcripts, sid: str) -> list[tuple[str, list[str]]]:
    """(role, [call ids]) of each message: tool uses' ids, results' tool_use_ids."""
    return [
        (
            m.role,
            [getattr(b, "tool_use_id", None) or getattr(b, "id", None) or getattr(b, "text", "") for b in m.blocks],
        )
        for m in store.get(sid).messages
    ]


# -- 1. a re-sent suffix that starts at an erased message ------------------------------


def test_a_suffix_re_sent_from_an_erased_message_stands_for_the_end_not_an_earlier_erased_one(
    stores: StoreFactory, tmp_path: Path
) -> None:
    # Old call: u1 (erased), a1, u2, a2, u3 (erased), a3. The client re-sends
    # only the end of its history (rule 11: "the run may start at any
    # message, since a client may re-send only the end of a long history"):
    # its copy of u3, then a3 as it was. "re-send it as an item of its kind,
    # which stands for it ... when a message re-sent as it was follows it in
    # the run": n1 is followed by an exact copy of a3, so n1 stands for u3.
    # The engine takes n1 for u1 (the first erased user message), then n2
    # does not match a1, the run "stops short", and both are added: the
    # erased "pin 9999" is back in the transcript and a3 shows twice.
    store = stores.open()
    sid = store.create()
    first_connection(
        store,
        sid,
        [
            typed("u1", "card 4111 1111"),
            answer("a1", "Noted."),
            typed("u2", "hi"),
            answer("a2", "Hello"),
            typed("u3", "pin 9999"),
            answer("a3", "Done."),
        ],
    )
    store.erase(sid, "u1", "u3")
    before = rows(store, sid)
    reseeded(store, sid, [typed("n1", "pin 9999"), answer("n2", "Done.")])
    assert rows(store, sid) == before
    assert not stored_anywhere(stores, store, sid, "pin 9999", tmp_path)


# -- 2. ordinary re-seeding (nothing erased) of a suffix whose start repeats ----------


def test_a_re_sent_suffix_is_recognised_when_its_first_message_also_occurs_earlier(store: Transcripts) -> None:
    # Nothing erased. The client re-sends the end of its history: "yes",
    # "OK two" (u2, a2). Rule 11 (as before the change): "a run of items
    # whose roles and contents equal the items the transcript's messages
    # were made of, up to the last one, stands for them ... the run may
    # start at any message". n1, n2 equal u2, a2 up to the last message.
    # The engine matches n1 with the first "yes" (u1), then n2 differs from
    # a1: both are added again.
    sid = store.create()
    first_connection(
        store, sid, [typed("u1", "yes"), answer("a1", "OK one"), typed("u2", "yes"), answer("a2", "OK two")]
    )
    before = rows(store, sid)
    reseeded(store, sid, [typed("n1", "yes"), answer("n2", "OK two")])
    assert rows(store, sid) == before


# -- 3. a whole history re-sent, ending in an erased user message and reply -----------


def test_an_erased_reply_re_sent_at_the_end_of_the_run_is_taken_for_it(stores: StoreFactory, tmp_path: Path) -> None:
    # Old call: u1 "hi", a1 "Hello", u2 "card 4111" (erased), a2 (erased).
    # The client re-sends its whole history (as the docs' own "redial"
    # example does, erased text included). Rule 11: "at the end of the run,
    # only an assistant message or a call is taken for a re-sent erased
    # one, since a client writes those only to re-send them": n4, an
    # assistant message at the end of the run, is a2's copy. The engine
    # closes the run at n3 (its user copy of u2 cannot be taken) and adds
    # n3 and n4 as new messages: the erased card number and the erased
    # reply are back in the transcript and the store.
    store = stores.open()
    sid = store.create()
    first_connection(
        store,
        sid,
        [typed("u1", "hi"), answer("a1", "Hello"), typed("u2", "card 4111 1111"), answer("a2", "Noted 4111 1111")],
    )
    store.erase(sid, "u2", "a2")
    reseeded(
        store,
        sid,
        [typed("n1", "hi"), answer("n2", "Hello"), typed("n3", "card 4111 1111"), answer("n4", "Noted 4111 1111")],
    )
    assert all(not erased for _, _, erased in rows(store, sid)[:2])
    assert "4111" not in " ".join(text for _, text, _ in rows(store, sid))
    assert not stored_anywhere(stores, store, sid, "4111 1111", tmp_path)


# -- 4. a re-sent copy of an erased tool result at the end of the run --------------------


def test_a_re_sent_copy_of_an_erased_result_does_not_answer_its_call_again(
    stores: StoreFactory, tmp_path: Path
) -> None:
    # Old call: u1, the call fc1 (c1), its output o1 (erased: it held an
    # SSN). The client re-sends its history: n1, n2 (the call c1), n3 (c1's
    # output). c1 is answered (by o1, whose message is a placeholder now);
    # a second result for it is no new result (the engine itself refuses
    # one: "call c1 is answered already ... a second result for it is not
    # stored in the transcript") and model APIs refuse two. The engine
    # appends n3 as a new tool_results message: the erased SSN is back in
    # the transcript, and c1 is answered twice.
    store = stores.open()
    sid = store.create()
    first_connection(store, sid, [typed("u1", "look up"), call("fc1", "c1"), output("o1", "c1", "SSN 078-05-1120")])
    store.erase(sid, "o1")
    reseeded(store, sid, [typed("n1", "look up"), call("n2", "c1"), output("n3", "c1", "SSN 078-05-1120")])
    results = [m for m in store.get(sid).messages if m.role == "tool_results"]
    assert len(results) == 1 and results[0].erased is not None
    assert not stored_anywhere(stores, store, sid, "078-05-1120", tmp_path)


# -- 5. a truncation naming a re-sent item before the run ends ----------------------


def test_a_truncation_naming_a_re_sent_item_before_the_run_ends_cuts_its_message(store: Transcripts) -> None:
    # Rule 11: "a deletion or a truncation naming that id, even before the
    # run ends, deletes or cuts the message it stands for". n2 re-sends a1
    # (spoken); it is truncated at 800 ms while n3, n4 are still to come.
    # The truncation is "recorded" on the held n2 and lost when the run
    # completes: a1's transcript is never cut.
    sid = store.create()
    spoken = spoken_answer("a1", "It ships today.")
    first_connection(store, sid, [typed("u1", "where?"), spoken, typed("u2", "thanks"), answer("a2", "Bye.")])
    reseeded(
        store,
        sid,
        [typed("n1", "where?"), {**spoken, "id": "n2"}],
        more=[
            event("conversation.item.truncated", item_id="n2", content_index=0, audio_end_ms=800),
            *chained([typed("n3", "thanks"), answer("n4", "Bye.")], start="n2"),
        ],
    )
    assert [m.text for m in store.get(sid).messages] == ["where?", "It ships today.", "thanks", "Bye."]
    assert store.get(sid).messages[1].blocks[0].truncated_at_ms == 800  # type: ignore[union-attr]


# -- 6. results split: an output after the re-sent copy of an output --------------------


def test_an_output_announced_after_a_re_sent_output_joins_its_message_of_results(store: Transcripts) -> None:
    # Calls c1, c2; c1's output o1 is a message of results. A new connection
    # re-sends the history (n1..n4, n4 = o1), then c2's output n5 comes right
    # after n4. The live conversation knows o1 as n4 (rule 11), and rule 4:
    # "an output placed right after another joins its message ... the
    # results of parallel calls, sent one by one, stay one message". The
    # engine makes a second tool_results message.
    sid = store.create()
    store.ingest(sid, event("session.created", session={"id": "sess_1"}), provider="openai")
    calls_made(store, sid, 2)
    store.ingest(sid, added("fc2", output("o1", "c1", "one")), provider="openai")
    reseeded(
        store,
        sid,
        [typed("n1", "look up"), call("n2", "c1"), call("n3", "c2"), output("n4", "c1", "one")],
        more=[added("n4", output("n5", "c2", "two"))],
    )
    assert tool_blocks(store, sid) == [
        ("user", ["look up"]),
        ("assistant", ["c1", "c2"]),
        ("tool_results", ["c1", "c2"]),
    ]


# -- 7. results split: outputs announced after their calls ----------------------------


def test_outputs_announced_after_the_same_call_stay_one_message(store: Transcripts) -> None:
    # Both outputs announced right after fc2 (a client giving each the last
    # call as previous_item_id). Rule 2, insert-after: "of two items
    # announced after the same predecessor the later one comes first", so
    # the conversation reads fc2, o2, o1: o1 is placed right after o2 and
    # joins its message (rule 4). The engine makes [c2] and [c1].
    sid = store.create()
    calls_made(store, sid, 2)
    store.ingest_many(
        sid, [added("fc2", output("o1", "c1", "one")), added("fc2", output("o2", "c2", "two"))], provider="openai"
    )
    assert tool_blocks(store, sid)[2:] == [("tool_results", ["c2", "c1"])]


def test_an_output_inserted_before_another_output_joins_it(store: Transcripts) -> None:
    # o2 is announced after fc2, then o1 after fc2 too: the conversation
    # reads fc2, o1, o2 (the later announced goes first). o2 is right after
    # o1: one message [c1, c2] (rule 4). The engine makes [c1] and [c2].
    sid = store.create()
    calls_made(store, sid, 2)
    store.ingest_many(
        sid, [added("fc2", output("o2", "c2", "two")), added("fc2", output("o1", "c1", "one"))], provider="openai"
    )
    assert tool_blocks(store, sid)[2:] == [("tool_results", ["c1", "c2"])]


def test_each_output_announced_after_its_own_call_keeps_call_order(store: Transcripts) -> None:
    # o1 after fc1, o2 after fc2: the conversation reads fc1, o1, fc2, o2, so
    # c1's result comes before c2's. The engine makes [c2] then [c1]: c2's
    # result before c1's, in two messages.
    sid = store.create()
    calls_made(store, sid, 2)
    store.ingest_many(
        sid, [added("fc1", output("o1", "c1", "one")), added("fc2", output("o2", "c2", "two"))], provider="openai"
    )
    results = [ids for role, ids in tool_blocks(store, sid) if role == "tool_results"]
    assert [call_id for ids in results for call_id in ids] == ["c1", "c2"]
    assert len(results) == 1


# -- 8. the erasure mark arrived at in pieces ----------------------------------------------


def test_deltas_that_add_up_to_the_erasure_mark_are_not_dropped_without_a_word(store: Transcripts) -> None:
    # realtime.md: "Input whose text is the mark itself is rejected: it
    # would read as erased content"; rule 10: "nothing in it is dropped
    # without a word". The reply's text is the mark, streamed in two
    # deltas: every event is accepted (materialised/staged, no reason) and
    # the reply becomes an assistant message with no text, not erased.
    sid = store.create()
    started = {"id": "a1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    said = {"response_id": "r1", "item_id": "a1", "output_index": 0, "content_index": 0}
    outcomes = store.ingest_many(
        sid,
        [
            added(None, typed("u1", "say it")),
            event("response.created", response={"id": "r1", "status": "in_progress"}),
            event("response.output_item.added", response_id="r1", output_index=0, item=started),
            added("u1", started),
            event("response.output_text.delta", **said, delta="\u27e8era"),
            event("response.output_text.delta", **said, delta="sed\u27e9"),
            event(
                "response.done",
                response={"id": "r1", "status": "completed", "output": [{**started, "status": "completed"}]},
            ),
        ],
        provider="openai",
    )
    reply = store.get(sid).messages[-1]
    silently_emptied = reply.role == "assistant" and reply.blocks == () and reply.erased is None
    assert not silently_emptied or any(o.status == "rejected" for o in outcomes), [
        (o.status, o.reason) for o in outcomes
    ]


# -- 9. a typed "yes" swallowed because the last message was an erased reply -------------


def test_a_new_typed_message_is_not_swallowed_when_only_an_erased_reply_followed_its_twin(
    store: Transcripts,
) -> None:
    # Old call: u1 "hi", a1 "Hello", u2 "yes", a2 (erased). On a new
    # connection the client re-seeds nothing; the user types "yes" (new:
    # they confirm something else) and a response starts for it. Rule 11:
    # "Until the run reaches the last message its items wait; a run that
    # stops short (a response starts ...) was new after all ... so a typed
    # "yes" that repeats an old message is never swallowed." The run never
    # reached a2, and no assistant message stood for it. The engine counts
    # the run "whole" (only an erased message left) and swallows the "yes":
    # the response answers words that are nowhere in the transcript.
    sid = store.create()
    first_connection(
        store, sid, [typed("u1", "hi"), answer("a1", "Hello"), typed("u2", "yes"), answer("a2", "Booked, card 4111.")]
    )
    store.erase(sid, "a2")
    reseeded(
        store,
        sid,
        [typed("n1", "yes")],
        more=[event("response.created", response={"id": "r9", "status": "in_progress"})],
    )
    assert [(role, text) for role, text, _ in rows(store, sid)][-1] == ("user", "yes")
