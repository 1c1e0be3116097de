"""oxios-kernel's ``state_store::Session`` over :class:`engine.Transcripts`: one transcript, in order, holds the user
messages, agent responses and tool trajectory (RFC-015), each change an audited, time-travelable event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from engine import Message, MessageSeq, Session, Text, ToolCall, ToolResult, ToolUse, Transcripts

T = TypeVar("T")
SEED_KEY = "active_seed_id"  # the metadata key that holds active_seed_id
_RESPONSE_FIELDS = ("session_id", "seed_id", "phase_reached", "evaluation_passed")


class UserMessage(msgspec.Struct, frozen=True):
    content: str
    timestamp: datetime | None = None  # when the store wrote it


class AgentResponse(msgspec.Struct, frozen=True):
    content: str
    session_id: str | None = None
    seed_id: str | None = None
    phase_reached: str | None = None
    evaluation_passed: bool | None = None
    timestamp: datetime | None = None  # when the store wrote it; not read by add_agent_response


class TrajectoryStepRecord(msgspec.Struct, frozen=True):
    tool_name: str
    tool_args: Any  # a JSON value, kept as the tool use's arguments text
    output_summary: str
    duration_ms: int
    is_error: bool
    tool_call_id: str
    timestamp: datetime | None  # None only for a call the store cannot date


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _extras(message: Message, *keys: str) -> dict[str, Any]:  # those of keys its provider_data has
    data = msgspec.json.decode(message.provider_data) if message.provider_data else {}
    return {k: data[k] for k in keys if k in data}


def _step(call: ToolCall, messages: MessageSeq) -> TrajectoryStepRecord:
    # The orchestrator's timing rides with the result message; without it, when the store wrote the call and result.
    answer = None if call.result_position is None else messages[call.result_position]
    timing = {} if answer is None else _extras(answer, "trajectory").get("trajectory", {}).get(call.call_id, {})
    return TrajectoryStepRecord(
        tool_name=call.name,
        tool_args=msgspec.json.decode(call.arguments),
        output_summary=call.result or "",
        duration_ms=timing.get("duration_ms", call.duration_ms or 0),
        is_error=call.is_error,
        tool_call_id=call.call_id,
        timestamp=datetime.fromisoformat(timing["timestamp"]) if timing.get("timestamp") else call.called_at,
    )


class _Head(Generic[T]):  # a read-only field of the session's stored head: a typed property
    def __init__(self, read: Callable[[Session], T]) -> None:
        self.read = read

    def __get__(self, handle: OxiosSession, owner: type[OxiosSession]) -> T:
        return self.read(handle.store.get(handle.id))


class OxiosSession:
    """A handle on one session of ``store``; every field reads the stored head."""

    user_id = _Head(lambda s: s.header.owner)
    active_seed_id: _Head[str | None] = _Head(lambda s: s.metadata.get(SEED_KEY))
    active_persona_id = _Head(lambda s: s.header.agent)
    created_at = _Head(lambda s: s.created_at)
    updated_at = _Head(lambda s: s.updated_at)  # moved by every recorded event
    # The seed's metadata map stays the user's own: the active seed id is kept apart.
    metadata = _Head(lambda s: {k: v for k, v in s.metadata.items() if k != SEED_KEY})

    def __init__(self, store: Transcripts, session_id: str) -> None:
        self.store, self.id = store, session_id

    @classmethod
    def with_id(cls, store: Transcripts, user_id: str, session_id: str) -> OxiosSession:
        """A new session with this id, owned by ``user_id``, in one transaction."""
        return cls(store, store.create(session_id=session_id, owner=user_id))

    def _timeline(self) -> list[tuple[Message, datetime]]:
        tail = self.store.get(self.id, last=self.store.get(self.id).message_count)  # every message and its write time
        return list(zip(tail.messages, tail.written_at, strict=True))

    @property
    def user_messages(self) -> list[UserMessage]:
        return [UserMessage(m.text, at) for m, at in self._timeline() if m.role == "user"]

    @property
    def agent_responses(self) -> list[AgentResponse]:
        # An assistant message with tool uses is a trajectory step, not a response.
        replies = [(m, at) for m, at in self._timeline() if m.role == "assistant" and not m.tool_uses]
        return [AgentResponse(m.text, timestamp=at, **_extras(m, *_RESPONSE_FIELDS)) for m, at in replies]

    @property
    def trajectory_steps(self) -> list[TrajectoryStepRecord]:
        return self.trajectory()

    def add_user_message(self, content: str) -> None:
        self.store.append(self.id, Message.user(content))

    def add_agent_response(self, response: AgentResponse) -> None:
        extras = {k: getattr(response, k) for k in _RESPONSE_FIELDS if getattr(response, k) is not None}
        data = _json(extras) if extras else None
        self.store.append(self.id, Message(role="assistant", blocks=(Text(text=response.content),), provider_data=data))

    def extend_trajectory(self, steps: list[TrajectoryStepRecord]) -> None:
        """One append: an assistant message with a tool use per step, then their results."""
        if not steps:
            return  # as oxios: no steps, no change
        uses = [ToolUse(id=s.tool_call_id, name=s.tool_name, arguments=_json(s.tool_args)) for s in steps]
        results = tuple(ToolResult.of(s.tool_call_id, s.output_summary, is_error=s.is_error) for s in steps)
        timing = {s.tool_call_id: {"duration_ms": s.duration_ms, "timestamp": s.timestamp} for s in steps}
        answer = Message(role="tool_results", blocks=results, provider_data=_json({"trajectory": timing}))
        self.store.append(self.id, Message.assistant(*uses), answer)

    def trajectory(self) -> list[TrajectoryStepRecord]:
        """The tool-call audit as trajectory steps, oldest first."""
        messages = self.store.get(self.id).messages
        return [_step(call, messages) for call in self.store.tool_calls(self.id)]

    def set_active_seed(self, seed_id: str | None) -> None:
        values, remove = ({}, [SEED_KEY]) if seed_id is None else ({SEED_KEY: seed_id}, [])  # None removes the key
        self.store.update_metadata(self.id, values, remove=remove)

    def set_active_persona(self, persona_id: str | None) -> None:
        self.store.set_header(self.id, agent=persona_id)

    def set_metadata(self, key: str, value: Any) -> None:
        self.store.update_metadata(self.id, {key: value})

    def get_metadata(self, key: str) -> Any:
        return self.metadata.get(key)

    def exchange_count(self) -> int:
        """As oxios: ``min(user messages, agent responses)`` (``Session.exchange_count`` also counts tool uses)."""
        return min(len(self.user_messages), len(self.agent_responses))
