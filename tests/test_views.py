"""The views a session offers (what agent runtimes show in lists and
dashboards), on every backend; expected values are read off the messages
each test appends."""

from __future__ import annotations

import pytest

from engine import InvalidArgument, Message, ToolResult, ToolUse, Transcript, Transcripts
from tests.conftest import StoreFactory


def test_views_of_a_tool_calling_conversation(stores: StoreFactory) -> None:
    store: Transcripts = stores.open()
    sid = store.create()
    empty = store.get(sid)
    assert (empty.last_assistant_text, empty.tool_call_count, empty.exchange_count) == (None, 0, 0)
    assert not empty.has_pending_boundary and empty.preview() is None and empty.output_preview() is None
    store.append(sid, Message.system("Be brief."), Message.user("Weather in Oslo and Bergen? I leave on Friday."))
    asked = store.get(sid)
    assert asked.has_pending_boundary and asked.exchange_count == 0
    calls = Message.assistant("Checking.", ToolUse(id="a", name="weather"), ToolUse(id="b", name="weather"))
    store.append(sid, calls)
    store.append(sid, Message.tool_results(ToolResult.of("a", "rain"), ToolResult.of("b", "snow")))
    waiting = store.get(sid)
    assert waiting.has_pending_boundary and waiting.tool_call_count == 2
    assert waiting.last_assistant_text == "Checking." and waiting.exchange_count == 1
    store.append(sid, Message.assistant("Rain in Oslo,", Transcript(text="snow in Bergen.")))
    store.append(sid, Message.user("Thanks"))
    done = store.get(sid)
    assert done.last_assistant_text == "Rain in Oslo,\nsnow in Bergen."
    assert done.exchange_count == 1 and done.has_pending_boundary and done.tool_call_count == 2
    assert done.preview() == "Weather in Oslo and Bergen? I leave on Friday."
    assert done.preview(12) == "Weather in …" and len(done.preview(12) or "") == 12
    assert done.output_preview(9) == "Rain in …"
    with pytest.raises(InvalidArgument, match="width"):
        done.preview(0)
    # The past has its own views.
    assert store.get(sid, at=2).preview() == "Weather in Oslo and Bergen? I leave on Friday."
    assert store.get(sid, at=2).last_assistant_text is None
