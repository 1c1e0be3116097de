"""OpenAI Responses API input and output items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from engine.state.content import Block, Image, Message, Reasoning, Role, Text, ToolResult, ToolUse

FORMAT = "the OpenAI Responses API"

# Item kinds, for the grouping rule: an assistant message item is "text"; a
# user, system or developer message item is "other"; a function_call_output
# is "output".
_ASSISTANT_KINDS = ("reasoning", "text", "function_call")


def continues(previous: str | None, kind: str, calls: bool = False) -> bool:
    """The grouping rule: whether an item of ``kind`` belongs to the message
    of the item before it (``calls``: that message holds a function call).
    Consecutive function_call_output items are one tool_results message; a
    run of assistant items is split where a message or reasoning item follows
    a message or function_call item, unless the message holds a call: its
    calls wait for their outputs, so the rest of the run is the same turn."""
    if kind == "output":
        return previous == "output"
    if kind not in _ASSISTANT_KINDS or previous not in _ASSISTANT_KINDS:
        return False
    return kind == "function_call" or previous == "reasoning" or calls


def to_openai_responses(messages: Iterable[Message], *, lossy: bool = False) -> list[Json]:
    """Responses API items, usable as ``input``. An assistant message becomes
    its items in block order: reasoning items, one message item for its
    text, function_call items. A ``tool_results`` message becomes one
    function_call_output item per result. An incomplete message's items have
    ``"status": "incomplete"``. Item ids are not written."""
    policy = Policy("to_openai_responses", FORMAT, lossy)
    # A request continuing a stored response (previous_response_id) sends
    # function_call_output items whose calls are only in that response.
    originals, entries = prepare(messages, policy, keeps_incomplete=True, results_need_calls=False)
    items: list[Json] = []
    last_kind: str | None = None
    last_calls = False  # the message written last holds a function call
    last_index = 0
    for entry in entries:
        made = _items(entry, policy)
        if made and continues(last_kind, made[0][0], last_calls):
            rule = (
                "consecutive function_call_output items are one message"
                if entry.role == "tool_results"
                else "a new assistant message starts only at a message or reasoning item that follows a message "
                "or function_call item"
            )
            policy.cannot_hold(
                entry.where(),
                f"its first item (a {made[0][1]['type']} item) would read back as part of messages[{last_index}], "
                f"since {rule}",
                "send it anyway (it reads back joined to the message before it)",
            )
        for kind, item in made:
            if entry.incomplete:
                item["status"] = "incomplete"
            items.append(item)
            last_kind, last_index = kind, entry.index
        if made:
            last_calls = any(kind == "function_call" for kind, _ in made)
    if not lossy:
        check_round_trip(originals, lambda: from_openai_responses(items), policy, "from_openai_responses")
    return items


def _items(entry: Entry, policy: Policy) -> list[tuple[str, Json]]:
    if entry.role == "assistant":
        return _assistant_items(entry, policy)
    if entry.role == "tool_results":
        return [("output", _output(entry, number, result, policy)) for number, result in _results(entry)]
    parts = [_input_part(block, entry.where(number), policy) for number, block in enumerate(entry.blocks)]
    return [("other", {"type": "message", "role": entry.role, "content": parts})]


def _results(entry: Entry) -> list[tuple[int, ToolResult]]:
    return [(number, block) for number, block in enumerate(entry.blocks) if isinstance(block, ToolResult)]


def _input_part(block: Block, where: str, policy: Policy) -> Json:
    if isinstance(block, Image):
        return {"type": "input_image", "image_url": image_url(block, where, policy), "detail": "auto"}
    assert isinstance(block, Text)  # what a system or user message holds once prepared
    return {"type": "input_text", "text": block.text}


_STEPS = {Reasoning: (0, "reasoning block"), Text: (1, "text block"), ToolUse: (2, "tool use")}


def _assistant_items(entry: Entry, policy: Policy) -> list[tuple[str, Json]]:
    made: list[tuple[str, Json]] = []
    step, step_name = 0, ""
    calls = False  # a tool use was written: what follows reads back into this message
    for number, block in enumerate(entry.blocks):
        where = entry.where(number)
        if isinstance(block, Image):
            policy.cannot_hold(where, f"{FORMAT} has no place for an image in an assistant message", "leave it out")
            continue
        block_step, name = _STEPS[type(block)]
        if block_step < step and not calls:
            policy.cannot_hold(
                where,
                f"a {name} after a {step_name}: an assistant message reads back from {FORMAT} items as its "
                "reasoning, then its text, then its tool uses",
                "send the items in block order (they read back as several messages)",
            )
        else:
            step, step_name = block_step, name
        last_kind, last = made[-1] if made else (None, {})
        if isinstance(block, Reasoning):
            # One reasoning item holds a run of summaries; its id and its
            # encrypted content (kept on its last block) close it.
            if last_kind != "reasoning" or "encrypted_content" in last or "id" in last:
                last = {"type": "reasoning", "summary": []}
                made.append(("reasoning", last))
            if block.item_id is not None:
                last["id"] = block.item_id
            last["summary"].append({"type": "summary_text", "text": block.text})
            if block.signature is not None:
                last["encrypted_content"] = block.signature
        elif isinstance(block, Text):
            if last_kind != "text":
                last = {"type": "message", "role": "assistant", "content": []}
                made.append(("text", last))
            last["content"].append({"type": "output_text", "text": block.text, "annotations": []})
        elif isinstance(block, ToolUse):
            call = {"type": "function_call", "call_id": block.id, "name": block.name, "arguments": block.arguments}
            made.append(("function_call", call))
            calls = True
    for kind, item in made:
        if kind == "reasoning" and item["summary"] == [{"type": "summary_text", "text": ""}]:
            item["summary"] = []  # how the API shows reasoning without a summary
    if left_out_emptied(entry, made):
        return []
    return made or [("text", {"type": "message", "role": "assistant", "content": []})]


def _output(entry: Entry, number: int, result: ToolResult, policy: Policy) -> Json:
    where = entry.where(number)
    if result.is_error:
        policy.cannot_hold(
            where,
            f"a function_call_output item of {FORMAT} has no error flag for this error result",
            "send it as a result",
        )
    output: str | list[Json]
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        output = result.content[0].text
    else:
        output = [_input_part(part, f"{where}.content[{i}]", policy) for i, part in enumerate(result.content)]
    return {"type": "function_call_output", "call_id": result.tool_use_id, "output": output}


# -- reading ---------------------------------------------------------------------------


@dataclass
class _Reading:
    """The message being read from a run of items."""

    role: Role
    last_kind: str
    blocks: list[Block] = field(default_factory=list)
    incomplete: bool = False
    provider_item_id: str | None = None
    calls: bool = False  # it holds a function call

    def message(self) -> Message:
        return Message(
            role=self.role,
            blocks=tuple(self.blocks),
            incomplete=self.incomplete,
            provider_item_id=self.provider_item_id,
        )


_ITEM_TYPES = ("message", "reasoning", "function_call", "function_call_output")
_ROLES: dict[str, Role] = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def from_openai_responses(items: Sequence[Json] | str) -> list[Message]:
    """Messages from Responses API items (input items, or a response's
    ``output``), or from a request's ``input`` given as a string, which the
    API reads as one user message. Items are grouped by :func:`continues`: consecutive
    function_call_output items are one tool_results message; assistant items
    start a new message at a message or reasoning item that follows a
    message or function_call item. A message item may be in the short form
    ``{"role": "user", "content": "hi"}``. The ``id`` of a message item
    becomes the message's ``provider_item_id``; other item ids are not kept.
    A status of ``incomplete`` or ``in_progress`` marks the message
    incomplete. Anything the engine cannot hold is refused with its path."""
    if isinstance(items, str):  # responses.create(input="Hello"): a user message
        items = [{"role": "user", "content": items}]
    result: list[Message] = []
    reading: _Reading | None = None
    for index, raw in enumerate(as_array(items, "items")):
        where = f"items[{index}]"
        item = as_object(raw, where)
        kind, role = _kind(item, where)
        if reading is None or not continues(reading.last_kind, kind, reading.calls):
            if reading is not None:
                result.append(reading.message())
            reading = _Reading(role=role, last_kind=kind)
        reading.last_kind = kind
        status = optional_text(item, "status", where)
        if status in ("incomplete", "in_progress"):
            reading.incomplete = True
        elif status not in (None, "completed"):
            raise InvalidArgument(
                f"{where}.status: {status!r} is not an item status; expected completed, incomplete or in_progress"
            )
        if kind in ("text", "other"):
            only_fields(item, where, ("type", "role", "content", "id", "status"))
            # The first message item's id: a later one's (or its absence) does not replace it.
            reading.provider_item_id = reading.provider_item_id or optional_text(item, "id", where)
            reading.blocks += _message_content(item, where, role)
        elif kind == "reasoning":
            reading.blocks += _reasoning(item, where)
        elif kind == "function_call":
            reading.calls = True
            only_fields(item, where, ("type", "call_id", "name", "arguments", "status"), ignored=("id",))
            call_id, name = text_field(item, "call_id", where), text_field(item, "name", where)
            if any(isinstance(block, ToolUse) and block.id == call_id for block in reading.blocks):
                raise InvalidArgument(
                    f"{where}.call_id: {call_id!r} is the id of an earlier call of the same turn; "
                    "the calls of one turn need ids of their own (their outputs name them)"
                )
            with building(where):
                reading.blocks.append(ToolUse(id=call_id, name=name, arguments=text_field(item, "arguments", where)))
        else:
            reading.blocks.append(_function_output(item, where))
    if reading is not None:
        result.append(reading.message())
    return result


def _kind(item: dict[str, Any], where: str) -> tuple[str, Role]:
    """The item's kind (see :func:`continues`) and the role of its message."""
    if item.get("type") is None and "role" not in item:
        raise InvalidArgument(f"{where} needs a type (or, for a message in its short form, a role)")
    item_type = "message" if item.get("type") is None else part_type(item, where, _ITEM_TYPES, "an item")
    if item_type == "reasoning":
        return "reasoning", "assistant"
    if item_type == "function_call":
        return "function_call", "assistant"
    if item_type == "function_call_output":
        return "output", "tool_results"
    role = _ROLES.get(text_field(item, "role", where))
    if role is None:
        raise InvalidArgument(
            f"{where}.role: {item['role']!r} is not a role this engine can hold; "
            "expected user, system, developer or assistant"
        )
    return ("text" if role == "assistant" else "other"), role


def _message_content(item: dict[str, Any], where: str, role: Role) -> list[Block]:
    content = item.get("content")
    if isinstance(content, str):
        with building(f"{where}.content"):
            return [Text(text=content)]
    if not isinstance(content, (list, tuple)):
        got = "nothing: it is required" if content is None else described(content)
        raise InvalidArgument(f"{where}.content must be a string or an array of parts, got {got}")
    kinds = ("input_text", "output_text", "input_image") if role == "user" else ("input_text", "output_text")
    return [_part(part, f"{where}.content[{number}]", kinds) for number, part in enumerate(content)]


def _part(raw: object, where: str, kinds: tuple[str, ...]) -> Text | Image:
    part = as_object(raw, where)
    if part_type(part, where, kinds) == "input_image":
        only_fields(part, where, ("type", "image_url", "detail"))
        detail = optional_text(part, "detail", where)
        if detail not in (None, "auto"):
            raise InvalidArgument(
                f"{where}.detail: {detail!r} would be lost (the engine keeps no detail setting); "
                "remove it or set 'auto'"
            )
        return image_from_url(text_field(part, "image_url", where), where)
    only_fields(part, where, ("type", "text"), ignored=("logprobs",))
    with building(where):
        return Text(text=text_field(part, "text", where))


def _reasoning(item: dict[str, Any], where: str) -> list[Block]:
    """One reasoning block per summary part (one with empty text if there is
    none); the encrypted content is the last block's signature."""
    only_fields(item, where, ("type", "id", "summary", "encrypted_content", "status"))
    signature = optional_text(item, "encrypted_content", where)
    item_id = optional_text(item, "id", where)
    texts = []
    for number, raw in enumerate(as_array(item.get("summary"), f"{where}.summary")):
        part_where = f"{where}.summary[{number}]"
        part = as_object(raw, part_where)
        only_fields(part, part_where, ("type", "text"))
        part_type(part, part_where, ("summary_text",))
        texts.append(text_field(part, "text", part_where))
    texts = texts or [""]
    with building(where):
        last = Reasoning(text=texts[-1], signature=signature, item_id=item_id)
        return [*(Reasoning(text=text) for text in texts[:-1]), last]


def _function_output(item: dict[str, Any], where: str) -> ToolResult:
    only_fields(item, where, ("type", "call_id", "output", "status"), ignored=("id",))
    output = item.get("output")
    content: tuple[Text | Image, ...]
    if isinstance(output, str):
        with building(f"{where}.output"):
            content = (Text(text=output),)
    elif isinstance(output, (list, tuple)):
        kinds = ("input_text", "output_text", "input_image")
        content = tuple(_part(part, f"{where}.output[{number}]", kinds) for number, part in enumerate(output))
    else:
        got = "nothing: it is required" if output is None else described(output)
        raise InvalidArgument(f"{where}.output must be a string or an array of parts, got {got}")
    with building(where):
        return ToolResult(tool_use_id=text_field(item, "call_id", where), content=content)
