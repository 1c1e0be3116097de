"""Bamboo's ``Session`` (bamboo-engine ``session/types.rs``) over :class:`engine.Transcripts`, each change an event."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from msgspec.structs import replace

from engine import Image, Message, Reason, Session, Text, ToolResult, Transcripts, Usage

META = "bamboo."  # fields with no engine home live in the metadata as bamboo.<field>; bamboo's own map is the rest
SINCE = META + "derived_since"  # the version clear_derived_context_state last reset at
MARKER = "[... tool output truncated ...]"
MAX_TOOL_BYTES, HEAD_BYTES, TAIL_BYTES = 256 * 1024, 160 * 1024, 64 * 1024
TRUNCATION = Reason(kind="truncation", note="tool output over 256 KiB cut to its first 160 KiB and last 64 KiB")
MARKS = {"pending": " ", "in_progress": "~", "completed": "x", "blocked": "!", "skipped": "-"}
T = TypeVar("T")


def truncate_tool_text(text: str) -> str:
    """Bamboo's cut of tool output over 256 KiB (UTF-8): its first 160 KiB and last 64 KiB around a marker."""
    data = text.encode()
    if len(data) <= MAX_TOOL_BYTES:
        return text
    # Dropping the bytes of a character cut in two moves each cut to a boundary.
    head, tail = data[:HEAD_BYTES].decode(errors="ignore"), data[-TAIL_BYTES:].decode(errors="ignore")
    kept = len(head.encode()) + len(tail.encode())
    return f"{head}\n\n{MARKER} original={len(data)} bytes omitted={len(data) - kept} bytes kept={kept} bytes\n\n{tail}"


def _cut_text(part: Text | Image) -> Text | Image:
    return Text(text=truncate_tool_text(part.text)) if isinstance(part, Text) else part


def _cut(message: Message) -> Message:
    """``message`` with every oversized tool output cut (equal to it if none is)."""
    if message.role != "tool_results":
        return message
    results = (b for b in message.blocks if isinstance(b, ToolResult))  # every block of a tool_results message
    return replace(message, blocks=tuple(replace(b, content=tuple(map(_cut_text, b.content))) for b in results))


class _Field(Generic[T]):  # a bamboo field read from the session head
    def __init__(self, read: Callable[[Session], T]) -> None:
        self.read = read

    def __get__(self, instance: BambooSession, owner: type[BambooSession]) -> T:
        return self.read(instance.store.get(instance.id))


@dataclass(frozen=True)
class ConversationSummary:
    """Bamboo's summary of compacted messages, read from the last compaction."""

    content: str
    message_count: int
    token_count: int


class BambooSession:
    """One bamboo session, made by ``Transcripts.create``/``spawn`` (``Session::new``/``new_child``)."""

    def __init__(self, store: Transcripts, session_id: str) -> None:
        self.store, self.id = store, session_id

    session = _Field(lambda s: s)  # the head: messages, task_list, pinned, kind, ... as the engine keeps them
    title = _Field(lambda s: s.title or "")
    root_session_id = _Field(lambda s: s.id if s.spawn is None else s.spawn.root)
    spawn_depth = _Field(lambda s: 0 if s.spawn is None else s.spawn.depth)
    model = _Field(lambda s: s.header.model or "")
    metadata = _Field(lambda s: {k: v for k, v in s.metadata.items() if not k.startswith(META)})
    model_ref = _Field(lambda s: s.metadata.get(META + "model_ref"))
    token_budget = _Field(lambda s: s.metadata.get(META + "token_budget"))
    prompt_snapshot = _Field(lambda s: s.metadata.get(META + "prompt_snapshot"))
    compression_instructions = _Field(lambda s: s.metadata.get(META + "compression_instructions"))

    # Derived context state counts from the last clear_derived_context_state; the log keeps the totals.
    @property
    def token_usage(self) -> Usage | None:
        session = self.session
        before = self.store.get(self.id, at=session.metadata[SINCE]).usage if SINCE in session.metadata else Usage()
        usage = Usage(**{f: getattr(session.usage, f) - getattr(before, f) for f in Usage.__struct_fields__})
        return None if usage == Usage() else usage

    compression_events = _Field(lambda s: tuple(c for c in s.compactions if c.version > s.metadata.get(SINCE, 0)))

    @property
    def conversation_summary(self) -> ConversationSummary | None:
        """The summary the last compaction since the reset wrote, as it wrote it."""
        if not (events := self.compression_events):
            return None
        last = events[-1]
        written = self.store.revision_messages(self.id, last.revision)[last.start : last.start + last.messages_after]
        return ConversationSummary("\n".join(m.text for m in written), last.messages_compressed, last.tokens_after or 0)

    def add_message(self, message: Message) -> None:
        self.store.append(self.id, _cut(message))  # cut first, as bamboo does: the oversized text is never stored

    def compact_oversized_tool_messages(self) -> int:
        """Cut stored oversized tool output: one audited rewrite per message. Returns how many were cut."""
        session = self.session
        revision, cuts = session.revision, [(i, cut) for i, m in enumerate(session.messages) if (cut := _cut(m)) != m]
        for i, cut in cuts:
            revision = self.store.rewrite(self.id, i, i + 1, [cut], TRUNCATION, expected_revision=revision).revision
        return len(cuts)

    def clear_derived_context_state(self) -> None:
        # The log keeps what bamboo drops, so note the version to count from; there are no compressed flags to clear.
        self.store.update_metadata(self.id, {SINCE: self.session.version}, remove=["responses.previous_response_id"])

    def update_task_item(
        self, item_id: str, status: str, notes: str | None = None, criteria_met: Iterable[str] | None = None
    ) -> str:
        """Bamboo's gate: completing a task with criteria unmet (after this call) keeps it in_progress."""
        item = next((task for task in self.session.task_list or () if task.id == item_id), None)
        met = None if criteria_met is None else tuple(criteria_met)
        missing = [c for c in item.criteria if c not in (item.criteria_met if met is None else met)] if item else []
        if status == "completed" and item and item.status != "completed" and missing:
            gate = "Completion criteria not fully met; keeping task in_progress. Missing: " + " | ".join(missing)
            status, notes = "in_progress", f"{notes}\n{gate}" if notes and notes.strip() else gate
        task = self.store.update_task(self.id, item_id, status=status, notes=notes, criteria_met=met)
        moved = item is None or task.status != item.status
        return f"Updated item '{item_id}' to {task.status}" if moved else f"Task item '{item_id}' remains {task.status}"

    def format_task_list_for_prompt(self) -> str:
        if (tasks := self.session.task_list) is None:
            return ""
        lines = ["Task list:"]
        for task in tasks:
            lines.append(f"- [{MARKS[task.status]}] {task.id}: {task.description} ({task.status})")
            if task.criteria:
                lines.append(f"  criteria met: {len(task.criteria_met)}/{len(task.criteria)}")
            if task.notes:
                lines.append(f"  notes: {task.notes}")
        return "\n".join(lines)

    def set_pending_question(
        self, tool_call_id: str, tool_name: str, question: str, options: Iterable[str], allow_custom: bool
    ) -> None:
        ask, name = self.store.set_pending_question, tool_name or None  # bamboo's "" tool name is no name
        ask(self.id, question, options, allow_custom=allow_custom, tool_call_id=tool_call_id, tool_name=name)

    def clear_pending_question(self, answer: str | None = None) -> None:
        if self.has_pending_question():  # idempotent, as bamboo's is; the engine refuses to clear nothing
            self.store.clear_pending_question(self.id, answer=answer)

    def has_pending_question(self) -> bool:
        return self.session.pending_question is not None
