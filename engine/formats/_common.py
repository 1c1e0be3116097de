"""What the four formats share: the strict or lossy policy, the losses every
format has (erased placeholders, the incomplete marker, spoken text), the
round-trip backstop of strict mode, and readers that check request JSON and
name the path of every problem."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import InvalidArgument, InvalidMessage
from engine.state.content import (
    Block,
    Image,
    Message,
    Role,
    Text,
    ToolResult,
    ToolUse,
    Transcript,
    a_role,
    is_image_media_type,
    same_content,
    shown,
)
from engine.state.json_values import check_json_value

Json = dict[str, Any]

#: The media type of an image read from a bare URL: the formats that give
#: images by URL do not say the image's type.
URL_MEDIA_TYPE = "image/*"


@dataclass(frozen=True)
class Policy:
    """Which converter is running and whether it may lose content."""

    function: str  # the public name, for error messages: "to_openai_chat"
    format: str  # "OpenAI Chat Completions"
    lossy: bool

    def __post_init__(self) -> None:
        if type(self.lossy) is not bool:  # "false" from a config file would be true
            raise InvalidArgument(f"{self.function}: lossy= is True or False, got {shown(self.lossy)}")

    def cannot_hold(self, where: str, problem: str, lossy_does: str) -> None:
        """Raise in strict mode; in lossy mode return, and the caller then does
        what ``lossy_does`` says."""
        if not self.lossy:
            raise InvalidArgument(f"{self.function}: {where}: {problem}; pass lossy=True to {lossy_does}")


@dataclass(frozen=True)
class Entry:
    """A message as an encoder sees it, with the losses common to every
    format already refused or applied. ``blocks`` keep their indices."""

    index: int
    role: Role
    blocks: tuple[Block, ...]
    incomplete: bool

    def where(self, block: int | None = None) -> str:
        return f"messages[{self.index}]" if block is None else f"messages[{self.index}].blocks[{block}]"


def prepare(
    messages: Iterable[Message], policy: Policy, *, keeps_incomplete: bool = False, results_need_calls: bool = True
) -> tuple[list[Message], list[Entry]]:
    """The caller's messages as a list, and their entries: an erased
    placeholder, the incomplete marker (unless the format ``keeps_incomplete``)
    and Transcript blocks are refused, or in lossy mode become no content, no
    marker and Text blocks. A message with no content, tool uses never
    answered and, if the format ``results_need_calls``, tool results whose
    tool use is not right before them are refused (lossy: left out)."""
    if isinstance(messages, (str, bytes, Message, Mapping)) or not isinstance(messages, Iterable):
        raise InvalidArgument(f"{policy.function} takes a list of messages, got a {type(messages).__name__}")
    originals = list(messages)
    entries: list[Entry] = []
    for index, message in enumerate(originals):
        where = f"messages[{index}]"
        if not isinstance(message, Message):
            raise InvalidArgument(f"{policy.function}: {where} is {described(message)}, not a Message")
        maker = _call_maker(originals, index)  # the message whose calls a tool_results message answers
        if (
            message.role == "tool_results"
            and message.erased is None
            and isinstance(maker, Message)
            and maker.erased is not None
        ):
            # The tool uses these results answer were erased with their message.
            policy.cannot_hold(
                where,
                f"its results answer tool uses of an erased message, which {policy.format} cannot send",
                "leave it out",
            )
            continue
        if message.erased is not None:
            # Left out, not sent empty: providers refuse a message with no content.
            policy.cannot_hold(
                where,
                f"an erased placeholder has no content left for {policy.format} to hold",
                "leave it out" if message.role != "tool_results" else "answer each call with an empty result",
            )
            answers = _empty_answers(maker, _answered_after(originals, index)) if message.role == "tool_results" else ()
            if answers:
                entries.append(Entry(index, message.role, answers, False))
            continue
        incomplete = message.incomplete
        if incomplete and not keeps_incomplete:
            policy.cannot_hold(
                where,
                f"{policy.format} has no place for the incomplete marker (the generation stopped early)",
                "send the message without it",
            )
            incomplete = False
        blocks: list[Block] = []
        for number, block in enumerate(message.blocks):
            if isinstance(block, Transcript):
                policy.cannot_hold(
                    f"{where}.blocks[{number}]",
                    f"{policy.format} has no place for spoken text (a Transcript block)",
                    "send it as written text",
                )
                block = Text(text=block.text)
            blocks.append(block)
        if not blocks:  # realtime speech never transcribed, say
            policy.cannot_hold(where, f"a message with no content, which {policy.format} refuses", "leave it out")
            continue
        entries.append(Entry(index, message.role, tuple(blocks), incomplete))
    entries = _without_repeated_calls(_without_unanswered_calls(originals, entries, policy), policy)
    return originals, _without_unmatched_results(entries, policy) if results_need_calls else entries


def _without_repeated_calls(entries: list[Entry], policy: Policy) -> list[Entry]:
    """Refuse (lossy: leave out) each tool use whose id an earlier tool use
    of these messages has: every model API needs each call's id once (two
    histories joined, say, whose calls were named alike)."""
    kept: list[Entry] = []
    first: dict[str, int] = {}  # call id -> the message of the first tool use with it
    for entry in entries:
        problems: dict[int, str] = {}
        for number, block in enumerate(entry.blocks):
            if not isinstance(block, ToolUse):
                continue
            earlier = first.setdefault(block.id, entry.index)
            if earlier != entry.index or any(
                isinstance(other, ToolUse) and other.id == block.id for other in entry.blocks[:number]
            ):
                problems[number] = (
                    f"tool use {block.id!r} has the id of an earlier tool use (messages[{earlier}]), and "
                    f"{policy.format} needs each call's id once (give the calls ids of their own)"
                )
        pruned = _without_blocks(entry, problems, "leave the call out", policy) if problems else entry
        if pruned is not None:
            kept.append(pruned)
    return kept


def _without_unanswered_calls(originals: Sequence[Message], entries: list[Entry], policy: Policy) -> list[Entry]:
    """Refuse (lossy: leave out) each tool use that a later message shows
    was never answered: the message after it is not its results (a realtime
    call the user talked over, say). Every provider refuses such a request.
    A tool use in the last message is a call still under way, and kept."""
    kept: list[Entry] = []
    for entry in entries:
        if entry.role != "assistant" or entry.index + 1 >= len(originals):
            kept.append(entry)
            continue
        after = originals[entry.index + 1]
        answered: set[str] = set()
        following = entry.index + 1  # a run of tool_results messages answers the calls before it
        while following < len(originals) and originals[following].role == "tool_results":
            results = originals[following]
            if results.erased is not None:
                answered.update(use.id for use in originals[entry.index].tool_uses)  # answered with empty results
            else:
                answered.update(block.tool_use_id for block in results.blocks if isinstance(block, ToolResult))
            following += 1
        unanswered = (
            f"is never answered: the message after it is {a_role(after.role)} message without its result, and "
            f"{policy.format} refuses a call without its result (answer it with a tool_results message, "
            "is_error=True if it was abandoned)"
        )
        problems = {
            number: f"tool use {block.id!r} {unanswered}"
            for number, block in enumerate(entry.blocks)
            if isinstance(block, ToolUse) and block.id not in answered
        }
        pruned = _without_blocks(entry, problems, "leave the call out", policy)
        if pruned is not None:
            kept.append(pruned)
    return kept


def _without_unmatched_results(entries: list[Entry], policy: Policy) -> list[Entry]:
    """Refuse (lossy: leave out) each tool result that answers no tool use of
    the assistant message its run of tool_results messages follows: a
    window of a transcript that starts at results, say. A provider that
    takes the whole conversation refuses a result without its call."""
    kept: list[Entry] = []
    calls: set[str] = set()  # the tool uses the next tool_results message may answer
    for entry in entries:
        if entry.role != "tool_results":
            calls = {block.id for block in entry.blocks if isinstance(block, ToolUse)}
            kept.append(entry)
            continue
        problems = {
            number: f"tool result {block.tool_use_id!r} answers no tool use of the assistant message before it "
            f"(its call is not among these messages), and {policy.format} refuses a result without its call"
            for number, block in enumerate(entry.blocks)
            if isinstance(block, ToolResult) and block.tool_use_id not in calls
        }
        pruned = _without_blocks(entry, problems, "leave the result out", policy)
        if pruned is not None:
            kept.append(pruned)
    return kept


def _without_blocks(entry: Entry, problems: dict[int, str], lossy_does: str, policy: Policy) -> Entry | None:
    """``entry`` without its blocks that ``problems`` names (by index, in
    order: strict mode refuses the first); ``None`` if none of its blocks is
    left."""
    for number, problem in problems.items():
        policy.cannot_hold(entry.where(number), problem, lossy_does)
    blocks = [block for number, block in enumerate(entry.blocks) if number not in problems]
    return None if left_out_emptied(entry, blocks) else replace(entry, blocks=tuple(blocks))


def left_out_emptied(entry: Entry, made: Sequence[object]) -> bool:
    """Whether ``entry`` is to be left out because lossy mode left none of its
    blocks (``made``: what the format made of them): providers refuse a
    message with no content. Every entry has blocks: ``prepare`` leaves out
    (strict: refuses) a message with none."""
    assert entry.blocks
    return not made


def _call_maker(originals: Sequence[Message], index: int) -> object:
    """The message whose tool uses ``originals[index]`` answers if it is a
    tool_results message: the nearest one before it that is not one (a run
    of tool_results messages answers the same assistant message)."""
    for earlier in range(index - 1, -1, -1):
        found = originals[earlier]
        if not (isinstance(found, Message) and found.role == "tool_results"):
            return found
    return None


def _answered_after(originals: Sequence[Message], index: int) -> set[str]:
    """The tool uses answered by the tool_results messages (not erased) that
    follow ``originals[index]`` in its run."""
    answered: set[str] = set()
    for later in originals[index + 1 :]:
        if not (isinstance(later, Message) and later.role == "tool_results"):
            break
        if later.erased is None:
            answered |= {block.tool_use_id for block in later.blocks if isinstance(block, ToolResult)}
    return answered


def _empty_answers(maker: object, answered: set[str]) -> tuple[Block, ...]:
    """For an erased tool_results message (lossy): an empty result for each
    tool use of the message that made the calls, but those a later message
    of the run answers, so every call stays answered, once."""
    if not isinstance(maker, Message) or maker.erased is not None:
        return ()
    return tuple(ToolResult(tool_use_id=use.id) for use in maker.tool_uses if use.id not in answered)


def check_round_trip(
    originals: Sequence[Message], read_back: Callable[[], list[Message]], policy: Policy, reader: str
) -> None:
    """The strict-mode backstop: what was made must read back as the same
    messages (same digests, same count, same order)."""
    try:
        copies = read_back()
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"{policy.function}: {reader} cannot read back what these messages become ({exc}); "
            "pass lossy=True to convert them anyway"
        ) from None
    for index, (original, copy) in enumerate(zip(originals, copies, strict=False)):
        if not same_content(original, copy):
            raise InvalidArgument(
                f"{policy.function}: messages[{index}] would not come back the same from {reader}: "
                f"{_content(original)} reads back as {_content(copy)}; pass lossy=True to convert it anyway"
            )
    if len(copies) != len(originals):
        index = min(len(copies), len(originals))
        raise InvalidArgument(
            f"{policy.function}: messages[{index}]: {reader} reads back {len(copies)} messages, not "
            f"{len(originals)} ({policy.format} would join or split neighbouring messages); "
            "pass lossy=True to convert them anyway"
        )


def _content(message: Message) -> str:
    return shown(message.canonical_bytes().decode("utf-8"), 160)


# -- values shared by several formats ------------------------------------------------


def encode_base64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


def data_url(image: Image) -> str:
    return f"data:{image.media_type};base64,{encode_base64(image.data)}"


def image_url(image: Image, where: str, policy: Policy) -> str:
    """A data URL for inline bytes; a reference as it is, for formats whose
    image URLs carry no media type (so only ``image/*`` comes back)."""
    if image.ref is None:
        return data_url(image)
    if image.media_type != URL_MEDIA_TYPE:
        policy.cannot_hold(
            where,
            f"an image by reference is only a URL in {policy.format}: its media type {image.media_type!r} "
            f"would come back as {URL_MEDIA_TYPE!r}",
            "send the URL without it",
        )
    return image.ref


def image_media_type(media_type: str, where: str) -> str:
    """``media_type`` if it names an image; audio, a PDF or any other file
    would become an Image block and go out to the next provider as one."""
    if not is_image_media_type(media_type):
        raise InvalidArgument(
            f"{where}: media type {shown(media_type)} is not an image; the engine keeps images only "
            "(an Image block), so other media cannot be read"
        )
    return media_type


def image_from_url(url: str, where: str) -> Image:
    """A ``data:`` URL as inline bytes, any other URL as a reference."""
    if not url.startswith("data:"):
        with building(where):
            return Image(media_type=URL_MEDIA_TYPE, ref=url)
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidArgument(f"{where}: a data URL must be base64 (data:<media type>;base64,<data>), got {shown(url)}")
    media_type, *parameters = header.removesuffix(";base64").split(";")
    media_type = image_media_type(media_type, where)
    if parameters:  # an Image keeps a media type and bytes: a name= or other parameter would be lost
        raise InvalidArgument(
            f"{where}: the data URL's parameter {shown(';'.join(parameters))} has no place in an engine image "
            f"(it keeps the media type {shown(media_type)} and the bytes); remove it "
            f"(data:{media_type};base64,...) if you accept losing it"
        )
    with building(where):
        return Image(media_type=media_type, data=decode_base64(payload, where))


def decode_base64(text: str, where: str, *, url_safe_too: bool = False) -> bytes:
    try:
        if url_safe_too and ("-" in text or "_" in text):
            return base64.b64decode(text, altchars=b"-_", validate=True)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{where}: not valid base64: {shown(text, 40)}") from None


def arguments_text(value: object, where: str) -> str:
    """Parsed tool-call arguments as the JSON text a ToolUse keeps: the way
    ``json.dumps(value, ensure_ascii=False)`` writes it. Refused if that text
    would not read back as ``value`` (a key that is not a str, which could
    collide with one that is; a tuple; NaN)."""
    check_json_value(value, where)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{where}: the arguments cannot be written as JSON: {exc}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float, refused if it overflows (``1e400`` would be
    infinity, which no JSON text holds)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a float")
    return value


def parsed_json(text: str) -> object:
    """The JSON value ``text`` holds; ``ValueError`` for text that is not
    JSON, or holds a number beyond a float (or ``RecursionError``)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def arguments_object(use: ToolUse, where: str, policy: Policy) -> dict[str, Any]:
    """A tool use's arguments as the JSON object a format keeps in place of
    the text. Strict mode needs the text to be exactly what
    :func:`arguments_text` writes back; lossy mode sends ``{}`` for text that
    is not a JSON object."""
    try:
        value = parsed_json(use.arguments)
    except (ValueError, RecursionError):
        policy.cannot_hold(
            where,
            f"the arguments {shown(use.arguments, 40)} are not JSON that {policy.format} can keep as an object "
            "(not JSON, or a number beyond a float)",
            "send {} in their place",
        )
        return {}
    if not isinstance(value, dict):
        policy.cannot_hold(
            where,
            f"the arguments {shown(use.arguments, 40)} are not a JSON object, which {policy.format} keeps",
            "send {} in their place",
        )
        return {}
    written = json.dumps(value, ensure_ascii=False)
    try:
        written.encode("utf-8")
    except UnicodeEncodeError:  # an escaped lone surrogate: parsed, it is text no request can carry
        policy.cannot_hold(
            where,
            f"the arguments {shown(use.arguments, 40)} escape a lone surrogate, which parsed is no valid Unicode text",
            "send {} in their place",
        )
        return {}
    if not policy.lossy and written != use.arguments:
        policy.cannot_hold(
            where,
            f"{policy.format} keeps the arguments as a parsed object, which is written back as "
            f"{shown(written, 60)}, not as the text {shown(use.arguments, 60)}",
            "send the parsed object",
        )
    return value


def split_user(blocks: Sequence[Block]) -> list[Message]:
    """A user turn's blocks as messages, for the formats that keep tool
    results in user turns: each run of tool results is a tool_results
    message, each run of other blocks a user message."""
    if not blocks:
        return [Message(role="user")]
    runs: list[list[Block]] = []
    for block in blocks:
        if runs and isinstance(runs[-1][0], ToolResult) == isinstance(block, ToolResult):
            runs[-1].append(block)
        else:
            runs.append([block])
    return [
        Message(role="tool_results" if isinstance(run[0], ToolResult) else "user", blocks=tuple(run)) for run in runs
    ]


# -- reading request JSON ------------------------------------------------------------


def described(value: object) -> str:
    """A value's JSON kind and a glimpse of it, for an error message."""
    if value is None:
        return "null"
    kinds = {bool: "a boolean", str: "a string", int: "a number", float: "a number", dict: "an object"}
    kind = kinds.get(type(value)) or ("an array" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}")
    return f"{kind} ({shown(value, 40)})"


def as_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be an object, got {described(value)}")
    return value


def as_array(value: object, where: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"{where} must be an array, got {described(value)}")
    return list(value)


def text_field(source: dict[str, Any], key: str, where: str) -> str:
    """A required string field."""
    value = source.get(key)
    if not isinstance(value, str):
        got = described(value) if key in source else "nothing: it is required"
        raise InvalidArgument(f"{where}.{key} must be a string, got {got}")
    return value


def optional_text(source: dict[str, Any], key: str, where: str) -> str | None:
    value = source.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{where}.{key} must be a string, got {described(value)}")
    return value


def only_fields(source: dict[str, Any], where: str, known: Collection[str], ignored: Collection[str] = ()) -> None:
    """Refuse a field this engine would drop: anything not ``known`` (read) or
    ``ignored`` (documented as not content), unless null or empty."""
    for key, value in source.items():
        if key in known or key in ignored or value is None or (isinstance(value, (list, dict)) and not value):
            continue
        raise InvalidArgument(
            f"{where}.{key}: {described(value)} has no place in an engine message; "
            "remove the field first if you accept losing it"
        )


def part_type(part: dict[str, Any], where: str, expected: Collection[str], what: str = "a part") -> str:
    """The ``type`` of a part or item, which must be one of ``expected``."""
    kind = text_field(part, "type", where)
    if kind not in expected:
        raise InvalidArgument(
            f"{where}.type: {kind!r} is not {what} this engine can hold here; expected one of {sorted(expected)}"
        )
    return kind


@contextmanager
def building(where: str) -> Iterator[None]:
    """Name the path when a block built from request JSON is invalid."""
    try:
        yield
    except InvalidMessage as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
