"""A transcript in the message formats of model APIs: OpenAI Chat
Completions and Anthropic Messages.

What a format cannot hold is refused with ``InvalidArgument`` naming the
message and block, unless the caller says to drop it (``drop_reasoning``);
nothing is lost silently. An erased message (its content removed) becomes a
message of the same role with empty content.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from engine.errors import InvalidArgument
from engine.state.content import Image, Message, Reasoning, Text, ToolResult, ToolUse, Transcript

__all__ = ["to_anthropic", "to_openai_chat"]


def to_openai_chat(messages: Iterable[Message], *, drop_reasoning: bool = False) -> list[dict[str, Any]]:
    """OpenAI Chat Completions ``messages``: a ``tool_results`` message
    becomes one ``tool`` message per result; tool uses become ``tool_calls``.
    Chat Completions has no place for reasoning blocks: they are refused
    unless ``drop_reasoning``."""
    result: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "tool_results":
            for block in message.blocks:
                if isinstance(block, ToolResult):
                    result.append(
                        {"role": "tool", "tool_call_id": block.tool_use_id, "content": _result_text(block, index)}
                    )
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for number, block in enumerate(message.blocks):
            if isinstance(block, (Text, Transcript)):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, Image):
                parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
            elif isinstance(block, ToolUse):
                calls.append(
                    {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": block.arguments}}
                )
            elif isinstance(block, Reasoning) and not drop_reasoning:
                raise InvalidArgument(
                    f"message {index} block {number} is reasoning, which OpenAI chat messages cannot hold; "
                    "pass drop_reasoning=True (--drop-reasoning) to leave it out"
                )
        entry: dict[str, Any] = {"role": message.role}
        if all(part["type"] == "text" for part in parts):
            entry["content"] = "\n".join(part["text"] for part in parts)
        else:
            entry["content"] = parts
        if calls:
            entry["tool_calls"] = calls
        result.append(entry)
    return result


def to_anthropic(messages: Iterable[Message]) -> dict[str, Any]:
    """Anthropic Messages: ``{"system": ..., "messages": [...]}``. System
    messages join the top-level ``system`` text; tool results are ``user``
    messages of ``tool_result`` blocks; reasoning becomes ``thinking``."""
    system: list[str] = []
    result: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            system.append(message.text)
            continue
        blocks: list[dict[str, Any]] = []
        for block in message.blocks:
            if isinstance(block, (Text, Transcript)):
                blocks.append({"type": "text", "text": block.text})
            elif isinstance(block, Image):
                blocks.append({"type": "image", "source": _anthropic_image(block)})
            elif isinstance(block, ToolUse):
                blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": _arguments(block)})
            elif isinstance(block, ToolResult):
                blocks.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block.tool_use_id,
                        "content": _result_text(block, index),
                        "is_error": block.is_error,
                    }
                )
            elif isinstance(block, Reasoning):
                thinking: dict[str, Any] = {"type": "thinking", "thinking": block.text}
                if block.signature is not None:
                    thinking["signature"] = block.signature
                blocks.append(thinking)
        role = "user" if message.role in ("user", "tool_results") else "assistant"
        result.append({"role": role, "content": blocks})
    return {"system": "\n\n".join(system), "messages": result}


def _result_text(block: ToolResult, index: int) -> str:
    texts = []
    for part in block.content:
        if not isinstance(part, Text):
            raise InvalidArgument(
                f"message {index}: the result for {block.tool_use_id!r} holds an image, which this format's tool "
                "results cannot hold as text"
            )
        texts.append(part.text)
    return "\n".join(texts)


def _image_url(block: Image) -> str:
    if block.data is not None:
        return f"data:{block.media_type};base64,{base64.b64encode(block.data).decode('ascii')}"
    return block.ref or ""


def _anthropic_image(block: Image) -> dict[str, Any]:
    if block.data is not None:
        return {"type": "base64", "media_type": block.media_type, "data": base64.b64encode(block.data).decode("ascii")}
    return {"type": "url", "url": block.ref or ""}


def _arguments(block: ToolUse) -> Any:
    try:
        return json.loads(block.arguments)
    except ValueError:
        raise InvalidArgument(
            f"the arguments of tool call {block.id!r} are not JSON, which Anthropic's tool_use input must be"
        ) from None
