"""OpenAI Realtime server events (GA and beta names) to canonical events.

:func:`translate` takes one raw server event (a dict, or ``str``/``bytes`` of
JSON), decodes it strictly (types checked, size bounded; unknown *fields* are
tolerated, since the provider adds them), and returns the canonical events it
means. A raw event that yields several canonical events gives each the id
``<event_id>\\x00<n>``, so redelivery is recognised for every one of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from engine.errors import InvalidMessage
from engine.realtime.providers._outcomes import Ignored, Rejected
from engine.state.content import Usage, is_image_media_type
from engine.state.realtime_events import (
    UNKNOWN,
    AssistantTextDelta,
    AssistantTranscriptDelta,
    AssistantTranscriptFinalText,
    AssistantTranscriptTruncated,
    AssistantTurnCompleted,
    ContentIndex,
    FunctionCall,
    FunctionCallOutput,
    ItemDeleted,
    ItemObserved,
    ItemSkipped,
    Millis,
    RealtimeEvent,
    ResponseStarted,
    SessionConfigured,
    UserContentFinal,
    UserImage,
    UserTranscriptDelta,
    UserTranscriptFailed,
    UserTranscriptFinal,
)

__all__ = ["MAX_EVENT_BYTES", "Ignored", "Rejected", "translate"]

MAX_EVENT_BYTES = 1 << 20  # a server event larger than 1 MiB is refused


class _S(msgspec.Struct, frozen=True, gc=False):  # provider payloads: extra fields tolerated
    pass


class ContentPart(_S, frozen=True, kw_only=True):
    type: str
    text: str | None = None
    transcript: str | None = None
    image_url: str | None = None


class ItemPayload(_S, frozen=True, kw_only=True):
    id: str
    type: str
    role: str | None = None
    status: str | None = None
    content: list[ContentPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


class _Base(_S, frozen=True, kw_only=True):
    type: str
    event_id: str


class ItemEvent(_Base, frozen=True, kw_only=True):
    item: ItemPayload
    previous_item_id: str | None = UNKNOWN


class OutputItemEvent(_Base, frozen=True, kw_only=True):
    response_id: str
    item: ItemPayload


class DeltaEvent(_Base, frozen=True, kw_only=True):
    response_id: str
    item_id: str
    content_index: ContentIndex = 0
    delta: str


class TextDone(_Base, frozen=True, kw_only=True):
    response_id: str
    item_id: str
    content_index: ContentIndex = 0
    text: str | None = None
    transcript: str | None = None


class TranscriptionCompleted(_Base, frozen=True, kw_only=True):
    item_id: str
    content_index: ContentIndex = 0
    transcript: str


class TranscriptionDelta(_Base, frozen=True, kw_only=True):
    item_id: str
    content_index: ContentIndex = 0
    delta: str


class ItemRef(_Base, frozen=True, kw_only=True):
    item_id: str
    content_index: ContentIndex = 0
    previous_item_id: str | None = UNKNOWN


class ArgumentsDone(_Base, frozen=True, kw_only=True):
    response_id: str
    item_id: str
    call_id: str
    name: str | None = None  # not in every version of the API: the item's announcement names the function
    arguments: str


class Truncated(_Base, frozen=True, kw_only=True):
    item_id: str
    content_index: ContentIndex = 0
    audio_end_ms: Millis


#: A token count a store's tables can hold (see engine.decisions._checks.MAX_TOKENS).
TokenCount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class TokenDetails(_S, frozen=True, kw_only=True):
    cached_tokens: TokenCount = 0


class UsagePayload(_S, frozen=True, kw_only=True):
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    input_token_details: TokenDetails | None = None


class ResponsePayload(_S, frozen=True, kw_only=True):
    id: str
    status: Literal["completed", "cancelled", "incomplete", "failed", "in_progress"]
    output: list[ItemPayload] | None = None
    usage: UsagePayload | None = None
    # Explicitly null for an out-of-band response (``conversation: "none"``);
    # absent from older payloads, which are in the conversation.
    conversation_id: str | UnsetType | None = UNSET

    @property
    def out_of_band(self) -> bool:
        return self.conversation_id is None


class ResponseDone(_Base, frozen=True, kw_only=True):
    response: ResponsePayload


class TranscriptionSettings(_S, frozen=True, kw_only=True):
    model: str | None = None


class AudioInput(_S, frozen=True, kw_only=True):
    transcription: TranscriptionSettings | UnsetType | None = UNSET


class AudioSettings(_S, frozen=True, kw_only=True):
    input: AudioInput | None = None


class SessionPayload(_S, frozen=True, kw_only=True):
    input_audio_transcription: TranscriptionSettings | UnsetType | None = UNSET  # beta
    audio: AudioSettings | None = None  # GA

    @property
    def transcription(self) -> bool | None:
        """Whether user audio will be transcribed; ``None`` when not said."""
        setting = self.input_audio_transcription
        if setting is UNSET and self.audio is not None and self.audio.input is not None:
            setting = self.audio.input.transcription
        return None if setting is UNSET else setting is not None


class SessionEvent(_Base, frozen=True, kw_only=True):
    session: SessionPayload


_KINDS: dict[str, type[_Base]] = {
    "conversation.item.added": ItemEvent,
    "conversation.item.done": ItemEvent,
    "conversation.item.created": ItemEvent,  # beta
    "conversation.item.retrieved": ItemEvent,
    "response.output_item.added": OutputItemEvent,
    "response.output_item.done": OutputItemEvent,
    "response.output_text.delta": DeltaEvent,
    "response.text.delta": DeltaEvent,  # beta
    "response.output_audio_transcript.delta": DeltaEvent,
    "response.audio_transcript.delta": DeltaEvent,  # beta
    "response.output_text.done": TextDone,
    "response.text.done": TextDone,  # beta
    "response.output_audio_transcript.done": TextDone,
    "response.audio_transcript.done": TextDone,  # beta
    "conversation.item.input_audio_transcription.completed": TranscriptionCompleted,
    "conversation.item.input_audio_transcription.delta": TranscriptionDelta,
    "conversation.item.input_audio_transcription.failed": ItemRef,
    "input_audio_buffer.committed": ItemRef,
    "conversation.item.truncated": Truncated,
    "response.function_call_arguments.done": ArgumentsDone,
    "conversation.item.deleted": ItemRef,
    "response.created": ResponseDone,
    "response.done": ResponseDone,
    "session.created": SessionEvent,
    "session.updated": SessionEvent,
}
_DECODERS = {name: msgspec.json.Decoder(kind) for name, kind in _KINDS.items()}
_PARTIAL = {"conversation.item.input_audio_transcription.segment"}


class _Envelope(_S, frozen=True, kw_only=True):
    type: str


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_ENCODER = msgspec.json.Encoder()


def translate(raw: object) -> list[RealtimeEvent] | Rejected | Ignored:
    """The canonical events one raw OpenAI Realtime server event means."""
    # Every input form is checked alike, whatever the event's type, so one
    # event gets one outcome as a dict, as JSON text or as its UTF-8 bytes.
    if isinstance(raw, dict):
        kind = raw.get("type")
        if not isinstance(kind, str):
            return Rejected("not a server event: no 'type' string")
        # Encoded once: the size limit holds for parsed events too, and a
        # string that is not valid Unicode (a lone surrogate) is refused here.
        try:
            data = _ENCODER.encode(raw)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            shown = kind.encode("utf-8", "backslashreplace").decode()  # a reason must print
            return Rejected(f"malformed {shown}: {exc}")
        if len(data) > MAX_EVENT_BYTES:
            return Rejected(f"event of {len(data)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
        decoder = _DECODERS.get(kind)
        if decoder is None:
            return _unknown(kind)
        try:
            event = decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            return Rejected(f"malformed {kind}: {exc}")
    else:
        if isinstance(raw, str):
            try:
                data = raw.encode("utf-8")
            except UnicodeEncodeError as exc:
                return Rejected(f"not valid Unicode: a lone surrogate at index {exc.start}")
        elif isinstance(raw, (bytes, bytearray, memoryview)):
            data = bytes(raw)
        else:
            return Rejected(f"a raw event is a dict, str or bytes of JSON, got {type(raw).__name__}")
        if len(data) > MAX_EVENT_BYTES:
            return Rejected(f"event of {len(data)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
        if not data.isascii():
            # The decoder skips the fields it does not know without checking their
            # UTF-8; a dict cannot hold such a string, so neither may the bytes.
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                return Rejected(f"not valid UTF-8: {exc.reason} at byte {exc.start}")
        try:
            kind = _ENVELOPE.decode(data).type
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
            return Rejected(f"not a server event: {_problem(data, exc)}")
        decoder = _DECODERS.get(kind)
        if decoder is None:
            return _unknown(kind)
        try:
            event = decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
            return Rejected(f"malformed {kind}: {_problem(data, exc)}")
    try:
        produced = _canonical(kind, event)
    except InvalidMessage as exc:  # e.g. negative token counts
        return Rejected(f"malformed {kind}: {exc}")
    bad = _bad_id(event.event_id, produced, getattr(event, "previous_item_id", None))
    if bad:
        return Rejected(f"malformed {kind}: {bad}")
    if len(produced) == 1:
        return [msgspec.structs.replace(produced[0], event_id=event.event_id)]
    # NUL cannot occur in an accepted id, so these never collide with a provider's own ids.
    return [msgspec.structs.replace(item, event_id=f"{event.event_id}\x00{n}") for n, item in enumerate(produced)]


_ID_FIELDS = ("item_id", "response_id", "previous_item_id", "call_id")


def _bad_id(event_id: str, produced: list[Any], previous: object) -> str | None:
    """Why an id of this event cannot key anything (blank, or holding NUL), if so."""
    if not event_id.strip() or "\x00" in event_id:
        return "event_id is blank or holds NUL"
    if isinstance(previous, str) and previous != UNKNOWN and "\x00" in previous:
        return "previous_item_id holds NUL"
    for item in produced:
        for name in _ID_FIELDS:
            value = getattr(item, name, None)
            if isinstance(value, str) and value != UNKNOWN and (not value.strip() or "\x00" in value):
                return f"{name} {value!r} is blank or holds NUL; such an id cannot be deduplicated"
    return None


def _problem(data: bytes, exc: Exception) -> str:
    """What is wrong with JSON text the decoder refused. A lone surrogate
    escape (``"\\ud800"``) is valid JSON but not Unicode, and the decoder's own
    words for it ("Input data was truncated") would mislead."""
    # A ValidationError (a field of the wrong type or value) is a DecodeError too.
    if isinstance(exc, msgspec.ValidationError) or not isinstance(exc, msgspec.DecodeError) or b"\\u" not in data:
        return str(exc)
    try:
        json.dumps(json.loads(data), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate escape (\\ud800 to \\udfff alone), which is not valid Unicode"
    except ValueError:
        pass
    return str(exc)


def _unknown(kind: str) -> Ignored:
    if kind in _PARTIAL:
        return Ignored(f"{kind}: transcription segments are not kept; the deltas and the completed text are")
    if kind.startswith(_NO_TRANSCRIPT):
        return Ignored(f"{kind} does not change the transcript")
    # A typo, a client event, or a server event newer than this engine: ignored
    # (a newer one must not fail a call), but said to be unknown.
    shown = kind.encode("utf-8", "backslashreplace").decode()
    return Ignored(
        f"{shown!r} is not an OpenAI Realtime server event type this engine knows (a typo, a client event, or "
        "one newer than this engine); nothing of it was kept"
    )


#: Families of the Realtime API's server events (GA and beta names) that change no transcript.
_NO_TRANSCRIPT = (
    "error",
    "rate_limits.",
    "input_audio_buffer.",
    "output_audio_buffer.",
    "conversation.created",
    "transcription_session.",
    "response.content_part.",
    "response.output_audio.",
    "response.audio.",
    "response.function_call_arguments.delta",
    "response.mcp_call",
    "mcp_list_tools.",
)


def _item_events(
    item: ItemPayload, previous: str | None, *, final: bool, response_id: str | None, created: bool = False
) -> list[Any]:
    """``created``: the conversation announces the item (``.added``/``.created``), so
    an assistant item already ``completed`` there was written by the client."""
    if item.type == "function_call":
        # Whole when it ends a response, or when the conversation announces
        # it as finished; a call "in_progress" is still streaming its arguments.
        complete = final or (created and item.status != "in_progress")
        if item.call_id is None or item.name is None:
            raise InvalidMessage(f"function_call item {item.id} has no {'call_id' if item.call_id is None else 'name'}")
        if item.arguments is None and complete:
            raise InvalidMessage(f"function_call item {item.id} is finished but has no arguments")
        return [
            FunctionCall(
                item_id=item.id,
                call_id=item.call_id,
                name=item.name,
                arguments=item.arguments or "",
                response_id=response_id,
                previous_item_id=previous,
                complete=complete,
            )
        ]
    if item.type == "function_call_output":
        if item.call_id is None or item.output is None:
            missing = "call_id" if item.call_id is None else "output"
            raise InvalidMessage(f"function_call_output item {item.id} has no {missing}")
        return [
            FunctionCallOutput(item_id=item.id, call_id=item.call_id, output=item.output, previous_item_id=previous)
        ]
    if item.type != "message" or item.role not in ("user", "assistant", "system"):
        what = f"a {item.type} item" if item.type != "message" else f"a message of role {item.role}"
        return [ItemSkipped(item_id=item.id, previous_item_id=previous, kind=what)]
    content = item.content or []
    for index, part in enumerate(content):
        # A part the transcript has no block for is refused, never dropped.
        if part.type not in _PART_TYPES[item.role]:
            if item.role == "system":
                raise InvalidMessage(f"a system item holds text only; content[{index}] is {part.type}")
            raise InvalidMessage(f"content[{index}] is a {part.type} part, which a {item.role} item cannot hold")
        if part.type == "input_image" and not part.image_url:
            raise InvalidMessage(f"content[{index}] is an input_image part without an image_url")
        if part.text is not None and part.transcript is not None:
            raise InvalidMessage(f"content[{index}] holds both text and a transcript; a part is one or the other")
    audio = item.role == "user" and any(part.type == "input_audio" for part in content)
    # Announced whole: typed input, or an assistant message the client wrote
    # (a response's items are announced "in_progress"; the client may leave
    # status out, as the schema lets it).
    complete = created and (
        (item.role in ("user", "system") and not audio) or (item.role == "assistant" and item.status != "in_progress")
    )
    # The announcement comes last: the item's content is all there when its
    # place is known, so a message never starts with only part of it.
    announcement = ItemObserved(
        item_id=item.id,
        role=item.role,  # type: ignore[arg-type]
        previous_item_id=previous,
        response_id=response_id,
        audio=audio,
        complete=complete,
    )
    events: list[Any] = []
    for index, part in enumerate(content):
        if item.role in ("user", "system"):
            if part.type in ("input_text", "text") and part.text:
                events.append(UserContentFinal(item_id=item.id, content_index=index, text=part.text, role=item.role))  # type: ignore[arg-type]
            elif part.type == "input_audio" and part.transcript:
                events.append(UserTranscriptFinal(item_id=item.id, content_index=index, text=part.transcript))
            elif part.type == "input_image" and part.image_url:
                events.append(_image(item.id, index, part.image_url))
        elif final or complete:  # a message the client wrote is whole
            text = part.transcript if part.type in ("output_audio", "audio") else part.text
            if text:
                lane: Literal["text", "transcript"] = "transcript" if part.type in ("output_audio", "audio") else "text"
                events.append(
                    AssistantTranscriptFinalText(
                        item_id=item.id, content_index=index, text=text, lane=lane, response_id=response_id
                    )
                )
    events.append(announcement)
    return events


#: The content part types each role's item may hold (GA names, then beta ones).
_PART_TYPES = {
    "user": {"input_text", "input_audio", "input_image", "text"},
    "system": {"input_text", "text"},
    "assistant": {"output_text", "output_audio", "text", "audio"},
}


def _image(item_id: str, index: int, url: str) -> UserImage:
    """An ``input_image`` part: a data URL is kept inline, any other URL as a reference."""
    if url.startswith("data:") and "," in url:
        header, _, payload = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if media_type and not is_image_media_type(media_type):
            raise InvalidMessage(f"input_image: the data URL holds {media_type!r}, which is not an image")
        if encoding == "base64":
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidMessage(f"input_image: the data URL is not valid base64: {exc}") from None
            if not data:
                raise InvalidMessage("input_image: the data URL holds no bytes (nothing after the comma)")
            return UserImage(item_id=item_id, content_index=index, media_type=media_type or "image/*", data=data)
    return UserImage(item_id=item_id, content_index=index, media_type="image/*", ref=url)


def _canonical(kind: str, event: Any) -> list[Any]:
    if isinstance(event, SessionEvent):
        return [
            SessionConfigured(input_transcription=event.session.transcription, new_connection=kind == "session.created")
        ]
    if isinstance(event, ItemEvent):
        final = kind in ("conversation.item.done", "conversation.item.retrieved") or event.item.status == "completed"
        # Only the announcement places an item: ``.done`` also comes for
        # items of out-of-band responses, which are in no conversation.
        created = kind in ("conversation.item.added", "conversation.item.created")
        previous = event.previous_item_id if created else UNKNOWN
        return _item_events(event.item, previous, final=final, response_id=None, created=created)
    if isinstance(event, OutputItemEvent):
        return _item_events(event.item, UNKNOWN, final=kind.endswith(".done"), response_id=event.response_id)
    if isinstance(event, DeltaEvent):
        cls = AssistantTextDelta if "text" in kind.split(".")[1] else AssistantTranscriptDelta
        return [
            cls(
                response_id=event.response_id,
                item_id=event.item_id,
                content_index=event.content_index,
                delta=event.delta,
            )
        ]
    if isinstance(event, TextDone):
        spoken = "audio" in kind
        text = event.transcript if spoken else event.text
        return [
            AssistantTranscriptFinalText(
                item_id=event.item_id,
                content_index=event.content_index,
                text=text or "",
                lane="transcript" if spoken else "text",
                response_id=event.response_id,
            )
        ]
    if isinstance(event, ArgumentsDone):
        # The call's final arguments, which its item's own end may never
        # bring (a call cut short, then placed by resolve_pending).
        return [
            FunctionCall(
                item_id=event.item_id,
                call_id=event.call_id,
                name=event.name or "",
                arguments=event.arguments,
                response_id=event.response_id,
            )
        ]
    if isinstance(event, TranscriptionDelta):
        return [UserTranscriptDelta(item_id=event.item_id, content_index=event.content_index, delta=event.delta)]
    if isinstance(event, TranscriptionCompleted):
        return [UserTranscriptFinal(item_id=event.item_id, content_index=event.content_index, text=event.transcript)]
    if isinstance(event, Truncated):
        return [
            AssistantTranscriptTruncated(
                item_id=event.item_id, content_index=event.content_index, audio_end_ms=event.audio_end_ms
            )
        ]
    if isinstance(event, ItemRef):
        if kind == "conversation.item.deleted":
            return [ItemDeleted(item_id=event.item_id)]
        if kind == "input_audio_buffer.committed":
            return [ItemObserved(item_id=event.item_id, role="user", previous_item_id=event.previous_item_id)]
        return [UserTranscriptFailed(item_id=event.item_id, content_index=event.content_index)]
    assert isinstance(event, ResponseDone)
    response = event.response
    if kind == "response.created":
        return [ResponseStarted(response_id=response.id, out_of_band=response.out_of_band)]
    if response.status == "in_progress":
        return []
    produced: list[Any] = []
    for item in response.output or []:
        produced += _item_events(item, UNKNOWN, final=True, response_id=response.id)
    usage = None
    if response.usage is not None:
        details = response.usage.input_token_details
        usage = Usage(
            input=response.usage.input_tokens,
            output=response.usage.output_tokens,
            cache_read=details.cached_tokens if details else 0,
        )
    produced.append(
        AssistantTurnCompleted(
            response_id=response.id,
            status=response.status,
            usage=usage,
            output_item_ids=tuple(item.id for item in response.output or []),
            out_of_band=response.out_of_band,
        )
    )
    return produced
