"""GA-schema calls (``conversation.item.added``/``.done``,
``response.output_audio_transcript.*`` with ``obfuscation``, responses with
``conversation_id``), each scripted to exercise one rule the way a real call
does. Every word and id is this project's own."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

from tests.recordings._build import Call, Response, Speech, chunks
from tests.recordings._model import Expected, Recording

INSTRUCTIONS = "You are the phone assistant of Casa Lumen, a small restaurant. Be warm, brief and concrete."
TRANSCRIBER = "gpt-4o-transcribe"
AVAILABILITY_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "check_availability",
    "description": "Whether a table is free for a party at a date, time and area.",
    "parameters": {
        "type": "object",
        "properties": {
            "date": {"type": "string"},
            "time": {"type": "string"},
            "party_size": {"type": "integer"},
            "area": {"type": "string", "enum": ["inside", "terrace"]},
        },
        "required": ["date", "time", "party_size"],
    },
}


def _open(call: Call, *, tools: list[dict[str, Any]] | None = None, instructions: str = INSTRUCTIONS) -> None:
    """A GA connection: the server's defaults (no input transcription), then
    the client's ``session.update`` turns transcription on."""
    call.session("created", transcription=None, instructions="", tools=None)
    call.session("updated", transcription=TRANSCRIBER, instructions=instructions, tools=tools)


def _answer(
    call: Call,
    previous: str | None,
    text: str,
    *,
    audio_every: int = 0,
    item: str | None = None,
    webrtc_played: bool = True,
) -> tuple[Response, Speech]:
    """An in-band spoken reply generated in full and completed."""
    response = call.response_created()
    call.rate_limits()
    speech = call.start_message(response, item or call.item_id(), previous, text)
    call.stream(speech, 3, audio_every=audio_every)
    call.buffer("started", response)
    call.stream(speech, audio_every=audio_every)
    call.finish_message(speech, item_done_first=call.rng.random() < 0.5)
    call.response_done(response, "completed")
    if webrtc_played:
        call.buffer("stopped", response)
    return response, speech


# -- (c) a transcribed call with a tool, truncations and late transcripts ----

C_U1 = "Hi, I'd like to book a table for Friday evening."
C_A1 = "Happy to help! How many people will be joining, and what time works best for you?"
C_U2 = "Four of us, around seven thirty."
C_A2 = "Lovely, four people at seven thirty on Friday. Would you like to sit inside or on the terrace?"
C_U3 = "Is the terrace heated?"
C_A3 = (
    "Yes, it has heaters and a glass roof that closes when it gets windy, so it stays cosy even in "
    "November. Most of our evening guests actually ask for it."
)
C_U4 = "Okay, the terrace then. Can you check if there's room?"
C_A4 = "One moment, I'll check the terrace for you."
C_ARGS = '{"date": "2025-11-07", "time": "19:30", "party_size": 4, "area": "terrace"}'
C_OUTPUT = '{"available": true, "table": "T12", "hold_minutes": 10}'
C_A5 = "Good news, table twelve on the terrace is free at seven thirty. Shall I book it under your name?"
C_U6 = "Yes please, it's under Ortega."
C_A6_PARTIAL = "Perfect, Mr. Ortega, you're booked for Friday at seven thirty, and we'll send a"
C_U7 = "Sorry, one more thing, can we bring a dog?"
C_A7 = "Of course, well-behaved dogs are welcome on the terrace. We'll even bring a water bowl."


def transcribed_call() -> Recording:
    call = Call(7001, schema="ga", buffers=None)  # a WebSocket call: audio deltas, no output-buffer events
    rng = call.rng
    _open(call, tools=[AVAILABILITY_TOOL])

    # Turn 1: the user's transcript is complete before the response starts.
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1800, spoken_ms=2600)
    call.transcription(u1, C_U1)
    _, s1 = _answer(call, u1, C_A1, audio_every=3)

    # Turn 2: the transcription streams while the reply is generated.
    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(C_A1) * 62 + 900, spoken_ms=1700)
    r2 = call.response_created()
    call.rate_limits()
    s2 = call.start_message(r2, call.item_id(), u2, C_A2)
    pieces = chunks(C_U2, rng)
    call.stream(s2, 4, audio_every=3)
    call.transcription_deltas(u2, pieces[:2])
    call.stream(s2, 5, audio_every=3)
    call.transcription_deltas(u2, pieces[2:])
    call.transcription_completed(u2, C_U2)
    call.stream(s2, audio_every=3)
    call.finish_message(s2)
    call.response_done(r2, "completed")

    # Turn 3: the transcript arrives after response.done; the user then talks
    # over the end of the reply and the client truncates it where playback stopped.
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=len(C_A2) * 62 + 1200, spoken_ms=1300)
    _, s3 = _answer(call, u3, C_A3, audio_every=3)
    call.transcription(u3, C_U3)
    u4 = call.item_id()
    call.speech_started(u4, after_ms=len(C_A3) * 55)
    call.truncated(s3.item, audio_end_ms=7150)  # rule 5: text kept, truncated_at_ms recorded
    call.speech_stopped(u4, spoken_ms=2400)
    call.committed(u4, s3.item)
    call.user_audio_item(u4, s3.item)

    # Turn 4: one response says a sentence and calls a tool; the user's
    # transcript completes in the middle of it.
    r4 = call.response_created()
    call.rate_limits()
    s4 = call.start_message(r4, call.item_id(), u4, C_A4)
    call.stream(s4, 2, audio_every=3)
    call.transcription(u4, C_U4)
    call.stream(s4, audio_every=3)
    call.finish_message(s4)
    fc, call_id = call.function_call(r4, call.item_id(), s4.item, "check_availability", C_ARGS, output_index=1)
    call.response_done(r4, "completed")
    output = call.item_id()
    call.function_output(output, fc["id"], call_id, C_OUTPUT)
    _, s5 = _answer(call, output, C_A5, audio_every=3)

    # Turn 6: a barge-in while the reply is generated: the response is
    # cancelled with the partial item, which the client then truncates.
    u6 = call.item_id()
    call.user_turn(u6, s5.item, after_ms=len(C_A5) * 62 + 700, spoken_ms=1500)
    call.transcription(u6, C_U6)
    r6 = call.response_created()
    call.rate_limits()
    s6 = call.start_message(r6, call.item_id(), u6, C_A6_PARTIAL)
    call.stream(s6, audio_every=3)
    u7 = call.item_id()
    call.speech_started(u7, after_ms=2100)
    call.finish_message(s6, "incomplete")
    call.response_done(r6, "cancelled", reason="turn_detected")
    call.truncated(s6.item, audio_end_ms=1920)
    call.speech_stopped(u7, spoken_ms=1900)
    call.committed(u7, s6.item)
    call.user_audio_item(u7, s6.item)

    # Turn 7: the transcript completes after the response was created.
    r7 = call.response_created()
    call.transcription(u7, C_U7)
    call.rate_limits()
    s7 = call.start_message(r7, call.item_id(), u7, C_A7)
    call.stream(s7, audio_every=3)
    call.finish_message(s7, item_done_first=False)
    call.response_done(r7, "completed")
    return Recording(
        name="ga-transcribed-call",
        events=call.events,
        expected=[
            Expected("user", C_U1, item_id=u1),
            Expected("assistant", C_A1, item_id=s1.item),
            Expected("user", C_U2, item_id=u2),
            Expected("assistant", C_A2, item_id=s2.item),
            Expected("user", C_U3, item_id=u3),  # transcript after response.done: replaced in place (rule 2)
            Expected("assistant", C_A3, item_id=s3.item),  # truncated after completing: full text, not incomplete
            Expected("user", C_U4, item_id=u4),
            Expected("assistant", C_A4),  # rule 3: the message item and the function call are ONE message
            Expected("tool_results", ""),
            Expected("assistant", C_A5, item_id=s5.item),
            Expected("user", C_U6, item_id=u6),
            Expected("assistant", C_A6_PARTIAL, incomplete=True, item_id=s6.item),  # cancelled: partial kept
            Expected("user", C_U7, item_id=u7),
            Expected("assistant", C_A7, item_id=s7.item),
        ],
        notes=(
            "GA WebSocket call, transcription turned on by session.update. User transcripts complete before, "
            "during and after the responses; a completed reply is truncated after a barge-in; one response says a "
            "sentence and calls check_availability (one assistant message), the client answers with "
            "function_call_output and asks for the follow-up; a reply cancelled mid-generation is truncated."
        ),
    )


# Messages whose Transcript block records a truncation: (message index, audio_end_ms).
TRUNCATIONS = {"ga-transcribed-call": [(5, 7150), (11, 1920)]}


# -- (d) out-of-band responses -------------------------------------------------

D_U1 = "Hi, my internet keeps dropping every evening."
D_A1 = "I'm sorry to hear that. Does it drop completely, or does it just get very slow?"
D_OOB1 = '{"intent": "connectivity_issue", "sentiment": "frustrated", "escalate": false}'
D_U2 = "It cuts out completely, since the storm last week."
D_A2 = "Thanks, that helps. Storm damage to the line is quite common. Is the light on your router red or orange?"
D_OOB2 = '{"intent": "connectivity_issue", "sentiment": "neutral", "escalate": true}'
D_U3 = "It's blinking orange."
D_A3 = "Okay, that points to the line. I'll book a technician visit for you, would tomorrow morning work?"


def _classify(call: Call, text: str, *, streamed_with: Speech | None = None) -> Speech:
    """An out-of-band classification the client requests with
    ``conversation: "none"``: text output, never added to the conversation.
    With ``streamed_with`` its deltas interleave with that in-band reply's."""
    response = call.response_created(in_conversation=False, metadata={"purpose": "triage"}, modalities=("text",))
    speech = call.start_message(response, call.item_id(), None, text, lane="text")
    while speech.sent < len(speech.tokens):
        call.stream(speech, call.rng.randint(2, 4))
        if streamed_with is not None:
            call.stream(streamed_with, call.rng.randint(1, 3))
    call.finish_message(speech)
    call.response_done(response, "completed")
    return speech


def out_of_band_call() -> Recording:
    call = Call(7002, schema="ga", buffers="new")
    _open(call, instructions="You are the support line of Northwind Fibre. Keep it short and helpful.")
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1400, spoken_ms=2300)
    call.transcription(u1, D_U1)
    _, s1 = _answer(call, u1, D_A1)
    oob1 = _classify(call, D_OOB1)  # between the turns

    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(D_A1) * 62 + 1500, spoken_ms=2600)
    r2 = call.response_created()
    call.rate_limits()
    s2 = call.start_message(r2, call.item_id(), u2, D_A2)
    call.stream(s2, 3)
    call.buffer("started", r2)
    call.transcription(u2, D_U2)
    oob2 = _classify(call, D_OOB2, streamed_with=s2)  # while the in-band reply is generated
    call.stream(s2)
    call.finish_message(s2)
    call.response_done(r2, "completed")
    call.buffer("stopped", r2)

    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=len(D_A2) * 62 + 900, spoken_ms=900)
    call.transcription(u3, D_U3)
    _, s3 = _answer(call, u3, D_A3)
    return Recording(
        name="ga-out-of-band",
        events=call.events,
        expected=[
            Expected("user", D_U1, item_id=u1),
            Expected("assistant", D_A1, item_id=s1.item),
            Expected("user", D_U2, item_id=u2),
            Expected("assistant", D_A2, item_id=s2.item),
            Expected("user", D_U3, item_id=u3),
            Expected("assistant", D_A3, item_id=s3.item),
        ],
        # Rule 4: conversation_id null, items never announced by conversation.item.added.
        out_of_band=[
            Expected("assistant", D_OOB1, item_id=oob1.item),
            Expected("assistant", D_OOB2, item_id=oob2.item),
        ],
        notes=(
            "GA WebRTC call with two out-of-band text responses (a triage classifier, conversation_id null, "
            "metadata purpose=triage): one between turns, one streamed interleaved with an in-band reply."
        ),
    )


# -- (e) client inserts at older positions and at the root ---------------------

E_U1 = "What time do you open on Sundays?"
E_A1 = "On Sundays we open at ten and close at four."
E_U2 = "And is the kitchen open all day?"
E_A2 = "The kitchen serves until half past three, after that it's coffee and cake."
E_C1 = "Note from the host: this caller has a booking on Sunday at noon."
E_C2 = "Context: the caller is a regular, address them by first name, Priya."
E_C3 = "Note from the host: the booking is for six people, including two children."
E_U3 = "Great. Could we get high chairs for the kids?"
E_A3 = "Absolutely, Priya, I'll make sure two high chairs are ready at your table."
E_C4 = "I've also added a note for the kitchen about the children's menu."
E_C5 = "Thanks, can you confirm the time of our booking?"
E_A5 = "Of course: Sunday at noon, a table for six with two high chairs."


def client_inserts_call() -> Recording:
    call = Call(7003, schema="ga", buffers=None)
    _open(call)
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1500, spoken_ms=1800)
    call.transcription(u1, E_U1)
    _, s1 = _answer(call, u1, E_A1, audio_every=4)
    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(E_A1) * 62 + 800, spoken_ms=1700)
    call.transcription(u2, E_U2)
    _, s2 = _answer(call, u2, E_A2, audio_every=4)
    # The host's console inserts notes: after u1, at the root, after u1 again.
    call.wait(2.0)
    c1 = call.item_id()
    call.client_item(call.user_text(c1, E_C1), u1)
    call.wait(1.1)
    c2 = call.item_id()
    call.client_item(call.user_text(c2, E_C2), None)
    call.wait(0.8)
    c3 = call.item_id()
    call.client_item(call.user_text(c3, E_C3), u1)
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=9000, spoken_ms=2100)
    call.transcription(u3, E_U3)
    _, s3 = _answer(call, u3, E_A3, audio_every=4)
    # An assistant message written by the client, then a typed user message and its answer.
    c4 = call.item_id()
    call.client_item(call.assistant_text(c4, E_C4), s3.item)
    call.wait(4.0)
    c5 = call.item_id()
    call.client_item(call.user_text(c5, E_C5), c4)
    _, s5 = _answer(call, c5, E_A5, audio_every=4)
    return Recording(
        name="ga-client-inserts",
        events=call.events,
        expected=[
            Expected("user", E_C2, item_id=c2),  # previous_item_id null: at the start
            Expected("user", E_U1, item_id=u1),
            Expected("user", E_C3, item_id=c3),  # same predecessor as c1, announced later: comes first (rule 1)
            Expected("user", E_C1, item_id=c1),  # after u1, not at the end
            Expected("assistant", E_A1, item_id=s1.item),
            Expected("user", E_U2, item_id=u2),
            Expected("assistant", E_A2, item_id=s2.item),
            Expected("user", E_U3, item_id=u3),
            Expected("assistant", E_A3, item_id=s3.item),
            Expected("assistant", E_C4, item_id=c4),
            Expected("user", E_C5, item_id=c5),
            Expected("assistant", E_A5, item_id=s5.item),
        ],
        notes=(
            "GA WebSocket call where the client inserts user text items with previous_item_id of an older item "
            "(twice after the same item) and null (the root), then appends an assistant text item and a typed "
            "user message."
        ),
    )


# -- (f) a transcript delivered before its item ---------------------------------

F_U1 = "Hello, is this the bike shop?"
F_A1 = "It is! This is Spoke and Chain, how can I help?"
F_U2 = "My back brake squeaks really loudly when it rains."
F_A2 = "That's usually wet pads or a glazed rim. Bring it in and we can clean and adjust it in about twenty minutes."
F_U3 = "Do I need to book?"
F_A3 = "No booking needed for small repairs, just drop by before five."


def transcript_before_item_call() -> Recording:
    call = Call(7004, schema="ga", buffers="new")
    rng = call.rng
    _open(call, instructions="You answer the phone for a bicycle repair shop.")
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1200, spoken_ms=1500)
    call.transcription(u1, F_U1)
    _, s1 = _answer(call, u1, F_A1)
    # Turn 2: the streaming transcription runs while the user speaks, and
    # completes before the buffer is committed and the item is added.
    u2 = call.item_id()
    call.speech_started(u2, after_ms=len(F_A1) * 62 + 1100)
    call.transcription_deltas(u2, chunks(F_U2, rng))
    call.transcription_completed(u2, F_U2)
    call.speech_stopped(u2, spoken_ms=2700)
    call.committed(u2, s1.item)
    call.user_audio_item(u2, s1.item)
    _, s2 = _answer(call, u2, F_A2)
    # Turn 3: the completed transcript (no deltas) overtakes committed.
    u3 = call.item_id()
    call.speech_started(u3, after_ms=len(F_A2) * 62 + 600)
    call.speech_stopped(u3, spoken_ms=900)
    call.transcription_completed(u3, F_U3)
    call.committed(u3, s2.item)
    call.user_audio_item(u3, s2.item)
    _, s3 = _answer(call, u3, F_A3)
    return Recording(
        name="ga-transcript-before-item",
        events=call.events,
        expected=[
            Expected("user", F_U1, item_id=u1),
            Expected("assistant", F_A1, item_id=s1.item),
            Expected("user", F_U2, item_id=u2),  # its transcript came before the item: kept for it
            Expected("assistant", F_A2, item_id=s2.item),
            Expected("user", F_U3, item_id=u3),
            Expected("assistant", F_A3, item_id=s3.item),
        ],
        notes="GA WebRTC call in which two transcriptions complete before input_audio_buffer.committed of their item.",
    )


# -- (g) an empty completed transcript after deltas -----------------------------

G_U1 = "Can you read me the forecast for Saturday?"
G_A1 = "Saturday looks dry, with sun in the morning and a light breeze after lunch."
G_A2 = "Sorry, I didn't catch that. Could you say it again?"
G_U3 = "I asked whether it will rain on Sunday."
G_A3 = "Sunday brings showers from midday, so plan anything outdoors for the morning."
G_U4 = "Thanks, that's all."
G_A4 = "You're welcome, enjoy the weekend!"


def empty_completed_call() -> Recording:
    call = Call(7005, schema="ga", buffers=None)
    _open(call, instructions="You read out weather forecasts.")
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1300, spoken_ms=2200)
    call.transcription(u1, G_U1, completed_text="")  # rule 2: "" completed, the deltas are the text
    _, s1 = _answer(call, u1, G_A1, audio_every=3)
    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(G_A1) * 62 + 800, spoken_ms=700)
    call.transcription_failed(u2)  # rule 2: failed leaves ""
    _, s2 = _answer(call, u2, G_A2, audio_every=3)
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=len(G_A2) * 62 + 700, spoken_ms=2000)
    r3 = call.response_created()
    call.rate_limits()
    s3 = call.start_message(r3, call.item_id(), u3, G_A3)
    call.stream(s3, 4, audio_every=3)
    call.transcription(u3, G_U3, completed_text="")  # deltas during the reply, then an empty completed
    call.stream(s3, audio_every=3)
    call.finish_message(s3)
    call.response_done(r3, "completed")
    u4 = call.item_id()
    call.user_turn(u4, s3.item, after_ms=len(G_A3) * 62 + 900, spoken_ms=1000)
    call.transcription(u4, G_U4)
    _, s4 = _answer(call, u4, G_A4, audio_every=3)
    return Recording(
        name="ga-empty-completed",
        events=call.events,
        expected=[
            Expected("user", G_U1, item_id=u1),
            Expected("assistant", G_A1, item_id=s1.item),
            Expected("user", "", item_id=u2),
            Expected("assistant", G_A2, item_id=s2.item),
            Expected("user", G_U3, item_id=u3),
            Expected("assistant", G_A3, item_id=s3.item),
            Expected("user", G_U4, item_id=u4),
            Expected("assistant", G_A4, item_id=s4.item),
        ],
        notes=(
            "GA WebSocket call: two transcriptions stream deltas and end with completed transcript '', one "
            "fails (conversation.item.input_audio_transcription.failed), one completes normally."
        ),
    )


# -- (h) responses that end incomplete ------------------------------------------

H_U1 = "Can you tell me the whole history of tea, from the very beginning?"
H_A1_PARTIAL = (
    "Tea's story starts in the hills of southwest China, where people chewed wild leaves long before "
    "anyone brewed them. Over the centuries it travelled along trade routes, and by the"
)
H_U2 = "Summarise the ending of that detective novel we talked about."
H_A2_PARTIAL = "Here's the ending in brief: the inspector finally realises that the"
H_U3 = "Actually, never mind."
H_U4 = "Let's talk about something else. What's a good herbal tea for the evening?"
H_A4 = "Chamomile is a classic, and lemon balm or rooibos are lovely too, none of them have caffeine."


def incomplete_responses_call() -> Recording:
    call = Call(7006, schema="ga", buffers="new")
    _open(call, instructions="You are a friendly tea sommelier.")
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1600, spoken_ms=3100)
    call.transcription(u1, H_U1)
    # The client capped this response at 48 output tokens.
    r1 = call.response_created(max_output_tokens=48)
    call.rate_limits()
    s1 = call.start_message(r1, call.item_id(), u1, H_A1_PARTIAL)
    call.stream(s1, 4)
    call.buffer("started", r1)
    call.stream(s1)
    call.finish_message(s1, "incomplete")
    call.response_done(r1, "incomplete", reason="max_output_tokens")
    call.buffer("stopped", r1)
    # A text response (the client asked for output_modalities ["text"]) stopped by the content filter.
    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(H_A1_PARTIAL) * 62 + 1500, spoken_ms=2600)
    call.transcription(u2, H_U2)
    r2 = call.response_created(modalities=("text",))
    call.rate_limits()
    s2 = call.start_message(r2, call.item_id(), u2, H_A2_PARTIAL, lane="text")
    call.stream(s2)
    call.finish_message(s2, "incomplete")
    call.response_done(r2, "incomplete", reason="content_filter")
    # The client cancels the next response before it produced anything: its
    # item is in the server's conversation but has no text.
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=6000, spoken_ms=1100)
    r3 = call.response_created()
    call.rate_limits()
    s3 = call.start_message(r3, call.item_id(), u3, "")
    call.transcription(u3, H_U3)
    call.finish_message(s3, "incomplete")
    call.response_done(r3, "cancelled", reason="client_cancelled")
    # The next user item follows the cancelled (textless) item.
    u4 = call.item_id()
    call.user_turn(u4, s3.item, after_ms=2500, spoken_ms=3300)
    call.transcription(u4, H_U4)
    _, s4 = _answer(call, u4, H_A4)
    return Recording(
        name="ga-incomplete-responses",
        events=call.events,
        expected=[
            Expected("user", H_U1, item_id=u1),
            Expected("assistant", H_A1_PARTIAL, incomplete=True, item_id=s1.item),  # rule 7: max_output_tokens
            Expected("user", H_U2, item_id=u2),
            Expected("assistant", H_A2_PARTIAL, incomplete=True, item_id=s2.item),  # rule 7: content_filter
            Expected("user", H_U3, item_id=u3),
            # rule 3: the client-cancelled item has no text and is dropped; u4 (announced after it) follows u3
            Expected("user", H_U4, item_id=u4),
            Expected("assistant", H_A4, item_id=s4.item),
        ],
        notes=(
            "GA WebRTC call: a spoken response cut by max_output_tokens, a text response stopped by the content "
            "filter, and a response the client cancelled before any content (its item has an empty transcript "
            "and is the predecessor of the next user item)."
        ),
    )


# -- (i) multi-part user content and an image ------------------------------------


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


LABEL_PNG = _png(6, 4, (183, 121, 31))
RECEIPT_PNG = _png(3, 5, (240, 240, 232))
I_C1 = ("I'm choosing between two pairs of hiking boots.", "Which kind is better for wet, muddy trails?")
I_A1 = "For wet and muddy trails, go for a waterproof membrane and deep lugs on the sole, they grip much better."
I_C2 = "Here's the label of the second pair."
I_A2 = "That label says the upper is waterproof leather with a membrane, so that pair should do well in the mud."
I_U3 = "Great, and how should I break them in?"
I_A3 = "Wear them around the house for a few days, then on short walks before any long hike."
I_C4 = "And this is the receipt, can I still return the first pair?"
I_A4 = "The receipt is dated nine days ago, so you're still inside the usual thirty-day return window."


def multipart_and_image_call() -> Recording:
    call = Call(7007, schema="ga", buffers=None)
    _open(call, instructions="You help customers of an outdoor gear shop.")
    label = "data:image/png;base64," + base64.b64encode(LABEL_PNG).decode()
    receipt = "data:image/png;base64," + base64.b64encode(RECEIPT_PNG).decode()
    call.wait(1.5)
    c1 = call.item_id()
    call.client_item(call.user_text(c1, *I_C1), None)  # two input_text parts, content_index 0 and 1
    _, s1 = _answer(call, c1, I_A1, audio_every=4)
    call.wait(6.0)
    c2 = call.item_id()
    typed = call.user_text(c2, I_C2)
    typed["content"].append({"type": "input_image", "image_url": label, "detail": "auto"})
    call.client_item(typed, s1.item)
    _, s2 = _answer(call, c2, I_A2, audio_every=4)
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=len(I_A2) * 62 + 1200, spoken_ms=1700)
    call.transcription(u3, I_U3)
    _, s3 = _answer(call, u3, I_A3, audio_every=4)
    call.wait(5.0)
    c4 = call.item_id()
    photo_first = {
        "id": c4,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [
            {"type": "input_image", "image_url": receipt, "detail": "high"},
            {"type": "input_text", "text": I_C4},
        ],
    }
    call.client_item(photo_first, s3.item)
    _, s4 = _answer(call, c4, I_A4, audio_every=4)
    return Recording(
        name="ga-multipart-and-image",
        events=call.events,
        expected=[
            Expected("user", "\n".join(I_C1), item_id=c1),  # rule 7: one message, parts joined by "\n"
            Expected("assistant", I_A1, item_id=s1.item),
            Expected("user", I_C2, item_id=c2),  # plus an Image block; the image adds no text
            Expected("assistant", I_A2, item_id=s2.item),
            Expected("user", I_U3, item_id=u3),
            Expected("assistant", I_A3, item_id=s3.item),
            Expected("user", I_C4, item_id=c4),  # image first, then the text
            Expected("assistant", I_A4, item_id=s4.item),
        ],
        notes=(
            "GA WebSocket call with client-created user messages: two input_text parts, text + input_image "
            "(a PNG data URL), image + text; and one spoken turn."
        ),
    )


# Messages that carry an Image block: (message index, media type, bytes).
IMAGES = {"ga-multipart-and-image": [(2, "image/png", LABEL_PNG), (6, "image/png", RECEIPT_PNG)]}


# -- (j) a reconnect, the history re-seeded under new ids, then new turns --------

J_U1 = "Hi, I'm planning a trip to Lisbon in March."
J_A1 = "Lovely choice! March is mild there, usually around seventeen degrees. How long are you staying?"
J_U2 = "Five days. What shouldn't I miss?"
J_A2 = "Take tram twenty-eight through Alfama early in the morning, and save an afternoon for Belém."
J_U3 = "Is a day trip to Sintra worth it?"
J_A3_PARTIAL = "Absolutely, Sintra is"  # the connection drops while this is generated
J_U4 = "Sorry, the line dropped. You were saying about Sintra?"
J_A4 = "No problem! Sintra is worth a full day: the palaces sit on a hill, so start early and take the bus up."
J_U5 = "Perfect, thank you."
J_A5 = "You're welcome, have a wonderful trip!"


def reconnect_reseed_call() -> Recording:
    call = Call(7008, schema="ga", buffers="new")
    _open(call, instructions="You are a travel companion with local tips.")
    u1 = call.item_id()
    call.user_turn(u1, None, after_ms=1700, spoken_ms=2300)
    call.transcription(u1, J_U1)
    _, s1 = _answer(call, u1, J_A1)
    u2 = call.item_id()
    call.user_turn(u2, s1.item, after_ms=len(J_A1) * 62 + 900, spoken_ms=1600)
    call.transcription(u2, J_U2)
    _, s2 = _answer(call, u2, J_A2)
    u3 = call.item_id()
    call.user_turn(u3, s2.item, after_ms=len(J_A2) * 62 + 1100, spoken_ms=1500)
    call.transcription(u3, J_U3)
    r3 = call.response_created()
    call.rate_limits()
    s3 = call.start_message(r3, call.item_id(), u3, J_A3_PARTIAL)
    call.stream(s3, 2)
    call.buffer("started", r3)
    call.stream(s3)
    # The connection drops here: no done events, no response.done.
    call.wait(4.0)
    call.new_connection()
    _open(call, instructions="You are a travel companion with local tips.")
    # Rule 6: the client re-seeds its history; the server gives every item a new id.
    previous: str | None = None
    for role, text in [
        ("user", J_U1),
        ("assistant", J_A1),
        ("user", J_U2),
        ("assistant", J_A2),
        ("user", J_U3),
        ("assistant", J_A3_PARTIAL),
    ]:
        item = call.item_id()
        call.client_item(call.user_text(item, text) if role == "user" else call.assistant_text(item, text), previous)
        previous = item
    u4 = call.item_id()
    call.user_turn(u4, previous, after_ms=2500, spoken_ms=2600)
    call.transcription(u4, J_U4)
    _, s4 = _answer(call, u4, J_A4)
    u5 = call.item_id()
    call.user_turn(u5, s4.item, after_ms=len(J_A4) * 62 + 800, spoken_ms=900)
    call.transcription(u5, J_U5)
    _, s5 = _answer(call, u5, J_A5)
    return Recording(
        name="ga-reconnect-reseed",
        events=call.events,
        expected=[
            Expected("user", J_U1),
            Expected("assistant", J_A1),
            Expected("user", J_U2),
            Expected("assistant", J_A2),
            Expected("user", J_U3),
            # rule 6: in flight when the second session.created arrived: closed incomplete with its deltas;
            # the re-seeded copy (same role and text) is recognised, not added again
            Expected("assistant", J_A3_PARTIAL, incomplete=True),
            Expected("user", J_U4, item_id=u4),
            Expected("assistant", J_A4, item_id=s4.item),
            Expected("user", J_U5, item_id=u5),
            Expected("assistant", J_A5, item_id=s5.item),
        ],
        notes=(
            "GA WebRTC call whose connection drops while a reply is generated; a second session.created, the "
            "client re-seeds the six messages with conversation.item.create (new ids, input_text/output_text), "
            "then two new spoken turns follow the last re-seeded item."
        ),
    )
