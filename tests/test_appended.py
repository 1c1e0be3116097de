"""``appended`` builds the state after an append through the slots of
``Session`` instead of its frozen dataclass ``__init__`` (three times as
slow, and every append takes this step): it must give what the dataclass
gives, field for field, set every field there is, and stay frozen."""

from __future__ import annotations

import dataclasses

import pytest

from engine import Message, Transcripts
from engine.decisions import commands
from engine.decisions._checks import clock
from engine.decisions.records import decide
from engine.state.transcript import APPENDED_FIELDS, Session


def _fields(state: Session) -> dict[str, object]:
    return {field.name: getattr(state, field.name) for field in dataclasses.fields(Session)}


def test_appended_sets_every_field_of_session_in_order() -> None:
    assert tuple(field.name for field in dataclasses.fields(Session)) == APPENDED_FIELDS


def test_appended_gives_what_the_dataclass_and_a_replay_give() -> None:
    with Transcripts.open() as store:
        session_id = store.create(title="t", metadata={"k": 1}, status="active", tags=["a"])
        store.append(session_id, Message.user("one"), Message.assistant("two"))
        head = store.get(session_id)
        before = _fields(head)
        decision = decide(head, commands.Append.of((Message.user("three"),)), clock())
        [event] = decision.events
        state = decision.state
        assert type(state) is Session
        assert _fields(head) == before  # the state it started from is untouched
        expected = dataclasses.replace(
            head,
            version=head.version + 1,
            revision=event.revision,
            messages=state.messages,
            updated_at=event.at,
            generation=head.generation + 1,
            _revision_bytes=state._revision_bytes,
        )
        assert _fields(state) == _fields(expected)
        assert state.revision != head.revision
        with pytest.raises(dataclasses.FrozenInstanceError):
            state.version = 99  # type: ignore[misc]
        # Stored, it is the state a replay from scratch rebuilds.
        store._repository.commit(head, decision.events, state)
        replayed = store.verify(session_id)
        assert _fields(replayed) == _fields(state)
        assert [message.text for message in replayed.messages] == ["one", "two", "three"]
