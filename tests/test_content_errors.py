"""The exact wording of every content validation error: these messages are
what a caller reads when their input is wrong, so a change must be on purpose."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from engine import (
    Image,
    InvalidMessage,
    Message,
    Reasoning,
    ReplaceBlock,
    Text,
    ToolResult,
    ToolUse,
    Transcript,
    Usage,
)
from engine.state.sequence import MAX_PIECES, MessageSeq

CASES: list[tuple[Callable[[], object], str]] = [
    (lambda: Text(text=1), "Text.text must be a str, got int"),  # type: ignore[arg-type]
    (lambda: Transcript(text=None), "Transcript.text must be a str, got NoneType"),  # type: ignore[arg-type]
    (lambda: Reasoning(text=b"x"), "Reasoning.text must be a str, got bytes"),  # type: ignore[arg-type]
    (lambda: ToolUse(id=1, name="f"), "ToolUse.id must be a str, got int"),  # type: ignore[arg-type]
    (lambda: ToolUse(id="a", name=2), "ToolUse.name must be a str, got int"),  # type: ignore[arg-type]
    (lambda: ToolUse(id="a", name="f", arguments={}), "ToolUse.arguments must be a str, got dict"),  # type: ignore[arg-type]
    (lambda: ToolUse(id="", name="f"), "ToolUse.id must not be empty"),
    (lambda: ToolUse(id="a", name="f", arguments="{").parsed_arguments(), "tool use 'a': arguments are not JSON"),
    (lambda: Image(media_type=3, data=b"x"), "Image.media_type must be a str, got int"),  # type: ignore[arg-type]
    (
        lambda: Image(media_type="image/png"),
        "Image needs exactly one of data= (inline bytes) or ref= (a blob reference)",
    ),
    (
        lambda: Image(media_type="", data=b"x"),
        "Image.media_type must name an image, such as 'image/png' ('image/*' if its type is not known), got ''",
    ),
    (lambda: Image(media_type="audio/wav", data=b"x"), "Image.media_type must name an image, such as 'image/png'"),
    (lambda: Image(media_type="image/", ref="u"), "Image.media_type must name an image, such as 'image/png'"),
    (lambda: Image(media_type="image/png ", data=b"x"), "Image.media_type must name an image, such as 'image/png'"),
    (lambda: Image(media_type="png", data=b"x"), "Image.media_type must name an image, such as 'image/png'"),
    (lambda: Image(media_type="image/png", data="x"), "Image.data must be bytes, got str"),
    (  # it said "a assistant message" (found by a newcomer)
        lambda: Message.assistant(ToolResult.of("a", "r")),
        "an assistant message cannot hold block 0 (tool_result)",
    ),
    (  # it said the JSON was "not JSON text" (found by an adversarial run)
        lambda: Message(role="user", provider_data='{"n": 1e999}'),
        "Message.provider_data holds a number the engine cannot read back (Number out of range",
    ),
    (lambda: Message(role="user", provider_data="{"), "Message.provider_data is not JSON text"),  # type: ignore[arg-type]
    (lambda: Image(media_type="image/png", ref=5), "Image.ref must be a str, got int"),  # type: ignore[arg-type]
    (lambda: ToolResult(tool_use_id=7), "ToolResult.tool_use_id must be a str, got int"),  # type: ignore[arg-type]
    (
        lambda: ToolResult(tool_use_id="a", content=[Text(text="x")]),  # type: ignore[arg-type]
        "ToolResult.content must be a tuple of Text or Image blocks",
    ),
    (
        lambda: ToolResult(tool_use_id="a", content=(ToolUse(id="b", name="f"),)),  # type: ignore[arg-type]
        "ToolResult.content must be a tuple of Text or Image blocks; block 0 is ToolUse",
    ),
    (  # it said "got tuple", though it was given a dict (found by a newcomer)
        lambda: ToolResult.of("a", {"temperature": 3}),  # type: ignore[arg-type]
        "ToolResult.content must be a tuple of Text or Image blocks; block 0 is dict (ToolResult.of takes a str "
        "or one block: json.dumps other values first)",
    ),
    (lambda: ToolResult(tool_use_id="a", is_error=1), "ToolResult.is_error must be a bool"),  # type: ignore[arg-type]
    (
        lambda: Message(role="bot"),  # type: ignore[arg-type]
        "role must be one of ['assistant', 'system', 'tool_results', 'user'], got 'bot'",
    ),
    (
        lambda: Message(role="user", blocks=[]),  # type: ignore[arg-type]
        "Message.blocks must be a tuple, got list; use the Message.user/assistant/system/tool_results constructors",
    ),
    (
        lambda: Message(role="system", blocks=(Text(text="a"), Transcript(text="b"))),
        "a system message cannot hold block 1 (transcript); allowed: text",
    ),
    (
        lambda: Message(role="user", blocks=("text",)),  # type: ignore[arg-type]
        "a user message cannot hold block 0 (str); allowed: text, transcript, image",
    ),
    (
        lambda: Message(role="tool_results", blocks=(Text(text="x"),)),
        "a tool_results message cannot hold block 0 (text); allowed: tool_result",
    ),
    (lambda: Message.tool_results(), "a tool_results message needs at least one ToolResult"),
    (lambda: Message.user("x", id=5), "Message.id must be a str, got int"),  # type: ignore[arg-type]
    (lambda: Message.user("x", provider_item_id=5), "Message.provider_item_id must be a str, got int"),  # type: ignore[arg-type]
    (lambda: Usage(output=-1), "Usage.output must be a non-negative int, got -1"),
    (lambda: Usage(cache_read=True), "Usage.cache_read must be a non-negative int, got True"),  # type: ignore[arg-type]
    (lambda: Usage(reasoning=1.5), "Usage.reasoning must be a non-negative int, got 1.5"),  # type: ignore[arg-type]
    # Found by property_tests/test_public_fuzz.py: each of these used to raise an untyped error, or to be
    # accepted and stored in a form no later load could read back.
    (
        lambda: Message(role=[]),  # type: ignore[arg-type]
        "role must be one of ['assistant', 'system', 'tool_results', 'user'], got []",
    ),
    (
        lambda: Message(role=_deep()),  # type: ignore[arg-type]
        "role must be one of ['assistant', 'system', 'tool_results', 'user'], got a list",
    ),
    (lambda: Usage(input=_deep()), "Usage.input must be a non-negative int, got a list"),  # type: ignore[arg-type]
    (lambda: Message(role="user", incomplete=1), "Message.incomplete must be a bool, got int"),  # type: ignore[arg-type]
    (
        lambda: Transcript(text="a", truncated_at_ms="5"),  # type: ignore[arg-type]
        "Transcript.truncated_at_ms must be None or a non-negative int, got '5'",
    ),
    (
        lambda: Transcript(text="a", truncated_at_ms=True),
        "Transcript.truncated_at_ms must be None or a non-negative int, got True",
    ),
    (
        lambda: Transcript(text="a", truncated_at_ms=-1),
        "Transcript.truncated_at_ms must be None or a non-negative int, got -1",
    ),
    (
        lambda: ToolUse(id="a", name="f", arguments="[" * 10_000 + "]" * 10_000).parsed_arguments(),
        "tool use 'a': arguments nest too deep to decode",
    ),
    (
        # Found by an adversarial tester: a RecursionError, and for a lone surrogate "Input data was truncated".
        lambda: Message(role="user", blocks=(Text(text="x"),), provider_data="[" * 10_000 + "]" * 10_000),
        "Message.provider_data nests too deep to decode",
    ),
    (
        lambda: Message(role="user", blocks=(Text(text="x"),), provider_data='"\ud800"'),
        "Message.provider_data is not valid Unicode: a lone surrogate ('\\ud800') at index 1",
    ),
    (
        lambda: Message(role="user", blocks=(Text(text="x"),), provider_data='{"a": "\\ud800"}'),
        "Message.provider_data escapes a lone surrogate (\\ud800) at index 7: JSON text that is no valid Unicode",
    ),
    (lambda: ReplaceBlock(index=True, block=Text(text="x")), "ReplaceBlock.index must be an int, got bool"),
    (
        lambda: ReplaceBlock(index=0, block="x"),  # type: ignore[arg-type]
        "ReplaceBlock.block must be a content block, got str",
    ),
]


def _deep(depth: int = 10_000) -> list[object]:
    """A list nested ``depth`` levels deep: it has no ``repr``."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("build", "message"), CASES, ids=[message[:40] for _, message in CASES])
def test_error_wording(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        build()
    assert str(caught.value).startswith(message)


def test_valid_edge_values_are_accepted() -> None:
    assert Message(role="user").blocks == ()
    assert Message(role="assistant", blocks=(ToolUse(id="a", name="f"),)).tool_uses[0].arguments == "{}"
    assert ToolResult(tool_use_id="a").content == () and ToolResult(tool_use_id="a").is_error is False
    assert Usage() + Usage(input=0) == Usage()
    assert Usage().__add__(3) is NotImplemented  # type: ignore[operator]
    assert Message.assistant(Transcript(text="a"), "b", Reasoning(text="c")).text == "a\nb"
    assert Message.user("a", Transcript(text="b", truncated_at_ms=5)).digest != Message.user("a", "b").digest
    for media_type in ("image/png", "IMAGE/JPEG", "image/*", "image/svg+xml", "image/vnd.microsoft.icon"):
        assert Image(media_type=media_type, data=b"x").media_type == media_type


def test_an_image_of_no_image_media_type_is_refused_and_one_stored_by_an_earlier_build_still_reads() -> None:
    """``Image(media_type="")`` used to be stored (found by an adversarial
    run); a store an earlier build wrote with one must still load."""
    from engine import Transcripts
    from engine.state.content import as_stored

    store = Transcripts.open()
    sid = store.create()
    before = store.get(sid)
    forged = Message.user(_forged(Image(media_type="image/png", data=b"x"), media_type="text/plain"))
    with pytest.raises(InvalidMessage, match=r"Image\.media_type must name an image"):
        store.append(sid, forged)
    with pytest.raises(InvalidMessage, match=r"Image\.media_type must name an image"):
        store.append(sid, Message.tool_results(ToolResult(tool_use_id="t", content=(forged.blocks[0],))))  # type: ignore[arg-type]
    assert store.get(sid) == before
    with as_stored():
        old = msgspec.json.decode(b'{"type":"image","media_type":"","data":"eA=="}', type=Image)
    assert old.media_type == "" and old.data == b"x"


def test_an_image_of_empty_data_or_ref_is_refused_and_one_stored_before_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a newcomer: ``Image(data=b"")`` and ``Image(ref="")`` were
    accepted, neither bytes nor a reference (getting-started: an image
    without data or reference raises InvalidMessage), and went out to a
    provider as ``"data": ""`` or ``"url": ""``."""
    from engine import Transcripts
    from engine.state import content
    from engine.state.content import as_stored

    with pytest.raises(InvalidMessage, match=r"^Image\.data is empty: give the image's bytes, or ref="):
        Image(media_type="image/png", data=b"")
    with pytest.raises(InvalidMessage, match=r"^Image\.ref is empty: give the image's URL or blob reference"):
        Image(media_type="image/*", ref="")
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        sid = store.create()
        before = store.get(sid)
        forged = _forged(Image(media_type="image/png", data=b"x"), data=b"")
        with pytest.raises(InvalidMessage, match=r"Image\.data is empty"):
            store.append(sid, Message.user("look", forged))  # type: ignore[arg-type]
        assert store.get(sid) == before
        with as_stored():  # as a store written before empty images were refused holds one
            legacy = Message.user("look", Image(media_type="image/png", data=b""))
        monkeypatch.setattr(content, "_require_some_image", lambda image: None)  # the engine before: no check
        store.append(sid, legacy)
        monkeypatch.undo()
    with Transcripts.open(path) as store:
        assert store.verify(sid).messages[0].blocks[1] == legacy.blocks[1]


def test_content_the_store_cannot_read_back_is_refused_before_anything_is_stored() -> None:
    """A non-bool ``incomplete`` or a non-int truncation point used to be
    appended, after which the session no longer loaded (``CorruptStore``)."""
    from engine import Transcripts

    store = Transcripts.open()
    sid = store.create()
    for build in (
        lambda: Message(role="user", incomplete="yes"),  # type: ignore[arg-type]
        lambda: Message.assistant(Transcript(text="a", truncated_at_ms=1.5)),
    ):  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage):
            store.append(sid, build())
    store.append(sid, Message.assistant(Transcript(text="a", truncated_at_ms=0)))
    assert store.verify(sid).messages[0].blocks[0] == Transcript(text="a", truncated_at_ms=0)


def _forged(message: Message, **fields: object) -> Message:
    for name, value in fields.items():
        msgspec.structs.force_setattr(message, name, value)
    return message


class _Unchecked(Message):
    def __post_init__(self) -> None:  # replaces every check of Message
        pass


class _ShortTuple(tuple):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("with_id", [False, True])
def test_a_message_changed_or_subclassed_past_its_checks_is_refused_and_nothing_is_written(with_id: bool) -> None:
    # Found by an adversarial run: such messages were stored (those with an
    # id always, those without since the ids stopped being set through
    # replace), and the session no longer loaded once the store was reopened.
    from engine import Transcripts

    ident = {"id": "given"} if with_id else {}
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("kept"))
    before = store.get(sid)
    bad = [
        _forged(Message.user("x", **ident), incomplete=1),
        _forged(Message.user("x", **ident), provider_data="{not json"),
        _forged(Message.user("x", **ident), blocks=[Text(text="a list")]),
        _forged(Message.user("x", **ident), role="bogus"),
        _forged(Message.user("x", **ident), blocks=(_forged(Text(text="t"), text=5),)),
        Message.tool_results(_forged(ToolResult.of("t", "r"), content=(_forged(Text(text="p"), text=b"b"),)), **ident),
        _Unchecked(role="user", blocks=(Text(text="x"),), **ident),
    ]
    for message in bad:
        with pytest.raises(InvalidMessage):
            store.append(sid, message)
        with pytest.raises(InvalidMessage):
            store.rewrite(sid, 0, 1, [message])
    assert store.get(sid) == before and store.verify(sid) == before


def test_each_message_of_a_call_gets_an_id_of_its_own_whatever_its_sequence_says_of_its_length() -> None:
    # Found by an adversarial run: ids were cut from random bytes sized by
    # len(), and messages past a lying __len__ all got the id "msg_".
    from engine import Transcripts

    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("placeholder"))
    store.rewrite(sid, 0, 1, _ShortTuple([Message.user("one"), Message.assistant("two")]))
    ids = [message.id for message in store.get(sid).messages]
    assert len(set(ids)) == 2 and all(len(ident or "") == 24 for ident in ids)


def test_a_list_given_to_append_says_to_pass_each_message_as_an_argument() -> None:
    # A newcomer passed the list of messages they had built, and was told to build them.
    from engine import Transcripts

    store = Transcripts.open()
    sid = store.create()
    hint = r"append\(\) messages\[0\] is a list, not a Message; append\(\) takes each message as an argument of its own"
    with pytest.raises(InvalidMessage, match=hint):
        store.append(sid, [Message.user("a"), Message.user("b")])  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match=r"messages\[0\] is a int, not a Message; build one with Message\.user"):
        store.append(sid, 5)  # type: ignore[arg-type]
    assert store.get(sid).messages == ()


@pytest.mark.parametrize("unordered", [set, frozenset, dict.fromkeys])
def test_an_unordered_collection_of_messages_is_refused(unordered: Callable[..., object]) -> None:
    from engine import Transcripts

    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("kept"))
    with pytest.raises(InvalidMessage, match=r"takes a list of messages, got .* \(its order is not kept\)"):
        store.rewrite(sid, 0, 1, unordered([Message.user("a"), Message.user("b")]))  # type: ignore[arg-type]
    assert [message.text for message in store.get(sid).messages] == ["kept"]


def test_incomplete_is_part_of_the_canonical_content() -> None:
    marked = msgspec.structs.replace(Message.assistant("x"), incomplete=True)
    assert marked.canonical_bytes() == b'{"blocks":[{"text":"x","type":"text"}],"incomplete":true,"role":"assistant"}'


def test_a_sequence_flattens_when_it_has_too_many_pieces() -> None:
    seq = MessageSeq()
    messages = [Message.user(str(n)) for n in range(MAX_PIECES + 5)]
    for index, message in enumerate(messages):
        seq = seq.prefix(index).extended([message]) if index % 2 else seq.extended([message])
        shadow = seq.extended([Message.user("other branch")])  # forces the next extension to copy
        assert list(shadow)[-1].text == "other branch"
    assert seq.piece_count <= MAX_PIECES
    assert list(seq) == messages
    from engine.state.revisions import revision_of

    assert seq.revision_at(len(seq)) == bytes.fromhex(revision_of(messages)[7:])


def test_errors_name_given_and_stored_messages_by_their_index_from_zero() -> None:
    # Found by a newcomer: argument errors counted the messages given from 1
    # ("message 1" was the first), shape errors and the session's messages
    # from 0, sometimes in one sentence. Every error now counts from 0, and
    # names a message given by its argument: append()'s messages[i].
    from engine import Transcripts

    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("hello", id="greeting"), Message.assistant("hi"))
    echo = Message(role="user", blocks=(Text(text="again"),), provider_item_id="greeting")
    stated = r"append\(\) messages\[1\] has the provider item id 'greeting', which is the id of the session's message 0"
    with pytest.raises(InvalidMessage, match=stated):
        store.append(sid, Message.user("fine"), echo)
    with pytest.raises(InvalidMessage, match=r"rewrite\(\) replacement\[1\] is a str, not a Message"):
        store.rewrite(sid, 0, 1, [Message.user("a"), "b"], "edit")  # type: ignore[list-item]
    with pytest.raises(InvalidMessage, match=r"add_tool_results\(\) results\[0\] is a str, not a ToolResult"):
        store.add_tool_results(sid, "done")  # type: ignore[arg-type]
    assert [m.text for m in store.get(sid).messages] == ["hello", "hi"]
