"""``engine.formats``: a transcript to and from OpenAI Chat Completions, the
OpenAI Responses API, Anthropic Messages and Gemini.

Each format has a realistic request (a tool-calling turn with a parallel
pair of calls, an image, and reasoning where the format has a place for it)
read into messages written out by hand, and those messages converted to the
request as the API documents it. Then the refusals: strict mode names the
message, the block and what the format lacks; reading names the path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from engine import Image, InvalidArgument, Message, Reasoning, Text, ToolResult, ToolUse, Transcript, Transcripts
from engine.formats import (
    from_anthropic,
    from_gemini,
    from_openai_chat,
    from_openai_responses,
    to_anthropic,
    to_gemini,
    to_openai_chat,
    to_openai_responses,
)

PNG = b"\x89PNG\r\n\x1a\n"  # base64: iVBORw0KGgo=
SYSTEM = Message.system("You are a travel assistant.")
QUESTION = Message.user("Weather in Oslo and Bergen?", Image(media_type="image/png", data=PNG))
OSLO = ToolUse(id="call_oslo", name="get_weather", arguments='{"city": "Oslo"}')
BERGEN = ToolUse(id="call_bergen", name="get_weather", arguments='{"city": "Bergen"}')
RESULTS = Message.tool_results(ToolResult.of("call_oslo", "4°C, light rain"), ToolResult.of("call_bergen", "7°C"))
ANSWER = Message.assistant("Bergen is warmer.")


def _digests(messages: list[Message]) -> list[str]:
    return [message.digest for message in messages]


def _same(read: list[Message], expected: list[Message]) -> None:
    assert [(m.role, m.blocks, m.incomplete) for m in read] == [(m.role, m.blocks, m.incomplete) for m in expected]
    assert all(message.id is None for message in read)


# -- OpenAI Chat Completions ------------------------------------------------------------------

CHAT_REQUEST: list[dict[str, Any]] = [
    {"role": "developer", "content": "You are a travel assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in Oslo and Bergen?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_oslo",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
            {
                "id": "call_bergen",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_oslo", "content": "4°C, light rain"},
    {"role": "tool", "tool_call_id": "call_bergen", "content": [{"type": "text", "text": "7°C"}]},
    {"role": "assistant", "content": "Bergen is warmer.", "annotations": []},
]
CHAT_MESSAGES = [SYSTEM, QUESTION, Message.assistant(OSLO, BERGEN), RESULTS, ANSWER]


def test_a_chat_request_reads_as_messages() -> None:
    _same(from_openai_chat(CHAT_REQUEST), CHAT_MESSAGES)


def test_messages_become_chat_messages_with_one_tool_message_per_result() -> None:
    assert to_openai_chat(CHAT_MESSAGES) == [
        {"role": "system", "content": "You are a travel assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Oslo and Bergen?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_oslo",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
                {
                    "id": "call_bergen",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_oslo", "content": "4°C, light rain"},
        {"role": "tool", "tool_call_id": "call_bergen", "content": "7°C"},
        {"role": "assistant", "content": "Bergen is warmer."},
    ]


def test_chat_keeps_several_text_blocks_apart_and_arguments_as_written() -> None:
    messages = [
        Message.user("one", "two"),
        Message.assistant("Checking.", ToolUse(id="c1", name="f", arguments='{"a":1}')),
        Message.tool_results(ToolResult(tool_use_id="c1")),
    ]
    chat = to_openai_chat(messages)
    assert chat[0]["content"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert chat[1]["content"] == "Checking." and chat[1]["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    assert chat[2] == {"role": "tool", "tool_call_id": "c1", "content": []}
    assert _digests(from_openai_chat(chat)) == _digests(messages)


def test_chat_refuses_what_it_cannot_hold_and_lossy_converts_it() -> None:
    thinking = [Message.assistant(Reasoning(text="check", signature="sig"), "Checking.")]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: .*reasoning block; pass lossy=True"):
        to_openai_chat(thinking)
    assert to_openai_chat(thinking, lossy=True) == [{"role": "assistant", "content": "Checking."}]

    failed = [Message.assistant(OSLO), Message.tool_results(ToolResult.of("call_oslo", "down", is_error=True))]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: .*no error flag"):
        to_openai_chat(failed)
    assert to_openai_chat(failed, lossy=True)[1] == {"role": "tool", "tool_call_id": "call_oslo", "content": "down"}

    late_text = [Message.assistant(OSLO, "I asked.")]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[1\]: content after a tool use"):
        to_openai_chat(late_text)
    assert to_openai_chat(late_text, lossy=True)[0]["content"] == "I asked."

    picture = [
        Message.assistant(OSLO),
        Message.tool_results(ToolResult.of("call_oslo", Image(media_type="image/png", data=PNG))),
    ]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]\.content\[0\]: .*not images"):
        to_openai_chat(picture)
    joined = [Message.assistant(OSLO, BERGEN), RESULTS, RESULTS]
    with pytest.raises(InvalidArgument, match=r"messages\[2\]: a tool_results message right after another"):
        to_openai_chat(joined)


@pytest.mark.parametrize(
    ("request_messages", "path"),
    [
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            r"messages\[0\]\.content\[0\]\.type: 'input_audio'",
        ),
        ([{"role": "function", "name": "f", "content": "x"}], r"messages\[0\]\.role: 'function'"),
        ([{"role": "user"}], r"messages\[0\]\.content must be a string or an array of parts, got nothing"),
        (
            [{"role": "user", "content": 5}],
            r"messages\[0\]\.content must be a string or an array of parts, got a number",
        ),
        ([{"role": "user", "content": "hi", "name": "ada"}], r"messages\[0\]\.name: a string \('ada'\) has no place"),
        ([{"role": "assistant", "content": None, "refusal": "I can't."}], r"messages\[0\]\.refusal"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}],
            r"messages\[0\]\.tool_calls\[0\]\.type: 'custom'",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
                }
            ],
            r"messages\[0\]\.tool_calls\[0\]\.function\.arguments must be a string, got an object",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}}],
                }
            ],
            r"messages\[0\]\.content\[0\]\.image_url\.detail: 'high' would be lost",
        ),
        ([{"role": "tool", "tool_call_id": 7, "content": "x"}], r"messages\[0\]\.tool_call_id must be a string"),
        ("not a list", r"messages must be an array, got a string"),
    ],
)
def test_reading_chat_refuses_what_it_would_drop(request_messages: Any, path: str) -> None:
    with pytest.raises(InvalidArgument, match=path):
        from_openai_chat(request_messages)


# -- the OpenAI Responses API ------------------------------------------------------------------

RESPONSES_ITEMS: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a travel assistant."},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Weather in Oslo and Bergen?"},
            {"type": "input_image", "image_url": "https://example.com/ticket.png", "detail": "auto"},
        ],
    },
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Two cities: two calls."}],
        "encrypted_content": "gAAAAABo-secret",
    },
    {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_oslo",
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    },
    {
        "id": "fc_2",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_bergen",
        "name": "get_weather",
        "arguments": '{"city": "Bergen"}',
    },
    {"type": "function_call_output", "call_id": "call_oslo", "output": "4°C, light rain"},
    {"type": "function_call_output", "call_id": "call_bergen", "output": [{"type": "input_text", "text": "7°C"}]},
    {"id": "rs_2", "type": "reasoning", "summary": []},
    {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Bergen is warmer.", "annotations": [], "logprobs": []}],
    },
]
TICKET = Image(media_type="image/*", ref="https://example.com/ticket.png")
RESPONSES_MESSAGES = [
    SYSTEM,
    Message.user("Weather in Oslo and Bergen?", TICKET),
    Message.assistant(
        Reasoning(text="Two cities: two calls.", signature="gAAAAABo-secret", item_id="rs_1"), OSLO, BERGEN
    ),
    RESULTS,
    Message.assistant(Reasoning(text="", item_id="rs_2"), "Bergen is warmer."),
]


def test_responses_items_read_as_messages_grouped_by_the_rule() -> None:
    read = from_openai_responses(RESPONSES_ITEMS)
    _same(read, RESPONSES_MESSAGES)
    assert [message.provider_item_id for message in read] == [None, None, None, None, "msg_1"]


def test_responses_input_given_as_a_string_is_one_user_message() -> None:
    # Found by a newcomer pass: responses.create(input="Hello") is valid, and
    # the API reads the string as one user message (its short form).
    assert from_openai_responses("Hello") == [Message.user("Hello")]
    assert from_openai_responses("Hello") == from_openai_responses([{"role": "user", "content": "Hello"}])


def test_messages_become_responses_items_in_block_order() -> None:
    assert to_openai_responses(RESPONSES_MESSAGES) == [
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "You are a travel assistant."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Oslo and Bergen?"},
                {"type": "input_image", "image_url": "https://example.com/ticket.png", "detail": "auto"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Two cities: two calls."}],
            "encrypted_content": "gAAAAABo-secret",
        },
        {"type": "function_call", "call_id": "call_oslo", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_bergen", "name": "get_weather", "arguments": '{"city": "Bergen"}'},
        {"type": "function_call_output", "call_id": "call_oslo", "output": "4°C, light rain"},
        {"type": "function_call_output", "call_id": "call_bergen", "output": "7°C"},
        {"type": "reasoning", "id": "rs_2", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Bergen is warmer.", "annotations": []}],
        },
    ]


def test_responses_keeps_incomplete_as_a_status_and_images_in_outputs() -> None:
    cut = Message(role="assistant", blocks=(Text(text="Bergen is"),), incomplete=True)
    assert to_openai_responses([cut]) == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Bergen is", "annotations": []}],
            "status": "incomplete",
        }
    ]
    chart = [
        Message.assistant(OSLO),
        Message.tool_results(ToolResult.of("call_oslo", Image(media_type="image/png", data=PNG))),
    ]
    assert to_openai_responses(chart)[1] == {
        "type": "function_call_output",
        "call_id": "call_oslo",
        "output": [{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}],
    }
    assert from_openai_responses(
        [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "status": "in_progress"}]
    )[0].incomplete


def test_responses_refuses_what_the_grouping_rule_cannot_bring_back() -> None:
    text_then_call = [Message.assistant("Looking."), Message.assistant(OSLO)]
    with pytest.raises(
        InvalidArgument,
        match=r"messages\[1\]: its first item \(a function_call item\) would read back as part of messages\[0\]",
    ):
        to_openai_responses(text_then_call)
    assert len(from_openai_responses(to_openai_responses(text_then_call, lossy=True))) == 1
    text_then_reasoning = [Message.assistant("Hm.", Reasoning(text="think"))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[1\]: a reasoning block after a text block"):
        to_openai_responses(text_then_reasoning)
    failed = [Message.assistant(OSLO), Message.tool_results(ToolResult.of("call_oslo", "down", is_error=True))]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: .*no error flag"):
        to_openai_responses(failed)


@pytest.mark.parametrize(
    ("items", "path"),
    [
        (
            [{"type": "web_search_call", "id": "ws_1", "status": "completed"}],
            r"items\[0\]\.type: 'web_search_call' is not an item",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            r"items\[0\]\.content\[0\]\.type: 'input_audio'",
        ),
        (
            [{"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}],
            r"items\[0\]\.content\[0\]\.type: 'refusal'",
        ),
        ([{"content": "hi"}], r"items\[0\] needs a type"),
        (
            [{"type": "function_call", "call_id": "c", "name": "f"}],
            r"items\[0\]\.arguments must be a string, got nothing",
        ),
        (
            [{"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "x"}]}],
            r"items\[0\]\.content",
        ),
        ([{"type": "message", "role": "user", "content": "x", "status": "done"}], r"items\[0\]\.status: 'done'"),
        (
            [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "x", "annotations": [{"type": "url_citation"}]}],
                }
            ],
            r"items\[0\]\.content\[0\]\.annotations",
        ),
        ([{"role": "critic", "content": "x"}], r"items\[0\]\.role: 'critic'"),
    ],
)
def test_reading_responses_refuses_what_it_would_drop(items: Any, path: str) -> None:
    with pytest.raises(InvalidArgument, match=path):
        from_openai_responses(items)


# -- Anthropic Messages ------------------------------------------------------------------------

ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "system": "You are a travel assistant.",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Oslo and Bergen?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities: two calls.", "signature": "EqQBCkYIBxgC"},
                {"type": "tool_use", "id": "call_oslo", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "call_bergen", "name": "get_weather", "input": {"city": "Bergen"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_oslo", "content": "4°C, light rain"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_bergen",
                    "content": [{"type": "text", "text": "7°C"}],
                    "is_error": False,
                },
                {"type": "text", "text": "Which is warmer?", "cache_control": {"type": "ephemeral"}},
            ],
        },
        {"role": "assistant", "content": "Bergen is warmer."},
    ],
}
THINKING = Reasoning(text="Two cities: two calls.", signature="EqQBCkYIBxgC")
ANTHROPIC_MESSAGES = [
    SYSTEM,
    QUESTION,
    Message.assistant(THINKING, OSLO, BERGEN),
    RESULTS,
    Message.user("Which is warmer?"),
    ANSWER,
]


def test_an_anthropic_request_reads_as_messages_split_at_tool_results() -> None:
    _same(from_anthropic(ANTHROPIC_REQUEST), ANTHROPIC_MESSAGES)
    _same(from_anthropic(ANTHROPIC_REQUEST["messages"]), ANTHROPIC_MESSAGES[1:])


def test_messages_become_an_anthropic_request() -> None:
    assert to_anthropic(ANTHROPIC_MESSAGES) == {
        "system": "You are a travel assistant.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Oslo and Bergen?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Two cities: two calls.", "signature": "EqQBCkYIBxgC"},
                    {"type": "tool_use", "id": "call_oslo", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_bergen", "name": "get_weather", "input": {"city": "Bergen"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_oslo",
                        "content": "4°C, light rain",
                        "is_error": False,
                    },
                    {"type": "tool_result", "tool_use_id": "call_bergen", "content": "7°C", "is_error": False},
                ],
            },
            {"role": "user", "content": [{"type": "text", "text": "Which is warmer?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Bergen is warmer."}]},
        ],
    }
    assert "system" not in to_anthropic([ANSWER])


def test_anthropic_keeps_error_results_and_images_in_results() -> None:
    messages = [
        Message.assistant(OSLO),
        Message.tool_results(
            ToolResult(
                tool_use_id="call_oslo",
                content=(Text(text="radar:"), Image(media_type="image/*", ref="https://x/r.png")),
                is_error=True,
            )
        ),
    ]
    assert to_anthropic(messages)["messages"][1]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_oslo",
            "content": [
                {"type": "text", "text": "radar:"},
                {"type": "image", "source": {"type": "url", "url": "https://x/r.png"}},
            ],
            "is_error": True,
        }
    ]


def test_anthropic_refuses_what_it_cannot_hold_and_lossy_converts_it() -> None:
    compact = [Message.assistant(ToolUse(id="c1", name="f", arguments='{"city":"Oslo"}'))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: .*parsed object.*pass lossy=True"):
        to_anthropic(compact)
    assert to_anthropic(compact, lossy=True)["messages"][0]["content"][0]["input"] == {"city": "Oslo"}
    not_json = [Message.assistant(ToolUse(id="c1", name="f", arguments="not json"))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: the arguments 'not json' are not JSON"):
        to_anthropic(not_json)
    assert to_anthropic(not_json, lossy=True)["messages"][0]["content"][0]["input"] == {}

    late_system = [Message.user("hi"), Message.system("Be brief.")]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]: a system message after the conversation has started"):
        to_anthropic(late_system)
    assert to_anthropic(late_system, lossy=True)["system"] == "Be brief."

    cut = [Message(role="assistant", blocks=(Text(text="Bergen is"),), incomplete=True)]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]: .*incomplete marker"):
        to_anthropic(cut)
    url_png = [Message.user(Image(media_type="image/png", ref="https://x/a.png"))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: an image by reference is only a URL"):
        to_anthropic(url_png)


@pytest.mark.parametrize(
    ("request_body", "path"),
    [
        (
            [{"role": "assistant", "content": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}],
            r"messages\[0\]\.content\[0\]: a redacted_thinking block has no place",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]}],
            r"messages\[0\]\.content\[0\]\.type: 'tool_use'",
        ),
        (
            [{"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "f", "input": "{}"}]}],
            r"messages\[0\]\.content\[0\]\.input must be an object",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c", "is_error": "yes"}]}],
            r"messages\[0\]\.content\[0\]\.is_error must be a boolean",
        ),
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}],
            r"messages\[0\]\.content\[0\]\.source\.type: 'file'",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{"type": "char_location"}]}]}],
            r"messages\[0\]\.content\[0\]\.citations",
        ),
        ({"system": [{"type": "image"}], "messages": []}, r"system\[0\]\.type: 'image'"),
        ({"system": "x"}, r"request\.messages is required"),
        ([{"role": "system", "content": "x"}], r"messages\[0\]\.role: 'system'"),
    ],
)
def test_reading_anthropic_refuses_what_it_would_drop(request_body: Any, path: str) -> None:
    with pytest.raises(InvalidArgument, match=path):
        from_anthropic(request_body)


# -- Gemini -------------------------------------------------------------------------------------

GEMINI_REQUEST: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "You are a travel assistant."}]},
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Weather in Oslo and Bergen?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Two cities: two calls.", "thought": True},
                {
                    "functionCall": {"id": "call_oslo", "name": "get_weather", "args": {"city": "Oslo"}},
                    "thoughtSignature": "CiQBcsjafE",
                },
                {"functionCall": {"id": "call_bergen", "name": "get_weather", "args": {"city": "Bergen"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call_oslo",
                        "name": "get_weather",
                        "response": {"output": "4°C, light rain"},
                    }
                },
                {
                    "functionResponse": {
                        "id": "call_bergen",
                        "name": "get_weather",
                        "response": {"error": "station offline"},
                    }
                },
            ],
        },
        {"role": "model", "parts": [{"text": "Oslo: 4°C and light rain."}]},
    ],
}
GEMINI_MESSAGES = [
    SYSTEM,
    QUESTION,
    Message.assistant(
        Reasoning(text="Two cities: two calls."), Reasoning(text="", signature="CiQBcsjafE"), OSLO, BERGEN
    ),
    Message.tool_results(
        ToolResult.of("call_oslo", "4°C, light rain"), ToolResult.of("call_bergen", "station offline", is_error=True)
    ),
    Message.assistant("Oslo: 4°C and light rain."),
]


def test_a_gemini_request_reads_as_messages() -> None:
    _same(
        from_gemini({**GEMINI_REQUEST, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}),
        GEMINI_MESSAGES,
    )
    _same(from_gemini(GEMINI_REQUEST["contents"]), GEMINI_MESSAGES[1:])


def test_messages_become_a_gemini_request_with_signatures_where_gemini_puts_them() -> None:
    assert to_gemini(GEMINI_MESSAGES) == GEMINI_REQUEST  # written above as Gemini documents it
    assert "systemInstruction" not in to_gemini([Message.user("hi")])
    signed_thought = [Message.assistant(Reasoning(text="hm", signature="s1"), "Done.")]
    assert to_gemini(signed_thought)["contents"][0]["parts"] == [
        {"text": "hm", "thought": True, "thoughtSignature": "s1"},
        {"text": "Done."},
    ]
    by_reference = [Message.user(Image(media_type="image/jpeg", ref="gs://bucket/ticket.jpg"))]
    assert to_gemini(by_reference)["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/ticket.jpg"}}
    ]
    assert _digests(from_gemini(to_gemini(by_reference))) == _digests(by_reference)


def test_gemini_refuses_what_it_cannot_hold_and_lossy_converts_it() -> None:
    orphan = [Message.tool_results(ToolResult.of("call_9", "x"))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: tool result 'call_9' answers no"):
        to_gemini(orphan)
    assert to_gemini(orphan, lossy=True) == {"contents": []}  # left out, as by every format but Responses
    two_texts = [
        Message.assistant(OSLO),
        Message.tool_results(ToolResult(tool_use_id="call_oslo", content=(Text(text="4°C"), Text(text="rain")))),
    ]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: a result of 2 text blocks"):
        to_gemini(two_texts)
    assert to_gemini(two_texts, lossy=True)["contents"][1]["parts"][0]["functionResponse"]["response"] == {
        "output": "4°C\nrain"
    }
    spoken = [Message.user(Transcript(text="hello"))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: Gemini has no place for spoken text"):
        to_gemini(spoken)
    assert to_gemini(spoken, lossy=True)["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


@pytest.mark.parametrize(
    ("request_body", "path"),
    [
        (
            [
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {"output": "x"}}}]},
            ],
            r"contents\[1\]\.parts\[0\]\.functionResponse: a functionResponse without an id answers the first "
            r"call of its name \('g'\)",
        ),
        (
            [
                {"role": "model", "parts": [{"functionCall": {"id": "c", "name": "f"}}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"id": "c", "name": "g", "response": {"output": "x"}}}],
                },
            ],
            r"contents\[1\]\.parts\[0\]\.functionResponse\.name: 'g' would be lost",
        ),
        (
            [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}],
            r"contents\[0\]\.parts\[0\]\.executableCode",
        ),
        (
            [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": ""}}]}],
            r"contents\[0\]\.parts\[0\] must hold exactly one",
        ),
        (
            [{"role": "user", "parts": [{"text": "a", "thought": True}]}],
            r"contents\[0\]\.parts\[0\]: a thought or thoughtSignature in a user turn",
        ),
        (
            [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}],
            r"contents\[0\]\.parts\[0\]\.inlineData: not valid base64",
        ),
        ([{"role": "function", "parts": []}], r"contents\[0\]\.role: 'function'"),
        ({"system_instruction": {"parts": []}, "contents": []}, r"request\.system_instruction"),
        (  # the google-genai SDK's snake_case dump: named, not "remove the field" (found by a newcomer pass)
            [{"role": "model", "parts": [{"function_call": {"name": "f", "args": {}}}]}],
            r"contents\[0\]\.parts\[0\]\.function_call: write it functionCall",
        ),
        (
            [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": ""}}]}],
            r"contents\[0\]\.parts\[0\]\.inline_data: write it inlineData",
        ),
    ],
)
def test_reading_gemini_refuses_what_it_would_drop(request_body: Any, path: str) -> None:
    with pytest.raises(InvalidArgument, match=path):
        from_gemini(request_body)


# -- what every format shares -------------------------------------------------------------------

CONVERTERS = [to_openai_chat, to_openai_responses, to_anthropic, to_gemini]


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda convert: convert.__name__)
def test_an_erased_message_is_refused_or_sent_with_no_content(convert: Any) -> None:
    erased = [Message.user("secret").erasure()]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]: an erased placeholder"):
        convert(erased)
    converted = json.dumps(convert(erased, lossy=True))
    assert "secret" not in converted


def test_an_erased_tool_results_message_answers_each_call_with_an_empty_result() -> None:
    messages = [Message.assistant(OSLO, BERGEN), RESULTS.erasure()]
    assert to_openai_chat(messages, lossy=True)[1:] == [
        {"role": "tool", "tool_call_id": "call_oslo", "content": []},
        {"role": "tool", "tool_call_id": "call_bergen", "content": []},
    ]
    assert to_anthropic(messages, lossy=True)["messages"][1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_oslo",
        "content": [],
        "is_error": False,
    }


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda convert: convert.__name__)
def test_results_of_an_erased_tool_use_are_never_sent_without_it(convert: Any) -> None:
    # Found by a newcomer: lossy exports sent the results of an erased call,
    # a request every provider refuses (a result with no call before it).
    results = Message.tool_results(ToolResult.of("call_oslo", "4°C"))
    messages = [Message.user("look me up"), Message.assistant(OSLO).erasure(), results, Message.assistant("Done.")]
    converted = json.dumps(convert(messages, lossy=True))
    assert "call_oslo" not in converted and "Done." in converted
    with pytest.raises(InvalidArgument, match=r"messages\[1\]: an erased placeholder"):
        convert(messages)


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda convert: convert.__name__)
def test_spoken_text_is_refused_or_sent_as_text(convert: Any) -> None:
    spoken = [Message.assistant(Transcript(text="Bergen is warmer.", truncated_at_ms=900))]
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: .*spoken text.*pass lossy=True"):
        convert(spoken)
    assert "Bergen is warmer." in json.dumps(convert(spoken, lossy=True))


def test_the_backstop_refuses_what_no_specific_check_knows_of() -> None:
    # A reference that is itself a data URL would read back as inline bytes.
    odd = [Message.user(Image(media_type="image/*", ref="data:image/png;base64,iVBORw0KGgo="))]
    with pytest.raises(
        InvalidArgument, match=r"to_openai_chat: messages\[0\] would not come back the same from from_openai_chat"
    ):
        to_openai_chat(odd)
    assert to_openai_chat(odd, lossy=True)[0]["content"][0]["image_url"]["url"].startswith("data:")


def test_only_messages_are_converted() -> None:
    with pytest.raises(InvalidArgument, match=r"to_gemini: messages\[1\] is a string"):
        to_gemini([Message.user("hi"), "hello"])  # type: ignore[list-item]


def test_media_that_is_not_an_image_is_refused_not_read_as_an_image() -> None:
    # Found by an adversarial pass: audio or a PDF became an Image block,
    # which strict exports then sent to the next provider as an image.
    cases = [
        (
            from_gemini,
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}]}]},
            "audio/wav",
        ),
        (
            from_openai_chat,
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0="}}],
                }
            ],
            "application/pdf",
        ),
        (
            from_anthropic,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                            }
                        ],
                    }
                ]
            },
            "application/pdf",
        ),
    ]
    for read, body, media_type in cases:
        with pytest.raises(InvalidArgument, match=f"media type '{media_type}' is not an image"):
            read(body)


def test_a_reasoning_item_keeps_its_id_and_stays_its_own_item() -> None:
    # Found by a newcomer and an adversarial pass: the Responses API wants
    # reasoning items (with encrypted content) back with their ids, which
    # were dropped; two reasoning items came back as one.
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "a"}]},
        {"id": "rs_2", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
    ]
    read = from_openai_responses(items)
    assert read[1].blocks == (
        Reasoning(text="a", item_id="rs_1"),
        Reasoning(text="", signature="gAAAA", item_id="rs_2"),
    )
    assert to_openai_responses(read)[1:] == [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "a"}]},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAA"},
    ]
    signed = [read[0], Message.assistant(read[1].blocks[1])]  # Anthropic refuses thinking with no signature
    for convert in (to_anthropic, to_gemini):  # no place for the id: refused, or dropped when lossy
        with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: .*reasoning item's id"):
            convert(signed)
        assert "rs_2" not in json.dumps(convert(signed, lossy=True))


@pytest.mark.parametrize(("write", "read"), [(to_anthropic, from_anthropic), (to_gemini, from_gemini)])
def test_arguments_escaping_a_lone_surrogate_are_never_sent_parsed(write: Any, read: Any) -> None:
    # Found by an adversarial run: lossy export parsed them into an object
    # holding a lone surrogate, which no request (and no UTF-8) can carry.
    call = Message.assistant(ToolUse(id="c1", name="f", arguments='{"a": "\\ud800"}'))
    messages = [Message.user("go"), call, Message.tool_results(ToolResult.of("c1", "done"))]
    with pytest.raises(InvalidArgument, match="escape a lone surrogate"):
        write(messages)
    sent = write(messages, lossy=True)
    json.dumps(sent, ensure_ascii=False).encode("utf-8")  # sendable
    assert read(sent)[1].tool_uses[0].arguments == "{}"  # sent as {}, as for arguments that are no object


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda convert: convert.__name__)
def test_a_tool_call_never_answered_is_refused_or_left_out(convert: Any) -> None:
    # Found by a newcomer: a realtime call the user talked over (the store
    # takes it) was exported as is, a request every provider refuses.
    messages = [
        Message.user("Weather in Oslo?"),
        Message.assistant("Looking.", OSLO, BERGEN),
        Message.tool_results(ToolResult.of("call_bergen", "rain")),  # Oslo's result never came
        Message.user("Never mind."),
        Message.assistant(OSLO),  # the last message: a call under way, kept
    ]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[1\]: tool use 'call_oslo' is never answered"):
        convert(messages)
    sent = json.dumps(convert(messages, lossy=True))
    # Oslo once (the last call), Bergen twice (its call and result)
    assert sent.count("call_oslo") == 1 and sent.count("call_bergen") == 2
    assert "Looking." in sent and "Never mind." in sent


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda convert: convert.__name__)
def test_an_erased_message_is_left_out_not_sent_empty(convert: Any) -> None:
    # Found by a newcomer: lossy exports sent an erased placeholder as a
    # message with no content, which providers refuse.
    messages = [Message.user("hello"), Message.assistant("secret").erasure(), Message.user("still there?")]
    sent = convert(messages, lossy=True)
    assert "secret" not in json.dumps(sent) and "[]" not in json.dumps(sent)


def test_exports_never_send_what_every_provider_refuses_a_result_without_its_call_or_an_empty_message() -> None:
    # Found by a pass against the providers' own payloads: an empty text
    # block beside a call (once read from Chat's content "") went out to
    # Anthropic empty; a window starting at results sent results without
    # their call; lossy mode sent messages it had emptied. Each is a request
    # the provider refuses (expected values written from the inputs).
    messages = [
        Message.user("Weather?"),
        Message.assistant("", ToolUse(id="c1", name="w")),
        Message.tool_results(ToolResult.of("c1", "rain")),
    ]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: Anthropic Messages refuses an empty text"):
        to_anthropic(messages)
    assert to_anthropic(messages, lossy=True)["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {}}],
    }

    window = [Message.tool_results(ToolResult.of("c1", "rain")), Message.assistant("It rains.")]
    for convert in (to_openai_chat, to_anthropic, to_gemini):
        with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[0\]: tool result 'c1' answers no tool use"):
            convert(window)
    assert to_openai_chat(window, lossy=True) == [{"role": "assistant", "content": "It rains."}]
    assert to_gemini(window, lossy=True)["contents"] == [{"role": "model", "parts": [{"text": "It rains."}]}]
    # The Responses format keeps it: a request continuing a stored response sends outputs alone.
    assert to_openai_responses(window)[0] == {"type": "function_call_output", "call_id": "c1", "output": "rain"}

    # A call answered only after another message: the call is never answered (left out), so is its late result.
    late = [
        Message.user("Weather?"),
        Message.assistant(ToolUse(id="c1", name="w")),
        Message.user("Hello?"),
        Message.tool_results(ToolResult.of("c1", "rain")),
    ]
    assert to_openai_chat(late, lossy=True) == [
        {"role": "user", "content": "Weather?"},
        {"role": "user", "content": "Hello?"},
    ]

    emptied = [Message.user("Draw a cat."), Message.assistant(Image(media_type="image/png", data=b"\x89PNG"))]
    assert to_openai_chat(emptied, lossy=True) == [{"role": "user", "content": "Draw a cat."}]
    assert to_anthropic(emptied, lossy=True)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Draw a cat."}]}
    ]
    assert to_openai_responses(emptied, lossy=True) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Draw a cat."}]}
    ]
    thinking_only = [Message.user("Hm?"), Message.assistant(Reasoning(text="Let me think."))]
    assert to_openai_chat(thinking_only, lossy=True) == [{"role": "user", "content": "Hm?"}]


def test_chat_content_empty_beside_tool_calls_is_no_text_as_null_is() -> None:
    # Found by a newcomer: the Vercel AI SDK writes content "" beside tool
    # calls where OpenAI writes null; "" became an empty Text block, so the
    # same turn had another digest and strict Anthropic and Gemini exports
    # refused it. formats.md: a field that is null or empty counts as absent.
    call = {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
    by_openai = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    by_vercel = [by_openai[0], {"role": "assistant", "content": "", "tool_calls": [call]}]
    read = from_openai_chat(by_vercel)
    assert read[1].blocks == (ToolUse(id="c1", name="w", arguments="{}"),)
    assert _digests(read) == _digests(from_openai_chat(by_openai))
    turn = [*read, Message.tool_results(ToolResult.of("c1", "rain"))]
    assert to_openai_chat(turn)[1] == by_openai[1]  # goes back as content null
    assert to_anthropic(turn)["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "w", "input": {}}]
    assert to_gemini(turn)["contents"][1]["parts"] == [{"functionCall": {"id": "c1", "name": "w", "args": {}}}]
    # An empty text block beside a call (a message read before) still goes
    # out and back exactly: as a part, which is not an empty field.
    kept = [Message.user("Weather?"), Message.assistant("", ToolUse(id="c1", name="w")), turn[2]]
    assert to_openai_chat(kept)[1]["content"] == [{"type": "text", "text": ""}]
    assert _digests(from_openai_chat(to_openai_chat(kept))) == _digests(kept)
    # Without calls, "" is the message's one text, as before.
    assert from_openai_chat([{"role": "assistant", "content": ""}])[0].blocks == (Text(text=""),)


@pytest.mark.parametrize("text", [" ", "\n", " \t\r\n"], ids=["space", "newline", "mixed"])
def test_anthropic_refuses_a_text_block_of_whitespace_only_as_an_empty_one(text: str) -> None:
    # Found by a newcomer: strict to_anthropic refused "" but sent " " or
    # "\n", which the Messages API refuses alike (400 "text content blocks
    # must contain non-whitespace text"). lossy=True leaves it out, as "".
    messages = [Message.user("Weather?"), Message.assistant(text, ToolUse(id="c1", name="w"))]
    with pytest.raises(
        InvalidArgument,
        match=re.escape(
            f"to_anthropic: messages[1].blocks[0]: Anthropic Messages refuses a text block of whitespace only ({text!r}"
        ),
    ):
        to_anthropic(messages)
    assert to_anthropic(messages, lossy=True)["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {}}],
    }
    # Text around whitespace is text: sent as it is.
    assert to_anthropic([Message.user(f"{text}Hi{text}")])["messages"][0]["content"] == [
        {"type": "text", "text": f"{text}Hi{text}"}
    ]


@pytest.mark.parametrize(
    ("read", "request_json", "where"),
    [
        (
            from_openai_chat,
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}],
            r"messages\[0\]\.content\[0\]: Image\.ref is empty",
        ),
        (
            from_openai_chat,
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]}],
            r"messages\[0\]\.content\[0\]: Image\.data is empty",
        ),
        (
            from_openai_responses,
            [{"role": "user", "content": [{"type": "input_image", "image_url": ""}]}],
            r"items\[0\]\.content\[0\]: Image\.ref is empty",
        ),
        (
            from_anthropic,
            [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}],
                }
            ],
            r"messages\[0\]\.content\[0\]\.source: Image\.data is empty",
        ),
        (
            from_anthropic,
            [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": ""}}]}],
            r"messages\[0\]\.content\[0\]\.source: Image\.ref is empty",
        ),
        (
            from_gemini,
            [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}],
            r"contents\[0\]\.parts\[0\]: Image\.data is empty",
        ),
        (
            from_gemini,
            [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": ""}}]}],
            r"contents\[0\]\.parts\[0\]: Image\.ref is empty",
        ),
    ],
    ids=[
        "chat url",
        "chat data url",
        "responses url",
        "anthropic base64",
        "anthropic url",
        "gemini inline",
        "gemini file",
    ],
)
def test_an_image_of_no_bytes_or_an_empty_url_is_refused_with_its_path(
    read: Any, request_json: Any, where: str
) -> None:
    # Found by a newcomer: these became Image(data=b"") or Image(ref=""),
    # which the converters then sent as "data": "" or "url": "".
    with pytest.raises(InvalidArgument, match=where):
        read(request_json)


def test_a_data_url_with_a_parameter_is_refused_naming_the_parameter() -> None:
    # Found by a newcomer: "data:image/png;name=cat.png;base64,..." was
    # refused as "media type 'image/png;name=cat.png' is not an image". An
    # Image keeps no file name, so it would not come back: refused, and the
    # error says the parameter is what cannot be kept.
    url = "data:image/png;name=cat.png;base64,iVBORw0KGgo="
    chat = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    expected = (
        "messages[0].content[0]: the data URL's parameter 'name=cat.png' has no place in an engine image "
        "(it keeps the media type 'image/png' and the bytes); remove it (data:image/png;base64,...)"
    )
    with pytest.raises(InvalidArgument, match=re.escape(expected)):
        from_openai_chat(chat)
    with pytest.raises(InvalidArgument, match=r"items\[0\]\.content\[0\]: the data URL's parameter 'name=cat\.png'"):
        from_openai_responses([{"role": "user", "content": [{"type": "input_image", "image_url": url}]}])


def test_a_responses_turn_that_goes_on_after_its_calls_reads_as_one_message_and_back() -> None:
    # Found with the real Agents SDK: [reasoning, call a, reasoning, call b]
    # read as two assistant messages, the first one's calls then unanswered
    # by the message after it, which the store refuses.
    items = [
        {"type": "reasoning", "summary": [], "encrypted_content": "e1"},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "reasoning", "summary": [], "encrypted_content": "e2"},
        {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Wait.", "annotations": []}],
        },
        {"type": "function_call_output", "call_id": "a", "output": "1"},
        {"type": "function_call_output", "call_id": "b", "output": "2"},
    ]
    turn = from_openai_responses(items)
    assert turn == [
        Message.assistant(
            Reasoning(text="", signature="e1"),
            ToolUse(id="a", name="f"),
            Reasoning(text="", signature="e2"),
            ToolUse(id="b", name="f"),
            "Wait.",
        ),
        Message.tool_results(ToolResult.of("a", "1"), ToolResult.of("b", "2")),
    ]
    assert to_openai_responses(turn) == items
    # Without a call, text then reasoning still reads back as two messages: refused in strict mode.
    with pytest.raises(InvalidArgument, match=r"messages\[0\]\.blocks\[1\]: a reasoning block after a text block"):
        to_openai_responses([Message.assistant("Hm.", Reasoning(text="think"))])


def test_a_turn_of_several_message_items_keeps_the_first_ones_id() -> None:
    # A message item without an id after one with an id took its place: the
    # id erase() finds the message by was lost.
    def said(text: str, **item_id: str) -> dict[str, Any]:
        return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}], **item_id}

    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    [turn] = from_openai_responses([said("Checking.", id="msg_1"), call, said("Still checking.")])
    assert turn.provider_item_id == "msg_1"
    [turn] = from_openai_responses([said("Checking."), call, said("Still checking.", id="msg_2")])
    assert turn.provider_item_id == "msg_2"
    # Two calls of one turn under one id: refused by the reader, naming the item (append refused them).
    with pytest.raises(InvalidArgument, match=r"items\[2\]\.call_id: 'c1' is the id of an earlier call"):
        from_openai_responses([call, {"type": "reasoning", "summary": []}, call])


def test_results_given_again_after_an_erased_result_are_sent_once() -> None:
    # Found by a second adversarial pass: a tool_results message after an
    # erased one was taken for the results of an erased call and left out of
    # every lossy export, the call then answered only by the erased empty result.
    call = Message.assistant(ToolUse(id="c1", name="balance"))
    again = Message.tool_results(ToolResult.of("c1", "250 EUR"))
    erased_first = Message.tool_results(ToolResult.of("c1", "acct 12345678: 250 EUR")).erasure()
    messages = [Message.user("Balance?"), call, erased_first, again, Message.assistant("You have 250 EUR.")]
    assert to_openai_chat(messages, lossy=True)[1:3] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "balance", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "250 EUR"},
    ]  # fmt: skip
    assert to_anthropic(messages, lossy=True)["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "250 EUR", "is_error": False}],
    }
    # The call's own message erased: its results (given once or again) are left out with it.
    gone = [Message.user("Balance?"), call.erasure(), again, Message.assistant("You have 250 EUR.")]
    assert to_openai_chat(gone, lossy=True) == [
        {"role": "user", "content": "Balance?"},
        {"role": "assistant", "content": "You have 250 EUR."},
    ]


# Found by a newcomer pass: a message that had no blocks at all (realtime
# user speech never transcribed, Message.assistant()) was sent empty, in
# strict and lossy mode alike, though every provider refuses it.


@pytest.mark.parametrize("convert", [to_openai_chat, to_openai_responses, to_anthropic, to_gemini])
@pytest.mark.parametrize("empty", [Message.user(), Message.assistant(), Message(role="system")])
def test_a_message_with_no_content_is_refused_or_left_out(convert: Any, empty: Message) -> None:
    before = [Message.system("Be brief.")] if empty.role != "system" else []
    messages = [*before, Message.user("Hello?"), empty, Message.user("Anyone there?")]
    with pytest.raises(InvalidArgument, match=rf"messages\[{len(before) + 1}\]: a message with no content"):
        convert(messages)
    assert convert(messages, lossy=True) == convert([m for m in messages if m is not empty])


def test_anthropic_refuses_thinking_without_a_signature_and_lossy_leaves_it_out() -> None:
    # Found by a newcomer pass: to_anthropic sent {"type": "thinking"} with no
    # signature, which the API refuses (its ThinkingBlockParam requires one).
    unsigned = Message.assistant(Reasoning(text="Need the order status."), "Looking it up.")
    only_unsigned = Message.assistant(Reasoning(text="Hmm."))
    messages = [Message.user("q"), unsigned, Message.user("and?"), only_unsigned, Message.user("ok")]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: .*thinking block without its signature"):
        to_anthropic(messages)
    sent = to_anthropic(messages, lossy=True)
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking it up."}]},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]},
        {"role": "user", "content": [{"type": "text", "text": "ok"}]},
    ]
    signed = Message.assistant(Reasoning(text="Need it.", signature="sig-9"), "Looking it up.")
    assert to_anthropic([Message.user("q"), signed])["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Need it.",
        "signature": "sig-9",
    }
    empty = Message.assistant(Reasoning(text="x", signature=""), "Looking it up.")  # a stream cut early
    with pytest.raises(InvalidArgument, match="thinking block without its signature"):
        to_anthropic([Message.user("q"), empty])
    assert to_anthropic([Message.user("q"), empty], lossy=True)["messages"][1]["content"] == [
        {"type": "text", "text": "Looking it up."}
    ]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.content\[0\]\.signature is empty"):
        from_anthropic(
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": ""}]},
            ]
        )
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.content\[0\]\.signature must be a string"):
        from_anthropic(
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]},
            ]
        )


def test_parsed_arguments_that_json_text_would_change_are_refused() -> None:
    # Found by an adversarial pass: input={1: "a", "1": "b"} became arguments
    # text holding the key "1" twice, which strict to_anthropic then refused.
    call = {"type": "tool_use", "id": "c1", "name": "f"}
    for value, problem in (
        ({1: "a", "1": "b"}, r"input keys must be str, got 1"),
        ({"a": (1, 2)}, r"input\['a'\] is a tuple"),
    ):
        with pytest.raises(InvalidArgument, match=rf"messages\[1\]\.content\[0\]\.{problem}"):
            asked = {"role": "assistant", "content": [{**call, "input": value}]}
            from_anthropic([{"role": "user", "content": "q"}, asked])
        turn = {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "f", "args": value}}]}
        with pytest.raises(InvalidArgument, match=r"contents\[1\]\.parts\[0\]\.functionCall\.args"):
            from_gemini({"contents": [{"role": "user", "parts": [{"text": "q"}]}, turn]})


def test_gemini_refuses_an_image_whose_media_type_is_not_known() -> None:
    # An image by a bare URL (Chat, Responses, Anthropic) reads as image/*, and
    # to_gemini sent it as fileData with mimeType "image/*": Gemini refuses a
    # part whose MIME type it does not support, so the request would fail there.
    url = "https://example.com/receipt.png"
    [asked] = from_openai_chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Is this paid?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
    )
    assert asked.blocks[1] == Image(media_type="image/*", ref=url)
    with pytest.raises(
        InvalidArgument, match=r"to_gemini: messages\[0\]\.blocks\[1\]: an image whose media type is not known"
    ):
        to_gemini([asked])
    assert to_gemini([asked], lossy=True)["contents"] == [{"role": "user", "parts": [{"text": "Is this paid?"}]}]
    shown = Message.assistant("Here it is.", Image(media_type="image/*", data=b"\x89PNG"))
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[1\]"):
        to_gemini([Message.user("Show me the receipt."), shown], lossy=False)
    only_image = Message.user(Image(media_type="image/*", ref=url))
    answer = Message.assistant("Yes.")
    assert to_gemini([only_image, answer], lossy=True)["contents"] == [{"role": "model", "parts": [{"text": "Yes."}]}]
    typed = Message.user("Is this paid?", Image(media_type="image/png", ref=url))
    assert to_gemini([typed])["contents"][0]["parts"][1] == {"fileData": {"mimeType": "image/png", "fileUri": url}}


def test_gemini_refuses_an_empty_text_part() -> None:
    # Found by a newcomer pass: to_gemini sent {"text": ""}, which the Gemini
    # API refuses ("Unable to submit request because it has an empty text
    # parameter"), in user, model and system turns alike.
    asked = [Message.system(""), Message.user("Is it paid?"), Message.user(""), Message.assistant("", "Yes.")]
    for index, block in ((0, 0), (2, 0), (3, 0)):
        alone = [asked[index]] if index == 0 else [asked[1], asked[index]]
        where = f"messages[{len(alone) - 1}].blocks[{block}]"
        with pytest.raises(InvalidArgument, match=re.escape(f"to_gemini: {where}: Gemini refuses an empty text part")):
            to_gemini(alone)
    assert to_gemini(asked, lossy=True) == {
        "contents": [
            {"role": "user", "parts": [{"text": "Is it paid?"}]},
            {"role": "model", "parts": [{"text": "Yes."}]},
        ]
    }


def test_gemini_calls_without_ids_are_read_with_ids_of_their_own() -> None:
    # Found by newcomer passes: Gemini's generateContent gives function calls
    # no id, and its responses answer them by name, in order; from_gemini
    # refused every such history ("functionCall.id is required"). Then the
    # ids it made repeated for the same call in two turns (Anthropic refuses
    # two tool uses of one id), and an edited call's arguments changed its id.
    calls = {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}},
        ],
    }
    answers = {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "Rain, 7°C."}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "Sun, 12°C."}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "Still rain."}}},
        ],
    }
    question = {"role": "user", "parts": [{"text": "Weather in Bergen and Oslo?"}]}
    history = [
        question,
        calls,
        answers,
        {"role": "model", "parts": [{"text": "Rain and sun."}]},
        question,
        calls,
        answers,
    ]
    read = from_gemini(history)
    assert [m.role for m in read] == [
        "user",
        "assistant",
        "tool_results",
        "assistant",
        "user",
        "assistant",
        "tool_results",
    ]
    ids = [use.id for message in read for use in message.tool_uses]
    assert len(set(ids)) == 6 and all(re.fullmatch(r"gemini_[0-9a-f]{20}", ident) for ident in ids)
    arguments = [use.arguments for use in read[1].tool_uses]
    assert arguments == ['{"city": "Bergen"}', '{"city": "Oslo"}', '{"city": "Bergen"}']
    # Each response answers the first call of its name still waiting: the calls in order.
    for calling, answering in ((read[1], read[2]), (read[5], read[6])):
        paired = [(b.tool_use_id, b.content_text) for b in answering.blocks if isinstance(b, ToolResult)]
        expected = [use.id for use in calling.tool_uses]
        assert paired == list(zip(expected, ["Rain, 7°C.", "Sun, 12°C.", "Still rain."], strict=True))
    assert from_gemini(history) == read  # the same ids every time
    written = to_gemini(read)  # the ids go out with the calls and their responses
    assert written["contents"][1]["parts"][0]["functionCall"]["id"] == ids[0]
    assert written["contents"][2]["parts"][0]["functionResponse"]["id"] == ids[0]
    assert from_gemini(written) == read
    assert (
        len(
            {
                block["id"]
                for m in to_anthropic(read, lossy=True)["messages"]
                for block in m["content"]
                if block["type"] == "tool_use"
            }
        )
        == 6
    )
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, *read)
    edited = read[1].tool_uses[1]
    store.rewrite(
        sid,
        1,
        2,
        [
            Message.assistant(
                read[1].tool_uses[0],
                ToolUse(id=edited.id, name=edited.name, arguments='{"city": "Lyon"}'),
                read[1].tool_uses[2],
            )
        ],
        "edit",
    )
    assert to_gemini(store.get(sid).messages)["contents"][1]["parts"][1]["functionCall"] == {
        "id": edited.id,
        "name": "get_weather",
        "args": {"city": "Lyon"},
    }
    given = [{"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "f", "args": {}}}]}]
    given.append({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}]})
    [_, result] = from_gemini(given)  # a response without an id answers the call of its name
    assert result.blocks[0] == ToolResult(tool_use_id="c1", content=(Text(text="ok"),))


def test_gemini_takes_back_an_empty_text_part_that_carries_a_thought_signature() -> None:
    # Found by a newcomer pass: Gemini sometimes ends a turn with a text part
    # of no text that carries the turn's thought signature; read, it could not
    # be sent back. An empty thought of no signature is refused, as any empty text.
    turn = [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}, {"text": "", "thoughtSignature": "c2ln"}]},
    ]
    read = from_gemini(turn)
    assert read[1].blocks == (Text(text="Hello."), Reasoning(text="", signature="c2ln"), Text(text=""))
    assert to_gemini(read)["contents"] == turn
    bare = [Message.user("hi"), Message.assistant(Reasoning(text=""), "Hello")]
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: Gemini refuses an empty text part"):
        to_gemini(bare)
    assert to_gemini(bare, lossy=True)["contents"][1] == {"role": "model", "parts": [{"text": "Hello"}]}


def _answered(*responses: Any) -> list[Any]:
    """A Gemini history: a model turn of calls f0, f1... (no ids, as
    generateContent gives them), then a user turn answering each with the
    response given, in order."""
    calls = [{"functionCall": {"name": f"f{n}", "args": {}}} for n in range(len(responses))]
    answers = [{"functionResponse": {"name": f"f{n}", "response": response}} for n, response in enumerate(responses)]
    return [{"role": "model", "parts": calls}, {"role": "user", "parts": answers}]


def test_a_gemini_response_object_of_any_shape_is_kept_and_goes_back_as_it_came() -> None:
    # Found checking real SDK output: the google-genai SDK answers a call
    # with {"result": ...}, and ADK's tools return dicts of their own; only
    # {"output": text} and {"error": text} were read, the rest refused.
    sdk = {"result": {"temp": 7, "sky": "rain"}}
    adk = {"status": "success", "report": "Light rain, 7°C."}
    coded = {"error": {"code": 5, "message": "not found"}}
    plain = {"output": "12:00"}
    history = _answered(sdk, adk, coded, plain)
    asked, answered = from_gemini(history)
    ids = [use.id for use in asked.tool_uses]
    assert [(r.tool_use_id, r.content_text, r.is_error) for r in answered.blocks] == [
        (ids[0], '{"result": {"temp": 7, "sky": "rain"}}', False),
        (ids[1], '{"status": "success", "report": "Light rain, 7°C."}', False),
        (ids[2], '{"error": {"code": 5, "message": "not found"}}', False),
        (ids[3], "12:00", False),
    ]
    sent = to_gemini([asked, answered])["contents"][1]["parts"]
    assert [part["functionResponse"]["response"] for part in sent] == [sdk, adk, coded, plain]
    # Kept by a store, rebuilt by the engine's own operations (results added
    # one at a time, a copy of the message), and sent to another API as text.
    with Transcripts.open() as store:
        sid = store.create()
        store.append(sid, Message.user("Weather?"), asked, Message.tool_results(answered.blocks[0]))
        store.add_tool_results(sid, *answered.blocks[1:])  # type: ignore[arg-type]
        kept = store.get(sid).messages[1:]
    assert to_gemini(kept)["contents"][1]["parts"] == sent
    assert to_gemini([asked, Message.tool_results(*answered.blocks)])["contents"][1]["parts"] == sent  # type: ignore[arg-type]
    assert to_openai_chat(kept)[1]["content"] == '{"result": {"temp": 7, "sky": "rain"}}'


def test_a_result_goes_to_gemini_as_an_object_only_if_its_text_is_one_and_reads_back_the_same() -> None:
    asked, _ = from_gemini(_answered({"result": 4}))
    [use] = asked.tool_uses
    texts = [
        '{"result": 4}',  # an object as json.dumps writes it: sent as the object
        '{"result":4}',  # other spacing: as text, so it comes back byte for byte
        '{"output": "x"}',  # would read back as the text x: as text
        "[1, 2]",  # not an object
        "four",
    ]
    sent = []
    for text in texts:
        results = Message.tool_results(ToolResult.of(use.id, text))
        request = to_gemini([asked, results])  # strict: it reads back as these messages
        [part] = request["contents"][1]["parts"]
        sent.append(part["functionResponse"]["response"])
        assert from_gemini(request["contents"])[1] == results
    assert sent == [
        {"result": 4},
        {"output": '{"result":4}'},
        {"output": '{"output": "x"}'},
        {"output": "[1, 2]"},
        {"output": "four"},
    ]
    error = Message.tool_results(ToolResult.of(use.id, '{"code": 5}', is_error=True))
    assert to_gemini([asked, error])["contents"][1]["parts"][0]["functionResponse"]["response"] == {
        "error": '{"code": 5}'
    }


@pytest.mark.parametrize("content", [(), (Text(text=""),)], ids=["no block", "an empty text"])
def test_anthropic_refuses_an_error_result_with_no_content(content: tuple[Text, ...]) -> None:
    # Found by a newcomer pass: the API answers such a request "content
    # cannot be empty if is_error is true".
    asked = Message.assistant(ToolUse(id="c1", name="f"))
    failed = Message.tool_results(ToolResult(tool_use_id="c1", content=content, is_error=True))
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.blocks\[0\]: an error result with no content"):
        to_anthropic([asked, failed])
    [result] = to_anthropic([asked, failed], lossy=True)["messages"][1]["content"]
    assert result["is_error"] is False
    said = Message.tool_results(ToolResult.of("c1", "timed out", is_error=True))
    assert to_anthropic([asked, said])["messages"][1]["content"][0]["is_error"] is True


def test_two_calls_with_one_id_are_refused_by_every_format() -> None:
    # Found by a newcomer pass: a Gemini history read turn by turn names a
    # repeated call alike in each turn; the converters sent both calls under
    # one id, which Anthropic's API refuses ("tool_use ids must be unique").
    def turn(question: str, answer: str) -> list[Any]:
        return [
            {"role": "user", "parts": [{"text": question}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {"output": answer}}}]},
            {"role": "model", "parts": [{"text": "ok"}]},
        ]

    joined = [*from_gemini(turn("time?", "09:00")), *from_gemini(turn("and now?", "09:05"))]
    assert joined[1].tool_uses[0].id == joined[5].tool_uses[0].id
    converters: list[Any] = [to_anthropic, to_gemini, to_openai_chat, to_openai_responses]
    for convert in converters:
        with pytest.raises(InvalidArgument, match=r"messages\[5\]\.blocks\[0\]: tool use .* has the id of an earlier"):
            convert(joined)
    sent = to_anthropic(joined, lossy=True)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert "09:05" not in json.dumps(sent)  # the repeated call and its result are left out
    # Read at once, the same history names each call apart.
    whole = from_gemini([*turn("time?", "09:00"), *turn("and now?", "09:05")])
    assert to_anthropic(whole)["messages"][6]["content"][0]["content"] == "09:05"


def test_calls_answered_over_two_turns_of_results_are_answered() -> None:
    # Found by a newcomer pass: to_gemini said a call answered in the second
    # of two user turns of function responses was "never answered".
    split = [
        {"role": "user", "parts": [{"text": "both?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"id": "a", "name": "f", "args": {}}},
                {"functionCall": {"id": "b", "name": "g", "args": {}}},
            ],
        },
        {"role": "user", "parts": [{"functionResponse": {"id": "a", "name": "f", "response": {"output": "1"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "b", "name": "g", "response": {"output": "2"}}}]},
    ]
    messages = from_gemini(split)
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "tool_results"]
    assert to_gemini(messages)["contents"][2:] == [
        {"role": "user", "parts": [{"functionResponse": {"id": "a", "name": "f", "response": {"output": "1"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "b", "name": "g", "response": {"output": "2"}}}]},
    ]
