"""One set of shape rules: what ``append`` accepts, the forks, restores and
rewrites accept next to it.

Random appends (text, tool uses, results for the right, wrong or no ids) are
applied; a refused append must change nothing. Then, on every transcript
reached: a fork at every index that does not split a tool use from its
results succeeds (and every index that does is refused), a fork replacing
any message by one of the same shape succeeds, every message can be
rewritten by one of the same shape, and every revision reached can be
restored.

Expected outcomes come from the rules as written in the docs, checked here
on plain lists, never from the engine's answers.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine import (
    InvalidForkPoint,
    InvalidTranscriptShape,
    Message,
    NoOpRewrite,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
)


def _well_formed(messages: list[Message]) -> bool:
    """The rule, on a plain list: tool uses are followed by exactly their
    results (unless last); results follow exactly the uses they answer, or,
    as the last message, some of them."""
    for index, message in enumerate(messages):
        previous = messages[index - 1] if index else None
        if message.role == "tool_results":
            made = sorted(use.id for use in previous.tool_uses) if previous is not None else []
            answered = [block.tool_use_id for block in message.blocks if isinstance(block, ToolResult)]
            if not made or len(set(answered)) != len(answered):
                return False
            last = index == len(messages) - 1  # may answer some of the uses, the others to come
            if sorted(answered) != made and not (last and answered and set(answered) < set(made)):
                return False
        elif message.tool_uses and index + 1 < len(messages) and messages[index + 1].role != "tool_results":
            return False
    return True


@st.composite
def appends(draw: st.DrawFn) -> list[list[Message]]:
    """Batches of messages: text, tool uses and results, some well paired,
    some not (results for unknown ids, missing results, results first)."""
    batches = []
    calls = 0
    for _ in range(draw(st.integers(1, 8))):
        batch = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["user", "assistant", "calls", "results", "stray results"]))
            if kind == "user":
                batch.append(Message.user(f"u{calls}"))
            elif kind == "assistant":
                batch.append(Message.assistant(f"a{calls}"))
            elif kind == "calls":
                uses = [ToolUse(id=f"c{calls + n}", name="f") for n in range(draw(st.integers(1, 2)))]
                calls += len(uses)
                batch.append(Message.assistant(*uses))
            elif kind == "results":  # answers the most recent calls by number
                count = draw(st.integers(1, 2))
                batch.append(Message.tool_results(*[ToolResult.of(f"c{calls - n - 1}", "ok") for n in range(count)]))
            else:
                batch.append(Message.tool_results(ToolResult.of("c_unknown", "?")))
        batches.append(batch)
    return batches


def _same_shape(message: Message, text: str) -> Message:
    if message.role == "tool_results":
        return Message.tool_results(
            *[ToolResult.of(block.tool_use_id, text) for block in message.blocks if isinstance(block, ToolResult)]
        )
    if message.tool_uses:
        return Message.assistant(text, *message.tool_uses)
    return Message(role=message.role, blocks=(Text(text=text),))


@given(appends())
def test_every_transcript_built_by_appends_can_be_forked_restored_and_rewritten(batches: list[list[Message]]) -> None:
    store = Transcripts.open()
    sid = store.create()
    accepted: list[Message] = []
    revisions = [store.get(sid).revision]
    for batch in batches:
        expected_ok = _well_formed(accepted + batch)
        before = store.get(sid)
        try:
            revisions.append(store.append(sid, *batch))
        except InvalidTranscriptShape:
            assert not expected_ok, f"a well-formed append was refused: {batch}"
            assert store.get(sid) == before, "a refused append changed the session"
            continue
        assert expected_ok, f"a malformed append was accepted: {batch}"
        accepted += batch
    messages = store.get(sid).messages
    assert [m.canonical_bytes() for m in messages] == [m.canonical_bytes() for m in accepted]

    for index in range(len(messages) + 1):
        splits = 0 < index < len(messages) and bool(messages[index - 1].tool_uses)
        try:
            child = store.fork_at(sid, index)
        except InvalidForkPoint:
            assert splits, f"fork_at({index}) was refused but splits nothing"
            continue
        assert not splits, f"fork_at({index}) split a tool use from its results"
        assert len(store.get(child).messages) == index

    for index, message in enumerate(messages):
        edited = _same_shape(message, f"edited {index}")
        child = store.fork_replacing(sid, index, edited)
        assert store.get(child).messages[index].canonical_bytes() == edited.canonical_bytes()

    for index, message in enumerate(messages):
        store.rewrite(sid, index, index + 1, [_same_shape(message, f"rewritten {index}")], reason="edit")

    for revision in revisions:
        try:
            store.restore(sid, revision)
        except NoOpRewrite:
            assert store.get(sid).revision == revision
    store.close()
