"""Peer libraries replayed offline over recorded OpenAI Realtime server events.

Only one peer so far: the OpenAI Agents SDK (``openai-agents``, developed against 0.24.0 with
``openai`` 3.57.0; pin ``openai-agents>=0.24,<0.25``, since the driver touches private members).
The SDK is optional: this module imports it lazily, inside the functions, and
:func:`agents_sdk_available` returns ``None`` when it cannot be imported.

How the SDK is driven (per replay, everything fresh, no network at any point):

1. A real ``agents.realtime.OpenAIRealtimeWebSocketModel`` whose ``_create_websocket_connection``
   (the only place it calls ``websockets.connect``) is replaced, on the instance, by a coroutine
   returning an in-memory fake socket. The fake socket records the ``type`` of every payload the
   model sends and, as the model's listening task iterates it, yields nothing until it is closed.
2. A real ``agents.realtime.RealtimeSession(model, RealtimeAgent(name=...), None,
   model_config={"api_key": <placeholder>})`` entered with its own ``__aenter__``: it builds the
   agent's model settings, registers itself as the model's listener and calls the model's real
   ``connect()``, which gets the fake socket, starts the (idle) listening task and sends the
   initial ``session.update`` to the fake socket. The placeholder key only exists so ``connect()``
   does not read ``OPENAI_API_KEY``; it never leaves the process. The agent has no tools,
   guardrails or handoffs.
3. Each event dict, in order, goes to ``await model._handle_ws_event(event)``, the method the
   model's ``_listen_for_messages`` calls for every websocket message after ``json.loads``
   (the dicts are deep-copied first, so no JSON decoding is involved). An exception escaping it
   is turned into a ``RealtimeModelExceptionEvent`` for the listeners, exactly as
   ``_listen_for_messages`` does, so replay never stops early. The model validates each event
   against ``openai.types.realtime.RealtimeServerEvent`` (the GA schema) and, on failure, emits a
   ``RealtimeModelErrorEvent`` and drops the event (``response.output_item.added/.done`` message
   items are converted before validation and so also work with beta content parts).
4. After the last event, the background tasks the session started (tool calls, output
   guardrails) are awaited (up to a few seconds), the transcript is read from
   ``session._history``, and the session is closed with its own ``close()``. In a live session
   those tasks would interleave with later events instead; with this agent (no tools, no
   guardrails) their only effect is the "Tool <name> not found" output the session sends for each
   tool call, which also marks the call item completed in the history.

What is faked or changed: only the socket (the connection factory) and the source of incoming
messages; the model's parsing, its response/audio bookkeeping and everything the session does
are the SDK's own code. The ``openai.agents`` logger is disabled during a replay (the SDK logs
every event that fails validation at ERROR level, with a traceback) and restored afterwards.
Sends the model attempts in reaction to events (``session.update`` after a valid ``session.created``,
``conversation.item.retrieve`` after a transcription or truncation, ``conversation.item.truncate``
and ``response.cancel`` on ``speech_started``) go to the fake socket, are counted, and are never
answered: a recording already holds whatever the server replied at the time. The audio playback
position the SDK uses for truncation is wall-clock time since the first audio delta of the item,
which, in a replay running much faster than real time, is close to zero.

The session's event queue is never drained (nothing iterates the session); that does not change
its history.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks._report import median

__all__ = [
    "AgentsSdkReplay",
    "agents_sdk_available",
    "agents_sdk_events_per_second",
    "agents_sdk_replay",
    "agents_sdk_transcript",
]

#: The pip requirement the driver below was written against (it reaches into private members).
AGENTS_SDK_REQUIREMENT = "openai-agents>=0.24,<0.25"

_SDK_LOGGER = "openai.agents"
_OFFLINE_API_KEY = "offline-replay-no-network"  # a placeholder: connect() must not read OPENAI_API_KEY
_AGENT_NAME = "offline-replay"
_LISTENER_CONTEXT = "Error handling WebSocket event"  # what _listen_for_messages reports
_VALIDATION_CONTEXT = "Failed to validate server event"
_DRAIN_SECONDS = 5.0  # the most finish() waits for the session's background tasks

TranscriptRow = tuple[str, str, str]

#: (role, content part type) -> the part's field that holds its text; other parts are skipped.
_TEXT_FIELDS = {
    ("user", "input_text"): "text",
    ("user", "input_audio"): "transcript",
    ("assistant", "text"): "text",
    ("assistant", "audio"): "transcript",
    ("system", "input_text"): "text",
}


@dataclass
class AgentsSdkReplay:
    """What one offline replay of the Agents SDK produced."""

    version: str
    #: The final ``session._history`` as (item_id, role, text), in history order.
    transcript: list[TranscriptRow]
    #: Types of the payloads sent while entering the session (``connect()``), in order.
    setup_sends: list[str] = field(default_factory=list)
    #: Types of the payloads the model tried to send in reaction to the replayed events, in order.
    sends: list[str] = field(default_factory=list)
    #: Event type -> how many events of that type the SDK failed to validate (and dropped).
    parse_failures: dict[str, int] = field(default_factory=dict)
    #: Event type -> how many events of that type raised out of ``_handle_ws_event``.
    handler_exceptions: dict[str, int] = field(default_factory=dict)
    #: How many server ``error`` events (valid ones) reached the session.
    server_errors: int = 0
    #: ``repr`` of the exception the session stored for its consumer (a real application iterating
    #: the session would have it raised and the session closed), or None.
    stored_exception: str | None = None

    @property
    def sends_attempted(self) -> int:
        """Sends the model attempted in reaction to the replayed events (setup excluded)."""
        return len(self.sends)


def agents_sdk_available() -> str | None:
    """The installed ``openai-agents`` version, or None when its realtime module cannot be imported."""
    try:
        importlib.import_module("agents.realtime.openai_realtime")
        importlib.import_module("agents.realtime.session")
        return importlib.metadata.version("openai-agents")
    except Exception:
        return None


def agents_sdk_replay(events: Sequence[dict[str, Any]]) -> AgentsSdkReplay:
    """Feed ``events`` (in order) through a real model + session pair offline; see the module docstring."""
    version = _require_sdk()
    with _sdk_logging_disabled():
        return asyncio.run(_replay(copy.deepcopy(list(events)), version))


def agents_sdk_transcript(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The SDK's final history after ``events``, as (item_id, role, text) per item, in history order.

    ``text``: user items join their ``input_text`` texts and ``input_audio`` transcripts with
    ``"\\n"``; assistant items their text and audio-transcript parts; system items their texts
    (None counts as ""). Tool-call items have role ``"tool_call"`` and the call's name as text.
    """
    return agents_sdk_replay(events).transcript


def agents_sdk_events_per_second(events: list[dict[str, Any]], runs: int = 5) -> float:
    """Median events per second over ``runs`` replays, each with a fresh model and session.

    Only the feeding loop is timed (``time.perf_counter``): not the deep copy of the events, the
    session setup, the draining of background tasks, the history read or the teardown.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if not events:
        raise ValueError("no events to replay")
    _require_sdk()

    async def measure() -> list[float]:
        rates: list[float] = []
        for _ in range(runs):
            batch = copy.deepcopy(events)
            driver = await _Driver.start(observe=False)
            try:
                start = time.perf_counter()
                await driver.feed(batch)
                elapsed = time.perf_counter() - start
            finally:
                await driver.finish()
            rates.append(len(batch) / elapsed)
        return rates

    with _sdk_logging_disabled():
        return median(asyncio.run(measure()))


# --- the driver ---------------------------------------------------------------------------------


def _require_sdk() -> str:
    version = agents_sdk_available()
    if version is None:
        raise RuntimeError(f"the OpenAI Agents SDK is not installed: pip install '{AGENTS_SDK_REQUIREMENT}'")
    return version


@contextmanager
def _sdk_logging_disabled() -> Iterator[None]:
    sdk_logger = logging.getLogger(_SDK_LOGGER)
    was_disabled = sdk_logger.disabled
    sdk_logger.disabled = True
    try:
        yield
    finally:
        sdk_logger.disabled = was_disabled


class _OfflineSocket:
    """Stands in for ``websockets.asyncio.client.ClientConnection``: records sends, receives nothing."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._closed = asyncio.Event()

    async def connect(self, url: str, headers: dict[str, str], transport_config: Any = None) -> _OfflineSocket:
        """Replaces the model's ``_create_websocket_connection``: no network, just this object."""
        return self

    async def send(self, payload: str) -> None:
        self.sent.append(str(json.loads(payload).get("type", "?")))

    async def close(self) -> None:
        self._closed.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str]:
        await self._closed.wait()  # the model's listening task idles here until close()
        return
        yield  # an async generator that yields nothing


class _Probe:
    """A second model listener (after the session) that attributes errors to the event being fed."""

    def __init__(self) -> None:
        self._validation_error: type[Exception] = importlib.import_module("pydantic").ValidationError
        self.current_type = "?"
        self.parse_failures: Counter[str] = Counter()
        self.handler_exceptions: Counter[str] = Counter()
        self.server_errors = 0

    async def on_event(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "error":
            if isinstance(event.error, self._validation_error):
                self.parse_failures[self.current_type] += 1
            else:
                self.server_errors += 1
        elif kind == "exception":
            if str(event.context or "").startswith(_VALIDATION_CONTEXT):
                self.parse_failures[self.current_type] += 1
            else:
                self.handler_exceptions[self.current_type] += 1


class _Driver:
    """One real ``OpenAIRealtimeWebSocketModel`` + ``RealtimeSession`` pair on a fake socket."""

    def __init__(self, model: Any, session: Any, socket: _OfflineSocket, probe: _Probe | None) -> None:
        self.model = model
        self.session = session
        self.socket = socket
        self.probe = probe
        self.setup_sends = list(socket.sent)
        self._closed = False

    @classmethod
    async def start(cls, *, observe: bool) -> _Driver:
        realtime = _sdk_realtime()
        socket = _OfflineSocket()
        model = realtime.OpenAIRealtimeWebSocketModel()
        model._create_websocket_connection = socket.connect
        agent = realtime.RealtimeAgent(name=_AGENT_NAME)
        session = realtime.RealtimeSession(model, agent, None, model_config={"api_key": _OFFLINE_API_KEY})
        await session.__aenter__()
        probe = None
        if observe:
            probe = _Probe()
            model.add_listener(probe)
        return cls(model, session, socket, probe)

    async def feed(self, events: Sequence[dict[str, Any]]) -> None:
        """What ``_listen_for_messages`` does per message, minus ``json.loads``."""
        exception_event = _sdk_realtime().RealtimeModelExceptionEvent
        handle = self.model._handle_ws_event
        emit = self.model._emit_event
        probe = self.probe
        for event in events:
            if probe is not None:
                probe.current_type = str(event.get("type", "?"))
            try:
                await handle(event)
            except Exception as exc:
                await emit(exception_event(exception=exc, context=_LISTENER_CONTEXT))

    async def finish(self) -> list[TranscriptRow]:
        """Let the session's background tasks finish, read its history, close it."""
        if self._closed:
            raise RuntimeError("driver already finished")
        self._closed = True
        session = self.session
        try:
            deadline = time.monotonic() + _DRAIN_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                tasks = {*session._tool_call_tasks, *session._guardrail_tasks}
                pending = {task for task in tasks if not task.done()}
                if not pending:
                    break
                await asyncio.wait(pending, timeout=remaining)
            await asyncio.sleep(0)  # the tasks' done callbacks
            return [_row(item) for item in session._history]
        finally:
            await session.close()


def _sdk_realtime() -> Any:
    """``agents.realtime``, imported on first use (typed ``Any``: the SDK is optional here)."""
    return importlib.import_module("agents.realtime")


async def _replay(events: list[dict[str, Any]], version: str) -> AgentsSdkReplay:
    driver = await _Driver.start(observe=True)
    try:
        await driver.feed(events)
    finally:
        transcript = await driver.finish()
    stored = driver.session._stored_exception
    probe = driver.probe
    assert probe is not None
    return AgentsSdkReplay(
        version=version,
        transcript=transcript,
        setup_sends=driver.setup_sends,
        sends=driver.socket.sent[len(driver.setup_sends) :],
        parse_failures=dict(probe.parse_failures),
        handler_exceptions=dict(probe.handler_exceptions),
        server_errors=probe.server_errors,
        stored_exception=None if stored is None else repr(stored),
    )


def _row(item: Any) -> TranscriptRow:
    """(item_id, role, text) for one ``RealtimeItem``."""
    if item.type == "function_call":
        return (item.item_id, "tool_call", item.name or "")
    role = str(item.role)
    texts = [getattr(part, name) or "" for part in item.content if (name := _TEXT_FIELDS.get((role, part.type)))]
    return (item.item_id, role, "\n".join(texts))
