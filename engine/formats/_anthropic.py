"""Anthropic Messages: a request's ``system`` and ``messages``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import InvalidArgument
from engine.formats._common import (
    URL_MEDIA_TYPE,
    Entry,
    Json,
    Policy,
    arguments_object,
    arguments_text,
    as_array,
    as_object,
    building,
    check_round_trip,
    decode_base64,
    described,
    encode_base64,
    image_media_type,
    image_url,
    left_out_emptied,
    only_fields,
    part_type,
    prepare,
    split_user,
    text_field,
)
from engine.state.content import Block, Image, Message, Reasoning, Text, ToolResult, ToolUse

FORMAT = "Anthropic Messages"


def to_anthropic(messages: Iterable[Message], *, lossy: bool = False) -> Json:
    """An Anthropic Messages request's ``{"system": ..., "messages": [...]}``
    (``system`` only when there is a system message: a string for one text
    block, else a list of text blocks). Tool results are ``user`` messages
    of ``tool_result`` blocks, reasoning is ``thinking``, tool-use arguments
    are the parsed ``input`` object."""
    policy = Policy("to_anthropic", FORMAT, lossy)
    originals, entries = prepare(messages, policy)
    system: list[str] | None = None
    turns: list[Json] = []
    for entry in entries:
        if entry.role == "system":
            if turns:
                policy.cannot_hold(
                    entry.where(),
                    f"a system message after the conversation has started: {FORMAT} keeps the system prompt "
                    "apart, before every message",
                    "move its text into the system prompt",
                )
            elif system is not None:
                policy.cannot_hold(
                    entry.where(),
                    f"a second system message: the one system prompt of {FORMAT} would read back as one message",
                    "join its text to the system prompt",
                )
            system = (system or []) + [block.text for block in entry.blocks if isinstance(block, Text)]
            continue
        made = [_block(entry, number, block, policy) for number, block in enumerate(entry.blocks)]
        content = [block for block in made if block is not None]
        if left_out_emptied(entry, content):
            continue
        turns.append({"role": "assistant" if entry.role == "assistant" else "user", "content": content})
    request: Json = {}
    if system is not None:
        request["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": text} for text in system]
    request["messages"] = turns
    if not lossy:
        check_round_trip(originals, lambda: from_anthropic(request), policy, "from_anthropic")
    return request


def _block(entry: Entry, number: int, block: Block, policy: Policy) -> Json | None:
    where = entry.where(number)
    if isinstance(block, Text):
        if not block.text:
            policy.cannot_hold(where, f"{FORMAT} refuses an empty text block", "leave it out")
            return None
        if not block.text.strip():  # the API answers 400 for " " or "\n" as for ""
            policy.cannot_hold(
                where,
                f"{FORMAT} refuses a text block of whitespace only ({block.text!r}: "
                '"text content blocks must contain non-whitespace text")',
                "leave it out",
            )
            return None
        return {"type": "text", "text": block.text}
    if isinstance(block, Image):
        if entry.role == "assistant":
            policy.cannot_hold(where, f"{FORMAT} has no place for an image in an assistant message", "leave it out")
            return None
        return _image(block, where, policy)
    if isinstance(block, ToolUse):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": arguments_object(block, where, policy)}
    if isinstance(block, Reasoning):
        if not block.signature:  # None, or "" (a stream cut before its signature came)
            # The API refuses a thinking block without the signature its model gave it.
            policy.cannot_hold(where, f"{FORMAT} refuses a thinking block without its signature", "leave it out")
            return None
        if block.item_id is not None:
            policy.cannot_hold(where, f"{FORMAT} has no place for a reasoning item's id", "leave it out")
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if isinstance(block, ToolResult):
        content: str | list[Json]
        if len(block.content) == 1 and isinstance(block.content[0], Text):
            content = block.content[0].text
        else:
            content = [
                {"type": "text", "text": part.text}
                if isinstance(part, Text)
                else _image(part, f"{where}.content[{part_number}]", policy)
                for part_number, part in enumerate(block.content)
            ]
        is_error = block.is_error
        if is_error and not any(isinstance(part, Image) or part.text for part in block.content):
            policy.cannot_hold(
                where,
                f'an error result with no content: {FORMAT} refuses one ("content cannot be empty if is_error is '
                'true"); give it a text saying what failed',
                "send it without is_error",
            )
            is_error = False
        return {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": content, "is_error": is_error}
    return None  # a Transcript: prepare() has refused it or made it text


def _image(image: Image, where: str, policy: Policy) -> Json:
    if image.data is not None:
        source = {"type": "base64", "media_type": image.media_type, "data": encode_base64(image.data)}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": image_url(image, where, policy)}}


# -- reading ---------------------------------------------------------------------------


def from_anthropic(request: Json | Sequence[Json]) -> list[Message]:
    """Messages from an Anthropic Messages request (its ``system`` and
    ``messages``; other request fields such as ``model`` or ``tools`` are not
    part of a transcript and are not read) or from a bare list of messages.
    A ``user`` message is split where its blocks change between tool
    results and other content: its tool_result blocks are a tool_results
    message, the rest a user message. Anything the engine cannot hold
    (``redacted_thinking`` among them) is refused with its path."""
    result: list[Message] = []
    if isinstance(request, dict):
        if "messages" not in request:
            raise InvalidArgument("request.messages is required: the conversation's messages")
        if request.get("system") is not None:
            result.append(_system(request["system"]))
        turns = request["messages"]
    else:
        turns = request
    for index, raw in enumerate(as_array(turns, "messages")):
        where = f"messages[{index}]"
        turn = as_object(raw, where)
        only_fields(turn, where, ("role", "content"))
        role = text_field(turn, "role", where)
        if role not in ("user", "assistant"):
            raise InvalidArgument(f"{where}.role: {role!r} is not a role of {FORMAT}; expected user or assistant")
        content = turn.get("content")
        if isinstance(content, str):
            with building(f"{where}.content"):
                text = Text(text=content)
            result.append(Message(role="assistant" if role == "assistant" else "user", blocks=(text,)))
            continue
        if not isinstance(content, (list, tuple)):
            got = "nothing: it is required" if content is None else described(content)
            raise InvalidArgument(f"{where}.content must be a string or an array of blocks, got {got}")
        blocks = [_read_block(block, f"{where}.content[{number}]", role) for number, block in enumerate(content)]
        if role == "assistant":
            result.append(Message(role="assistant", blocks=tuple(blocks)))
        else:
            result += split_user(blocks)
    return result


def _system(system: object) -> Message:
    if isinstance(system, str):
        with building("system"):
            return Message.system(system)
    blocks = []
    for number, raw in enumerate(as_array(system, "system")):
        where = f"system[{number}]"
        block = as_object(raw, where)
        part_type(block, where, ("text",), "a system block")
        blocks.append(_text(block, where))
    return Message(role="system", blocks=tuple(blocks))


_BLOCK_TYPES = {"user": ("text", "image", "tool_result"), "assistant": ("text", "thinking", "tool_use")}


def _read_block(raw: object, where: str, role: str) -> Block:
    block = as_object(raw, where)
    if block.get("type") == "redacted_thinking":
        raise InvalidArgument(
            f"{where}: a redacted_thinking block has no place in the engine (a Reasoning block keeps readable "
            "text and a signature, not encrypted thinking); remove the block first if you accept losing it"
        )
    kind = part_type(block, where, _BLOCK_TYPES[role], f"a block of an Anthropic {role} message")
    if kind == "text":
        return _text(block, where)
    if kind == "image":
        return _read_image(block, where)
    if kind == "thinking":
        only_fields(block, where, ("type", "thinking", "signature"))
        signature = text_field(block, "signature", where)
        if not signature:
            raise InvalidArgument(
                f"{where}.signature is empty: a thinking block is sent back with the signature its model gave it "
                "(a stream cut before the signature came leaves it empty); remove the block first if you accept "
                "losing it"
            )
        with building(where):
            return Reasoning(text=text_field(block, "thinking", where), signature=signature)
    if kind == "tool_use":
        only_fields(block, where, ("type", "id", "name", "input"), ignored=("cache_control",))
        arguments = arguments_text(as_object(block.get("input"), f"{where}.input"), f"{where}.input")
        with building(where):
            return ToolUse(
                id=text_field(block, "id", where), name=text_field(block, "name", where), arguments=arguments
            )
    return _read_result(block, where)


def _text(block: dict[str, Any], where: str) -> Text:
    only_fields(block, where, ("type", "text"), ignored=("cache_control",))
    with building(where):
        return Text(text=text_field(block, "text", where))


def _read_image(block: dict[str, Any], where: str) -> Image:
    only_fields(block, where, ("type", "source"), ignored=("cache_control",))
    source_where = f"{where}.source"
    source = as_object(block.get("source"), source_where)
    if part_type(source, source_where, ("base64", "url"), "an image source") == "url":
        only_fields(source, source_where, ("type", "url"))
        with building(source_where):
            return Image(media_type=URL_MEDIA_TYPE, ref=text_field(source, "url", source_where))
    only_fields(source, source_where, ("type", "media_type", "data"))
    data = decode_base64(text_field(source, "data", source_where), f"{source_where}.data")
    with building(source_where):
        media_type = image_media_type(text_field(source, "media_type", source_where), f"{source_where}.media_type")
        return Image(media_type=media_type, data=data)


def _read_result(block: dict[str, Any], where: str) -> ToolResult:
    only_fields(block, where, ("type", "tool_use_id", "content", "is_error"), ignored=("cache_control",))
    raw_content = block.get("content")
    content: list[Text | Image] = []
    if isinstance(raw_content, str):
        with building(f"{where}.content"):
            content.append(Text(text=raw_content))
    elif raw_content is not None:
        for number, raw in enumerate(as_array(raw_content, f"{where}.content")):
            part_where = f"{where}.content[{number}]"
            part = as_object(raw, part_where)
            kind = part_type(part, part_where, ("text", "image"), "a block of a tool result")
            content.append(_text(part, part_where) if kind == "text" else _read_image(part, part_where))
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        if is_error is not None:
            raise InvalidArgument(f"{where}.is_error must be a boolean, got {described(is_error)}")
        is_error = False
    with building(where):
        return ToolResult(
            tool_use_id=text_field(block, "tool_use_id", where), content=tuple(content), is_error=is_error
        )
