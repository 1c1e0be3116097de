"""The facade's reads that replay a log or list the store: history,
the session list, commits, diffs and the full audit of ``verify``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from engine.decisions import changed_span, check_session_id, commit_of
from engine.errors import CorruptStore, InvalidArgument, SessionNotFound
from engine.facade._repository import Repository
from engine.state.content import Image, Message, ToolResult, shown, whole_number
from engine.state.events import (
    CONTENT_EVENTS,
    ChildSpawned,
    Event,
    HeaderChanged,
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    MetadataChanged,
    QuestionChanged,
    RealtimePendingResolved,
    RealtimeRecorded,
    SessionCreated,
    SessionForked,
    TaskListChanged,
    TitleChanged,
    UsageRecorded,
    kind_of,
)
from engine.state.records import ToolCall
from engine.state.revisions import EMPTY_REVISION, Commit, Reason, span_digest
from engine.state.transcript import Session, evolve, forked
from engine.store import (
    ListingFilter,
    Record,
    SessionRow,
    checkpoints_of,
    decode_events,
    decode_snapshot,
    decode_summary,
    head_of,
    legacy_head_of,
    listing_summary,
    summary_matches,
    summary_of,
)

__all__ = [
    "Diff",
    "FeedEvent",
    "HistoryEntry",
    "SessionInfo",
    "diff",
    "feed",
    "history",
    "revisions",
    "sessions",
    "verify",
]


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of :meth:`Transcripts.sessions`: the listing row, with the
    session's status, tags, pinning, owner, parent (a child session's) and
    metadata."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    revision: str
    version: int
    status: str
    tags: tuple[str, ...]
    pinned: bool
    owner: str | None
    parent: str | None
    metadata: dict[str, Any]


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event of a session, as :meth:`Transcripts.history` lists it."""

    version: int
    at: datetime
    actor: str | None
    kind: str
    summary: str
    revision: str
    event: Any  # the typed event itself (an ``engine.state.events`` Struct)


class FeedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One stored event in the store-wide feed (:meth:`Transcripts.feed`):
    its ``position`` (increasing in commit order across every session), its
    session, its version there, and the typed event as stored now."""

    position: int
    session_id: str
    version: int
    event: Any  # an ``engine.state.events`` Struct


def feed(repository: Repository, after: int, limit: int) -> list[FeedEvent]:
    return [
        FeedEvent(
            position=entry.position,
            session_id=entry.session_id,
            version=entry.record.version,
            event=decode_events(entry.session_id, (entry.record,))[0][1],  # damage reads as CorruptStore
        )
        for entry in repository.backend.feed(after, limit)
    ]


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed between two states of a session: ``removed`` (from the
    first) was replaced by ``added`` (in the second) at ``start``; everything
    before ``start`` and after the changed span is equal."""

    start: int
    removed: tuple[Message, ...]
    added: tuple[Message, ...]
    from_revision: str
    to_revision: str


def history(
    repository: Repository,
    session_id: str,
    after: int | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> list[HistoryEntry]:
    """The session's recorded events with ``after < version < before``,
    oldest first; with ``limit``, the first ``limit`` of them when paging
    forward (``after`` alone), else the last ``limit`` (paging back from
    ``before``, or from the newest). The whole log is checked against its
    chain head; only the page's events are decoded."""
    for name, value in (("after", after), ("before", before)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidArgument(f"{name}= is an event version (an int >= 0), got {shown(value)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgument(f"limit= is how many entries at most (an int >= 1), got {shown(limit)}")
    records = repository.records(session_id)
    low = 0 if after is None else min(after, len(records))
    high = len(records) if before is None else max(low, min(before - 1, len(records)))
    if limit is not None:
        low, high = (
            (low, min(high, low + limit)) if after is not None and before is None else (max(low, high - limit), high)
        )
    revision = _revision_before(repository, session_id, records, low)
    entries = []
    for version, event in repository.decoded(session_id, records[low:high]):
        if isinstance(event, CONTENT_EVENTS):
            revision = event.revision
        entries.append(
            HistoryEntry(
                version=version,
                at=event.at,
                actor=event.actor,
                kind=kind_of(event),
                summary=_summary(event),
                revision=revision,
                event=event,
            )
        )
    return entries


def _revision_before(repository: Repository, session_id: str, records: list[Record], end: int) -> str:
    """The revision after the first ``end`` records: that of the newest
    content event among them (decoding back from ``end`` until one is found)."""
    for start in range(end, 0, -64):
        decoded = repository.decoded(session_id, records[max(0, start - 64) : start])
        for _, event in reversed(list(decoded)):
            if isinstance(event, CONTENT_EVENTS):
                return event.revision
    return EMPTY_REVISION


#: What ``sessions(order=...)`` lists by: the listing row's field.
ORDERS = {"created": "created_at", "updated": "updated_at"}


def sessions(
    repository: Repository,
    title: str | None = None,
    wanted: ListingFilter | None = None,
    after: str | SessionInfo | None = None,
    limit: int | None = None,
    order: str = "created",
    newest_first: bool = False,
) -> list[SessionInfo]:
    """The sessions in the store, by creation or last write (``order``),
    oldest first unless ``newest_first`` (read from a listing table kept in
    the same transaction as each write, so it is never stale): those whose
    title holds ``title`` (case-insensitive) and whose listing summary
    matches ``wanted`` (filtered by the database where it can); after the
    session ``after`` (the last one of the previous page, or, in the order
    of creation, its id); at most ``limit``."""
    if title is not None and not isinstance(title, str):
        raise InvalidArgument(f"title= is text to look for in titles, got {shown(title)}")
    if after is not None and type(after) not in (str, SessionInfo):
        raise InvalidArgument(f"after= is the last session of the previous page (or its id), got {shown(after)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgument(f"limit= is how many sessions at most (an int >= 1), got {shown(limit)}")
    if type(order) is not str or order not in ORDERS:
        raise InvalidArgument(f"order= is one of {list(ORDERS)}, got {shown(order)}")
    if not isinstance(newest_first, bool):
        raise InvalidArgument(f"newest_first= must be a bool, got {shown(newest_first)}")
    field = ORDERS[order]
    backend = repository.backend
    rows = backend.session_rows(wanted)  # by creation, oldest first
    if order != "created" or newest_first:
        # Listing rows keep times as UTC text, which sorts as the times do.
        rows = sorted(rows, key=lambda row: (getattr(row, field), row.session_id), reverse=newest_first)

    def beyond(mark: tuple[str, str]) -> list[SessionRow]:
        return [row for row in rows if ((getattr(row, field), row.session_id) < mark) == newest_first]

    if isinstance(after, SessionInfo):
        when, ident = getattr(after, field), after.id
        if type(ident) is not str or not isinstance(when, datetime) or when.utcoffset() is None:
            raise InvalidArgument(
                f"after= is the last session of the previous page as sessions() gave it (an id and an aware "
                f"{field}), got {shown(after)}"
            )
        # Where it was listed, whether or not it is still there (deleted since).
        rows = [row for row in beyond((when.astimezone(UTC).isoformat(), ident)) if row.session_id != ident]
    elif after is not None:
        if order != "created":
            # A write moves a session in this order: its id cannot say where
            # the page listed it, which its SessionInfo's time does.
            raise InvalidArgument(
                f"after= with order={order!r} is the last SessionInfo of the previous page, not its id: a write "
                "since moves the session, and the page after its new place would skip or repeat others"
            )
        found = next((index for index, row in enumerate(rows) if row.session_id == after), None)
        if found is None:
            last = backend.session_row(after)
            if last is None:
                raise SessionNotFound(after)
            # The last session of the previous page need not match the filter.
            rows = [row for row in beyond((getattr(last, field), last.session_id)) if row.session_id != after]
        else:
            rows = rows[found + 1 :]
    needle = title.casefold() if title is not None else None
    listed: list[SessionInfo] = []
    for row in rows:
        if needle is not None and needle not in (row.title or "").casefold():
            continue
        if row.summary is not None:
            summary = decode_summary(row.session_id, row.summary)
        else:  # a row written before rows kept a summary: from the session's state
            try:
                with repository.locks.holding(row.session_id):
                    summary = summary_of(repository.head(row.session_id))
            except SessionNotFound:  # deleted since the listing was read
                continue
        # The database's filter only narrows (JSON numbers, keys it cannot
        # name, rows without a summary): the exact test is this one.
        if wanted is not None and not summary_matches(summary, wanted):
            continue
        listed.append(
            SessionInfo(
                id=row.session_id,
                title=row.title,
                created_at=_listed_time(row, row.created_at),
                updated_at=_listed_time(row, row.updated_at),
                message_count=row.message_count,
                revision=row.revision,
                version=row.version,
                status=summary.status,
                tags=summary.tags,
                pinned=summary.pinned,
                owner=summary.owner,
                parent=summary.parent,
                metadata=summary.metadata,
            )
        )
        if limit is not None and len(listed) == limit:
            break
    return listed


def revisions(repository: Repository, session_id: str) -> list[Commit]:
    """Every content commit of the session, oldest first: appends and
    rewrites (restores included), each from its parent revision to its
    revision. A fork's own commits start after its fork point."""
    records = repository.records(session_id)
    commits: list[Commit] = []
    revision, count, generation = EMPTY_REVISION, 0, 0
    for version, event in repository.decoded(session_id, records):
        if isinstance(event, SessionForked):
            revision = event.revision
            kept = len(repository.source_state(session_id, event).messages) if event.index is None else event.index
            count = kept + (event.replacement is not None)  # the messages the fork starts with
        elif isinstance(event, MessagesAppended):
            generation += 1
            added = len(event.messages)
            commits.append(
                Commit(
                    version=version,
                    generation=generation,
                    parent_revision=revision,
                    revision=event.revision,
                    start=count,
                    end=count,
                    removed_digest=EMPTY_REVISION,
                    replacement_digest=span_digest(event.messages),
                    count_before=count,
                    count_after=count + added,
                    reason=Reason(kind="append"),
                    actor=event.actor,
                    at=event.at,
                )
            )
            revision, count = event.revision, count + added
        elif isinstance(event, MessagesRewritten):
            generation = event.generation
            count = event.count_before - (event.end - event.start) + len(event.messages)
            commits.append(commit_of(event, version, count))
            revision = event.revision
    return commits


def diff(old: Session, new: Session) -> Diff:
    start, removed_end, added_end = changed_span(old.messages, new.messages)
    return Diff(
        start=start,
        removed=old.messages[start:removed_end],
        added=new.messages[start:added_end],
        from_revision=old.revision,
        to_revision=new.revision,
    )


class _HeadDiffers(CorruptStore):
    """The loaded head differs from the replay: damage, or a session of the
    family rewritten between the two reads (an erasure of inherited text)."""


def verify(repository: Repository, session_id: str, head_hash: str | None, replay: bool = True) -> Session:
    """Audit one session: check its log against its chain head, replay the
    whole history from scratch re-hashing every revision, and check every
    snapshot, the listing row and the cached head against that replay.
    With ``head_hash`` (from :meth:`head_hash`, kept outside the store),
    also check that the log still extends it: this detects a log rewritten
    consistently by someone who could write to the store. Returns the
    verified head; raises :class:`CorruptStore` on any disagreement."""
    for _ in range(_VERIFY_ATTEMPTS - 1):
        try:
            return _verify_once(repository, session_id, head_hash, replay)
        except _HeadDiffers:
            continue  # damage is there again on the next attempt; a race is over
    try:
        return _verify_once(repository, session_id, head_hash, replay)
    except _HeadDiffers as exc:
        raise CorruptStore(str(exc)) from None


_VERIFY_ATTEMPTS = 3


def _verify_once(repository: Repository, session_id: str, head_hash: str | None, replay: bool) -> Session:
    check_session_id(session_id)
    kept = _parse_head_hash(head_hash) if head_hash is not None else None
    repository.backend.forget_cached()  # an audit reads the database as it is, nothing kept from before
    # Snapshots first: each is written with its events, so none is newer
    # than the log read after them (a concurrent writer's would be).
    snapshots = repository.backend.snapshots(session_id)
    listed, records, _ = repository.log(session_id)
    if kept is not None:
        version, link = kept
        if version > len(records):
            raise CorruptStore(
                f"session {session_id!r} ends at version {len(records)}, before the kept head at version "
                f"{version}: events were removed"
            )
        if link not in (head_of(session_id, records[:version]), legacy_head_of(session_id, records[:version])):
            raise CorruptStore(
                f"session {session_id!r}: its first {version} events no longer match the kept head hash: "
                "the log was altered (or re-linked by an erasure since)"
            )
    if not replay:  # the log matches its sealed chain head: nothing stored was altered
        with repository.locks.holding(session_id):
            return repository.head(session_id)
    states: list[Session] = []
    state: Session | None = None
    last_erasure = 0
    for version, event in repository.decoded(session_id, records):
        if isinstance(event, SessionForked):
            state = forked(session_id, event, repository.source_state(session_id, event))
        else:
            state = evolve(state, session_id, version, event)
        if isinstance(event, MessagesErased):
            last_erasure = version
        states.append(state)
    assert state is not None
    checks = [(stored.version, decode_snapshot(session_id, stored.state)) for stored in snapshots]
    reach = max((snapshot.chain_start or 0 for _, snapshot in checks), default=0)  # links past it are not needed
    checkpoints = checkpoints_of(session_id, records[:reach])
    for taken_at, snapshot in checks:
        if not 1 <= taken_at <= len(states) or not snapshot.vouches_for(states[taken_at - 1]):
            raise CorruptStore(f"session {session_id!r}: the snapshot at version {taken_at} differs from replay")
        start = snapshot.chain_start
        # Tail reads resume the chain there: a wrong checkpoint only costs
        # them a read of the whole log, but it is damage all the same. Unless
        # an erasure came after the snapshot: earlier builds left checkpoints
        # pointing at the chain before an erasure, and nothing stored tells
        # such a one from a damaged one (tail reads check it either way).
        wrong = start is not None and (start > taken_at or checkpoints.get(start) != snapshot.chain_link)
        if wrong and last_erasure < taken_at:
            raise CorruptStore(
                f"session {session_id!r}: the snapshot at version {taken_at} keeps a chain checkpoint "
                f"(at version {start}) that the log does not give"
            )
    if (listed.title, listed.message_count, listed.revision) != (state.title, len(state.messages), state.revision) or (
        _listed_time(listed, listed.created_at),
        _listed_time(listed, listed.updated_at),
    ) != (state.created_at, state.updated_at):
        raise CorruptStore(f"session {session_id!r}: its listing row differs from the replay of its log")
    if listed.summary is not None and listed.summary != listing_summary(state):
        raise CorruptStore(
            f"session {session_id!r}: the summary its listing row keeps for filters (status, tags, owner, parent, "
            "metadata) differs from the replay of its log"
        )
    with repository.locks.holding(session_id):
        head = repository.head(session_id)
    if head.version == state.version and _observable(head) != _observable(state):
        raise _HeadDiffers(f"session {session_id!r}: the loaded head differs from a full replay")
    return state


def _parse_head_hash(head_hash: object) -> tuple[int, bytes]:
    version_text, colon, hex_text = head_hash.partition(":") if isinstance(head_hash, str) else ("", "", "")
    try:
        link = bytes.fromhex(hex_text)
    except ValueError:
        link = b""
    version = whole_number(version_text)
    if not colon or version is None or version < 1 or len(link) != 32:
        raise InvalidArgument(
            f"head_hash looks like '<version>:<64 hex digits>', as head_hash() returns it; got {shown(head_hash)}"
        )
    return version, link


def _clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _gist(message: Message) -> str:
    """A few words about a message for a timeline line: its text, the
    tools it calls, the calls it answers and its images."""
    if message.erased is not None:
        return "(erased)"
    parts = [repr(_clip(message.text, 30))] if message.text else []
    # " + " within a message: ", " separates the messages of one event.
    called = [use.name for use in message.tool_uses]
    if called:
        parts.append("calls " + " + ".join(called))
    answered = [block.tool_use_id for block in message.blocks if isinstance(block, ToolResult)]
    if answered:
        parts.append(f"result{'s' if len(answered) > 1 else ''} for " + " + ".join(answered))
    images = sum(isinstance(block, Image) for block in message.blocks)
    if images:
        parts.append(f"{images} image{'s' if images != 1 else ''}")
    return " ".join(parts) or "(no text)"


def _summary(event: Event) -> str:
    if isinstance(event, SessionCreated):
        spawned = "" if event.spawn is None else f" as a child of {event.spawn.parent!r}"
        task = "" if event.spawn is None or event.spawn.task is None else f" for {_clip(event.spawn.task, 40)!r}"
        return "created" + (f" {event.title!r}" if event.title else "") + spawned + task
    if isinstance(event, ChildSpawned):
        name = "" if event.name is None else f" ({_clip(event.name, 40)})"
        task = "" if event.task is None else f" for {_clip(event.task, 40)!r}"
        return f"spawned child {event.child!r}{name}{task}"
    if isinstance(event, TaskListChanged):
        if event.tasks is None:
            return "task list removed"
        done = sum(task.status == "completed" for task in event.tasks)
        changed = next((task for task in event.tasks if task.id == event.updated), None)
        what = "" if changed is None else f"task {_clip(changed.id, 40)!r} {changed.status}; "
        count = len(event.tasks)
        return f"task list: {what}{count} task{'s' if count != 1 else ''}, {done} completed"
    if isinstance(event, QuestionChanged):
        if event.question is not None:
            return f"question asked: {_clip(event.question.question, 60)!r}"
        return "question answered: " + repr(_clip(event.answer, 40)) if event.answer is not None else "question cleared"
    if isinstance(event, MessagesAppended):
        count = len(event.messages)
        shown = ", ".join(f"{m.role} {_gist(m)}" for m in event.messages[:3])
        more = f", +{count - 3} more" if count > 3 else ""
        return f"appended {count} message{'s' if count != 1 else ''}: {shown}{more}"
    if isinstance(event, MessagesRewritten):
        added = len(event.messages)
        why = event.reason + (f" ({_clip(event.note, 40)})" if event.note else "")
        figures = event.compaction
        if figures is not None:
            why += f", {figures.trigger}"
            if figures.tokens_before is not None and figures.tokens_after is not None:
                why += f", tokens {figures.tokens_before} -> {figures.tokens_after}"
        return f"{why}: [{event.start}, {event.end}) replaced by {added} message{'s' if added != 1 else ''}"
    if isinstance(event, SessionForked):
        where = "" if event.index is None else f" at message {event.index}"
        edited = f", then {event.replacement.role} {_gist(event.replacement)}" if event.replacement else ""
        return f"forked from {event.source!r} version {event.source_version}{where}{edited}"
    if isinstance(event, RealtimeRecorded):
        inner = event.event
        about = getattr(inner, "item_id", None) or getattr(inner, "response_id", None) or ""
        return f"realtime {inner.__struct_config__.tag} {about}".rstrip()
    if isinstance(event, RealtimePendingResolved):
        return f"pending realtime items resolved ({event.policy})"
    if isinstance(event, MessagesErased):
        count = len(event.message_ids)
        why = event.reason + (f" ({_clip(event.note, 40)})" if event.note else "")
        rewritten = len(event.versions)
        where = (
            f"from {rewritten} stored event{'s' if rewritten != 1 else ''}"
            if rewritten
            else "where the log it was forked from holds them"
        )
        return f"{why}: {count} message{'s' if count != 1 else ''} erased {where}"
    if isinstance(event, UsageRecorded):
        usage = event.usage
        extra = [
            f", +{count} {name}"
            for count, name in (
                (usage.cache_read, "cache read"),
                (usage.cache_write, "cache write"),
                (usage.reasoning, "reasoning"),
            )
            if count
        ]
        response = "" if event.response_id is None else f" (response {_clip(event.response_id, 40)})"
        return f"usage +{usage.input} in, +{usage.output} out{''.join(extra)}{response}"
    if isinstance(event, MetadataChanged):
        parts = []
        if event.set:
            parts.append("set " + ", ".join(sorted(event.set)))
        if event.unset:
            parts.append("removed " + ", ".join(event.unset))
        return "metadata " + "; ".join(parts)
    if isinstance(event, TitleChanged):
        return f"title set to {event.title!r}" if event.title is not None else "title cleared"
    if isinstance(event, HeaderChanged):
        return "header " + ", ".join(
            f"{name} cleared" if value is None else f"{name} {_clip(str(list(value) if name == 'tags' else value), 40)}"
            for name, value in event.changes.items()
        )
    return kind_of(event)  # pragma: no cover


def _listed_time(row: SessionRow, text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.utcoffset() != timedelta(0):  # the engine keeps every time in UTC
        raise CorruptStore(f"the listing row of session {row.session_id!r} is damaged: bad time {text!r}")
    return when


def _observable(state: Session) -> tuple[Any, ...]:
    return (
        state.id,
        state.version,
        state.revision,
        list(state.messages),
        state.usage,
        dict(state.metadata),
        state.title,
        state.created_at,
        state.updated_at,
    )


def tool_calls(repository: Repository, session_id: str) -> list[ToolCall]:
    """Every tool call the session's history ever held, in the order they
    were first written, each with its result (the first written for it) and
    their times; ``position`` and ``result_position`` say where they are in
    the transcript now (``None``: rewritten or compacted away). Each append
    writes calls of their own (many providers use the same call ids turn
    after turn); a rewrite that keeps a call (same call id, name and
    arguments in the span it replaces, or, as a restore does, in a message
    of the same id) keeps it as the same call."""
    with repository.locks.holding(session_id):
        head = repository.head(session_id)
        audit = _replayed(repository, session_id, head.version)
    where: dict[int, int] = {}
    answered: dict[int, int] = {}
    waiting: dict[str, int] = {}  # by call id: the last call with it that no result answered yet
    for position, (message, held) in enumerate(zip(head.messages, audit.held, strict=True)):
        for use, call in zip(message.tool_uses, held, strict=True):
            where.setdefault(call, position)
            waiting[use.id] = call
        if message.role == "tool_results":
            for block in message.blocks:
                if isinstance(block, ToolResult) and block.tool_use_id in waiting:
                    answered.setdefault(waiting.pop(block.tool_use_id), position)
    return [
        msgspec.structs.replace(call, position=where.get(number), result_position=answered.get(number))
        for number, call in enumerate(audit.calls)
    ]


class _Audit:
    """The tool calls of a session's history, replayed event by event:
    ``calls`` by number, first written first; ``held`` the numbers of the
    calls each message of the transcript makes (it mirrors the transcript);
    ``answers`` the numbers each message answered when it was written."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.held: list[tuple[int, ...]] = []
        self.answers: list[tuple[int, ...]] = []
        self.waiting: dict[str, int] = {}  # by call id: the last call with it that no result answered yet
        self.last: dict[str, int] = {}  # by call id: the last call written with it
        self.written: dict[tuple[str | None, str, str, str], int] = {}  # by message id, call id, name, arguments

    def _write(
        self, message: Message, at: datetime, kept: dict[tuple[str, str, str], list[int]], live: set[int] | None
    ) -> None:
        """``message`` written at ``at``. For a rewrite, ``kept`` holds the
        calls of the span it replaces (by call id, name and arguments) and
        ``live`` those the transcript holds besides: a call is kept once."""
        held = []
        for use in message.tool_uses:
            what = (use.id, use.name, use.arguments)
            number: int | None = None
            if live is not None:
                same = kept.get(what)
                number = same.pop(0) if same else self.written.get((message.id, *what))
                if number in live:
                    number = None
            if number is None:
                number = len(self.calls)
                self.calls.append(ToolCall(call_id=use.id, name=use.name, arguments=use.arguments, called_at=at))
            self.written[(message.id, *what)] = number
            self.last[use.id] = number
            held.append(number)
            if live is not None:
                live.add(number)
            if self.calls[number].answered_at is None:  # the call a result written next answers
                self.waiting[use.id] = number
        answers = []
        if message.role == "tool_results":
            for block in message.blocks:
                if not isinstance(block, ToolResult):
                    continue
                if block.tool_use_id in self.waiting:
                    number = self.waiting.pop(block.tool_use_id)
                    self.calls[number] = msgspec.structs.replace(
                        self.calls[number], result=block.content_text, is_error=block.is_error, answered_at=at
                    )
                    answers.append(number)
                elif block.tool_use_id in self.last:  # a result written again (a rewrite): the call keeps its first
                    answers.append(self.last[block.tool_use_id])
        self.held.append(tuple(held))
        self.answers.append(tuple(answers))

    def appended(self, messages: Sequence[Message], at: datetime) -> None:
        for message in messages:
            self._write(message, at, {}, None)

    def rewritten(self, start: int, end: int, messages: Sequence[Message], at: datetime) -> None:
        kept: dict[tuple[str, str, str], list[int]] = {}
        for held in self.held[start:end]:
            for number in held:
                call = self.calls[number]
                kept.setdefault((call.call_id, call.name, call.arguments), []).append(number)
        tail_held, tail_answers = self.held[end:], self.answers[end:]
        del self.held[start:], self.answers[start:]
        live = {number for held in (*self.held, *tail_held) for number in held}
        for message in messages:
            self._write(message, at, kept, live)
        self.held += tail_held
        self.answers += tail_answers

    def forked(self, source: _Audit, index: int) -> None:
        """The calls of ``source``'s first ``index`` messages, numbered anew;
        a result written after them is not the fork's."""
        renumbered: dict[int, int] = {}
        answered = {number for answers in source.answers[:index] for number in answers}
        for held in source.held[:index]:
            for number in held:
                if number not in renumbered:
                    renumbered[number] = len(self.calls)
                    call = source.calls[number]
                    if number not in answered:
                        call = msgspec.structs.replace(call, result=None, is_error=False, answered_at=None)
                    self.calls.append(call)
        self.held = [tuple(renumbered[number] for number in held) for held in source.held[:index]]
        self.answers = [  # a result of a call rewritten away before the fork point answers none of the fork's
            tuple(renumbered[number] for number in answers if number in renumbered)
            for answers in source.answers[:index]
        ]
        for held in self.held:
            for number in held:
                self.last[self.calls[number].call_id] = number
                if self.calls[number].answered_at is None:
                    self.waiting[self.calls[number].call_id] = number
        self.written = {key: renumbered[number] for key, number in source.written.items() if number in renumbered}


def _replayed(repository: Repository, session_id: str, upto: int) -> _Audit:
    """The tool-call audit of the session's first ``upto`` events (a fork's
    from its source's as of the fork point). The chain of sources is read
    first, in a loop (a chain of forks can be thousands long), then
    replayed from its root."""
    logs: list[list[tuple[int, Event]]] = []
    walked = {(session_id, upto)}
    while True:
        events = list(repository.decoded(session_id, repository.records(session_id, upto)))
        logs.append(events)
        first = events[0][1] if events else None
        if not isinstance(first, SessionForked):
            break
        session_id, upto = first.source, first.source_version
        if (session_id, upto) in walked:  # the loads before this one refuse a cycle; a log changed since
            raise CorruptStore(f"session {shown(session_id)}: its chain of forks comes back to it")
        walked.add((session_id, upto))
    audit = _Audit()
    for events in reversed(logs):
        source, audit = audit, _Audit()
        for _, event in events:
            if isinstance(event, SessionForked):
                audit.forked(source, len(source.held) if event.index is None else event.index)
                if event.replacement is not None:
                    audit.appended((event.replacement,), event.at)
            elif isinstance(event, MessagesAppended):
                audit.appended(event.messages, event.at)
            elif isinstance(event, MessagesRewritten):
                audit.rewritten(event.start, event.end, event.messages, event.at)
    return audit


def every_fork(repository: Repository) -> list[tuple[str, SessionForked]]:
    """Every fork in the store with its first event (the first records of
    forks, in one read; a damaged one fails its own reads)."""
    found = []
    for session_id, first in repository.backend.fork_records():
        event = decode_events(session_id, [first])[0][1]
        if isinstance(event, SessionForked):
            found.append((session_id, event))
    return found


def forks(repository: Repository, session_id: str) -> list[str]:
    """The sessions forked from ``session_id``, oldest first."""
    with repository.locks.holding(session_id):
        repository.head(session_id)  # SessionNotFound, or damage
    made = [(event.at, fork) for fork, event in every_fork(repository) if event.source == session_id]
    return [fork for _, fork in sorted(made)]
