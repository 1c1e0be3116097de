"""A small, obviously correct reference model of the transcript semantics.

Plain lists and dicts, no structural sharing, no storage, no caching: every
version of every session is kept whole. It exists to be compared with the
engine (ours in ``property_tests/``, yours in your own tests). Revisions are
computed here from scratch with ``hashlib``, independently of
``engine.state.revisions``; only the canonical encoding of a message
(:meth:`engine.Message.canonical_bytes`) is shared, because that *is* the
definition of a message's content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from engine.state.content import Message, ToolResult, Usage

__all__ = ["ModelSession", "ModelState", "ReferenceModel", "model_revision"]


def model_revision(messages: list[Message]) -> str:
    """``sha256(previous || sha256(canonical(message)))`` over the messages,
    starting from ``sha256(b"")``; an erased placeholder counts with the
    digest its content had (``Message.erased``)."""
    current = hashlib.sha256(b"").digest()
    for message in messages:
        if message.erased is not None:
            digest = bytes.fromhex(message.erased.removeprefix("sha256:"))
        else:
            digest = hashlib.sha256(message.canonical_bytes()).digest()
        current = hashlib.sha256(current + digest).digest()
    return "sha256:" + current.hex()


#: A new session's header, and the status moves the lifecycle allows, written
#: out plainly (the engine's table is checked against these).
NEW_HEADER: dict[str, Any] = {
    "status": "started",
    "tags": [],
    "pinned": False,
    "model": None,
    "reasoning_effort": None,
    "system_prompt": None,
    "agent": None,
    "owner": None,
    "locale": None,
    "outcome": None,
}
#: The task statuses a task list takes.
TASK_STATES = {"pending", "in_progress", "completed", "blocked", "skipped"}
#: A compaction's figures as ``Transcripts.compact`` defaults them.
_COMPACTION_DEFAULTS: dict[str, Any] = {
    "trigger": "manual",
    "tokens_before": None,
    "tokens_after": None,
    "model": None,
    "latency_ms": None,
}
_ENDED = {"finished", "failed", "cancelled"}


def _as_json(value: Any) -> str:
    """JSON text: what a store keeps, so equal text means nothing changed
    (``1``, ``1.0`` and ``True`` differ in it, as does key order)."""
    return json.dumps(value)


_GOING = {"active", "idle", "waiting_for_tool_results", "paused"}
STATUS_MOVES: dict[str, set[str]] = {
    "started": _GOING | _ENDED,
    "active": (_GOING | _ENDED) - {"active"},
    "idle": (_GOING | _ENDED) - {"idle"},
    "waiting_for_tool_results": {"active", "idle", "paused", "failed", "cancelled"},
    "paused": {"active", "idle", "waiting_for_tool_results", "finished", "failed", "cancelled"},
    "finished": {"active"},
    "failed": {"active"},
    "cancelled": {"active"},
}


@dataclass(frozen=True)
class ModelState:
    """One version of a session."""

    messages: list[Message]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    commits: int = 0  # content commits so far (appends and rewrites)
    header: dict[str, Any] = field(default_factory=lambda: dict(NEW_HEADER))
    # The records beside the transcript, as plain dicts and lists:
    spawn: dict[str, Any] | None = None  # parent, root, depth, task, name
    children: list[dict[str, Any]] = field(default_factory=list)  # session_id, task, name
    task_list: list[dict[str, Any]] | None = None  # id, description, status, notes, criteria, criteria_met
    question: dict[str, Any] | None = None  # question, options, allow_custom, tool_call_id, tool_name
    compactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def revision(self) -> str:
        return model_revision(self.messages)

    @property
    def contents(self) -> list[bytes]:
        """The messages' canonical content (ids left out)."""
        return [message.canonical_bytes() for message in self.messages]


@dataclass
class ModelSession:
    """Every version of one session, oldest first (version n is ``versions[n - 1]``)."""

    versions: list[ModelState]
    source: str | None = None
    replacement: Message | None = None  # the message a fork_replacing put in

    @property
    def head(self) -> ModelState:
        return self.versions[-1]

    def record(self, **changes: Any) -> ModelState:
        state = replace(self.head, **changes)
        self.versions.append(state)
        return state

    def last_version_with(self, revision: str) -> int | None:
        found = [number for number, state in enumerate(self.versions, 1) if state.revision == revision]
        return found[-1] if found else None


def tool_pairing_ok(messages: list[Message]) -> bool:
    """Every tool_results message follows an assistant message with tool uses
    and answers exactly their ids (the last message may answer some of them,
    each once); every assistant message with tool uses is followed by its
    tool_results, unless it is the last message."""
    for index, message in enumerate(messages):
        if message.role == "tool_results":
            if index == 0:
                return False
            asked = sorted(use.id for use in messages[index - 1].tool_uses)
            answered = sorted(b.tool_use_id for b in message.blocks if isinstance(b, ToolResult))
            some = index == len(messages) - 1 and answered and len(set(answered)) == len(answered)
            if not asked or not (asked == answered or (some and set(answered) < set(asked))):
                return False
        elif message.tool_uses and index + 1 < len(messages) and messages[index + 1].role != "tool_results":
            return False
    return True


class ReferenceModel:
    """What the engine must do, as plain data. Each command returns what the
    engine's returns (or raises the exception type the engine raises), so a
    test can run both and compare."""

    def __init__(self) -> None:
        self.sessions: dict[str, ModelSession] = {}

    def create(self, session_id: str, title: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.sessions[session_id] = ModelSession([ModelState([], title, dict(metadata or {}))])

    def append(self, session_id: str, messages: list[Message], usage: Usage | None = None) -> str:
        session = self.sessions[session_id]
        state = session.record(messages=session.head.messages + list(messages), commits=session.head.commits + 1)
        if usage is not None:
            state = session.record(usage=state.usage + usage)
        return state.revision

    def set_title(self, session_id: str, title: str | None) -> None:
        """A title the session has already adds no version (nor does any
        header or metadata write that changes nothing)."""
        session = self.sessions[session_id]
        if title != session.head.title:
            session.record(title=title)

    def set_header(self, session_id: str, changes: dict[str, Any]) -> None:
        """Raises ``ValueError`` (as the engine's ``InvalidStatusTransition``
        and ``InvalidArgument`` are) for a status the lifecycle does not
        allow from the current one, or an outcome without an ended status."""
        session = self.sessions[session_id]
        header = self._header(session.head.header, changes)
        if _as_json(header) != _as_json(session.head.header):
            session.record(header=header)

    @staticmethod
    def _header(header: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Raises ``ValueError`` for a status the lifecycle does not allow, or an
        outcome given with a status that has not ended; starting to run again
        drops the outcome."""
        now = header["status"]
        wanted = changes.get("status", now)
        if wanted != now and wanted not in STATUS_MOVES[now]:
            raise ValueError("status")
        if wanted not in _ENDED:
            if changes.get("outcome") is not None:
                raise ValueError("outcome")
            changes = {"outcome": None, **changes}
        return {**header, **{k: list(v) if k == "tags" else v for k, v in changes.items()}}

    def update_metadata(self, session_id: str, values: dict[str, Any], remove: list[str]) -> None:
        session = self.sessions[session_id]
        metadata = {key: value for key, value in session.head.metadata.items() if key not in remove}
        metadata.update(values)
        if _as_json(metadata) != _as_json(session.head.metadata):
            session.record(metadata=metadata)

    def record_usage(self, session_id: str, usage: Usage) -> None:
        session = self.sessions[session_id]
        session.record(usage=session.head.usage + usage)

    def rewrite(self, session_id: str, start: int, end: int, replacement: list[Message]) -> str:
        """Raises ``ValueError`` (as the engine's ``InvalidRewriteRange``,
        ``NoOpRewrite`` and ``InvalidTranscriptShape`` are) when refused."""
        session = self.sessions[session_id]
        messages = session.head.messages
        if not 0 <= start <= end <= len(messages):
            raise ValueError("invalid range")
        result = messages[:start] + list(replacement) + messages[end:]
        if model_revision(result) == session.head.revision:
            raise ValueError("no-op")
        # The changed span and its neighbours; a window that starts at a
        # tool_results message keeps the assistant message it answers.
        first = max(0, start - 1)
        if first > 0 and result[first].role == "tool_results":
            first -= 1
        if not tool_pairing_ok(result[first : start + len(replacement) + 1]):
            raise ValueError("shape")
        return session.record(messages=result, commits=session.head.commits + 1).revision

    def restore(self, session_id: str, revision: str) -> str:
        session = self.sessions[session_id]
        version = session.last_version_with(revision)
        if version is None:
            raise LookupError(revision)
        target = session.versions[version - 1].messages
        if model_revision(target) == session.head.revision:
            raise ValueError("no-op")
        return session.record(messages=list(target), commits=session.head.commits + 1).revision

    def fork(
        self, session_id: str, child_id: str, index: int | None = None, replacement: Message | None = None
    ) -> None:
        head = self.sessions[session_id].head
        kept = head.messages if index is None else head.messages[:index]
        if replacement is not None:
            kept = [*kept, replacement]
        # A fork keeps the source's header settings; its status starts again,
        # unpinned, with no outcome. It keeps the task list and the pending
        # question; children and compactions stay the source's.
        header = {**head.header, "status": "started", "pinned": False, "outcome": None}
        first = ModelState(
            list(kept), head.title, dict(head.metadata), header=header, task_list=head.task_list, question=head.question
        )
        self.sessions[child_id] = ModelSession(
            [first],
            source=session_id,
            replacement=replacement,
        )

    # -- child sessions and records ------------------------------------------

    def spawn(
        self, parent: str, child_id: str, task: str | None, name: str | None, header: dict[str, Any] | None = None
    ) -> None:
        """A child starts empty, naming its parent, the root of its family
        and its depth; then its header, if given, as a second version; then
        the parent records the child."""
        above = self.sessions[parent].head.spawn
        root = parent if above is None else above["root"]
        depth = 1 if above is None else above["depth"] + 1
        spawn = {"parent": parent, "root": root, "depth": depth, "task": task, "name": name}
        child = ModelSession([ModelState([], spawn=spawn)])
        if header:
            child.record(header=self._header(dict(NEW_HEADER), header))
        self.sessions[child_id] = child
        session = self.sessions[parent]
        session.record(children=[*session.head.children, {"session_id": child_id, "task": task, "name": name}])

    def set_task_list(self, session_id: str, tasks: list[dict[str, Any]] | None) -> None:
        """Raises ``ValueError`` (as the engine's ``InvalidArgument``) for
        repeated ids, unknown statuses, or criteria met that are not criteria."""
        if tasks is not None:
            ids = [task["id"] for task in tasks]
            if len(set(ids)) != len(ids):
                raise ValueError("repeated task id")
            for task in tasks:
                if task["status"] not in TASK_STATES or not set(task["criteria_met"]) <= set(task["criteria"]):
                    raise ValueError("bad task")
        self.sessions[session_id].record(task_list=None if tasks is None else [dict(task) for task in tasks])

    def update_task(self, session_id: str, task_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Raises ``ValueError`` with no list, no such task, or a bad change."""
        session = self.sessions[session_id]
        tasks = session.head.task_list
        if tasks is None or task_id not in [task["id"] for task in tasks]:
            raise ValueError("no such task")
        updated = [{**task, **changes} if task["id"] == task_id else task for task in tasks]
        self.set_task_list(session_id, updated)
        return next(task for task in updated if task["id"] == task_id)

    def ask(self, session_id: str, question: dict[str, Any]) -> None:
        self.sessions[session_id].record(question=dict(question))

    def clear_question(self, session_id: str, answer: str | None) -> None:
        """Raises ``ValueError`` with no question pending, or an answer the
        question does not take."""
        session = self.sessions[session_id]
        asked = session.head.question
        if asked is None:
            raise ValueError("nothing pending")
        if answer is not None and asked["options"] and not asked["allow_custom"] and answer not in asked["options"]:
            raise ValueError("not an option")
        session.record(question=None)

    def compact(
        self, session_id: str, start: int, end: int, summary: list[Message], figures: dict[str, Any] | None = None
    ) -> str:
        """A rewrite of at least one message (refused as :meth:`rewrite`
        refuses) whose version holds its figures: ``trigger``,
        ``tokens_before``, ``tokens_after``, ``model``, ``latency_ms``, as
        ``Transcripts.compact`` takes them (those not given: its defaults)."""
        unknown = sorted(set(figures or {}) - set(_COMPACTION_DEFAULTS))
        if unknown:
            known = ", ".join(_COMPACTION_DEFAULTS)
            raise ValueError(f"not a compaction figure: {', '.join(unknown)} (known: {known})")
        figures = {**_COMPACTION_DEFAULTS, **(figures or {})}
        if start == end:
            raise ValueError("nothing to compact")
        session = self.sessions[session_id]
        revision = self.rewrite(session_id, start, end, summary)
        record = {
            "version": len(session.versions),
            "revision": revision,
            "start": start,
            "messages_compressed": end - start,
            "messages_after": len(summary),
            **figures,
        }
        # The figures are part of the rewrite's own version.
        session.versions[-1] = replace(session.head, compactions=[*session.head.compactions, record])
        return revision

    def erase(self, message: Message, session_id: str) -> None:
        """Replace ``message`` (this very object: the model's stand-in for a
        message id) by its erased placeholder in every version of every
        session, and so a fork replacement of ``session_id``'s family that
        holds any of its blocks (a replacement may copy blocks); nothing else
        changes, no version is added here (the engine records the erasure as
        an event of each session whose log held it: call
        :meth:`record_erasure` for those)."""
        for target in [message, *self._copies(message, session_id)]:
            digest = "sha256:" + hashlib.sha256(target.canonical_bytes()).hexdigest()
            placeholder = Message(role=target.role, erased=digest)
            for session in self.sessions.values():
                session.versions = [
                    replace(state, messages=[placeholder if m is target else m for m in state.messages])
                    if any(m is target for m in state.messages)
                    else state
                    for state in session.versions
                ]

    def holders(self, message: Message, session_id: str) -> set[str]:
        """The sessions that have ``message`` (this object) in any version,
        or a fork replacement of ``session_id``'s family holding its blocks."""
        targets = [message, *self._copies(message, session_id)]
        return {
            holder
            for holder, session in self.sessions.items()
            if any(m is target for state in session.versions for m in state.messages for target in targets)
        }

    def _copies(self, message: Message, session_id: str) -> list[Message]:
        root = self._root(session_id)
        return [
            session.replacement
            for holder, session in self.sessions.items()
            if session.replacement is not None
            and session.replacement is not message
            and session.replacement.erased is None
            and self._root(holder) == root
            and any(block in message.blocks for block in session.replacement.blocks)
        ]

    def _root(self, session_id: str) -> str:
        while (source := self.sessions[session_id].source) is not None and source in self.sessions:
            session_id = source
        return session_id

    def record_erasure(self, session_id: str) -> None:
        """The audit event an erasure adds to a session whose log held the content."""
        self.sessions[session_id].record()

    def delete(self, session_id: str) -> None:
        """Raises ``LookupError`` (as the engine's ``SessionHasForks``) if
        other sessions were forked from it (or from what it reaches), and
        first ``KeyError`` (as ``SessionHasChildren``) if it, or a session
        it reaches through forks and children, spawned sessions still there."""
        # Everything reached through forks and children, as the engine would delete it with both.
        reached, kinds, todo = {session_id}, set(), [session_id]
        while todo:
            current = todo.pop()
            for sid, session in self.sessions.items():
                kind = "fork" if session.source == current else None
                if (session.head.spawn or {}).get("parent") == current:
                    kind = "child"
                if kind is not None and sid not in reached:
                    reached.add(sid)
                    kinds.add(kind)
                    todo.append(sid)
        if "child" in kinds:
            raise KeyError(session_id)
        if "fork" in kinds:
            raise LookupError(session_id)
        del self.sessions[session_id]

    def state(self, session_id: str, version: int | None = None) -> ModelState:
        session = self.sessions[session_id]
        return session.head if version is None else session.versions[version - 1]

    def depth(self, session_id: str) -> int:
        depth, source = 0, self.sessions[session_id].source
        while source is not None:
            depth, source = depth + 1, self.sessions[source].source
        return depth
