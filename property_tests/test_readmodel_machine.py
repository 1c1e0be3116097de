"""The read model after any sequence of commands: a read model caught up at
random points holds what the store's own reads say, and equals one rebuilt
from nothing (appends, tool exchanges, rewrites, restores, the three forks,
titles, metadata, usage, erasure and deletion)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, precondition, rule

from engine import EngineError, Message, Transcripts, Usage
from engine.readmodel import ReadModel
from engine.testing.strategies import messages, texts, tool_exchanges, usages
from tests._readmodel import dump, expected_tables, projected_tables

words = st.sampled_from(["alpha", "beta", "gamma", "delta"])
simple = st.builds(lambda w, t: Message.user(f"{w} {t}"), words, texts(6)) | st.builds(
    lambda w: Message.assistant(w), words
)


class ReadModelMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.store = Transcripts.open()
        self.model = ReadModel(self.folder / "read.db")
        self.rebuilds = 0

    def teardown(self) -> None:
        self.check()
        self.model.close()
        self.store.close()

    @rule(target=sessions, title=st.none() | words)
    def create(self, title: str | None) -> str:
        return self.store.create(title=title, metadata={"w": title})

    @rule(sid=sessions, batch=st.lists(simple | messages(), min_size=1, max_size=3) | tool_exchanges())
    def append(self, sid: str, batch: list[Message]) -> None:
        # Refused (a session deleted, an open tool call): nothing changed.
        with contextlib.suppress(EngineError):
            self.store.append(sid, *batch)

    @rule(sid=sessions, start=st.integers(0, 6), length=st.integers(0, 2), batch=st.lists(simple, max_size=2))
    def rewrite(self, sid: str, start: int, length: int, batch: list[Message]) -> None:
        with contextlib.suppress(EngineError):
            self.store.rewrite(sid, start, start + length, batch, "compaction")

    @rule(sid=sessions, pick=st.integers(0, 100))
    def restore(self, sid: str, pick: int) -> None:
        try:
            commits = self.store.revisions(sid)
            if commits:
                self.store.restore(sid, commits[pick % len(commits)].parent_revision)
        except EngineError:
            pass

    @rule(target=sessions, sid=sessions, index=st.none() | st.integers(0, 6), edit=st.none() | simple)
    def fork(self, sid: str, index: int | None, edit: Message | None) -> str:
        try:
            if index is None:
                return self.store.fork(sid)
            if edit is None:
                return self.store.fork_at(sid, index)
            return self.store.fork_replacing(sid, index, edit)
        except EngineError:
            return sid

    @rule(sid=sessions, title=st.none() | words)
    def set_title(self, sid: str, title: str | None) -> None:
        with contextlib.suppress(EngineError):
            self.store.set_title(sid, title)

    @rule(
        sid=sessions,
        status=st.sampled_from(["active", "idle", "paused", "finished"]),
        tags=st.lists(words, unique=True, max_size=2),
    )
    def set_header(self, sid: str, status: str, tags: list[str]) -> None:
        with contextlib.suppress(EngineError):  # a move the lifecycle refuses, a deleted session
            self.store.set_header(sid, status=status, tags=tags, pinned=bool(tags))

    @rule(sid=sessions, value=words)
    def update_metadata(self, sid: str, value: str) -> None:
        with contextlib.suppress(EngineError):
            self.store.update_metadata(sid, {"w": value, value: 1}, remove=["alpha"])

    @rule(sid=sessions, usage=usages())
    def record_usage(self, sid: str, usage: Usage) -> None:
        with contextlib.suppress(EngineError):
            self.store.record_usage(sid, usage)

    @rule(sid=sessions, pick=st.integers(0, 100))
    def erase(self, sid: str, pick: int) -> None:
        try:
            head = self.store.get(sid).messages
            if len(head):
                self.store.erase(sid, head[pick % len(head)].id or "")
        except EngineError:
            pass

    @rule(sid=consumes(sessions))
    def delete(self, sid: str) -> None:
        with contextlib.suppress(EngineError):
            self.store.delete(sid, with_forks=True)

    @rule()
    def catch_up(self) -> None:
        self.model.catch_up(self.store)
        assert projected_tables(self.model) == expected_tables(self.store)

    @precondition(lambda self: self.rebuilds < 3)
    @rule()
    def check(self) -> None:
        self.rebuilds += 1
        self.model.catch_up(self.store)
        assert projected_tables(self.model) == expected_tables(self.store)
        with ReadModel(self.folder / f"rebuilt{self.rebuilds}.db") as rebuilt:
            rebuilt.rebuild(self.store)
            assert dump(self.model) == dump(rebuilt)


TestReadModel = ReadModelMachine.TestCase
