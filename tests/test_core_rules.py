"""Rules of the pure core that the contract suite reaches only indirectly:
tool-pairing windows, the wording of corruption errors, revision parsing,
reasons, upcasting, and the O(1) guarantees that rest on cached revisions."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    CorruptStore,
    Image,
    InvalidArgument,
    InvalidRevision,
    InvalidTranscriptShape,
    Message,
    NoOpRewrite,
    Reason,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
    Usage,
)
from engine.decisions.commands import Append
from engine.state.events import (
    EVENT_TYPES,
    MessagesAppended,
    MessagesRewritten,
    SessionCreated,
    SessionForked,
    TitleChanged,
)
from engine.state.revisions import EMPTY_REVISION, EMPTY_REVISION_BYTES, parse_revision, revision_of
from engine.state.sequence import MessageSeq
from engine.state.transcript import KnownAppend, appended, check_shape, evolve, fold, forked

AT = datetime(2026, 1, 1, tzinfo=UTC)
USE = Message.assistant(ToolUse(id="t1", name="f"))
RESULT = Message.tool_results(ToolResult.of("t1", "ok"))
ORPHAN = Message.tool_results(ToolResult.of("zz", "?"))


def shape(messages: list[Message], start: int, stop: int) -> str | None:
    try:
        check_shape(messages, start, stop)
    except InvalidTranscriptShape as error:
        return str(error)
    return None


def rewritten(**fields: object) -> MessagesRewritten:
    values: dict[str, object] = {
        "at": AT,
        "start": 0,
        "end": 0,
        "messages": (Message.user("x"),),
        "parent_revision": EMPTY_REVISION,
        "revision": revision_of([Message.user("x")]),
        "reason": "edit",
        "removed_digest": EMPTY_REVISION,
        "replacement_digest": EMPTY_REVISION,
        "count_before": 0,
        "generation": 1,
    }
    values.update(fields)
    return MessagesRewritten(**values)  # type: ignore[arg-type]


def test_tool_pairing_is_checked_only_around_the_change() -> None:
    user = Message.user("u")
    # An old violation outside the window is not this change's business.
    assert shape([ORPHAN, user, user, user], 3, 4) is None
    assert shape([user, user, ORPHAN], 0, 1) is None
    assert shape([user, user, user, ORPHAN], 1, 2) is None
    # Inside the window, every rule, with where it broke.
    assert shape([RESULT, user], 0, 1) == "message 0 holds tool results, but nothing precedes it"
    assert shape([RESULT, USE], 0, 1) == "message 0 holds tool results, but nothing precedes it"
    assert shape([user, RESULT], 1, 2) == (
        "message 1 holds tool results, but message 0 is not an assistant message with tool uses"
    )
    assert shape([USE, ORPHAN], 1, 2) == (
        "message 1 answers tool uses ['zz'], but message 0 made ['t1']; results must cover exactly those ids, once "
        "each (the last message may answer some of them, the others to come)"
    )
    twice = Message.tool_results(ToolResult.of("t1", "a"), ToolResult.of("t1", "b"))
    assert shape([Message.assistant(ToolUse(id="t1", name="f"), ToolUse(id="t2", name="g")), twice], 1, 2)
    assert shape([USE, user], 0, 1) == (  # how to answer them: found by a newcomer stuck on a realtime session
        "message 0 makes tool uses, but message 1 is a user message, not their tool_results. To answer calls that "
        "were abandoned (a realtime call the user talked over), put their results in first: rewrite(sid, 1, 1, "
        "[Message.tool_results(ToolResult.of(call_id, 'abandoned', is_error=True), ...)])"
    )
    assert shape([user, USE], 1, 2) is None  # a pending tool use at the end
    # Found by a newcomer's run: two tool uses with one id were stored, and no
    # later message could answer them, so every append was refused after.
    same = Message.assistant(ToolUse(id="t1", name="f"), ToolUse(id="t1", name="g"))
    assert shape([user, same], 1, 2) == (
        "message 1 makes more than one tool use with the id 't1'; each tool use needs an id of its own, "
        "which its result names"
    )
    assert shape([same, user, user], 2, 3) is None  # an old one, outside the change
    with Transcripts.open() as store:
        sid = store.create()
        with pytest.raises(InvalidTranscriptShape, match="more than one tool use with the id 't1'"):
            store.append(sid, same)
        assert store.get(sid).messages == () and store.get(sid).version == 1
    assert shape([user, USE, RESULT], 1, 3) is None
    # The last message may answer some of the uses (the others pending); no other may.
    both = Message.assistant(ToolUse(id="t1", name="f"), ToolUse(id="t2", name="g"))
    assert shape([both, RESULT], 1, 2) is None
    # Found by a newcomer: a message after results that answer the calls in
    # part was refused in terms of the results, not of the call left
    # unanswered and how to answer it.
    assert shape([both, RESULT, user], 2, 3) == (
        "call 't2' of message 0 is still unanswered (message 1 answers only ['t1']), and this would put a user "
        "message (message 2) after it, where its result must come first. Add its result first: "
        "add_tool_results(sid, ToolResult.of('t2', ...)) (is_error=True for a call that was abandoned)"
    )
    three = Message.assistant(*(ToolUse(id=f"t{n}", name="f") for n in (1, 2, 3)))
    assert shape([three, RESULT, Message.assistant("done")], 2, 3) == (
        "calls 't2', 't3' of message 0 are still unanswered (message 1 answers only ['t1']), and this would put an "
        "assistant message (message 2) after them, where their results must come first. Add their results first: "
        "add_tool_results(sid, ToolResult.of('t2', ...), ToolResult.of('t3', ...)) (is_error=True for a call that "
        "was abandoned)"
    )
    # Where the change is the results themselves, they must answer every call.
    assert shape([both, RESULT, user], 1, 2) == (
        "message 1 answers tool uses ['t1'], but message 0 made ['t1', 't2']; results must cover exactly those ids, "
        "once each (the last message may answer some of them, the others to come)"
    )
    # Found by a newcomer: the rest of the results appended as a message of their own.
    rest = Message.tool_results(ToolResult.of("t2", "b"))
    assert shape([both, RESULT, rest], 2, 3) == (
        "message 1 answers tool uses ['t1'], but message 0 made ['t1', 't2']; results must cover exactly those ids, "
        "once each (the last message may answer some of them, the others to come). To add the other results, "
        "rewrite message 1 with all of them (rewrite(sid, 1, 2, [Message.tool_results(...)])) instead of appending "
        "another tool_results message"
    )


def test_a_message_appended_before_the_last_result_names_the_call_still_unanswered() -> None:
    # Found by a newcomer: after add_tool_results answered call a of a and b,
    # appending a user message said "message 2 answers tool uses ['a'], but
    # message 1 made ['a', 'b']", not that b is unanswered and how to answer it.
    with Transcripts.open() as store:
        sid = store.create()
        store.append(sid, Message.user("q"), Message.assistant(ToolUse(id="a", name="f"), ToolUse(id="b", name="g")))
        store.add_tool_results(sid, ToolResult.of("a", "1"))
        before = store.get(sid)
        with pytest.raises(InvalidTranscriptShape) as refused:
            store.append(sid, Message.user("next"))
        assert str(refused.value).startswith(
            "call 'b' of message 1 is still unanswered (message 2 answers only ['a']), and this would put a user "
            "message (message 3) after it, where its result must come first. Add its result first: "
            "add_tool_results(sid, ToolResult.of('b', ...))"
        )
        assert store.get(sid) == before
        store.add_tool_results(sid, ToolResult.of("b", "2"))  # as the error says
        store.append(sid, Message.user("next"))
        assert [m.role for m in store.get(sid).messages] == ["user", "assistant", "tool_results", "user"]


def test_corruption_errors_say_where() -> None:
    created = evolve(None, "s", 1, SessionCreated(at=AT))
    with pytest.raises(CorruptStore, match=r"session 's': version 1 is a TitleChanged; a history starts with"):
        evolve(None, "s", 1, TitleChanged(at=AT, title="t"))
    with pytest.raises(CorruptStore, match=r"session 's': expected version 2, got 3"):
        fold("s", [(3, TitleChanged(at=AT, title="t"))], start=created)
    with pytest.raises(CorruptStore, match=r"session 's': SessionCreated again at version 2"):
        fold("s", [(2, SessionCreated(at=AT))], start=created)
    with pytest.raises(CorruptStore, match=r"session 's' version 2: the rewrite's parent is sha256:1111"):
        fold("s", [(2, rewritten(parent_revision="sha256:" + "1" * 64))], start=created)
    with pytest.raises(CorruptStore, match=r"version 2: rewrite range \[0, 3\) is outside the transcript"):
        fold("s", [(2, rewritten(end=3, messages=()))], start=created)
    with pytest.raises(CorruptStore, match=r"session 's': version 2 is commit 5, expected 1"):
        fold("s", [(2, rewritten(generation=5))], start=created)
    lie = rewritten(revision="sha256:" + "2" * 64)
    with pytest.raises(CorruptStore, match=r"records revision sha256:2222.*but its messages chain to sha256:"):
        fold("s", [(2, lie)], start=created)
    # Trusted (a snapshot vouches for it): the recorded revision is taken as is.
    trusted = fold("s", [(2, lie)], start=created, verify=False)
    assert trusted is not None and trusted.revision == "sha256:" + "2" * 64 and trusted.generation == 1
    assert fold("s", []) is None and fold("s", [], start=created) is created


def test_a_verified_rewrite_keeps_every_revision_of_its_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = Message.user("a"), Message.user("b"), Message.user("c")
    created = evolve(None, "s", 1, SessionCreated(at=AT))
    state = fold("s", [(2, MessagesAppended(at=AT, messages=(a, b), revision=revision_of([a, b])))], start=created)
    assert state is not None
    event = rewritten(
        start=0,
        end=1,
        messages=(c,),
        parent_revision=state.revision,
        revision=revision_of([c, b]),
        count_before=2,
        generation=2,
    )
    after = fold("s", [(3, event)], start=state)
    assert after is not None and list(after.messages) == [c, b]
    expected = [parse_revision(revision_of([c])), parse_revision(revision_of([c, b]))]
    monkeypatch.setattr(Message, "digest_bytes", lambda self: pytest.fail("re-hashed a known revision"))
    assert [after.messages.revision_at(1), after.messages.revision_at(2)] == expected


def test_forks_check_their_source_and_keep_its_revisions() -> None:
    source = fold(
        "src",
        [
            (1, SessionCreated(at=AT, title="T", metadata={"k": 1})),
            (
                2,
                MessagesAppended(
                    at=AT,
                    messages=(Message.user("a"), Message.user("b")),
                    revision=revision_of([Message.user("a"), Message.user("b")]),
                ),
            ),
        ],
    )
    assert source is not None
    event = SessionForked(
        at=AT, source="src", source_version=2, index=1, revision=revision_of([Message.user("a")]), root="src", depth=1
    )
    child = forked("kid", event, source)
    assert (child.id, child.title, dict(child.metadata), child.version) == ("kid", "T", {"k": 1}, 1)
    assert child.messages.revision_at(1) == parse_revision(event.revision)
    with pytest.raises(CorruptStore, match=r"session 'kid' forks 'src' at version 3, but was given version 2"):
        forked(
            "kid",
            SessionForked(at=AT, source="src", source_version=3, revision=EMPTY_REVISION, root="src", depth=1),
            source,
        )
    with pytest.raises(CorruptStore, match=r"session 'kid' forks 'src' at index 5, out of range"):
        forked(
            "kid",
            SessionForked(at=AT, source="src", source_version=2, index=5, revision=EMPTY_REVISION, root="src", depth=1),
            source,
        )
    with pytest.raises(CorruptStore, match=r"the fork records revision sha256:3333.*but its messages give"):
        forked(
            "kid",
            SessionForked(at=AT, source="src", source_version=2, revision="sha256:" + "3" * 64, root="src", depth=1),
            source,
        )
    whole = forked(
        "kid",
        SessionForked(at=AT, source="src", source_version=2, revision=source.revision, root="src", depth=1),
        source,
    )
    assert whole.revision is source.revision and whole._revision_bytes is source._revision_bytes
    edited = forked(
        "kid",
        SessionForked(
            at=AT,
            source="src",
            source_version=2,
            index=1,
            replacement=Message.user("z"),
            revision=revision_of([Message.user("a"), Message.user("z")]),
            root="src",
            depth=1,
        ),
        source,
    )
    assert [m.text for m in edited.messages] == ["a", "z"]


def test_appends_and_forks_never_rehash_what_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, *[Message.user(str(n)) for n in range(40)])
    store.append(sid, Message.assistant("one more"))
    calls = []
    original = Message.digest_bytes
    monkeypatch.setattr(Message, "digest_bytes", lambda self: calls.append(1) or original(self))
    for index in (0, 7, 20, 39, 41):  # inside a batch, at its edges, at the end
        store.fork_at(sid, index)
    store.fork(sid)
    store.fork_replacing(sid, 5, Message.user("edited"))
    assert len(calls) == 1, "a fork re-hashed known messages"  # only the replacement is hashed


def test_fold_uses_known_revisions_for_built_events(monkeypatch: pytest.MonkeyPatch) -> None:
    batch1, batch2 = [Message.user("a"), Message.user("b")], [Message.user("c")]
    revs1 = [parse_revision(revision_of(batch1[:1])), parse_revision(revision_of(batch1))]
    revs2 = [parse_revision(revision_of(batch1 + batch2))]
    start = evolve(None, "s", 1, SessionCreated(at=AT))
    events = [
        (2, MessagesAppended(at=AT, messages=tuple(batch1), revision=revision_of(batch1))),
        (3, MessagesAppended(at=AT, messages=tuple(batch2), revision=revision_of(batch1 + batch2))),
    ]
    state = fold("s", events, start=start, verify=False, known={2: revs1, 3: revs2})
    verified = fold("s", events, start=start)
    assert state is not None and verified is not None
    monkeypatch.setattr(Message, "digest_bytes", lambda self: pytest.fail("re-hashed a known revision"))
    assert [state.messages.revision_at(n) for n in (1, 2, 3)] == [*revs1, *revs2]
    assert [verified.messages.revision_at(n) for n in (1, 2, 3)] == [*revs1, *revs2]


def test_the_append_step_is_the_fold_of_its_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-call append builds the next state directly; it must be what a
    # replay of the same event gives, field for field and revision for revision.
    batch = [Message.user("a"), Message.assistant("b")]
    start = evolve(None, "s", 1, SessionCreated(at=AT, title="t", metadata={"k": 1}))
    start = fold(
        "s",
        [(2, MessagesAppended(at=AT, messages=(Message.system("s"),), revision=revision_of([Message.system("s")])))],
        start=start,
    )
    assert start is not None
    later = datetime(2026, 3, 1, tzinfo=UTC)
    revisions = [parse_revision(revision_of([Message.system("s"), *batch[: n + 1]])) for n in range(2)]
    event = MessagesAppended(at=later, messages=tuple(batch), revision=revision_of([Message.system("s"), *batch]))
    built = appended(start, event, revisions)
    replayed = fold("s", [(3, event)], start=start)
    assert replayed is not None
    assert built == replayed
    assert (built.version, built.generation, built.updated_at, built.title) == (3, 2, later, "t")
    assert built._revision_bytes == replayed._revision_bytes == revisions[-1]
    monkeypatch.setattr(Message, "digest_bytes", lambda self: pytest.fail("re-hashed a known revision"))
    assert [built.messages.revision_at(n) for n in (2, 3)] == revisions


def test_revision_ids_are_parsed_strictly() -> None:
    assert parse_revision(EMPTY_REVISION) == EMPTY_REVISION_BYTES
    with pytest.raises(InvalidRevision, match=r"a revision id looks like 'sha256:' followed by 64 hex digits, got 'x'"):
        parse_revision("x")
    with pytest.raises(InvalidRevision):
        parse_revision("sha512:" + "0" * 64)  # the right length, the wrong prefix
    with pytest.raises(InvalidRevision, match=r"revision 'sha256:xx.*' has non-hex digits"):
        parse_revision("sha256:" + "x" * 64)


def test_reasons() -> None:
    assert Reason.of("edit") == Reason(kind="edit")
    assert Reason.of(Reason(kind="compaction", note="n")) == Reason(kind="compaction", note="n")
    assert Reason.of("redaction", "why") == Reason(kind="redaction", note="why")
    with pytest.raises(InvalidArgument, match="give the note inside the Reason or as note=, not both"):
        Reason.of(Reason(kind="edit", note="a"), "b")
    with pytest.raises(InvalidArgument, match=r"reason must be a kind such as 'edit' or 'compaction'.*got 'Edit'"):
        Reason.of("Edit")
    with pytest.raises(InvalidArgument, match="note must be a str or None, got int"):
        Reason.of("edit", 3)


def test_constructors_keep_ids_and_blocks() -> None:
    assert Message.system("s", id="m1").id == "m1"
    assistant = Message.assistant("a", id="m2", provider_item_id="item_2")
    assert (assistant.id, assistant.provider_item_id) == ("m2", "item_2")
    user = Message.user("u", id="m3", provider_item_id="item_3")
    assert (user.id, user.provider_item_id) == ("m3", "item_3")
    assert Message.tool_results(ToolResult.of("t", "r"), id="m4").id == "m4"
    image = Image(media_type="image/png", ref="blob:1")
    assert ToolResult.of("t", image).content == (image,)
    assert ToolResult.of("t", "text", is_error=True) == ToolResult(
        tool_use_id="t", content=(Text(text="text"),), is_error=True
    )


def test_an_append_gives_each_message_without_an_id_its_own() -> None:
    given = Message.user("kept", id="mine")
    plain = [Message.user(f"m{i}") for i in range(50)]
    with Transcripts.open() as store:
        sid = store.create()
        store.append(sid, plain[0], given, *plain[1:])
        store.append(sid, *(Message.assistant(f"a{i}") for i in range(3)))
        messages = store.get(sid).messages
    ids = [message.id for message in messages]
    assert ids[1] == "mine"
    made = ids[:1] + ids[2:]
    assert len(made) == 53 and len(set(made)) == 53
    assert all(re.fullmatch(r"msg_[0-9a-f]{20}", ident or "") for ident in made)
    # Only the id was added: everything else is the message as given.
    assert [message.text for message in messages] == ["m0", "kept", *(f"m{i}" for i in range(1, 50)), "a0", "a1", "a2"]
    assert plain[0].id is None  # the caller's message is not changed
    # A command built from a generator takes every message it yields; they
    # are named when the append is decided, after the revision each reaches.
    built = Append.of(Message.user(f"g{i}") for i in range(3)).messages
    assert [m.text for m in built] == ["g0", "g1", "g2"] and [m.id for m in built] == [None] * 3


def test_the_v1_usage_upcaster() -> None:
    upcast = EVENT_TYPES["UsageRecorded"].upcasters[1]
    assert upcast({"kind": "usage_recorded", "at": "x", "input_tokens": 3, "output_tokens": 4}) == {
        "kind": "usage_recorded",
        "at": "x",
        "usage": {"input": 3, "output": 4},
    }
    assert upcast({"kind": "usage_recorded", "at": "x"}) == {
        "kind": "usage_recorded",
        "at": "x",
        "usage": {"input": 0, "output": 0},
    }
    assert Usage(input=3) + Usage(output=4) == Usage(input=3, output=4)


def test_a_sequence_built_from_messages() -> None:
    messages = [Message.user("a"), Message.user("b")]
    seq = MessageSeq(messages)
    assert list(seq) == messages and len(seq) == 2 and seq.piece_count == 1
    assert seq.revision_at(2) == parse_revision(revision_of(messages))
    assert MessageSeq().piece_count == 0 and list(MessageSeq()) == []
    assert seq[-1] is messages[1] and seq[0:1] == (messages[0],) and seq[::-1] == tuple(reversed(messages))
    with pytest.raises(IndexError):
        seq[2]
    with pytest.raises(IndexError):
        seq.revision_at(3)


def test_a_malformed_recorded_revision_is_corruption_on_the_trusted_path() -> None:
    created = evolve(None, "s", 1, SessionCreated(at=AT))
    for bad in ("sha256:zz", "sha256:" + "0" * 62, "md5:" + "0" * 64):
        event = MessagesAppended(at=AT, messages=(Message.user("x"),), revision=bad)
        with pytest.raises(CorruptStore, match=r"session 's' version 2: malformed revision"):
            fold("s", [(2, event)], start=created, verify=False)


def test_recorded_revision_ids_are_parsed_when_first_needed() -> None:
    a, b = Message.user("a"), Message.user("b")
    seq = MessageSeq().extended([a, b], [None, revision_of([a, b])])  # as a cold load keeps them
    assert seq.revision_at(2) == parse_revision(revision_of([a, b]))
    assert seq.revision_at(1) == parse_revision(revision_of([a]))
    for bad in ("sha256:" + "g" * 64, "sha256:" + "0" * 60, "sha512:" + "0" * 64, "x"):
        broken = MessageSeq().extended([a], [bad])
        with pytest.raises(CorruptStore, match="a recorded revision: malformed revision"):
            broken.revision_at(1)


def test_a_trusted_append_then_a_rewrite() -> None:
    a, b, c = Message.user("a"), Message.user("b"), Message.user("c")
    created = evolve(None, "s", 1, SessionCreated(at=AT))
    appended = MessagesAppended(at=AT, messages=(a, b), revision=revision_of([a, b]))
    rewrite = rewritten(
        start=1,
        end=2,
        messages=(c,),
        parent_revision=revision_of([a, b]),
        revision=revision_of([a, c]),
        count_before=2,
        generation=2,
    )
    state = fold("s", [(2, appended), (3, rewrite)], start=created, verify=False)
    assert state is not None and list(state.messages) == [a, c]
    assert state._revision_bytes == parse_revision(revision_of([a, c]))
    only_append = fold("s", [(2, appended)], start=created, verify=False)
    assert only_append is not None and only_append._revision_bytes == parse_revision(revision_of([a, b]))
    assert only_append.messages.revision_at(2) == parse_revision(revision_of([a, b]))
    bad = MessagesAppended(at=AT, messages=(a,), revision="sha256:" + "z" * 64)
    with pytest.raises(CorruptStore, match=r"session 's' version 2: malformed revision 'sha256:zzz"):
        fold("s", [(2, bad), (3, rewrite)], start=created, verify=False)


def test_a_view_never_reads_past_its_own_length() -> None:
    messages = [Message.user(str(n)) for n in range(6)]
    longer = MessageSeq().extended(messages)
    shorter = longer.prefix(3)  # shares the buffer, which holds six
    with pytest.raises(IndexError, match="message index out of range"):
        shorter[3]
    with pytest.raises(IndexError, match=r"no prefix of length 4 in a sequence of 3"):
        shorter.revision_at(4)
    assert list(shorter[1:]) == messages[1:3]
    # Three pieces: slices and iteration cross every boundary.
    branch = longer.prefix(2).extended([Message.user("b1")]).extended([Message.user("b2")])
    three = branch.prefix(3).extended([Message.user("c1")])
    three = three.prefix(4)
    other = three.extended([Message.user("d1")])
    three.extended([Message.user("d2")])  # makes `other`'s tail a separate piece when extended again
    combined = other.extended([Message.user("e1")])
    expected = [*messages[:2], Message.user("b1"), Message.user("c1"), Message.user("d1"), Message.user("e1")]
    assert list(combined) == expected and combined.piece_count >= 3
    for start in range(len(expected) + 1):
        for stop in range(start, len(expected) + 1):
            assert list(combined[start:stop]) == expected[start:stop]


_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.sampled_from(["system", "user", "assistant"]), st.text(max_size=20)),
        st.tuples(st.just("two"), st.just("user"), st.text(max_size=5)),
        st.tuples(st.just("actor"), st.just("assistant"), st.text(max_size=5)),
        st.tuples(st.just("rewrite"), st.just("user"), st.text(max_size=5)),
        # Titles are text columns, which cannot hold NUL (refused on every backend).
        st.tuples(st.just("title"), st.just(""), st.text(st.characters(exclude_characters="\x00"), max_size=5)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_OPERATIONS)
def test_a_load_folds_one_text_message_as_the_event_it_stands_for(operations: list[tuple[str, str, str]]) -> None:
    """A load decodes an append of one text message as a KnownAppend
    (message, raw revision, time): folded, trusted or verified, it gives
    the state its MessagesAppended gives, every prefix revision included."""
    from engine.store import decode_events, decode_for_load

    with Transcripts.open() as store:
        sid = store.create()
        for kind, role, text in operations:
            if kind == "title":
                store.set_title(sid, text or None)
                continue
            message = Message(role=role, blocks=(Text(text=text),))  # type: ignore[arg-type]
            if kind == "text":
                store.append(sid, message)
            elif kind == "two":
                store.append(sid, message, Message.assistant(text))
            elif kind == "actor":
                store.append(sid, message, actor="agent")
            elif kind == "rewrite" and store.get(sid).messages:
                with contextlib.suppress(NoOpRewrite):  # the same message again
                    store.rewrite(sid, 0, 1, [message], "edit")
        records = store._repository.backend.read(sid)
        expected = store.verify(sid)
    events = decode_events(sid, records)
    known = decode_for_load(sid, records)
    texts = sum(1 for kind, *_ in operations if kind == "text")
    assert sum(isinstance(event, KnownAppend) for _, event in known) == texts
    for verify in (True, False):
        from_events = fold(sid, events, verify=verify)
        from_known = fold(sid, known, verify=verify)
        assert from_events is not None and from_known is not None
        for state in (from_events, from_known):
            assert state == expected
            assert (state.revision, state.updated_at, state.generation) == (
                expected.revision,
                expected.updated_at,
                expected.generation,
            )
            assert [state.messages.revision_at(n) for n in range(len(state.messages) + 1)] == [
                expected.messages.revision_at(n) for n in range(len(expected.messages) + 1)
            ]


def test_a_known_append_whose_revision_was_altered_is_corruption_when_verified() -> None:
    from engine.store import decode_for_load

    with Transcripts.open() as store:
        sid = store.create()
        store.append(sid, Message.user("one"))
        records = store._repository.backend.read(sid)
    events = decode_for_load(sid, records)
    version, append = events[1]
    assert isinstance(append, KnownAppend)
    altered = [events[0], (version, msgspec.structs.replace(append, revision=bytes(32)))]
    with pytest.raises(CorruptStore, match="version 2 records revision sha256:0000"):
        fold(sid, altered)
    trusted = fold(sid, altered, verify=False)  # what a snapshot vouches for is taken as it is
    assert trusted is not None and trusted.revision == "sha256:" + "00" * 32


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda state: state[:20], "too few"),  # shorter than the fixed head
        (lambda state: bytes([3]) + state[1:], "role code 3"),  # a tool_results message holds no text
        (lambda state: state[:50] + b"\xff\xfe", "decode"),  # text that is not UTF-8
        (lambda state: state.decode("latin-1"), "damaged|decode|bytes"),  # a str where bytes were stored
    ],
)
def test_a_load_decodes_damaged_text_message_bytes_as_corruption(damage: Any, said: str) -> None:
    """The load's inline decoding of one-text-message bytes hands damage to
    the general decoder, which names the record; the records around it
    decode as they would alone."""
    from engine.store import decode_events, decode_for_load

    with Transcripts.open() as store:
        sid = store.create()
        for text in ("one", "two", "three"):
            store.append(sid, Message.user(text))
        records = store._repository.backend.read(sid)
    version, topic, state = records[2]
    damaged = [*records[:2], type(records[2])(version, topic, damage(state)), *records[3:]]
    with pytest.raises(CorruptStore, match=f"session {sid!r} version 3") as raised:
        decode_for_load(sid, damaged)
    assert re.search(said, str(raised.value)), raised.value
    intact: list[Any] = [event for _, event in decode_for_load(sid, records)[1:]]
    assert [known.message.text for known in intact] == ["one", "two", "three"]
    alone: list[Any] = [event for _, event in decode_events(sid, records)[1:]]
    assert [message for event in alone for message in event.messages] == [known.message for known in intact]


def test_a_message_sequence_added_to_a_list_or_tuple_gives_one_of_those_and_stays_as_it_was() -> None:
    # Found by a newcomer: messages + [reply], the next request, was a TypeError.
    seq = MessageSeq([Message.user("a"), Message.assistant("b")])
    reply = Message.user("c")
    assert seq + [reply] == [*seq, reply] and isinstance(seq + [reply], list)  # noqa: RUF005  # concatenation is what is tested
    assert [reply] + seq == [reply, *seq] and isinstance([reply] + seq, list)  # noqa: RUF005  # concatenation is what is tested
    assert seq + (reply,) == (*seq, reply) and (reply,) + seq == (reply, *seq)  # noqa: RUF005  # concatenation is what is tested
    assert seq + seq == (*seq, *seq)
    assert len(seq) == 2  # unchanged
    with pytest.raises(TypeError):
        seq + "c"  # type: ignore[operator]
