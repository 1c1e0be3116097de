"""Messages, content blocks and token usage: frozen msgspec Structs.

Every message has a canonical encoding (sorted keys, no timestamps, no runtime
ids such as the message id or the provider item id) and a content digest over
it, so equal content always gives an equal digest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from typing import Any, Literal, TypeAlias

import msgspec

from engine.errors import InvalidMessage

__all__ = [
    "Block",
    "Image",
    "Message",
    "Reasoning",
    "ReplaceBlock",
    "Role",
    "Text",
    "ToolResult",
    "ToolUse",
    "Transcript",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool_results"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool_results"))


# An image's media type: ``image/`` and a subtype of RFC 6838's name
# characters, or ``*`` (an image whose type is not known, as a URL's).
_IMAGE_MEDIA_TYPE = re.compile(r"image/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)", re.IGNORECASE).fullmatch


def a_role(role: object) -> str:
    """``role`` with its article, for messages: "an assistant", "a user"
    (of the roles, only "assistant" is said with "an")."""
    return f"{'an' if role == 'assistant' else 'a'} {role}"


def is_image_media_type(media_type: str) -> bool:
    """Whether ``media_type`` names an image (``image/png``, ``image/*``):
    what an Image block may hold (audio or a PDF is not one)."""
    return _IMAGE_MEDIA_TYPE(media_type) is not None


class _Block(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    """Base of the content blocks; the ``type`` tag names the kind."""


# Set while the store decodes what it stored (``as_stored``): blocks then
# keep the objects they are given, so a message hashes as it did when its
# revision was recorded.
#: The largest int a block field keeps (a signed 64-bit column, as read models hold it).
MAX_STORED_INT = 2**63 - 1
_AS_STORED: ContextVar[bool] = ContextVar("transcript_engine_as_stored", default=False)


@contextmanager
def as_stored() -> Iterator[None]:
    """Blocks made inside keep a field that equals its default as the very
    object given. Outside, such a field holds the default object itself, so
    equal content always encodes, and hashes, the same: msgspec leaves a
    field out of JSON only when it holds the default object, and earlier
    builds hashed ``ToolUse(arguments="{}")`` with its arguments and
    ``ToolUse()`` without. Their stored messages must hash as they did: the
    store decodes inside this, and a stored message keeps its old digest."""
    token = _AS_STORED.set(True)
    try:
        yield
    finally:
        _AS_STORED.reset(token)


_BASES = (str, int, bytes, tuple, float, list, dict)


def kind_of(value: object) -> str:
    """The type of ``value`` as an error names it when it is not exactly the
    type wanted: a subclass (an enum member, a str subclass) would be stored
    as its base type and read back as that, not as itself."""
    kind = type(value)
    base = next((base for base in _BASES if isinstance(value, base)), None)
    if base is None or kind is base:
        return kind.__name__
    if kind is bool:
        return "bool (True and False are not numbers here)"
    fix = "its .value" if isinstance(value, Enum) else f"{base.__name__}(value)"
    return (
        f"{kind.__name__} (a subclass of {base.__name__}, which would read back as a plain {base.__name__}; pass {fix})"
    )


def got(value: object) -> str:
    """``value`` as an error shows what it was given: its repr, and its
    type too when it is a subclass of a type the store keeps (see ``kind_of``)."""
    kind = type(value)
    if kind in _BASES or not isinstance(value, _BASES):
        return shown(value)
    return f"{shown(value)}, a {kind_of(value)}"


def _require_str(value: object, where: str) -> None:
    if type(value) is not str:
        raise InvalidMessage(f"{where} must be a str, got {kind_of(value)}")
    if not value.isascii():
        unicode_error(value, where, InvalidMessage)


#: The bidirectional marks, embeddings, overrides and isolates, as a regular
#: expression's character class body: they reorder how the text around them
#: is shown, so what shows text to a person (the CLI, the viewer) escapes them.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


def shown(value: object, width: int = 80) -> str:
    """``repr(value)`` for an error message: clipped, and never raising (a
    value nested thousands of levels deep has no repr)."""
    try:
        text = repr(value)
    except Exception:  # RecursionError, or a caller's __repr__ that fails
        return f"a {type(value).__name__}"
    return text if len(text) <= width else text[: width - 3] + "..."


def whole_number(text: str, digits: int = 18) -> int | None:
    """``text`` as an int if it is 1 to ``digits`` ASCII digits, else ``None``
    (``str.isdigit`` takes "²", which ``int`` refuses, and ``int`` refuses
    more than 4,300 digits: a parser must not raise either)."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def unicode_error(value: str, where: str, error: type[Exception]) -> None:
    """Raise ``error`` if ``value`` is not valid Unicode (a lone surrogate cannot
    be encoded, so it could never be stored and read back)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{where} is not valid Unicode: a lone surrogate ({value[exc.start]!r}) at index {exc.start}; "
            "decode the source bytes with errors='replace' or remove it"
        ) from None


class Text(_Block, frozen=True, tag="text"):
    """Written text."""

    text: str

    def __post_init__(self) -> None:
        text = self.text
        if type(text) is not str or not text.isascii():  # inline: this runs for every decoded block
            _require_str(text, "Text.text")


class Transcript(_Block, frozen=True, tag="transcript"):
    """Spoken words, as transcribed from audio. ``truncated_at_ms``: playback
    was cut there (barge-in); the text may include words never heard."""

    text: str
    truncated_at_ms: int | None = None

    def __post_init__(self) -> None:
        text = self.text
        if type(text) is not str or not text.isascii():  # inline: this runs for every decoded block
            _require_str(text, "Transcript.text")
        cut = self.truncated_at_ms
        if cut is not None and (type(cut) is not int or cut < 0):
            raise InvalidMessage(f"Transcript.truncated_at_ms must be None or a non-negative int, got {got(cut)}")
        if cut is not None and cut > MAX_STORED_INT and not _AS_STORED.get():  # a stored one reads as stored
            raise _too_big_cut(cut)


class Reasoning(_Block, frozen=True, tag="reasoning"):
    """Model reasoning; ``signature`` keeps a provider's opaque token, and
    ``item_id`` the id of the provider's item it came in (the OpenAI
    Responses API wants a reasoning item back with its id)."""

    text: str
    signature: str | None = None
    item_id: str | None = None

    def __post_init__(self) -> None:
        _require_str(self.text, "Reasoning.text")
        if self.signature is not None:
            _require_str(self.signature, "Reasoning.signature")
        if self.item_id is not None:
            _require_str(self.item_id, "Reasoning.item_id")
            if not self.item_id:
                raise InvalidMessage("Reasoning.item_id must not be empty; leave it out (None) instead")


class ToolUse(_Block, frozen=True, tag="tool_use"):
    """A tool call. ``arguments`` is the raw JSON text exactly as produced."""

    id: str
    name: str
    arguments: str = "{}"

    def __post_init__(self) -> None:
        _require_str(self.id, "ToolUse.id")
        _require_str(self.name, "ToolUse.name")
        _require_str(self.arguments, "ToolUse.arguments")
        if not self.id:
            raise InvalidMessage("ToolUse.id must not be empty")
        if self.arguments is not _NO_ARGUMENTS and self.arguments == "{}" and not _AS_STORED.get():
            msgspec.structs.force_setattr(self, "arguments", _NO_ARGUMENTS)  # see as_stored

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``InvalidMessage`` if not JSON)."""
        try:
            return msgspec.json.decode(self.arguments)
        except msgspec.DecodeError as exc:
            raise InvalidMessage(f"tool use {self.id!r}: arguments are not JSON: {exc}") from None
        except RecursionError:
            raise InvalidMessage(f"tool use {self.id!r}: arguments nest too deep to decode") from None


def _default_of(cls: type[msgspec.Struct], name: str) -> Any:
    """The default object of a field: the one msgspec leaves out of JSON."""
    return next(field.default for field in msgspec.structs.fields(cls) if field.name == name)


_NO_ARGUMENTS: str = _default_of(ToolUse, "arguments")


class Image(_Block, frozen=True, tag="image"):
    """An image, either inline (``data``) or by blob reference (``ref``)."""

    media_type: str
    data: bytes | None = None
    ref: str | None = None

    def __post_init__(self) -> None:
        _require_str(self.media_type, "Image.media_type")
        if not _AS_STORED.get():  # a stored one is read as it was stored
            _require_image_media_type(self.media_type)
        if (self.data is None) == (self.ref is None):
            raise InvalidMessage("Image needs exactly one of data= (inline bytes) or ref= (a blob reference)")
        if self.data is not None and type(self.data) is not bytes:
            raise InvalidMessage(f"Image.data must be bytes, got {kind_of(self.data)}")
        if self.ref is not None:
            _require_str(self.ref, "Image.ref")
        if not _AS_STORED.get():  # a stored one is read as it was stored
            _require_some_image(self)


ToolResultContent: TypeAlias = Text | Image


class ToolResult(_Block, frozen=True, tag="tool_result"):
    """The result of the tool use whose id is ``tool_use_id``."""

    tool_use_id: str
    content: tuple[ToolResultContent, ...] = ()
    is_error: bool = False

    def __post_init__(self) -> None:
        _require_str(self.tool_use_id, "ToolResult.tool_use_id")
        if type(self.content) is not tuple:
            raise InvalidMessage(
                f"ToolResult.content must be a tuple of Text or Image blocks, got {kind_of(self.content)}"
            )
        for index, block in enumerate(self.content):
            if type(block) not in (Text, Image):
                raise InvalidMessage(
                    f"ToolResult.content must be a tuple of Text or Image blocks; block {index} is "
                    f"{kind_of(block)} (ToolResult.of takes a str or one block: json.dumps other values first)"
                )
        if not isinstance(self.is_error, bool):
            raise InvalidMessage("ToolResult.is_error must be a bool")

    @property
    def content_text(self) -> str:
        """The result's blocks joined by newlines, an image as an empty line."""
        return "\n".join(part.text if isinstance(part, Text) else "" for part in self.content)

    @classmethod
    def of(cls, tool_use_id: str, content: str | ToolResultContent, *, is_error: bool = False) -> ToolResult:
        """A result with one block; a ``str`` becomes a ``Text`` block."""
        block = Text(text=content) if isinstance(content, str) else content
        return cls(tool_use_id=tool_use_id, content=(block,), is_error=is_error)


Block: TypeAlias = Text | Transcript | Reasoning | ToolUse | ToolResult | Image
_BLOCK_TYPES = (Text, Transcript, Reasoning, ToolUse, ToolResult, Image)

_ALLOWED_BLOCKS: dict[str, tuple[type[_Block], ...]] = {
    "system": (Text,),
    "user": (Text, Transcript, Image),
    "assistant": (Text, Transcript, Reasoning, ToolUse, Image),
    "tool_results": (ToolResult,),
}

_CANONICAL = msgspec.json.Encoder(order="sorted")


# A high surrogate escaped without a low one after it, or a low one without a high one before it.
_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _check_json_text(text: object) -> None:
    if type(text) is not str:
        raise InvalidMessage(f"Message.provider_data is JSON text (a str), got {kind_of(text)}")
    unicode_error(text, "Message.provider_data", InvalidMessage)
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        found = _LONE_SURROGATE_ESCAPE.search(text)
        if found:  # JSON that decodes to no Unicode string; the decoder's own message says "truncated"
            raise InvalidMessage(
                f"Message.provider_data escapes a lone surrogate ({found.group()}) at index {found.start()}: "
                "JSON text that is no valid Unicode"
            ) from None
        if "out of range" in str(exc):  # JSON all the same, with a number no reader here takes
            raise InvalidMessage(
                f"Message.provider_data holds a number the engine cannot read back ({exc}): numbers must fit "
                "a 64-bit integer or a finite float; store such a number as a JSON string"
            ) from None
        raise InvalidMessage(f"Message.provider_data is not JSON text: {exc}") from None
    except RecursionError:
        raise InvalidMessage("Message.provider_data nests too deep to decode") from None


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    """One transcript message: a role and an ordered tuple of content blocks.

    ``id`` is assigned by the store when the message is appended (if absent);
    ``provider_item_id`` names the provider's conversation item, if any. Neither
    is part of the canonical content, so neither changes the digest.
    ``incomplete`` marks a message whose generation stopped early (a cancelled
    or interrupted response); it is content, so it is part of the digest.
    ``erased`` is set only on the placeholder that ``Transcripts.erase``
    leaves: no blocks, and the digest the content had (so revisions still
    verify); build messages without it.
    ``provider_data`` is JSON text a framework adapter keeps with the message
    verbatim (for example the Agents SDK items it came from, with their ids
    and statuses): not content, so not in the digest; erasure drops it with
    the content it may repeat.
    """

    role: Role
    blocks: tuple[Block, ...] = ()
    id: str | None = None
    provider_item_id: str | None = None
    incomplete: bool = False
    erased: str | None = None
    provider_data: str | None = None

    def __post_init__(self) -> None:
        role = self.role
        allowed = _ALLOWED_BLOCKS.get(role) if type(role) is str else None  # a list or dict is unhashable
        if allowed is None:
            raise InvalidMessage(f"role must be one of {sorted(ROLES)}, got {got(role)}")
        if type(self.blocks) is not tuple:
            raise InvalidMessage(
                f"Message.blocks must be a tuple, got {kind_of(self.blocks)}; "
                "use the Message.user/assistant/system/tool_results constructors"
            )
        if type(self) is not Message:
            # Its own fields would be stored, and no reader could decode them.
            raise InvalidMessage(f"a {type(self).__name__} (a subclass of Message) cannot be stored; use Message")
        for block in self.blocks:
            if type(block) not in allowed:  # not a subclass either: it would not read back
                self._refuse_block(allowed)
        if self.erased is not None:
            self._check_erased()
        elif not self.blocks and self.role == "tool_results":
            raise InvalidMessage("a tool_results message needs at least one ToolResult")
        if self.id is not None:
            _require_str(self.id, "Message.id")
            if not self.id and not _AS_STORED.get():  # a store written before this check may hold one
                raise InvalidMessage("Message.id is empty: give an id, or None (the store makes one)")
        if self.provider_item_id is not None:
            _require_str(self.provider_item_id, "Message.provider_item_id")
        if self.provider_data is not None:
            _check_json_text(self.provider_data)
        if not isinstance(self.incomplete, bool):
            # Stored as JSON and read back as a bool: anything else would make the session unreadable.
            raise InvalidMessage(f"Message.incomplete must be a bool, got {type(self.incomplete).__name__}")

    def _check_erased(self) -> None:
        digest = self.erased
        if not (isinstance(digest, str) and len(digest) == 71 and digest.startswith("sha256:")) or any(
            c not in "0123456789abcdef" for c in digest[7:]
        ):
            raise InvalidMessage(
                f"Message.erased is the erased content's digest ('sha256:<64 hex>'), got {shown(digest)}"
            )
        if self.blocks or self.incomplete:
            raise InvalidMessage("an erased message keeps no content: no blocks, not incomplete")

    def erasure(self) -> Message:
        """The placeholder left where this message's content was erased: same
        role and ids, no content, and this message's digest."""
        if self.erased is not None:
            return self
        return Message(role=self.role, id=self.id, provider_item_id=self.provider_item_id, erased=self.digest)

    def _refuse_block(self, allowed: tuple[type[_Block], ...]) -> None:
        index, block = next((i, b) for i, b in enumerate(self.blocks) if type(b) not in allowed)
        if isinstance(block, allowed):
            raise InvalidMessage(
                f"block {index} is a {type(block).__name__} (a subclass of a block type), which cannot be stored; "
                f"use {type(block).__mro__[1].__name__}"
            )
        kind = getattr(block, "__struct_config__", None) and block.__struct_config__.tag
        raise InvalidMessage(
            f"{a_role(self.role)} message cannot hold block {index} ({kind or type(block).__name__!s}); allowed: "
            + ", ".join(str(cls.__struct_config__.tag) for cls in allowed)
        )

    # -- constructors -----------------------------------------------------

    @classmethod
    def system(cls, text: str, *, id: str | None = None) -> Message:
        return cls(role="system", blocks=(Text(text=text),), id=id)

    @classmethod
    def user(cls, *content: str | Block, id: str | None = None, provider_item_id: str | None = None) -> Message:
        """A user message; each ``str`` becomes a ``Text`` block."""
        return cls(role="user", blocks=_blocks(content), id=id, provider_item_id=provider_item_id)

    @classmethod
    def assistant(cls, *content: str | Block, id: str | None = None, provider_item_id: str | None = None) -> Message:
        """An assistant message; each ``str`` becomes a ``Text`` block."""
        return cls(role="assistant", blocks=_blocks(content), id=id, provider_item_id=provider_item_id)

    @classmethod
    def tool_results(cls, *results: ToolResult, id: str | None = None) -> Message:
        return cls(role="tool_results", blocks=tuple(results), id=id)

    # -- views ------------------------------------------------------------

    @property
    def text(self) -> str:
        """Text and spoken-transcript blocks, joined in order by newlines."""
        return "\n".join(block.text for block in self.blocks if isinstance(block, (Text, Transcript)))

    @property
    def tool_uses(self) -> tuple[ToolUse, ...]:
        return tuple(block for block in self.blocks if isinstance(block, ToolUse))

    def canonical_bytes(self) -> bytes:
        """Sorted-key JSON of the content: role, blocks and the incomplete
        marker when set; no ids. An erased placeholder has no content left:
        its role and the erased digest."""
        if self.erased is not None:
            return _CANONICAL.encode({"role": self.role, "erased": self.erased})
        if self.incomplete:
            return _CANONICAL.encode({"role": self.role, "blocks": self.blocks, "incomplete": True})
        return _CANONICAL.encode({"role": self.role, "blocks": self.blocks})

    def digest_bytes(self) -> bytes:
        """SHA-256 of :meth:`canonical_bytes` (32 raw bytes); for an erased
        placeholder, the digest its content had."""
        if self.erased is not None:
            return bytes.fromhex(self.erased[7:])
        return hashlib.sha256(self.canonical_bytes()).digest()

    @property
    def digest(self) -> str:
        """The content digest, ``sha256:<hex>``."""
        return "sha256:" + self.digest_bytes().hex()


def check_again(message: Message) -> None:
    """Run again every check ``message`` and its blocks passed when they were
    made (``msgspec.structs.force_setattr`` can change a made one, and a
    subclass can replace the checks): a store refuses what it could not give
    back, before anything is written. Raises :class:`InvalidMessage`.
    Changes nothing: the blocks may be a stored message's (see ``as_stored``)."""
    Message.__post_init__(message)  # Message's own checks, whatever its type: they refuse a subclass
    for block in message.blocks:
        if type(block) is Text:  # the commonest block; its checks change nothing in any context
            Text.__post_init__(block)
        else:
            check_block_again(block)


def check_block_again(block: object) -> None:
    """:func:`check_again` for one block (``ReplaceBlock.block``)."""
    if not isinstance(block, _BLOCK_TYPES):
        raise InvalidMessage(f"a content block was expected, got {type(block).__name__}")
    token = _AS_STORED.set(True)
    try:
        _check_block(block)
    finally:
        _AS_STORED.reset(token)


def _check_block(block: Block) -> None:
    block.__post_init__()
    if type(block) is Transcript and block.truncated_at_ms is not None and block.truncated_at_ms > MAX_STORED_INT:
        raise _too_big_cut(block.truncated_at_ms)
    if type(block) is Image:
        _require_image_media_type(block.media_type)
        _require_some_image(block)
    if type(block) is ToolResult:
        for part in block.content:
            _check_block(part)


def _too_big_cut(cut: int) -> InvalidMessage:
    digits = len(str(cut)) if cut < 10**4000 else "over 4,000"
    return InvalidMessage(
        f"Transcript.truncated_at_ms must be at most 2**63 - 1 (the most a store's tables hold), got an int of "
        f"{digits} digits"
    )


def _require_image_media_type(media_type: str) -> None:
    if not is_image_media_type(media_type):
        raise InvalidMessage(
            f"Image.media_type must name an image, such as 'image/png' ('image/*' if its type is not known), "
            f"got {media_type!r}"
        )


def _require_some_image(image: Image) -> None:
    # Empty bytes or an empty reference is no image: a provider would get
    # "data": "" or "url": "" and refuse it.
    if image.data == b"":
        raise InvalidMessage("Image.data is empty: give the image's bytes, or ref= to name where it is")
    if image.ref == "":
        raise InvalidMessage("Image.ref is empty: give the image's URL or blob reference, or data= with its bytes")


def _holds_equal_default(block: Block) -> bool:
    """Whether a field of ``block`` equals its default without being the
    default object (a block made under ``as_stored``, or changed since).
    ``ToolUse.arguments`` is the one default an equal value can be another
    object of (a test checks every field)."""
    return type(block) is ToolUse and block.arguments is not _NO_ARGUMENTS and block.arguments == "{}"


def hashed_alike(first: Message, second: Message) -> bool:
    """Whether two messages are equal and hash alike: a message stored by an
    earlier build can equal one made today and hash otherwise (see
    ``as_stored``), and a restore must give back the revision it names."""
    if first is second:
        return True
    if first != second:
        return False
    if any(map(_holds_equal_default, first.blocks)) or any(map(_holds_equal_default, second.blocks)):
        return first.digest_bytes() == second.digest_bytes()
    return True


def same_content(first: Message, second: Message) -> bool:
    """Whether two messages hold equal content: equal digests in the form
    new content is hashed in, whichever form each was hashed in when stored."""
    return with_default_objects(first).digest_bytes() == with_default_objects(second).digest_bytes()


def _with_defaults(block: Block) -> Block:
    return msgspec.structs.replace(block, arguments=_NO_ARGUMENTS)


def with_default_objects(message: Message) -> Message:
    """``message``, or a copy of it whose blocks hold the default object in
    every field that equals its default: the form new content is hashed and
    stored in, so that equal content has one digest (see ``as_stored``). A
    store makes every message it is given into this form; a stored message
    read back keeps the form it was hashed in."""
    blocks = message.blocks
    for block in blocks:  # a loop, not any(): this runs for every message stored
        if type(block) is ToolUse and _holds_equal_default(block):
            break
    else:
        return message
    fresh = tuple(_with_defaults(block) if _holds_equal_default(block) else block for block in blocks)
    copy: Message = message.__copy__()  # type: ignore[attr-defined]  # msgspec's stubs omit it
    msgspec.structs.force_setattr(copy, "blocks", fresh)
    return copy


class ReplaceBlock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """For ``fork_replacing``: replace only block ``index`` of a message (a
    user content block, an assistant block, or one ``ToolResult``)."""

    index: int
    block: Block

    def __post_init__(self) -> None:
        if type(self.index) is not int:
            raise InvalidMessage(f"ReplaceBlock.index must be an int, got {kind_of(self.index)}")
        if not isinstance(self.block, _Block):
            raise InvalidMessage(f"ReplaceBlock.block must be a content block, got {type(self.block).__name__}")


def _blocks(content: tuple[str | Block, ...]) -> tuple[Block, ...]:
    return tuple(Text(text=item) if isinstance(item, str) else item for item in content)


_USAGE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")


class Usage(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    """Token counts; usages add up with ``+``."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def __post_init__(self) -> None:
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidMessage(f"Usage.{name} must be a non-negative int, got {got(value)}")

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            reasoning=self.reasoning + other.reasoning,
        )

    @property
    def total(self) -> int:
        """Input plus output tokens (cache and reasoning are parts of these)."""
        return self.input + self.output
