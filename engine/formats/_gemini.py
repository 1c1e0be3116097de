"""Gemini ``generateContent``: a request's ``systemInstruction`` and ``contents``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

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
    left_out_emptied,
    only_fields,
    optional_text,
    parsed_json,
    prepare,
    split_user,
    text_field,
)
from engine.state.content import Block, Image, Message, Reasoning, Role, Text, ToolResult, ToolUse

FORMAT = "Gemini"


def to_gemini(messages: Iterable[Message], *, lossy: bool = False) -> Json:
    """A Gemini ``generateContent`` request's ``{"systemInstruction":
    {"parts": [...]}, "contents": [...]}`` (``systemInstruction`` only when
    there is a system message). Roles are ``user`` and ``model``; tool results
    are ``functionResponse`` parts of a user turn, named after the tool use
    they answer; reasoning is a ``thought`` part."""
    policy = Policy("to_gemini", FORMAT, lossy)
    originals, entries = prepare(messages, policy)
    system: list[Json] | None = None
    contents: list[Json] = []
    names: dict[str, str] = {}  # tool use id -> function name, from the tool uses so far
    for entry in entries:
        if entry.role == "system":
            if contents:
                policy.cannot_hold(
                    entry.where(),
                    f"a system message after the conversation has started: {FORMAT} keeps the system "
                    "instruction apart, before every turn",
                    "move its text into the system instruction",
                )
            elif system is not None:
                policy.cannot_hold(
                    entry.where(),
                    f"a second system message: the one system instruction of {FORMAT} would read back as one message",
                    "join its text to the system instruction",
                )
            made = [_text(entry, number, block, policy) for number, block in enumerate(entry.blocks)]
            system = (system or []) + [part for part in made if part is not None]
        elif entry.role == "assistant":
            parts = _model_parts(entry, names, policy)
            if not left_out_emptied(entry, parts):
                contents.append({"role": "model", "parts": parts})
        elif entry.role == "tool_results":
            made = [_response(entry, number, block, names, policy) for number, block in enumerate(entry.blocks)]
            parts = [part for part in made if part is not None]
            if not left_out_emptied(entry, parts):
                contents.append({"role": "user", "parts": parts})
        else:
            made = [_user_part(entry, number, block, policy) for number, block in enumerate(entry.blocks)]
            parts = [part for part in made if part is not None]
            if not left_out_emptied(entry, parts):
                contents.append({"role": "user", "parts": parts})
    request: Json = {}
    if system:  # none, or (lossy) only empty texts left out
        request["systemInstruction"] = {"parts": system}
    request["contents"] = contents
    if not lossy:
        check_round_trip(originals, lambda: from_gemini(request), policy, "from_gemini")
    return request


def _user_part(entry: Entry, number: int, block: Block, policy: Policy) -> Json | None:
    if isinstance(block, Image):
        return _image(block, entry.where(number), policy)
    assert isinstance(block, Text)  # what a user message holds once prepared
    return _text(entry, number, block, policy)


def _text(entry: Entry, number: int, block: Block, policy: Policy) -> Json | None:
    """A text part; ``None`` (lossy) for an empty one, which Gemini refuses
    ("an empty text parameter")."""
    if not isinstance(block, Text):
        return None
    if not block.text:
        policy.cannot_hold(entry.where(number), f"{FORMAT} refuses an empty text part", "leave it out")
        return None
    return {"text": block.text}


def _image(image: Image, where: str, policy: Policy) -> Json | None:
    """The image's part; ``None`` (lossy) for one whose media type is not
    known: Gemini refuses a part without a MIME type it supports, and
    ``image/*`` (how an image by a bare URL reads) is none."""
    if image.media_type == URL_MEDIA_TYPE:
        policy.cannot_hold(
            where,
            f"an image whose media type is not known ({URL_MEDIA_TYPE}, as an image by a bare URL reads): {FORMAT} "
            "needs its MIME type (image/png, image/jpeg, image/webp, image/heic or image/heif); build the Image "
            "with it",
            "leave the image out",
        )
        return None
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type, "data": encode_base64(image.data)}}
    return {"fileData": {"mimeType": image.media_type, "fileUri": image.ref}}


def _model_parts(entry: Entry, names: dict[str, str], policy: Policy) -> list[Json]:
    parts: list[Json] = []
    carried: str | None = None  # a signature that belongs on the next part
    for number, block in enumerate(entry.blocks):
        if isinstance(block, Reasoning):
            if block.item_id is not None:
                policy.cannot_hold(
                    entry.where(number), f"{FORMAT} has no place for a reasoning item's id", "leave it out"
                )
            following = entry.blocks[number + 1] if number + 1 < len(entry.blocks) else None
            if (
                not block.text
                and block.signature is not None
                and following is not None
                and not isinstance(following, Reasoning)
            ):
                # Gemini puts a thought signature on the part that follows the thinking
                # (a function call, text or image): a signature alone is kept that way.
                carried = block.signature
                continue
            if not block.text and not block.signature:  # nothing Gemini would take: an empty text part
                policy.cannot_hold(
                    entry.where(number), f"{FORMAT} refuses an empty text part (a thought of no text)", "leave it out"
                )
                continue
            part: Json = {"text": block.text, "thought": True}
            if block.signature is not None:
                part["thoughtSignature"] = block.signature
        elif isinstance(block, Text):
            # An empty text part that carries a thought signature is how
            # Gemini ends a turn sometimes: it takes it back as it gave it.
            text = {"text": ""} if not block.text and carried is not None else _text(entry, number, block, policy)
            if text is None:
                continue
            part = text
        elif isinstance(block, Image):
            made = _image(block, entry.where(number), policy)
            if made is None:
                continue
            part = made
        elif isinstance(block, ToolUse):
            names[block.id] = block.name
            args = arguments_object(block, entry.where(number), policy)
            part = {"functionCall": {"id": block.id, "name": block.name, "args": args}}
        else:
            continue
        if carried is not None:
            part["thoughtSignature"], carried = carried, None
        parts.append(part)
    return parts


def _response_object(result: ToolResult) -> Json | None:
    """The object a result goes to Gemini as: its text, if that is a JSON
    object written as ``json.dumps`` writes it (how ``from_gemini`` reads a
    response of any other shape than ``{"output": text}`` or
    ``{"error": text}``, which it could not tell from one); else ``None``,
    and it goes as ``{"output": text}``."""
    if result.is_error or len(result.content) != 1 or not isinstance(result.content[0], Text):
        return None
    text = result.content[0].text
    if not text.startswith("{"):
        return None
    try:
        value = parsed_json(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or _plain_response(value) is not None:
        return None
    try:
        return value if arguments_text(value, "") == text else None
    except InvalidArgument:
        return None


def _plain_response(response: Json) -> tuple[str, str] | None:
    """The key and text of a response of the form ``{"output": text}`` or
    ``{"error": text}``; ``None`` for any other."""
    if len(response) != 1:
        return None
    [(key, value)] = response.items()
    return (key, value) if key in ("output", "error") and isinstance(value, str) else None


def _response(entry: Entry, number: int, result: Block, names: dict[str, str], policy: Policy) -> Json | None:
    if not isinstance(result, ToolResult):
        return None
    where = entry.where(number)
    name = names[result.tool_use_id]  # prepare() has left out results whose call is not right before them
    value = _response_object(result)
    if value is not None:
        return {"functionResponse": {"id": result.tool_use_id, "name": name, "response": value}}
    texts: list[str] = []
    for part_number, part in enumerate(result.content):
        if isinstance(part, Image):
            policy.cannot_hold(
                f"{where}.content[{part_number}]", "a functionResponse holds text, not images", "leave it out"
            )
        else:
            texts.append(part.text)
    if len(texts) != 1:
        policy.cannot_hold(
            where,
            f"a result of {len(texts)} text blocks: a functionResponse holds exactly one text",
            "send the texts joined by newlines",
        )
    response = {"error" if result.is_error else "output": "\n".join(texts)}
    return {"functionResponse": {"id": result.tool_use_id, "name": name, "response": response}}


# -- reading ---------------------------------------------------------------------------


def from_gemini(request: Json | Sequence[Json]) -> list[Message]:
    """Messages from a Gemini request (its ``systemInstruction`` and
    ``contents``; other request fields such as ``tools`` or
    ``generationConfig`` are not part of a transcript and are not read) or
    from a bare ``contents`` list. A content without a role is a user turn.
    A user turn is split where its parts change between function responses
    and other content. A ``thoughtSignature`` on a part that is not a thought
    becomes a reasoning block with empty text just before it. Anything the
    engine cannot hold is refused with its path."""
    result: list[Message] = []
    if isinstance(request, dict):
        if "system_instruction" in request:
            raise InvalidArgument(
                "request.system_instruction: write it systemInstruction (the REST API's camelCase names are "
                "the ones this engine reads)"
            )
        if "contents" not in request:
            raise InvalidArgument("request.contents is required: the conversation's turns")
        if request.get("systemInstruction") is not None:
            result.append(_read_system(request["systemInstruction"]))
        turns = request["contents"]
    else:
        turns = request
    calls = _Calls()
    for index, raw in enumerate(as_array(turns, "contents")):
        where = f"contents[{index}]"
        content = as_object(raw, where)
        only_fields(content, where, ("role", "parts"))
        role = optional_text(content, "role", where)
        if role not in (None, "user", "model"):
            raise InvalidArgument(f"{where}.role: {role!r} is not a role of {FORMAT}; expected user or model")
        role_here: Role = "assistant" if role == "model" else "user"
        parts = as_array(content.get("parts"), f"{where}.parts")
        if role_here == "assistant":
            calls.new_turn()
        blocks: list[Block] = []
        for number, part in enumerate(parts):
            blocks += _read_part(part, f"{where}.parts[{number}]", role_here, calls)
        if role_here == "assistant":
            result.append(Message(role="assistant", blocks=tuple(blocks)))
        else:
            result += split_user(blocks)
    return result


def _read_system(raw: object) -> Message:
    instruction = as_object(raw, "systemInstruction")
    only_fields(instruction, "systemInstruction", ("parts",), ignored=("role",))
    blocks = []
    for number, raw_part in enumerate(as_array(instruction.get("parts"), "systemInstruction.parts")):
        where = f"systemInstruction.parts[{number}]"
        part = as_object(raw_part, where)
        only_fields(part, where, ("text",))
        with building(where):
            blocks.append(Text(text=text_field(part, "text", where)))
    return Message(role="system", blocks=tuple(blocks))


_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


def _read_part(raw: object, where: str, role: Role, calls: _Calls) -> list[Block]:
    part = as_object(raw, where)
    _camel_case(part, where)
    only_fields(part, where, (*_DATA_FIELDS, "thought", "thoughtSignature"))
    present = [key for key in _DATA_FIELDS if part.get(key) is not None]
    if len(present) != 1:
        raise InvalidArgument(
            f"{where} must hold exactly one of {', '.join(_DATA_FIELDS)}; it holds {', '.join(present) or 'none'}"
        )
    field = present[0]
    thought = part.get("thought")
    if thought is not None and not isinstance(thought, bool):
        raise InvalidArgument(f"{where}.thought must be a boolean, got {described(thought)}")
    signature = optional_text(part, "thoughtSignature", where)
    if role == "user" and (thought or signature is not None):
        raise InvalidArgument(
            f"{where}: a thought or thoughtSignature in a user turn; the engine keeps reasoning only in model turns"
        )
    if field in ("functionCall", "functionResponse") and (field == "functionCall") != (role == "assistant"):
        raise InvalidArgument(
            f"{where}.{field}: a {field} belongs in a {'model' if field == 'functionCall' else 'user'} turn"
        )
    with building(where):
        if thought:
            if field != "text":
                raise InvalidArgument(f"{where}.thought: only a text part can be a thought")
            return [Reasoning(text=text_field(part, "text", where), signature=signature)]
        blocks: list[Block] = [] if signature is None else [Reasoning(text="", signature=signature)]
        if field == "text":
            blocks.append(Text(text=text_field(part, "text", where)))
        elif field in ("inlineData", "fileData"):
            blocks.append(_read_image(part[field], f"{where}.{field}", field))
        elif field == "functionCall":
            blocks.append(_read_call(part[field], f"{where}.functionCall", calls))
        else:
            blocks.append(_read_response(part[field], f"{where}.functionResponse", calls))
    return blocks


#: The google-genai SDK's snake_case names of the REST API's fields.
_SNAKE_CASE = {
    "function_call": "functionCall",
    "function_response": "functionResponse",
    "inline_data": "inlineData",
    "file_data": "fileData",
    "thought_signature": "thoughtSignature",
    "mime_type": "mimeType",
    "file_uri": "fileUri",
}


def _camel_case(fields: dict[str, object], where: str) -> None:
    """Refuse a field under the SDK's snake_case name, saying its REST name
    (not "no place for it", which would advise dropping a function call)."""
    for key in fields:
        camel = _SNAKE_CASE.get(key)
        if camel is not None:
            raise InvalidArgument(
                f"{where}.{key}: write it {camel} (the REST API's camelCase names are the ones this engine reads; "
                "the google-genai SDK gives them with model_dump(mode='json', by_alias=True))"
            )


def _read_image(raw: object, where: str, field: str) -> Image:
    data = as_object(raw, where)
    location = "data" if field == "inlineData" else "fileUri"
    _camel_case(data, where)
    only_fields(data, where, ("mimeType", location))
    media_type = image_media_type(text_field(data, "mimeType", where), f"{where}.mimeType")
    if field == "fileData":
        return Image(media_type=media_type, ref=text_field(data, "fileUri", where))
    return Image(media_type=media_type, data=decode_base64(text_field(data, "data", where), where, url_safe_too=True))


class _Calls:
    """The functionCalls read so far: each id's name, and the calls of the
    latest model turn not answered yet, in order (Gemini's generateContent
    gives calls no id, and its responses answer them by name, in order)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.waiting: list[tuple[str, str]] = []  # (id, name)
        self.seen: dict[tuple[str, str], int] = {}  # (name, arguments) -> such calls read so far

    def new_turn(self) -> None:
        self.waiting = []

    def call(self, call_id: str | None, name: str, arguments: str) -> str:
        """The call's id (made if it has none: ``gemini_`` and 20 hex digits of
        a digest of its name, its arguments and how many calls before it in
        the history are the same, so that no two calls share one), now
        waiting for its answer."""
        same = self.seen.get((name, arguments), 0)
        self.seen[(name, arguments)] = same + 1
        if call_id is None:
            said = f"{name}\x00{arguments}\x00{same}".encode("utf-8", "surrogatepass")
            call_id = "gemini_" + hashlib.sha256(said).hexdigest()[:20]
        self.names[call_id] = name
        self.waiting.append((call_id, name))
        return call_id

    def answer(self, call_id: str | None, name: str, where: str) -> str:
        """The id of the call a response answers: its own, or (it has none)
        the first call of its name in the model turn before still waiting."""
        if call_id is None:
            found = next((waiting for waiting, named in self.waiting if named == name), None)
            if found is None:
                raise InvalidArgument(
                    f"{where}: a functionResponse without an id answers the first call of its name ({name!r}) in "
                    "the model turn before it that is not answered yet, and there is none; give it the id of its call"
                )
            call_id = found
        self.waiting = [(waiting, named) for waiting, named in self.waiting if waiting != call_id]
        return call_id


def _read_call(raw: object, where: str, calls: _Calls) -> ToolUse:
    call = as_object(raw, where)
    only_fields(call, where, ("id", "name", "args"))
    given = text_field(call, "id", where) if call.get("id") is not None else None
    name = text_field(call, "name", where)
    args = call.get("args")
    arguments = "{}" if args is None else arguments_text(as_object(args, f"{where}.args"), f"{where}.args")
    return ToolUse(id=calls.call(given, name, arguments), name=name, arguments=arguments)


def _read_response(raw: object, where: str, calls: _Calls) -> ToolResult:
    response_part = as_object(raw, where)
    only_fields(response_part, where, ("id", "name", "response"))
    given = text_field(response_part, "id", where) if response_part.get("id") is not None else None
    name = text_field(response_part, "name", where)
    call_id = calls.answer(given, name, where)
    names = calls.names
    if names.get(call_id) != name:
        reason = (
            f"no earlier functionCall has the id {call_id!r}"
            if call_id not in names
            else f"the functionCall with id {call_id!r} is named {names[call_id]!r}"
        )
        raise InvalidArgument(
            f"{where}.name: {name!r} would be lost: the engine takes a result's function name from its call, "
            f"and {reason}"
        )
    response = as_object(response_part.get("response"), f"{where}.response")
    plain = _plain_response(response)
    if plain is not None:
        key, text = plain
        return ToolResult(tool_use_id=call_id, content=(Text(text=text),), is_error=key == "error")
    # Any other object (the SDK's {"result": ...}, a tool's own dict): its
    # JSON is the result's text, which goes back as the object.
    return ToolResult(tool_use_id=call_id, content=(Text(text=arguments_text(response, f"{where}.response")),))
