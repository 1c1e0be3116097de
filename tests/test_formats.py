"""``engine.formats``: a transcript in OpenAI chat and Anthropic message
formats, and refusals (never silent loss) where a format cannot hold a block."""

from __future__ import annotations

import pytest

from engine import Image, InvalidArgument, Message, Reasoning, Text, ToolResult, ToolUse
from engine.formats import to_anthropic, to_openai_chat

CALL = ToolUse(id="c1", name="weather", arguments='{"city": "Oslo"}')
TRANSCRIPT = [
    Message.system("Be brief."),
    Message.user("Rain in Oslo?", Image(media_type="image/png", data=b"\x89PNG")),
    Message(role="assistant", blocks=(Reasoning(text="check", signature="sig"), Text(text="Checking."), CALL)),
    Message.tool_results(ToolResult.of("c1", "Light rain.", is_error=False)),
    Message.assistant("Yes, light rain."),
]


def test_openai_chat_has_one_tool_message_per_result_and_refuses_reasoning() -> None:
    with pytest.raises(InvalidArgument, match="message 2 block 0 is reasoning"):
        to_openai_chat(TRANSCRIPT)
    chat = to_openai_chat(TRANSCRIPT, drop_reasoning=True)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "assistant"]
    assert chat[1]["content"] == [
        {"type": "text", "text": "Rain in Oslo?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
    ]
    assert chat[2] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
        ],
    }
    assert chat[3] == {"role": "tool", "tool_call_id": "c1", "content": "Light rain."}


def test_anthropic_keeps_system_apart_and_reasoning_as_thinking() -> None:
    converted = to_anthropic(TRANSCRIPT)
    assert converted["system"] == "Be brief."
    messages = converted["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == [
        {"type": "thinking", "thinking": "check", "signature": "sig"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "Light rain.", "is_error": False}
    ]
    assert messages[0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
    }


def test_what_a_format_cannot_hold_is_refused() -> None:
    broken = [Message.assistant(ToolUse(id="c2", name="f", arguments="not json"))]
    with pytest.raises(InvalidArgument, match="not JSON"):
        to_anthropic(broken)
    picture = [
        Message.assistant(ToolUse(id="c3", name="draw", arguments="{}")),
        Message.tool_results(ToolResult(tool_use_id="c3", content=(Image(media_type="image/png", data=b"x"),))),
    ]
    for convert in (to_openai_chat, to_anthropic):
        with pytest.raises(InvalidArgument, match="image"):
            convert(picture)
