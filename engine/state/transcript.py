"""Immutable session state, ``evolve(state, event)`` and ``fold``.

``Session`` is what ``Transcripts.get`` returns. Its messages live in a
:class:`~engine.state.sequence.MessageSeq`, which shares structure between versions,
forks and rewrites. Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from engine.errors import CorruptStore, InvalidArgument, InvalidTranscriptShape
from engine.state.content import Message, ToolResult, ToolUse, Usage, a_role
from engine.state.events import (
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
)
from engine.state.header import Header
from engine.state.records import (
    NO_RECORDS,
    Child,
    Compaction,
    CompactionFigures,
    Question,
    Records,
    Spawn,
    Task,
    ToolCall,
    subagent_status,
    tool_calls_of,
)
from engine.state.revisions import (
    EMPTY_REVISION_BYTES,
    chain_each,
    format_revision,
    parse_revision,
    stored_revision_bytes,
)
from engine.state.sequence import Known, MessageSeq

__all__ = [
    "KnownAppend",
    "Lineage",
    "MessageSeq",
    "Session",
    "Tail",
    "appended",
    "check_shape",
    "evolve",
    "fold",
    "forked",
    "involves_tools",
    "revision_bytes",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class KnownAppend(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One message appended, as a load reads it from the log: the message,
    the revision after it (32 raw bytes) and the time, in microseconds since
    1970 UTC. :func:`fold` takes it where it takes the ``MessagesAppended``
    of that one message, and makes the time a ``datetime`` only if it is the
    last event's: decoding and folding a long session take a third less.
    A struct the collector does not track: made once per stored message by
    a load, it costs a quarter of a NamedTuple made by ``tuple.__new__``."""

    message: Message
    revision: bytes
    micros: int

    @property
    def at(self) -> datetime:
        return _EPOCH + self.micros * _MICROSECOND


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a session comes from. A session that is not a fork is its own
    root at depth 0."""

    root: str
    depth: int = 0
    source: str | None = None
    source_version: int | None = None
    fork_index: int | None = None  # messages kept from the source (then the replacement, if any)


class Metadata(Mapping[str, Any]):
    """A session's metadata: read-only, and what it holds comes out as a
    copy (a nested list or dict), so no caller can change a state that
    other callers, and the store's cache, read. Change it with
    ``Transcripts.update_metadata``."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        return _copied(value) if type(value) in (list, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Metadata({dict(self)!r})"


def _copied(value: Any) -> Any:
    if type(value) is list:
        return [_copied(item) for item in value]
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    return value


_EMPTY_METADATA: Mapping[str, Any] = Metadata({})
NEW_HEADER = Header()
_NO_USAGE = Usage()  # shared: every new session and fork starts from it


@dataclass(frozen=True, slots=True)
class Session:
    """A session as of one version: immutable; every field is a plain value.

    ``revision`` is the content address of ``messages`` (see
    ``engine.state.revisions``); ``version`` counts the session's recorded events;
    ``generation`` counts its content commits (appends and rewrites), so the
    same revision reached twice (A -> B -> A) is told apart.
    """

    id: str
    version: int
    revision: str
    messages: MessageSeq
    usage: Usage
    metadata: Mapping[str, Any]
    title: str | None
    created_at: datetime
    updated_at: datetime
    lineage: Lineage
    generation: int = 0
    header: Header = NEW_HEADER
    records: Records = NO_RECORDS
    # The ids of the provider items its realtime ingestion has recorded
    # (waiting ones too): ids no message the caller appends may take, since
    # erase() takes every message that has an id as its id or item id.
    realtime_items: frozenset[str] = field(repr=False, default=frozenset())
    _revision_bytes: bytes = field(repr=False, compare=False, default=EMPTY_REVISION_BYTES)

    @property
    def status(self) -> str:
        return self.header.status

    @property
    def tags(self) -> tuple[str, ...]:
        return self.header.tags

    @property
    def pinned(self) -> bool:
        return self.header.pinned

    @property
    def message_count(self) -> int:
        return len(self.messages)

    # -- records (engine.state.records) -----------------------------------------

    @property
    def spawn(self) -> Spawn | None:
        """Where this child session was spawned from; ``None`` for a root."""
        return self.records.spawn

    @property
    def parent(self) -> str | None:
        return None if self.records.spawn is None else self.records.spawn.parent

    @property
    def kind(self) -> str:
        """``"child"`` for a session spawned by another, else ``"root"``."""
        return "root" if self.records.spawn is None else "child"

    @property
    def children(self) -> tuple[Child, ...]:
        """The sessions this one spawned, oldest first."""
        return self.records.children

    @property
    def subagent_status(self) -> str:
        """This session's status as a parent sees a sub-agent: spawning,
        running, completed, failed or cancelled."""
        return subagent_status(self.header.status)

    @property
    def task_list(self) -> tuple[Task, ...] | None:
        return self.records.task_list

    @property
    def pending_question(self) -> Question | None:
        return self.records.pending_question

    @property
    def compactions(self) -> tuple[Compaction, ...]:
        """The figures of every compaction of this session, oldest first."""
        return self.records.compactions

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool use with its result, in order (the audit view; for the
        times of each, see ``Transcripts.tool_calls``)."""
        return tool_calls_of(self.messages)

    # -- views (computed from the messages; what agent runtimes show) ----------

    @property
    def last_assistant_text(self) -> str | None:
        """The text (written and spoken) of the last assistant message, or
        ``None`` if there is none."""
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message.text
        return None

    @property
    def tool_call_count(self) -> int:
        """How many tool uses the messages make."""
        return sum(len(message.tool_uses) for message in self.messages)

    @property
    def exchange_count(self) -> int:
        """How many user messages an assistant message answered (before the
        next user message)."""
        count, asked = 0, False
        for message in self.messages:
            if message.role == "user":
                asked = True
            elif message.role == "assistant" and asked:
                count, asked = count + 1, False
        return count

    @property
    def has_pending_boundary(self) -> bool:
        """Whether the transcript waits for an assistant turn: its last
        message is a user message or tool results."""
        return bool(self.messages) and self.messages[-1].role in ("user", "tool_results")

    def preview(self, width: int = 120) -> str | None:
        """The first user message's text on one line (each run of
        whitespace, newlines too, one space), cut to ``width`` characters
        (with an ellipsis), or ``None`` if there is none."""
        first = next((message for message in self.messages if message.role == "user"), None)
        return None if first is None else _cut(" ".join(first.text.split()), width)

    def output_preview(self, width: int = 120) -> str | None:
        """The last assistant text, on one line and cut as :meth:`preview` does."""
        text = self.last_assistant_text
        return None if text is None else _cut(" ".join(text.split()), width)


@dataclass(frozen=True, kw_only=True)
class Tail:
    """The newest messages of a session (:meth:`Transcripts.get` with
    ``last=``): ``messages`` are those at positions ``start`` to
    ``message_count - 1`` of the session at ``version``; ``written_at[i]``
    is when ``messages[i]`` was written (by the append, rewrite or fork that
    put it there)."""

    session_id: str
    version: int
    revision: str
    message_count: int
    start: int
    messages: tuple[Message, ...]
    written_at: tuple[datetime, ...]


def _compaction(version: int, event: MessagesRewritten, figures: CompactionFigures) -> Compaction:
    return Compaction(
        version=version,
        revision=event.revision,
        start=event.start,
        messages_compressed=event.end - event.start,
        messages_after=len(event.messages),
        **msgspec.structs.asdict(figures),
    )


def _changed_header(session_id: str, version: int, header: Header, event: HeaderChanged) -> Header:
    """``header`` with the event's changes: a stored change that no header can
    hold (a field or value the engine never writes) is damage."""
    try:
        return msgspec.convert({**msgspec.to_builtins(header), **event.changes}, Header)
    except (msgspec.ValidationError, TypeError) as exc:
        raise CorruptStore(f"session {session_id!r} version {version}: a header change it cannot hold: {exc}") from None


def _cut(text: str, width: int) -> str:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidArgument(f"width is how many characters to keep (an int >= 1), got {width!r}")
    return text if len(text) <= width else text[: width - 1] + "…"


def created(session_id: str, version: int, event: SessionCreated) -> Session:
    return Session(
        id=session_id,
        version=version,
        revision=format_revision(EMPTY_REVISION_BYTES),
        messages=MessageSeq(),
        usage=_NO_USAGE,
        metadata=Metadata(_copied(event.metadata)) if event.metadata else _EMPTY_METADATA,
        title=event.title,
        created_at=event.at,
        updated_at=event.at,
        lineage=Lineage(root=session_id),
        records=NO_RECORDS if event.spawn is None else Records(spawn=event.spawn),
    )


def forked(session_id: str, event: SessionForked, source: Session, *, verify: bool = True) -> Session:
    """The first state of a fork, from its source as of ``event.source_version``.

    The child shares the source's message structure; its title, metadata and
    header settings are the source's at the fork point (its status starts
    again, unpinned), its usage starts at zero.
    """
    if source.version != event.source_version:
        raise CorruptStore(
            f"session {session_id!r} forks {event.source!r} at version {event.source_version}, "
            f"but was given version {source.version}"
        )
    lineage = source.lineage
    if verify and (event.root != lineage.root or event.depth != lineage.depth + 1):
        # The source's own lineage says what the fork's must be: a fork
        # event whose root or depth say otherwise was altered (or written
        # from altered bytes of its source), and erasures find a family by it.
        raise CorruptStore(
            f"session {session_id!r} forks {event.source!r}, whose root is {lineage.root!r} at depth "
            f"{lineage.depth}, but records root {event.root!r} at depth {event.depth}"
        )
    index = len(source.messages) if event.index is None else event.index
    if not 0 <= index <= len(source.messages):
        raise CorruptStore(f"session {session_id!r} forks {event.source!r} at index {index}, out of range")
    messages = source.messages.prefix(index)
    raw = source._revision_bytes if index == len(source.messages) else messages.revision_at(index)
    if event.replacement is not None:
        # The store has just hashed the replacement to write the event: trust it then.
        [raw] = chain_each(raw, (event.replacement,)) if verify else [parse_revision(event.revision)]
        messages = messages.extended((event.replacement,), (raw,))
    revision = source.revision if raw is source._revision_bytes else format_revision(raw)
    if revision != event.revision:
        if verify:
            raise CorruptStore(
                f"session {session_id!r}: the fork records revision {event.revision}, but its messages give {revision}"
            )
        raw, revision = parse_revision(event.revision), event.revision
    return Session(
        id=session_id,
        version=1,
        revision=revision,
        messages=messages,
        usage=_NO_USAGE,
        metadata=source.metadata,
        title=source.title,
        created_at=event.at,
        updated_at=event.at,
        # A fork is a new run of the conversation: the source's settings, a new status, not pinned.
        header=msgspec.structs.replace(source.header, status=NEW_HEADER.status, pinned=False, outcome=None),
        # The conversation's working state goes with it (task list, pending
        # question); the source's children and compactions stay the source's.
        records=Records(task_list=source.task_list, pending_question=source.pending_question),
        lineage=Lineage(
            root=event.root,
            depth=event.depth,
            source=event.source,
            source_version=event.source_version,
            fork_index=event.index,
        ),
        _revision_bytes=raw,
    )


def evolve(state: Session | None, session_id: str, version: int, event: Event, *, verify: bool = True) -> Session:
    """The state after ``event`` (recorded as ``version``) is applied to ``state``.

    Pure: never mutates ``state``. With ``verify`` (the default, used on every
    replay) the revision recorded in a content event is checked against the
    recomputed chain; a mismatch means the stored history was altered and
    raises :class:`CorruptStore`. One step of :func:`fold`.
    """
    if state is None:
        if isinstance(event, SessionCreated):
            return created(session_id, version, event)
        raise CorruptStore(
            f"session {session_id!r}: version {version} is a {type(event).__name__}; a history starts with "
            "SessionCreated (or SessionForked, which needs its source: see forked())"
        )
    folded = fold(session_id, ((version, event),), start=state, verify=verify)
    assert folded is not None
    return folded


def fold(
    session_id: str,
    events: Iterable[tuple[int, Event | KnownAppend]],
    start: Session | None = None,
    *,
    verify: bool = True,
    known: Mapping[int, Sequence[bytes]] | None = None,
) -> Session | None:
    """The state after applying ``(version, event)`` pairs to ``start``.

    Equal to reducing :func:`evolve` over the events, but builds one
    ``Session`` at the end instead of one per event, which is what makes a
    cold load cheap. ``verify=False`` trusts the revisions recorded in the
    events instead of re-hashing the messages; the store does that only for a
    prefix a verified snapshot vouches for, and for events it has just built,
    whose per-message revisions it passes as ``known`` (by version).
    """
    iterator = iter(events)
    if start is None:
        first = next(iterator, None)
        if first is None:
            return None
        if isinstance(first[1], KnownAppend):
            raise CorruptStore(
                f"session {session_id!r}: version {first[0]} is an append; a history starts with SessionCreated"
            )
        start = evolve(None, session_id, first[0], first[1])
    sha256 = hashlib.sha256
    version = start.version
    revision, raw = start.revision, start._revision_bytes
    usage, title, updated, generation = start.usage, start.title, start.updated_at, start.generation
    header, records = start.header, start.records
    items = start.realtime_items
    new_items: set[str] | None = None  # items recorded here, when any is new
    metadata: dict[str, Any] | None = None  # copied on the first change only
    messages = start.messages
    pending: list[Message] = []  # appended messages not yet in `messages`
    pending_revisions: list[Known] = []
    trusted = False  # a trusted append left `raw` stale: it is parsed from `revision` at the end
    stale = False  # a known append left `revision` stale: it is formatted from `raw` when needed
    last: Event | KnownAppend | None = None
    for number, event in iterator:
        version += 1
        if number != version:
            raise CorruptStore(f"session {session_id!r}: expected version {version}, got {number}")
        last = event
        if type(event) is KnownAppend:
            message = event.message
            if verify:
                raw = sha256(raw + message.digest_bytes()).digest()
                if raw != event.revision:
                    raise CorruptStore(
                        f"session {session_id!r}: version {number} records revision {format_revision(event.revision)}, "
                        f"but its messages chain to {format_revision(raw)}; the stored history was altered"
                    )
            else:
                raw = event.revision
            pending.append(message)
            pending_revisions.append(raw)
            generation += 1
            trusted, stale = False, True
            continue
        assert not isinstance(event, KnownAppend)
        if isinstance(event, MessagesAppended):
            stale = False
            if verify:
                for message in event.messages:
                    raw = sha256(raw + message.digest_bytes()).digest()
                    pending_revisions.append(raw)
                revision = format_revision(raw)
                if revision != event.revision:
                    raise CorruptStore(
                        f"session {session_id!r}: version {number} records revision {event.revision}, "
                        f"but its messages chain to {revision}; the stored history was altered"
                    )
            elif known is not None and number in known:
                pending_revisions += known[number]
                raw = known[number][-1]
                revision = event.revision
            else:
                revision = event.revision
                trusted = True
                if event.messages:  # one revision per message: an append of none (never written) adds none
                    pending_revisions += [None] * (len(event.messages) - 1)
                    pending_revisions.append(revision)
            pending += event.messages
            generation += 1
        elif isinstance(event, MessagesRewritten):
            if pending:
                messages = messages.extended(pending, pending_revisions)
                pending, pending_revisions = [], []
            if event.generation != generation + 1:
                raise CorruptStore(
                    f"session {session_id!r}: version {number} is commit {event.generation}, expected {generation + 1}"
                )
            if trusted:
                raw, trusted = stored_revision_bytes(revision, f"session {session_id!r} version {number - 1}"), False
            if stale:
                revision, stale = format_revision(raw), False
            messages, raw = _rewritten(session_id, number, messages, revision, event, verify)
            revision = event.revision
            generation = event.generation
            if event.compaction is not None:
                records = msgspec.structs.replace(
                    records, compactions=(*records.compactions, _compaction(number, event, event.compaction))
                )
        elif isinstance(event, UsageRecorded):
            usage = usage + event.usage
        elif isinstance(event, MetadataChanged):
            if metadata is None:
                metadata = dict(start.metadata)
            for key in event.unset:
                metadata.pop(key, None)
            metadata.update(_copied(event.set))
        elif isinstance(event, TitleChanged):
            title = event.title
        elif isinstance(event, HeaderChanged):
            header = _changed_header(session_id, number, header, event)
        elif isinstance(event, MessagesErased):
            # The log's own records were rewritten already; this also reaches
            # the messages a fork inherited, and a state cached before the
            # erasure that catches up by folding this event.
            if pending:
                messages = messages.extended(pending, pending_revisions)
                pending, pending_revisions = [], []
            messages = _erased(messages, frozenset(event.message_ids))
        elif isinstance(event, ChildSpawned):
            child = Child(session_id=event.child, task=event.task, name=event.name)
            records = msgspec.structs.replace(records, children=(*records.children, child))
        elif isinstance(event, TaskListChanged):
            records = msgspec.structs.replace(records, task_list=event.tasks)
        elif isinstance(event, QuestionChanged):
            records = msgspec.structs.replace(records, pending_question=event.question)
        elif isinstance(event, RealtimeRecorded):
            item = getattr(event.event, "item_id", None)  # ingestion state: only the ids it reserves
            if item is not None and item not in items:
                if new_items is None:
                    new_items = set()
                new_items.add(item)
        elif isinstance(event, RealtimePendingResolved):
            pass  # an audit record: no change to the state itself
        else:
            raise CorruptStore(f"session {session_id!r}: {type(event).__name__} again at version {number}")
    if last is None:
        return start
    updated = last.at
    if stale:
        revision = format_revision(raw)
    if pending:
        messages = messages.extended(pending, pending_revisions)
    return Session(
        id=session_id,
        version=version,
        revision=revision,
        messages=messages,
        usage=usage,
        metadata=start.metadata if metadata is None else Metadata(metadata),
        title=title,
        created_at=start.created_at,
        updated_at=updated,
        lineage=start.lineage,
        generation=generation,
        header=header,
        records=records,
        realtime_items=items if new_items is None else items | new_items,
        _revision_bytes=stored_revision_bytes(revision, f"session {session_id!r} version {version}")
        if trusted
        else raw,
    )


def appended(state: Session, event: MessagesAppended, revisions: Sequence[bytes]) -> Session:
    """The state after ``event``, an append just decided on ``state`` whose
    per-message revisions are ``revisions``: what :func:`fold` gives (with
    those revisions known), built directly, since every append call takes
    this step.

    Built field by field through the slots (the frozen dataclass's
    ``__init__`` sets each of its 15 fields through ``object.__setattr__``,
    three times as slow); a test checks that this gives what ``Session(...)``
    gives, field for field."""
    new = _new_session(Session)
    _SET_ID(new, state.id)
    _SET_VERSION(new, state.version + 1)
    _SET_REVISION(new, event.revision)
    _SET_MESSAGES(new, state.messages.extended(event.messages, revisions))
    _SET_USAGE(new, state.usage)
    _SET_METADATA(new, state.metadata)
    _SET_TITLE(new, state.title)
    _SET_CREATED_AT(new, state.created_at)
    _SET_UPDATED_AT(new, event.at)
    _SET_LINEAGE(new, state.lineage)
    _SET_GENERATION(new, state.generation + 1)
    _SET_HEADER(new, state.header)
    _SET_RECORDS(new, state.records)
    _SET_REALTIME_ITEMS(new, state.realtime_items)
    _SET_REVISION_BYTES(new, revisions[-1])
    return new


_new_session = object.__new__
# The slots' own setters, in field order (``appended`` sets every one).
APPENDED_FIELDS = (
    "id",
    "version",
    "revision",
    "messages",
    "usage",
    "metadata",
    "title",
    "created_at",
    "updated_at",
    "lineage",
    "generation",
    "header",
    "records",
    "realtime_items",
    "_revision_bytes",
)
(
    _SET_ID,
    _SET_VERSION,
    _SET_REVISION,
    _SET_MESSAGES,
    _SET_USAGE,
    _SET_METADATA,
    _SET_TITLE,
    _SET_CREATED_AT,
    _SET_UPDATED_AT,
    _SET_LINEAGE,
    _SET_GENERATION,
    _SET_HEADER,
    _SET_RECORDS,
    _SET_REALTIME_ITEMS,
    _SET_REVISION_BYTES,
) = (getattr(Session, name).__set__ for name in APPENDED_FIELDS)


def _rewritten(
    session_id: str, version: int, messages: MessageSeq, revision: str, event: MessagesRewritten, verify: bool
) -> tuple[MessageSeq, bytes]:
    where = f"session {session_id!r} version {version}"
    if event.parent_revision != revision:
        raise CorruptStore(f"{where}: the rewrite's parent is {event.parent_revision}, but the head was {revision}")
    if not 0 <= event.start <= event.end <= len(messages):
        raise CorruptStore(f"{where}: rewrite range [{event.start}, {event.end}) is outside the transcript")
    raw = parse_revision(event.revision)
    tail_length = len(event.messages) + len(messages) - event.end
    if verify:
        tail = list(event.messages) + list(messages[event.end :])
        chained = chain_each(messages.revision_at(event.start), tail)
        computed = chained[-1] if chained else messages.revision_at(event.start)
        revisions: list[bytes | None] = list(chained)
        if computed != raw:
            raise CorruptStore(
                f"{where}: the rewrite records revision {event.revision}, but its messages chain to "
                f"{format_revision(computed)}; the stored history was altered"
            )
    else:
        revisions = [None] * (tail_length - 1) + [raw] if tail_length else []
    return messages.replaced(event.start, event.end, event.messages, revisions), raw


def involves_tools(messages: Iterable[Message]) -> bool:
    """Whether any of ``messages`` makes tool uses or holds tool results (a
    cheap test, so appends without tool traffic skip :func:`check_shape`)."""
    for message in messages:
        role = message.role
        if role == "tool_results":
            return True
        if role == "assistant":
            for block in message.blocks:
                if type(block) is ToolUse:
                    return True
    return False


def check_shape(messages: Sequence[Message], start: int, stop: int, *, offset: int = 0) -> None:
    """Check tool pairing where ``messages[start:stop]`` was changed.

    A tool_results message must directly follow an assistant message with tool
    uses and cover exactly their ids, or, as the last message, some of them
    (the others have not arrived yet: a human approval pending, say); an
    assistant message with tool uses must be followed by such a tool_results
    message, unless it is the last message (its results have not arrived yet). Only the changed span and its two
    neighbours are looked at: the rest was checked when it was written.
    ``messages`` may be a window of the transcript starting at message
    ``offset`` (error messages count from the transcript's start).
    """
    first = max(0, start - 1)
    last = min(len(messages), stop + 1)
    for index in range(first, last):
        message = messages[index]
        previous = messages[index - 1] if index else None
        if message.erased is not None:
            continue  # erased content cannot be checked; it was checked when it was written
        if start <= index < stop and message.role == "assistant":
            made = [use.id for use in message.tool_uses]
            if len(set(made)) != len(made):
                # No results could answer them "exactly, once each": every later append would be refused.
                twice = sorted({ident for ident in made if made.count(ident) > 1})
                raise InvalidTranscriptShape(
                    f"message {index + offset} makes more than one tool use with the id {twice[0]!r}; "
                    "each tool use needs an id of its own, which its result names"
                )
        if message.role == "tool_results":
            if previous is not None and previous.erased is not None:
                continue
            expected = [use.id for use in previous.tool_uses] if previous is not None else []
            answered = [block.tool_use_id for block in message.blocks if isinstance(block, ToolResult)]
            if not expected:
                before = "nothing precedes it"
                if index + offset:
                    before = f"message {index + offset - 1} is not an assistant message with tool uses"
                raise InvalidTranscriptShape(f"message {index + offset} holds tool results, but {before}")
            last = index == len(messages) - 1
            if len(set(answered)) != len(answered) or not (
                sorted(answered) == sorted(expected) or (last and answered and set(answered) < set(expected))
            ):
                answered_in_part = (
                    bool(answered) and set(answered) < set(expected) and len(set(answered)) == len(answered)
                )
                partial = (  # answered in part, and more results come in a message of their own
                    answered_in_part and index + 1 < len(messages) and messages[index + 1].role == "tool_results"
                )
                if answered_in_part and not partial and index < start:
                    # Results that were the last message, answering calls in part, and a message
                    # put after them: the other calls would stay unanswered for ever.
                    _raise_still_unanswered(messages, index, offset, expected, answered)
                raise InvalidTranscriptShape(
                    f"message {index + offset} answers tool uses {sorted(answered)}, but message {index + offset - 1} "
                    f"made {sorted(expected)}; results must cover exactly those ids, once each (the last message "
                    "may answer some of them, the others to come)"
                    + (
                        f". To add the other results, rewrite message {index + offset} with all of them "
                        f"(rewrite(sid, {index + offset}, {index + offset + 1}, [Message.tool_results(...)])) instead "
                        "of appending another tool_results message"
                        if partial
                        else ""
                    )
                )
        elif (
            message.tool_uses
            and index + 1 < len(messages)
            and messages[index + 1].role != "tool_results"
            and messages[index + 1].erased is None
        ):
            at = index + offset + 1
            raise InvalidTranscriptShape(
                f"message {index + offset} makes tool uses, but message {at} is "
                f"{a_role(messages[index + 1].role)} message, not their tool_results. To answer calls that were "
                f"abandoned (a realtime call the user talked over), put their results in first: rewrite(sid, {at}, "
                f"{at}, [Message.tool_results(ToolResult.of(call_id, 'abandoned', is_error=True), ...)])"
            )


def _raise_still_unanswered(
    messages: Sequence[Message], index: int, offset: int, expected: list[str], answered: list[str]
) -> None:
    """The calls that ``messages[index]`` (results) leaves unanswered, and the
    message after it that would leave them so."""
    missing = [ident for ident in expected if ident not in answered]
    one = len(missing) == 1
    calls = f"{'call' if one else 'calls'} {', '.join(repr(ident) for ident in missing)}"
    results = ", ".join(f"ToolResult.of({ident!r}, ...)" for ident in missing)
    raise InvalidTranscriptShape(
        f"{calls} of message {index + offset - 1} {'is' if one else 'are'} still unanswered (message {index + offset} "
        f"answers only {sorted(answered)}), and this would put {a_role(messages[index + 1].role)} message (message "
        f"{index + offset + 1}) after {'it' if one else 'them'}, where {'its result' if one else 'their results'} "
        f"must come first. Add {'its result' if one else 'their results'} first: add_tool_results(sid, {results}) "
        "(is_error=True for a call that was abandoned)"
    )


def _erased(messages: MessageSeq, ids: frozenset[str]) -> MessageSeq:
    """``messages`` with those whose id is in ``ids`` replaced by their erased
    placeholders (same digest, so every revision stays as it was)."""
    for index, message in enumerate(messages):
        if message.id in ids and message.erased is None:
            messages = messages.replaced(index, index + 1, [message.erasure()])
    return messages


def revision_bytes(state: Session) -> bytes:
    """The raw digest behind ``state.revision``, for the layers that chain on
    from it (deciders, ingestion) without parsing the id again."""
    return state._revision_bytes
