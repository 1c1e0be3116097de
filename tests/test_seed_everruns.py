"""everruns-core's ``Session`` (examples/seeds/everruns.py) on every backend:
every field of its page read back from the engine, every change audited in
``history()``, visible in the past with ``get(at=...)``, kept across a
reopen; bad input refused with a typed error and nothing written. Expected
values are the inputs the tests give."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import InvalidArgument, InvalidStatusTransition, Message, Transcripts, Usage
from examples.seeds.everruns import AgentConfigOverlay, EverrunsSession, sessions
from tests.conftest import StoreFactory

CAPABILITIES = [{"ref": "current_time"}, {"ref": "file_system", "config": {"root": "/workspace"}}]
TOOLS = [{"type": "client_side", "name": "get_location", "parameters": {"type": "object"}}]
MCP = {"servers": [{"name": "github", "url": "https://mcp.example.com/github"}]}
FILES = [{"path": "/workspace/README.md", "content": "# Demo", "encoding": "text", "is_readonly": False}]
NETWORK = {"allowed": ["api.github.com"], "blocked": ["169.254.169.254"]}


def full_session(store: Transcripts, **extra: Any) -> EverrunsSession:
    fields: dict[str, Any] = {
        "organization_id": "org_" + "a" * 32,
        "harness_id": "harness_" + "b" * 32,
        "owner_principal_id": "principal_ana",
        "agent_id": "agent_" + "c" * 32,
        "agent_version_id": "agentver_1",
        "agent_identity_id": "identity_night_shift",
        "title": "Fix flaky CI",
        "locale": "uk-UA",
        "tags": ["ci", "urgent"],
        "model_id": "model_" + "d" * 32,
        "capabilities": CAPABILITIES,
        "tools": TOOLS,
        "mcp_servers": MCP,
        "system_prompt": "Answer in Ukrainian.",
        "initial_files": FILES,
        "hints": {"setup_connection": True, "rich_media": True},
        "network_access": NETWORK,
        "max_iterations": 25,
        "blueprint_id": "bp_triage",
        "blueprint_config": {"target_repo": "acme/everruns"},
    }
    return EverrunsSession.create(store, actor="api", **(fields | extra))


def test_create_keeps_every_field_where_the_mapping_says(stores: StoreFactory) -> None:
    store = stores.open()
    session = full_session(store)
    assert re.fullmatch(r"session_[0-9a-f]{32}", session.id)
    expected = {
        "organization_id": "org_" + "a" * 32,
        "harness_id": "harness_" + "b" * 32,
        "owner_principal_id": "principal_ana",
        "agent_id": "agent_" + "c" * 32,
        "agent_version_id": "agentver_1",
        "agent_identity_id": "identity_night_shift",
        "title": "Fix flaky CI",
        "locale": "uk-UA",
        "tags": ("ci", "urgent"),
        "model_id": "model_" + "d" * 32,
        "capabilities": CAPABILITIES,
        "tools": TOOLS,
        "mcp_servers": MCP,
        "system_prompt": "Answer in Ukrainian.",
        "initial_files": FILES,
        "hints": {"setup_connection": True, "rich_media": True},
        "network_access": NETWORK,
        "max_iterations": 25,
        "blueprint_id": "bp_triage",
        "blueprint_config": {"target_repo": "acme/everruns"},
        "status": "started",
        "is_pinned": False,
        "usage": None,
        "preview": None,
        "output_preview": None,
        "started_at": None,
        "finished_at": None,
        "parent_session_id": None,
        "subagent_name": None,
        "subagent_task": None,
        "subagent_status": None,
    }
    for reader in (session, EverrunsSession(stores.open(), session.id)):  # and after a reopen
        assert {name: getattr(reader, name) for name in expected} == expected
    engine = store.get(session.id)
    # The documented homes: the header, and the metadata under "everruns." + field name.
    assert (engine.header.owner, engine.header.agent, engine.header.model) == (
        "principal_ana",
        "agent_" + "c" * 32,
        "model_" + "d" * 32,
    )
    assert engine.metadata["everruns.organization_id"] == "org_" + "a" * 32
    assert engine.metadata["everruns.max_iterations"] == 25
    assert session.created_at == engine.created_at and session.updated_at == engine.updated_at
    assert session.audit_target_id == session.id and session.id in repr(session)
    entries = store.history(session.id)  # create writes the header in the same transaction, at the same time
    assert [(e.kind, e.actor) for e in entries] == [("session_created", "api"), ("header_changed", "api")]
    assert entries[0].at == entries[1].at
    assert store.get(session.id, at=1).header.owner is None  # version 1 is the creation, before its header event
    assert EverrunsSession(store, session.id, at=1).model_id is None
    # Declined fields have no home: the example does not pretend to have them.
    for declined in ("owner", "effective_owner", "resolved_owner_user_id", "features", "active_schedule_count"):
        assert not hasattr(session, declined)


def test_a_given_id_and_unset_fields(stores: StoreFactory) -> None:
    store = stores.open()
    session = EverrunsSession.create(
        store,
        id="session_" + "0" * 32,
        organization_id="org_1",
        harness_id="harness_1",
        owner_principal_id="p1",
        hints=None,  # given as None: no key is stored
    )
    assert session.id == "session_" + "0" * 32
    assert (session.capabilities, session.tools, session.initial_files) == ([], [], [])  # Vec: empty
    assert (session.hints, session.max_iterations, session.agent_id, session.title) == (None, None, None, None)
    assert store.get(session.id).metadata == {"everruns.organization_id": "org_1", "everruns.harness_id": "harness_1"}
    assert [e.kind for e in store.history(session.id)] == ["session_created", "header_changed"]  # the owner


def test_status_lifecycle_and_its_times(stores: StoreFactory) -> None:
    store = stores.open()
    session = full_session(store)
    before = datetime.now(UTC)
    session.set_status("active", actor="worker")  # version 3
    session.set_status("waiting_for_tool_results")  # 4
    session.set_status("active")  # 5
    session.set_status("idle")  # 6
    session.set_status("paused")  # 7
    session.set_status("finished", outcome="CI is green")  # 8
    after = datetime.now(UTC)
    entries = {e.version: e for e in store.history(session.id)}
    assert entries[3].actor == "worker" and entries[3].summary == "header status active"
    assert session.status == "finished" and store.get(session.id).header.outcome == "CI is green"
    assert session.started_at == entries[3].at and before <= session.started_at <= after  # first "active"
    assert session.finished_at == entries[8].at and before <= session.finished_at <= after
    past = EverrunsSession(store, session.id, at=6)
    assert (past.status, past.started_at, past.finished_at) == ("idle", entries[3].at, None)
    assert EverrunsSession(store, session.id, at=2).started_at is None
    with pytest.raises(InvalidStatusTransition):
        session.set_status("idle")  # an ended session may only become active again
    with pytest.raises(InvalidArgument):
        session.set_status("done")  # not a status
    assert store.get(session.id).version == 8
    session.set_status("active")  # reopened: no longer finished
    reopened = EverrunsSession(stores.open(), session.id)
    assert (reopened.status, reopened.started_at, reopened.finished_at) == ("active", entries[3].at, None)
    for status in ("cancelled", "active", "failed"):
        reopened.set_status(status)
    assert reopened.status == "failed" and reopened.finished_at == store.history(session.id)[-1].at


def test_previews_and_usage_come_from_the_transcript(stores: StoreFactory) -> None:
    store = stores.open()
    session = full_session(store)
    store.append(session.id, Message.user("Why does the CI fail on Mondays?"))
    store.append(session.id, Message.assistant("A cron job clears the cache."), usage=Usage(input=120, output=30))
    assert session.preview == "Why does the CI fail on Mondays?"
    assert session.output_preview == "A cron job clears the cache."
    assert session.usage == Usage(input=120, output=30)
    store.append(session.id, Message.user("Fix it."), Message.assistant("x" * 250), usage=Usage(input=5, output=70))
    assert session.output_preview == "x" * 199 + "…"  # cut to 200 characters
    assert session.preview == "Why does the CI fail on Mondays?"  # still the first question
    assert session.usage == Usage(input=125, output=100)
    earlier = EverrunsSession(store, session.id, at=3)  # after the first question only
    assert (earlier.preview, earlier.output_preview, earlier.usage) == ("Why does the CI fail on Mondays?", None, None)
    assert EverrunsSession(stores.open(), session.id).usage == Usage(input=125, output=100)


def test_update_is_audited_and_time_travels(stores: StoreFactory) -> None:
    store = stores.open()
    session = full_session(store)
    session.update(
        title="Fix flaky CI (Mondays)",
        tags=["ci"],
        is_pinned=True,
        locale="nb-NO",
        model_id="model_e",
        system_prompt=None,
        hints=None,  # removed
        max_iterations=40,
        actor="ana",
    )
    expected = {
        "title": "Fix flaky CI (Mondays)",
        "tags": ("ci",),
        "is_pinned": True,
        "locale": "nb-NO",
        "model_id": "model_e",
        "system_prompt": None,
        "hints": None,
        "max_iterations": 40,
    }
    reopened = EverrunsSession(stores.open(), session.id)
    assert {name: getattr(reopened, name) for name in expected} == expected
    assert "everruns.hints" not in store.get(session.id).metadata
    kinds = [(e.version, e.kind, e.actor) for e in store.history(session.id)][2:]
    assert kinds == [(3, "header_changed", "ana"), (4, "metadata_changed", "ana"), (5, "title_changed", "ana")]
    before = EverrunsSession(store, session.id, at=2)
    assert (before.title, before.tags, before.is_pinned, before.hints) == (
        "Fix flaky CI",
        ("ci", "urgent"),
        False,
        {"setup_connection": True, "rich_media": True},
    )
    assert EverrunsSession(store, session.id, at=4).title == "Fix flaky CI"  # the title changed last
    session.update(title=None)
    assert session.title is None


def test_subagents_are_spawned_child_sessions(stores: StoreFactory) -> None:
    store = stores.open()
    parent = full_session(store)
    child = parent.spawn("Run the test suite", "Test Runner", model_id="model_small", actor="planner")
    assert (child.parent_session_id, child.subagent_name, child.subagent_task) == (
        parent.id,
        "Test Runner",
        "Run the test suite",
    )
    assert (child.organization_id, child.harness_id, child.owner_principal_id, child.model_id) == (
        "org_" + "a" * 32,
        "harness_" + "b" * 32,
        "principal_ana",
        "model_small",
    )
    assert child.subagent_status == "spawning" and parent.subagent_status is None
    child.set_status("active")
    assert child.subagent_status == "running"
    child.set_status("finished", outcome="412 passed")
    assert child.subagent_status == "completed" and store.get(child.id).header.outcome == "412 passed"
    other = parent.spawn("Read the logs", "Log Reader")
    other.set_status("cancelled")
    assert [(s.id, s.subagent_status) for s in parent.subagents()] == [(child.id, "completed"), (other.id, "cancelled")]
    assert [e.kind for e in store.history(parent.id)][-2:] == ["child_spawned", "child_spawned"]
    assert [c.name for c in store.get(parent.id, at=3).children] == ["Test Runner"]
    version = store.get(parent.id).version
    with pytest.raises(InvalidArgument, match="already has a subagent named 'Test Runner'"):
        parent.spawn("Run it again", "Test Runner")  # unique per parent
    assert store.get(parent.id).version == version and len(store.sessions()) == 3
    again = EverrunsSession(stores.open(), child.id)
    assert (again.subagent_name, again.subagent_status) == ("Test Runner", "completed")


def test_agent_config_overlay(stores: StoreFactory) -> None:
    session = full_session(stores.open())
    assert session.agent_config_overlay() == AgentConfigOverlay(
        system_prompt="Answer in Ukrainian.",
        capabilities=CAPABILITIES,
        initial_files=FILES,
        network_access=NETWORK,
        default_model_id="model_" + "d" * 32,
        tools=TOOLS,
        max_iterations=25,
    )


def test_the_listing_filters_like_everruns(stores: StoreFactory) -> None:
    store = stores.open()
    first = full_session(store)
    second = full_session(store, title="Billing bot", tags=["billing"], owner_principal_id="principal_bo")
    third = full_session(store, organization_id="org_other", title="Elsewhere")
    second.update(is_pinned=True)
    first.set_status("active")

    def ids(**filters: Any) -> list[str]:
        return [s.id for s in sessions(store, **filters)]

    assert ids() == [first.id, second.id, third.id]
    assert ids(organization_id="org_" + "a" * 32) == [first.id, second.id]
    assert ids(status="active") == [first.id]
    assert ids(tags=["ci"]) == [first.id, third.id]
    assert ids(is_pinned=True) == [second.id]
    assert ids(owner_principal_id="principal_bo") == [second.id]
    assert ids(title="billing") == [second.id]
    assert ids(limit=2) == [first.id, second.id] and ids(after=second.id) == [third.id]
    with pytest.raises(InvalidArgument, match="cannot filter the header by"):
        sessions(store, model_id="model_x")
    with pytest.raises(InvalidArgument, match="no settable field"):
        sessions(store, colour="red")


def test_bad_input_is_refused_and_writes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    with pytest.raises(InvalidArgument, match="needs"):
        EverrunsSession.create(store, organization_id="org_1", harness_id="harness_1")  # no owner
    with pytest.raises(InvalidArgument, match="no settable field"):
        full_session(store, features=["file_system"])  # computed by everruns, not stored
    with pytest.raises(InvalidArgument):
        full_session(store, hints={"when": datetime(2026, 1, 1)})  # not JSON: refused by create
    with pytest.raises(InvalidArgument):
        full_session(store, tags=["ci", "ci"])  # the header is refused inside create: nothing written
    assert store.sessions() == [] and stores.open().sessions() == []
    session = full_session(store)
    version = store.get(session.id).version
    with pytest.raises(InvalidArgument):
        session.update(colour="red", title="never")
    with pytest.raises(InvalidArgument):
        session.update(is_pinned="yes")
    with pytest.raises(InvalidArgument, match="is the past"):
        EverrunsSession(store, session.id, at=1).update(title="rewritten history")
    with pytest.raises(InvalidArgument, match="is the past"):
        EverrunsSession(store, session.id, at=1).set_status("active")
    session.capabilities.append({"ref": "secrets"})  # the engine hands out a copy: changing it changes nothing
    assert store.get(session.id).version == version
    assert (session.title, session.is_pinned, session.status, session.capabilities) == (
        "Fix flaky CI",
        False,
        "started",
        CAPABILITIES,
    )
