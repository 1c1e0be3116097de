"""``engine.formats``: conversions to the four model-API formats and back.

For each format: (a) a transcript made only of what the format can hold
(as docs/formats.md describes it) comes back from ``from_X(to_X(...))``
with the same digests, in order; (b) for any transcript (any blocks, erased
placeholders, incomplete messages, unpaired results), strict ``to_X``
either comes back the same or raises ``InvalidArgument``; (c) ``lossy=True``
converts any valid transcript whose tool results answer earlier tool uses,
into plain JSON that ``from_X`` reads; (d) ``from_X`` on damaged request
JSON returns messages or raises ``InvalidArgument``, never anything else.

The strategies are written here, block type by block type, from the
documented mapping tables; expectations never come from the converters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Image, InvalidArgument, Message, Reasoning, Text, ToolResult, ToolUse, Transcript
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
from engine.state.content import Block

# -- blocks ------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
tool_ids = st.from_regex(r"call_[a-z0-9]{1,5}", fullmatch=True)
tool_names = st.sampled_from(["search", "weather", "get_time"])
signatures = st.none() | st.text(alphabet="abcdefABCDEF0123456789+/=", min_size=1, max_size=12)
urls = st.sampled_from(["https://example.com/a.png", "gs://bucket/b.jpg", "blob:0123abcd"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=3)
#: Arguments as a format that keeps a parsed object writes them back.
canonical_arguments = json_objects.map(lambda value: json.dumps(value, ensure_ascii=False))
any_arguments = (
    canonical_arguments
    | json_objects.map(lambda value: json.dumps(value, separators=(",", ":")))
    | json_values.map(json.dumps)
    | texts
)


def text_blocks(*, empty: bool = True, blank: bool = True) -> st.SearchStrategy[Text]:
    """``blank``: the text may be whitespace only (``empty``: or "")."""
    kept = texts if empty else texts.filter(bool)
    return st.builds(lambda text: Text(text=text), kept if blank else kept.filter(str.strip))


def reasoning_blocks(*, unsigned: bool = True) -> st.SearchStrategy[Reasoning]:
    signed = signatures if unsigned else signatures.filter(bool)
    return st.builds(lambda text, signature: Reasoning(text=text, signature=signature), texts, signed)


def transcript_blocks() -> st.SearchStrategy[Transcript]:
    return st.builds(lambda text, cut: Transcript(text=text, truncated_at_ms=cut), texts, st.none() | st.integers(0, 9))


def images(*, any_url_media_type: bool, unknown_media_type: bool = True) -> st.SearchStrategy[Image]:
    known = ["image/png", "image/jpeg"]
    media_types = st.sampled_from([*known, "image/*"] if unknown_media_type else known)
    url_media_types = media_types if any_url_media_type else st.just("image/*")
    return st.builds(
        lambda media_type, data: Image(media_type=media_type, data=data),
        media_types,
        st.binary(min_size=1, max_size=12),
    ) | st.builds(lambda media_type, ref: Image(media_type=media_type, ref=ref), url_media_types, urls)


def tool_uses(arguments: st.SearchStrategy[str] = any_arguments, ids: st.SearchStrategy[str] = tool_ids) -> Any:
    return st.builds(lambda i, name, args: ToolUse(id=i, name=name, arguments=args), ids, tool_names, arguments)


# -- what each format holds ------------------------------------------------------------------


@dataclass(frozen=True)
class Holds:
    """What a format can hold, as docs/formats.md's tables say."""

    reasoning: bool
    incomplete: bool
    error_results: bool
    result_images: bool
    assistant_images: bool
    any_url_media_type: bool
    unknown_media_type: bool  # an image whose media type is image/* (not known)
    any_arguments: bool  # else only arguments as json.dumps(object, ensure_ascii=False) writes them
    one_text_results: bool  # a tool result is exactly one text block
    empty_text: bool  # a text block may be empty (Anthropic refuses one)
    blank_text: bool  # a text block may be whitespace only (Anthropic refuses one)
    empty_error_results: bool  # an error result may have no content (Anthropic refuses one)
    unsigned_reasoning: bool  # a reasoning block may have no signature (Anthropic refuses one)
    assistant_order: tuple[type[Block], ...] | None  # blocks must come in this order of kinds, if given
    joins: Callable[[Message, Message], bool]  # whether two neighbours would read back as one


def _never(first: Message, second: Message) -> bool:
    return False


def _chat_joins(first: Message, second: Message) -> bool:
    """Chat: consecutive tool messages are one tool_results message."""
    return first.role == second.role == "tool_results"


def _responses_joins(first: Message, second: Message) -> bool:
    """Responses: consecutive function_call_output items are one message; a
    new assistant message starts only at a message or reasoning item that
    follows a message or function_call item."""
    if first.role == second.role == "tool_results":
        return True
    if first.role != "assistant" or second.role != "assistant":
        return False
    kinds = {Reasoning: "reasoning", Text: "message", ToolUse: "function_call"}
    last = kinds[type(first.blocks[-1])] if first.blocks else "message"
    opening = kinds[type(second.blocks[0])] if second.blocks else "message"
    return opening == "function_call" or last == "reasoning"


CHAT = Holds(
    reasoning=False,
    incomplete=False,
    error_results=False,
    result_images=False,
    assistant_images=False,
    any_url_media_type=False,
    unknown_media_type=True,
    any_arguments=True,
    one_text_results=False,
    empty_text=True,
    blank_text=True,
    empty_error_results=True,
    unsigned_reasoning=True,
    assistant_order=(Text, ToolUse),
    joins=_chat_joins,
)
RESPONSES = Holds(
    reasoning=True,
    incomplete=True,
    error_results=False,
    result_images=True,
    assistant_images=False,
    any_url_media_type=False,
    unknown_media_type=True,
    any_arguments=True,
    one_text_results=False,
    empty_text=True,
    blank_text=True,
    empty_error_results=True,
    unsigned_reasoning=True,
    assistant_order=(Reasoning, Text, ToolUse),
    joins=_responses_joins,
)
ANTHROPIC = Holds(
    reasoning=True,
    incomplete=False,
    error_results=True,
    result_images=True,
    assistant_images=False,
    any_url_media_type=False,
    unknown_media_type=True,
    any_arguments=False,
    one_text_results=False,
    empty_text=False,
    blank_text=False,
    empty_error_results=False,
    unsigned_reasoning=False,
    assistant_order=None,
    joins=_never,
)
GEMINI = Holds(
    reasoning=True,
    incomplete=False,
    error_results=True,
    result_images=False,
    assistant_images=True,
    any_url_media_type=True,
    unknown_media_type=False,
    any_arguments=False,
    one_text_results=True,
    empty_text=False,
    blank_text=True,
    empty_error_results=True,
    unsigned_reasoning=True,
    assistant_order=None,
    joins=_never,
)

Converter = Callable[..., Any]
FORMATS: dict[str, tuple[Converter, Converter, Holds]] = {
    "openai_chat": (to_openai_chat, from_openai_chat, CHAT),
    "openai_responses": (to_openai_responses, from_openai_responses, RESPONSES),
    "anthropic": (to_anthropic, from_anthropic, ANTHROPIC),
    "gemini": (to_gemini, from_gemini, GEMINI),
}


def _flag(draw: st.DrawFn, allowed: bool) -> bool:
    return allowed and draw(st.booleans())


@st.composite
def holdable(draw: st.DrawFn, holds: Holds) -> list[Message]:
    """A transcript of only what the format holds: a system message first
    (maybe), then user messages, assistant messages and tool exchanges,
    each with some content (every provider refuses a message with none)."""
    arguments = any_arguments if holds.any_arguments else canonical_arguments
    picture = images(any_url_media_type=holds.any_url_media_type, unknown_media_type=holds.unknown_media_type)
    text = text_blocks(empty=holds.empty_text, blank=holds.blank_text)
    content_kinds: list[st.SearchStrategy[Any]] = [text]
    if holds.reasoning:
        content_kinds.append(reasoning_blocks(unsigned=holds.unsigned_reasoning))
    if holds.assistant_images:
        content_kinds.append(picture)

    def assistant(uses: list[ToolUse]) -> Message:
        blocks: list[Block] = draw(st.lists(st.one_of(content_kinds), min_size=0 if uses else 1, max_size=3))
        if holds.assistant_order is None:
            blocks = draw(st.permutations(blocks + uses))
        else:
            order = holds.assistant_order
            blocks = sorted(blocks, key=lambda block: order.index(type(block))) + uses
        return Message(role="assistant", blocks=tuple(blocks), incomplete=_flag(draw, holds.incomplete))

    def result(use: ToolUse) -> ToolResult:
        if holds.one_text_results:
            content: list[Text | Image] = [draw(text_blocks())]
        else:
            parts = text | picture if holds.result_images else text
            content = draw(st.lists(parts, max_size=2))
        is_error = _flag(draw, holds.error_results)
        if not holds.empty_error_results and not any(isinstance(part, Image) or part.text for part in content):
            is_error = False
        return ToolResult(tool_use_id=use.id, content=tuple(content), is_error=is_error)

    messages: list[Message] = []
    taken: set[str] = set()
    if draw(st.booleans()):
        messages.append(Message(role="system", blocks=tuple(draw(st.lists(text, min_size=1, max_size=2)))))
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["user", "assistant", "exchange"]))
        if kind == "user":
            blocks = draw(st.lists(text | picture, min_size=1, max_size=3))
            messages.append(Message(role="user", blocks=tuple(blocks), incomplete=_flag(draw, holds.incomplete)))
        elif kind == "assistant":
            messages.append(assistant([]))
        else:
            fresh = tool_uses(arguments).filter(lambda use: use.id not in taken)  # a call's id is its own
            uses = draw(st.lists(fresh, min_size=1, max_size=3, unique_by=lambda use: use.id))
            taken.update(use.id for use in uses)
            messages.append(assistant(uses))
            results = [result(use) for use in draw(st.permutations(uses))]
            messages.append(Message.tool_results(*results))
    separated: list[Message] = []
    for message in messages:
        if separated and holds.joins(separated[-1], message):
            separated.append(Message.user("between"))
        separated.append(message)
    return separated


@st.composite
def anything(draw: st.DrawFn, *, paired: bool = False) -> list[Message]:
    """Any valid transcript: every block kind in any order, incomplete
    messages, erased placeholders, system messages anywhere. Each trouble
    is in some transcripts only, so that the others are reached too.
    ``paired``: every tool result answers a tool use before it, and no
    message whose tool uses are answered is erased."""
    spoken, incomplete, erased = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    picture = images(any_url_media_type=True)
    user_kinds = text_blocks() | picture | (transcript_blocks() if spoken else text_blocks())
    assistant_kinds = user_kinds | reasoning_blocks() | tool_uses()
    messages: list[Message] = []
    for _ in range(draw(st.integers(0, 6))):
        role = draw(st.sampled_from(["system", "user", "assistant", "tool_results"]))
        if role == "system":
            blocks: list[Any] = draw(st.lists(text_blocks(), max_size=2))
        elif role == "user":
            blocks = draw(st.lists(user_kinds, max_size=3))
        elif role == "assistant":
            blocks = draw(st.lists(assistant_kinds, max_size=4))
        else:
            used = [block.id for message in messages for block in message.tool_uses]
            if paired and not used:
                continue
            ids = st.sampled_from(used) if paired else (st.sampled_from(used) | tool_ids if used else tool_ids)
            content = st.lists(text_blocks() | picture, max_size=2).map(tuple)
            result = st.builds(
                lambda i, c, e: ToolResult(tool_use_id=i, content=c, is_error=e), ids, content, st.booleans()
            )
            blocks = draw(st.lists(result, min_size=1, max_size=3))
        cut_short = incomplete and draw(st.booleans())
        messages.append(Message(role=role, blocks=tuple(blocks), incomplete=cut_short))
    answered = {block.tool_use_id for message in messages for block in message.blocks if isinstance(block, ToolResult)}
    gone = draw(st.sets(st.integers(0, max(len(messages) - 1, 0)), max_size=2)) if erased else set()
    return [
        message.erasure()
        if index in gone and not (paired and any(use.id in answered for use in message.tool_uses))
        else message
        for index, message in enumerate(messages)
    ]


def _digests(messages: list[Message]) -> list[str]:
    return [message.digest for message in messages]


# -- the properties ----------------------------------------------------------------------------

parametrized = pytest.mark.parametrize("name", sorted(FORMATS))


@parametrized
@given(data=st.data())
def test_what_a_format_holds_comes_back_the_same(name: str, data: st.DataObject) -> None:
    to_format, from_format, holds = FORMATS[name]
    messages = data.draw(holdable(holds))
    assert _digests(from_format(to_format(messages))) == _digests(messages)


@parametrized
@given(data=st.data())
def test_strict_conversion_comes_back_the_same_or_refuses(name: str, data: st.DataObject) -> None:
    to_format, from_format, _ = FORMATS[name]
    messages = data.draw(anything())
    try:
        converted = to_format(messages)
    except InvalidArgument as exc:
        assert "messages[" in str(exc)  # the refusal names where
        return
    assert _digests(from_format(converted)) == _digests(messages)


@parametrized
@given(data=st.data())
def test_lossy_conversion_converts_any_paired_transcript(name: str, data: st.DataObject) -> None:
    to_format, from_format, _ = FORMATS[name]
    messages = data.draw(anything(paired=True))
    converted = to_format(messages, lossy=True)
    assert json.loads(json.dumps(converted, allow_nan=False)) == converted  # plain JSON
    from_format(converted)  # and readable


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], tuple(rest), new)
    return copy


@parametrized
@given(data=st.data())
def test_reading_damaged_json_returns_messages_or_refuses(name: str, data: st.DataObject) -> None:
    to_format, from_format, _ = FORMATS[name]
    converted = to_format(data.draw(anything(paired=True)), lossy=True)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(converted)))
        converted = _replaced(converted, path, data.draw(json_values | st.sampled_from(["", "text", "model", []])))
    try:
        messages = from_format(converted)
    except InvalidArgument as exc:
        assert str(exc)
        return
    assert all(isinstance(message, Message) and message.id is None for message in messages)
