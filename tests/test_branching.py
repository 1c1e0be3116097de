"""Rewrites, restores, forks, lineage, diff and time travel by revision: the
contract suite, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from engine import (
    ConcurrentWriteError,
    InvalidArgument,
    InvalidForkPoint,
    InvalidRewriteRange,
    InvalidTranscriptShape,
    Message,
    NoOpRewrite,
    Reason,
    ReplaceBlock,
    ReplacementMismatch,
    RevisionConflict,
    RevisionNotFound,
    SessionExists,
    SessionNotFound,
    Text,
    ToolResult,
    ToolUse,
    Transcripts,
    VersionNotFound,
    revision_of,
)
from engine.state.revisions import EMPTY_REVISION, span_digest
from tests.conftest import StoreFactory


def texts(session: object) -> list[str]:
    return [message.text for message in session.messages]  # type: ignore[attr-defined]


def conversation(store: Transcripts, count: int = 6) -> str:
    sid = store.create(title="base")
    for index in range(count // 2):
        store.append(sid, Message.user(f"q{index}"), Message.assistant(f"a{index}"))
    return sid


def tool_conversation(store: Transcripts) -> str:
    sid = store.create()
    store.append(
        sid,
        Message.user("weather?"),
        Message.assistant("checking", ToolUse(id="t1", name="weather"), ToolUse(id="t2", name="clock")),
        Message.tool_results(ToolResult.of("t1", "rain"), ToolResult.of("t2", "noon")),
        Message.assistant("rain at noon"),
    )
    return sid


# -- rewrite ------------------------------------------------------------------


def test_rewrite_returns_an_audited_commit(store: Transcripts) -> None:
    sid = conversation(store)
    before = store.get(sid)
    summary = Message.system("summary of q0/a0")
    commit = store.rewrite(sid, 0, 2, [summary], "compaction", note="kept 4", actor="summariser")
    after = store.get(sid)
    assert texts(after) == ["summary of q0/a0", "q1", "a1", "q2", "a2"]
    assert (commit.parent_revision, commit.revision) == (before.revision, after.revision)
    assert (commit.start, commit.end, commit.count_before, commit.count_after) == (0, 2, 6, 5)
    assert commit.removed_digest == span_digest(before.messages[0:2])
    assert commit.replacement_digest == span_digest([summary])
    assert commit.reason == Reason(kind="compaction", note="kept 4")
    assert commit.actor == "summariser" and commit.version == after.version
    assert commit.generation == 4  # three appends, then this rewrite
    assert after.revision == revision_of(after.messages)
    assert store.revision_messages(sid, before.revision) == list(before.messages)
    assert store.history(sid)[-1].summary == "compaction (kept 4): [0, 2) replaced by 1 message"


def test_every_reason_kind(store: Transcripts) -> None:
    sid = conversation(store)
    for number, kind in enumerate(["edit", "compaction", "redaction", "truncation", "provider_deleted", "custom_kind"]):
        store.rewrite(sid, 0, 1, [Message.user(f"v{number}")], kind)
    store.restore(sid, store.revisions(sid)[0].revision)
    assert [c.reason.kind for c in store.revisions(sid)][3:] == [
        "edit",
        "compaction",
        "redaction",
        "truncation",
        "provider_deleted",
        "custom_kind",
        "restore",
    ]
    with pytest.raises(InvalidArgument):
        store.rewrite(sid, 0, 1, [Message.user("x")], "Not A Kind")


def test_rewrite_errors_write_nothing(store: Transcripts) -> None:
    sid = tool_conversation(store)
    history = store.history(sid)
    head = store.get(sid).revision
    bad: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: store.rewrite(sid, 3, 2, []), InvalidRewriteRange),
        (lambda: store.rewrite(sid, 0, 5, []), InvalidRewriteRange),
        (lambda: store.rewrite(sid, -1, 1, []), InvalidRewriteRange),
        (lambda: store.rewrite(sid, "0", 1, []), InvalidRewriteRange),  # type: ignore[arg-type]
        (lambda: store.rewrite(sid, 0, 1, [Message.user("weather?")]), NoOpRewrite),
        (lambda: store.rewrite(sid, 4, 4, []), NoOpRewrite),
        (lambda: store.rewrite(sid, 2, 3, []), InvalidTranscriptShape),  # tool uses lose their results
        (lambda: store.rewrite(sid, 2, 3, [Message.tool_results(ToolResult.of("t1", "x"))]), InvalidTranscriptShape),
        (lambda: store.rewrite(sid, 1, 2, [Message.assistant("no tools")]), InvalidTranscriptShape),
        (lambda: store.rewrite(sid, 0, 1, [Message.user("x")], expected_revision=EMPTY_REVISION), RevisionConflict),
        (lambda: store.rewrite(sid, 0, 1, ["text"]), InvalidArgument),  # type: ignore[list-item]
        (lambda: store.rewrite(sid, 0, 1, [Message.user("x")], reason=""), InvalidArgument),
    ]
    for call, error in bad:
        with pytest.raises(error):
            call()
    assert store.history(sid) == history
    assert store.get(sid).revision == head
    # A pending tool use at the very end is allowed: its results have not arrived yet.
    store.rewrite(sid, 2, 4, [])
    assert store.get(sid).messages[-1].tool_uses


def test_revision_conflict_carries_both_revisions(store: Transcripts) -> None:
    sid = conversation(store)
    stale = store.get(sid).revision
    store.append(sid, Message.user("newer"))
    with pytest.raises(RevisionConflict) as caught:
        store.rewrite(sid, 0, 1, [Message.user("edit")], expected_revision=stale)
    assert (caught.value.expected, caught.value.actual) == (stale, store.get(sid).revision)


def test_same_content_recurs_with_a_new_generation(store: Transcripts) -> None:
    sid = conversation(store, 2)
    a = store.get(sid).revision
    to_b = store.rewrite(sid, 0, 1, [Message.user("B")])
    back = store.restore(sid, a)
    assert back.revision == a and back.reason.kind == "restore"
    assert back.generation == to_b.generation + 1
    assert [c.revision for c in store.revisions(sid)] == [a, to_b.revision, a]
    assert store.get(sid, at=a).version == back.version  # the last state with that content


def test_restore_stores_only_the_changed_span(stores: StoreFactory) -> None:
    store = stores.open()
    sid = conversation(store, 40)
    original = store.get(sid)
    store.rewrite(sid, 10, 12, [Message.user("edited")])
    commit = store.restore(sid, original.revision, note="undo", actor="ops")
    assert store.get(sid).messages == original.messages  # ids too
    assert (commit.start, commit.end, commit.count_after) == (10, 11, 40)
    restored = store.history(sid)[-1].event
    assert len(restored.messages) == 2  # the two originals, not the whole transcript
    assert stores.open().get(sid) == store.get(sid)


def test_revision_messages_for_any_reached_revision(store: Transcripts) -> None:
    sid = conversation(store)
    reached = {store.get(sid, at=v).revision: list(store.get(sid, at=v).messages) for v in range(1, 5)}
    store.rewrite(sid, 2, 6, [Message.assistant("short")])
    reached[store.get(sid).revision] = list(store.get(sid).messages)
    for revision, messages in reached.items():
        assert list(store.revision_messages(sid, revision)) == messages
    from engine import RevisionNotFound

    with pytest.raises(RevisionNotFound):
        store.revision_messages(sid, revision_of([Message.user("never")]))


def test_diff_between_versions_and_revisions(store: Transcripts) -> None:
    sid = conversation(store)
    before = store.get(sid)
    store.rewrite(sid, 2, 4, [Message.user("merged")])
    after = store.get(sid)
    change = store.diff(sid, before.version, after.version)
    assert change.start == 2
    assert [m.text for m in change.removed] == ["q1", "a1"]
    assert [m.text for m in change.added] == ["merged"]
    assert store.diff(sid, before.revision, after.revision) == change
    assert store.diff(sid, after.version, after.version).removed == ()
    with pytest.raises(InvalidArgument):
        store.diff(sid, 1.5, 2)  # type: ignore[arg-type]


# -- forks --------------------------------------------------------------------


def test_fork_is_one_event_and_isolated_both_ways(stores: StoreFactory) -> None:
    store = stores.open()
    sid = conversation(store)
    source_history = store.history(sid)
    child = store.fork(sid, actor="tester")
    assert texts(store.get(child)) == texts(store.get(sid))
    assert store.get(child).revision == store.get(sid).revision
    assert [h.kind for h in store.history(child)] == ["session_forked"]
    assert store.history(sid) == source_history  # nothing written to the source
    store.append(sid, Message.user("source only"))
    store.append(child, Message.user("child only"))
    assert texts(store.get(sid))[-1] == "source only"
    assert texts(store.get(child))[-1] == "child only"
    assert "child only" not in texts(store.get(sid)) and "source only" not in texts(store.get(child))
    cold = stores.open()
    assert cold.get(child) == store.get(child) and cold.get(sid) == store.get(sid)
    lineage = store.lineage(child)
    assert (lineage.source, lineage.source_version, lineage.root, lineage.depth) == (sid, 4, sid, 1)
    assert store.get(child).title == "base" and store.get(child).usage.total == 0
    assert store.verify(child) == store.get(child)


def _reads_of(store: Transcripts, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int | None]]:
    """Every read of stored events ``store`` makes from now on: (session,
    after, upto)."""
    backend = store._repository.backend  # type: ignore[attr-defined]
    read, reads = backend.read, []

    def recorded(session_id: str, *, after: int = 0, upto: int | None = None) -> Any:
        reads.append((session_id, after, upto))
        return read(session_id, after=after, upto=upto)

    monkeypatch.setattr(backend, "read", recorded)
    return reads


def test_a_fork_by_a_store_that_has_not_read_its_source_reads_one_event_of_it(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = stores.open()
    sid = conversation(writer)  # "base", q0 a0 q1 a1 q2 a2: version 4
    writer.set_header(sid, tags=["support", "vip"], owner="ana", pinned=True)
    writer.set_status(sid, "active")
    writer.update_metadata(sid, {"customer": {"id": 7, "plan": ["pro", 2.5]}, "note": None})
    warm = writer.fork(sid)  # forked from the writer's cached state
    cold = stores.open()  # holds nothing of the source
    reads = _reads_of(cold, monkeypatch)
    child = cold.fork(sid, actor="tester")
    assert reads == [(sid, 0, 1)]  # its first event (the lineage's root), not its log
    monkeypatch.undo()
    fork = cold.get(child)
    assert texts(fork) == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert fork.title == "base" and fork.usage.total == 0 and fork.version == 1
    assert (fork.header.tags, fork.header.owner, fork.header.pinned) == (("support", "vip"), "ana", False)
    assert fork.header.status == "started"  # a fork is a new run
    assert dict(fork.metadata) == {"customer": {"id": 7, "plan": ["pro", 2.5]}, "note": None}
    lineage = cold.lineage(child)
    # Created, three appends, the header, the status, the metadata: version 7.
    assert (lineage.source, lineage.source_version, lineage.root, lineage.depth) == (sid, 7, sid, 1)
    assert fork.revision == writer.get(sid).revision
    assert [h.kind for h in cold.history(child)] == ["session_forked"]
    assert cold.history(child)[0].event.actor == "tester"  # type: ignore[attr-defined]
    # Its listing row is the one a fork from the state gets.
    listed = {info.id: info for info in cold.sessions()}
    ignored = {"id": "", "created_at": None, "updated_at": None}
    assert msgspec.structs.replace(listed[child], **ignored) == msgspec.structs.replace(listed[warm], **ignored)
    assert listed[child].created_at == listed[child].updated_at == fork.created_at
    assert stores.open().verify(child) == fork
    assert cold.forks(sid) == [warm, child]
    # A fork of that fork, again by a store that has not read it: depth 2, same root.
    grandchild = stores.open().fork(child)
    deeper = stores.open().lineage(grandchild)
    assert (deeper.source, deeper.source_version, deeper.root, deeper.depth) == (child, 1, sid, 2)
    assert texts(stores.open().verify(grandchild)) == texts(fork)


def test_a_fork_from_a_listing_row_is_refused_when_the_source_changes_as_it_is_written(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, cold = stores.open(), stores.open()
    sid = writer.create()
    writer.append(sid, Message.user("a"))
    backend = cold._repository.backend  # type: ignore[attr-defined]
    read = backend.read

    def another_writer_meanwhile(session_id: str, **bounds: Any) -> Any:  # after the row, before the write
        writer.append(sid, Message.assistant("b"))
        return read(session_id, **bounds)

    monkeypatch.setattr(backend, "read", another_writer_meanwhile)
    with pytest.raises(ConcurrentWriteError):
        cold.fork(sid, child_id="retry")
    monkeypatch.undo()
    assert "retry" not in [info.id for info in stores.open().sessions()]  # nothing written
    child = cold.fork(sid, child_id="retry")
    assert texts(stores.open().verify(child)) == ["a", "b"]


def test_a_fork_by_a_store_that_has_not_read_its_source_refuses_a_missing_source_or_a_taken_id(
    stores: StoreFactory,
) -> None:
    writer = stores.open()
    sid = conversation(writer, 2)
    taken = writer.create(session_id="taken")
    cold = stores.open()
    with pytest.raises(SessionNotFound):
        cold.fork("nowhere")
    with pytest.raises(SessionExists) as refused:
        cold.fork(sid, child_id=taken)
    # Its docstring promised the argument that named the id; it was not kept.
    assert refused.value.parameter == "child_id" and "omit child_id" in str(refused.value)
    with pytest.raises(InvalidArgument):
        cold.fork(["not", "an", "id"])  # type: ignore[arg-type]
    assert sorted(info.id for info in stores.open().sessions()) == sorted([sid, taken])
    assert stores.open().forks(sid) == []


def test_a_fork_from_a_listing_row_under_an_id_this_store_held_another_session_of_is_read_anew(
    stores: StoreFactory,
) -> None:
    # Found by an adversarial pass: the store object kept what it held of the
    # session deleted under that id, and its next write to the fork was
    # refused as a conflict.
    store, other = stores.open(), stores.open()
    reused = store.create(session_id="reused")
    store.append(reused, Message.user("the old session"))  # held by store
    source = conversation(other, 2)  # not read by store
    other.delete(reused)
    child = store.fork(source, child_id="reused")
    store.append(child, Message.user("on the fork"))
    assert texts(store.get(child)) == ["q0", "a0", "on the fork"]
    assert texts(stores.open().verify(child)) == ["q0", "a0", "on the fork"]


def test_fork_at(store: Transcripts) -> None:
    sid = tool_conversation(store)
    assert texts(store.get(store.fork_at(sid, 1))) == ["weather?"]
    assert texts(store.get(store.fork_at(sid, 0))) == []
    assert len(store.get(store.fork_at(sid, 4)).messages) == 4
    assert store.lineage(store.fork_at(sid, 3)).fork_index == 3
    for bad in (-1, 5, 2):  # 2 would split the tool uses from their results
        with pytest.raises(InvalidForkPoint):
            store.fork_at(sid, bad)
    with pytest.raises(InvalidForkPoint):
        store.fork_at(sid, "1")  # type: ignore[arg-type]
    assert len(store.sessions()) == 5  # the source and four forks: failures wrote nothing


def test_fork_replacing_a_message_or_a_block(store: Transcripts) -> None:
    sid = tool_conversation(store)
    edited = store.get(store.fork_replacing(sid, 0, Message.user("weather in Oslo?")))
    assert texts(edited) == ["weather in Oslo?"]
    block = store.get(store.fork_replacing(sid, 0, ReplaceBlock(index=0, block=Text(text="weather in Bergen?"))))
    assert texts(block) == ["weather in Bergen?"]
    assistant = store.get(store.fork_replacing(sid, 3, ReplaceBlock(index=0, block=Text(text="sunny"))))
    assert texts(assistant)[-1] == "sunny" and len(assistant.messages) == 4
    result = store.get(store.fork_replacing(sid, 2, ReplaceBlock(index=1, block=ToolResult.of("t2", "dusk"))))
    assert result.messages[-1].blocks[1] == ToolResult.of("t2", "dusk")
    assert result.messages[-1].id != store.get(sid).messages[2].id  # an edited message is a new message
    assert store.lineage(store.fork_replacing(sid, 0, Message.user("x"))).fork_index == 0


def test_fork_replacing_errors(store: Transcripts) -> None:
    sid = tool_conversation(store)
    cases: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: store.fork_replacing(sid, 4, Message.user("x")), InvalidForkPoint),
        (lambda: store.fork_replacing(sid, -1, Message.user("x")), InvalidForkPoint),
        (lambda: store.fork_replacing(sid, 0, Message.assistant("x")), ReplacementMismatch),
        (lambda: store.fork_replacing(sid, 0, ReplaceBlock(index=3, block=Text(text="x"))), ReplacementMismatch),
        (
            lambda: store.fork_replacing(sid, 0, ReplaceBlock(index=0, block=ToolUse(id="u", name="f"))),
            ReplacementMismatch,
        ),
        (lambda: store.fork_replacing(sid, 2, Message.tool_results(ToolResult.of("zz", "x"))), InvalidTranscriptShape),
        (lambda: store.fork_replacing(sid, 0, "x"), InvalidArgument),  # type: ignore[arg-type]
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
    assert len(store.sessions()) == 1


def test_forks_of_forks(stores: StoreFactory) -> None:
    store = stores.open(snapshot_interval=2)
    root = conversation(store, 4)
    chain = [root]
    for depth in range(1, 13):
        child = store.fork(chain[-1]) if depth % 2 else store.fork_at(chain[-1], len(store.get(chain[-1]).messages) - 2)
        store.append(child, Message.user(f"depth {depth}"), Message.assistant(f"reply {depth}"))
        chain.append(child)
    deepest = store.get(chain[-1])
    assert deepest.lineage.root == root and deepest.lineage.depth == 12
    cold = stores.open(snapshot_interval=2)
    assert cold.get(chain[-1]) == deepest
    assert cold.verify(chain[-1]) == deepest
    assert cold.get(chain[5], at=1).lineage.source == chain[4]


def test_time_travel_by_revision_across_rewrites_and_forks(store: Transcripts) -> None:
    sid = conversation(store)
    child = store.fork_at(sid, 2)
    forked_revision = store.get(child).revision
    store.append(child, Message.user("later"))
    assert store.get(child, at=forked_revision).version == 1
    commit = store.rewrite(child, 0, 1, [Message.user("edited")])
    assert store.get(child, at=commit.parent_revision).revision == commit.parent_revision
    assert texts(store.get(child, at=commit.revision)) == ["edited", "a0", "later"]


@pytest.mark.parametrize("interval", [1, 3, None])
def test_snapshots_and_reloads_agree_with_rewrites_and_forks(stores: StoreFactory, interval: int | None) -> None:
    store = stores.open(snapshot_interval=interval)
    sid = conversation(store, 8)
    store.rewrite(sid, 1, 3, [Message.assistant("squashed")], "compaction")
    child = store.fork_replacing(sid, 2, Message.assistant("alternative"))
    store.append(child, Message.user("more"))
    store.rewrite(child, 0, 1, [], "redaction")
    store.append(sid, Message.user("tail"))
    for session in (sid, child):
        expected = [store.get(session, at=v) for v in range(1, store.get(session).version + 1)]
        for reader in (stores.open(snapshot_interval=interval), stores.open(snapshot_interval=None)):
            assert [reader.get(session, at=v) for v in range(1, len(expected) + 1)] == expected
            assert reader.verify(session) == expected[-1]


def test_a_fork_can_start_from_any_past_state(stores: StoreFactory) -> None:
    # Found by a newcomer pass: after a compaction, "retry the answer from
    # version 2" had no call; forks started from the head only.
    store = stores.open()
    sid = store.create(title="Support")
    store.append(sid, Message.user("Where is my order?"), Message.assistant("It shipped."))
    store.append(sid, Message.user("Thanks"), Message.assistant("Anything else?"))
    before = store.get(sid)  # version 3
    store.compact(sid, 0, 2, Message.system("(summary) the order shipped"))
    head = store.get(sid)

    retry = store.fork_replacing(sid, 1, Message.assistant("It ships tomorrow."), at=before.version)
    whole = store.fork(sid, at=before.revision)
    early = store.fork_at(sid, 2, at=before.updated_at)  # a time: the state after the last event by then
    for child, texts, version in (
        (retry, ["Where is my order?", "It ships tomorrow."], 3),
        (whole, ["Where is my order?", "It shipped.", "Thanks", "Anything else?"], 3),
        (early, ["Where is my order?", "It shipped."], 3),
    ):
        fresh = stores.open()  # a cold reopen rebuilds the fork from its source's past
        assert [m.text for m in fresh.verify(child).messages] == texts
        assert fresh.lineage(child).source_version == version
    assert store.get(whole).revision == before.revision
    assert stores.open().verify(sid) == head  # the source is untouched
    store.append(early, Message.user("And the invoice?"))
    assert [m.text for m in stores.open().get(early).messages][-1] == "And the invoice?"
    assert store.forks(sid) == [retry, whole, early]

    for wrong, error in ((99, VersionNotFound), ("sha256:" + "0" * 64, RevisionNotFound)):
        with pytest.raises(error):
            store.fork(sid, at=wrong)
    with pytest.raises(InvalidForkPoint):
        store.fork_at(sid, 5, at=before.version)  # past the 4 messages it had then
    assert store.forks(sid) == [retry, whole, early]  # nothing was written


def test_a_fork_of_a_past_state_is_refused_when_the_source_changes_as_it_is_written(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, elsewhere = stores.open(), stores.open()
    sid = store.create()
    store.append(sid, Message.user("a"), Message.assistant("b"))
    elsewhere.append(sid, Message.user("c"))  # before the fork reads the source: read, nothing refused
    repository = store._repository  # type: ignore[attr-defined]
    commit = repository.commit

    def another_writer_first(*args: Any) -> Any:  # another process appends between the read and the write
        elsewhere.append(sid, Message.assistant("d"))
        return commit(*args)

    monkeypatch.setattr(repository, "commit", another_writer_first)
    with pytest.raises(ConcurrentWriteError):
        store.fork(sid, at=2)
    monkeypatch.undo()
    child = store.fork(sid, at=2)  # read again: written
    assert [m.text for m in stores.open().verify(child).messages] == ["a", "b"]
    assert stores.open().lineage(child).source_version == 2
    assert store.forks(sid) == [child]


def test_fork_replacing_in_a_session_of_no_messages_says_it_has_none(store: Transcripts) -> None:
    # Found by a newcomer: it said "index 0 is outside 0..-1", a range of nothing.
    sid = store.create(session_id="empty")
    with pytest.raises(InvalidForkPoint) as refused:
        store.fork_replacing(sid, 0, Message.user("x"))
    assert str(refused.value) == (
        "fork_replacing index 0: session 'empty' has no messages (at version 1), so there is none to replace; "
        "fork it with fork_at(session_id, 0), then append"
    )
    assert store.forks(sid) == []  # nothing made
