"""The deciders on their own, against the reference model, with no store.

A rule-based state machine keeps sessions as the plain ``Session`` states
the deciders return, and the model beside them. Every command goes through
``engine.decisions`` only: ``Command.of(...)`` checks the arguments,
``decide(state, command, now)`` gives the events and the state after them.
After each step:

* the decided state equals the model's (messages by content, revision,
  title, metadata, usage), and its revision is the model's own hash;
* the decided state is exactly what replaying the decided events with full
  verification gives, so what a store would reload is what was decided;
* deciding is pure: the same state, command and time give equal events;
* a command the model refuses is refused with a typed ``EngineError``, and a
  command the deciders accept is one the model accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from engine import EngineError, InvalidArgument, InvalidForkPoint, Message, RevisionConflict, Usage
from engine.decisions import (
    Append,
    Create,
    Decision,
    Fork,
    RecordUsage,
    Restore,
    Rewrite,
    SetTitle,
    UpdateMetadata,
    decide,
    ingest,
    translate,
)
from engine.realtime.providers import adapter_for
from engine.realtime.reducer import RealtimeState
from engine.state.events import SessionForked
from engine.state.transcript import Session, fold, forked
from engine.testing import ReferenceModel, model_revision
from engine.testing.model import tool_pairing_ok
from engine.testing.strategies import deliveries, messages, realtime_conversations, texts, tool_exchanges, usages

START = datetime(2026, 1, 1, tzinfo=UTC)
titles = st.none() | texts(12).filter(lambda t: "\x00" not in t)
json_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), texts(8))
batches = st.one_of(st.lists(messages(), min_size=1, max_size=3), tool_exchanges())


class DecisionMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.model = ReferenceModel()
        self.states: dict[str, Session] = {}
        self.versions: dict[str, list[Session]] = {}
        self.now = START
        self.serial = 0

    # -- the cycle every command goes through ----------------------------------

    def _decided(self, before: Session | None, command: Any) -> Decision:
        self.now += timedelta(seconds=1)
        decision = decide(before, command, self.now)
        again = decide(before, command, self.now)
        assert again.events == decision.events  # pure: nothing but the inputs counts
        self._check_replay(before, decision)
        return decision

    def _check_replay(self, before: Session | None, decision: Decision) -> None:
        """The decided state is what a full, verifying replay of its events gives."""
        if not decision.events:  # a write that changes nothing: the state as it was
            assert decision.state is before
            return
        first = decision.events[0]
        if isinstance(first, SessionForked):
            assert before is not None
            replayed = forked(decision.state.id, first, before, verify=True)
        else:
            start = 0 if before is None else before.version
            numbered = [(start + offset, event) for offset, event in enumerate(decision.events, 1)]
            replayed = fold(decision.state.id, numbered, start=before, verify=True)  # type: ignore[assignment]
        assert replayed is not None
        assert _observable(replayed) == _observable(decision.state)

    def _store(self, state: Session) -> None:
        self.states[state.id] = state
        self.versions.setdefault(state.id, []).append(state)

    def _refused(self, before: Session, command: Any) -> EngineError | None:
        try:
            decision = self._decided(before, command)
        except EngineError as error:
            assert self.states[before.id] is before  # nothing changed
            return error
        if decision.events:
            self._store(decision.state)
        return None

    # -- commands ---------------------------------------------------------

    @rule(target=sessions, title=titles, metadata=st.dictionaries(st.sampled_from("abc"), json_values, max_size=2))
    def create(self, title: str | None, metadata: dict[str, Any]) -> str:
        self.serial += 1
        sid = f"s{self.serial}"
        decision = self._decided(None, Create.of(title, metadata, session_id=sid))
        self._store(decision.state)
        self.model.create(sid, title, metadata)
        return sid

    @rule(sid=sessions, batch=batches, usage=st.none() | usages())
    def append(self, sid: str, batch: list[Message], usage: Usage | None) -> None:
        # Every state so far pairs its tool uses, so an append may be refused
        # only where its messages would break that.
        pairs = tool_pairing_ok([*self.model.state(sid).messages, *batch])
        error = self._refused(self.states[sid], Append.of(batch, usage=usage))
        assert (error is None) == pairs, error
        if error is None:
            assert self.states[sid].revision == self.model.append(sid, batch, usage)

    @rule(sid=sessions, title=titles)
    def set_title(self, sid: str, title: str | None) -> None:
        assert self._refused(self.states[sid], SetTitle.of(title)) is None
        self.model.set_title(sid, title)

    @rule(
        sid=sessions,
        values=st.dictionaries(st.sampled_from("abc"), json_values, max_size=2),
        remove=st.lists(st.sampled_from("abc"), max_size=2),
    )
    def update_metadata(self, sid: str, values: dict[str, Any], remove: list[str]) -> None:
        if (not values and not remove) or set(values) & set(remove):  # nothing, or a key set and removed at once
            with pytest.raises(InvalidArgument):
                UpdateMetadata.of(values, remove=remove)
            return
        assert self._refused(self.states[sid], UpdateMetadata.of(values, remove=remove)) is None
        self.model.update_metadata(sid, values, remove)

    @rule(sid=sessions, usage=usages())
    def record_usage(self, sid: str, usage: Usage) -> None:
        assert self._refused(self.states[sid], RecordUsage.of(usage)) is None
        self.model.record_usage(sid, usage)

    @rule(
        sid=sessions,
        start=st.integers(-1, 8),
        length=st.integers(0, 3),
        replacement=st.lists(messages(), max_size=2) | tool_exchanges(),
    )
    def rewrite(self, sid: str, start: int, length: int, replacement: list[Message]) -> None:
        error = self._refused(self.states[sid], Rewrite.of(start, start + length, replacement))
        try:
            expected = self.model.rewrite(sid, start, start + length, replacement)
        except ValueError:
            assert error is not None, "the deciders accepted a rewrite the model refuses"
            return
        assert error is None, f"the deciders refused a rewrite the model accepts: {error!r}"
        assert self.states[sid].revision == expected

    @rule(sid=sessions, pick=st.integers(0, 1000))
    def restore(self, sid: str, pick: int) -> None:
        versions = self.versions[sid]
        target = versions[pick % len(versions)]
        command = Restore.of(target.revision)
        command = Restore(revision=command.revision, target=tuple(target.messages), reason=command.reason)
        error = self._refused(self.states[sid], command)
        try:
            expected = self.model.restore(sid, target.revision)
        except ValueError:
            assert error is not None
            return
        assert error is None, error
        assert self.states[sid].revision == expected

    @rule(sid=sessions, stale=st.booleans())
    def append_expecting_a_revision(self, sid: str, stale: bool) -> None:
        state = self.states[sid]
        expected = model_revision([Message.user("never here")]) if stale else state.revision
        message = Message.user("checked")
        error = self._refused(state, Append.of([message], expected_revision=expected))
        if stale:
            assert isinstance(error, RevisionConflict), error
            return
        assert (error is None) == tool_pairing_ok([*self.model.state(sid).messages, message]), error
        if error is None:
            self.model.append(sid, [message])

    @rule(target=sessions, sid=sessions, index=st.none() | st.integers(-1, 8), edit=st.none() | messages(("user",)))
    def fork(self, sid: str, index: int | None, edit: Message | None) -> str:
        source = self.states[sid]
        self.serial += 1
        child = f"s{self.serial}"
        count = len(source.messages)
        if edit is not None and index is not None:
            command = Fork.replacing(index, edit, child_id=child)
        elif index is not None:
            command = Fork.at(index, child_id=child)
        else:
            command = Fork.whole(child_id=child)
        try:
            decision = self._decided(source, command)
        except EngineError as error:
            kept = index if index is not None else count
            if edit is None or index is None:
                assert isinstance(error, InvalidForkPoint)
                assert not 0 <= kept <= count or (0 < kept < count and bool(source.messages[kept - 1].tool_uses))
            return sid  # the bundle gets an existing session back: nothing was created
        self._store(decision.state)
        kept_messages = source.messages if index is None else source.messages[:index]
        replacement = decision.state.messages[-1] if edit is not None and index is not None else None
        self.model.fork(sid, child, index, replacement)
        assert list(decision.state.messages[: len(kept_messages)]) == list(kept_messages)
        return child

    # -- what must hold after every step ---------------------------------------

    @invariant()
    def equals_the_model(self) -> None:
        for sid, state in self.states.items():
            expected = self.model.state(sid)
            assert [m.canonical_bytes() for m in state.messages] == expected.contents
            assert state.revision == expected.revision == model_revision(list(state.messages))
            assert state.title == expected.title
            assert dict(state.metadata) == expected.metadata
            assert state.usage == expected.usage


def _observable(state: Session) -> tuple[Any, ...]:
    return (
        state.id,
        state.version,
        state.revision,
        [m.canonical_bytes() for m in state.messages],
        [m.id for m in state.messages],
        state.usage,
        dict(state.metadata),
        state.title,
        state.created_at,
        state.updated_at,
        state.lineage,
    )


TestDecisions = DecisionMachine.TestCase


@given(batch=st.lists(messages(), min_size=1, max_size=3), usage=st.none() | usages())
def test_a_command_is_decided_the_same_at_the_same_time(batch: list[Message], usage: Usage | None) -> None:
    state = decide(None, Create.of(session_id="s"), START).state
    command = Append.of(batch, usage=usage)
    first, second = decide(state, command, START), decide(state, command, START)
    assert first.events == second.events
    assert first.state.revision == second.state.revision == model_revision(batch)


def test_times_never_go_back_within_a_session() -> None:
    state = decide(None, Create.of(session_id="s"), START).state
    earlier = START - timedelta(hours=1)  # a clock set back between two calls
    decision = decide(state, SetTitle.of("t"), earlier)
    assert decision.events[0].at == START
    assert decision.state.updated_at == START


def test_decide_refuses_what_is_not_a_command() -> None:
    state = decide(None, Create.of(session_id="s"), START).state
    with pytest.raises(InvalidArgument):
        decide(state, "append", START)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        decide(None, SetTitle.of("t"), START)
    with pytest.raises(InvalidArgument):
        decide(state, Create.of(session_id="t"), START)


@given(chains=realtime_conversations(max_turns=2), data=st.data())
def test_ingestion_decisions_replay_to_what_was_decided(chains: list[list[dict[str, Any]]], data: Any) -> None:
    """Realtime input in any provider-legal delivery order, in batches, through
    the ingestion deciders only: each decided state is what a verifying
    replay of its events gives, redelivering a batch decides nothing new, and
    the end result is the transcript of in-order delivery."""
    adapter = adapter_for("openai")
    in_order = [event for chain in chains for event in chain]
    expected = _ingested(in_order, [len(in_order)], adapter)
    delivered = data.draw(deliveries(chains), label="delivery")
    sizes = data.draw(st.lists(st.integers(1, 8), min_size=1, max_size=len(delivered) or 1), label="batches")
    result = _ingested(delivered, sizes, adapter, check=True)
    assert [(m.role, m.text) for m in result.messages] == [(m.role, m.text) for m in expected.messages]


def _ingested(events: list[dict[str, Any]], sizes: list[int], adapter: Any, *, check: bool = False) -> Session:
    head = decide(None, Create.of(session_id="voice"), START).state
    realtime = RealtimeState()
    position, turn = 0, 0
    while position < len(events):
        size = sizes[turn % len(sizes)]
        batch = translate(events[position : position + size], "openai", adapter)
        position, turn = position + size, turn + 1
        decision = ingest(head, realtime, batch, actor=None, provider="openai", now=START)
        if check and decision.events:
            numbered = [(head.version + n, event) for n, event in enumerate(decision.events, 1)]
            replayed = fold(head.id, numbered, start=head, verify=True)
            assert replayed is not None and _observable(replayed) == _observable(decision.state)
            again = ingest(decision.state, decision.realtime, batch, actor=None, provider="openai", now=START)
            assert again.events == () and {o.status for o in again.outcomes} <= {"duplicate", "ignored", "rejected"}
        head, realtime = decision.state, decision.realtime
    return head
