"""Records agent runtimes keep beside the transcript: where a child session
was spawned from and the children a session spawned, a task list, a
question waiting for the user, and the figures of each compaction. Each is
changed only by its own event (``engine.state.events``), so every change is
audited and every past value can be read with ``get(at=...)``.

Also the tool-call audit view, derived from the transcript itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from engine.state.content import Message, ToolResult

__all__ = [
    "COMPACTION_TRIGGERS",
    "SUBAGENT_STATUSES",
    "TASK_STATUSES",
    "Child",
    "Compaction",
    "CompactionFigures",
    "Question",
    "Records",
    "Spawn",
    "Task",
    "ToolCall",
    "subagent_status",
    "tool_calls_of",
]

#: What a task of a task list can be.
TASK_STATUSES = ("pending", "in_progress", "completed", "blocked", "skipped")
#: What set a compaction off: a threshold, a caller, a context overflow.
COMPACTION_TRIGGERS = ("auto", "manual", "overflow")
#: A child session's status as its parent sees it (everruns' subagent status),
#: derived from the child's own lifecycle status.
SUBAGENT_STATUSES = ("spawning", "running", "completed", "failed", "cancelled")


class _Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    pass


class Task(_Record, frozen=True, kw_only=True):
    """One item of a task list. ``criteria`` are what must hold for it to be
    done; ``criteria_met`` those that do."""

    id: str
    description: str
    status: str = "pending"
    notes: str | None = None
    criteria: tuple[str, ...] = ()
    criteria_met: tuple[str, ...] = ()


class Question(_Record, frozen=True, kw_only=True):
    """A question the agent put to the user and waits on (from a tool call,
    if ``tool_call_id`` says which)."""

    question: str
    options: tuple[str, ...] = ()
    allow_custom: bool = True
    tool_call_id: str | None = None
    tool_name: str | None = None


class CompactionFigures(_Record, frozen=True, kw_only=True):
    """What a compaction rewrite records beside its messages (the rest of a
    :class:`Compaction` is the rewrite's own span and revision)."""

    trigger: str = "manual"
    tokens_before: int | None = None
    tokens_after: int | None = None
    model: str | None = None
    latency_ms: int | None = None


class Compaction(_Record, frozen=True, kw_only=True):
    """The figures of one compaction: the rewrite at ``version`` (reason
    ``compaction``) replaced ``messages_compressed`` messages from ``start``
    with ``messages_after`` (a summary, say)."""

    version: int
    revision: str
    start: int
    messages_compressed: int
    messages_after: int
    trigger: str = "manual"
    tokens_before: int | None = None
    tokens_after: int | None = None
    model: str | None = None
    latency_ms: int | None = None

    @property
    def ratio(self) -> float | None:
        """Tokens after over tokens before, when both are known."""
        if not self.tokens_before or self.tokens_after is None:
            return None
        return self.tokens_after / self.tokens_before


class Spawn(_Record, frozen=True, kw_only=True):
    """Where a child session comes from: its parent, the root of its family,
    how deep it is (a child of a root is at depth 1), the task it was given
    and the sub-agent's name."""

    parent: str
    root: str
    depth: int
    task: str | None = None
    name: str | None = None


class Child(_Record, frozen=True, kw_only=True):
    """A session this one spawned, as the parent recorded it."""

    session_id: str
    task: str | None = None
    name: str | None = None


class Records(_Record, frozen=True, kw_only=True):
    """Every record of a session; a new session has none."""

    spawn: Spawn | None = None
    children: tuple[Child, ...] = ()
    task_list: tuple[Task, ...] | None = None
    pending_question: Question | None = None
    compactions: tuple[Compaction, ...] = ()


NO_RECORDS = Records()


def subagent_status(status: str) -> str:
    """A child's lifecycle status as its parent's view of a sub-agent."""
    if status == "started":
        return "spawning"
    if status == "finished":
        return "completed"
    if status in ("failed", "cancelled"):
        return status
    return "running"


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """One tool use and its result (the tool-call audit). ``result`` is
    ``None`` while the call waits for its result. ``position`` and
    ``result_position`` are where the call and its result are in the
    transcript (``None``: no longer there, rewritten or compacted away).
    The times, where given, are when the call and the result were written;
    ``duration_ms`` is the time between the two."""

    call_id: str
    name: str
    arguments: str
    position: int | None = None
    result: str | None = None
    is_error: bool = False
    result_position: int | None = None
    called_at: datetime | None = None
    answered_at: datetime | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.called_at is None or self.answered_at is None:
            return None
        return round((self.answered_at - self.called_at).total_seconds() * 1000)


def tool_calls_of(messages: Sequence[Message], written_at: Sequence[datetime] | None = None) -> list[ToolCall]:
    """Every tool use of ``messages`` paired with its result (which the
    message after it holds), in order. ``written_at[i]``, if given, is when
    ``messages[i]`` was written."""
    calls: list[ToolCall] = []
    for position, message in enumerate(messages):
        uses = message.tool_uses
        if not uses:
            continue
        answers: dict[str, ToolResult] = {}
        after = position + 1
        if after < len(messages) and messages[after].role == "tool_results":
            answers = {b.tool_use_id: b for b in messages[after].blocks if isinstance(b, ToolResult)}
        for use in uses:
            answer = answers.get(use.id)
            calls.append(
                ToolCall(
                    call_id=use.id,
                    name=use.name,
                    arguments=use.arguments,
                    position=position,
                    result=None if answer is None else answer.content_text,
                    is_error=answer is not None and answer.is_error,
                    result_position=None if answer is None else after,
                    called_at=None if written_at is None else written_at[position],
                    answered_at=None if written_at is None or answer is None else written_at[after],
                )
            )
    return calls
