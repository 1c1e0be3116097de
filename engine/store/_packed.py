"""The packed stored forms of ``MessagesAppended``, the event nearly every
byte of a store is in.

The JSON form repeats, for every message, the event's kind, field names, an
ISO timestamp, a 71-character hex revision and a hex message id: about 200
bytes around a 200-byte message. The packed form is a msgpack array that
keeps only values, in a fixed order::

    [at, revision, [message, ...], actor?]

``at`` is microseconds since 1970 UTC; ``revision`` the 32 bytes of the
SHA-256 digest; each message ``[role, blocks, id?, provider_item_id?,
engine_id?, id?, provider_item_id?, incomplete?, erased?, provider_data?]``
without its trailing defaults: its role a code (the position in
``_ROLES``), a text block a bare string, any other block msgpack-encoded as
it is (a map naming its type), and an id the engine made (``msg_`` and 20
hex digits) as its 10 bytes in ``engine_id``, any other in ``id``.

The commonest event of all, one message of one text block with an id the
engine made and no actor, has a form of its own without any msgpack
framing. The engine names an appended message after its revision, its
session and the append's version (``engine.state.revisions.revision_id``),
so that id is not stored: 40 fixed bytes, then the text as UTF-8
(``REVISION_ID_TEXT_APPEND_TOPIC``; reading it takes the session's id and
the version)::

    role code (1) | at + 2**55 (7) | revision (32) | text

An id the engine made otherwise (earlier builds made random ones) keeps
its 10 bytes after the revision (``TEXT_APPEND_TOPIC``), 50 fixed bytes::

    role code (1) | at + 2**55 (7) | revision (32) | engine id (10) | text

(in both, the first two big-endian in one 8-byte word; times from the years
829 to 3111 fit).

Both forms decode to the very event that was encoded (tested on every kind
of message). An event neither can hold exactly (a time that is not UTC, a
revision that is not a SHA-256) is stored in JSON instead: ``pack_append``
returns ``None`` for it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from engine.state.content import Block, Message, Text
from engine.state.events import MessagesAppended
from engine.state.revisions import revision_id
from engine.state.transcript import KnownAppend

__all__ = [
    "PACKED_APPEND_TOPIC",
    "PACKED_TOPICS",
    "REVISION_ID_TEXT_APPEND_TOPIC",
    "TEXT_APPEND_TOPIC",
    "pack_append",
    "pack_text_append",
    "unpack_append",
    "unpack_known_append",
    "unpack_known_appends",
    "unpack_revision_id_text_append",
    "unpack_text_append",
]

#: The stored type name of the packed form: schema version 1 of the event.
PACKED_APPEND_TOPIC = "MessagesAppended.v1.packed"
#: The stored type name of the one-text-message form with the id kept.
TEXT_APPEND_TOPIC = "MessagesAppended.v1.text"
#: The stored type name of the one-text-message form whose id is made from its revision.
REVISION_ID_TEXT_APPEND_TOPIC = "MessagesAppended.v1.text-revid"
#: Every packed form's type name: none was written before rows were sealed.
PACKED_TOPICS = (PACKED_APPEND_TOPIC, TEXT_APPEND_TOPIC, REVISION_ID_TEXT_APPEND_TOPIC)

# Stored codes: a role's code is its position here. Only ever append.
_ROLES = ("system", "user", "assistant", "tool_results")
_ROLE_CODES = {role: code for code, role in enumerate(_ROLES)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The packed form names the fields it keeps: a new field must be given a
# place here before it can be stored (a test checks both lists).
PACKED_EVENT_FIELDS = ("at", "actor", "messages", "revision")
PACKED_MESSAGE_FIELDS = ("role", "blocks", "id", "provider_item_id", "incomplete", "erased", "provider_data")


class _PackedMessage(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    role: int
    blocks: list[str | Block]
    engine_id: bytes | None = None
    id: str | None = None
    provider_item_id: str | None = None
    incomplete: bool = False
    erased: str | None = None
    provider_data: str | None = None


class _PackedAppend(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    at: int
    revision: bytes
    messages: list[_PackedMessage]
    actor: str | None = None


_ENCODE = msgspec.msgpack.Encoder().encode
_ENGINE_ID = re.compile(r"msg_[0-9a-f]{20}").fullmatch  # what decoding gives back
_from_hex = bytes.fromhex
_DECODE = msgspec.msgpack.Decoder(_PackedAppend).decode
_TEXT_HEAD = struct.Struct(">Q32s10s")  # role code and at, revision, engine id
_TEXT_START = _TEXT_HEAD.size
_REVISION_ID_HEAD = struct.Struct(">Q32s")  # role code and at, revision
_REVISION_ID_START = _REVISION_ID_HEAD.size
_AT_OFFSET = 1 << 55  # at is stored plus this, in the word's low 56 bits
_AT_BITS = (1 << 56) - 1
_set_field = msgspec.structs.force_setattr
_MESSAGE_TEMPLATES = tuple(Message(role=role, blocks=(Text(text=""),)) for role in _ROLES[:3])  # type: ignore[arg-type]
_TEXT_TEMPLATE = Text(text="")
# msgspec's type stubs omit Struct.__copy__.
_copy_message: Callable[[Message], Message] = Message.__copy__  # type: ignore[attr-defined]
_copy_text: Callable[[Text], Text] = Text.__copy__  # type: ignore[attr-defined]


def pack_text_append(
    event: MessagesAppended, revision_bytes: bytes | None = None, mask: int | None = None
) -> tuple[str, bytes] | None:
    """The type name and bytes of one of the one-text-message forms, or
    ``None`` if ``event`` is not one message of one text block with an
    engine id, no actor and nothing else. ``revision_bytes``: the
    revision's 32 bytes, if the caller has them; ``mask``: the event's
    ``id_mask`` (its session and version), without which the id is kept in
    the bytes."""
    messages = event.messages
    if len(messages) != 1 or event.actor is not None:
        return None
    message = messages[0]
    blocks = message.blocks
    ident = message.id
    if (
        len(blocks) != 1
        or type(blocks[0]) is not Text
        or ident is None
        or message.provider_item_id is not None
        or message.incomplete
        or message.erased is not None
        or message.provider_data is not None
    ):
        return None
    raw_revision = revision_bytes if revision_bytes is not None else _raw_revision(event.revision)
    at = event.at
    if raw_revision is None or at.tzinfo is not UTC:
        return None
    stored_at = (at - _EPOCH) // _MICROSECOND + _AT_OFFSET
    code = _ROLE_CODES[message.role]
    if not 0 <= stored_at <= _AT_BITS or code > 2:  # a tool_results message holds no text: never read back
        return None
    try:
        text = blocks[0].text.encode()
    except UnicodeEncodeError:  # a Text is checked when made: only a forged one gets here
        return None
    if mask is not None and ident == revision_id(raw_revision, mask):
        return REVISION_ID_TEXT_APPEND_TOPIC, _REVISION_ID_HEAD.pack(code << 56 | stored_at, raw_revision) + text
    engine_id = _engine_id(ident)
    if engine_id is None:
        return None
    return TEXT_APPEND_TOPIC, _TEXT_HEAD.pack(code << 56 | stored_at, raw_revision, engine_id) + text


def unpack_known_append(topic: str, state: bytes, mask: int) -> KnownAppend:
    """The message, revision and time of bytes of a one-text-message form
    (``topic`` names which), as a load folds them; ``mask``: the event's
    ``id_mask``. Raises ``ValueError`` for bytes the form never holds."""
    try:
        if topic == REVISION_ID_TEXT_APPEND_TOPIC:
            word, revision = _REVISION_ID_HEAD.unpack_from(state)
            ident, start = revision_id(revision, mask), _REVISION_ID_START
        else:
            word, revision, engine_id = _TEXT_HEAD.unpack_from(state)
            ident, start = "msg_" + engine_id.hex(), _TEXT_START
    except struct.error:
        raise ValueError(f"{len(state)} bytes are too few for a text message") from None
    role = word >> 56
    if role >= 3:  # system, user or assistant: a tool_results message holds no text
        raise ValueError(f"role code {role} is not one of 0 to 2")
    # Copies of made messages, given their fields: every value is one the
    # checks of Message and Text pass (a role of three, text decoded from
    # UTF-8, an id of hex digits), and running them was half of this
    # function's time.
    text = _copy_text(_TEXT_TEMPLATE)
    _set_field(text, "text", state[start:].decode())
    message = _copy_message(_MESSAGE_TEMPLATES[role])
    _set_field(message, "blocks", (text,))
    _set_field(message, "id", ident)
    return KnownAppend(message, revision, (word & _AT_BITS) - _AT_OFFSET)


def unpack_known_appends(
    records: Iterable[tuple[int, str, bytes]], key: int, other: Callable[[int, str, bytes], Any]
) -> list[tuple[int, Any]]:
    """Each of ``records`` (version, type name, bytes) of the session whose
    ``message_id_key`` is ``key`` (``id_mask`` of a record: it, exclusive-or
    the version), as a load folds it: one-text-message
    bytes as :func:`unpack_known_append` gives them, any other record, and
    bytes these forms never hold, as ``other(version, topic, state)`` gives
    it (it raises for damage). The same steps as
    :func:`unpack_known_append`, inline: a call per record was a quarter of
    decoding a long session."""
    from_bytes, text_forms = int.from_bytes, (REVISION_ID_TEXT_APPEND_TOPIC, TEXT_APPEND_TOPIC)
    unpack_revision_id, revision_id_start = _REVISION_ID_HEAD.unpack_from, _REVISION_ID_START
    unpack, text_start, templates, text_template = (
        _TEXT_HEAD.unpack_from,
        _TEXT_START,
        _MESSAGE_TEMPLATES,
        _TEXT_TEMPLATE,
    )
    copy_text, copy_message, set_field, known = _copy_text, _copy_message, _set_field, KnownAppend
    decoded: list[tuple[int, Any]] = []
    append = decoded.append
    for version, topic, state in records:
        if topic in text_forms:
            try:
                if topic == REVISION_ID_TEXT_APPEND_TOPIC:
                    word, revision = unpack_revision_id(state)
                    ident = "msg_" + (from_bytes(revision[:10]) ^ key ^ version).to_bytes(10).hex()
                    start = revision_id_start
                else:
                    word, revision, engine_id = unpack(state)
                    ident, start = "msg_" + engine_id.hex(), text_start
                role = word >> 56
                if role < 3:
                    text = copy_text(text_template)
                    set_field(text, "text", state[start:].decode())
                    message = copy_message(templates[role])
                    set_field(message, "blocks", (text,))
                    set_field(message, "id", ident)
                    append((version, known(message, revision, (word & _AT_BITS) - _AT_OFFSET)))
                    continue
            except (struct.error, UnicodeDecodeError, TypeError, OverflowError):  # damaged: ``other`` says how
                pass
        append((version, other(version, topic, state)))
    return decoded


def unpack_text_append(state: bytes) -> MessagesAppended:
    """The event of bytes of the one-text-message form with the id kept.
    Raises ``ValueError`` for bytes this form never holds."""
    return _text_event(unpack_known_append(TEXT_APPEND_TOPIC, state, 0))


def unpack_revision_id_text_append(state: bytes, mask: int) -> MessagesAppended:
    """The event of bytes of the one-text-message form whose id is made
    from its revision, given the event's ``id_mask``. Raises ``ValueError``
    for bytes this form never holds."""
    return _text_event(unpack_known_append(REVISION_ID_TEXT_APPEND_TOPIC, state, mask))


def _text_event(known: KnownAppend) -> MessagesAppended:
    return MessagesAppended(at=known.at, messages=(known.message,), revision="sha256:" + known.revision.hex())


def _raw_revision(revision: str) -> bytes | None:
    """The 32 bytes of a ``sha256:`` revision in lower-case hex, else ``None``."""
    if len(revision) != 71 or not revision.startswith("sha256:"):
        return None
    digits = revision[7:]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return raw if raw.hex() == digits else None  # upper case or spaces would not come back


def pack_append(event: MessagesAppended) -> bytes | None:
    """The packed stored bytes of ``event``, or ``None`` if the packed form
    cannot hold it exactly (it is then stored as JSON)."""
    at = event.at
    raw_revision = _raw_revision(event.revision)
    if at.tzinfo is not UTC or raw_revision is None:
        return None
    codes = _ROLE_CODES
    messages: list[list[Any]] = []
    append = messages.append
    for message in event.messages:
        blocks = message.blocks
        if len(blocks) == 1 and type(blocks[0]) is Text:
            packed_blocks: list[Any] = [blocks[0].text]
        else:
            packed_blocks = [block.text if type(block) is Text else block for block in blocks]
        packed = [codes[message.role], packed_blocks]
        ident = message.id
        if ident is not None:
            engine_id = _engine_id(ident)
            packed += (engine_id,) if engine_id is not None else (None, ident)
        if (
            message.provider_item_id is not None
            or message.incomplete
            or message.erased is not None
            or message.provider_data is not None
        ):
            if ident is None:
                packed += (None, None)
            elif len(packed) == 3:
                packed.append(None)
            packed += (message.provider_item_id, message.incomplete, message.erased, message.provider_data)
            while packed[-1] is None or packed[-1] is False:
                packed.pop()
        append(packed)
    packed_event: list[Any] = [(at - _EPOCH) // _MICROSECOND, raw_revision, messages]
    if event.actor is not None:
        packed_event.append(event.actor)
    try:
        return _ENCODE(packed_event)
    except OverflowError:  # an int over msgpack's 64 bits (a block's field): JSON holds it
        return None


def _engine_id(ident: str) -> bytes | None:
    """The 10 bytes of an id the engine made (``msg_`` and 20 lowercase hex
    digits), or ``None`` for any other id (upper case or spaces would not
    come back)."""
    return _from_hex(ident[4:]) if _ENGINE_ID(ident) else None


def unpack_append(state: bytes) -> MessagesAppended:
    """The event of packed stored bytes. Raises ``ValueError`` (or a
    ``msgspec`` error) for bytes this form never holds."""
    packed = _DECODE(state)
    if len(packed.revision) != 32:
        raise ValueError("the revision is not a SHA-256 digest")
    return MessagesAppended(
        at=_EPOCH + packed.at * _MICROSECOND,
        actor=packed.actor,
        messages=tuple(map(_message, packed.messages)),
        revision="sha256:" + packed.revision.hex(),
    )


def _message(packed: _PackedMessage) -> Message:
    role = packed.role
    if not 0 <= role < 4:
        raise ValueError(f"role code {role} is not one of 0 to {len(_ROLES) - 1}")
    blocks = packed.blocks
    if len(blocks) == 1 and type(blocks[0]) is str:
        made: tuple[Block, ...] = (Text(text=blocks[0]),)
    else:
        made = tuple(Text(text=block) if isinstance(block, str) else block for block in blocks)
    ident = packed.id
    if packed.engine_id is not None:
        if len(packed.engine_id) != 10 or ident is not None:
            raise ValueError("a packed message id is not 10 bytes alone")
        ident = "msg_" + packed.engine_id.hex()
    elif ident is not None and _engine_id(ident) is not None:
        raise ValueError("an engine message id is stored unpacked")  # never written so: one form per id
    if (
        packed.provider_item_id is None
        and not packed.incomplete
        and packed.erased is None
        and packed.provider_data is None
    ):
        return Message(role=_ROLES[role], blocks=made, id=ident)  # type: ignore[arg-type]  # codes name roles
    return Message(
        role=_ROLES[role],  # type: ignore[arg-type]
        blocks=made,
        id=ident,
        provider_item_id=packed.provider_item_id,
        incomplete=packed.incomplete,
        erased=packed.erased,
        provider_data=packed.provider_data,
    )
