"""Bamboo's ``Session`` (examples/seeds/bamboo.py) on every backend: each
method of the seed's page, its change in ``history``, an earlier state with
``get(at=...)``, and the state after a reopen. Expected values are written
from the inputs."""

from __future__ import annotations

import pytest

from engine import (
    Child,
    Compaction,
    InvalidArgument,
    Message,
    Question,
    Reason,
    SessionExists,
    Task,
    ToolResult,
    ToolUse,
    Transcripts,
    Usage,
)
from examples.seeds.bamboo import BambooSession, ConversationSummary, truncate_tool_text
from tests.conftest import StoreFactory

BIG = "a" * 200_000 + "b" * 100_000  # 300,000 bytes: over bamboo's 262,144-byte limit
# Its first 160 KiB (163,840 bytes), the marker, its last 64 KiB (65,536 bytes).
CUT = (
    "a" * 163_840
    + "\n\n[... tool output truncated ...] original=300000 bytes omitted=70624 bytes kept=229376 bytes\n\n"
    + "b" * 65_536
)


def kinds(store: Transcripts, sid: str) -> list[str]:
    return [entry.kind for entry in store.history(sid)]


def new(store: Transcripts, sid: str) -> BambooSession:
    """Bamboo's ``Session::new(sid, "gpt-5")``, hosted directly by ``Transcripts.create``."""
    store.create(title="New Session", session_id=sid, model="gpt-5")
    return BambooSession(store, sid)


def test_new_and_new_child(stores: StoreFactory) -> None:
    store = stores.open()
    # Session::new("root-1", "gpt-5"): the creation and the model in one transaction.
    store.create(title="New Session", session_id="root-1", model="gpt-5")
    root = BambooSession(store, "root-1")
    head = root.session
    assert (root.id, root.title, head.kind, head.parent) == ("root-1", "New Session", "root", None)
    assert (root.root_session_id, root.spawn_depth, root.model, head.header.reasoning_effort) == (
        "root-1",
        0,
        "gpt-5",
        None,
    )
    assert (len(head.messages), head.pinned, root.metadata, head.task_list, head.pending_question) == (
        0,
        False,
        {},
        None,
        None,
    )
    assert head.created_at <= head.updated_at
    created = store.history("root-1")
    assert [entry.kind for entry in created] == ["session_created", "header_changed"]
    assert created[0].at == created[1].at and created[1].event.changes == {"model": "gpt-5"}  # one decision

    # Session::new_child("child-1", "root-1", "gpt-5-mini", "Research the API"), hosted directly by spawn.
    store.spawn("root-1", session_id="child-1", title="Research the API", model="gpt-5-mini")
    child = BambooSession(store, "child-1")
    assert (child.session.kind, child.session.parent, child.root_session_id, child.spawn_depth) == (
        "child",
        "root-1",
        "root-1",
        1,
    )
    assert (child.title, child.model) == ("Research the API", "gpt-5-mini")
    assert store.get("root-1").children == (Child(session_id="child-1"),)
    assert kinds(store, "root-1")[-1] == "child_spawned"
    assert store.get("root-1", at=2).children == ()  # before the spawn

    # A child of a child: the engine keeps the family's root and counts the depth.
    store.spawn("child-1", session_id="grandchild-1", title="Read the docs")  # bamboo's "" model: none passed
    nested = BambooSession(store, "grandchild-1")
    assert (nested.session.parent, nested.root_session_id, nested.spawn_depth, nested.model) == (
        "child-1",
        "root-1",
        2,
        "",
    )

    again = stores.open()
    assert BambooSession(again, "child-1").root_session_id == "root-1"
    assert BambooSession(again, "root-1").model == "gpt-5"
    assert [s.id for s in again.children("root-1")] == ["child-1"]
    assert [row.id for row in again.sessions(parent="child-1")] == ["grandchild-1"]  # the listing filters children


def test_new_refuses_an_id_in_use(stores: StoreFactory) -> None:
    store = stores.open()
    new(store, "taken")
    version = store.get("taken").version
    with pytest.raises(SessionExists):  # the whole create is refused: no model change for the existing session
        store.create(title="New Session", session_id="taken", model="other-model")
    assert store.get("taken").version == version and store.get("taken").header.model == "gpt-5"


def test_add_message_cuts_oversized_tool_output(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    session.add_message(Message.user("List the files"))
    session.add_message(
        Message.assistant(ToolUse(id="call_1", name="ls", arguments="{}"), ToolUse(id="call_2", name="du"))
    )
    before = store.get("s").version
    session.add_message(Message.tool_results(ToolResult.of("call_1", BIG), ToolResult.of("call_2", "4 KiB")))
    [big, small] = session.session.messages[2].blocks
    assert isinstance(big, ToolResult) and isinstance(small, ToolResult)
    assert big.content[0].text == CUT  # type: ignore[union-attr]
    assert small.content[0].text == "4 KiB"  # type: ignore[union-attr]
    assert kinds(store, "s")[-1] == "messages_appended"
    assert len(store.get("s", at=before).messages) == 2
    assert stores.open().get("s").messages[2].blocks[0] == big


def test_truncate_tool_text_keeps_characters_whole() -> None:
    assert truncate_tool_text("short") == "short"
    assert truncate_tool_text("x" * 262_144) == "x" * 262_144  # exactly the limit fits
    euro = "\u20ac" * 100_000  # 3 bytes each: 300,000 bytes
    # 163,840 / 3 leaves 54,613 whole characters (163,839 bytes); 65,536 / 3 leaves 21,845 (65,535 bytes).
    assert truncate_tool_text(euro) == (
        "\u20ac" * 54_613
        + "\n\n[... tool output truncated ...] original=300000 bytes omitted=70626 bytes kept=229374 bytes\n\n"
        + "\u20ac" * 21_845
    )


def test_compact_oversized_tool_messages(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    # Appended around add_message, as an older runtime or an import would.
    store.append(
        "s",
        Message.user("Dump both logs"),
        Message.assistant(ToolUse(id="call_1", name="cat"), ToolUse(id="call_2", name="cat")),
        Message.tool_results(ToolResult.of("call_1", BIG), ToolResult.of("call_2", "tiny log")),
        Message.assistant("Done."),
        Message.user("And the third?"),
        Message.assistant(ToolUse(id="call_3", name="cat")),
        Message.tool_results(ToolResult.of("call_3", BIG)),
    )
    full = store.get("s")
    assert session.compact_oversized_tool_messages() == 2
    after = store.get("s")
    assert [m.id for m in after.messages] == [m.id for m in full.messages]
    assert after.messages[2].blocks == (ToolResult.of("call_1", CUT), ToolResult.of("call_2", "tiny log"))
    assert after.messages[6].blocks == (ToolResult.of("call_3", CUT),)
    assert after.messages[:2] == full.messages[:2] and after.messages[3:6] == full.messages[3:6]
    note = "tool output over 256 KiB cut to its first 160 KiB and last 64 KiB"
    assert [c.reason for c in store.revisions("s")[-2:]] == [Reason(kind="truncation", note=note)] * 2
    assert kinds(store, "s")[-2:] == ["messages_rewritten", "messages_rewritten"]
    assert store.get("s", at=full.version).messages[6].blocks == (ToolResult.of("call_3", BIG),)  # kept
    assert session.compact_oversized_tool_messages() == 0  # nothing left to cut: nothing written
    assert store.get("s").version == after.version
    assert stores.open().get("s").messages[6].blocks == (ToolResult.of("call_3", CUT),)


def test_task_list(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    assert session.format_task_list_for_prompt() == ""
    with pytest.raises(InvalidArgument):  # no task list yet
        session.update_task_item("t1", "in_progress")
    store.set_task_list(  # bamboo's set_task_list, hosted directly
        "s",
        [
            Task(id="t1", description="Write the parser", criteria=("parses ints", "parses floats")),
            Task(id="t2", description="Ship it"),
        ],
    )
    listed = store.get("s").version
    assert session.format_task_list_for_prompt() == (
        "Task list:\n- [ ] t1: Write the parser (pending)\n  criteria met: 0/2\n- [ ] t2: Ship it (pending)"
    )
    gate = "Completion criteria not fully met; keeping task in_progress. Missing: parses floats"
    assert session.update_task_item("t1", "completed", criteria_met=["parses ints"]) == (
        "Updated item 't1' to in_progress"
    )
    tasks = store.get("s").task_list
    assert tasks is not None
    assert tasks[0] == Task(
        id="t1",
        description="Write the parser",
        status="in_progress",
        notes=gate,
        criteria=("parses ints", "parses floats"),
        criteria_met=("parses ints",),
    )
    assert session.update_task_item("t1", "completed", "all green", ["parses ints", "parses floats"]) == (
        "Updated item 't1' to completed"
    )
    assert session.update_task_item("t2", "pending") == "Task item 't2' remains pending"
    assert session.format_task_list_for_prompt() == (
        "Task list:\n- [x] t1: Write the parser (completed)\n  criteria met: 2/2\n  notes: all green\n"
        "- [ ] t2: Ship it (pending)"
    )
    assert kinds(store, "s")[-4:] == ["task_list_changed"] * 4
    assert store.get("s", at=listed).task_list == (
        Task(id="t1", description="Write the parser", criteria=("parses ints", "parses floats")),
        Task(id="t2", description="Ship it"),
    )

    version = store.get("s").version
    with pytest.raises(InvalidArgument):
        session.update_task_item("t9", "completed")  # no such item
    with pytest.raises(InvalidArgument):
        session.update_task_item("t2", "done")  # not a task status
    with pytest.raises(InvalidArgument):
        session.update_task_item("t1", "completed", criteria_met=["parses hex"])  # not one of its criteria
    assert store.get("s").version == version
    reopened = stores.open().get("s").task_list
    assert reopened is not None and [t.status for t in reopened] == ["completed", "pending"]


def test_pending_question(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    assert not session.has_pending_question()
    session.clear_pending_question()  # nothing pending: nothing to do, nothing written
    assert kinds(store, "s") == ["session_created", "header_changed"]
    # A question asked by a tool call follows the assistant message that makes the call.
    store.append("s", Message.assistant(ToolUse(id="call_7", name="AskUser", arguments="{}")))
    session.set_pending_question("call_7", "AskUser", "Deploy now?", ["yes", "no"], False)
    asked = store.get("s").version
    assert session.has_pending_question()
    assert store.get("s").pending_question == Question(
        question="Deploy now?", options=("yes", "no"), allow_custom=False, tool_call_id="call_7", tool_name="AskUser"
    )
    with pytest.raises(InvalidArgument):
        session.clear_pending_question("maybe")  # not an option, and custom answers are not allowed
    with pytest.raises(InvalidArgument):
        session.set_pending_question("call_8", "", "Which one?", [], False)  # nothing could answer it
    assert store.get("s").version == asked
    session.clear_pending_question("yes")
    assert not session.has_pending_question()
    [entry] = store.history("s", after=asked)
    assert (entry.kind, entry.event.question, entry.event.answer) == ("question_changed", None, "yes")
    assert store.get("s", at=asked).pending_question is not None
    store.append("s", Message.tool_results(ToolResult.of("call_7", "yes")))
    store.append("s", Message.assistant(ToolUse(id="call_9", name="AskUser", arguments="{}")))
    session.set_pending_question("call_9", "", "Anything else?", [], True)
    assert store.get("s").pending_question == Question(question="Anything else?", tool_call_id="call_9")
    assert BambooSession(stores.open(), "s").has_pending_question()


def test_header_fields_and_metadata(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    store.set_title("s", "Refactor the store")
    store.set_pinned("s", True)
    store.set_header("s", model="gpt-5-pro", reasoning_effort="high")
    store.update_metadata(
        "s",
        {
            "channel": "desktop",
            "bamboo.model_ref": {"provider": "openai", "model": "gpt-5-pro"},
            "bamboo.token_budget": {"max_context_tokens": 200000, "max_output_tokens": 8000},
            "bamboo.prompt_snapshot": {"base_system_prompt": "You are Bamboo.", "effective_system_prompt": "..."},
            "bamboo.compression_instructions": "Keep file paths.",
        },
    )
    assert (session.title, session.session.pinned, session.model, session.session.header.reasoning_effort) == (
        "Refactor the store",
        True,
        "gpt-5-pro",
        "high",
    )
    assert session.metadata == {"channel": "desktop"}  # bamboo's own map: not the keys this module keeps
    assert session.model_ref == {"provider": "openai", "model": "gpt-5-pro"}
    assert session.token_budget == {"max_context_tokens": 200000, "max_output_tokens": 8000}
    assert session.prompt_snapshot == {"base_system_prompt": "You are Bamboo.", "effective_system_prompt": "..."}
    assert session.compression_instructions == "Keep file paths."
    assert kinds(store, "s")[2:] == ["title_changed", "header_changed", "header_changed", "metadata_changed"]
    assert store.get("s", at=3).pinned is False and store.get("s", at=3).title == "Refactor the store"
    reopened = BambooSession(stores.open(), "s")
    assert (reopened.session.pinned, reopened.model) == (True, "gpt-5-pro")
    assert reopened.compression_instructions == "Keep file paths."


def test_usage_compression_and_clear_derived_context_state(stores: StoreFactory) -> None:
    store = stores.open()
    session = new(store, "s")
    for text in ("q1", "a1", "q2", "a2"):
        session.add_message(Message.user(text) if text[0] == "q" else Message.assistant(text))
    assert (session.token_usage, session.compression_events, session.conversation_summary) == (None, (), None)
    store.record_usage("s", Usage(input=100, output=20))
    assert session.token_usage == Usage(input=100, output=20)
    store.compact(
        "s",
        0,
        2,
        Message.system("Summary: q1 was answered with a1"),
        trigger="auto",
        tokens_before=120,
        tokens_after=15,
        model="gpt-5-mini",
        latency_ms=800,
    )
    [event] = session.compression_events
    assert isinstance(event, Compaction)
    assert (event.messages_compressed, event.messages_after, event.trigger, event.model) == (2, 1, "auto", "gpt-5-mini")
    assert (event.tokens_before, event.tokens_after, event.latency_ms, event.start) == (120, 15, 800, 0)
    assert session.conversation_summary == ConversationSummary("Summary: q1 was answered with a1", 2, 15)
    store.update_metadata("s", {"responses.previous_response_id": "resp_123"})
    assert session.metadata == {"responses.previous_response_id": "resp_123"}
    before_clear = store.get("s").version

    session.clear_derived_context_state()
    cleared = BambooSession(store, "s")  # a fresh handle: the type checker narrowed the old one's fields
    assert (cleared.token_usage, cleared.compression_events, cleared.conversation_summary) == (None, (), None)
    assert session.metadata == {}
    [entry] = store.history("s", after=before_clear)
    assert entry.kind == "metadata_changed"
    assert (entry.event.set, entry.event.unset) == (
        {"bamboo.derived_since": before_clear},
        ("responses.previous_response_id",),
    )
    # The log keeps what bamboo drops: the total usage, the compaction, the old metadata.
    head = store.get("s")
    assert (head.usage, len(head.compactions)) == (Usage(input=100, output=20), 1)
    assert store.get("s", at=before_clear).metadata == {"responses.previous_response_id": "resp_123"}

    store.record_usage("s", Usage(input=7, output=3))
    assert session.token_usage == Usage(input=7, output=3)
    store.compact("s", 1, 3, Message.system("Summary: q2 was answered with a2"), trigger="overflow", tokens_after=9)
    [later] = session.compression_events
    assert (later.trigger, later.messages_compressed) == ("overflow", 2)
    assert session.conversation_summary == ConversationSummary("Summary: q2 was answered with a2", 2, 9)
    assert [m.text for m in session.session.messages] == [
        "Summary: q1 was answered with a1",
        "Summary: q2 was answered with a2",
    ]

    reopened = BambooSession(stores.open(), "s")
    assert reopened.token_usage == Usage(input=7, output=3)
    assert reopened.conversation_summary == ConversationSummary("Summary: q2 was answered with a2", 2, 9)
