"""Replay equivalence: batching never changes a result, a revision is a
content address, and folding events at once equals applying them one by one."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine import Message, Transcripts, Usage, revision_of
from engine.testing.strategies import messages as all_messages
from engine.testing.strategies import texts as any_texts
from engine.testing.strategies import usages as any_usages

messages = all_messages()
usages = any_usages()
titles = st.none() | any_texts(12).filter(lambda t: "\x00" not in t)


def _content(message: Message) -> bytes:
    return message.canonical_bytes()


@given(batches=st.lists(st.lists(messages, min_size=1, max_size=5), min_size=1, max_size=6))
def test_batching_never_changes_the_result(batches: list[list[Message]]) -> None:
    flat = [message for batch in batches for message in batch]
    store = Transcripts.open()
    batched, single = store.create(), store.create()
    for batch in batches:
        store.append(batched, *batch)
    for message in flat:
        store.append(single, message)
    assert store.get(batched).revision == store.get(single).revision == revision_of(flat)
    assert [_content(m) for m in store.get(batched).messages] == [_content(m) for m in store.get(single).messages]


@given(left=st.lists(messages, max_size=6), right=st.lists(messages, max_size=6))
def test_revision_is_a_content_address(left: list[Message], right: list[Message]) -> None:
    same_content = [m.canonical_bytes() for m in left] == [m.canonical_bytes() for m in right]
    assert (revision_of(left) == revision_of(right)) == same_content


@given(
    batches=st.lists(st.one_of(st.lists(messages, min_size=1, max_size=3), usages, titles), max_size=12),
    cut=st.integers(0, 12),
)
def test_folding_at_once_equals_event_by_event(batches: list[Any], cut: int) -> None:
    from datetime import UTC, datetime

    from engine.state.events import Event, MessagesAppended, SessionCreated, TitleChanged, UsageRecorded
    from engine.state.transcript import evolve, fold

    at = datetime.now(UTC)
    events: list[tuple[int, Event]] = [(1, SessionCreated(at=at))]
    so_far: list[Message] = []
    for item in batches:
        version = len(events) + 1
        if isinstance(item, list):
            so_far += item
            events.append((version, MessagesAppended(at=at, messages=tuple(item), revision=revision_of(so_far))))
        elif isinstance(item, Usage):
            events.append((version, UsageRecorded(at=at, usage=item)))
        else:
            events.append((version, TitleChanged(at=at, title=item)))
    stepwise = None
    for version, event in events:
        stepwise = evolve(stepwise, "s", version, event)
    assert fold("s", events) == stepwise
    # Folding a trusted prefix, then the rest, gives the same state.
    cut = min(cut, len(events) - 1) + 1
    prefix = fold("s", events[:cut], verify=False)
    assert fold("s", events[cut:], start=prefix) == stepwise
