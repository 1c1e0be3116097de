"""codetether-agent's ``Session`` (examples/seeds/codetether.py) over the
engine, on every backend: each method of the seed's page, its change in
history(), the state before it through get(at=...), kept across reopening,
and bad input refused with a typed error that changes nothing. Expected
values are the inputs the tests give."""

from __future__ import annotations

import os

import pytest

from engine import (
    InvalidArgument,
    InvalidMessage,
    Message,
    SessionNotFound,
    ToolResult,
    ToolUse,
    Usage,
)
from examples.seeds.codetether import ClaimProvenance, CodetetherSession, SessionMetadata
from tests.conftest import StoreFactory

QUESTION = "Fix the flaky test in tests/test_io.py and explain why it failed"
TITLE = "Fix the flaky test in tests/test_io.py and exp…"  # 46 characters of QUESTION and an ellipsis


def test_new_load_and_save(stores: StoreFactory) -> None:
    store = stores.open()
    session = CodetetherSession.new(store, "/srv/app")
    assert (session.title, session.agent, session.messages, session.tool_uses) == (None, "build", (), [])
    assert session.usage == Usage() and session.created_at == session.updated_at
    assert session.metadata == SessionMetadata(
        directory="/srv/app",
        provenance={"session_id": session.id, "agent_name": "build", "origin": "local_cli"},
    )
    assert [e.kind for e in store.history(session.id)] == ["session_created"]  # one event
    session.save()  # every change is already committed: nothing to write
    assert store.get(session.id).version == 1
    assert CodetetherSession.new(store).metadata.directory == os.getcwd()

    loaded = CodetetherSession.load(stores.open(), session.id)
    assert loaded.metadata == session.metadata and loaded.created_at == session.created_at
    with pytest.raises(SessionNotFound):
        CodetetherSession.load(store, "no-such-session")


def test_messages_tool_uses_and_usage(stores: StoreFactory) -> None:
    store = stores.open()
    session = CodetetherSession.new(store, "/srv/app")
    session.add_message(Message.user("List the files in src/"))
    session.add_message(
        Message.assistant(ToolUse(id="call_ls", name="bash", arguments='{"command": "ls src"}')),
        usage=Usage(input=120, output=30),
    )
    session.add_message(Message.tool_results(ToolResult.of("call_ls", "main.rs\nlib.rs")))
    session.add_message(Message.assistant("src/ holds main.rs and lib.rs."), usage=Usage(input=160, output=12))

    assert [m.role for m in session.messages] == ["user", "assistant", "tool_results", "assistant"]
    assert session.messages[-1].text == "src/ holds main.rs and lib.rs."
    (use,) = session.tool_uses  # id, name, input, output, success
    assert (use.call_id, use.name, use.arguments, use.result, use.is_error) == (
        "call_ls",
        "bash",
        '{"command": "ls src"}',
        "main.rs\nlib.rs",
        False,
    )
    assert session.usage == Usage(input=280, output=42)
    # An append with usage is one transaction of two events: the messages, then their usage.
    assert [e.kind for e in store.history(session.id)] == [
        "session_created",
        "messages_appended",
        "messages_appended",
        "usage_recorded",
        "messages_appended",
        "messages_appended",
        "usage_recorded",
    ]
    assert store.get(session.id, at=4).usage == Usage(input=120, output=30)
    assert store.get(session.id, at=2).usage == Usage() and len(store.get(session.id, at=2).messages) == 1
    assert store.get(session.id, at=3).tool_calls[0].result is None  # the call before its result

    reopened = CodetetherSession(stores.open(), session.id)
    assert reopened.messages == session.messages and reopened.usage == Usage(input=280, output=42)
    assert reopened.tool_uses == session.tool_uses


def test_titles_from_the_first_user_message(stores: StoreFactory) -> None:
    # generate_title, regenerate_title and clear_title are hosted directly by Transcripts.generate_title(width=47,
    # force=) and Transcripts.set_title(None); on_context_change is the example's.
    store = stores.open()
    session = CodetetherSession.new(store, "/srv/app")
    assert store.generate_title(session.id, width=47) is None  # no user message yet: no title, nothing written
    assert session.title is None and store.get(session.id).version == 1
    session.add_message(Message.user(QUESTION))
    store.generate_title(session.id, width=47)
    assert session.title == TITLE
    store.set_title(session.id, "Flaky test")  # a user renames it
    store.generate_title(session.id, width=47)  # a title is set: kept
    assert session.title == "Flaky test" and store.get(session.id).version == 4
    store.generate_title(session.id, width=47, force=True)  # regenerate_title
    assert session.title == TITLE
    store.set_title(session.id, None)  # clear_title
    assert session.title is None
    session.on_context_change(False)  # no title to redo: nothing written
    assert store.get(session.id).version == 6
    session.on_context_change(True)
    assert session.title == TITLE
    store.generate_title(session.id, width=47, force=True)  # the same title again writes nothing
    assert store.get(session.id).version == 7

    assert [e.kind for e in store.history(session.id)][2:] == ["title_changed"] * 5
    assert (store.get(session.id, at=4).title, store.get(session.id, at=6).title) == ("Flaky test", None)
    assert CodetetherSession(stores.open(), session.id).title == TITLE


def test_agent_provenance_metadata_and_config(stores: StoreFactory) -> None:
    store = stores.open()
    session = CodetetherSession.new(store, "/srv/repo")
    session.set_agent_name("review")
    assert session.agent == "review" == store.get(session.id).header.agent
    before_worker = store.get(session.id).version
    session.attach_worker_task_provenance("worker-3", "task-9")
    assert session.metadata.provenance == {
        "session_id": session.id,
        "agent_name": "review",
        "origin": "worker",
        "worker_id": "worker-3",
        "task_id": "task-9",
    }
    session.attach_claim_provenance(ClaimProvenance("worker-4", "task-10", run_id="run-1"))
    provenance = session.metadata.provenance
    assert provenance is not None
    assert (provenance["worker_id"], provenance["task_id"], provenance["run_id"]) == ("worker-4", "task-10", "run-1")
    assert "attempt_id" not in provenance  # the claim had none
    assert "provenance.worker_id" not in store.get(session.id, at=before_worker).metadata

    session.update_metadata(
        model="anthropic/claude-sonnet-4", allow_network=True, shared=True, share_url="https://s.example/a"
    )
    metadata = session.metadata
    assert (metadata.model, metadata.allow_network, metadata.shared, metadata.share_url) == (
        "anthropic/claude-sonnet-4",
        True,
        True,
        "https://s.example/a",
    )
    assert (metadata.slash_autocomplete, metadata.use_worktree, metadata.auto_apply_edits) == (True, True, False)
    assert store.get(session.id).header.model == "anthropic/claude-sonnet-4"

    session.apply_config({"rlm": {"mode": "auto", "max_iterations": 4}})
    version = store.get(session.id).version
    session.apply_config({"rlm": {"mode": "auto", "max_iterations": 4}})  # idempotent: nothing written
    assert store.get(session.id).version == version and session.metadata.rlm == {"mode": "auto", "max_iterations": 4}
    session.apply_config({"rlm": {"mode": "off"}})
    assert session.metadata.rlm == {"mode": "off"}
    assert store.get(session.id, at=version).metadata["rlm"] == {"mode": "auto", "max_iterations": 4}
    assert [e.kind for e in store.history(session.id)] == [
        "session_created",
        "header_changed",  # agent
        "metadata_changed",  # worker
        "metadata_changed",  # claim
        "metadata_changed",  # flags
        "header_changed",  # model
        "metadata_changed",  # rlm
        "metadata_changed",  # rlm again
    ]
    assert CodetetherSession(stores.open(), session.id).metadata == session.metadata

    # A session without a provenance record: attaching is a no-op, as in codetether.
    plain = CodetetherSession(store, store.create())
    plain.attach_worker_task_provenance("worker-3", "task-9")
    assert plain.metadata.provenance is None and store.get(plain.id).version == 1


def test_last_for_directory_and_tail(stores: StoreFactory) -> None:
    store = stores.open()
    alpha = CodetetherSession.new(store, "/ws/alpha")
    beta = CodetetherSession.new(store, "/ws/beta")
    CodetetherSession.new(store, "/ws/alpha")
    for turn, call in (("run the tests", "call_1"), ("and the linter", "call_2")):
        alpha.add_message(Message.user(turn))
        alpha.add_message(Message.assistant(ToolUse(id=call, name="bash", arguments="{}")))
        alpha.add_message(Message.tool_results(ToolResult.of(call, "ok")))
        alpha.add_message(Message.assistant(f"done: {turn}"))

    assert CodetetherSession.last_for_directory(store, "/ws/alpha").id == alpha.id  # updated last
    assert CodetetherSession.last_for_directory(store, "/ws/beta").id == beta.id
    assert CodetetherSession.last(store).id == alpha.id
    with pytest.raises(SessionNotFound):
        CodetetherSession.last_for_directory(store, "/ws/gamma")

    tail = CodetetherSession.last_for_directory_tail(stores.open(), "/ws/alpha", 3)
    assert tail.session.id == alpha.id
    assert [m.role for m in tail.messages] == ["assistant", "tool_results", "assistant"]
    assert [u.call_id for u in tail.tool_uses] == ["call_1", "call_2"] and tail.dropped == 5  # 5 messages
    one = CodetetherSession.last_for_directory_tail(store, "/ws/alpha", 1)
    assert [m.text for m in one.messages] == ["done: and the linter"]
    assert [u.call_id for u in one.tool_uses] == ["call_2"] and one.dropped == 7 + 1
    none = CodetetherSession.last_for_directory_tail(store, "/ws/alpha", 0)
    assert (none.messages, none.tool_uses, none.dropped) == ((), [], 8 + 2)


def test_bad_input_is_refused_and_changes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    session = CodetetherSession.new(store, "/srv/app")
    session.add_message(Message.user("hello"))
    before = store.get(session.id)

    with pytest.raises(InvalidMessage):
        session.add_message("hello again")  # type: ignore[arg-type]  # not a Message
    with pytest.raises(InvalidArgument):
        session.set_agent_name("bad\x00agent")
    with pytest.raises(InvalidArgument):
        session.apply_config({"rlm": {"threshold": float("inf")}})  # JSON has no infinity
    with pytest.raises(InvalidArgument):
        session.update_metadata(colour="blue")  # codetether's metadata has no such field
    with pytest.raises(InvalidArgument):
        CodetetherSession.last_for_directory_tail(store, "/srv/app", -1)
    after = stores.open().get(session.id)
    assert (after.version, after.metadata, after.header) == (before.version, before.metadata, before.header)
    assert CodetetherSession(store, session.id).agent == "build"
