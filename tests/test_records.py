"""Child sessions, task lists, pending questions, compaction records, the
tool-call audit and titles from the first user message, on every backend:
audited in history(), visible through get(at=...), kept across reopening,
refused with typed errors that change nothing. Expected values are the
ones the tests set."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from engine import (
    Child,
    Compaction,
    EngineError,
    InvalidArgument,
    InvalidMessage,
    InvalidRewriteRange,
    Message,
    NoOpRewrite,
    Question,
    SessionHasChildren,
    SessionHasForks,
    SessionNotFound,
    Spawn,
    Task,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
)
from engine.facade import _erasure
from tests.conftest import StoreFactory


def test_a_child_session_is_linked_both_ways(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=2)
    parent = store.create(title="Trip planner")
    store.append(parent, Message.user("Plan a weekend in Bergen."))
    child = store.spawn(parent, task="find trains Oslo-Bergen", name="researcher", model="gpt-5", actor="planner")
    grandchild = store.spawn(child, task="check seat prices")

    assert store.get(child).spawn == Spawn(
        parent=parent, root=parent, depth=1, task="find trains Oslo-Bergen", name="researcher"
    )
    assert store.get(grandchild).spawn == Spawn(parent=child, root=parent, depth=2, task="check seat prices")
    assert (store.get(child).kind, store.get(parent).kind, store.get(child).parent) == ("child", "root", parent)
    # A child is a new conversation: empty, with the header it was given.
    assert list(store.get(child).messages) == [] and store.get(child).header.model == "gpt-5"
    assert store.get(parent).children == (Child(session_id=child, task="find trains Oslo-Bergen", name="researcher"),)
    assert [s.id for s in store.children(parent)] == [child]
    assert [s.id for s in store.children(child)] == [grandchild]
    assert store.children(grandchild) == []

    # The parent's record is an audited event; before it, there were no children.
    entries = store.history(parent)
    assert [e.kind for e in entries] == ["session_created", "messages_appended", "child_spawned"]
    assert entries[-1].actor == "planner" and child in entries[-1].summary
    assert store.get(parent, at=2).children == ()
    assert [e.kind for e in store.history(child)] == ["session_created", "header_changed", "child_spawned"]

    # The sub-agent's status follows its lifecycle, and its outcome is kept.
    assert store.get(child).subagent_status == "spawning"
    store.set_status(child, "active")
    assert store.children(parent)[0].subagent_status == "running"
    store.set_status(child, "finished", outcome="3 trains, the 08:25 is cheapest")
    done = store.children(parent)[0]
    assert (done.subagent_status, done.header.outcome) == ("completed", "3 trains, the 08:25 is cheapest")

    reopened = stores.open()
    assert reopened.get(parent).children == store.get(parent).children
    assert reopened.get(grandchild).spawn == store.get(grandchild).spawn
    assert reopened.get(child).header.outcome == "3 trains, the 08:25 is cheapest"


def test_spawn_refuses_bad_input_and_writes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    parent = store.create()
    with pytest.raises(SessionNotFound):
        store.spawn("no-such-session", task="x")
    with pytest.raises(InvalidArgument, match="no field"):
        store.spawn(parent, colour="red")
    with pytest.raises(InvalidArgument, match="NUL"):
        store.spawn(parent, task="a\x00b")
    assert store.get(parent).version == 1 and [info.id for info in store.sessions()] == [parent]


def test_a_deleted_child_leaves_the_list_of_children_but_not_the_record(stores: StoreFactory) -> None:
    store = stores.open()
    parent = store.create()
    first, second = store.spawn(parent, task="a"), store.spawn(parent, task="b")
    store.delete(first)
    assert [s.id for s in store.children(parent)] == [second]
    assert [c.session_id for c in store.get(parent).children] == [first, second]


def test_a_task_list_is_set_updated_and_kept_in_the_past(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=3)
    sid = store.create()
    plan = [
        Task(id="book", description="Book the train", criteria=("seat reserved", "paid")),
        Task(id="hotel", description="Find a hotel"),
    ]
    store.set_task_list(sid, plan)
    updated = store.update_task(sid, "book", status="in_progress", criteria_met=["paid"], notes="card ok")
    assert updated == Task(
        id="book",
        description="Book the train",
        status="in_progress",
        notes="card ok",
        criteria=("seat reserved", "paid"),
        criteria_met=("paid",),
    )
    store.update_task(sid, "hotel", status="completed")
    now = store.get(sid).task_list
    assert now is not None and [(t.id, t.status) for t in now] == [("book", "in_progress"), ("hotel", "completed")]
    assert store.get(sid, at=2).task_list == tuple(plan)
    assert store.get(sid, at=1).task_list is None
    assert [e.summary for e in store.history(sid)][1:] == [
        "task list: 2 tasks, 0 completed",
        "task list: task 'book' in_progress; 2 tasks, 0 completed",
        "task list: task 'hotel' completed; 2 tasks, 1 completed",
    ]
    store.set_task_list(sid, None)
    assert store.get(sid).task_list is None
    assert stores.open().get(sid, at=4).task_list == now
    store.set_task_list(sid, plan[:1])
    assert store.history(sid)[-1].summary == "task list: 1 task, 0 completed"


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([Task(id="a", description="x"), Task(id="a", description="y")], "used twice"),
        ([Task(id="a", description="x", status="done")], "status must be one of"),
        ([Task(id="", description="x")], "non-empty"),
        ([Task(id="a", description="x", criteria_met=("tested",))], "not among its criteria"),
        (["write the docs"], "not a Task"),
        ("write the docs", "a list of Task"),
    ],
)
def test_a_bad_task_list_is_refused(stores: StoreFactory, tasks: object, message: str) -> None:
    store = stores.open()
    sid = store.create()
    with pytest.raises(InvalidArgument, match=message):
        store.set_task_list(sid, tasks)  # type: ignore[arg-type]
    assert store.get(sid).version == 1


def test_update_task_refuses_what_the_list_cannot_take(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    with pytest.raises(InvalidArgument, match="no task list"):
        store.update_task(sid, "a", status="completed")
    store.set_task_list(sid, [Task(id="a", description="x", criteria=("tested",))])
    with pytest.raises(InvalidArgument, match="no task 'b'"):
        store.update_task(sid, "b", status="completed")
    with pytest.raises(InvalidArgument, match="not among its criteria"):
        store.update_task(sid, "a", criteria_met=["reviewed"])
    with pytest.raises(InvalidArgument, match="needs a status"):
        store.update_task(sid, "a")
    assert store.get(sid).version == 2


def test_a_pending_question_is_asked_and_answered(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    with pytest.raises(InvalidArgument, match="no tool call 'call_7'"):
        store.set_pending_question(sid, "Which day?", tool_call_id="call_7")
    store.append(sid, Message.assistant(ToolUse(id="call_7", name="ask_user", arguments="{}")))
    store.set_pending_question(
        sid, "Which day do you travel?", ["Friday", "Saturday"], allow_custom=False, tool_call_id="call_7",
        tool_name="ask_user",
    )  # fmt: skip
    asked = Question(
        question="Which day do you travel?",
        options=("Friday", "Saturday"),
        allow_custom=False,
        tool_call_id="call_7",
        tool_name="ask_user",
    )
    assert store.get(sid).pending_question == asked
    with pytest.raises(InvalidArgument, match="no custom answers"):
        store.clear_pending_question(sid, answer="Sunday")
    store.clear_pending_question(sid, answer="Saturday", actor="user")
    assert store.get(sid).pending_question is None
    assert store.get(sid, at=3).pending_question == asked
    assert [e.summary for e in store.history(sid)][2:] == [
        "question asked: 'Which day do you travel?'",
        "question answered: 'Saturday'",
    ]
    with pytest.raises(InvalidArgument, match="no pending question"):
        store.clear_pending_question(sid)
    with pytest.raises(InvalidArgument, match="must allow a custom answer"):
        store.set_pending_question(sid, "Go on?", [], allow_custom=False)
    with pytest.raises(InvalidArgument, match="must not repeat"):
        store.set_pending_question(sid, "Go on?", ["yes", "yes"])
    assert store.get(sid).version == 4
    assert stores.open().get(sid, at=3).pending_question == asked


def test_a_compaction_rewrites_and_records_its_figures_in_one_transaction(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(
        sid, Message.user("Hi"), Message.assistant("Hello"), Message.user("Plan Bergen"), Message.assistant("OK")
    )
    commit = store.compact(
        sid, 0, 3, Message.system("Summary: the user wants a Bergen plan."), trigger="auto", tokens_before=1200,
        tokens_after=90, model="summariser-1", latency_ms=850, note="over 1,000 tokens",
    )  # fmt: skip
    assert (commit.reason.kind, commit.reason.note, commit.start, commit.end, commit.count_after) == (
        "compaction",
        "over 1,000 tokens",
        0,
        3,
        2,
    )
    session = store.get(sid)
    assert [m.text for m in session.messages] == ["Summary: the user wants a Bergen plan.", "OK"]
    assert session.compactions == (
        Compaction(
            version=3,
            revision=commit.revision,
            start=0,
            messages_compressed=3,
            messages_after=1,
            trigger="auto",
            tokens_before=1200,
            tokens_after=90,
            model="summariser-1",
            latency_ms=850,
        ),
    )
    assert session.compactions[0].ratio == 90 / 1200
    assert [e.kind for e in store.history(sid)] == ["session_created", "messages_appended", "messages_rewritten"]
    assert (
        store.history(sid)[-1].summary
        == "compaction (over 1,000 tokens), auto, tokens 1200 -> 90: [0, 3) replaced by 1 message"
    )
    # The figures travel in the rewrite's own event: the version that compacted holds them.
    assert commit.version == 3 and store.get(sid, at=3).compactions == session.compactions
    assert store.get(sid, at=2).compactions == () and len(store.get(sid, at=2).messages) == 4
    # The messages compacted stay in the history.
    assert [m.text for m in store.get(sid, at=2).messages][:3] == ["Hi", "Hello", "Plan Bergen"]
    assert stores.open().get(sid).compactions == session.compactions


def test_a_bad_compaction_changes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("Hi"))
    with pytest.raises(InvalidArgument, match="trigger"):
        store.compact(sid, 0, 1, Message.user("S"), trigger="sometimes")
    with pytest.raises(InvalidArgument, match="tokens_before"):
        store.compact(sid, 0, 1, Message.user("S"), tokens_before=-1)
    with pytest.raises(InvalidRewriteRange):
        store.compact(sid, 0, 5, Message.user("S"))
    with pytest.raises(NoOpRewrite):
        store.compact(sid, 0, 1, Message.user("Hi"))
    with pytest.raises(InvalidArgument, match="holds none"):
        store.compact(sid, 1, 1, Message.user("S"))  # nothing compacted
    store.rewrite(sid, 0, 1, [Message.user("S")], "compaction")  # a plain rewrite records no figures
    assert store.get(sid).version == 3 and store.get(sid).compactions == ()


def test_a_fork_keeps_the_working_records_but_not_children_or_compactions(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("a"), Message.assistant("b"))
    store.set_task_list(sid, [Task(id="t", description="x")])
    store.set_pending_question(sid, "Go on?")
    store.spawn(sid, task="help")
    store.compact(sid, 0, 1, Message.user("summary"))
    store.set_status(sid, "finished", outcome="done")
    fork = store.get(store.fork(sid))
    assert (fork.task_list, fork.pending_question) == (store.get(sid).task_list, store.get(sid).pending_question)
    assert (fork.children, fork.compactions, fork.spawn) == ((), (), None)
    assert (fork.status, fork.header.outcome) == ("started", None)


def test_the_tool_call_audit_pairs_calls_with_results_and_times(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=2)
    sid = store.create()
    store.append(sid, Message.user("Weather in Oslo and Bergen?"))
    store.append(
        sid,
        Message.assistant(
            ToolUse(id="c1", name="weather", arguments='{"city": "Oslo"}'),
            ToolUse(id="c2", name="weather", arguments='{"city": "Bergen"}'),
        ),
    )
    store.append(
        sid,
        Message(
            role="tool_results",
            blocks=(
                ToolResult(tool_use_id="c1", content=(Text(text="4 C, rain"),)),
                ToolResult(tool_use_id="c2", content=(Text(text="no such station"),), is_error=True),
            ),
        ),
    )
    store.append(sid, Message.assistant(ToolUse(id="c3", name="book", arguments="{}")))
    calls = store.tool_calls(sid)
    assert [(c.call_id, c.name, c.arguments, c.position, c.result, c.is_error, c.result_position) for c in calls] == [
        ("c1", "weather", '{"city": "Oslo"}', 1, "4 C, rain", False, 2),
        ("c2", "weather", '{"city": "Bergen"}', 1, "no such station", True, 2),
        ("c3", "book", "{}", 3, None, False, None),
    ]
    times = {entry.version: entry.at for entry in store.history(sid)}
    assert (calls[0].called_at, calls[0].answered_at) == (times[3], times[4])
    assert calls[0].duration_ms == round((times[4] - times[3]) / timedelta(milliseconds=1))
    assert calls[2].duration_ms is None
    # The session view has the same pairs, without the times.
    assert [(c.call_id, c.result) for c in store.get(sid).tool_calls] == [(c.call_id, c.result) for c in calls]
    assert store.get(sid).tool_call_count == 3


def test_the_audit_keeps_every_call_when_turns_reuse_a_call_id(stores: StoreFactory) -> None:
    # Found by a newcomer: many local model servers call every turn's tool
    # call_0, and the audit kept only the first (keyed by call id alone).
    store = stores.open(snapshot_interval=3)
    sid = store.create()
    for city in ["Oslo", "Bergen", "Tromsø"]:
        store.append(sid, Message.user(f"weather in {city}?"))
        store.append(sid, Message.assistant(ToolUse(id="call_0", name="weather", arguments=f'{{"city": "{city}"}}')))
        store.append(sid, Message.tool_results(ToolResult.of("call_0", f"{city}: rain")))
        store.append(sid, Message.assistant(f"It rains in {city}."))
    store.rewrite(sid, 11, 12, [Message.assistant("Rain in Tromsø.")])  # writes no call: nothing changes
    calls = store.tool_calls(sid)
    assert [(c.call_id, c.arguments, c.position, c.result, c.result_position) for c in calls] == [
        ("call_0", '{"city": "Oslo"}', 1, "Oslo: rain", 2),
        ("call_0", '{"city": "Bergen"}', 5, "Bergen: rain", 6),
        ("call_0", '{"city": "Tromsø"}', 9, "Tromsø: rain", 10),
    ]
    assert [(c.arguments, c.result) for c in store.get(sid).tool_calls] == [(c.arguments, c.result) for c in calls]
    fork = store.fork_at(sid, 8)  # the first two turns
    assert [(c.arguments, c.result) for c in stores.open().tool_calls(fork)] == [
        ('{"city": "Oslo"}', "Oslo: rain"),
        ('{"city": "Bergen"}', "Bergen: rain"),
    ]
    retry = store.fork_replacing(sid, 10, Message.tool_results(ToolResult.of("call_0", "Tromsø: snow")))
    assert [(c.arguments, c.result, c.result_position) for c in stores.open().tool_calls(retry)][-1] == (
        '{"city": "Tromsø"}',
        "Tromsø: snow",
        10,
    )


def test_the_audit_follows_a_restore_and_a_message_id_given_twice(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: after a rewrite and a restore, the result
    # went to the call rewritten away; and a message id given again hid the
    # second call and its result.
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("q"))
    store.append(sid, Message.assistant(ToolUse(id="call_0", name="first")))
    before = store.get(sid).revision
    store.rewrite(sid, 1, 2, [Message.assistant(ToolUse(id="call_0", name="second"))])
    store.restore(sid, before)
    store.append(sid, Message.tool_results(ToolResult.of("call_0", "answer")))
    calls = [(c.name, c.result, c.position, c.result_position) for c in stores.open().tool_calls(sid)]
    assert calls == [("first", "answer", 1, 2), ("second", None, None, None)]

    other = store.create()  # a message id given twice: refused now, held by stores written before
    monkeypatch.setattr("engine.decisions.transcript.check_ids_free", lambda *args: None)  # as engines before did
    store.append(other, Message.user("q"))
    store.append(other, Message.assistant(ToolUse(id="call_0", name="first"), id="turn"))
    store.append(other, Message.tool_results(ToolResult.of("call_0", "A")))
    store.append(other, Message.assistant(ToolUse(id="call_0", name="second", arguments='{"x":1}'), id="turn"))
    store.append(other, Message.tool_results(ToolResult.of("call_0", "B")))
    monkeypatch.undo()
    assert [(c.name, c.result) for c in stores.open().tool_calls(other)] == [("first", "A"), ("second", "B")]


def test_a_rewrite_that_keeps_a_call_keeps_it_as_the_same_call(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by a newcomer: redacting the text beside a call (a rewrite gives
    # the message a new id) listed the call twice, the live one unanswered;
    # and turns that give the same message id again merged their calls.
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("q"))
    store.append(
        sid, Message.assistant("Looking up ana@example.com", ToolUse(id="c1", name="crm", arguments='{"q": 1}'))
    )
    store.append(sid, Message.tool_results(ToolResult.of("c1", "found")))
    redacted = Message.assistant("Looking up [email]", ToolUse(id="c1", name="crm", arguments='{"q": 1}'))
    store.rewrite(sid, 1, 2, [redacted], "redaction")
    calls = [(c.call_id, c.result, c.position, c.result_position) for c in stores.open().tool_calls(sid)]
    assert calls == [("c1", "found", 1, 2)]
    store.rewrite(sid, 1, 2, [Message.assistant(ToolUse(id="c1", name="crm", arguments='{"q": 2}'))])
    calls = [(c.arguments, c.result, c.position, c.result_position) for c in stores.open().tool_calls(sid)]
    assert calls == [('{"q": 1}', "found", None, None), ('{"q": 2}', None, 1, 2)]  # other arguments: another call

    both = store.create()  # a rewrite of the call and its result together, then a fork
    store.append(both, Message.user("q"))
    store.append(both, Message.assistant("look up ana", ToolUse(id="c1", name="crm")))
    store.append(both, Message.tool_results(ToolResult.of("c1", "found ana")))
    redacted_pair = [
        Message.assistant("look up [name]", ToolUse(id="c1", name="crm")),
        Message.tool_results(ToolResult.of("c1", "found [name]")),
    ]
    store.rewrite(both, 1, 3, redacted_pair, "redaction")
    fork = store.fork(both)
    for session in (both, fork):  # the first result written, and where a result for it is now
        assert [(c.result, c.position, c.result_position) for c in stores.open().tool_calls(session)] == [
            ("found ana", 1, 2)
        ]

    renamed = store.create()  # the call rewritten to another one, its old result kept, then a fork
    store.append(renamed, Message.user("q"))
    store.append(renamed, Message.assistant(ToolUse(id="c1", name="a")))
    store.append(renamed, Message.tool_results(ToolResult.of("c1", "r1")))
    store.rewrite(renamed, 1, 2, [Message.assistant(ToolUse(id="c1", name="b"))])
    expected = [("a", "r1", None, None), ("b", None, 1, 2)]
    assert [(c.name, c.result, c.position, c.result_position) for c in store.tool_calls(renamed)] == expected
    fork = store.fork(renamed)  # raised KeyError
    assert [(c.name, c.result, c.position, c.result_position) for c in stores.open().tool_calls(fork)] == [
        ("b", None, 1, 2)
    ]

    turns = store.create()  # a message id given twice: refused now, held by stores written before
    monkeypatch.setattr("engine.decisions.transcript.check_ids_free", lambda *args: None)  # as engines before did
    for number in range(2):
        store.append(turns, Message.user(f"time? {number}"))
        store.append(turns, Message.assistant(ToolUse(id="call_0", name="now"), id="m-tool"))
        store.append(turns, Message.tool_results(ToolResult.of("call_0", f"12:0{number}")))
    monkeypatch.undo()
    calls = [(c.result, c.position, c.result_position) for c in stores.open().tool_calls(turns)]
    assert calls == [("12:00", 1, 2), ("12:01", 4, 5)]


def test_a_title_comes_from_the_first_user_message_as_an_audited_change(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    assert store.generate_title(sid) is None and store.get(sid).version == 1  # nothing to take it from
    store.append(sid, Message.system("You are a travel agent."))
    store.append(sid, Message.user("\n  Plan   a weekend in Bergen for two adults in May, by train\nthanks"))
    assert store.generate_title(sid, actor="titler") == "Plan a weekend in Bergen for two adults in May…"
    assert len("Plan a weekend in Bergen for two adults in May…") == 47
    assert store.history(sid)[-1].summary == "title set to 'Plan a weekend in Bergen for two adults in May…'"
    assert store.history(sid)[-1].actor == "titler"
    store.set_title(sid, "Bergen")
    assert store.generate_title(sid) == "Bergen"  # a title set stays
    assert store.generate_title(sid, force=True, width=10) == "Plan a we…"
    with pytest.raises(InvalidArgument, match="width"):
        store.generate_title(sid, width=0)


def test_the_audit_keeps_calls_compacted_away_and_a_forks_inherited_calls(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("Book a train"))
    store.append(sid, Message.assistant(ToolUse(id="s1", name="search", arguments='{"to": "Bergen"}')))
    store.append(sid, Message.tool_results(ToolResult.of("s1", "08:25, 16:25")))
    store.append(sid, Message.assistant("The 08:25 then."))
    fork = store.fork(sid)
    store.compact(sid, 0, 3, Message.system("The user booked the 08:25."), tokens_before=400, tokens_after=20)
    times = {entry.version: entry.at for entry in store.history(sid)}

    [call] = store.tool_calls(sid)
    assert (call.call_id, call.name, call.result, call.position, call.result_position) == (
        "s1",
        "search",
        "08:25, 16:25",
        None,  # compacted away: still in the audit, no longer in the transcript
        None,
    )
    assert (call.called_at, call.answered_at) == (times[3], times[4])
    assert store.get(sid).tool_calls == []
    # The fork holds the call from its source, with the source's times.
    [inherited] = store.tool_calls(fork)
    assert (inherited.position, inherited.result_position, inherited.called_at) == (1, 2, times[3])
    store.append(fork, Message.assistant(ToolUse(id="b1", name="book", arguments="{}")))
    assert [c.call_id for c in store.tool_calls(fork)] == ["s1", "b1"]
    assert store.tool_calls(fork)[1].result is None and store.tool_calls(fork)[1].position == 4


def test_an_outcome_belongs_to_the_run_that_ended(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create(status="active")
    with pytest.raises(InvalidArgument, match="only with a status that ended"):
        store.set_status(sid, "idle", outcome="half done")
    with pytest.raises(InvalidArgument, match="only with a status that ended"):
        store.set_header(sid, outcome="done")  # still active
    store.set_status(sid, "finished", outcome="done once")
    store.set_header(sid, outcome="done, and reviewed")  # finished: the outcome may be corrected
    assert store.get(sid).header.outcome == "done, and reviewed"
    store.set_status(sid, "active")  # running again: the last run's outcome goes
    assert (store.get(sid).header.outcome, store.get(sid).subagent_status) == (None, "running")
    assert store.get(sid, at=4).header.outcome == "done, and reviewed"
    assert store.history(sid)[-1].summary == "header status active, outcome cleared"
    with pytest.raises(InvalidArgument, match="only with a status that ended"):
        store.spawn(sid, outcome="premature")
    assert store.get(sid).version == 5


def test_a_parent_is_deleted_only_with_its_children(stores: StoreFactory) -> None:
    store = stores.open()
    parent = store.create()
    child = store.spawn(parent, task="t")
    grandchild = store.spawn(child, task="g")
    fork_of_child = store.fork(child)
    with pytest.raises(SessionHasChildren) as refused:
        store.delete(parent)
    assert refused.value.children == [child, grandchild]
    assert [info.id for info in store.sessions()] == [parent, child, grandchild, fork_of_child]  # nothing deleted
    with pytest.raises(SessionHasForks):
        store.delete(parent, with_children=True)  # the child has a fork
    assert sorted(store.delete(parent, with_children=True, with_forks=True)) == sorted(
        [parent, child, grandchild, fork_of_child]
    )
    assert store.sessions() == []


def test_a_child_and_the_deletion_of_its_parent_never_both_succeed(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial run: spawn() records the child in the parent,
    # then writes the child; a deletion of the parent in between (another
    # process) left a child naming a deleted parent, in 153 of 300 races.
    spawner, deleter = stores.open(), stores.open()
    parent = spawner.create()
    repository = spawner._repository  # type: ignore[attr-defined]
    commit = repository.commit

    def deleted_first(before: Any, events: Any, after: Any) -> Any:
        if before is None and after.spawn is not None:  # the child's own write
            deleter.delete(parent)
        return commit(before, events, after)

    monkeypatch.setattr(repository, "commit", deleted_first)
    with pytest.raises(SessionNotFound, match=parent):
        spawner.spawn(parent, task="t", session_id="child")
    monkeypatch.undo()
    assert stores.open().sessions() == []

    # The other order: a child written after the deletion listed the
    # children (none then) is found by the deleting transaction itself.
    parent = spawner.create()
    child = spawner.spawn(parent, task="t")
    listing = _erasure.sessions
    views: list[int] = []

    def stale_once(repository: Any, wanted: Any = None) -> Any:
        views.append(1)
        return [] if len(views) == 1 else listing(repository, wanted=wanted)  # the first listing: no children

    monkeypatch.setattr(_erasure, "sessions", stale_once)
    with pytest.raises(SessionHasChildren) as refused:
        deleter.delete(parent)
    assert refused.value.children == [child]
    views.clear()
    assert deleter.delete(parent, with_children=True) == [parent, child]  # listed again: it goes too
    monkeypatch.undo()
    assert stores.open().sessions() == []


def test_a_child_whose_listing_row_keeps_no_summary_still_keeps_its_parent(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deleting transaction read each child's parent from its listing
    # row's summary, which a session whose metadata holds NUL does not keep:
    # a child spawned meanwhile (a stale listing) was left naming a deleted parent.
    store = stores.open()
    parent = store.create()
    child = store.spawn(parent, task="t")
    store.update_metadata(child, {"note": "a\x00b"})
    monkeypatch.setattr(_erasure, "sessions", lambda repository, wanted=None: [])  # the listing misses the child
    with pytest.raises(SessionHasChildren) as refused:
        store.delete(parent)
    assert refused.value.children == [child]
    monkeypatch.undo()
    assert {info.id for info in stores.open().sessions()} == {parent, child}


def test_values_whose_order_is_stored_refuse_sets_and_mappings(stores: StoreFactory) -> None:
    # Found by an adversarial run: set_tags({"alpha", "beta", "gamma"}) was
    # stored in the order of the process's hash seed, and remove={"a": "x"}
    # quietly removed the key "a" (a set of keys to remove is stored sorted).
    store = stores.open()
    sid = store.create(metadata={"a": 1})
    store.set_task_list(sid, [Task(id="t", description="d", criteria=("x", "y"))])
    before = store.history(sid)
    for write, words in (
        (lambda: store.set_tags(sid, {"alpha", "beta"}), "tags must be a list of str, got {"),
        (lambda: store.set_tags(sid, {"alpha": 1}), "tags must be a list of str"),
        (lambda: store.update_metadata(sid, remove={"a": "x"}), "remove= takes the keys to remove (a list or set"),
        (lambda: store.set_pending_question(sid, "which?", {"x", "y"}), "options must be a list of str"),
        (lambda: store.update_task(sid, "t", criteria_met={"x", "y"}), "criteria_met must be a list of str"),
        (lambda: store.set_task_list(sid, {Task(id="u", description="d")}), "a task list must be a list of Task"),
        (lambda: store.set_tags(sid, 5), "tags must be a list of str, got 5"),
    ):
        with pytest.raises(InvalidArgument, match=r"must be a list of|takes the keys") as refused:
            write()
        assert str(refused.value).startswith(words), str(refused.value)
    with pytest.raises(InvalidArgument, match=r"\(its order is not kept\): pass a sorted list"):
        store.set_tags(sid, frozenset({"a"}))
    assert stores.open().history(sid) == before
    store.set_tags(sid, ("beta", "alpha"))
    store.update_metadata(sid, {"b": 1, "c": 2, "d": 3})
    store.update_metadata(sid, remove={"d", "a", "c"})  # the order does not matter to a removal: stored sorted
    assert stores.open().get(sid).header.tags == ("beta", "alpha")
    assert stores.open().get(sid).metadata == {"b": 1}
    assert stores.open().history(sid)[-1].event.unset == ("a", "c", "d")


def test_subclasses_are_refused_before_anything_is_stored(stores: StoreFactory) -> None:
    # Found by an adversarial pass: a Task or Message subclass was stored with
    # its own fields, and no reader could decode the session again.
    class PriorityTask(Task, frozen=True, kw_only=True):
        priority: int = 0

    class MyMessage(Message, frozen=True, kw_only=True):
        mood: str = "calm"

    class MyText(Text, frozen=True):
        pass

    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("a"), Message.assistant("b"))
    with pytest.raises(InvalidArgument, match="not a Task"):
        store.set_task_list(sid, [PriorityTask(id="a", description="d", priority=2)])
    with pytest.raises(InvalidMessage, match="subclass of Message"):
        store.compact(sid, 0, 1, MyMessage(role="user", blocks=(Text(text="s"),)))
    with pytest.raises(InvalidMessage):
        store.append(sid, Message(role="user", blocks=(MyText(text="s"),)))
    with pytest.raises(InvalidArgument):
        store.set_task_list(sid, [Task(id="a", description="d", criteria=("\ud800",))])
    assert store.get(sid).version == 2 and stores.open().verify(sid).version == 2


def test_children_leaves_out_a_session_that_took_a_deleted_childs_id(stores: StoreFactory) -> None:
    store = stores.open()
    parent = store.create()
    store.spawn(parent, session_id="kid")
    store.delete("kid")
    store.create("unrelated", session_id="kid")
    assert store.children(parent) == [] and store.sessions(parent=parent) == []
    with pytest.raises(InvalidArgument, match="force must be a bool"):
        store.generate_title(parent, force="no")  # type: ignore[arg-type]


def test_compact_with_an_expected_revision_catches_up_with_another_writer(stores: StoreFactory) -> None:
    # Found reading the change: compact() did not pass its expected revision
    # on, so a store object with a stale cached head refused a compaction of
    # the very revision it was told to expect.
    writer, other = stores.open(), stores.open()
    sid = writer.create()
    writer.append(sid, Message.user("a"), Message.assistant("b"))
    head = other.append(sid, Message.user("c"))  # writer's cache is behind now
    commit = writer.compact(sid, 0, 2, Message.system("summary"), expected_revision=head)
    assert commit.parent_revision == head
    assert [m.text for m in writer.get(sid).messages] == ["summary", "c"]


def _audit_agrees_with_the_transcript(store: Transcripts, sid: str) -> None:
    """Every tool use the transcript holds is one call of the audit, at its
    position, and a result position holds a result for that call."""
    head = store.get(sid)
    calls = store.tool_calls(sid)
    live = sorted((c.position, c.call_id, c.name, c.arguments) for c in calls if c.position is not None)
    uses = sorted((i, u.id, u.name, u.arguments) for i, m in enumerate(head.messages) for u in m.tool_uses)
    assert live == uses
    for call in calls:
        if call.result_position is not None:
            holder = head.messages[call.result_position]
            assert holder.role == "tool_results"
            assert any(getattr(block, "tool_use_id", None) == call.call_id for block in holder.blocks)


@pytest.mark.parametrize("seed", range(200))
def test_the_audit_agrees_with_the_transcript_after_any_mix_of_writes(seed: int) -> None:
    # Random appends (call ids, names and message ids reused), rewrites that
    # copy, rename or replace messages, restores, forks and erasures: what
    # found a call the audit lost, and a fork that raised KeyError.
    rng = random.Random(seed)
    store = Transcripts.open()
    sessions = [store.create()]
    store.append(sessions[0], Message.user("start"))
    for step in range(15):
        sid = rng.choice(sessions)
        choice = rng.random()
        try:
            if choice < 0.45:
                call_id, name = rng.choice(["call_0", "call_1"]), rng.choice(["a", "b"])
                use = ToolUse(id=call_id, name=name, arguments=rng.choice(["{}", '{"x":1}']))
                store.append(sid, Message.assistant(use, id=rng.choice([None, None, "m-fixed"])))
                if rng.random() < 0.8:
                    store.append(sid, Message.tool_results(ToolResult.of(call_id, f"r{step}")))
                store.append(sid, Message.user(f"u{step}"))
            elif choice < 0.65:
                messages = store.get(sid).messages
                start = rng.randrange(0, len(messages) + 1)
                end = rng.randrange(start, len(messages) + 1)
                replacement = [
                    Message(role=m.role, blocks=m.blocks, id=m.id if rng.random() < 0.5 else None)
                    if m.erased is None and rng.random() < 0.7
                    else Message.user("x")
                    for m in messages[start:end]
                ]
                store.rewrite(sid, start, end, replacement or [Message.user("y")])
            elif choice < 0.75:
                commits = store.revisions(sid)
                if commits:
                    store.restore(sid, rng.choice(commits).parent_revision)
            elif choice < 0.85:
                count = len(store.get(sid).messages)
                sessions.append(
                    store.fork_at(sid, rng.randrange(0, count + 1)) if rng.random() < 0.5 else store.fork(sid)
                )
            else:
                held = [m for m in store.get(sid).messages if m.id and m.erased is None]
                if held:
                    store.erase(sid, rng.choice(held).id)
        except EngineError:
            pass  # a write the rules refuse (tool pairing, a no-op rewrite): nothing changed
        for session in sessions:
            _audit_agrees_with_the_transcript(store, session)
