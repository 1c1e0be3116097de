"""A deterministic builder of OpenAI Realtime server-event streams, beta and
GA schema, shaped like recorded calls: ids of the provider's form (made
here from a seeded generator), a wall clock and an input-audio clock that
move forward, token-sized transcript deltas, usage and rate limits.

Nothing here is copied from a recording: every id, word and number is made
by this module or by the scenario scripts that drive it."""

from __future__ import annotations

import base64
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal

Event = dict[str, Any]
Schema = Literal["beta", "ga"]

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def b62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(B62[rest])
    return "".join(reversed(digits))


class Ids:
    """Provider-shaped ids: ``item_`` + 21 base62 characters, of which the
    first three are fixed for the call and the next two follow the wall
    clock (recorded ids share such a slowly moving prefix); WebRTC
    output-buffer events get ``event_`` + 16 hex digits."""

    def __init__(self, rng: random.Random, *, long_share: float = 0.0) -> None:
        self._rng = rng
        self._prefix = rng.choice("ABCD") + "".join(rng.choice(B62) for _ in range(2))
        self._long_share = long_share
        self._seen: set[str] = set()

    def _random(self, size: int) -> str:
        return "".join(self._rng.choice(B62) for _ in range(size))

    def new(self, kind: str, clock: float) -> str:
        while True:
            size = 17 if self._rng.random() < self._long_share else 16
            value = f"{kind}_{self._prefix}{b62(int(clock * 0.62), 2)}{self._random(size)}"
            if value not in self._seen:
                self._seen.add(value)
                return value

    def hex_event(self) -> str:
        while True:
            value = f"event_{self._rng.getrandbits(64):016x}"
            if value not in self._seen:
                self._seen.add(value)
                return value

    def call(self) -> str:
        return "call_" + self._random(16)

    def token(self, size: int) -> str:
        return self._random(size)


_TOKEN = re.compile(r" ?[\w'’°:.-]*[\w'’°]+| ?[^\w\s]")


def tokenize(text: str, rng: random.Random, *, split_share: float = 0.2) -> list[str]:
    """Model-sized deltas: words with their leading space, punctuation
    apart, some long words in two pieces. Joined they give ``text`` back."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if len(token.strip()) >= 8 and rng.random() < split_share:
            cut = rng.randint(3, len(token) - 3)
            out += [token[:cut], token[cut:]]
        else:
            out.append(token)
    if "".join(out) != text:
        raise ValueError(f"cannot tokenize {text!r} losslessly")
    return out


def chunks(text: str, rng: random.Random, *, most: int = 4) -> list[str]:
    """Transcription-model deltas: runs of one to ``most`` words."""
    tokens = tokenize(text, rng, split_share=0.0)
    out: list[str] = []
    while tokens:
        take = rng.randint(1, most)
        out.append("".join(tokens[:take]))
        tokens = tokens[take:]
    return out


@dataclass
class Speech:
    """An assistant message item being generated."""

    item: str
    response: str
    output_index: int
    previous: str | None
    tokens: list[str]
    lane: Literal["audio", "text"] = "audio"
    in_conversation: bool = True
    sent: int = 0
    status: str = "in_progress"

    @property
    def text(self) -> str:
        return "".join(self.tokens[: self.sent])


@dataclass
class Response:
    id: str
    in_conversation: bool
    metadata: dict[str, str] | None
    modalities: tuple[str, ...]
    max_output_tokens: int | str
    output: list[Event] = field(default_factory=list)


class Call:
    """One connection's server events, in the order the server sends them.

    ``schema`` picks the event and field names; ``buffers`` the WebRTC
    output-buffer events (``old``: ``output_audio_buffer.audio_started``,
    as early beta WebRTC calls send; ``new``: ``output_audio_buffer.started``;
    ``None``: a WebSocket call, which has none and streams audio deltas)."""

    def __init__(
        self,
        seed: int,
        *,
        schema: Schema,
        buffers: Literal["old", "new"] | None,
        epoch: int = 1_761_900_000,
        long_ids: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng, long_share=long_ids)
        self.schema = schema
        self.buffers = buffers
        self.epoch = epoch
        self.clock = 0.0  # seconds since the first connection
        self.audio_ms = 0  # the input audio clock of the current connection
        self.events: list[Event] = []
        self.context_tokens = 180
        self.session_id = ""
        self.conversation_id = ""
        self.responses: dict[str, Response] = {}
        self.new_connection()

    # -- ids and the envelope ---------------------------------------------

    def item_id(self) -> str:
        return self.ids.new("item", self.clock)

    def response_id(self) -> str:
        return self.ids.new("resp", self.clock)

    def new_connection(self) -> None:
        self.session_id = self.ids.new("sess", self.clock)
        self.conversation_id = self.ids.new("conv", self.clock)
        self.audio_ms = 0

    def tick(self, low: float = 0.004, high: float = 0.045) -> None:
        self.clock += self.rng.uniform(low, high)

    def emit(self, kind: str, *, hex_id: bool = False, **fields: Any) -> Event:
        self.tick()
        event = {"type": kind, "event_id": self.ids.hex_event() if hex_id else self.ids.new("event", self.clock)}
        event.update(fields)
        self.events.append(event)
        return event

    def wait(self, seconds: float) -> None:
        self.clock += seconds

    # -- names that differ between the schemas ---------------------------

    @property
    def ga(self) -> bool:
        return self.schema == "ga"

    def _name(self, beta: str, ga: str) -> str:
        return ga if self.ga else beta

    def _obfuscation(self) -> dict[str, Any]:
        return {"obfuscation": self.ids.token(self.rng.randint(3, 14))} if self.ga else {}

    # -- the session -------------------------------------------------------

    def session(
        self,
        kind: Literal["created", "updated"],
        *,
        transcription: str | None,
        instructions: str,
        tools: list[Event] | None = None,
        voice: str | None = None,
        modalities: tuple[str, ...] = ("audio",),
    ) -> Event:
        expires = self.epoch + int(self.clock) + 1800
        if self.ga:
            session: Event = {
                "type": "realtime",
                "object": "realtime.session",
                "id": self.session_id,
                "model": "gpt-realtime-2025-08-28",
                "output_modalities": list(modalities),
                "instructions": instructions,
                "tools": tools or [],
                "tool_choice": "auto",
                "max_output_tokens": "inf",
                "tracing": None,
                "truncation": "auto",
                "prompt": None,
                "expires_at": expires,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": None
                        if transcription is None
                        else {"model": transcription, "language": "en", "prompt": ""},
                        "noise_reduction": None,
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 500,
                            "idle_timeout_ms": None,
                            "create_response": True,
                            "interrupt_response": True,
                        },
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice or "marin", "speed": 1.0},
                },
                "include": None,
            }
        else:
            session = {
                "id": self.session_id,
                "object": "realtime.session",
                "model": "gpt-4o-realtime-preview-2024-12-17",
                "expires_at": expires,
                "modalities": ["audio", "text"],
                "instructions": instructions,
                "voice": voice or "sage",
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "create_response": True,
                },
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": None if transcription is None else {"model": transcription},
                "tool_choice": "auto",
                "temperature": 0.8,
                "max_response_output_tokens": "inf",
                "client_secret": None,
                "tools": tools or [],
            }
        return self.emit(f"session.{kind}", session=session)

    # -- user audio --------------------------------------------------------

    def speech_started(self, item: str, *, after_ms: int) -> Event:
        self.audio_ms += max(32, after_ms // 32 * 32)
        self.clock = max(self.clock, self.audio_ms / 1000 + 0.3)
        return self.emit("input_audio_buffer.speech_started", audio_start_ms=self.audio_ms, item_id=item)

    def speech_stopped(self, item: str, *, spoken_ms: int) -> Event:
        self.audio_ms += max(64, spoken_ms // 32 * 32)
        self.clock = max(self.clock, self.audio_ms / 1000 + 0.3)
        return self.emit("input_audio_buffer.speech_stopped", audio_end_ms=self.audio_ms, item_id=item)

    def committed(self, item: str, previous: str | None) -> Event:
        return self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item)

    def user_audio_item(self, item: str, previous: str | None, *, done: bool = True) -> None:
        """The conversation item of committed user audio (no transcript yet)."""
        payload = {
            "id": item,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.context_tokens += self.rng.randint(20, 90)
        if not self.ga:
            self.emit("conversation.item.created", previous_item_id=previous, item=payload)
            return
        self.emit("conversation.item.added", previous_item_id=previous, item=payload)
        if done:
            self.emit("conversation.item.done", previous_item_id=previous, item=payload)

    def user_audio_item_done(self, item: str, previous: str | None) -> None:
        payload = {
            "id": item,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.emit("conversation.item.done", previous_item_id=previous, item=payload)

    def user_turn(self, item: str, previous: str | None, *, after_ms: int, spoken_ms: int) -> None:
        """Server VAD: speech started, stopped, committed, the item."""
        self.speech_started(item, after_ms=after_ms)
        self.speech_stopped(item, spoken_ms=spoken_ms)
        self.committed(item, previous)
        self.user_audio_item(item, previous)

    def transcription_deltas(self, item: str, pieces: list[str]) -> None:
        for piece in pieces:
            self.emit(
                "conversation.item.input_audio_transcription.delta",
                item_id=item,
                content_index=0,
                delta=piece,
                **self._obfuscation(),
            )

    def transcription_completed(self, item: str, transcript: str) -> Event:
        seconds = max(1, len(transcript) // 14)
        usage: Event = (
            {
                "type": "tokens",
                "total_tokens": 8 * seconds + len(transcript) // 4 + 3,
                "input_tokens": 8 * seconds,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 8 * seconds},
                "output_tokens": len(transcript) // 4 + 3,
            }
            if self.ga
            else {"type": "duration", "seconds": float(seconds)}
        )
        return self.emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item,
            content_index=0,
            transcript=transcript,
            usage=usage,
            **self._logprobs(),
        )

    def _logprobs(self) -> dict[str, Any]:
        return {"logprobs": None} if self.ga else {}

    def transcription_failed(self, item: str) -> Event:
        return self.emit(
            "conversation.item.input_audio_transcription.failed",
            item_id=item,
            content_index=0,
            error={
                "type": "transcription_error",
                "code": "audio_unintelligible",
                "message": "The audio could not be transcribed.",
                "param": None,
            },
        )

    def transcription(self, item: str, transcript: str, *, completed_text: str | None = None) -> None:
        """Deltas, then the completed transcript (``completed_text`` overrides
        what the completed event says, e.g. ``""``)."""
        self.transcription_deltas(item, chunks(transcript, self.rng))
        self.transcription_completed(item, transcript if completed_text is None else completed_text)

    # -- client-created items ----------------------------------------------

    def client_item(self, payload: Event, previous: str | None) -> None:
        """The server's answer to a client's ``conversation.item.create``."""
        item = {"id": payload["id"], "object": "realtime.item", **{k: v for k, v in payload.items() if k != "id"}}
        self.context_tokens += self.rng.randint(10, 60)
        if not self.ga:
            self.emit("conversation.item.created", previous_item_id=previous, item=item)
            return
        self.emit("conversation.item.added", previous_item_id=previous, item=item)
        self.emit("conversation.item.done", previous_item_id=previous, item=item)

    def user_text(self, item: str, *parts: str) -> Event:
        return {
            "id": item,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": part} for part in parts],
        }

    def assistant_text(self, item: str, text: str) -> Event:
        return {
            "id": item,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text" if self.ga else "text", "text": text}],
        }

    # -- responses ---------------------------------------------------------

    def response_object(
        self, response: Response, status: str, *, details: Event | None = None, usage: Event | None = None
    ) -> Event:
        obj: Event = {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": list(response.output),
            "conversation_id": self.conversation_id if response.in_conversation else None,
        }
        if self.ga:
            obj.update(
                {
                    "output_modalities": list(response.modalities),
                    "max_output_tokens": response.max_output_tokens,
                    "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
                }
            )
        else:
            obj.update(
                {
                    "modalities": ["audio", "text"] if "audio" in response.modalities else ["text"],
                    "voice": "sage",
                    "custom_voice_id": None,
                    "output_audio_format": "pcm16",
                    "temperature": 0.8,
                    "max_output_tokens": response.max_output_tokens,
                }
            )
        obj.update({"usage": usage, "metadata": response.metadata})
        return obj

    def response_created(
        self,
        rid: str | None = None,
        *,
        in_conversation: bool = True,
        metadata: dict[str, str] | None = None,
        modalities: tuple[str, ...] = ("audio",),
        max_output_tokens: int | str = "inf",
    ) -> Response:
        self.wait(self.rng.uniform(0.05, 0.4))
        response = Response(rid or self.response_id(), in_conversation, metadata, modalities, max_output_tokens)
        self.responses[response.id] = response
        self.emit("response.created", response=self.response_object(response, "in_progress"))
        return response

    def rate_limits(self, *, requests: tuple[int, int] = (5000, 4999), tokens: int = 40000) -> Event:
        remaining = max(0, tokens - self.context_tokens - self.rng.randint(800, 4200))
        return self.emit(
            "rate_limits.updated",
            rate_limits=[
                {
                    "name": "requests",
                    "limit": requests[0],
                    "remaining": requests[1],
                    "reset_seconds": round(self.rng.uniform(0.01, 900.0), 3),
                },
                {
                    "name": "tokens",
                    "limit": tokens,
                    "remaining": remaining,
                    "reset_seconds": round(self.rng.uniform(0.5, 20.0), 3),
                },
            ],
        )

    def _content(self, speech: Speech) -> Event:
        if speech.lane == "audio":
            return {"type": "output_audio" if self.ga else "audio", "transcript": speech.text}
        return {"type": "output_text" if self.ga else "text", "text": speech.text}

    def _message(self, speech: Speech, *, final: bool) -> Event:
        return {
            "id": speech.item,
            "object": "realtime.item",
            "type": "message",
            "status": speech.status if final else "in_progress",
            "role": "assistant",
            "content": [self._content(speech)] if final else [],
        }

    def start_message(
        self,
        response: Response,
        item: str,
        previous: str | None,
        text: str,
        *,
        lane: Literal["audio", "text"] = "audio",
        output_index: int = 0,
    ) -> Speech:
        """``response.output_item.added``, the conversation item (unless the
        response is out of band) and ``response.content_part.added``."""
        speech = Speech(
            item,
            response.id,
            output_index,
            previous,
            tokenize(text, self.rng) if text else [],
            lane,
            response.in_conversation,
        )
        self.emit(
            "response.output_item.added",
            response_id=response.id,
            output_index=output_index,
            item=self._message(speech, final=False),
        )
        if response.in_conversation:
            self.emit(
                self._name("conversation.item.created", "conversation.item.added"),
                previous_item_id=previous,
                item=self._message(speech, final=False),
            )
        part = {"type": "audio", "transcript": ""} if lane == "audio" else {"type": "text", "text": ""}
        self.emit(
            "response.content_part.added",
            response_id=response.id,
            item_id=item,
            output_index=output_index,
            content_index=0,
            part=part,
        )
        return speech

    def stream(self, speech: Speech, count: int | None = None, *, audio_every: int = 0) -> None:
        """The next ``count`` deltas (all that are left when ``None``); a
        WebSocket call interleaves an audio delta every ``audio_every``."""
        end = len(speech.tokens) if count is None else min(len(speech.tokens), speech.sent + count)
        if speech.lane == "audio":
            kind = self._name("response.audio_transcript.delta", "response.output_audio_transcript.delta")
        else:
            kind = self._name("response.text.delta", "response.output_text.delta")
        while speech.sent < end:
            delta = speech.tokens[speech.sent]
            speech.sent += 1
            self.emit(
                kind,
                response_id=speech.response,
                item_id=speech.item,
                output_index=speech.output_index,
                content_index=0,
                delta=delta,
                **self._obfuscation(),
            )
            if audio_every and speech.lane == "audio" and speech.sent % audio_every == 0:
                pcm = self.rng.randbytes(self.rng.choice((480, 960, 1440)))
                self.emit(
                    self._name("response.audio.delta", "response.output_audio.delta"),
                    response_id=speech.response,
                    item_id=speech.item,
                    output_index=speech.output_index,
                    content_index=0,
                    delta=base64.b64encode(pcm).decode(),
                )

    def finish_message(
        self, speech: Speech, status: Literal["completed", "incomplete"] = "completed", *, item_done_first: bool = True
    ) -> Event:
        """The done events of an item whose generation ended (all its deltas,
        or only those sent, when it was cut short)."""
        speech.status = status
        rid, item, index = speech.response, speech.item, speech.output_index
        if speech.lane == "audio":
            self.emit(
                self._name("response.audio.done", "response.output_audio.done"),
                response_id=rid,
                item_id=item,
                output_index=index,
                content_index=0,
            )
            self.emit(
                self._name("response.audio_transcript.done", "response.output_audio_transcript.done"),
                response_id=rid,
                item_id=item,
                output_index=index,
                content_index=0,
                transcript=speech.text,
            )
            part = {"type": "audio", "transcript": speech.text}
        else:
            self.emit(
                self._name("response.text.done", "response.output_text.done"),
                response_id=rid,
                item_id=item,
                output_index=index,
                content_index=0,
                text=speech.text,
            )
            part = {"type": "text", "text": speech.text}
        self.emit(
            "response.content_part.done", response_id=rid, item_id=item, output_index=index, content_index=0, part=part
        )
        final = self._message(speech, final=True)
        conversation_done = self.ga and speech.in_conversation
        if conversation_done and item_done_first:
            self.emit("conversation.item.done", previous_item_id=speech.previous, item=final)
        self.emit("response.output_item.done", response_id=rid, output_index=index, item=final)
        if conversation_done and not item_done_first:
            self.emit("conversation.item.done", previous_item_id=speech.previous, item=final)
        self.responses[rid].output.append(final)
        self.context_tokens += len(speech.tokens) * 3
        return final

    def function_call(
        self, response: Response, item: str, previous: str | None, name: str, arguments: str, *, output_index: int = 0
    ) -> tuple[Event, str]:
        """A function call item streamed in full; returns it and its call id."""
        call_id = self.ids.call()
        started = {
            "id": item,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": call_id,
            "arguments": "",
        }
        self.emit("response.output_item.added", response_id=response.id, output_index=output_index, item=started)
        self.emit(
            self._name("conversation.item.created", "conversation.item.added"), previous_item_id=previous, item=started
        )
        for piece in tokenize(arguments, self.rng, split_share=0.5):
            self.emit(
                "response.function_call_arguments.delta",
                response_id=response.id,
                item_id=item,
                output_index=output_index,
                call_id=call_id,
                delta=piece,
                **self._obfuscation(),
            )
        self.emit(
            "response.function_call_arguments.done",
            response_id=response.id,
            item_id=item,
            output_index=output_index,
            call_id=call_id,
            name=name,
            arguments=arguments,
        )
        final = {**started, "status": "completed", "arguments": arguments}
        if self.ga:
            self.emit("conversation.item.done", previous_item_id=previous, item=final)
        self.emit("response.output_item.done", response_id=response.id, output_index=output_index, item=final)
        response.output.append(final)
        return final, call_id

    def function_output(self, item: str, previous: str, call_id: str, output: str) -> None:
        self.wait(self.rng.uniform(0.2, 1.5))
        self.client_item(
            {"id": item, "type": "function_call_output", "status": "completed", "call_id": call_id, "output": output},
            previous,
        )

    def usage(self, response: Response, *, spent: bool = True) -> Event:
        text_in = audio_in = cached = out_text = out_audio = 0
        if spent:
            text_in = self.context_tokens // 3
            audio_in = self.context_tokens - text_in
            cached = self.context_tokens // 128 * 64
            out_text = sum(len(o.get("arguments") or "") // 4 for o in response.output) + sum(
                len(c.get("transcript") or c.get("text") or "") // 4
                for o in response.output
                for c in o.get("content", [])
            )
            out_audio = out_text * 3 if "audio" in response.modalities else 0
        details: Event = {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "cached_tokens": cached,
            "cached_tokens_details": {"text_tokens": cached // 2, "audio_tokens": cached - cached // 2},
        }
        if self.ga:
            details["image_tokens"] = 0
            details["cached_tokens_details"]["image_tokens"] = 0
        return {
            "total_tokens": text_in + audio_in + out_text + out_audio,
            "input_tokens": text_in + audio_in,
            "output_tokens": out_text + out_audio,
            "input_token_details": details,
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    def response_done(
        self, response: Response, status: str, *, reason: str | None = None, error: Event | None = None
    ) -> Event:
        details: Event | None = None
        if status == "failed":
            details = {"type": "failed", "error": error}
        elif status != "completed":
            details = {"type": status, "reason": reason}
        spent = bool(response.output) or status == "completed"
        return self.emit(
            "response.done",
            response=self.response_object(response, status, details=details, usage=self.usage(response, spent=spent)),
        )

    # -- output audio (WebRTC) and truncation ------------------------------

    def buffer(self, what: Literal["started", "stopped", "cleared"], response: Response) -> Event | None:
        if self.buffers is None:
            return None
        kind = f"output_audio_buffer.audio_{what}" if self.buffers == "old" else f"output_audio_buffer.{what}"
        return self.emit(kind, hex_id=True, response_id=response.id)

    def truncated(self, item: str, audio_end_ms: int) -> Event:
        return self.emit("conversation.item.truncated", item_id=item, content_index=0, audio_end_ms=audio_end_ms)


# -- re-serialisation through an SDK (explicit nulls) -------------------------

_ITEM_FIELDS = ("arguments", "call_id", "name", "output")
_PART_FIELDS = ("audio", "text", "transcript")


def _ordered(value: Any) -> Any:
    """Sorted keys at every level, ``id`` first and ``type`` last, as an SDK
    that dumps its models with sorted fields writes them."""
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if not isinstance(value, dict):
        return value
    keys = sorted(value, key=lambda k: (k != "id", k == "type", k))
    return {k: _ordered(value[k]) for k in keys}


def _null_item(item: Event) -> Event:
    filled = {**{name: None for name in _ITEM_FIELDS}, **item}
    if "content" in filled:
        filled["content"] = [
            {"id": None, **{name: None for name in _PART_FIELDS}, **part} for part in filled["content"]
        ]
    return filled


def normalised(event: Event) -> Event:
    """``event`` as a client SDK re-serialises it: every optional field of
    its models present, absent ones as ``null``."""
    event = dict(event)
    if "item" in event:
        event["item"] = _null_item(event["item"])
    if "part" in event:
        event["part"] = {**{name: None for name in _PART_FIELDS}, **event["part"]}
    if "response" in event:
        response = dict(event["response"])
        response["output"] = [_null_item(item) for item in response.get("output") or []]
        if response.get("status_details") is not None:
            response["status_details"] = {"error": None, "reason": None, **response["status_details"]}
        response.pop("custom_voice_id", None)
        event["response"] = response
    if event["type"].startswith("output_audio_buffer."):
        # the SDK writes these with an explicit error field, before the response id
        return {
            "error": None,
            "event_id": event["event_id"],
            "type": event["type"],
            "response_id": event["response_id"],
        }
    ordered: Event = _ordered(event)
    return ordered
