"""Commands and deciders for the records kept beside the transcript
(``engine.state.records``): spawning a child session, the task list, the
pending question, and compactions with their figures. ``decide`` here takes
every command: these, and the transcript's (``engine.decisions.transcript``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from engine.decisions import transcript
from engine.decisions._checks import (
    MAX_TOKENS,
    at,
    check_actor,
    check_metadata,
    check_stored_text,
    check_title,
    in_order,
    new_session_id,
)
from engine.decisions.commands import Command, Rewrite, SetHeader
from engine.errors import InvalidArgument
from engine.state.content import Message, got, kind_of, shown
from engine.state.events import (
    ChildSpawned,
    Event,
    HeaderChanged,
    MessagesRewritten,
    QuestionChanged,
    SessionCreated,
    TaskListChanged,
)
from engine.state.records import COMPACTION_TRIGGERS, TASK_STATUSES, CompactionFigures, Question, Spawn, Task
from engine.state.transcript import Session, fold

__all__ = [
    "AskQuestion",
    "ClearQuestion",
    "Compact",
    "RecordCommand",
    "SetTaskList",
    "SpawnChild",
    "UpdateTask",
    "decide",
    "spawned",
]

_Struct = msgspec.Struct


class SpawnChild(_Struct, frozen=True, kw_only=True):
    """A new child session ``child_id`` of the session decided on, given
    ``task``; ``header`` holds checked header fields for the child."""

    child_id: str
    task: str | None = None
    name: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    header: dict[str, Any] = msgspec.field(default_factory=dict)
    actor: str | None = None

    @classmethod
    def of(
        cls,
        *,
        task: str | None = None,
        name: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> SpawnChild:
        check_stored_text(task, "task")
        check_stored_text(name, "name")
        check_title(title)
        check_actor(actor)
        changes = SetHeader.of(header).changes if header else {}
        return cls(
            child_id=new_session_id(child_id),
            task=task,
            name=name,
            title=title,
            metadata=check_metadata(metadata),
            header=changes,
            actor=actor,
        )


class SetTaskList(_Struct, frozen=True, kw_only=True):
    tasks: tuple[Task, ...] | None
    actor: str | None = None

    @classmethod
    def of(cls, tasks: Iterable[Task] | None, *, actor: str | None = None) -> SetTaskList:
        check_actor(actor)
        if tasks is None:
            return cls(tasks=None, actor=actor)
        if isinstance(tasks, Task):
            raise InvalidArgument("a task list is a list of Task, got Task: pass [task]")
        checked = in_order(tasks, "a task list", of="Task")
        seen: set[str] = set()
        for index, task in enumerate(checked):
            if type(task) is not Task:  # a subclass's own fields would not read back
                raise InvalidArgument(f"task {index} is a {type(task).__name__}, not a Task")
            _check_task(task, f"task {index}")
            if task.id in seen:
                raise InvalidArgument(f"task {index}: the id {shown(task.id)} is used twice in the list")
            seen.add(task.id)
        return cls(tasks=checked, actor=actor)


def _check_task(task: Task, where: str) -> None:
    if type(task.id) is not str or not task.id:
        raise InvalidArgument(f"{where}: a task id is a non-empty str, got {got(task.id)}")
    for name in ("id", "description", "notes"):
        check_stored_text(getattr(task, name), f"{where}.{name}")
    if type(task.description) is not str:
        raise InvalidArgument(f"{where}: description must be a str, got {kind_of(task.description)}")
    if type(task.status) is not str or task.status not in TASK_STATUSES:
        raise InvalidArgument(f"{where}: status must be one of {list(TASK_STATUSES)}, got {shown(task.status)}")
    for name in ("criteria", "criteria_met"):
        values = getattr(task, name)
        if type(values) is not tuple or not all(type(v) is str for v in values):
            raise InvalidArgument(
                f"{where}.{name} must be a tuple of str (plain ones: a subclass would read back as its base), "
                f"got {got(values)}"
            )
        for value in values:
            check_stored_text(value, f"{where}.{name}")
    unknown = [criterion for criterion in task.criteria_met if criterion not in task.criteria]
    if unknown:
        raise InvalidArgument(
            f"{where}: criteria_met {shown(unknown)} are not among its criteria {list(task.criteria)}"
        )


class UpdateTask(_Struct, frozen=True, kw_only=True):
    """New values for one task of the list (``None``: left as it is)."""

    task_id: str
    status: str | None = None
    notes: str | None = None
    criteria_met: tuple[str, ...] | None = None
    actor: str | None = None

    @classmethod
    def of(
        cls,
        task_id: str,
        *,
        status: str | None = None,
        notes: str | None = None,
        criteria_met: Iterable[str] | None = None,
        actor: str | None = None,
    ) -> UpdateTask:
        if type(task_id) is not str or not task_id:
            raise InvalidArgument(f"a task id is a non-empty str, got {got(task_id)}")
        if status is not None and (type(status) is not str or status not in TASK_STATUSES):
            raise InvalidArgument(f"status must be one of {list(TASK_STATUSES)}, got {shown(status)}")
        check_stored_text(notes, "notes")
        met = None
        if criteria_met is not None:
            met = in_order(criteria_met, "criteria_met")
        if status is None and notes is None and met is None:
            raise InvalidArgument("update_task() needs a status, notes or criteria_met to change")
        check_actor(actor)
        return cls(task_id=task_id, status=status, notes=notes, criteria_met=met, actor=actor)


class AskQuestion(_Struct, frozen=True, kw_only=True):
    question: Question
    actor: str | None = None

    @classmethod
    def of(
        cls,
        question: str,
        options: Iterable[str] = (),
        *,
        allow_custom: bool = True,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        actor: str | None = None,
    ) -> AskQuestion:
        if type(question) is not str or not question.strip():
            raise InvalidArgument(f"a question is a non-empty str, got {got(question)}")
        check_stored_text(question, "question")
        choices = in_order(options, "options")
        for option in choices:
            if type(option) is not str or not option:
                raise InvalidArgument(f"an option is a non-empty str, got {shown(option)}")
            check_stored_text(option, "option")
        if len(set(choices)) != len(choices):
            raise InvalidArgument(f"options must not repeat, got {shown(list(choices))}")
        if not isinstance(allow_custom, bool):
            raise InvalidArgument(f"allow_custom must be True or False, got {shown(allow_custom)}")
        if not choices and not allow_custom:
            raise InvalidArgument("a question with no options must allow a custom answer")
        check_stored_text(tool_call_id, "tool_call_id")
        check_stored_text(tool_name, "tool_name")
        check_actor(actor)
        asked = Question(
            question=question,
            options=choices,
            allow_custom=allow_custom,
            tool_call_id=tool_call_id,
            tool_name=tool_name,
        )
        return cls(question=asked, actor=actor)


class ClearQuestion(_Struct, frozen=True, kw_only=True):
    answer: str | None = None
    actor: str | None = None

    @classmethod
    def of(cls, *, answer: str | None = None, actor: str | None = None) -> ClearQuestion:
        check_stored_text(answer, "answer")
        check_actor(actor)
        return cls(answer=answer, actor=actor)


class Compact(_Struct, frozen=True, kw_only=True):
    """A rewrite with reason ``compaction`` and the figures recorded with it."""

    rewrite: Rewrite
    trigger: str = "manual"
    tokens_before: int | None = None
    tokens_after: int | None = None
    model: str | None = None
    latency_ms: int | None = None

    # What a write of the facade reads from every command that carries messages.
    @property
    def messages(self) -> tuple[Message, ...]:
        return self.rewrite.messages

    @property
    def expected_revision(self) -> str | None:
        return self.rewrite.expected_revision

    @classmethod
    def of(
        cls,
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
    ) -> Compact:
        if type(trigger) is not str or trigger not in COMPACTION_TRIGGERS:
            raise InvalidArgument(f"trigger must be one of {list(COMPACTION_TRIGGERS)}, got {shown(trigger)}")
        for name, value in (
            ("tokens_before", tokens_before),
            ("tokens_after", tokens_after),
            ("latency_ms", latency_ms),
        ):
            if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
                raise InvalidArgument(f"{name} must be an int from 0 to 2**63 - 1, or None, got {got(value)}")
        check_stored_text(model, "model")
        rewrite = Rewrite.of(
            start, end, summary, "compaction", note=note, actor=actor, expected_revision=expected_revision
        )
        return cls(
            rewrite=rewrite,
            trigger=trigger,
            tokens_before=tokens_before,
            tokens_after=tokens_after,
            model=model,
            latency_ms=latency_ms,
        )


RecordCommand = SpawnChild | SetTaskList | UpdateTask | AskQuestion | ClearQuestion | Compact


def decide(state: Session | None, command: Command | RecordCommand, now: datetime) -> transcript.Decision:
    """The events that carry out ``command`` on ``state``, or the typed error
    that refuses it. ``SpawnChild`` is decided on the parent (the record
    the parent keeps); :func:`spawned` gives the child's first events."""
    if not isinstance(command, (SpawnChild, SetTaskList, UpdateTask, AskQuestion, ClearQuestion, Compact)):
        return transcript.decide(state, command, now)
    if state is None:
        raise InvalidArgument(f"{type(command).__name__} needs the session's state")
    when = at(now, state)
    events: tuple[Event, ...]
    if isinstance(command, SpawnChild):
        events = (
            ChildSpawned(at=when, actor=command.actor, child=command.child_id, task=command.task, name=command.name),
        )
    elif isinstance(command, SetTaskList):
        events = (TaskListChanged(at=when, actor=command.actor, tasks=command.tasks),)
    elif isinstance(command, UpdateTask):
        tasks = _updated(state, command)
        events = (TaskListChanged(at=when, actor=command.actor, tasks=tasks, updated=command.task_id),)
    elif isinstance(command, AskQuestion):
        call = command.question.tool_call_id
        if call is not None and not any(use.id == call for m in state.messages for use in m.tool_uses):
            raise InvalidArgument(
                f"session {state.id!r} has no tool call {shown(call)}: a question asked by a tool call is recorded "
                "after the assistant message that makes it"
            )
        events = (QuestionChanged(at=when, actor=command.actor, question=command.question),)
    elif isinstance(command, ClearQuestion):
        events = (QuestionChanged(at=when, actor=command.actor, question=None, answer=_answer(state, command)),)
    else:
        figures = CompactionFigures(
            trigger=command.trigger,
            tokens_before=command.tokens_before,
            tokens_after=command.tokens_after,
            model=command.model,
            latency_ms=command.latency_ms,
        )
        if command.rewrite.start == command.rewrite.end:
            raise InvalidArgument(
                f"a compaction replaces messages: [{command.rewrite.start}, {command.rewrite.end}) holds none"
            )
        rewritten = transcript.decide(state, command.rewrite, now)
        [event] = rewritten.events
        assert isinstance(event, MessagesRewritten)
        # The figures travel in the rewrite event itself: one event, one version.
        events = (msgspec.structs.replace(event, compaction=figures),)
    return transcript.decided(state, events)


def _updated(state: Session, command: UpdateTask) -> tuple[Task, ...]:
    tasks = state.task_list
    if tasks is None:
        raise InvalidArgument(f"session {state.id!r} has no task list; set one with set_task_list() first")
    found = [index for index, task in enumerate(tasks) if task.id == command.task_id]
    if not found:
        raise InvalidArgument(
            f"session {state.id!r}: the task list has no task {shown(command.task_id)}; "
            f"its ids are {[task.id for task in tasks]}"
        )
    old = tasks[found[0]]
    changes: dict[str, Any] = {}
    if command.status is not None:
        changes["status"] = command.status
    if command.notes is not None:
        changes["notes"] = command.notes
    if command.criteria_met is not None:
        changes["criteria_met"] = command.criteria_met
    new = msgspec.structs.replace(old, **changes)
    _check_task(new, f"task {shown(command.task_id)}")
    return (*tasks[: found[0]], new, *tasks[found[0] + 1 :])


def _answer(state: Session, command: ClearQuestion) -> str | None:
    asked = state.pending_question
    if asked is None:
        raise InvalidArgument(f"session {state.id!r} has no pending question to clear")
    answer = command.answer
    if answer is not None and asked.options and not asked.allow_custom and answer not in asked.options:
        raise InvalidArgument(
            f"the pending question takes one of {list(asked.options)} (no custom answers), got {shown(answer)}"
        )
    return answer


def spawned(parent: Session, command: SpawnChild, now: datetime) -> transcript.Decision:
    """The first events of the child ``command`` spawns from ``parent``: its
    creation (naming the parent, the family's root and its depth), then
    its header if the command gives one."""
    root = parent.spawn.root if parent.spawn is not None else parent.id
    depth = parent.spawn.depth + 1 if parent.spawn is not None else 1
    spawn = Spawn(parent=parent.id, root=root, depth=depth, task=command.task, name=command.name)
    first = SessionCreated(at=now, actor=command.actor, title=command.title, metadata=command.metadata, spawn=spawn)
    state = fold(command.child_id, [(1, first)])
    assert state is not None
    if not command.header:
        return transcript.Decision((first,), state)
    header = HeaderChanged(at=now, actor=command.actor, changes=transcript.header_changes(state, command.header))
    return transcript.decided(state, (header,), events_before=(first,))
