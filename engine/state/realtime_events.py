"""Canonical realtime transcript events: what any provider's stream is mapped to.

Every event may carry the provider's ``event_id``; the reducer drops an event
whose id it has already accepted. Content is keyed by ``(item_id,
content_index)``; order comes from ``previous_item_id`` (``None`` means "no
predecessor: the start of the conversation"; :data:`UNKNOWN`, the default,
means "this event does not say").
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

import msgspec

from engine.state.content import Usage

#: A content part's index within its item, and a time in milliseconds: bounded,
#: so a hostile value is refused at decoding rather than stored.
ContentIndex: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Millis: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=10**12)]

__all__ = [
    "ERASED_TEXT",
    "UNKNOWN",
    "AssistantTextDelta",
    "AssistantTranscriptDelta",
    "AssistantTranscriptFinalText",
    "AssistantTranscriptTruncated",
    "AssistantTurnCompleted",
    "AssistantTurnInterrupted",
    "ContentIndex",
    "FunctionCall",
    "FunctionCallOutput",
    "ItemDeleted",
    "ItemObserved",
    "ItemSkipped",
    "Millis",
    "RealtimeEvent",
    "ResponseStarted",
    "SessionConfigured",
    "UserContentFinal",
    "UserImage",
    "UserTranscriptDelta",
    "UserTranscriptFailed",
    "UserTranscriptFinal",
    "erased_text",
    "scrubbed",
]

#: ``previous_item_id`` not given by this event (distinct from ``None``: "first item").
UNKNOWN = "\x00unknown"

ItemRole: TypeAlias = Literal["user", "assistant", "system"]
TurnStatus: TypeAlias = Literal["completed", "cancelled", "incomplete", "failed"]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True, gc=False):
    event_id: str | None = None


class ItemObserved(_Event, frozen=True, kw_only=True, tag="item_observed"):
    """An item exists, with its role and (if known) its predecessor and response.

    ``audio``: a user item of spoken input, whose text can only come from a
    transcription. ``complete``: the item was announced finished (an item the
    client created, not one a response is producing), so it needs no
    response to end before it becomes a message."""

    item_id: str
    role: ItemRole
    previous_item_id: str | None = UNKNOWN
    response_id: str | None = None
    audio: bool = False
    complete: bool = False


class SessionConfigured(_Event, frozen=True, kw_only=True, tag="session_configured"):
    """The provider's session settings that change how items settle.
    ``input_transcription``: ``False`` when the session says user audio will
    not be transcribed, ``True`` when it will, ``None`` when it does not say.
    ``new_connection``: a new connection started (OpenAI ``session.created``):
    what the previous connection left waiting can never finish."""

    input_transcription: bool | None = None
    new_connection: bool = False


class ResponseStarted(_Event, frozen=True, kw_only=True, tag="response_started"):
    """A response began. ``out_of_band``: it writes to no conversation
    (OpenAI ``conversation: "none"``): its items never enter the transcript."""

    response_id: str
    out_of_band: bool = False


class ItemSkipped(_Event, frozen=True, kw_only=True, tag="item_skipped"):
    """An item that takes part in ordering but never becomes a message."""

    item_id: str
    previous_item_id: str | None = UNKNOWN
    # What it is, for the outcome's reason (say "a mcp_call item").
    kind: str | None = None


class UserTranscriptFinal(_Event, frozen=True, kw_only=True, tag="user_transcript_final"):
    """The final transcription of a user audio item's content part."""

    item_id: str
    content_index: ContentIndex = 0
    text: str
    previous_item_id: str | None = UNKNOWN


class UserTranscriptDelta(_Event, frozen=True, kw_only=True, tag="user_transcript_delta"):
    """Part of a user item's transcription, before the final text."""

    item_id: str
    content_index: ContentIndex = 0
    delta: str


class UserImage(_Event, frozen=True, kw_only=True, tag="user_image"):
    """An image a user (or system) item carries: inline ``data`` or a ``ref``
    (a URL)."""

    item_id: str
    content_index: ContentIndex = 0
    media_type: str
    data: bytes | None = None
    ref: str | None = None


class UserTranscriptFailed(_Event, frozen=True, kw_only=True, tag="user_transcript_failed"):
    """Transcription failed: the user item stays, without text."""

    item_id: str
    content_index: ContentIndex = 0


class UserContentFinal(_Event, frozen=True, kw_only=True, tag="user_content_final"):
    """Typed (not spoken) input: the text of one content part of a user (or
    system) item."""

    item_id: str
    content_index: ContentIndex = 0
    text: str
    role: Literal["user", "system"] = "user"
    previous_item_id: str | None = UNKNOWN


class AssistantTextDelta(_Event, frozen=True, kw_only=True, tag="assistant_text_delta"):
    response_id: str
    item_id: str
    content_index: ContentIndex = 0
    delta: str
    previous_item_id: str | None = UNKNOWN


class AssistantTranscriptDelta(_Event, frozen=True, kw_only=True, tag="assistant_transcript_delta"):
    response_id: str
    item_id: str
    content_index: ContentIndex = 0
    delta: str
    previous_item_id: str | None = UNKNOWN


class AssistantTranscriptFinalText(_Event, frozen=True, kw_only=True, tag="assistant_final_text"):
    """The authoritative text of one content part; replaces accumulated deltas
    (an empty value never erases known text). ``lane`` says whether it was
    written (``text``) or spoken (``transcript``)."""

    item_id: str
    content_index: ContentIndex = 0
    text: str
    lane: Literal["text", "transcript"] = "transcript"
    response_id: str | None = None


class AssistantTranscriptTruncated(_Event, frozen=True, kw_only=True, tag="assistant_transcript_truncated"):
    """Barge-in: playback stopped at ``audio_end_ms``. With ``text`` (what was
    heard, from a caller who knows it) the spoken transcript becomes that text,
    as an audited rewrite; without it the generated text is kept and the
    truncation point is recorded on the message."""

    item_id: str
    content_index: ContentIndex = 0
    audio_end_ms: Millis | None = None
    text: str | None = None


class AssistantTurnCompleted(_Event, frozen=True, kw_only=True, tag="assistant_turn_completed"):
    """A response ended (OpenAI ``response.done``). ``output_item_ids`` lists
    the items the provider kept, if the provider says."""

    response_id: str
    status: TurnStatus = "completed"
    usage: Usage | None = None
    output_item_ids: tuple[str, ...] | None = None
    out_of_band: bool = False


class AssistantTurnInterrupted(_Event, frozen=True, kw_only=True, tag="assistant_turn_interrupted"):
    """The caller interrupted a response (barge-in) before it completed."""

    response_id: str


class ItemDeleted(_Event, frozen=True, kw_only=True, tag="item_deleted"):
    item_id: str


class FunctionCall(_Event, frozen=True, kw_only=True, tag="function_call"):
    """A function call item: becomes a tool-use block of its response's message."""

    item_id: str
    call_id: str
    name: str
    arguments: str = "{}"
    response_id: str | None = None
    previous_item_id: str | None = UNKNOWN
    # Announced finished (its arguments final); a call still streaming is
    # whole only when its response ends.
    complete: bool = True


class FunctionCallOutput(_Event, frozen=True, kw_only=True, tag="function_call_output"):
    """A function call's output item: becomes a tool result."""

    item_id: str
    call_id: str
    output: str
    previous_item_id: str | None = UNKNOWN


RealtimeEvent: TypeAlias = (
    ItemObserved
    | SessionConfigured
    | ResponseStarted
    | UserTranscriptDelta
    | UserImage
    | ItemSkipped
    | UserTranscriptFinal
    | UserTranscriptFailed
    | UserContentFinal
    | AssistantTextDelta
    | AssistantTranscriptDelta
    | AssistantTranscriptFinalText
    | AssistantTranscriptTruncated
    | AssistantTurnCompleted
    | AssistantTurnInterrupted
    | ItemDeleted
    | FunctionCall
    | FunctionCallOutput
)


#: What the text of a realtime record reads once an erasure emptied it (a
#: text, a delta, an output, a transcript, an image's reference): it says
#: that something was there, so the records replay as they were first
#: taken (an erased reply is still a reply that said something), and nothing
#: of what it was. The reducer never places it in a message.
ERASED_TEXT = "\u27e8erased\u27e9"

_TEXTS = ("text", "delta", "output")


def erased_text(text: str | None) -> bool:
    """Whether ``text`` is what an erasure left (the mark, once or repeated:
    a reply's deltas add up)."""
    # startswith first: a text that says something is told apart without a copy of it.
    return text is not None and text.startswith(ERASED_TEXT) and not text.replace(ERASED_TEXT, "")


def scrubbed(event: RealtimeEvent) -> RealtimeEvent:
    """``event`` without the content it carries, as an erasure leaves the
    record of an event about an erased message: each text that said
    something reads :data:`ERASED_TEXT` (an empty one stays empty), call
    arguments ``{}``, an image its reference to that mark and no data;
    ``event`` itself if it carries none."""
    fields = event.__struct_fields__
    changes: dict[str, object] = {
        name: ERASED_TEXT
        for name in _TEXTS
        if name in fields and getattr(event, name) and not erased_text(getattr(event, name))
    }
    if isinstance(event, FunctionCall) and event.arguments != "{}":
        changes["arguments"] = "{}"
    if isinstance(event, UserImage) and (event.data is not None or event.ref != ERASED_TEXT):
        changes.update(data=None, ref=ERASED_TEXT)
    return msgspec.structs.replace(event, **changes) if changes else event
