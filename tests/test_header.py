"""The session header (status, tags, pinning, settings of record), on every
backend: changed only through audited events, visible in the past, kept
across reopening, validated; expected values are the ones the tests set."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Header, InvalidArgument, InvalidStatusTransition, Message
from tests.conftest import StoreFactory


def test_the_header_changes_through_audited_events(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=2)
    sid = store.create(title="Support call")
    assert store.get(sid).header == Header() and (store.get(sid).status, store.get(sid).tags) == ("started", ())
    store.set_status(sid, "active", actor="runtime")
    store.set_tags(sid, ["billing", "vip"])
    store.set_pinned(sid, True)
    store.set_header(
        sid, model="gpt-5", reasoning_effort="high", system_prompt="Be brief.", owner="ana", locale="nb-NO"
    )
    store.append(sid, Message.user("My invoice is wrong."))
    store.set_status(sid, "waiting_for_tool_results")
    store.set_status(sid, "active")
    store.set_status(sid, "finished")
    expected = Header(
        status="finished",
        tags=("billing", "vip"),
        pinned=True,
        model="gpt-5",
        reasoning_effort="high",
        system_prompt="Be brief.",
        owner="ana",
        locale="nb-NO",
    )
    assert store.get(sid).header == expected
    reopened = stores.open()
    assert reopened.get(sid).header == expected
    assert reopened.get(sid, at=2).header == Header(status="active")  # the past header
    assert reopened.get(sid, at=4).pinned is True and reopened.get(sid, at=3).pinned is False
    summaries = [entry.summary for entry in reopened.history(sid) if entry.kind == "header_changed"]
    assert summaries[:3] == ["header status active", "header tags ['billing', 'vip']", "header pinned True"]
    assert reopened.history(sid)[1].actor == "runtime"
    reopened.set_header(sid, model=None)  # cleared
    assert reopened.get(sid).header.model is None


def test_the_lifecycle_refuses_what_it_does_not_allow_and_writes_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.set_status(sid, "waiting_for_tool_results")
    with pytest.raises(InvalidStatusTransition, match="waiting_for_tool_results; it can become"):
        store.set_status(sid, "finished")  # not before the tools answer
    store.set_status(sid, "failed")
    version = store.get(sid).version
    for status in ("idle", "finished", "started", "paused"):
        with pytest.raises(InvalidStatusTransition):
            store.set_status(sid, status)
    assert store.get(sid).version == version and store.get(sid).status == "failed"
    store.set_status(sid, "active")  # reopened
    assert store.get(sid).status == "active"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"tags": "vip"}, "tags must be a list"),
        ({"tags": ["vip", "vip"]}, "must not repeat"),
        ({"tags": [""]}, "a tag is"),
        ({"tags": [3]}, "a tag is"),
        ({"pinned": 1}, "pinned must be True or False"),
        ({"model": 5}, "model must be a str"),
        ({"owner": "a\x00b"}, "NUL"),
        ({"colour": "red"}, "no field 'colour'"),
        ({}, "at least one field"),
    ],
)
def test_bad_header_values_are_refused(stores: StoreFactory, change: dict[str, Any], problem: str) -> None:
    store = stores.open()
    sid = store.create()
    with pytest.raises(InvalidArgument, match=problem):
        store.set_header(sid, **change)
    assert store.get(sid).version == 1


def test_a_fork_keeps_the_settings_and_starts_its_own_run(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.set_header(sid, status="active", tags=["vip"], pinned=True, model="gpt-5")
    store.append(sid, Message.user("Hello"))
    child = store.get(store.fork(sid))
    assert child.header == Header(tags=("vip",), model="gpt-5")  # started, not pinned


def test_sessions_filter_by_the_header(stores: StoreFactory) -> None:
    store = stores.open()
    first, second, third = store.create(), store.create(), store.create()
    store.set_header(first, status="active", tags=["vip", "billing"], pinned=True, owner="ana")
    store.set_header(second, status="active", tags=["billing"], owner="bo")
    store.set_status(third, "idle")

    def ids(**filters: Any) -> list[str]:
        return [info.id for info in store.sessions(**filters)]

    assert ids(status="active") == [first, second]
    assert ids(tags=["billing"]) == [first, second] and ids(tags=["vip", "billing"]) == [first]
    assert ids(pinned=True) == [first] and ids(pinned=False) == [second, third]
    assert ids(owner="bo") == [second] and ids(status="active", owner="ana", limit=1) == [first]
    assert ids(status="finished") == []
    with pytest.raises(InvalidArgument, match="status must be one of"):
        store.sessions(status="done")
