"""oxios-kernel's ``Session`` (examples/seeds/oxios.py) over the engine, on
every backend: each method of the seed's page, its change in history(), the
state before it through get(at=...), kept across reopening, and bad input
refused with a typed error that changes nothing. Expected values are the
inputs the tests give."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import InvalidArgument, InvalidMessage, Message, SessionExists, ToolResult, ToolUse
from examples.seeds.oxios import AgentResponse, OxiosSession, TrajectoryStepRecord
from tests.conftest import StoreFactory

STARTED = datetime(2026, 3, 1, 9, 30, 0, tzinfo=UTC)
SEARCH = TrajectoryStepRecord(
    tool_name="web_search",
    tool_args={"query": "rain in Oslo", "limit": 3},
    output_summary="3 results: yr.no, met.no, bbc.com",
    duration_ms=420,
    is_error=False,
    tool_call_id="call_search",
    timestamp=STARTED,
)
READ = TrajectoryStepRecord(
    tool_name="read_file",
    tool_args={"path": "notes.md"},
    output_summary="no such file: notes.md",
    duration_ms=12,
    is_error=True,
    tool_call_id="call_read",
    timestamp=datetime(2026, 3, 1, 9, 30, 1, tzinfo=UTC),
)


def test_with_id_creates_a_session_owned_by_the_user(stores: StoreFactory) -> None:
    store = stores.open()
    session = OxiosSession.with_id(store, "user-7", "oxios-session-1")
    assert (session.id, session.user_id) == ("oxios-session-1", "user-7")
    assert session.user_messages == [] and session.agent_responses == [] and session.trajectory_steps == []
    assert (session.active_seed_id, session.active_persona_id, session.metadata) == (None, None, {})
    assert session.exchange_count() == 0
    assert session.created_at <= session.updated_at == store.history(session.id)[-1].at
    # One transaction: the creation and the owner, two events written together.
    created, owned = store.history(session.id)
    assert (created.kind, owned.kind, owned.event.changes) == ("session_created", "header_changed", {"owner": "user-7"})
    assert created.at == owned.at and store.get(session.id, at=1).header.owner is None
    assert [info.id for info in store.sessions(owner="user-7")] == ["oxios-session-1"]
    assert OxiosSession(stores.open(), "oxios-session-1").user_id == "user-7"


def test_user_messages_agent_responses_and_exchange_count(stores: StoreFactory) -> None:
    store = stores.open()
    session = OxiosSession.with_id(store, "user-7", "oxios-chat")
    session.add_user_message("Summarise my inbox")
    session.add_agent_response(
        AgentResponse(
            "You have 3 unread mails.",
            session_id="oxios-chat",
            seed_id="inbox-seed",
            phase_reached="evaluate",
            evaluation_passed=True,
        )
    )
    session.add_user_message("And yesterday?")

    assert [m.content for m in session.user_messages] == ["Summarise my inbox", "And yesterday?"]
    (response,) = session.agent_responses
    assert (response.content, response.session_id, response.seed_id) == (
        "You have 3 unread mails.",
        "oxios-chat",
        "inbox-seed",
    )
    assert (response.phase_reached, response.evaluation_passed) == ("evaluate", True)
    # Timestamps are when the store wrote each message, in order.
    times = [m.timestamp for m in session.user_messages]
    assert times[0] is not None and times[1] is not None and response.timestamp is not None
    assert times[0] <= response.timestamp <= times[1] == session.updated_at
    assert session.exchange_count() == 1  # min(2 user messages, 1 response)

    # One interleaved transcript, each write an audited event.
    assert [m.role for m in store.get(session.id).messages] == ["user", "assistant", "user"]
    assert [e.kind for e in store.history(session.id)][2:] == ["messages_appended"] * 3
    assert [m.text for m in store.get(session.id, at=4).messages] == ["Summarise my inbox", "You have 3 unread mails."]

    reopened = OxiosSession(stores.open(), session.id)
    assert reopened.agent_responses == [response] and reopened.user_messages == session.user_messages
    assert reopened.exchange_count() == 1


def test_trajectory_steps_are_the_tool_call_audit(stores: StoreFactory) -> None:
    store = stores.open()
    session = OxiosSession.with_id(store, "user-7", "oxios-tools")
    session.add_user_message("Will it rain in Oslo? Check my notes too.")
    version = store.get(session.id).version
    session.extend_trajectory([])  # no steps: nothing written
    assert store.get(session.id).version == version

    session.extend_trajectory([SEARCH, READ])
    assert session.trajectory() == [SEARCH, READ] == session.trajectory_steps
    calls = store.tool_calls(session.id)
    assert [(c.call_id, c.name, c.result, c.is_error) for c in calls] == [
        ("call_search", "web_search", "3 results: yr.no, met.no, bbc.com", False),
        ("call_read", "read_file", "no such file: notes.md", True),
    ]
    assert store.history(session.id)[-1].kind == "messages_appended"
    assert store.get(session.id, at=version).tool_calls == []  # before the run
    # A run of tools alone is no response: oxios counts no exchange yet (the
    # engine's view counts the tool-use turn as the answer).
    assert session.exchange_count() == 0 and store.get(session.id).exchange_count == 1
    session.add_agent_response(AgentResponse("Rain after 15:00; notes.md is missing."))
    assert session.exchange_count() == 1
    assert [r.content for r in session.agent_responses] == ["Rain after 15:00; notes.md is missing."]

    # A tool call written straight to the store is a step too, dated by the store.
    store.append(
        session.id,
        Message.assistant(ToolUse(id="call_clock", name="clock", arguments='{"tz": "Europe/Oslo"}')),
        Message.tool_results(ToolResult.of("call_clock", "09:31")),
    )
    clock = session.trajectory()[-1]
    assert (clock.tool_name, clock.tool_args, clock.output_summary, clock.duration_ms) == (
        "clock",
        {"tz": "Europe/Oslo"},
        "09:31",
        0,  # call and result written together
    )
    assert clock.timestamp == store.history(session.id)[-1].at

    reopened = OxiosSession(stores.open(), session.id)
    assert reopened.trajectory()[:2] == [SEARCH, READ] and len(reopened.trajectory_steps) == 3


def test_active_seed_persona_and_metadata(stores: StoreFactory) -> None:
    store = stores.open()
    session = OxiosSession.with_id(store, "user-7", "oxios-meta")
    session.set_active_seed("seed-42")
    session.set_active_persona("researcher")
    session.set_metadata("theme", "dark")
    session.set_metadata("limits", {"max_tools": 5})
    assert (session.active_seed_id, session.active_persona_id) == ("seed-42", "researcher")
    assert store.get(session.id).header.agent == "researcher"
    assert session.metadata == {"theme": "dark", "limits": {"max_tools": 5}}  # the seed id is kept apart
    assert store.get(session.id).metadata["active_seed_id"] == "seed-42"
    assert (session.get_metadata("limits"), session.get_metadata("missing")) == ({"max_tools": 5}, None)
    seeded = store.get(session.id).version

    session.set_active_seed(None)
    session.set_active_persona(None)
    assert (session.active_seed_id, session.active_persona_id) == (None, None)
    assert [e.kind for e in store.history(session.id)][2:] == [
        "metadata_changed",
        "header_changed",
        "metadata_changed",
        "metadata_changed",
        "metadata_changed",
        "header_changed",
    ]
    before = store.get(session.id, at=seeded)
    assert (before.metadata["active_seed_id"], before.header.agent) == ("seed-42", "researcher")
    reopened = OxiosSession(stores.open(), session.id)
    assert (reopened.active_seed_id, reopened.active_persona_id) == (None, None)
    assert reopened.get_metadata("theme") == "dark"


def test_bad_input_is_refused_and_changes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    session = OxiosSession.with_id(store, "user-7", "oxios-bad")
    session.add_user_message("hello")
    version = store.get(session.id).version

    with pytest.raises(InvalidArgument):
        session.set_metadata("score", float("nan"))  # JSON has no NaN: it would not come back
    with pytest.raises(InvalidArgument):
        session.set_active_persona("bad\x00persona")
    with pytest.raises(InvalidMessage):
        session.extend_trajectory([TrajectoryStepRecord("clock", {}, "09:31", 1, False, "", STARTED)])  # no call id
    with pytest.raises(SessionExists):
        OxiosSession.with_id(store, "user-8", "oxios-bad")
    with pytest.raises(InvalidArgument):
        OxiosSession.with_id(store, "user-8", "")
    with pytest.raises(InvalidArgument):
        OxiosSession.with_id(store, "user\x008", "oxios-half")  # a bad owner: no half-made session left behind
    assert store.get(session.id).version == version
    assert (session.user_id, session.metadata, session.trajectory()) == ("user-7", {}, [])
    assert [info.id for info in stores.open().sessions()] == ["oxios-bad"]
