"""The contract suite: every test runs on memory, a SQLite file and
PostgreSQL, through ``Transcripts`` and through its async twin
``AsyncTranscripts`` (each call awaited on an event loop)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import (
    EMPTY_REVISION,
    ConcurrentWriteError,
    Image,
    InvalidArgument,
    InvalidMessage,
    InvalidRevision,
    InvalidTranscriptShape,
    Message,
    RevisionConflict,
    RevisionNotFound,
    SessionExists,
    SessionNotFound,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
    UnknownEventType,
    Usage,
    VersionNotFound,
    revision_of,
)
from engine.store import Record, SessionRow, StoredSnapshot
from tests.conftest import ASYNC_BACKENDS, BACKENDS, StoreFactory, store_factories


@pytest.fixture(params=BACKENDS + ASYNC_BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


def test_create_append_get(store: Transcripts) -> None:
    sid = store.create(title="Support chat", metadata={"customer": "c-1"})
    hi, hello = Message.user("hi"), Message.assistant("hello")
    revision = store.append(sid, hi, hello, usage=Usage(input=5, output=7))
    session = store.get(sid)
    assert [m.text for m in session.messages] == ["hi", "hello"]
    assert all(m.id for m in session.messages)
    assert session.revision == revision == revision_of([hi, hello])
    assert session.version == 3  # created, appended, usage
    assert session.usage == Usage(input=5, output=7)
    assert session.title == "Support chat"
    assert dict(session.metadata) == {"customer": "c-1"}


def test_message_ids_are_kept_or_assigned(store: Transcripts) -> None:
    sid = store.create()
    store.append(sid, Message.user("a", id="mine"), Message.assistant("b"))
    first, second = store.get(sid).messages
    assert first.id == "mine"
    assert second.id and second.id.startswith("msg_")


def _named(session_id: str, version: int, *reached: Message) -> str:
    """The id the store gives the last of ``reached``, appended after the
    others by the event at ``version`` of ``session_id``, as the docs
    describe it: the first 10 bytes of the revision reached, exclusive-or 10
    bytes of a digest of the session id and exclusive-or the version."""
    revision = bytes.fromhex(revision_of(list(reached)).removeprefix("sha256:"))
    key = hashlib.sha256(b"transcript-engine/message-id\x00" + session_id.encode()).digest()
    mixed = (a ^ b ^ c for a, b, c in zip(revision[:10], key[:10], version.to_bytes(10, "big"), strict=True))
    return "msg_" + bytes(mixed).hex()


def test_appended_messages_are_named_after_the_revision_each_reached(stores: StoreFactory) -> None:
    store = stores.open()
    one, two, three = Message.user("a"), Message.assistant("b"), Message.user("c")
    sid = store.create()
    store.append(sid, one, two)  # version 2
    store.append(sid, three)  # version 3
    named = [_named(sid, 2, one), _named(sid, 2, one, two), _named(sid, 3, one, two, three)]
    assert [message.id for message in store.get(sid).messages] == named
    assert [message.id for message in stores.open().get(sid).messages] == named
    # The same appends to a session of the same id give the same ids ...
    store.delete(sid)
    store.create(session_id=sid)
    store.append(sid, one, two)
    store.append(sid, three)
    assert [message.id for message in stores.open().get(sid).messages] == named
    # ... and in any other session other ids: a fork that appends what its source did, too.
    other = store.create()
    store.append(other, one, two)
    store.append(other, three)
    fork = store.fork_at(sid, 2)  # holds one and two
    store.append(fork, three)  # the fork's version 2
    assert store.get(other).messages[-1].id == _named(other, 3, one, two, three) != named[-1]
    assert store.get(fork).messages[-1].id == _named(fork, 2, one, two, three) != named[-1]
    assert store.erase(fork, store.get(fork).messages[-1].id or "") == [fork]  # the source's "c" is another message
    assert store.get(sid).messages[-1].text == "c"


def test_a_message_appended_again_after_a_truncation_is_another_message(stores: StoreFactory) -> None:
    # Found by a newcomer pass: an id made from the revision alone named the
    # new answer as the one the truncation removed, so what the app kept
    # under that id (feedback, say) went to the new answer.
    store = stores.open()
    sid = store.create()
    hi, answer = Message.user("hi"), Message.assistant("answer one")
    store.append(sid, hi)
    store.append(sid, answer)  # version 3
    removed = store.get(sid).messages[1].id
    store.rewrite(sid, 1, 2, [], "truncation")
    store.append(sid, answer)  # version 5: the same revision as version 3 reached
    again = stores.open().get(sid).messages[1]
    assert removed == _named(sid, 3, hi, answer) != again.id == _named(sid, 5, hi, answer)
    assert store.erase(sid, removed or "") == [sid]  # the removed message, in the history only
    assert stores.open().get(sid).messages[1].text == "answer one"


def test_an_id_the_session_or_the_call_holds_is_not_given_again(stores: StoreFactory) -> None:
    store = stores.open()
    x, y = Message.user("x"), Message.assistant("y")
    chosen = store.create(session_id="chosen")  # a caller chose it for another message of the call
    store.append(chosen, Message.user("x", id=_named(chosen, 2, x, y)), y)
    first, second = stores.open().get(chosen).messages
    assert first.id == _named(chosen, 2, x, y) != second.id
    assert re.fullmatch(r"msg_[0-9a-f]{20}", second.id or "")
    with pytest.raises(InvalidMessage, match="already has the id"):
        store.append(chosen, Message.user("z", id=second.id))
    # A caller chose it in the session before: the append that would be named so gets another.
    held = store.create(session_id="held")
    store.append(held, Message.user("x", id=_named(held, 3, x, y)))  # version 2
    store.append(held, y)  # version 3, reaching the revision of [x, y]
    first, second = stores.open().get(held).messages
    assert first.id == _named(held, 3, x, y) != second.id
    assert re.fullmatch(r"msg_[0-9a-f]{20}", second.id or "")


def test_an_append_decided_again_is_named_after_the_revision_it_reached(stores: StoreFactory) -> None:
    first = stores.open()
    sid = first.create()
    first.append(sid, Message.user("a"))
    second = stores.open()
    second.get(sid)  # its cache: one message
    first.append(sid, Message.assistant("b"))
    second.append(sid, Message.user("c"))  # decided on the cached head, then again on the new one
    messages = stores.open().get(sid).messages
    assert [message.text for message in messages] == ["a", "b", "c"]
    assert messages[2].id == _named(sid, 4, Message.user("a"), Message.assistant("b"), Message.user("c"))


def test_title_metadata_usage_commands(store: Transcripts) -> None:
    sid = store.create(metadata={"a": 1, "b": [1, 2]})
    store.set_title(sid, "T")
    store.update_metadata(sid, {"c": {"d": None}}, remove=["a"])
    store.record_usage(sid, Usage(input=1), response_id="resp_1")
    store.record_usage(sid, Usage(output=2))
    session = store.get(sid)
    assert session.title == "T"
    assert dict(session.metadata) == {"b": [1, 2], "c": {"d": None}}
    assert session.usage == Usage(input=1, output=2)
    store.set_title(sid, None)
    assert store.get(sid).title is None


def test_a_reopened_store_sees_the_same_sessions(stores: StoreFactory) -> None:
    first = stores.open()
    sid = first.create(title="kept")
    first.append(sid, Message.user("one"))
    first.append(sid, Message.assistant("two"))
    before = first.get(sid)
    again = stores.open()
    after = again.get(sid)
    assert after == before
    assert [s.id for s in again.sessions()] == [sid]


def test_session_not_found(store: Transcripts) -> None:
    for call in (
        lambda: store.get("nope"),
        lambda: store.append("nope", Message.user("x")),
        lambda: store.history("nope"),
        lambda: store.set_title("nope", "t"),
    ):
        with pytest.raises(SessionNotFound, match="nope"):
            call()


def test_session_ids(store: Transcripts) -> None:
    sid = store.create(session_id="chat-42")
    assert sid == "chat-42"
    with pytest.raises(SessionExists):
        store.create(session_id="chat-42")
    for bad in ("", "x" * 201, "tab\there", 5):
        with pytest.raises(InvalidArgument):
            store.create(session_id=bad)  # type: ignore[arg-type]


def test_bad_input_changes_nothing(store: Transcripts) -> None:
    sid = store.create()
    store.append(sid, Message.user("ok"))
    before = store.history(sid)
    bad_calls: list[Callable[[], object]] = [
        lambda: store.append(sid),
        lambda: store.append(sid, "plain text"),  # type: ignore[arg-type]
        lambda: store.append(sid, Message.user("x"), {"role": "user"}),  # type: ignore[arg-type]
        lambda: store.append(sid, Message.user("x"), expected_revision="sha256:nope"),
        lambda: store.append(sid, Message.user("x"), usage={"input": 1}),  # type: ignore[arg-type]
        lambda: store.append(sid, Message.user("x"), actor=3),  # type: ignore[arg-type]
        lambda: store.update_metadata(sid, {"k": object()}),
        lambda: store.update_metadata(sid, {1: "v"}),  # type: ignore[dict-item]
        lambda: store.update_metadata(sid),
        lambda: store.set_title(sid, 12),  # type: ignore[arg-type]
        lambda: store.set_title(sid, "nul\x00"),
        lambda: store.create(title="nul\x00"),
        lambda: store.record_usage(sid, 12),  # type: ignore[arg-type]
        lambda: store.create(metadata=["not", "a", "mapping"]),  # type: ignore[arg-type]
    ]
    for call in bad_calls:
        with pytest.raises(InvalidArgument) as caught:
            call()
        assert isinstance(caught.value, ValueError)
    assert store.history(sid) == before
    assert len(store.sessions()) == 1
    with pytest.raises(InvalidMessage):
        store.append(sid, "text")  # type: ignore[arg-type]


def test_expected_revision(store: Transcripts) -> None:
    sid = store.create()
    assert store.get(sid).revision == EMPTY_REVISION
    first = store.append(sid, Message.user("a"), expected_revision=EMPTY_REVISION)
    second = store.append(sid, Message.assistant("b"), expected_revision=first)
    with pytest.raises(RevisionConflict) as caught:
        store.append(sid, Message.user("stale"), expected_revision=first)
    assert (caught.value.expected, caught.value.actual) == (first, second)
    assert store.get(sid).revision == second
    assert len(store.get(sid).messages) == 2


def test_expected_revision_sees_other_writers(stores: StoreFactory) -> None:
    writer, other = stores.open(), stores.open()
    sid = writer.create()
    writer.append(sid, Message.user("a"))
    writer.get(sid)
    newer = other.append(sid, Message.assistant("b"))  # writer's cache is now behind
    writer.append(sid, Message.user("c"), expected_revision=newer)
    assert [m.text for m in other.get(sid).messages] == ["a", "b", "c"]


def test_a_stale_append_lands_after_the_other_writers_one(stores: StoreFactory) -> None:
    # Found by a newcomer: with two processes writing in turn, every other
    # append raised ConcurrentWriteError, though an append means "at the end"
    # whatever the other process wrote.
    first, second = stores.open(), stores.open()
    sid = first.create()
    first.append(sid, Message.user("a"))
    second.get(sid)  # both now hold version 2 in their caches
    first.append(sid, Message.assistant("from first"))
    second.append(sid, Message.user("from second"))
    first.record_usage(sid, Usage(input=1))
    second.set_title(sid, "both")  # so are the writes that name no message
    second.update_metadata(sid, {"k": 1})
    first.append(sid, Message.assistant("again"))
    head = stores.open().verify(sid)
    assert [m.text for m in head.messages] == ["a", "from first", "from second", "again"]
    assert (head.title, head.metadata, head.usage.input) == ("both", {"k": 1}, 1)


def test_a_stale_rewrite_gets_a_typed_error_and_a_retry_succeeds(stores: StoreFactory) -> None:
    # A rewrite names messages by index as its caller saw them: another
    # writer's change may have moved them, so it is not decided again.
    first, second = stores.open(), stores.open()
    sid = first.create()
    first.append(sid, Message.user("a"), Message.assistant("b"))
    second.get(sid)
    first.rewrite(sid, 0, 1, [], "edit")
    with pytest.raises(ConcurrentWriteError) as caught:
        second.rewrite(sid, 1, 2, [Message.assistant("B")], "edit")
    assert caught.value.retryable and caught.value.version == 3
    assert [m.text for m in first.get(sid).messages] == ["b"]
    with pytest.raises(InvalidArgument):  # the retry sees the session as it is now: one message
        second.rewrite(sid, 1, 2, [Message.assistant("B")], "edit")
    second.rewrite(sid, 0, 1, [Message.assistant("B")], "edit")
    assert [m.text for m in first.get(sid).messages] == ["B"]


def test_a_stale_rewrite_that_expects_a_revision_is_decided_again(stores: StoreFactory) -> None:
    first, second = stores.open(), stores.open()
    sid = first.create()
    first.append(sid, Message.user("a"), Message.assistant("b"))
    seen = second.get(sid).revision
    first.append(sid, Message.user("c"))  # the revision moves on
    with pytest.raises(RevisionConflict):
        second.rewrite(sid, 1, 2, [Message.assistant("B")], "edit", expected_revision=seen)
    now = second.get(sid).revision
    first.record_usage(sid, Usage(input=1))  # the head moves on, the revision does not
    second.rewrite(sid, 1, 2, [Message.assistant("B")], "edit", expected_revision=now)
    assert [m.text for m in stores.open().verify(sid).messages] == ["a", "B", "c"]


def test_a_write_that_loses_every_time_gives_up_with_nothing_written(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("a"))
    backend = store._repository.backend  # type: ignore[attr-defined]
    tries: list[int] = []

    def losing(session_id: str, records: Any, *args: Any, **kwargs: Any) -> Any:
        tries.append(records[0].version)
        raise ConcurrentWriteError(session_id, records[0].version)

    monkeypatch.setattr(backend, "append", losing)
    with pytest.raises(ConcurrentWriteError):
        store.append(sid, Message.user("b"))
    assert tries == [3] * 5  # five tries, each on the same head (nothing else was written)
    monkeypatch.undo()
    assert [m.text for m in stores.open().verify(sid).messages] == ["a"]


def test_a_writer_that_keeps_losing_races_waits_its_turn_and_lands(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial pass: of two writers appending to one session
    # in tight loops, the one that lost five races in a row got
    # ConcurrentWriteError. Here another writer commits just before each of
    # the loser's tries; the last try holds the session, so that writer
    # waits for it instead of winning again.
    loser, winner = stores.open(), stores.open()
    sid = loser.create()
    loser.append(sid, Message.user("start"))
    winner.get(sid)
    repository = loser._repository  # type: ignore[attr-defined]
    backend, commit = repository.backend, repository.commit
    holding: list[bool] = []
    winners: list[threading.Thread] = []
    outcomes: list[str] = []

    @contextlib.contextmanager
    def watched_alone(session_id: str) -> Iterator[None]:
        with writing_alone(session_id):
            holding.append(True)
            yield

    def another_writer_first(*args: Any) -> Any:
        done = threading.Event()
        number = len(winners)

        def win() -> None:
            try:
                winner.append(sid, Message.assistant(f"winner {number}"))
            finally:
                done.set()

        winners.append(threading.Thread(target=win))
        winners[-1].start()
        if holding:  # no other writer can commit to the session meanwhile
            outcomes.append("held back" if not done.wait(0.3) else "committed")
        else:
            assert done.wait(30)
            outcomes.append("committed")
        return commit(*args)

    writing_alone = backend.writing_alone
    monkeypatch.setattr(backend, "writing_alone", watched_alone)
    monkeypatch.setattr(repository, "commit", another_writer_first)
    loser.append(sid, Message.user("loser"))
    for thread in winners:
        thread.join()
    monkeypatch.undo()
    assert outcomes == ["committed"] * 4 + ["held back"]
    texts = [m.text for m in stores.open().verify(sid).messages]
    assert texts == ["start"] + [f"winner {n}" for n in range(4)] + ["loser", "winner 4"]


def test_two_writers_appending_to_one_session_in_tight_loops_both_land_every_append(stores: StoreFactory) -> None:
    # Two stores (think: two processes), each with its own cache, race for
    # every append; none may give up (the last try of each waits its turn).
    sid = stores.open().create()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        store = stores.open()
        try:
            for index in range(100):
                store.append(sid, Message.user(f"{name}-{index}"))
        except BaseException as exc:  # reported below: a thread's error would be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    texts = [m.text for m in stores.open().verify(sid).messages]
    assert sorted(texts) == sorted(f"{name}-{index}" for name in ("a", "b") for index in range(100))
    for name in ("a", "b"):  # each writer's own appends in its order
        assert [text for text in texts if text.startswith(name)] == [f"{name}-{index}" for index in range(100)]


def test_a_stale_append_reads_only_what_the_winner_added(stores: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by an adversarial pass: a loser loaded the whole log again on
    # every retry, so on a long log it kept losing to writers with a warm cache.
    first, second = stores.open(), stores.open()
    sid = first.create()
    first.append(sid, *(Message.user(f"m{number}") for number in range(50)))
    second.get(sid)  # both at version 2
    first.append(sid, Message.assistant("from first"))
    backend = second._repository.backend  # type: ignore[attr-defined]
    reads: list[tuple[int, int | None]] = []
    read = backend.read

    def counted(session_id: str, *, after: int = 0, upto: int | None = None) -> Any:
        reads.append((after, upto))
        return read(session_id, after=after, upto=upto)

    monkeypatch.setattr(backend, "read", counted)
    second.append(sid, Message.assistant("from second"))
    assert reads == [(2, 3)]  # the winner's one record, not the log from the start
    texts = [m.text for m in stores.open().verify(sid).messages]
    assert texts == [f"m{number}" for number in range(50)] + ["from first", "from second"]


def test_threads_appending_to_one_session_lose_nothing(store: Transcripts) -> None:
    sid = store.create()

    def work(name: str) -> None:
        for index in range(20):
            store.append(sid, Message.user(f"{name}-{index}"))

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    texts = [m.text for m in store.get(sid).messages]
    assert sorted(texts) == sorted(f"t{n}-{i}" for n in range(4) for i in range(20))


def test_one_store_shared_by_threads_reading_and_writing_serves_every_call(store: Transcripts) -> None:
    # A web server's worker threads share one store: each appends to its own
    # session and reads everything else at once (on PostgreSQL, every call
    # beyond the pool's resting size once failed with a bare AssertionError).
    sessions = [store.create(title=f"s{n}") for n in range(4)]
    failures: list[BaseException] = []
    start = threading.Barrier(len(sessions))

    def work(mine: str) -> None:
        try:
            start.wait()
            for index in range(15):
                store.append(mine, Message.user(f"{mine}-{index}"))
                for other in sessions:
                    store.get(other)
                store.sessions()
                store.history(mine)
                store.feed(after=0, limit=5)
        except BaseException as exc:  # every failure is reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(sid,)) for sid in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for sid in sessions:
        assert [m.text for m in store.get(sid).messages] == [f"{sid}-{index}" for index in range(15)]


def test_time_travel_by_version_revision_and_time(store: Transcripts) -> None:
    sid = store.create(title="v1")
    created = store.get(sid)
    r1 = store.append(sid, Message.user("one"))
    store.set_title(sid, "v3")
    r2 = store.append(sid, Message.assistant("two"))
    assert store.get(sid, at=1).messages == []
    assert store.get(sid, at=1).title == "v1"
    assert [m.text for m in store.get(sid, at=2).messages] == ["one"]
    assert store.get(sid, at=3).title == "v3"
    assert store.get(sid, at=4) == store.get(sid)
    # By revision: the last state that had it (the title change kept r1).
    at_r1 = store.get(sid, at=r1)
    assert at_r1.version == 3 and at_r1.revision == r1
    assert store.get(sid, at=EMPTY_REVISION).version == 1
    assert store.get(sid, at=r2).version == 4
    # By time.
    assert store.get(sid, at=created.created_at).version == 1
    assert store.get(sid, at=datetime.now(UTC) + timedelta(days=1)).version == 4
    with pytest.raises(VersionNotFound):
        store.get(sid, at=created.created_at - timedelta(seconds=1))
    for bad in (0, 5, -1):
        with pytest.raises(VersionNotFound):
            store.get(sid, at=bad)
    with pytest.raises(RevisionNotFound):
        store.get(sid, at=revision_of([Message.user("never")]))
    with pytest.raises(InvalidRevision):
        store.get(sid, at="HEAD~1")
    with pytest.raises(InvalidArgument):
        store.get(sid, at=datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidArgument):
        store.get(sid, at=True)  # type: ignore[arg-type]


def test_revision_can_recur(store: Transcripts) -> None:
    one, two = store.create(), store.create()
    store.append(one, Message.user("same"), Message.assistant("content"))
    store.append(two, Message.user("same"))
    store.append(two, Message.assistant("content", id="other-id"))
    assert store.get(one).revision == store.get(two).revision
    store.append(two, Message.user("more"))
    assert store.get(one).revision != store.get(two).revision


def test_history_lists_every_event(store: Transcripts) -> None:
    sid = store.create(title="Demo", metadata={"z": 0}, actor="alice")
    store.append(sid, Message.user("hi"), Message.assistant("hello"), actor="agent", usage=Usage(input=3, output=4))
    store.update_metadata(sid, {"k": 1}, remove=["z"])
    store.set_title(sid, None, actor="bob")
    history = store.history(sid)
    assert [h.version for h in history] == [1, 2, 3, 4, 5]
    assert [h.kind for h in history] == [
        "session_created",
        "messages_appended",
        "usage_recorded",
        "metadata_changed",
        "title_changed",
    ]
    assert [h.actor for h in history] == ["alice", "agent", "agent", None, "bob"]
    assert history[1].summary == "appended 2 messages: user 'hi', assistant 'hello'"
    assert history[2].summary == "usage +3 in, +4 out"
    assert history[3].summary == "metadata set k; removed z"
    assert history[4].summary == "title cleared"
    assert history[-1].revision == store.get(sid).revision
    times = [h.at for h in history]
    assert times == sorted(times)


def test_history_lines_name_calls_beside_text_images_and_every_token_count(store: Transcripts) -> None:
    # Found by a newcomer: a message with text showed only its text, so a
    # turn that also called tools read as plain text; usage showed two counts.
    sid = store.create()
    photo = Image(media_type="image/png", data=b"\x89PNG")
    store.append(sid, Message.user("Here is my passport", photo, photo))
    store.append(sid, Message.assistant("Searching", ToolUse(id="c1", name="search"), ToolUse(id="c2", name="fetch")))
    store.record_usage(sid, Usage(input=5, output=6, cache_read=7, cache_write=8, reasoning=9), response_id="resp_1")
    store.record_usage(sid, Usage(input=1))
    store.append(sid, Message.tool_results(ToolResult.of("c1", "a"), ToolResult.of("c2", "b")), Message.user("ok"))
    assert [entry.summary for entry in store.history(sid)[1:]] == [
        "appended 1 message: user 'Here is my passport' 2 images",
        "appended 1 message: assistant 'Searching' calls search + fetch",
        "usage +5 in, +6 out, +7 cache read, +8 cache write, +9 reasoning (response resp_1)",
        "usage +1 in, +0 out",
        "appended 2 messages: tool_results results for c1 + c2, user 'ok'",
    ]


def test_sessions_listing(store: Transcripts) -> None:
    first = store.create(title="first")
    second = store.create()
    store.append(second, Message.user("a"), Message.assistant("b"))
    store.set_title(second, "second")
    listing = {info.id: info for info in store.sessions()}
    assert set(listing) == {first, second}
    info = listing[second]
    assert (info.title, info.message_count, info.version) == ("second", 2, 3)
    assert info.revision == store.get(second).revision
    assert info.created_at <= info.updated_at
    assert listing[first].message_count == 0


@pytest.mark.parametrize("interval", [1, 3, 1000, None])
def test_snapshots_never_change_a_result(stores: StoreFactory, interval: int | None) -> None:
    writer = stores.open(snapshot_interval=interval)
    sid = writer.create(title="snap", metadata={"m": 0})
    for index in range(10):
        writer.append(sid, Message.user(f"u{index}"), usage=Usage(input=index))
        if index % 4 == 0:
            writer.update_metadata(sid, {"m": index})
    expected = [writer.get(sid, at=version) for version in range(1, writer.get(sid).version + 1)]
    for reader_interval in (interval, None):
        reader = stores.open(snapshot_interval=reader_interval)
        assert reader.get(sid) == expected[-1]
        assert [reader.get(sid, at=v) for v in range(1, len(expected) + 1)] == expected
        assert reader.verify(sid) == expected[-1]


def _forge(store: Transcripts, sid: str, records: list[Record], snapshot: StoredSnapshot | None = None) -> None:
    """Store hostile records straight through the storage contract, with a
    listing row whose chain head matches them: as someone who can write to
    the store and knows the algorithm would. Deeper checks must still catch them."""
    from engine.store import head_of

    head = store.get(sid)
    created, updated = head.created_at.isoformat(), head.updated_at.isoformat()
    chain = head_of(sid, [*store._repository.backend.read(sid), *records])
    row = SessionRow(
        sid, head.title, created, updated, len(head.messages), head.revision, records[-1].version, chain.hex()
    )
    store._repository.backend.append(sid, records, row, snapshot)


def test_stored_rows_naming_unknown_types_are_refused_without_import(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("fine"))
    assert "this" not in sys.modules
    # Write a hostile row straight through the storage contract: the topic
    # `this:x` would import the module `this` under eventsourcing's default
    # mapper (printing the Zen of Python as a side effect).
    _forge(store, sid, [Record(3, "this:x", b"{}")])
    fresh = stores.open()
    with pytest.raises(UnknownEventType, match="'this:x'") as caught:
        fresh.get(sid)
    assert "version 3" in str(caught.value)
    with pytest.raises(UnknownEventType):
        fresh.history(sid)
    assert "this" not in sys.modules, "a stored topic caused an import"


def test_unknown_schema_version_is_refused(stores: StoreFactory) -> None:
    store = stores.open()
    sid = store.create()
    _forge(store, sid, [Record(2, "TitleChanged.v9", b'{"kind":"title_changed"}')])
    with pytest.raises(UnknownEventType, match="schema version 9"):
        stores.open().get(sid)


def test_a_stored_form_of_a_newer_engine_says_to_upgrade(stores: StoreFactory) -> None:
    # As this engine's text form reads in the build before it.
    store = stores.open()
    sid = store.create()
    _forge(store, sid, [Record(2, "MessagesAppended.v1.zstd", b"\x28\xb5\x2f\xfd")])
    with pytest.raises(UnknownEventType, match=r"stored form this engine does not know .*upgrade transcript-engine"):
        stores.open().get(sid)


def test_tampered_history_is_detected(stores: StoreFactory) -> None:
    from engine.errors import CorruptStore
    from engine.state.events import MessagesAppended
    from engine.store import encode_event

    store = stores.open(snapshot_interval=None)
    sid = store.create()
    store.append(sid, Message.user("real"))
    head = store.get(sid)
    forged = MessagesAppended(at=datetime.now(UTC), messages=(Message.user("forged"),), revision=head.revision)
    topic, data = encode_event(forged)
    _forge(store, sid, [Record(3, topic, data)])
    with pytest.raises(CorruptStore, match="altered"):
        stores.open(snapshot_interval=None).get(sid)


@pytest.mark.parametrize("form", [1, 2])
def test_a_snapshot_that_disagrees_with_the_log_is_refused(stores: StoreFactory, form: int) -> None:
    """A well-formed snapshot of another state: the derived state as JSON
    (form 1, as earlier builds wrote it) or the digest of one (form 2)."""
    from engine.errors import CorruptStore
    from engine.state.events import TitleChanged
    from engine.store import Snapshot, encode_event, encode_snapshot

    store = stores.open(snapshot_interval=None)
    sid = store.create()
    store.append(sid, Message.user("one"), Message.assistant("two"))
    head = store.get(sid)
    if form == 1:
        lie = msgspec.json.encode(msgspec.structs.replace(Snapshot.of(head), version=3, message_count=5))
    else:
        other = store.create()
        store.append(other, Message.user("one"), Message.assistant("three"))
        store.set_title(other, "t")
        lie = encode_snapshot(store.get(other))  # at version 3, other messages
    topic, data = encode_event(TitleChanged(at=head.updated_at, title="t"))
    _forge(store, sid, [Record(3, topic, data)], StoredSnapshot(3, lie))
    with pytest.raises(CorruptStore, match="snapshot at version 3"):
        stores.open().get(sid)
    with pytest.raises(CorruptStore, match="snapshot at version 3"):
        stores.open(snapshot_interval=None).verify(sid)


@pytest.mark.parametrize(
    "stored",
    [
        msgspec.msgpack.encode((3, 3, b"\x00" * 32, 0, b"\x00" * 32)),  # a form this engine never wrote
        msgspec.msgpack.encode((2, 3, b"\x00" * 31, 0, b"\x00" * 32)),  # a short digest
        msgspec.msgpack.encode((2, 3, b"\x00" * 32, 0, None)),  # half a checkpoint
        msgspec.msgpack.encode((2, 3, b"\x00" * 32, 0, b"\x00" * 32))[:-4],  # cut short
    ],
)
def test_a_damaged_compact_snapshot_is_refused(stores: StoreFactory, stored: bytes) -> None:
    from engine.errors import CorruptStore
    from engine.state.events import TitleChanged
    from engine.store import encode_event

    store = stores.open(snapshot_interval=None)
    sid = store.create()
    store.append(sid, Message.user("one"))
    topic, data = encode_event(TitleChanged(at=store.get(sid).updated_at, title="t"))
    _forge(store, sid, [Record(3, topic, data)], StoredSnapshot(3, stored))
    with pytest.raises(CorruptStore, match="snapshot of session"):
        stores.open().get(sid)


def test_a_snapshot_keeps_to_a_few_dozen_bytes_whatever_the_state_holds(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=2)
    sid = store.create(metadata={"notes": "n" * 10_000})
    store.append(sid, Message.user("x" * 10_000))
    store.append(sid, Message.assistant("y"))
    store.set_title(sid, "t" * 500)
    snapshots = store._repository.backend.snapshots(sid)
    assert [s.version for s in snapshots] == [2, 4]
    for snapshot in snapshots:
        schema, version, digest, start, link = msgspec.msgpack.decode(snapshot.state)
        assert (schema, version, len(digest), start, len(link)) == (2, snapshot.version, 32, 0, 32)
        assert len(snapshot.state) < 80
    assert store.verify(sid).title == "t" * 500
    assert stores.open().get(sid).metadata["notes"] == "n" * 10_000


def test_the_feed_lists_every_stored_event_once_in_commit_order(stores: StoreFactory) -> None:
    """The storage contract's store-wide feed: what a read model or a
    follower consumes, page by page, from the last position it saw."""
    from engine import InvalidArgument
    from engine.store import decode_event

    store = stores.open()
    backend = store._repository.backend
    start = backend.feed(after=0, limit=10_000)
    after = start[-1].position if start else 0
    first, second = store.create(title="first"), store.create(title="second")
    store.append(first, Message.user("text-1a"))
    store.append(second, Message.user("2a"))
    store.append(first, Message.user("1b"), Message.assistant("1c"))
    store.set_title(second, "renamed")
    expected = [(first, 1), (second, 1), (first, 2), (second, 2), (first, 3), (second, 3)]

    pages, cursor = [], after
    while page := backend.feed(after=cursor, limit=2):
        assert len(page) <= 2
        pages.append(page)
        cursor = page[-1].position
    entries = [entry for page in pages for entry in page]
    assert [(e.session_id, e.record.version) for e in entries] == expected
    positions = [e.position for e in entries]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [e.record for e in entries if e.session_id == first] == backend.read(first)
    assert decode_event(entries[-1].record.topic, entries[-1].record.state, "feed").title == "renamed"  # type: ignore[union-attr]
    assert backend.feed(after=cursor, limit=100) == []

    store.erase(first, store.get(first).messages[0].id or "")  # rewritten in place, then one more event
    store.delete(second)
    after_changes = backend.feed(after=after, limit=10_000)
    assert [e.session_id for e in after_changes] == [first] * 4
    assert [e.position for e in after_changes][:3] == [e.position for e in entries if e.session_id == first]
    assert b"text-1a" not in after_changes[1].record.state
    for bad in ({"after": -1}, {"after": "0"}, {"limit": 0}, {"limit": 10_001}, {"after": True}):
        with pytest.raises(InvalidArgument):
            backend.feed(**bad)  # type: ignore[arg-type]


def test_a_fork_given_a_taken_child_id_names_the_argument_it_was_given(store: Transcripts) -> None:
    # Found by a newcomer: the refusal said to omit session_id, which fork() does not take.
    source = store.create(session_id="src")
    store.append(source, Message.user("hi"))
    for fork in (lambda: store.fork(source, child_id="src"), lambda: store.fork_at(source, 1, child_id="src")):
        with pytest.raises(SessionExists, match="omit child_id"):
            fork()
    with pytest.raises(SessionExists, match="omit session_id"):
        store.create(session_id="src")


def test_a_taken_id_with_snapshots_is_session_exists_not_damage(stores: StoreFactory) -> None:
    # Found by an adversarial run: on PostgreSQL, creating (or forking to) an
    # id that exists and has a snapshot raised CorruptStore about snapshots
    # "put there outside the engine" on a healthy store.
    store = stores.open(snapshot_interval=2)
    store.create(session_id="taken")
    store.append("taken", Message.user("one"))
    store.append("taken", Message.assistant("two"))
    assert len(store._repository.backend.snapshots("taken")) == 1  # type: ignore[attr-defined]
    source = store.create()
    store.append(source, Message.user("hi"))
    for write in (
        lambda: store.create(session_id="taken"),
        lambda: store.fork(source, child_id="taken"),
        lambda: store.spawn(source, task="t", session_id="taken"),
    ):
        with pytest.raises(SessionExists):
            write()
    assert [m.text for m in store.verify("taken").messages] == ["one", "two"]
    assert store.unlisted_snapshots() == []


def test_forks_lists_the_sessions_forked_from_one_oldest_first(stores: StoreFactory) -> None:
    # Found by a newcomer: no call listed a session's forks.
    store = stores.open()
    source = store.create()
    store.append(source, Message.user("a"), Message.assistant("b"))
    first = store.fork(source)
    second = store.fork_at(source, 1)
    third = store.fork_replacing(source, 1, Message.assistant("c"))
    nested = store.fork(first)
    assert store.forks(source) == [first, second, third]
    assert store.forks(first) == [nested] and store.forks(nested) == []
    assert stores.open().forks(source) == [first, second, third]  # read from the store, not a cache
    store.delete(nested)
    assert store.forks(first) == []
    with pytest.raises(SessionNotFound):
        store.forks("nobody")


def test_an_id_a_message_of_the_session_has_is_refused_and_nothing_is_written(stores: StoreFactory) -> None:
    # Found by a newcomer pass: appends giving an id the session already had
    # were accepted, and erase(sid, that_id) then wiped both messages.
    store = stores.open()
    sid = store.create()
    store.append(sid, Message.user("my card is 4111", id="turn-7"), Message.assistant("Noted.", id="turn-8"))
    head = store.get(sid)
    taken = [
        lambda: store.append(sid, Message.assistant("I found your order.", id="turn-7")),
        lambda: store.append(sid, Message.user("again", id="fresh"), head.messages[1]),  # a message read back
        lambda: store.rewrite(sid, 1, 2, [Message.assistant("edited", id="turn-7")], "edit"),  # kept outside
        lambda: stores.open().append(sid, Message.user("cold", id="turn-8")),  # a store with nothing cached
    ]
    for write in taken:
        with pytest.raises(InvalidMessage, match=r"message [01] already has the id 'turn-[78]'"):
            write()
    assert stores.open().verify(sid) == head  # nothing was written
    store.rewrite(sid, 0, 2, [Message.user("my card is [redacted]", id="turn-7"), head.messages[1]], "redaction")
    fork = store.fork(sid)  # a fork holds its source's messages: their ids are taken there too
    with pytest.raises(InvalidMessage, match="message 0 already has the id 'turn-7'"):
        store.append(fork, Message.user("in the fork", id="turn-7"))
    store.append(fork, Message.user("in the fork", id="turn-9"))
    store.erase(sid, "turn-7")
    assert [m.erased is not None for m in stores.open().get(sid).messages] == [True, False]


def test_a_title_header_or_metadata_write_that_changes_nothing_writes_nothing(stores: StoreFactory) -> None:
    # Found by a newcomer pass: setting the title or status a session already
    # had was recorded, and removing a key it never had read "metadata removed zzz".
    store = stores.open()
    sid = store.create(title="t", metadata={"a": 1, "f": 0.0})
    store.set_tags(sid, ["x"])
    version = store.get(sid).version
    store.set_title(sid, "t")
    store.update_metadata(sid, {"a": 1})
    store.update_metadata(sid, remove=["never-set"])
    store.set_tags(sid, ("x",))
    store.set_pinned(sid, False)
    store.set_status(sid, store.get(sid).header.status)
    assert store.get(sid).version == version and stores.open().verify(sid).version == version
    store.update_metadata(sid, {"a": 1, "b": 2}, remove=["never-set"])  # what changes is written, only that
    store.update_metadata(sid, {"a": 1.0})  # 1.0 and True read back as themselves, not as 1
    store.update_metadata(sid, {"a": True})
    store.update_metadata(sid, {"f": -0.0})
    summaries = [entry.summary for entry in store.history(sid)[version:]]
    assert summaries == ["metadata set b", "metadata set a", "metadata set a", "metadata set f"]
    assert repr(stores.open().get(sid).metadata["f"]) == "-0.0"

    elsewhere = stores.open()  # another process changes the title this store has cached
    elsewhere.set_title(sid, "changed elsewhere")
    store.set_title(sid, "t")  # "t" as cached, not as stored: written
    assert stores.open().get(sid).title == "t"


def test_sessions_list_by_last_write_and_newest_first_and_page_so(stores: StoreFactory) -> None:
    # Asked for by a newcomer pass: a "recent conversations" list had to load
    # every row and sort it.
    store = stores.open()
    a, b, c, d = (store.create(title=f"chat {name}") for name in "ABCD")
    store.append(b, Message.user("I'm back!"))
    store.set_title(a, "chat A, renamed")
    recent = store.sessions(order="updated", newest_first=True)
    assert [info.id for info in recent] == [a, b, d, c]
    assert [info.id for info in store.sessions(newest_first=True)] == [d, c, b, a]
    assert [info.id for info in store.sessions(order="updated")] == [c, d, b, a]
    reopened = stores.open()
    assert [info.id for info in reopened.sessions(order="updated", newest_first=True, after=recent[1])] == [d, c]
    assert [info.id for info in reopened.sessions(newest_first=True, after=c, limit=1)] == [b]  # an id: by creation
    # Found by an adversarial pass: an id cursor in the order of last writes
    # paged from where a write since had moved the session, skipping or
    # repeating others. Only the SessionInfo says where it was listed.
    store.append(b, Message.assistant("written between two pages"))
    assert [info.id for info in reopened.sessions(order="updated", newest_first=True, after=recent[1])] == [d, c]
    with pytest.raises(InvalidArgument, match="not its id"):
        reopened.sessions(order="updated", after=recent[1].id)
    store.append(a, Message.user("back"))  # a moves to the top again, b stays second
    paged, cursor_info = [], None
    while True:
        page = reopened.sessions(order="updated", newest_first=True, limit=3, after=cursor_info)
        paged += [info.id for info in page]
        if len(page) < 3:
            break
        cursor_info = page[-1]
    assert paged == [a, b, d, c]
    gone = reopened.sessions(newest_first=True)[1]  # c, deleted: pages on from where it was listed
    store.delete(c)
    assert [info.id for info in stores.open().sessions(newest_first=True, after=gone)] == [b, a]
    for wrong in ({"order": "title"}, {"order": None}, {"newest_first": 1}):
        with pytest.raises(InvalidArgument, match=r"order=|newest_first="):
            store.sessions(**wrong)


def test_results_of_parallel_calls_are_added_as_they_come(stores: StoreFactory) -> None:
    # Asked for by a newcomer pass: the second result of parallel calls was
    # refused as a second tool_results message; every agent wrote the merge.
    store = stores.open()
    sid = store.create()
    calls = Message.assistant(
        ToolUse(id="c1", name="weather"), ToolUse(id="c2", name="trains"), ToolUse(id="c3", name="x")
    )
    store.append(sid, Message.user("weather and trains?"), calls)
    store.add_tool_results(sid, ToolResult.of("c2", "on time"))
    first_id = store.get(sid).messages[2].id
    elsewhere = stores.open()  # another process adds the next result: decided again on its write
    elsewhere.add_tool_results(sid, ToolResult.of("c1", "rain"))
    revision = store.add_tool_results(sid, ToolResult.of("c3", "done", is_error=True))
    head = stores.open().verify(sid)
    assert head.revision == revision and len(head.messages) == 3
    results = head.messages[2]
    assert results.id == first_id  # the message grew; its id stayed
    assert [(block.tool_use_id, block.content[0].text) for block in results.blocks] == [
        ("c2", "on time"),
        ("c1", "rain"),
        ("c3", "done"),
    ]
    assert [entry.summary.split(":")[0] for entry in store.history(sid)[-2:]] == ["late_content", "late_content"]
    for wrong in (ToolResult.of("c1", "again"), ToolResult.of("c9", "no such call")):
        with pytest.raises(InvalidTranscriptShape):
            store.add_tool_results(sid, wrong)
    store.append(sid, Message.assistant("Rain; the trains run."))
    with pytest.raises(InvalidTranscriptShape, match="does not end with tool calls waiting for results"):
        store.add_tool_results(sid, ToolResult.of("c1", "late"))
    with pytest.raises(InvalidArgument, match="needs at least one ToolResult"):
        store.add_tool_results(sid)
    with pytest.raises(InvalidMessage, match="is a str, not a ToolResult"):
        store.add_tool_results(sid, "rain")  # type: ignore[arg-type]
    assert stores.open().verify(sid).version == head.version + 1  # the refusals wrote nothing


def test_a_write_that_changes_nothing_on_a_session_deleted_and_created_again_is_refused(stores: StoreFactory) -> None:
    # Found by an adversarial pass: with the same title as the cached (deleted)
    # session's, set_title returned with nothing written, or wrote into the
    # new session, depending on its version.
    store = stores.open()
    for versions_after, title in ((0, "old title"), (1, "old title"), (1, "another title")):
        store.create(title="old title", session_id="t-9")
        store.get("t-9")  # cached here
        elsewhere = stores.open()  # think: another process
        elsewhere.delete("t-9")
        elsewhere.create(title="new title", session_id="t-9")
        for number in range(versions_after):
            elsewhere.update_metadata("t-9", {"n": number})
        with pytest.raises(ConcurrentWriteError):
            store.set_title("t-9", title)  # decided on the old log: never on the new session
        again = stores.open().get("t-9")
        assert (again.title, again.version) == ("new title", 1 + versions_after)  # nothing written to it
        store.set_title("t-9", title)  # the retry reads the session as it is now
        assert stores.open().get("t-9").title == title
        store.delete("t-9")


def test_an_id_that_is_another_messages_provider_item_id_is_refused(stores: StoreFactory) -> None:
    # Found by an adversarial pass: erase() takes a message by its id or its
    # provider item id, and an id equal to another message's item id let
    # erase(sid, "item_42") wipe both.
    store = stores.open()
    sid = store.create()
    balance = Message(role="assistant", blocks=(Text(text="Your balance is 120 EUR"),), provider_item_id="item_42")
    store.append(sid, balance)
    with pytest.raises(InvalidMessage, match=r"message 0 already has the id 'item_42' \(as its id or its provider"):
        store.append(sid, Message.user("Transfer 50 to Bob", id="item_42"))
    later = Message(role="user", blocks=(Text(text="ok"),), provider_item_id="msg_x")
    with pytest.raises(
        InvalidMessage,
        match=r"messages\[1\] has the id 'msg_x', which is the provider item id of append\(\) messages\[0\]",
    ):
        store.append(sid, later, Message.user("and this", id="msg_x"))
    store.append(sid, Message.user("Transfer 50 to Bob", id="turn-2"))
    assert store.erase(sid, "item_42") == [sid]
    assert [m.erased is not None for m in stores.open().get(sid).messages] == [True, False]


def test_a_provider_item_id_that_is_another_messages_id_is_refused(stores: StoreFactory) -> None:
    # Found by an adversarial pass: the converse was accepted by append,
    # rewrite and fork_replacing, and erase(sid, x) then took an unrelated
    # message too. The engine names a message after its revision, which
    # anyone who knows the content can work out.
    store = stores.open()
    sid = store.create()
    card = Message.user("my card is 4111")
    store.append(sid, card, Message.assistant("noted", id="turn-2"))
    named = _named(sid, 2, card)
    for taken, index in ((named, 0), ("turn-2", 1)):
        unrelated = Message(role="assistant", blocks=(Text(text="unrelated"),), provider_item_id=taken)
        said = f"provider item id '{taken}', which is the id of the session's message {index}"
        with pytest.raises(InvalidMessage, match=said):
            store.append(sid, unrelated)
        with pytest.raises(InvalidMessage, match=said):
            store.rewrite(sid, 2, 2, [unrelated])
        if index == 0:  # a fork replacing message 1 keeps message 0
            with pytest.raises(InvalidMessage, match=said):
                store.fork_replacing(sid, 1, unrelated)
    before = stores.open().get(sid)
    assert [m.id for m in before.messages] == [named, "turn-2"] and len(store.sessions()) == 1
    store.rewrite(sid, 1, 2, [Message(role="assistant", blocks=(Text(text="kept"),), provider_item_id="turn-2")])
    assert store.erase(sid, named) == [sid]  # the replaced message's id is free again; the card alone goes
    assert [m.erased is not None for m in stores.open().get(sid).messages] == [True, False]
