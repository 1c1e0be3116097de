"""The whole public API against the public reference model, on every backend.

One rule-based state machine drives create, append (any batching, with
usage), title, header (status, tags, pinning, settings, outcome), metadata
and usage commands, child sessions, task lists, pending questions,
compactions, rewrite, restore, fork, fork_at,
fork_replacing, erase, delete, realtime ingestion, and cold reopens with any
snapshot interval. After every step it checks that:

* the engine equals :class:`engine.testing.ReferenceModel`, now and at every
  past version (content, title, metadata, usage, header, records), also when asked by
  revision; a status the lifecycle does not allow is refused by both;
* a revision is a content address (it is the model's independent hash);
* history is append-only: no recorded event ever changes or disappears
  (erasure removes content, never an event, its time, actor or revision);
* a realtime session holds exactly the transcript of in-order delivery.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, precondition, rule

from engine import (
    InvalidArgument,
    InvalidStatusTransition,
    Message,
    NoOpRewrite,
    SessionHasChildren,
    SessionHasForks,
    SessionNotFound,
    Task,
    Text,
    Transcripts,
    Usage,
)
from engine.state.header import STATUSES
from engine.testing import ReferenceModel, check_against_model, check_state, model_revision
from engine.testing.strategies import deliveries, realtime_conversations, texts, usages
from tests.conftest import BACKENDS, StoreFactory

simple_messages = st.one_of(
    st.builds(Message.user, texts(12)), st.builds(Message.assistant, texts(12)), st.builds(Message.system, texts(12))
)
titles = st.none() | texts(12).filter(lambda t: "\x00" not in t)
json_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), texts(8))
intervals = st.sampled_from([1, 2, 5, None])
header_changes = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(STATUSES),
        "tags": st.lists(st.sampled_from(["vip", "billing", "voice"]), unique=True, max_size=3),
        "pinned": st.booleans(),
        "model": st.none() | st.sampled_from(["gpt-5", "claude"]),
        "owner": st.none() | texts(8).filter(lambda t: "\x00" not in t),
        "outcome": st.none() | st.sampled_from(["done", "gave up"]),
    },
).filter(bool)
task_ids = st.sampled_from(["t1", "t2", "t3"])
task_states = st.sampled_from(["pending", "in_progress", "completed", "blocked", "skipped", "unknown"])
criteria = st.lists(st.sampled_from(["tested", "reviewed"]), unique=True, max_size=2)
tasks = st.builds(
    lambda id, description, status, crit, met: {
        "id": id,
        "description": description,
        "status": status,
        "notes": None,
        "criteria": crit,
        "criteria_met": met,
    },
    task_ids,
    texts(8).filter(lambda t: "\x00" not in t),
    task_states,
    criteria,
    criteria,
)
questions = st.fixed_dictionaries(
    {
        "question": st.sampled_from(["Which day?", "Go on?"]),
        "options": st.lists(st.sampled_from(["Mon", "Tue", "yes"]), unique=True, min_size=1, max_size=3),
        "allow_custom": st.booleans(),
        "tool_call_id": st.none(),  # a call id must name a tool use: tests/test_records.py
        "tool_name": st.none() | st.just("ask_user"),
    }
)


def _tasks(listed: list[dict[str, Any]] | None) -> list[Task] | None:
    if listed is None:
        return None
    return [
        Task(**{**task, "criteria": tuple(task["criteria"]), "criteria_met": tuple(task["criteria_met"])})
        for task in listed
    ]


class EngineMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.factory: StoreFactory | None = None
        self.store: Transcripts
        self.model = ReferenceModel()
        self.histories: dict[str, list[tuple[Any, ...]]] = {}
        self.voice: dict[str, list[tuple[str, str]]] = {}  # realtime session -> in-order transcript

    @initialize(interval=intervals)
    def open_store(self, interval: int | None) -> None:
        self.factory = StoreFactory(self.kind, Path(tempfile.mkdtemp()), "m" + uuid.uuid4().hex[:12])
        self.store = self.factory.open(snapshot_interval=interval)

    # -- commands ---------------------------------------------------------

    @rule(target=sessions, title=titles)
    def create(self, title: str | None) -> str:
        sid = self.store.create(title=title)
        self.model.create(sid, title)
        return sid

    @rule(sid=sessions, batch=st.lists(simple_messages, min_size=1, max_size=4), usage=st.none() | usages())
    def append(self, sid: str, batch: list[Message], usage: Usage | None) -> None:
        assert self.store.append(sid, *batch, usage=usage) == self.model.append(sid, batch, usage)

    @rule(sid=sessions, title=titles)
    def set_title(self, sid: str, title: str | None) -> None:
        self.store.set_title(sid, title)
        self.model.set_title(sid, title)

    @rule(sid=sessions, changes=header_changes)
    def set_header(self, sid: str, changes: dict[str, Any]) -> None:
        try:
            self.model.set_header(sid, changes)
        except ValueError as refused:
            expected = InvalidStatusTransition if str(refused) == "status" else InvalidArgument
            with pytest.raises(expected):
                self.store.set_header(sid, **changes)
            return
        self.store.set_header(sid, **changes)

    @rule(
        sid=sessions,
        values=st.dictionaries(st.sampled_from("abc"), json_values, max_size=2),
        remove=st.lists(st.sampled_from("abc"), max_size=2),
    )
    def update_metadata(self, sid: str, values: dict[str, Any], remove: list[str]) -> None:
        if set(values) & set(remove):  # a key set and removed at once is refused, and nothing changes
            with pytest.raises(InvalidArgument):
                self.store.update_metadata(sid, values, remove=remove)
        elif values or remove:
            self.store.update_metadata(sid, values, remove=remove)
            self.model.update_metadata(sid, values, remove)

    @rule(sid=sessions, usage=usages())
    def record_usage(self, sid: str, usage: Usage) -> None:
        self.store.record_usage(sid, usage)
        self.model.record_usage(sid, usage)

    @rule(sid=sessions, data=st.data(), replacement=st.lists(simple_messages, max_size=3))
    def rewrite(self, sid: str, data: st.DataObject, replacement: list[Message]) -> None:
        length = len(self.model.state(sid).messages)
        start = data.draw(st.integers(0, length), label="start")
        end = data.draw(st.integers(start, length), label="end")
        try:
            expected = self.model.rewrite(sid, start, end, replacement)
        except ValueError:
            with pytest.raises(NoOpRewrite):
                self.store.rewrite(sid, start, end, replacement)
            return
        commit = self.store.rewrite(sid, start, end, replacement, "edit")
        assert commit.revision == expected
        assert commit.generation == self.model.state(sid).commits

    # -- child sessions and records ---------------------------------------------

    @rule(
        target=sessions,
        sid=sessions,
        task=st.none() | texts(8).filter(lambda t: "\x00" not in t),
        name=st.none() | st.just("researcher"),
        header=st.none() | st.just({"model": "gpt-5"}),
    )
    def spawn(self, sid: str, task: str | None, name: str | None, header: dict[str, Any] | None) -> str:
        child = self.store.spawn(sid, task=task, name=name, **(header or {}))
        self.model.spawn(sid, child, task, name, header)
        assert [c.id for c in self.store.children(sid)] == [
            c["session_id"] for c in self.model.state(sid).children if c["session_id"] in self.model.sessions
        ]
        return child

    @rule(sid=sessions, listed=st.none() | st.lists(tasks, max_size=3))
    def set_task_list(self, sid: str, listed: list[dict[str, Any]] | None) -> None:
        try:
            self.model.set_task_list(sid, listed)
        except ValueError:
            with pytest.raises(InvalidArgument):
                self.store.set_task_list(sid, _tasks(listed))
            return
        self.store.set_task_list(sid, _tasks(listed))

    @rule(sid=sessions, task_id=task_ids, status=task_states, met=criteria)
    def update_task(self, sid: str, task_id: str, status: str, met: list[str]) -> None:
        try:
            expected = self.model.update_task(sid, task_id, {"status": status, "criteria_met": met})
        except ValueError:
            with pytest.raises(InvalidArgument):
                self.store.update_task(sid, task_id, status=status, criteria_met=met)
            return
        updated = self.store.update_task(sid, task_id, status=status, criteria_met=met)
        assert (updated.status, list(updated.criteria_met)) == (expected["status"], expected["criteria_met"])

    @rule(sid=sessions, question=questions)
    def set_pending_question(self, sid: str, question: dict[str, Any]) -> None:
        asked = {**question, "options": list(question["options"])}
        self.store.set_pending_question(
            sid,
            asked["question"],
            asked["options"],
            allow_custom=asked["allow_custom"],
            tool_call_id=asked["tool_call_id"],
            tool_name=asked["tool_name"],
        )
        self.model.ask(sid, asked)

    @rule(sid=sessions, answer=st.none() | st.sampled_from(["Mon", "Wed", "yes"]))
    def clear_pending_question(self, sid: str, answer: str | None) -> None:
        try:
            self.model.clear_question(sid, answer)
        except ValueError:
            with pytest.raises(InvalidArgument):
                self.store.clear_pending_question(sid, answer=answer)
            return
        self.store.clear_pending_question(sid, answer=answer)

    @rule(
        sid=sessions,
        data=st.data(),
        summary=st.lists(simple_messages, max_size=2),
        tokens=st.none() | st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
        trigger=st.sampled_from(["auto", "manual", "overflow"]),
    )
    def compact(
        self, sid: str, data: st.DataObject, summary: list[Message], tokens: tuple[int, int] | None, trigger: str
    ) -> None:
        length = len(self.model.state(sid).messages)
        start = data.draw(st.integers(0, length), label="start")
        end = data.draw(st.integers(start, length), label="end")
        before, after = tokens if tokens is not None else (None, None)
        figures = {"trigger": trigger, "tokens_before": before, "tokens_after": after, "model": None}
        figures["latency_ms"] = None
        try:
            expected = self.model.compact(sid, start, end, summary, figures)
        except ValueError:  # nothing to compact, or no change
            with pytest.raises((NoOpRewrite, InvalidArgument)):
                self.store.compact(sid, start, end, summary, trigger=trigger, tokens_before=before, tokens_after=after)
            return
        commit = self.store.compact(sid, start, end, summary, trigger=trigger, tokens_before=before, tokens_after=after)
        assert (commit.revision, commit.reason.kind) == (expected, "compaction")
        assert commit.version == self.store.get(sid).compactions[-1].version == len(self.model.sessions[sid].versions)

    @rule(sid=sessions, data=st.data())
    def restore(self, sid: str, data: st.DataObject) -> None:
        versions = self.model.sessions[sid].versions
        target = versions[data.draw(st.integers(0, len(versions) - 1), label="version")].revision
        try:
            expected = self.model.restore(sid, target)
        except ValueError:
            with pytest.raises(NoOpRewrite):
                self.store.restore(sid, target)
            return
        assert self.store.restore(sid, target).revision == expected

    @rule(target=sessions, sid=sessions)
    def fork(self, sid: str) -> str:
        child = self.store.fork(sid)
        self.model.fork(sid, child)
        return child

    @rule(target=sessions, sid=sessions, data=st.data())
    def fork_at(self, sid: str, data: st.DataObject) -> str:
        index = data.draw(st.integers(0, len(self.model.state(sid).messages)), label="index")
        child = self.store.fork_at(sid, index)
        self.model.fork(sid, child, index)
        return child

    @precondition(lambda self: any(s.head.messages for s in self.model.sessions.values()))
    @rule(target=sessions, data=st.data(), text=texts(12))
    def fork_replacing(self, data: st.DataObject, text: str) -> str:
        sid = data.draw(st.sampled_from([s for s, m in self.model.sessions.items() if m.head.messages]))
        current = self.model.state(sid).messages
        index = data.draw(st.integers(0, len(current) - 1), label="index")
        replacement = Message(role=current[index].role, blocks=(Text(text=text),))
        child = self.store.fork_replacing(sid, index, replacement)
        self.model.fork(sid, child, index, replacement)
        return child

    @precondition(lambda self: any(s.head.messages for s in self.model.sessions.values()))
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from([s for s, m in self.model.sessions.items() if m.head.messages]))
        index = data.draw(st.integers(0, len(self.model.state(sid).messages) - 1), label="index")
        target = self.model.state(sid).messages[index]
        message_id = self.store.get(sid).messages[index].id
        assert message_id is not None
        rewritten = self.store.erase(sid, message_id)
        event("erase: " + ("again" if target.erased is not None else f"{len(rewritten)} log(s) rewritten"))
        if target.erased is not None:
            assert rewritten == []
            return
        # Which logs stored the content is the engine's answer; it must be
        # sessions that have the message, and at least one.
        assert rewritten and set(rewritten) <= self.model.holders(target, sid)
        self.model.erase(target, sid)
        for holder in rewritten:
            self.model.record_erasure(holder)

    @precondition(lambda self: len(self.model.sessions) >= 3)  # keep sessions to work on
    @rule(sid=consumes(sessions))
    def delete(self, sid: str) -> None:
        if sid not in self.model.sessions:
            return
        try:
            self.model.delete(sid)
        except KeyError:
            event("delete: refused, has children")
            with pytest.raises(SessionHasChildren):
                self.store.delete(sid)
            return
        except LookupError:
            event("delete: refused, has forks")
            with pytest.raises(SessionHasForks):
                self.store.delete(sid)
            return
        event("delete: deleted")
        assert self.store.delete(sid) == [sid]
        self.histories.pop(sid, None)
        with pytest.raises(SessionNotFound):
            self.store.get(sid)

    @rule(chains=realtime_conversations(max_turns=2), data=st.data())
    def ingest(self, chains: list[list[dict[str, Any]]], data: st.DataObject) -> None:
        in_order = [event for chain in chains for event in chain]
        oracle = Transcripts.open()
        reference = oracle.create()
        oracle.ingest_many(reference, in_order, provider="openai")
        expected = [(m.role, m.text) for m in oracle.get(reference).messages]
        sid = self.store.create(title="voice")
        delivered = data.draw(deliveries(chains), label="delivery")
        batch = data.draw(st.integers(1, 8), label="batch size")
        for start in range(0, len(delivered), batch):
            self.store.ingest_many(sid, delivered[start : start + batch], provider="openai")
        self.voice[sid] = expected

    @rule(interval=intervals)
    def reopen(self, interval: int | None) -> None:
        assert self.factory is not None
        self.store = self.factory.open(snapshot_interval=interval)

    # -- invariants ---------------------------------------------------------

    @invariant()
    def engine_equals_model(self) -> None:
        check_against_model(self.store, self.model, past=False)
        for sid, expected in self.voice.items():
            assert [(m.role, m.text) for m in self.store.get(sid).messages] == expected

    @precondition(lambda self: bool(self.model.sessions))
    @rule(data=st.data())
    def time_travel(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(list(self.model.sessions)), label="session")  # creation order
        versions = self.model.sessions[sid].versions
        version = data.draw(st.integers(1, len(versions)), label="version")
        state = versions[version - 1]
        past = self.store.get(sid, at=version)
        check_state(past, state)  # header and records included
        assert [m.canonical_bytes() for m in past.messages] == state.contents
        assert past.revision == state.revision == model_revision(state.messages)
        by_revision = self.store.get(sid, at=state.revision)
        assert by_revision.version == self.model.sessions[sid].last_version_with(state.revision)
        assert [m.canonical_bytes() for m in self.store.revision_messages(sid, state.revision)] == state.contents

    @precondition(lambda self: bool(self.model.sessions) or bool(self.voice))
    @rule(data=st.data())
    def newest_messages(self, data: st.DataObject) -> None:
        """get(last=N) is the end of the whole state, read from the records
        since the newest snapshot's checkpoint (or the whole log)."""
        sid = data.draw(st.sampled_from(list(self.model.sessions) + list(self.voice)), label="session")
        whole = self.store.get(sid)
        count = data.draw(st.integers(0, len(whole.messages) + 2), label="last")
        tail = self.store.get(sid, last=count)
        expected = list(whole.messages)[len(whole.messages) - min(count, len(whole.messages)) :]
        assert list(tail.messages) == expected
        assert (tail.version, tail.revision, tail.message_count) == (whole.version, whole.revision, len(whole.messages))
        assert tail.start == len(whole.messages) - len(expected)
        times = {entry.at for entry in self.store.history(sid)}
        source = whole.lineage.source
        while source is not None:  # inherited messages were written in the sessions forked from
            times |= {entry.at for entry in self.store.history(source)}
            source = self.store.get(source).lineage.source
        assert len(tail.written_at) == len(expected) and set(tail.written_at) <= times
        assert self.store.get(sid, last=count) == tail  # read again (kept while the head is)

    @invariant()
    def history_is_append_only(self) -> None:
        for sid in list(self.model.sessions) + list(self.voice):
            seen = self.histories.get(sid, [])
            now = [(h.version, h.kind, h.at, h.actor, h.revision) for h in self.store.history(sid)]
            assert now[: len(seen)] == seen, f"a recorded event of {sid} changed or disappeared"
            self.histories[sid] = now

    def teardown(self) -> None:
        if self.factory is not None:
            self.factory.close()
            shutil.rmtree(self.factory.path, ignore_errors=True)


# One test case per backend: memory, SQLite, and PostgreSQL when configured.
for _kind in BACKENDS:
    globals()[f"TestEngineMachine_{_kind}"] = type(f"EngineMachine_{_kind}", (EngineMachine,), {"kind": _kind}).TestCase
