"""Beta-schema WebRTC calls: a long call with transcription off, full of
barge-ins and rate-limit failures, and a short call re-serialised by an SDK
with explicit nulls. Scripts and words are this project's own."""

from __future__ import annotations

import random

from tests.recordings._build import Call, normalised, tokenize
from tests.recordings._model import Expected, Recording

INSTRUCTIONS = (
    "You are a relaxed, curious conversation partner. Keep answers short and spoken, ask a question back now "
    "and then, and never read out lists longer than three things."
)

# Sentences an assistant says in the long call (written for these fixtures).
SENTENCES = [
    "Hi! I'm doing well, thanks.",
    "How has your day been so far?",
    "That sounds like a busy morning.",
    "Sure, take all the time you need.",
    "Whenever you're ready, I'm listening.",
    "Sourdough is mostly patience, really.",
    "The starter wants flour and water every day, at about the same time.",
    "If it doubles within six hours, it's ready to bake with.",
    "A cold proof overnight in the fridge makes the crust blister nicely.",
    "Good question!",
    "I think the short answer is yes, but it depends on the oven.",
    "A baking stone holds heat much better than a thin tray.",
    "Steam in the first twenty minutes lets the loaf rise before the crust sets.",
    "Oh, the hiking trip!",
    "The ridge trail is about eleven kilometres with a steep first hour.",
    "Starting before eight usually keeps you out of the midday heat.",
    "Bring more water than you think, there's no spring after the hut.",
    "The view from the second saddle is worth the climb.",
    "If the weather turns, the forest path back down is much safer.",
    "Ha, fair enough.",
    "I can't actually see the map, but I can describe the usual route.",
    "Most people turn left at the old quarry and follow the stream.",
    "Learning the guitar as an adult is completely doable.",
    "Fifteen minutes a day beats two hours on a Sunday.",
    "Start with three chords, G, C and D, and you can already play hundreds of songs.",
    "Your fingertips will hurt for a couple of weeks, and then they toughen up.",
    "A metronome feels annoying at first but it fixes your timing fast.",
    "Do you already have a guitar, or are you still choosing one?",
    "Nylon strings are gentler on the fingers than steel ones.",
    "That's a lovely idea.",
    "Houseplants mostly die from too much water, not too little.",
    "Let the top few centimetres of soil dry out before watering again.",
    "A snake plant will forgive almost anything, even a dark corner.",
    "Yellow leaves near the bottom are usually just old leaves retiring.",
    "Would you like a few tips for the balcony as well?",
    "Sorry, I didn't quite catch that.",
    "Could you say that one more time?",
    "No worries at all.",
    "Right, let me think about that for a second.",
    "The quickest way is probably the train, then a short walk from the station.",
    "On weekends the trains run every half hour instead of every fifteen minutes.",
    "I'd double-check the timetable the evening before, just in case.",
    "Honestly, both options are good, it comes down to what you enjoy more.",
    "If I had to pick one, I'd pick the one with the lake.",
    "Swimming there is allowed from June, when the lifeguards start.",
    "That's all I know about it, I'm afraid.",
    "Is there anything else on your mind?",
    "It was fun chatting with you.",
]

# Outcomes of the 54 responses of the long call, in the proportions of a
# recorded ten-minute call: C completed with an item, P cancelled by a
# barge-in with a partial item, X incomplete (content_filter) with an item,
# E cancelled by a barge-in before any output, F failed (rate limit).
OUTCOMES = {"C": 18, "P": 2, "X": 1, "E": 17, "F": 16}


def _plan(rng: random.Random) -> list[str]:
    """A shuffled order of the outcomes: the call opens with a full answer
    and ends with a failure (as the recorded one did); runs of failed or
    cancelled-empty responses give runs of two to six consecutive user
    items, the longest of exactly six."""
    pool = [kind for kind, count in OUTCOMES.items() for _ in range(count)]
    pool.remove("C")
    pool.remove("F")
    while True:
        rng.shuffle(pool)
        plan = ["C", *pool, "F"]
        runs, run = [], 0
        for kind in plan:
            if kind in "EF":
                run += 1
            else:
                runs.append(run)
                run = 0
        runs.append(run)
        if max(runs) == 5 and plan[-2] in "CX":
            return plan


def _reply(rng: random.Random, deltas: int) -> str:
    """Consecutive sentences making about ``deltas`` deltas."""
    start = rng.randrange(len(SENTENCES))
    words: list[str] = []
    count = 0
    index = start
    while count < deltas:
        sentence = SENTENCES[index % len(SENTENCES)]
        words.append(sentence)
        count += len(tokenize(sentence, random.Random(0)))
        index += 1
    return " ".join(words)


def _reply_sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """Delta counts of ``count`` full replies, 10 to 100 each (mostly short,
    a few long), scaled to about ``total`` together."""
    sizes = [
        rng.randint(*rng.choices([(10, 28), (22, 46), (40, 80), (70, 100)], weights=[3, 4, 3, 1])[0])
        for _ in range(count)
    ]
    scale = total / sum(sizes)
    return [min(100, max(10, round(size * scale))) for size in sizes]


def _rate_limit_error(rng: random.Random, org: str) -> dict[str, str]:
    used, requested = rng.randint(12000, 19000), rng.randint(4000, 9000)
    wait = round(rng.uniform(1.5, 9.0), 3)
    return {
        "type": "tokens",
        "code": "rate_limit_exceeded",
        "message": f"Rate limit reached for gpt-4o-realtime in organization {org} on tokens per min (TPM): "
        f"Limit 20000, Used {used}, Requested {requested}. Please try again in {wait}s.",
    }


def ten_minute_call() -> Recording:
    call = Call(20250125, schema="beta", buffers="old")
    rng = call.rng
    org = "org-" + call.ids.token(24)
    plan = _plan(rng)
    sizes = iter(_reply_sizes(rng, plan.count("C"), 590))
    call.session("created", transcription=None, instructions=INSTRUCTIONS)
    call.session("updated", transcription=None, instructions=INSTRUCTIONS)
    expected: list[Expected] = []
    last: str | None = None  # the conversation's last item
    started: str | None = None  # a user item whose speech_started a barge-in already sent
    playing = None  # a response whose audio was still playing when the user spoke again
    after_ms = rng.randint(1500, 2500)
    for turn, outcome in enumerate(plan):
        user = started or call.item_id()
        if started is None:
            call.speech_started(user, after_ms=after_ms)
            if playing is not None:
                call.buffer("cleared", playing)
                playing = None
        started = None
        call.speech_stopped(user, spoken_ms=rng.randint(350, 3000))
        call.committed(user, last)
        call.user_audio_item(user, last)
        expected.append(Expected("user", "", item_id=user))  # transcription is off: never any text
        last = user
        response = call.response_created()
        if outcome == "F":
            call.response_done(response, "failed", error=_rate_limit_error(rng, org))
            after_ms = rng.randint(1500, 14000)
            continue
        if outcome == "E":
            started = call.item_id()
            call.speech_started(started, after_ms=rng.randint(32, 700))
            call.response_done(response, "cancelled", reason="turn_detected")  # output: [], adds nothing
            continue
        call.rate_limits(requests=(100, 99), tokens=20000)
        assistant = call.item_id()
        if outcome == "P":
            text = "".join(tokenize(_reply(rng, 20), rng)[: rng.randint(5, 11)])
        else:
            text = _reply(rng, rng.randint(50, 60) if outcome == "X" else next(sizes))
        speech = call.start_message(response, assistant, user, text)
        call.stream(speech, rng.randint(2, 4) if outcome == "P" else rng.randint(2, 7))
        call.buffer("started", response)
        call.stream(speech)
        playback_ms = len(text) * 62
        if outcome == "P":  # the user speaks while the reply is still being generated
            started = call.item_id()
            call.speech_started(started, after_ms=rng.randint(300, 1200))
            call.buffer("cleared", response)
            call.finish_message(speech, "incomplete")
            call.response_done(response, "cancelled", reason="turn_detected")
        elif outcome == "X":
            call.finish_message(speech, "incomplete")
            call.response_done(response, "incomplete", reason="content_filter")
            playing = response
            after_ms = rng.randint(playback_ms // 3, playback_ms)
        else:
            call.finish_message(speech, "completed")
            call.response_done(response, "completed")
            if turn + 1 < len(plan) and rng.random() < 0.25:  # the user talks over the end of the reply
                playing = response
                after_ms = rng.randint(playback_ms // 3, playback_ms * 9 // 10)
            else:
                call.wait(playback_ms / 1000)
                call.buffer("stopped", response)
                after_ms = playback_ms + rng.randint(400, 9000)
        # Rule 3: a cancelled (P) or incomplete (X) response keeps its item's text, marked incomplete.
        expected.append(Expected("assistant", text, incomplete=outcome in "PX", item_id=assistant))
        last = assistant
    return Recording(
        name="webrtc-beta-ten-minutes",
        events=call.events,
        expected=expected,
        notes=(
            "Beta WebRTC call with input transcription off (session says input_audio_transcription: null): every "
            "user item is a message with text ''. 54 user items; 21 responses with an item (18 completed, 2 "
            "cancelled by a barge-in with a partial item, 1 incomplete by content_filter); 17 responses cancelled "
            "by a barge-in before any output and 16 failed by rate_limit_exceeded, both with output []. Outcome "
            "order: " + "".join(plan)
        ),
    )


GREETING = "Hey! Good to hear from you. What can I help you with today?"
REPLY_1 = "I'm great, thanks for asking! I've been looking forward to a good chat. How's your week going?"
REPLY_3 = (
    "Oh, that sounds exhausting. A slow evening with a book or a walk might be exactly what you need. "
    "Anything fun planned for the weekend?"
)
PARTIAL_4 = "Camping by the lake sounds wonderful! Just remember the nights there"
REPLY_5 = "Of course, go ahead. I'm all ears."


def normalised_call() -> Recording:
    call = Call(20250211, schema="beta", buffers="new", long_ids=0.15)
    rng = call.rng
    call.session("created", transcription=None, instructions=INSTRUCTIONS, voice="ash")
    call.session("updated", transcription=None, instructions=INSTRUCTIONS, voice="ash")

    def answer(response_previous: str | None, text: str) -> str:
        response = call.response_created()
        call.rate_limits(requests=(20000, 19999), tokens=15000000)
        item = call.item_id()
        speech = call.start_message(response, item, response_previous, text)
        call.stream(speech, rng.randint(4, 7))
        call.buffer("started", response)
        call.stream(speech)
        call.finish_message(speech)
        call.response_done(response, "completed")
        call.buffer("stopped", response)
        return item

    # The client asks for a greeting right after connecting: the first item has no predecessor.
    a0 = answer(None, GREETING)
    u1 = call.item_id()
    call.user_turn(u1, a0, after_ms=6000, spoken_ms=1100)
    a1 = answer(u1, REPLY_1)
    u2 = call.item_id()
    call.user_turn(u2, a1, after_ms=4200, spoken_ms=380)
    cancelled = call.response_created()
    u3 = call.item_id()
    call.speech_started(u3, after_ms=96)  # the user goes on talking: the response is cancelled, output []
    call.response_done(cancelled, "cancelled", reason="turn_detected")
    call.speech_stopped(u3, spoken_ms=640)
    call.committed(u3, u2)
    call.user_audio_item(u3, u2)
    a3 = answer(u3, REPLY_3)
    u4 = call.item_id()
    call.user_turn(u4, a3, after_ms=9000, spoken_ms=2300)
    interrupted = call.response_created()
    call.rate_limits(requests=(20000, 19999), tokens=15000000)
    a4 = call.item_id()
    speech = call.start_message(interrupted, a4, u4, PARTIAL_4)
    call.stream(speech, 5)
    call.buffer("started", interrupted)
    call.stream(speech)
    u5 = call.item_id()
    call.speech_started(u5, after_ms=1400)  # barge-in while the reply is generated
    call.buffer("cleared", interrupted)
    call.finish_message(speech, "incomplete")
    call.response_done(interrupted, "cancelled", reason="turn_detected")
    call.speech_stopped(u5, spoken_ms=900)
    call.committed(u5, a4)
    call.user_audio_item(u5, a4)
    a5 = answer(u5, REPLY_5)
    return Recording(
        name="webrtc-beta-normalised",
        events=[normalised(event) for event in call.events],
        expected=[
            Expected("assistant", GREETING, item_id=a0),
            Expected("user", "", item_id=u1),
            Expected("assistant", REPLY_1, item_id=a1),
            Expected("user", "", item_id=u2),  # its response was cancelled with output []: nothing added
            Expected("user", "", item_id=u3),
            Expected("assistant", REPLY_3, item_id=a3),
            Expected("user", "", item_id=u4),
            Expected("assistant", PARTIAL_4, incomplete=True, item_id=a4),  # rule 3: cancelled, partial text kept
            Expected("user", "", item_id=u5),
            Expected("assistant", REPLY_5, item_id=a5),
        ],
        notes=(
            "Short beta WebRTC call re-serialised through a client SDK: every optional field present as null "
            "(items' arguments/call_id/name/output, content parts' id/audio/text, status_details.error, an error "
            "field on output_audio_buffer events), keys sorted, some ids one character longer. Transcription off; "
            "the call opens with a client-requested greeting whose item has previous_item_id null."
        ),
    )
