"""The store against a plain reference model, on every backend.

A rule-based state machine drives create, append (any batching, with usage),
title, metadata and usage commands and cold reopens, and checks after every
step that the store equals the model: now, at every past version, at every
revision, and in the session listing.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine import Message, NoOpRewrite, Text, Transcripts, Usage, revision_of
from tests.conftest import BACKENDS, StoreFactory

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
messages = st.one_of(
    st.builds(lambda t: Message.user(t), texts),
    st.builds(lambda t: Message.assistant(t), texts),
    st.builds(lambda t: Message.system(t), texts),
)
usages = st.builds(lambda i, o: Usage(input=i, output=o), st.integers(0, 1000), st.integers(0, 1000))
titles = st.none() | texts.filter(lambda t: "\x00" not in t)  # the engine refuses NUL in titles
json_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), texts)


class ModelState:
    """One version of a session in the reference model: plain values."""

    def __init__(self, messages: list[Message], title: str | None, metadata: dict[str, Any], usage: tuple[int, int]):
        self.messages, self.title, self.metadata, self.usage = messages, title, metadata, usage

    @property
    def contents(self) -> list[tuple[str, str]]:
        return [_content(m) for m in self.messages]


def _content(message: Message) -> tuple[str, str]:
    return (message.role, message.text)


class LogMachine(RuleBasedStateMachine):
    """The whole engine against a model made of lists and dicts."""

    sessions = Bundle("sessions")
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.factory: StoreFactory | None = None
        self.store: Transcripts
        self.model: dict[str, list[ModelState]] = {}  # every version of every session

    @initialize(interval=st.sampled_from([1, 2, 5, None]))
    def open_store(self, interval: int | None) -> None:
        self.interval = interval
        self.factory = StoreFactory(self.kind, Path(tempfile.mkdtemp()), "p" + uuid.uuid4().hex[:12])
        self.store = self.factory.open(snapshot_interval=interval)

    def _head(self, sid: str) -> ModelState:
        return self.model[sid][-1]

    def _record(self, sid: str, **changes: Any) -> None:
        last = self._head(sid)
        values = {"messages": last.messages, "title": last.title, "metadata": last.metadata, "usage": last.usage}
        values.update(changes)
        self.model[sid].append(ModelState(**values))

    @rule(target=sessions, title=titles)
    def create(self, title: str | None) -> str:
        sid = self.store.create(title=title)
        self.model[sid] = [ModelState([], title, {}, (0, 0))]
        return sid

    @rule(sid=sessions, batch=st.lists(messages, min_size=1, max_size=4), usage=st.none() | usages)
    def append(self, sid: str, batch: list[Message], usage: Usage | None) -> None:
        revision = self.store.append(sid, *batch, usage=usage)
        self._record(sid, messages=self._head(sid).messages + batch)
        assert revision == revision_of(self._head(sid).messages)
        if usage is not None:
            old = self._head(sid).usage
            self._record(sid, usage=(old[0] + usage.input, old[1] + usage.output))

    @rule(sid=sessions, title=titles)
    def set_title(self, sid: str, title: str | None) -> None:
        self.store.set_title(sid, title)
        self._record(sid, title=title)

    @rule(sid=sessions, values=st.dictionaries(st.sampled_from("abc"), json_values, max_size=2),
          remove=st.lists(st.sampled_from("abc"), max_size=2))
    def update_metadata(self, sid: str, values: dict[str, Any], remove: list[str]) -> None:
        if not values and not remove:
            return
        self.store.update_metadata(sid, values, remove=remove)
        metadata = {k: v for k, v in self._head(sid).metadata.items() if k not in remove}
        metadata.update(values)
        self._record(sid, metadata=metadata)

    @rule(sid=sessions, usage=usages)
    def record_usage(self, sid: str, usage: Usage) -> None:
        self.store.record_usage(sid, usage)
        old = self._head(sid).usage
        self._record(sid, usage=(old[0] + usage.input, old[1] + usage.output))

    @rule(sid=sessions, data=st.data(), replacement=st.lists(messages, max_size=3))
    def rewrite(self, sid: str, data: st.DataObject, replacement: list[Message]) -> None:
        current = self._head(sid).messages
        start = data.draw(st.integers(0, len(current)), label="start")
        end = data.draw(st.integers(start, len(current)), label="end")
        result = current[:start] + replacement + current[end:]
        if revision_of(result) == revision_of(current):
            with pytest.raises(NoOpRewrite):
                self.store.rewrite(sid, start, end, replacement)
            return
        commit = self.store.rewrite(sid, start, end, replacement, "edit")
        assert (commit.count_before, commit.count_after) == (len(current), len(result))
        self._record(sid, messages=result)

    @rule(sid=sessions, data=st.data())
    def restore(self, sid: str, data: st.DataObject) -> None:
        version = data.draw(st.integers(1, len(self.model[sid])), label="version")
        target = self.model[sid][version - 1].messages
        if revision_of(target) == revision_of(self._head(sid).messages):
            with pytest.raises(NoOpRewrite):
                self.store.restore(sid, revision_of(target))
            return
        self.store.restore(sid, revision_of(target))
        self._record(sid, messages=list(target))

    def _forked(self, sid: str, child: str, messages: list[Message]) -> str:
        head = self._head(sid)
        self.model[child] = [ModelState(messages, head.title, dict(head.metadata), (0, 0))]
        assert self.store.lineage(child).source == sid
        return child

    @rule(target=sessions, sid=sessions)
    def fork(self, sid: str) -> str:
        return self._forked(sid, self.store.fork(sid), list(self._head(sid).messages))

    @rule(target=sessions, sid=sessions, data=st.data())
    def fork_at(self, sid: str, data: st.DataObject) -> str:
        index = data.draw(st.integers(0, len(self._head(sid).messages)), label="index")
        return self._forked(sid, self.store.fork_at(sid, index), self._head(sid).messages[:index])

    @precondition(lambda self: any(state[-1].messages for state in self.model.values()))
    @rule(target=sessions, data=st.data(), text=texts)
    def fork_replacing(self, data: st.DataObject, text: str) -> str:
        sid = data.draw(st.sampled_from([s for s, versions in self.model.items() if versions[-1].messages]))
        current = self._head(sid).messages
        index = data.draw(st.integers(0, len(current) - 1), label="index")
        role = current[index].role
        replacement = Message(role=role, blocks=(Text(text=text),))  # type: ignore[arg-type]
        child = self.store.fork_replacing(sid, index, replacement)
        return self._forked(sid, child, [*current[:index], replacement])

    @rule()
    def reopen(self) -> None:
        assert self.factory is not None
        self.store = self.factory.open(snapshot_interval=self.interval)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def time_travel(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(list(self.model)))  # creation order: ids are random
        version = data.draw(st.integers(1, len(self.model[sid])), label="version")
        self._check(self.store.get(sid, at=version), self.model[sid][version - 1], version)
        # By revision: the last version whose content had that revision.
        revision = revision_of(self.model[sid][version - 1].messages)
        by_revision = self.store.get(sid, at=revision)
        later = [v for v, state in enumerate(self.model[sid], 1) if revision_of(state.messages) == revision]
        assert by_revision.version == max(later)
        rebuilt = self.store.revision_messages(sid, revision)
        assert [_content(m) for m in rebuilt] == self.model[sid][version - 1].contents

    def _check(self, session: Any, expected: ModelState, version: int) -> None:
        assert session.version == version
        assert [_content(m) for m in session.messages] == expected.contents
        assert session.revision == revision_of(expected.messages)
        assert session.title == expected.title
        assert dict(session.metadata) == expected.metadata
        assert (session.usage.input, session.usage.output) == expected.usage

    @invariant()
    def store_equals_model(self) -> None:
        for sid, versions in self.model.items():
            self._check(self.store.get(sid), versions[-1], len(versions))
        listing = {info.id: info for info in self.store.sessions()}
        assert set(listing) == set(self.model)
        for sid, info in listing.items():
            assert (info.version, info.message_count) == (len(self.model[sid]), len(self._head(sid).messages))

    def teardown(self) -> None:
        if self.factory is not None:
            self.factory.close()
            shutil.rmtree(self.factory.path, ignore_errors=True)


# One test case per backend: memory, SQLite, and PostgreSQL when configured.
for _kind in BACKENDS:
    _machine = type(f"LogMachine_{_kind}", (LogMachine,), {"kind": _kind})
    globals()[f"TestLogMachine_{_kind}"] = _machine.TestCase


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

    from engine.events import Event, MessagesAppended, SessionCreated, TitleChanged, UsageRecorded
    from engine.transcript import evolve, fold

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
