"""OpenAI Chat Completions ``messages``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import InvalidArgument
from engine.formats._common import (
    Entry,
    Json,
    Policy,
    as_array,
    as_object,
    building,
    check_round_trip,
    described,
    image_from_url,
    image_url,
    left_out_emptied,
    only_fields,
    optional_text,
    part_type,
    prepare,
    text_field,
)
from engine.state.content import Block, Image, Message, Reasoning, Text, ToolResult, ToolUse

FORMAT = "OpenAI Chat Completions"


def to_openai_chat(messages: Iterable[Message], *, lossy: bool = False) -> list[Json]:
    """Chat Completions ``messages``. A ``tool_results`` message becomes one
    ``tool`` message per result; tool uses become the ``tool_calls`` of
    their assistant message. Content that is one text block is a string,
    any other content a list of parts. See the module docstring for what
    strict mode refuses and what ``lossy=True`` does instead."""
    policy = Policy("to_openai_chat", FORMAT, lossy)
    originals, entries = prepare(messages, policy)
    result: list[Json] = []
    for position, entry in enumerate(entries):
        if entry.role != "tool_results":
            message = _message(entry, policy)
            if message is not None:
                result.append(message)
            continue
        if position and entries[position - 1].role == "tool_results":
            policy.cannot_hold(
                entry.where(),
                f"a tool_results message right after another: the tool messages of {FORMAT} would read back as one",
                "send them anyway (they read back as one message)",
            )
        result.extend(_tool_messages(entry, policy))
    if not lossy:
        check_round_trip(originals, lambda: from_openai_chat(result), policy, "from_openai_chat")
    return result


def _message(entry: Entry, policy: Policy) -> Json | None:
    parts: list[Json] = []
    calls: list[Json] = []
    for number, block in enumerate(entry.blocks):
        where = entry.where(number)
        if isinstance(block, Reasoning):
            policy.cannot_hold(where, f"{FORMAT} has no place for a reasoning block", "leave it out")
        elif isinstance(block, ToolUse):
            function = {"name": block.name, "arguments": block.arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        elif calls:
            policy.cannot_hold(
                where,
                f"content after a tool use: {FORMAT} keeps an assistant's content before its tool_calls",
                "send the content first",
            )
        if isinstance(block, Text):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, Image) and entry.role == "assistant":
            policy.cannot_hold(where, f"{FORMAT} has no place for an image in an assistant message", "leave it out")
        elif isinstance(block, Image):
            parts.append({"type": "image_url", "image_url": {"url": image_url(block, where, policy)}})
    if left_out_emptied(entry, parts + calls):
        return None
    content: str | list[Json] | None = parts
    if len(parts) == 1 and parts[0]["type"] == "text" and (parts[0]["text"] or not calls):
        content = parts[0]["text"]  # but "" beside calls, which reads back as no text: a part keeps it
    elif not parts and entry.role == "assistant":
        content = None  # the usual shape of an assistant message of tool calls alone
    message: Json = {"role": entry.role, "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_messages(entry: Entry, policy: Policy) -> list[Json]:
    messages: list[Json] = []
    for number, result in enumerate(entry.blocks):
        if not isinstance(result, ToolResult):  # a tool_results message holds nothing else
            continue
        where = entry.where(number)
        if result.is_error:
            policy.cannot_hold(
                where, f"a tool message of {FORMAT} has no error flag for this error result", "send it as a result"
            )
        texts: list[str] = []
        for part_number, part in enumerate(result.content):
            if isinstance(part, Image):
                policy.cannot_hold(
                    f"{where}.content[{part_number}]",
                    f"a tool message of {FORMAT} holds text, not images",
                    "leave it out",
                )
            else:
                texts.append(part.text)
        content: str | list[Json] = texts[0] if len(texts) == 1 else [{"type": "text", "text": t} for t in texts]
        messages.append({"role": "tool", "tool_call_id": result.tool_use_id, "content": content})
    return messages


# -- reading ---------------------------------------------------------------------------


def from_openai_chat(messages: Sequence[Json]) -> list[Message]:
    """Messages from Chat Completions ``messages``: ``system`` and
    ``developer`` become system messages; a run of consecutive ``tool``
    messages becomes one ``tool_results`` message. Anything the engine
    cannot hold is refused with its path, never dropped."""
    result: list[Message] = []
    results: list[ToolResult] = []  # the run of tool messages being read
    for index, raw in enumerate(as_array(messages, "messages")):
        where = f"messages[{index}]"
        message = as_object(raw, where)
        role = text_field(message, "role", where)
        if role == "tool":
            results.append(_tool_result(message, where))
            continue
        if results:
            result.append(Message(role="tool_results", blocks=tuple(results)))
            results = []
        if role in ("system", "developer"):
            only_fields(message, where, ("role", "content"))
            result.append(Message(role="system", blocks=_content(message, where, ("text",))))
        elif role == "user":
            only_fields(message, where, ("role", "content"))
            result.append(Message(role="user", blocks=_content(message, where, ("text", "image_url"))))
        elif role == "assistant":
            result.append(_assistant(message, where))
        else:
            raise InvalidArgument(
                f"{where}.role: {role!r} is not a role this engine can hold; "
                "expected system, developer, user, assistant or tool"
            )
    if results:
        result.append(Message(role="tool_results", blocks=tuple(results)))
    return result


def _assistant(message: dict[str, Any], where: str) -> Message:
    only_fields(message, where, ("role", "content", "tool_calls"))
    blocks: list[Block] = []
    calls = message.get("tool_calls") or []
    # Beside tool calls, "" is no text, as null is (the Vercel AI SDK writes
    # "", OpenAI null): the same turn reads the same whoever wrote it.
    if message.get("content") is not None and not (calls and message.get("content") == ""):
        blocks += _content(message, where, ("text",))
    for number, raw in enumerate(as_array(calls, f"{where}.tool_calls")):
        call_where = f"{where}.tool_calls[{number}]"
        call = as_object(raw, call_where)
        only_fields(call, call_where, ("id", "type", "function"))
        part_type(call, call_where, ("function",), "a tool call")
        function = as_object(call.get("function"), f"{call_where}.function")
        only_fields(function, f"{call_where}.function", ("name", "arguments"))
        name = text_field(function, "name", f"{call_where}.function")
        arguments = text_field(function, "arguments", f"{call_where}.function")
        with building(call_where):
            blocks.append(ToolUse(id=text_field(call, "id", call_where), name=name, arguments=arguments))
    return Message(role="assistant", blocks=tuple(blocks))


def _tool_result(message: dict[str, Any], where: str) -> ToolResult:
    only_fields(message, where, ("role", "tool_call_id", "content"))
    texts = _content(message, where, ("text",))
    with building(where):
        return ToolResult(tool_use_id=text_field(message, "tool_call_id", where), content=texts)


def _content(message: dict[str, Any], where: str, kinds: tuple[str, ...]) -> tuple[Text | Image, ...]:
    """A ``content`` string (one text block) or list of parts of ``kinds``."""
    content = message.get("content")
    if isinstance(content, str):
        with building(f"{where}.content"):
            return (Text(text=content),)
    if not isinstance(content, (list, tuple)):
        got = "nothing: it is required" if content is None else described(content)
        raise InvalidArgument(f"{where}.content must be a string or an array of parts, got {got}")
    blocks: list[Text | Image] = []
    for number, raw in enumerate(content):
        part_where = f"{where}.content[{number}]"
        part = as_object(raw, part_where)
        if part_type(part, part_where, kinds) == "text":
            only_fields(part, part_where, ("type", "text"))
            with building(part_where):
                blocks.append(Text(text=text_field(part, "text", part_where)))
            continue
        only_fields(part, part_where, ("type", "image_url"))
        image = as_object(part.get("image_url"), f"{part_where}.image_url")
        only_fields(image, f"{part_where}.image_url", ("url", "detail"))
        detail = optional_text(image, "detail", f"{part_where}.image_url")
        if detail not in (None, "auto"):
            raise InvalidArgument(
                f"{part_where}.image_url.detail: {detail!r} would be lost (the engine keeps no detail setting); "
                "remove it or set 'auto'"
            )
        blocks.append(image_from_url(text_field(image, "url", f"{part_where}.image_url"), part_where))
    return tuple(blocks)
