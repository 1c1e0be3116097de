"""``appended`` builds the state after an append through the slots of
``Session`` instead of its frozen dataclass ``__init__`` (three times as
slow, and every append takes this step): it must give what the dataclass
gives, field for field, set every field there is, and stay frozen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import Message, Transcripts
from engine.decisions import commands
from engine.decisions._checks import clock
from engine.decisions.records import decide
from engine.state.events import MessagesAppended
from engine.state.revisions import parse_revision, revision_of
from engine.state.transcript import APPENDED_FIELDS, Session, fold


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


def test_an_append_of_no_messages_in_a_stored_log_adds_no_message_whichever_way_it_is_folded() -> None:
    # Found by an adversarial tester: the engine never writes an append of
    # no messages, but a replay accepts one whose revision is the head's.
    # Folded without re-hashing, it pushed a revision for no message, and a
    # sequence grown in place then counted one message too many.
    for verify in (False, True):
        with Transcripts.open() as store:  # a head of its own each time: its buffer grows in place
            session_id = store.create()
            store.append(session_id, Message.user("a"), Message.user("b"))
            head = store.get(session_id)
        third = Message.user("c")
        after_third = revision_of([*head.messages, third])
        now = clock()
        events = [
            (head.version + 1, MessagesAppended(at=now, messages=(third,), revision=after_third)),
            (head.version + 2, MessagesAppended(at=now, messages=(), revision=after_third)),
        ]
        state = fold(session_id, events, start=head, verify=verify)
        assert state is not None
        assert len(state.messages) == 3
        assert [message.text for message in state.messages] == ["a", "b", "c"]
        assert state.revision == after_third
        assert [state.messages.revision_at(index) for index in range(4)] == [
            parse_revision(revision_of(list(state.messages)[:index])) for index in range(4)
        ]


def test_a_fork_whose_log_holds_an_append_of_no_messages_loads_from_its_snapshot(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with Transcripts.open(path, snapshot_interval=3) as store:
        source = store.create()
        store.append(source, Message.user("a"), Message.user("b"))
        fork = store.fork(source)
        repository = store._repository
        for messages in ((Message.user("c"),), ()):
            head = repository.head(fork)
            revision = revision_of([*head.messages, *messages])
            event = MessagesAppended(at=clock(), messages=messages, revision=revision)
            after = fold(fork, [(head.version + 1, event)], start=head)
            assert after is not None
            repository.commit(head, [event], after)  # as another writer could store it
        store.append(fork, Message.user("d"))
    with Transcripts.open(path, snapshot_interval=3) as store:
        assert [message.text for message in store.get(fork).messages] == ["a", "b", "c", "d"]
        assert [message.text for message in store.verify(fork).messages] == ["a", "b", "c", "d"]
        assert store.get(fork).message_count == 4
