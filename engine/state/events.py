"""The closed, tagged union of stored event types, their schema versions and
upcasters.

Every event records when it happened (``at``, UTC) and, optionally, who did it
(``actor``). The store names each stored row by ``<Type>.v<schema>``; the only
types it will ever decode are the ones in :data:`EVENT_TYPES`. When a schema
changes, its version goes up and an upcaster turns the older stored shape (a
plain dict) into the newer one, so old stores keep loading.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeAlias

import msgspec

from engine.state.content import Message, Usage
from engine.state.realtime_events import RealtimeEvent
from engine.state.records import CompactionFigures, Question, Spawn, Task

__all__ = [
    "EVENT_TYPES",
    "ChildSpawned",
    "Event",
    "EventType",
    "HeaderChanged",
    "MessagesAppended",
    "MessagesErased",
    "MessagesRewritten",
    "MetadataChanged",
    "QuestionChanged",
    "RealtimePendingResolved",
    "RealtimeRecorded",
    "SessionCreated",
    "SessionForked",
    "TaskListChanged",
    "TitleChanged",
    "UsageRecorded",
]


class _EventBase(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="kind",
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    at: datetime
    actor: str | None = None


class SessionCreated(_EventBase, frozen=True, kw_only=True, tag="session_created"):
    """The first event of every session; a child session's names where it
    was spawned from (``spawn``)."""

    title: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    spawn: Spawn | None = None


class MessagesAppended(_EventBase, frozen=True, kw_only=True, tag="messages_appended"):
    """Messages added at the end; ``revision`` is the head revision after them
    (checked on every replay, so a corrupted history is detected)."""

    messages: tuple[Message, ...]
    revision: str


class MessagesRewritten(_EventBase, frozen=True, kw_only=True, tag="messages_rewritten"):
    """The half-open range ``[start, end)`` replaced by ``messages``: an
    audited commit from ``parent_revision`` to ``revision``. Only the
    replacement is stored, never the rest of the transcript. A compaction
    made by ``Transcripts.compact`` carries its ``compaction`` figures."""

    start: int
    end: int
    messages: tuple[Message, ...]
    parent_revision: str
    revision: str
    reason: str
    note: str | None = None
    removed_digest: str
    replacement_digest: str
    count_before: int
    generation: int
    compaction: CompactionFigures | None = None


class SessionForked(_EventBase, frozen=True, kw_only=True, tag="session_forked"):
    """The first event of a fork: the source session's messages as of
    ``source_version`` (the first ``index`` of them, if given), then
    ``replacement`` if given. Nothing of the source is copied."""

    source: str
    source_version: int
    index: int | None = None
    replacement: Message | None = None
    revision: str
    root: str
    depth: int


class UsageRecorded(_EventBase, frozen=True, kw_only=True, tag="usage_recorded"):
    """Token usage of one model response (``response_id`` if known)."""

    usage: Usage
    response_id: str | None = None


class MetadataChanged(_EventBase, frozen=True, kw_only=True, tag="metadata_changed"):
    """Keys set (``set``) and keys removed (``unset``) in the session metadata."""

    set: dict[str, Any] = msgspec.field(default_factory=dict)
    unset: tuple[str, ...] = ()


class TitleChanged(_EventBase, frozen=True, kw_only=True, tag="title_changed"):
    title: str | None


class HeaderChanged(_EventBase, frozen=True, kw_only=True, tag="header_changed"):
    """Fields of the session's header given new values (see
    ``engine.state.header``): each key a header field, each value what it
    is now (``None`` clears a setting)."""

    changes: dict[str, Any]


class ChildSpawned(_EventBase, frozen=True, kw_only=True, tag="child_spawned"):
    """This session spawned the child session ``child`` (whose first event
    names this one as its parent) to do ``task``."""

    child: str
    task: str | None = None
    name: str | None = None


class TaskListChanged(_EventBase, frozen=True, kw_only=True, tag="task_list_changed"):
    """The session's task list is now ``tasks`` (``None``: it has none);
    ``updated`` names the task an update changed."""

    tasks: tuple[Task, ...] | None
    updated: str | None = None


class QuestionChanged(_EventBase, frozen=True, kw_only=True, tag="question_changed"):
    """A question put to the user (``question``), or the pending one cleared
    (``question`` None), with the user's ``answer`` if one was given."""

    question: Question | None
    answer: str | None = None


class RealtimeRecorded(_EventBase, frozen=True, kw_only=True, tag="realtime_recorded"):
    """One accepted realtime event, kept for audit and to rebuild the
    ingestion state. The messages it materialised follow as their own events
    in the same transaction."""

    event: RealtimeEvent
    provider: str | None = None


class MessagesErased(_EventBase, frozen=True, kw_only=True, tag="messages_erased"):
    """Content erased from this session's stored events (never the content
    itself): the messages' ids and the digests their content had, the
    versions whose stored bytes were rewritten, why, and the chain head the
    log had before (heads kept from before the erasure no longer verify)."""

    message_ids: tuple[str, ...]
    digests: tuple[str, ...]
    versions: tuple[int, ...]
    reason: str
    note: str | None = None
    previous_head: str
    # The realtime items whose recorded events it emptied (v2):
    # what ingestion receives for them later is stored without its content.
    items: tuple[str, ...] = ()


class RealtimePendingResolved(_EventBase, frozen=True, kw_only=True, tag="realtime_pending_resolved"):
    """Items stuck in ingestion were placed or dropped by an explicit rule."""

    policy: str


#: Reason kinds the engine itself records; callers may add their own
#: (lowercase words joined by underscores). ``append`` names the commits of
#: appends in ``revisions()``; the ``realtime_*``/``late_*``, ``truncation``
#: and ``provider_deleted`` kinds are recorded by realtime ingestion.
REASON_KINDS = (
    "append",
    "edit",
    "compaction",
    "redaction",
    "restore",
    "truncation",
    "provider_deleted",
    "erasure",
    "realtime_order",
    "late_transcription",
    "late_content",
)


Event: TypeAlias = (
    SessionCreated
    | SessionForked
    | MessagesAppended
    | MessagesRewritten
    | UsageRecorded
    | MetadataChanged
    | TitleChanged
    | HeaderChanged
    | RealtimeRecorded
    | RealtimePendingResolved
    | MessagesErased
    | ChildSpawned
    | TaskListChanged
    | QuestionChanged
)

#: The events that set a session's revision (each records the revision after it).
CONTENT_EVENTS = (SessionForked, MessagesAppended, MessagesRewritten)

Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]


class EventType(msgspec.Struct, frozen=True):
    """One entry of the closed registry: a class, its current schema version,
    and the upcasters from each older version to the next."""

    name: str
    cls: type[Event]
    version: int
    upcasters: dict[int, Upcaster] = msgspec.field(default_factory=dict)


def _usage_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """UsageRecorded v1 kept only flat ``input_tokens``/``output_tokens``;
    v2 holds a full :class:`Usage` (cache and reasoning counts) and a response id."""
    upgraded = {key: value for key, value in state.items() if key not in ("input_tokens", "output_tokens")}
    upgraded["usage"] = {"input": state.get("input_tokens", 0), "output": state.get("output_tokens", 0)}
    return upgraded


def _erased_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """MessagesErased v1 named no realtime items (``items`` is empty)."""
    return state


EVENT_TYPES: dict[str, EventType] = {
    entry.name: entry
    for entry in (
        EventType("SessionCreated", SessionCreated, 1),
        EventType("SessionForked", SessionForked, 1),
        EventType("MessagesAppended", MessagesAppended, 1),
        EventType("MessagesRewritten", MessagesRewritten, 1),
        EventType("UsageRecorded", UsageRecorded, 2, {1: _usage_v1_to_v2}),
        EventType("MetadataChanged", MetadataChanged, 1),
        EventType("TitleChanged", TitleChanged, 1),
        EventType("HeaderChanged", HeaderChanged, 1),
        EventType("RealtimeRecorded", RealtimeRecorded, 1),
        EventType("RealtimePendingResolved", RealtimePendingResolved, 1),
        EventType("MessagesErased", MessagesErased, 2, {1: _erased_v1_to_v2}),
        EventType("ChildSpawned", ChildSpawned, 1),
        EventType("TaskListChanged", TaskListChanged, 1),
        EventType("QuestionChanged", QuestionChanged, 1),
    )
}

EVENT_NAMES: dict[type[Event], str] = {entry.cls: entry.name for entry in EVENT_TYPES.values()}


def kind_of(event: Event) -> str:
    """The tag stored in the event (``messages_appended``, ...)."""
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
