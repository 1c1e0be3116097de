"""``Transcripts``: the public facade. Each command checks its arguments
into a command value, takes the head from the repository, asks the decision
layer for the events, and commits them; each query reads through the
repository. Reads that replay a log are in ``_reads``, erasure and deletion
in ``_erasure``."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import msgspec

from engine import decisions
from engine.decisions import (
    AddToolResults,
    Append,
    Create,
    Fork,
    IngestOutcome,
    OutOfBandResponse,
    Pending,
    RecordUsage,
    Restore,
    Rewrite,
    SetHeader,
    SetTitle,
    UpdateMetadata,
    check_actor,
    check_metadata,
    check_session_id,
    clock,
    commit_of,
    decide,
)
from engine.decisions._checks import check_stored_text
from engine.decisions.records import AskQuestion, ClearQuestion, Compact, SetTaskList, SpawnChild, UpdateTask
from engine.errors import (
    ConcurrentWriteError,
    EventTooLarge,
    InvalidArgument,
    InvalidRevision,
    SessionExists,
    SessionNotFound,
    VersionNotFound,
)
from engine.facade import _erasure, _reads, _tail
from engine.facade._reads import Diff, FeedEvent, HistoryEntry, SessionInfo
from engine.facade._repository import DEFAULT_MAX_EVENT_BYTES, Repository
from engine.realtime.providers import adapter_for
from engine.state.content import Message, ReplaceBlock, ToolResult, Usage, shown
from engine.state.events import MessagesRewritten
from engine.state.records import Task, ToolCall
from engine.state.revisions import Commit, Reason, parse_revision
from engine.state.sequence import MessageSeq
from engine.state.transcript import Lineage, Session, Tail
from engine.store import Backend, ClosedBackend, ListingFilter, open_backend

__all__ = ["Transcripts"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: How often a write is decided and tried when other writers of the session
#: keep committing first (spawn(): the parent's record of the child).
_WRITE_ATTEMPTS = 5

#: Writes whose meaning does not depend on where the session's messages are:
#: when another writer committed first, they are decided again on the newer
#: head. A rewrite, restore or compaction names messages by index or revision
#: as the caller saw them, so it is decided again only with expected_revision.
_DECIDED_AGAIN = (
    Append,
    AddToolResults,
    SetTitle,
    SetHeader,
    UpdateMetadata,
    RecordUsage,
    SetTaskList,
    UpdateTask,
    AskQuestion,
    ClearQuestion,
)


def _pause(attempt: int) -> None:
    """A random pause, bound doubling with each attempt: writers that
    collided spread out."""
    time.sleep(random.uniform(0, 0.002 * 2**attempt))


_RACING: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def _alone(repository: Repository, session_id: str, needed: bool) -> contextlib.AbstractContextManager[None]:
    """The backend's ``writing_alone`` block for ``session_id`` if ``needed``."""
    return repository.backend.writing_alone(session_id) if needed else _RACING


def _sharing_the_store(
    method: Callable[Concatenate[Transcripts, _P], _R],
) -> Callable[Concatenate[Transcripts, _P], _R]:
    """A read that holds a share of the store from start to end: ``close()``,
    ``erase`` and ``delete`` wait for it instead of changing the store (or
    closing its connections) under it."""

    @functools.wraps(method)
    def call(self: Transcripts, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._repository.locks.holding():
            return method(self, *args, **kwargs)

    return call


class Transcripts:
    """A store of sessions, each an append-only log of typed events.

    Open one with :meth:`open`. Every method is safe to call from several
    threads; several processes may share a SQLite file or a PostgreSQL
    database (writers of one session are serialised by optimistic concurrency).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        lock_timeout: float = 10,
    ) -> None:
        self._repository = Repository(
            backend,
            snapshot_interval=snapshot_interval,
            cache_size=cache_size,
            max_event_bytes=max_event_bytes,
            lock_timeout=lock_timeout,
        )
        self._shared_async: object = None  # see engine.facade.aio.shared_async

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str] | None = None,
        *,
        snapshot_interval: int | None = 100,
        cache_size: int = 1024,
        table_prefix: str = "transcripts",
        synchronous: str = "full",
        lock_timeout: int = 10,
        seal_key: bytes | None = None,
        seal_legacy: bool = False,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        create: bool = True,
    ) -> Transcripts:
        """Open a store: in memory (no argument), a SQLite file, or PostgreSQL.

        ``snapshot_interval``: write a snapshot every that many events of a
        session; ``None``: neither write nor use snapshots (every load
        re-hashes the whole history). Snapshots only speed up loading.
        ``synchronous`` (SQLite): ``"full"`` (default, durable on power loss),
        ``"normal"`` or ``"off"``; another value than ``"full"`` is refused for
        a memory or PostgreSQL store, where it would do nothing.
        ``table_prefix`` names the tables, so several stores can share one
        database. ``lock_timeout`` (seconds, default 10): the
        longest a write waits for another writer's lock (SQLite's busy
        timeout, PostgreSQL's ``lock_timeout``), and the longest a call waits
        for its turn behind this process's other calls on the same session,
        before it fails with :class:`StorageUnavailable` having written
        nothing; on PostgreSQL each statement of a write is also bounded (60 s). ``seal_key`` (bytes,
        kept outside the store): seal listing rows with an HMAC under that key
        instead of a plain SHA-256, so that even someone who can write to the
        store and knows the algorithm cannot alter a session unnoticed; every
        opening of the store must then pass the same key. A store written
        before rows were sealed (version 0.1) is sealed when first opened;
        with a ``seal_key`` only if ``seal_legacy=True`` says it is such a
        store (else ``CorruptStore``: someone may have removed the seals).
        ``max_event_bytes``
        (default 16 MiB; ``None``: no limit): a write that would store a larger
        event (one ``append`` call is one event) is refused with
        :class:`EventTooLarge` before anything is sent. ``create=False``: open
        only a store that is there (else :class:`StorageUnavailable`), never
        creating a file or tables, for tools that only look.
        """
        if not isinstance(create, bool):
            raise InvalidArgument(f"create must be a bool, got {shown(create)}")
        backend = open_backend(
            target,
            table_prefix=table_prefix,
            synchronous=synchronous,
            lock_timeout=lock_timeout,
            seal_key=seal_key,
            seal_legacy=seal_legacy,
            create=create,
        )
        try:
            return cls(
                backend,
                snapshot_interval=snapshot_interval,
                cache_size=cache_size,
                max_event_bytes=max_event_bytes,
                lock_timeout=lock_timeout,
            )
        except BaseException:
            backend.close()
            raise

    def close(self) -> None:
        self._repository.close()

    def __enter__(self) -> Transcripts:
        backend = self._repository.backend
        if isinstance(backend, ClosedBackend):
            raise backend.closed_error()  # not at the first call inside the block
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transcripts({self._repository.backend.describe()!r})"

    # -- commands ---------------------------------------------------------

    def create(
        self,
        /,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        session_id: str | None = None,
        **header: Any,
    ) -> str:
        """Start a session and return its id (a fresh UUID unless ``session_id``).
        ``header`` fields (``status``, ``tags``, ``model``, ``owner``, ...) are
        set in the same transaction, as the session's second event."""
        command = Create.of(title, metadata, actor=actor, session_id=session_id, header=header)
        decision = decide(None, command, clock())
        with self._repository.locks.holding(command.session_id):
            self._repository.commit(None, decision.events, decision.state)
        return command.session_id

    def append(
        self,
        session_id: str,
        *messages: Message,
        expected_revision: str | None = None,
        usage: Usage | None = None,
        actor: str | None = None,
    ) -> str:
        """Append messages (and optionally their usage) in one transaction.

        Messages without an ``id`` get one. Returns the new head revision.
        With ``expected_revision``, raises :class:`RevisionConflict` (and
        writes nothing) unless the session is at exactly that revision.
        """
        if not messages:
            raise InvalidArgument("append() needs at least one message")
        command = Append.of(messages, usage=usage, actor=actor, expected_revision=expected_revision)
        return self._decide(session_id, command).state.revision

    def add_tool_results(
        self,
        session_id: str,
        *results: ToolResult,
        expected_revision: str | None = None,
        actor: str | None = None,
    ) -> str:
        """Record results of the last assistant message's tool calls as they
        come (parallel calls ending one by one): the first start the
        ``tool_results`` message after it, and later ones join that message
        (a rewrite with reason ``late_content``, its id kept). Raises
        :class:`InvalidTranscriptShape` (writing nothing) if the session does
        not end with those calls, or for a result of a call that is not
        there or is answered already. Returns the new head revision."""
        if not results:
            raise InvalidArgument("add_tool_results() needs at least one ToolResult")
        command = AddToolResults.of(results, actor=actor, expected_revision=expected_revision)
        return self._decide(session_id, command).state.revision

    def set_title(self, session_id: str, title: str | None, *, actor: str | None = None) -> None:
        """Set (or, with ``None``, clear) the session's title."""
        self._decide(session_id, SetTitle.of(title, actor=actor))

    def set_status(self, session_id: str, status: str, *, outcome: str | None = None, actor: str | None = None) -> None:
        """Move the session to ``status`` (one of ``engine.state.header.STATUSES``),
        as the lifecycle allows (``InvalidStatusTransition`` otherwise), with
        the ``outcome`` it ended with if given (a sub-agent's result, say)."""
        changes = {"status": status} if outcome is None else {"status": status, "outcome": outcome}
        self._decide(session_id, SetHeader.of(changes, actor=actor))

    def set_tags(self, session_id: str, tags: Iterable[str], *, actor: str | None = None) -> None:
        """Replace the session's tags (distinct, non-empty strings, in order)."""
        self._decide(session_id, SetHeader.of({"tags": tags}, actor=actor))

    def set_pinned(self, session_id: str, pinned: bool, *, actor: str | None = None) -> None:
        """Pin the session, or unpin it."""
        self._decide(session_id, SetHeader.of({"pinned": pinned}, actor=actor))

    def set_header(self, session_id: str, /, *, actor: str | None = None, **fields: Any) -> None:
        """Give header fields new values in one audited change: ``status``,
        ``tags``, ``pinned``, the settings of record ``model``,
        ``reasoning_effort``, ``system_prompt``, ``agent``, ``owner``,
        ``locale`` (``None`` clears one), and the ``outcome`` of a run that
        ended (only with an ended status; running again clears it)."""
        self._decide(session_id, SetHeader.of(fields, actor=actor))

    # -- child sessions and records (engine.state.records) ---------------------

    def spawn(
        self,
        parent: str,
        /,
        *,
        task: str | None = None,
        name: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
        session_id: str | None = None,
        **header: Any,
    ) -> str:
        """Start a child session of ``parent`` (a sub-agent given ``task``,
        named ``name``) and return its id. The child is a new conversation,
        not a fork: it starts empty, with ``header`` fields if given
        (``model=...``, ``agent=...``). Its first event names its parent, the
        family's root and its spawn depth; the parent records the child
        (``ChildSpawned``) just before, so both appear in ``history()``.
        Other writers of the parent are raced four times, then waited for
        (as by an append); a ``ConcurrentWriteError`` means nothing was
        written. If the child's own write fails after the parent's record,
        the error is raised and :meth:`children` leaves out the child the
        record names."""
        command = SpawnChild.of(
            task=task, name=name, title=title, metadata=metadata, header=header, actor=actor, child_id=session_id
        )
        repository = self._repository
        with repository.locks.holding(parent, command.child_id):
            if repository.backend.session_row(command.child_id) is not None:
                raise SessionExists(command.child_id)
            # The parent's record first: a conflict there leaves nothing written.
            for attempt in range(_WRITE_ATTEMPTS):
                with _alone(repository, parent, attempt == _WRITE_ATTEMPTS - 1):  # as in _decide
                    head = repository.head(parent)
                    child = decisions.spawned(head, command, clock())  # every check, before anything is written
                    decision = decide(head, command, clock())
                    try:
                        repository.commit(head, decision.events, decision.state)
                        break
                    except ConcurrentWriteError:  # another writer of the parent: try again on its new head
                        if attempt == _WRITE_ATTEMPTS - 1:
                            raise
                _pause(attempt)
            repository.commit(None, child.events, child.state)
        return command.child_id

    @_sharing_the_store
    def children(self, session_id: str) -> list[Session]:
        """The child sessions ``session_id`` spawned, oldest first, each as it
        is now (its status, outcome, transcript). A child deleted since is
        left out. ``get(sid).children`` has the parent's records at any version."""
        records = self.get(session_id).children
        # A child deleted and spawned again under its id has two records: the
        # session is the last one's.
        last = {child.session_id: index for index, child in enumerate(records)}
        found = []
        for index, child in enumerate(records):
            if last[child.session_id] != index:
                continue
            try:
                state = self.get(child.session_id)
            except SessionNotFound:
                continue
            if state.parent == session_id:  # not another session that took a deleted child's id
                found.append(state)
        return found

    def set_task_list(self, session_id: str, tasks: Iterable[Task] | None, *, actor: str | None = None) -> None:
        """Replace the session's task list (``None``: remove it). Task ids are
        distinct; statuses are those of ``engine.state.records.TASK_STATUSES``."""
        self._decide(session_id, SetTaskList.of(tasks, actor=actor))

    def update_task(
        self,
        session_id: str,
        task_id: str,
        *,
        status: str | None = None,
        notes: str | None = None,
        criteria_met: Iterable[str] | None = None,
        actor: str | None = None,
    ) -> Task:
        """Change one task of the list and return it as it is now."""
        decision = self._decide(
            session_id, UpdateTask.of(task_id, status=status, notes=notes, criteria_met=criteria_met, actor=actor)
        )
        tasks = decision.state.task_list
        assert tasks is not None
        return next(task for task in tasks if task.id == task_id)

    def set_pending_question(
        self,
        session_id: str,
        question: str,
        options: Iterable[str] = (),
        *,
        allow_custom: bool = True,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Record a question the agent waits on the user for (replacing one
        pending), with the choices offered."""
        command = AskQuestion.of(
            question, options, allow_custom=allow_custom, tool_call_id=tool_call_id, tool_name=tool_name, actor=actor
        )
        self._decide(session_id, command)

    def clear_pending_question(self, session_id: str, *, answer: str | None = None, actor: str | None = None) -> None:
        """Clear the pending question, recording the user's ``answer`` if
        given (one of the options unless custom answers are allowed).
        ``InvalidArgument`` if no question is pending."""
        self._decide(session_id, ClearQuestion.of(answer=answer, actor=actor))

    def compact(
        self,
        session_id: str,
        start: int,
        end: int,
        summary: Iterable[Message] | Message,
        *,
        trigger: str = "manual",
        tokens_before: int | None = None,
        tokens_after: int | None = None,
        model: str | None = None,
        latency_ms: int | None = None,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Replace messages ``[start, end)`` (at least one) with ``summary``
        as a rewrite with reason ``compaction`` whose event carries its
        figures (``Session.compactions``). Every rule of :meth:`rewrite`
        holds; the messages replaced stay in the history. A plain
        ``rewrite(..., "compaction")`` records no figures."""
        command = Compact.of(
            start,
            end,
            summary,
            trigger=trigger,
            tokens_before=tokens_before,
            tokens_after=tokens_after,
            model=model,
            latency_ms=latency_ms,
            note=note,
            actor=actor,
            expected_revision=expected_revision,
        )
        decision = self._decide(session_id, command)
        event = decision.events[0]
        assert isinstance(event, MessagesRewritten)
        return commit_of(event, decision.state.version, len(decision.state.messages))

    @_sharing_the_store
    def tool_calls(self, session_id: str) -> list[ToolCall]:
        """The tool-call audit: every tool call the session's history ever
        held (a fork's from its source too), in the order they were first
        written, each with its result, error flag, when the call and the
        result were written (so how long the tool took, as the transcript saw
        it), and where both are in the transcript now (``None`` once
        rewritten or compacted away). ``Session.tool_calls`` is the calls a
        state holds, without times."""
        return _reads.tool_calls(self._repository, session_id)

    def generate_title(
        self, session_id: str, *, width: int = 47, force: bool = False, actor: str | None = None
    ) -> str | None:
        """Title the session after its first user message (cut to ``width``
        characters, first line only), as an audited title change; a session
        that has a title keeps it unless ``force``. NUL characters, which a
        title cannot hold, are left out. Returns the title now (``None`` if
        there is no user message to take it from)."""
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InvalidArgument(f"width is how many characters to keep (an int >= 1), got {shown(width)}")
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be a bool, got {shown(force)}")
        session = self.get(session_id)
        if session.title is not None and not force:
            return session.title
        first = next((message for message in session.messages if message.role == "user"), None)
        # Without NUL characters, which a title cannot hold (a message can).
        text = first.text.replace("\x00", "") if first is not None else ""
        lines = [" ".join(line.split()) for line in text.splitlines()]
        line = next((line for line in lines if line), None)
        if line is None:
            return session.title
        title = line if len(line) <= width else line[: width - 1] + "…"
        if title != session.title:
            self._decide(session_id, SetTitle.of(title, actor=actor))
        return title

    def update_metadata(
        self,
        session_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        remove: Iterable[str] = (),
        actor: str | None = None,
    ) -> None:
        """Set the keys in ``values`` and remove the keys in ``remove``."""
        self._decide(session_id, UpdateMetadata.of(values, remove=remove, actor=actor))

    def record_usage(
        self, session_id: str, usage: Usage, *, response_id: str | None = None, actor: str | None = None
    ) -> None:
        """Add the token usage of one model response to the session's total.
        ``response_id`` is kept with the record (history shows it); it does
        not make the call idempotent: a call repeated with the same one
        counts again, so a retry after an error that may have committed
        should check ``history()`` first. Realtime ingestion records each
        response's usage once by itself."""
        self._decide(session_id, RecordUsage.of(usage, response_id=response_id, actor=actor))

    def rewrite(
        self,
        session_id: str,
        start: int,
        end: int,
        replacement: Iterable[Message] = (),
        reason: str | Reason = "edit",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Replace messages ``[start, end)`` with ``replacement`` as one audited
        commit, and return it.

        Only the replacement is stored. Raises, writing nothing:
        :class:`RevisionConflict` if ``expected_revision`` is not the head,
        :class:`InvalidRewriteRange`, :class:`NoOpRewrite` if the content would
        not change, :class:`InvalidTranscriptShape` if tool pairing would break.
        """
        command = Rewrite.of(
            start, end, replacement, reason, note=note, actor=actor, expected_revision=expected_revision
        )
        return self._committed(session_id, command)

    def restore(
        self,
        session_id: str,
        revision: str,
        reason: str | Reason = "restore",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Make the transcript what it was at ``revision`` (any revision the
        session reached), as a new audited commit. Only the span that differs
        from the head is stored."""
        command = Restore.of(revision, reason, note=note, actor=actor, expected_revision=expected_revision)
        target = tuple(self.revision_messages(session_id, revision))
        return self._committed(session_id, msgspec.structs.replace(command, target=target))

    def fork(
        self,
        session_id: str,
        *,
        at: int | str | datetime | None = None,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> str:
        """A new session holding this one's transcript as it is now, or as it
        was ``at`` an event version, a revision or a time (as :meth:`get`
        reads it). O(1): one event naming the source and its version; nothing
        is copied. A store object that has not read the source forks it whole
        (no ``at``) from its listing row and first event, without reading its
        log (``fork_at``, ``fork_replacing`` and ``at`` read the source
        first). Raises :class:`ConcurrentWriteError` (and writes nothing)
        if another writer changed the source between reading it and writing
        the fork: call it again. The same holds for :meth:`fork_at` and
        :meth:`fork_replacing`."""
        return self._fork(session_id, Fork.whole(actor=actor, child_id=child_id), at)

    def fork_at(
        self,
        session_id: str,
        index: int,
        *,
        at: int | str | datetime | None = None,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> str:
        """A new session holding ``messages[:index]`` (of the session now, or
        ``at`` an earlier point). Raises :class:`InvalidForkPoint` if
        ``index`` is out of range or would split a tool-use message from its
        results."""
        return self._fork(session_id, Fork.at(index, actor=actor, child_id=child_id), at)

    def fork_replacing(
        self,
        session_id: str,
        index: int,
        replacement: Message | ReplaceBlock,
        *,
        at: int | str | datetime | None = None,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> str:
        """Edit and retry: a new session holding ``messages[:index]`` followed by
        ``replacement``, a whole message of the same role or one
        :class:`ReplaceBlock` inside message ``index`` (of the session now,
        or ``at`` an earlier point)."""
        return self._fork(session_id, Fork.replacing(index, replacement, actor=actor, child_id=child_id), at)

    def erase(
        self,
        session_id: str,
        *message_ids: str,
        reason: str | Reason = "erasure",
        note: str | None = None,
        actor: str | None = None,
    ) -> list[str]:
        """Remove the content of the messages ``message_ids`` from every
        stored event that holds it: in this session's log, in the logs of the
        sessions it was forked from or that were forked from it, and in
        realtime audit records about the same provider items. Each message
        becomes a placeholder (``Message.erased`` holds the digest its
        content had), so revisions, snapshots and the chain still verify;
        each rewritten log gets an audited ``MessagesErased`` event (who,
        when, why, which ids and digests; never the content). On SQLite the
        freed bytes are overwritten and the WAL is checkpointed and truncated.

        A fork that showed the content without holding it (inherited from its
        source) gets a ``MessagesErased`` record too, so every copy of it
        cached anywhere catches up. Returns the ids of the sessions that got a
        record (empty if every message was erased already). Raises ``InvalidArgument`` if a
        message id never occurs in the session's history; then nothing changes.
        """
        return _erasure.erase(self._repository, session_id, message_ids, reason, note, actor)

    def delete(self, session_id: str, *, with_forks: bool = False, with_children: bool = False) -> list[str]:
        """Remove a session: its events, listing row and snapshots, from the
        store's files too (as :meth:`erase` does). Its forks read their shared
        history from its log, so a session with forks is refused with
        :class:`SessionHasForks` unless ``with_forks=True``, which deletes
        them (and their forks) too. Content a fork inherited from the
        sessions it was forked from stays in their logs: erase it there.
        A session with child sessions (see :meth:`spawn`) is refused with
        :class:`SessionHasChildren` unless ``with_children=True``, which
        deletes them (and theirs) too. No trace of a deleted session is kept.
        Returns the deleted ids. If readers still hold the old bytes after
        ``lock_timeout``, :class:`StorageUnavailable` says the deletion is
        committed and how its old rows go (docs/erasure.md)."""
        return _erasure.delete(self._repository, session_id, with_forks, with_children)

    # -- realtime ingestion ------------------------------------------------

    def ingest(
        self, session_id: str, event: object, *, provider: str | None = None, actor: str | None = None
    ) -> IngestOutcome:
        """Ingest one realtime event: a canonical event (``engine.realtime``),
        or a raw provider server event (a dict, or ``str``/``bytes`` of JSON)
        with ``provider="openai"``. Idempotent: a redelivered event is a
        ``duplicate`` and stores nothing. Never raises for bad input: a
        malformed event is ``rejected`` with a reason and changes nothing."""
        return self.ingest_many(session_id, [event], provider=provider, actor=actor)[0]

    def ingest_many(
        self, session_id: str, events: Iterable[object], *, provider: str | None = None, actor: str | None = None
    ) -> list[IngestOutcome]:
        """Ingest events in order, storing everything they accept in one transaction."""
        check_session_id(session_id)
        check_actor(actor)
        adapter = None if provider is None else adapter_for(provider)
        if type(events) not in (list, tuple) and (
            isinstance(events, (str, bytes, dict)) or not isinstance(events, Iterable)
        ):
            raise InvalidArgument(
                f"ingest_many() takes an iterable of events (a list), got {type(events).__name__}; "
                "use ingest() for one event"
            )
        translated = decisions.translate(list(events), provider, adapter)
        repository = self._repository
        with repository.locks.holding(session_id):
            known = repository.realtime.get(session_id)
            redelivered = decisions.duplicate_reasons(known[1], translated) if known is not None else None
            if known is not None and redelivered is not None:
                # Redelivery needs no I/O: what this store already accepted is
                # still accepted in any newer state of the session, whose
                # version is the newest this store has seen (its own writes
                # since the ingestion included).
                cached = repository.cache.get(session_id)
                version = max(known[0], cached.version if cached is not None else 0)
                found = iter(redelivered)
                return [
                    IngestOutcome(status=c[0], reason=c[1], version=version)
                    if isinstance(c, tuple)
                    else IngestOutcome(
                        status="duplicate",
                        reason="; ".join(dict.fromkeys(next(found) for _ in c)),  # each reason once, in order
                        version=version,
                    )
                    for c in translated
                ]
        # Decided again, as an append is, when another writer committed
        # first (the events mean the same on any newer head); the last try
        # holds the session.
        # Content that earlier records hold of an erased message is erased
        # there first (outside the session's lock, as any erasure), once;
        # then the events are decided again.
        erased_first = False
        attempt = 0
        while attempt < _WRITE_ATTEMPTS:
            emptied: tuple[str, ...] = ()
            with repository.locks.holding(session_id), _alone(repository, session_id, attempt == _WRITE_ATTEMPTS - 1):
                head = repository.head(session_id)
                realtime = repository.realtime_state(head)
                while True:
                    decision = decisions.ingest(head, realtime, translated, actor=actor, provider=provider, now=clock())
                    if decision.emptied and not erased_first:
                        emptied = decision.emptied
                        break
                    if not decision.events:
                        return decision.outcomes
                    try:
                        repository.commit(head, decision.events, decision.state)
                    except EventTooLarge:
                        # One input event's: it is rejected, the others are decided again without it.
                        position, why = repository.first_too_large(head, decision.events)
                        translated = decisions.reject(translated, decision.sources[position], f"not stored: {why}")
                        continue
                    except ConcurrentWriteError:
                        if attempt == _WRITE_ATTEMPTS - 1:
                            raise
                        break
                    repository.realtime[session_id] = (decision.state.version, decision.realtime)
                    return decision.outcomes
            if emptied:
                self._empty_erased_content(session_id, emptied, actor)
                erased_first = True
                continue
            _pause(attempt)
            attempt += 1
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _empty_erased_content(self, session_id: str, items: tuple[str, ...], actor: str | None) -> None:
        """Erase the content earlier records hold of ``items``, which ingestion
        found to be an erased message's only now (an output that waited,
        then joined it; an item a new connection re-sent in its place)."""
        # The audit event names the items; the note stays short, whatever their ids.
        note = "realtime content found to be an erased message's"
        _erasure.erase(self._repository, session_id, items, "erasure", note, actor, records_only=True)

    def resolve_pending(self, session_id: str, policy: str = "place", *, actor: str | None = None) -> IngestOutcome:
        """Unblock ingestion: ``place`` puts every waiting item in its chain, or
        at the end in announcement order where its chain is broken (unfinished
        responses become incomplete messages, user items go without text),
        ``drop`` discards them. Recorded as an audited event; with nothing
        pending, nothing is stored (status ``ignored``)."""
        if policy not in ("place", "drop"):
            raise InvalidArgument(f"policy must be 'place' or 'drop', got {shown(policy)}")
        check_actor(actor)
        repository = self._repository
        erased_first = False
        while True:
            with repository.locks.holding(session_id):
                head = repository.head(session_id)
                decision = decisions.resolve(head, repository.realtime_state(head), policy, actor=actor, now=clock())
                if decision is None:
                    return IngestOutcome(
                        status="ignored", reason="nothing is pending; nothing was stored", version=head.version
                    )
                if not decision.emptied or erased_first:
                    repository.commit(head, decision.events, decision.state)
                    repository.realtime[session_id] = (decision.state.version, decision.realtime)
                    return decision.outcomes[0]
            # As for ingest_many: earlier records' content of an erased message goes first.
            self._empty_erased_content(session_id, decision.emptied, actor)
            erased_first = True

    def pending(self, session_id: str) -> Pending:
        """Items ingestion is holding back, and in-flight response ids (to fan
        out an interruption with ``AssistantTurnInterrupted``)."""
        repository = self._repository
        with repository.locks.holding(session_id):
            state = repository.realtime_state(repository.head(session_id))
            return decisions.pending(state)

    @_sharing_the_store
    def out_of_band(self, session_id: str) -> list[OutOfBandResponse]:
        """What the session's out-of-band responses produced, in the order they
        ended: rebuilt from the recorded realtime events (the audit log), since
        none of it is part of the transcript."""
        repository = self._repository
        with repository.locks.holding(session_id):
            head = repository.head(session_id)
            events = list(repository.decoded(head.id, repository.records(head.id, head.version)))
        return decisions.out_of_band(events)

    # -- queries ----------------------------------------------------------

    @overload
    def get(self, session_id: str, at: int | str | datetime | None = None) -> Session: ...

    @overload
    def get(self, session_id: str, *, last: int) -> Tail: ...

    def get(
        self, session_id: str, at: int | str | datetime | None = None, *, last: int | None = None
    ) -> Session | Tail:
        """The session now, or as of an event version, a revision or a time.

        ``at`` may be an ``int`` (event version, 1 = creation), a revision id
        (``"sha256:..."``: the last state that had that revision), or an aware
        ``datetime`` (the state after the last event recorded at or before it).

        ``last=N`` returns a :class:`Tail` instead: the newest ``N`` messages
        now, with when each was written, read from the records written since
        the newest snapshot (checked against the sealed chain head) rather
        than from the whole log.
        """
        repository = self._repository
        if last is not None:
            if at is not None:
                raise InvalidArgument("get() takes at= or last=, not both")
            with repository.locks.holding(session_id):
                return _tail.tail(repository, session_id, last)
        with repository.locks.holding(session_id):
            head = repository.head(session_id)
        if at is None:
            return head
        with repository.locks.holding():  # a share of the store while the log is read (see _sharing_the_store)
            return self._state_at(head, at)

    def _state_at(self, head: Session, at: int | str | datetime) -> Session:
        repository, session_id = self._repository, head.id
        if isinstance(at, bool) or not isinstance(at, (int, str, datetime)):
            raise InvalidArgument(
                f"at= takes an event version (int), a revision id (str) or a datetime, got {shown(at)}"
            )
        if isinstance(at, int):
            if not 1 <= at <= head.version:
                raise VersionNotFound(
                    f"session {shown(session_id)} has versions 1 to {head.version}; there is no version {at}"
                )
            return head if at == head.version else repository.state_at(session_id, at)
        if isinstance(at, str):
            try:
                parse_revision(at)
            except InvalidRevision as error:
                raise InvalidRevision(
                    f"at= {error}: pass a whole revision id (a Session's .revision, or one of "
                    "store.revisions(sid)); the short ids the command line prints are for the command line, a "
                    "time is a datetime and a version an int"
                ) from None
            if at == head.revision:
                return head
            version = repository.last_version_with_revision(session_id, at, head.version)
            return repository.state_at(session_id, version)
        if at.utcoffset() is None:  # no tzinfo, or one that gives no offset
            raise InvalidArgument("at= datetime must be timezone-aware (for example datetime.now(UTC))")
        version = repository.last_version_at_time(session_id, at, head)
        return head if version == head.version else repository.state_at(session_id, version)

    @_sharing_the_store
    def lineage(self, session_id: str) -> Lineage:
        """Where the session comes from: source, source version, fork index,
        root and depth (a session that is not a fork is its own root)."""
        return self.get(session_id).lineage

    @_sharing_the_store
    def forks(self, session_id: str) -> list[str]:
        """The ids of the sessions forked from this one (``fork``,
        ``fork_at``, ``fork_replacing``), oldest first; forks of those are
        ``forks()`` of them. Raises :class:`SessionNotFound` for a session
        that is not there."""
        return _reads.forks(self._repository, session_id)

    @_sharing_the_store
    def history(
        self,
        session_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[HistoryEntry]:
        """The session's recorded events, oldest first: those with
        ``after < version < before``; with ``limit``, at most that many: the
        first ones when paging forward (``after`` alone), else the last ones
        (``limit`` alone gives the newest)."""
        return _reads.history(self._repository, session_id, after, before, limit)

    @_sharing_the_store
    def sessions(
        self,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
        tags: Iterable[str] | None = None,
        pinned: bool | None = None,
        owner: str | None = None,
        parent: str | None = None,
        after: str | SessionInfo | None = None,
        limit: int | None = None,
        order: str = "created",
        newest_first: bool = False,
    ) -> list[SessionInfo]:
        """The sessions in the store, oldest first (read from a listing table
        kept in the same transaction as each write, so it is never stale);
        ``order="updated"`` lists them by their last write instead of their
        creation, and ``newest_first=True`` the other way round (a "recent
        conversations" list is ``order="updated", newest_first=True``).
        Only those whose title holds ``title`` (ignoring case), whose
        metadata has every item of ``metadata`` (equal as JSON values), whose
        header has that ``status``, every one of ``tags``, that ``pinned``
        and ``owner``, and that were spawned by ``parent``; paged with
        ``limit`` and ``after``: the last session of the previous page (which
        pages on even if it was deleted since), or its id (while it exists;
        in the order of creation only, as a write moves a session in the
        other). The filters run in the database, on a summary each write
        keeps in the listing row."""
        header: dict[str, Any] = {}
        if status is not None:
            header["status"] = status
        if tags is not None:
            header["tags"] = tags
        if pinned is not None:
            header["pinned"] = pinned
        if owner is not None:
            header["owner"] = owner
        checked = SetHeader.of(header).changes if header else {}  # the same checks as when they are set
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidArgument(f"metadata= is a mapping of the values to match, got {shown(metadata)}")
        metadata = check_metadata(metadata)  # values a session's metadata could hold, or refused
        if parent is not None and not isinstance(parent, str):
            raise InvalidArgument(f"parent= is the id of the session that spawned them, got {shown(parent)}")
        check_stored_text(parent, "parent=")
        if type(after) is str:  # any other type is refused with what after= takes
            check_stored_text(after, "after=")
        wanted = None
        if checked or metadata or parent is not None:
            wanted = ListingFilter(
                status=checked.get("status"),
                tags=tuple(checked.get("tags", ())),
                pinned=checked.get("pinned"),
                owner=checked.get("owner"),
                parent=parent,
                metadata=tuple((metadata or {}).items()),
            )
        return _reads.sessions(self._repository, title, wanted, after, limit, order, newest_first)

    @_sharing_the_store
    def revisions(self, session_id: str) -> list[Commit]:
        """Every content commit of the session, oldest first: appends and
        rewrites (restores included), each from its parent revision to its
        revision. A fork's own commits start after its fork point."""
        return _reads.revisions(self._repository, session_id)

    @_sharing_the_store
    def revision_messages(self, session_id: str, revision: str) -> MessageSeq:
        """The messages of any revision the session reached (after any of its
        events), rebuilt from the log: no copy is stored per revision."""
        parse_revision(revision)
        repository = self._repository
        with repository.locks.holding(session_id):
            head = repository.head(session_id)
        if revision == head.revision:
            return head.messages
        version = repository.last_version_with_revision(session_id, revision, head.version)
        return repository.state_at(session_id, version).messages

    @_sharing_the_store
    def diff(self, session_id: str, before: int | str, after: int | str) -> Diff:
        """The changed span between two versions or revisions of a session."""
        for point in (before, after):
            if isinstance(point, bool) or not isinstance(point, (int, str)):
                raise InvalidArgument(f"diff() takes event versions (int) or revision ids (str), got {shown(point)}")
        return _reads.diff(self.get(session_id, at=before), self.get(session_id, at=after))

    @_sharing_the_store
    def feed(self, after: int = 0, limit: int = 100) -> list[FeedEvent]:
        """Up to ``limit`` (1 to 10,000) stored events of every session, in
        commit order, after feed position ``after``: a follower or a read
        model (``engine.readmodel``) catches up by asking again from the last
        position it got until a page is empty. Events are as stored now (an
        erasure's placeholders included) and are not checked against their
        session's chain here; a checked read (:meth:`get`, :meth:`verify`) of
        the sessions they belong to is. A deleted session's events are gone
        from the feed, leaving gaps in the positions.

        On PostgreSQL the feed shows only events of transactions older than
        every running transaction that holds a lock on the store's events
        table (every write of the engine takes one before its transaction
        has an id), so that no slower writer can ever commit below a
        position a reader has passed; other transactions, of this database
        or another, hold nothing back. SQL of your own that writes to that
        table must lock it first. On a hot standby, the feed waits for every
        transaction still running on the primary."""
        return _reads.feed(self._repository, after, limit)

    @_sharing_the_store
    def unlisted_snapshots(self) -> list[str]:
        """The ids of sessions the store holds snapshots of but does not
        list, sorted; empty in a healthy store. A deletion removes a
        session's snapshots in the transaction that removes its events and
        listing row, so any found here were put there outside the engine or
        are what is left of a damaged store: no session's read or
        :meth:`verify` sees them, and :meth:`create` of such an id refuses
        with ``CorruptStore``. ``transcripts verify --all`` reports them."""
        return self._repository.backend.unlisted_snapshots()

    def head_hash(self, session_id: str) -> str:
        """The session's chain head, ``"<version>:<hex>"``: a value to keep
        outside the store (a log line, a receipt, another database). The
        chain commits to every field of every event up to that version, so
        ``verify(session_id, head_hash=kept)`` later tells whether the log
        still holds exactly what it held then, in the same order."""
        repository = self._repository
        with repository.locks.holding(session_id):
            head = repository.head(session_id)
            return f"{head.version}:{repository.chain_after(head).digest().hex()}"

    @_sharing_the_store
    def verify(self, session_id: str, *, head_hash: str | None = None, replay: bool = True) -> Session:
        """Audit one session: check its log against its chain head, replay the
        whole history from scratch re-hashing every revision, and check every
        snapshot, the listing row and the cached head against that replay.
        With ``head_hash`` (from :meth:`head_hash`, kept outside the store),
        also check that the log still extends it: this detects a log rewritten
        consistently by someone who could write to the store. Returns the
        verified head; raises :class:`CorruptStore` on any disagreement.
        ``replay=False`` checks only the log against its chain head (one read
        and one hash pass over the stored bytes, no replay): quick, and
        enough to know that nothing stored was altered."""
        if not isinstance(replay, bool):
            raise InvalidArgument(f"replay must be a bool, got {shown(replay)}")
        return _reads.verify(self._repository, session_id, head_hash, replay)

    # -- the command cycle ---------------------------------------------------

    def _decide(self, session_id: str, command: decisions.Command | decisions.RecordCommand) -> decisions.Decision:
        """Load the head, decide, commit: one write, under the session's lock.
        Decided on the cached head without a round trip; if another writer
        committed first, a write of ``_DECIDED_AGAIN`` (or one that expects
        a revision, which the decider checks) is decided again on the newer
        head, as long as the log still extends the head it was decided on
        (or is that log, re-linked by an erasure). The last try holds the
        session in the backend (``writing_alone``), so a writer that kept
        losing races waits for its turn instead of giving up."""
        repository = self._repository
        expected = getattr(command, "expected_revision", None)
        messages: Sequence[Message] = getattr(command, "messages", ())
        repository.refuse_oversized(session_id, messages)  # before hashing what could never be stored
        again = expected is not None or isinstance(command, _DECIDED_AGAIN)
        refused: ConcurrentWriteError | None = None
        for attempt in range(_WRITE_ATTEMPTS):
            # The last try after lost races waits for the other writers'
            # turns instead of racing them again: decided and written while
            # none of them can write the session, it cannot lose.
            last = refused is not None and attempt == _WRITE_ATTEMPTS - 1
            with repository.locks.holding(session_id), _alone(repository, session_id, last):
                if refused is None:
                    head = repository.head_for_write(session_id, expected)
                else:
                    # The log as it grew, or as an erasure re-linked it.
                    newer = repository.caught_up(session_id) or repository.relinked(session_id, head)
                    if newer is None:  # another session under the same id, or none: the caller decides
                        raise refused
                    head = newer
                try:
                    decision = decide(head, command, clock())
                except InvalidArgument:
                    # A refusal must hold for the head as stored now (another
                    # writer may have answered the tool call, or grown the
                    # transcript).
                    fresh = repository.head(session_id)
                    if fresh.version == head.version:
                        raise
                    head = fresh
                    decision = decide(head, command, clock())
                if not decision.events:
                    # Nothing to write (a title set to what it is): so only
                    # if the session is as cached; else decided on it as
                    # stored, if it is still this log (an erasure may have
                    # re-linked it), never on another session under its id.
                    stored = repository.caught_up(session_id) or repository.relinked(session_id, head)
                    if stored is None:
                        raise ConcurrentWriteError(session_id, head.version + 1)
                    if stored.version == head.version:
                        return decision
                    head = stored
                    decision = decide(head, command, clock())
                    if not decision.events:
                        return decision
                try:
                    repository.commit(head, decision.events, decision.state)
                    return decision
                except ConcurrentWriteError as exc:
                    if not again or attempt == _WRITE_ATTEMPTS - 1:
                        raise
                    refused = exc
            _pause(attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _committed(self, session_id: str, command: Rewrite | Restore) -> Commit:
        decision = self._decide(session_id, command)
        [event] = decision.events
        assert isinstance(event, MessagesRewritten)
        return commit_of(event, decision.state.version, len(decision.state.messages))

    def _fork(self, source_id: str, command: Fork, at: int | str | datetime | None) -> str:
        repository = self._repository
        check_session_id(source_id)
        with repository.locks.holding(source_id, command.child_id):
            try:
                if (
                    at is None
                    and command.index is None
                    and command.replacement is None
                    and source_id not in repository.cache
                    and repository.fork_unread(source_id, command, clock())
                ):
                    # A whole head this object has not read: forked from
                    # its listing row, without reading its log.
                    return command.child_id
                source = repository.head(source_id)
                if at is not None:  # a past state: the fork is written while the source is as read now
                    source = self._state_at(source, at)
                decision = decide(source, command, clock())
                repository.commit(None, decision.events, decision.state)
            except SessionExists as exc:
                raise SessionExists(exc.session_id, parameter="child_id") from None
        return command.child_id
