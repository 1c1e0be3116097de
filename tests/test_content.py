"""The content model: constructors, validation, canonical encoding, digests."""

from __future__ import annotations

import msgspec
import pytest

from engine import Image, InvalidMessage, Message, Reasoning, Text, ToolResult, ToolUse, Transcript, Usage
from engine.errors import InvalidRevision
from engine.state.revisions import EMPTY_REVISION, chain, format_revision, parse_revision, revision_of


def test_constructors_and_views() -> None:
    user = Message.user("hello", Transcript(text="spoken"))
    assert user.role == "user"
    assert user.text == "hello\nspoken"
    assistant = Message.assistant(Reasoning(text="think"), "answer", ToolUse(id="t1", name="f", arguments='{"x":1}'))
    assert assistant.text == "answer"
    assert assistant.tool_uses[0].parsed_arguments() == {"x": 1}
    results = Message.tool_results(ToolResult.of("t1", "42"), ToolResult.of("t2", "boom", is_error=True))
    assert results.role == "tool_results"
    assert results.blocks[1].is_error is True  # type: ignore[union-attr]
    assert Message.system("be brief").text == "be brief"


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: Message(role="robot"), "role must be one of"),  # type: ignore[arg-type]
        (lambda: Message(role="user", blocks=[Text(text="x")]), "must be a tuple"),  # type: ignore[arg-type]
        (lambda: Message.user(ToolUse(id="a", name="f")), "cannot hold block 0 (tool_use)"),  # type: ignore[arg-type]
        (lambda: Message.system(3), "Text.text must be a str"),  # type: ignore[arg-type]
        (lambda: Message.tool_results(), "at least one ToolResult"),
        (lambda: Image(media_type="image/png"), "exactly one of data="),
        (lambda: Image(media_type="image/png", data=b"x", ref="blob:1"), "exactly one of data="),
        (lambda: ToolUse(id="", name="f"), "must not be empty"),
        (lambda: Usage(input=-1), "non-negative"),
    ],
)
def test_bad_content_is_refused_with_a_clear_error(build: object, needle: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        build()  # type: ignore[operator]
    assert needle in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_decoding_validates_like_construction() -> None:
    with pytest.raises(msgspec.ValidationError, match="cannot hold block"):
        image = b'{"type":"image","media_type":"image/png","ref":"r"}'
        msgspec.json.decode(b'{"role":"system","blocks":[' + image + b"]}", type=Message)
    with pytest.raises(msgspec.ValidationError, match="must name an image"):
        msgspec.json.decode(b'{"role":"user","blocks":[{"type":"image","media_type":"x","ref":"r"}]}', type=Message)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"role":"user","blocks":[],"surprise":1}', type=Message)


def test_canonical_encoding_is_sorted_and_ignores_ids() -> None:
    a = Message.user("hi", id="m1", provider_item_id="item_1")
    b = Message.user("hi", id="m2")
    assert a.canonical_bytes() == b'{"blocks":[{"text":"hi","type":"text"}],"role":"user"}'
    assert a.digest == b.digest
    assert a.digest != Message.assistant("hi").digest
    assert a.digest != Message.user("hi ").digest


def test_digest_is_stable_across_versions() -> None:
    # A content address must never change: this value is part of the format.
    assert Message.user("hi").digest == "sha256:55e159bf33e39786b428547fd51ec72473395b8b52b15c224ef326b4f7804cda"


def test_image_inline_and_by_reference_round_trip() -> None:
    inline = Message.user(Image(media_type="image/png", data=b"\x89PNG"))
    ref = Message.assistant(Image(media_type="image/png", ref="blob:sha256:ab"))
    for message in (inline, ref):
        assert msgspec.json.decode(msgspec.json.encode(message), type=Message) == message
    assert inline.digest != ref.digest


def test_usage_adds_up() -> None:
    total = Usage(input=1, output=2, cache_read=3) + Usage(input=10, cache_write=4, reasoning=5)
    assert total == Usage(input=11, output=2, cache_read=3, cache_write=4, reasoning=5)
    assert total.total == 13


def test_revision_chain() -> None:
    one, two = Message.user("a"), Message.assistant("b")
    assert revision_of([]) == EMPTY_REVISION
    assert revision_of([one, two]) == format_revision(chain(chain(parse_revision(EMPTY_REVISION), [one]), [two]))
    assert revision_of([one, two]) != revision_of([two, one])
    for bad in ("sha256:zz", "md5:" + "0" * 64, "sha256:" + "g" * 64, 7):
        with pytest.raises(InvalidRevision):
            parse_revision(bad)


# One way to build each block type; every field with a default is left out.
_BLOCKS = {
    Text: {"text": "t"},
    Transcript: {"text": "t"},
    Reasoning: {"text": "r"},
    ToolUse: {"id": "c1", "name": "f"},
    Image: {"media_type": "image/png", "data": b"x"},
    ToolResult: {"tool_use_id": "c1"},
}


class _Tuple(tuple):  # type: ignore[type-arg]
    pass


def _equal_other_object(default: object) -> object:
    """A value equal to ``default`` that is not the object itself (``None``
    if there is none a block takes: a tuple equal to ``()`` is ``()``
    itself, and a tuple subclass is refused)."""
    if isinstance(default, str):
        return "".join(list(default)) if len(default) > 1 else default + "x"[:0]
    if isinstance(default, tuple):
        assert tuple(list(default)) is default  # CPython keeps one empty tuple
        return None
    raise AssertionError(f"no way to copy a default of {type(default).__name__}: add one here")


@pytest.mark.parametrize(
    ("block_type", "field"),
    [
        (cls, field.name)
        for cls in _BLOCKS
        for field in msgspec.structs.fields(cls)
        if field.default not in (msgspec.NODEFAULT, None) and not isinstance(field.default, bool)
    ],
)
def test_a_field_given_its_default_hashes_as_a_field_left_out(block_type: type, field: str) -> None:
    # msgspec leaves a field out of JSON only when it holds the default
    # object itself: ToolUse(arguments="{}") was hashed with its arguments
    # and ToolUse() without, two revisions for equal content.
    default = next(f.default for f in msgspec.structs.fields(block_type) if f.name == field)
    given = _equal_other_object(default)
    if given is None:
        with pytest.raises(InvalidMessage, match="a subclass of tuple"):
            block_type(**_BLOCKS[block_type], **{field: _Tuple(default)})
        return
    assert given == default and given is not default
    left_out = block_type(**_BLOCKS[block_type])
    given_block = block_type(**_BLOCKS[block_type], **{field: given})
    assert given_block == left_out
    role = "tool_results" if block_type is ToolResult else "assistant" if block_type in (ToolUse, Reasoning) else "user"
    assert Message(role=role, blocks=(given_block,)).digest == Message(role=role, blocks=(left_out,)).digest
    assert msgspec.json.encode(given_block) == msgspec.json.encode(left_out)  # stored alike, too


def test_tool_calls_without_arguments_have_one_digest_however_they_were_made() -> None:
    import hashlib
    import json

    made = [
        ToolUse(id="c1", name="clock"),
        ToolUse(id="c1", name="clock", arguments="{}"),
        ToolUse(id="c1", name="clock", arguments=json.dumps({})),
        msgspec.json.decode(b'{"type":"tool_use","id":"c1","name":"clock","arguments":"{}"}', type=ToolUse),
    ]
    # The canonical content, written out: sorted keys, the default left out.
    canonical = b'{"blocks":[{"id":"c1","name":"clock","type":"tool_use"}],"role":"assistant"}'
    assert {Message.assistant(block).digest for block in made} == {"sha256:" + hashlib.sha256(canonical).hexdigest()}
