"""Realtime transcript ingestion: ``python -m benchmarks.realtime``.

The workload is a generated (seeded, deterministic) OpenAI Realtime GA
server-event stream of a voice conversation: per turn the committed user
audio, the user item, a response whose assistant item streams its spoken
transcript as many ``response.output_audio_transcript.delta`` events, the
``.done``/``response.done`` events, and the user's input transcription, which
arrives before the response, during it or after it (a late transcription).

Measured, each over ``--runs`` runs (medians shown, ``time.perf_counter``,
only the measured loop timed):

1. the reducer: folding the pre-translated canonical events from a fresh
   ``RealtimeState`` with the pure ``reduce`` (a copy of the state per event)
   and with the in-place ``apply`` the store uses; and, as information, the
   adapter plus reducer (``translate`` + ``apply``) from the raw dicts;
2. persisted ingestion: ``Transcripts.ingest_many`` in calls of 100 raw
   events into a fresh SQLite file (``synchronous=FULL``, the default), and
   in memory as information;
3. the cost of a duplicate: during a call (the last turn's response in
   flight), the accepted events the ingestion state still remembers are
   ingested again one by one with ``Transcripts.ingest``, timed, with the
   stored rows and bytes compared before and after; and, once and untimed,
   every accepted event of the whole stream is sent again to count what that
   stores.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import string
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._report import (
    Line,
    format_table,
    machine_line,
    median,
    part_document,
    print_report,
    progress,
    targets_met,
    write_json,
)
from benchmarks.suite import ENGINE_EVENTS_TABLE, in_calls, runs_from_args, stored_rows
from engine import Transcripts
from engine.realtime import RealtimeEvent, RealtimeState, reduce
from engine.realtime.providers.openai import Rejected, translate
from engine.realtime.reducer import apply

__all__ = ["Config", "build_stream", "main", "run"]

BATCH = 100  # raw events per ingest_many call in (2)
PROVIDER = "openai"
SNAPSHOTS_TABLE = "transcripts_snapshots"
DUPLICATE_CALLS = 2000  # duplicate ingests timed per run (the remembered set, repeated)
SMALL_TURNS = 20  # (1) also folds the first 20 turns alone

REDUCER_TARGET = 100_000.0  # canonical events/s through the reducer
PERSISTED_TARGET = 20_000.0  # raw events/s into SQLite
DUPLICATE_TARGET_US = 10.0  # microseconds per duplicate

_SPEECH = (
    "sure I can help with that the order you placed on Tuesday is already on its way and should arrive "
    "by Friday afternoon if you want I can also change the delivery address or send you a tracking link "
    "by text message let me check the details of your account first it looks like the payment went "
    "through without any problem so there is nothing else you need to do right now is there anything "
    "else I can do for you today"
)
_WORDS = tuple(_SPEECH.split())
_USER_LINES = (
    "Hi, I'm calling about my order from last week.",
    "Can you tell me when it will arrive?",
    "Yes, please send me the tracking link.",
    "Actually, can I change the delivery address?",
    "It should go to my office instead.",
    "Great, and was the payment processed?",
    "Okay, thanks. One more question about returns.",
    "No, that's all for today. Thank you!",
)
_ID_ALPHABET = string.ascii_letters + string.digits


# -- configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    runs: int = 5
    turns: int = 200
    seed: int = 20250101
    min_deltas: int = 40
    max_deltas: int = 80
    quick: bool = False


# -- workload ---------------------------------------------------------------------


@dataclass
class Stream:
    events: list[dict[str, Any]]
    turns: int
    user_texts: list[str]
    assistant_texts: list[str]
    late_transcriptions: int
    turn_starts: list[int]  # index of each turn's first event
    cut: int  # events[:cut] ends in the middle of the last turn's deltas: its response in flight

    def first_turns(self, count: int) -> list[dict[str, Any]]:
        return self.events[: self.turn_starts[count]] if count < self.turns else list(self.events)

    def counts(self) -> Counter[str]:
        return Counter(str(event["type"]) for event in self.events)


def build_stream(turns: int, seed: int, min_deltas: int = 40, max_deltas: int = 80) -> Stream:
    """The server events of a ``turns``-turn voice conversation, in arrival
    order. Deterministic for a given seed."""
    rng = random.Random(seed)
    used: set[str] = set()

    def new_id(prefix: str) -> str:
        while True:
            candidate = prefix + "".join(rng.choices(_ID_ALPHABET, k=21))
            if candidate not in used:
                used.add(candidate)
                return candidate

    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "event_id": new_id("event_"), **fields})

    emit("session.created", session={"type": "realtime", "object": "realtime.session", "id": new_id("sess_")})
    user_texts: list[str] = []
    assistant_texts: list[str] = []
    late = 0
    turn_starts: list[int] = []
    cut = 0
    previous: str | None = None
    for turn in range(turns):
        turn_starts.append(len(events))
        user_id, assistant_id, response_id = new_id("item_"), new_id("item_"), new_id("resp_")
        user_text = _USER_LINES[turn % len(_USER_LINES)]
        words = [rng.choice(_WORDS) for _ in range(rng.randint(min_deltas, max_deltas))]
        deltas = [words[0].capitalize()] + [" " + word for word in words[1:]]
        deltas[-1] += "."
        transcript = "".join(deltas)
        user_texts.append(user_text)
        assistant_texts.append(transcript)
        # When the input transcription arrives: before the response, during
        # it, or after it (late: the user message is then placed without text
        # and the transcript lands in its place).
        when = rng.choices(("before", "during", "after"), weights=(5, 3, 2))[0]
        late += when == "after"

        def transcription(user_id: str = user_id, user_text: str = user_text) -> None:
            emit(
                "conversation.item.input_audio_transcription.completed",
                item_id=user_id,
                content_index=0,
                transcript=user_text,
                usage={"type": "duration", "seconds": round(rng.uniform(1.0, 6.0), 1)},
            )

        emit("input_audio_buffer.committed", previous_item_id=previous, item_id=user_id)
        emit(
            "conversation.item.added",
            previous_item_id=previous,
            item={
                "id": user_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
        )
        if when == "before":
            transcription()
        emit(
            "response.created",
            response={"id": response_id, "object": "realtime.response", "status": "in_progress", "output": []},
        )
        in_progress = {
            "id": assistant_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        emit("response.output_item.added", response_id=response_id, output_index=0, item=in_progress)
        emit("conversation.item.added", previous_item_id=user_id, item=in_progress)
        middle = len(deltas) // 2
        for index, delta in enumerate(deltas):
            if index == middle and when == "during":
                transcription()
            emit(
                "response.output_audio_transcript.delta",
                response_id=response_id,
                item_id=assistant_id,
                output_index=0,
                content_index=0,
                delta=delta,
            )
            if index == middle:
                cut = len(events)
        emit(
            "response.output_audio_transcript.done",
            response_id=response_id,
            item_id=assistant_id,
            output_index=0,
            content_index=0,
            transcript=transcript,
        )
        done_item = {
            **in_progress,
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": transcript}],
        }
        emit("conversation.item.done", previous_item_id=user_id, item=done_item)
        emit("response.output_item.done", response_id=response_id, output_index=0, item=done_item)
        input_tokens = 200 + 90 * turn
        output_tokens = 4 * len(deltas)
        emit(
            "response.done",
            response={
                "id": response_id,
                "object": "realtime.response",
                "status": "completed",
                "output": [done_item],
                "usage": {
                    "total_tokens": input_tokens + output_tokens,
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "input_token_details": {
                        "cached_tokens": max(0, input_tokens - 300),
                        "text_tokens": 120,
                        "audio_tokens": input_tokens - 120,
                    },
                    "output_token_details": {"text_tokens": len(deltas), "audio_tokens": 3 * len(deltas)},
                },
            },
        )
        if when == "after":
            transcription()
        previous = assistant_id
    return Stream(events, turns, user_texts, assistant_texts, late, turn_starts, cut)


def canonical_events(raw_events: Sequence[object]) -> list[RealtimeEvent]:
    """What the adapter makes of the raw events (ignored types yield none)."""
    out: list[RealtimeEvent] = []
    for raw in raw_events:
        translated = translate(raw)
        if not isinstance(translated, list):
            if isinstance(translated, Rejected):
                raise AssertionError(f"the adapter rejected {raw!r}: {translated}")
            continue
        out.extend(translated)
    return out


# -- stored bytes -------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    rows: int
    nbytes: int
    snapshots: int
    snapshot_bytes: int
    version: int


def stored(path: str, store: Transcripts, session_id: str) -> Stored:
    rows, nbytes = stored_rows(path, ENGINE_EVENTS_TABLE)
    snapshots, snapshot_bytes = stored_rows(path, SNAPSHOTS_TABLE)
    return Stored(rows, nbytes, snapshots, snapshot_bytes, store.get(session_id).version)


# -- the untimed check of the workload ------------------------------------------------------


@dataclass
class Check:
    raw_events: int
    canonical_events: int
    ignored_raw: int
    statuses: dict[str, int]
    messages: int
    stored_rows: int
    stored_bytes: int
    accepted_raw: int
    redelivery_statuses: dict[str, int]  # every accepted raw event sent again after the whole stream
    redelivery_rows: int
    redelivery_bytes: int


def check_stream(stream: Stream, tmp: str) -> Check:
    """Ingest the whole stream once (untimed): two messages per turn with the
    expected texts, nothing rejected. Then send every accepted event again and
    count what that stores."""
    path = os.path.join(tmp, "check.db")
    store = Transcripts.open(path)
    try:
        sid = store.create(title="realtime check")
        outcomes = store.ingest_many(sid, stream.events, provider=PROVIDER)
        statuses = Counter(outcome.status for outcome in outcomes)
        if statuses["rejected"]:
            reasons = {outcome.reason for outcome in outcomes if outcome.status == "rejected"}
            raise AssertionError(f"{statuses['rejected']} events rejected: {sorted(map(str, reasons))[:3]}")
        session = store.get(sid)
        expected = [text for pair in zip(stream.user_texts, stream.assistant_texts, strict=True) for text in pair]
        roles = [message.role for message in session.messages]
        if len(session.messages) != 2 * stream.turns or roles != ["user", "assistant"] * stream.turns:
            raise AssertionError(f"{len(session.messages)} messages ({roles[:4]}...), expected {2 * stream.turns}")
        texts = [message.text for message in session.messages]
        if texts != expected:
            wrong = next(index for index, (a, b) in enumerate(zip(texts, expected, strict=True)) if a != b)
            raise AssertionError(f"message {wrong}: {texts[wrong]!r}, expected {expected[wrong]!r}")
        before = stored(path, store, sid)
        accepted = [raw for raw, outcome in zip(stream.events, outcomes, strict=True) if outcome.status != "ignored"]
        redelivered = store.ingest_many(sid, accepted, provider=PROVIDER)
        after = stored(path, store, sid)
    finally:
        store.close()
    return Check(
        raw_events=len(stream.events),
        canonical_events=len(canonical_events(stream.events)),
        ignored_raw=statuses["ignored"],
        statuses=dict(statuses),
        messages=len(session.messages),
        stored_rows=before.rows,
        stored_bytes=before.nbytes,
        accepted_raw=len(accepted),
        redelivery_statuses=dict(Counter(outcome.status for outcome in redelivered)),
        redelivery_rows=after.rows - before.rows,
        redelivery_bytes=after.nbytes - before.nbytes,
    )


# -- the reducer folds ---------------------------------------------------------------------


def fold_reduce(canonical: Sequence[RealtimeEvent]) -> RealtimeState:
    state = RealtimeState()
    for event in canonical:
        state, _ = reduce(state, event)
    return state


def fold_apply(canonical: Sequence[RealtimeEvent]) -> RealtimeState:
    state = RealtimeState()
    for event in canonical:
        apply(state, event)
    return state


def fold_translate_apply(raw_events: Sequence[object]) -> RealtimeState:
    state = RealtimeState()
    for raw in raw_events:
        translated = translate(raw)
        if isinstance(translated, list):
            for event in translated:
                apply(state, event)
    return state


# -- the duplicates workload -----------------------------------------------------------------


@dataclass
class Duplicates:
    """Redelivery during a call: the session holds every turn but the last,
    whose response is in flight (half its deltas in); the accepted raw events
    whose every event id the ingestion state still holds are sent again."""

    prefix: list[dict[str, Any]]  # what the session was built from
    raw: list[dict[str, Any]]  # the remembered raw events, in stream order
    canonical: list[RealtimeEvent]  # their canonical events
    state: RealtimeState  # the reducer's state after the prefix

    @classmethod
    def of(cls, stream: Stream) -> Duplicates:
        prefix = stream.events[: stream.cut]
        state = fold_apply(canonical_events(prefix))
        raw = []
        for event in prefix:
            translated = translate(event)
            if (
                isinstance(translated, list)
                and translated
                and all(item.event_id in state.event_ids for item in translated)
            ):
                raw.append(event)
        canonical = canonical_events(raw)
        for item in canonical:
            if apply(state, item).status != "duplicate":
                raise AssertionError(f"the reducer did not see {item.event_id} as a duplicate")
        if not raw:
            raise AssertionError("no accepted event is remembered")
        return cls(prefix, raw, canonical, state)

    def kinds(self) -> Counter[str]:
        return Counter(str(event["type"]) for event in self.raw)


def _repeat(items: Sequence[Any], calls: int) -> list[Any]:
    """``items`` repeated to at least ``calls`` entries (whole passes)."""
    passes = max(1, -(-calls // max(1, len(items))))
    return list(items) * passes


def _built(store: Transcripts, prefix: Sequence[dict[str, Any]]) -> str:
    """A session holding ``prefix`` (untimed), every event of it accepted or ignored."""
    sid = store.create(title="realtime duplicates")
    for call in in_calls(prefix, BATCH):
        for outcome in store.ingest_many(sid, call, provider=PROVIDER):
            if outcome.status == "rejected":
                raise AssertionError(f"rejected while building: {outcome.reason}")
    return sid


def _confirm_duplicates(store: Transcripts, sid: str, raw: Sequence[dict[str, Any]]) -> None:
    for event in raw:  # untimed: every one is recognised
        outcome = store.ingest(sid, event, provider=PROVIDER)
        if outcome.status != "duplicate":
            raise AssertionError(f"{event['type']} {event['event_id']}: {outcome.status} ({outcome.reason})")


# -- one run ----------------------------------------------------------------------------------


def _timed(body: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    body()
    return time.perf_counter() - start


@dataclass
class RunResult:
    reduce_s: float  # (1), (2): seconds for the whole stream
    apply_s: float
    reduce_small_s: float  # the first SMALL_TURNS turns only
    apply_small_s: float
    translate_apply_s: float
    sqlite_s: float
    memory_s: float
    duplicate_ingest_s: float  # (3): seconds per duplicate, ingest() one by one, SQLite
    duplicate_ingest_memory_s: float
    duplicate_batch_s: float  # per duplicate, ingest_many in calls of 100, SQLite
    duplicate_reduce_s: float  # per canonical duplicate, reduce()
    duplicate_apply_s: float  # per canonical duplicate, apply()
    bytes_before: Stored
    bytes_after: Stored


def one_run(
    stream: Stream, canonical: Sequence[RealtimeEvent], small: Sequence[RealtimeEvent], duplicates: Duplicates
) -> RunResult:
    raw_events = stream.events
    # (1) the reducer
    reduce_s = _timed(lambda: fold_reduce(canonical))
    apply_s = _timed(lambda: fold_apply(canonical))
    reduce_small_s = _timed(lambda: fold_reduce(small))
    apply_small_s = _timed(lambda: fold_apply(small))
    translate_apply_s = _timed(lambda: fold_translate_apply(raw_events))

    # (2) persisted
    calls = in_calls(raw_events, BATCH)
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp:
        store = Transcripts.open(os.path.join(tmp, "stream.db"))  # synchronous=full, the default
        try:
            sid = store.create(title="realtime bench")
            ingest_many = store.ingest_many
            sqlite_s = _timed(lambda: [ingest_many(sid, call, provider=PROVIDER) for call in calls])
        finally:
            store.close()
    memory = Transcripts.open()
    try:
        sid = memory.create(title="realtime bench")
        memory_ingest_many = memory.ingest_many
        memory_s = _timed(lambda: [memory_ingest_many(sid, call, provider=PROVIDER) for call in calls])
    finally:
        memory.close()

    # (3) duplicates
    state = duplicates.state
    reducer_events = _repeat(duplicates.canonical, DUPLICATE_CALLS)

    def reduce_duplicates() -> None:
        for event in reducer_events:
            reduce(state, event)

    def apply_duplicates() -> None:
        for event in reducer_events:
            apply(state, event)

    duplicate_reduce_s = _timed(reduce_duplicates) / len(reducer_events)
    duplicate_apply_s = _timed(apply_duplicates) / len(reducer_events)

    repeated = _repeat(duplicates.raw, DUPLICATE_CALLS)
    repeated_calls = in_calls(repeated, BATCH)
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp:
        path = os.path.join(tmp, "duplicates.db")
        store = Transcripts.open(path)
        try:
            sid = _built(store, duplicates.prefix)
            _confirm_duplicates(store, sid, duplicates.raw)
            bytes_before = stored(path, store, sid)
            ingest, ingest_many = store.ingest, store.ingest_many

            def ingest_one_by_one() -> None:
                for event in repeated:
                    ingest(sid, event, provider=PROVIDER)

            def ingest_in_calls() -> None:
                for call in repeated_calls:
                    ingest_many(sid, call, provider=PROVIDER)

            duplicate_ingest_s = _timed(ingest_one_by_one) / len(repeated)
            duplicate_batch_s = _timed(ingest_in_calls) / len(repeated)
            bytes_after = stored(path, store, sid)
        finally:
            store.close()
    memory = Transcripts.open()
    try:
        sid = _built(memory, duplicates.prefix)
        _confirm_duplicates(memory, sid, duplicates.raw)
        memory_ingest = memory.ingest

        def memory_one_by_one() -> None:
            for event in repeated:
                memory_ingest(sid, event, provider=PROVIDER)

        duplicate_ingest_memory_s = _timed(memory_one_by_one) / len(repeated)
    finally:
        memory.close()
    return RunResult(
        reduce_s,
        apply_s,
        reduce_small_s,
        apply_small_s,
        translate_apply_s,
        sqlite_s,
        memory_s,
        duplicate_ingest_s,
        duplicate_ingest_memory_s,
        duplicate_batch_s,
        duplicate_reduce_s,
        duplicate_apply_s,
        bytes_before,
        bytes_after,
    )


# -- the table ---------------------------------------------------------------------------


def _rate_line(name: str, short: str, count: int, seconds: Sequence[float], minimum: float | None) -> Line:
    rate = count / median(seconds)
    spread = (count / max(seconds), count / min(seconds))
    if minimum is None:
        return Line(name, "events/s", rate, target="(info)", spread=spread, short=short)
    return Line(
        name, "events/s", rate, target=f">= {minimum:,.0f} events/s", met=rate >= minimum, spread=spread, short=short
    )


def _us_line(name: str, short: str, seconds: Sequence[float], maximum: float | None) -> Line:
    micros = [value * 1e6 for value in seconds]
    micros_median = median(micros)
    spread = (min(micros), max(micros))
    if maximum is None:
        return Line(name, "us", micros_median, target="(info)", spread=spread, short=short)
    return Line(
        name, "us", micros_median, target=f"<= {maximum:g} µs", met=micros_median <= maximum, spread=spread, short=short
    )


def build_lines(
    stream: Stream, check: Check, small_count: int, duplicates: Duplicates, runs: Sequence[RunResult]
) -> list[Line]:
    n_raw, n_canonical = check.raw_events, check.canonical_events

    def col(name: str) -> list[float]:
        return [float(getattr(run, name)) for run in runs]

    lines = [
        _rate_line(
            f"(1) pure reduce(), {n_canonical:,} canonical events, {stream.turns} turns",
            "(1) reduce",
            n_canonical,
            col("reduce_s"),
            REDUCER_TARGET,
        ),
        _rate_line(
            "    in-place apply() (what the store uses)", "(1) apply", n_canonical, col("apply_s"), REDUCER_TARGET
        ),
    ]
    if small_count < n_canonical:
        lines += [
            _rate_line(
                f"    reduce(), first {SMALL_TURNS} turns only ({small_count:,} events)",
                "",
                small_count,
                col("reduce_small_s"),
                None,
            ),
            _rate_line(f"    apply(), first {SMALL_TURNS} turns only", "", small_count, col("apply_small_s"), None),
        ]
    changed = [(run.bytes_after, run.bytes_before) for run in runs]
    unchanged = all(
        (after.rows, after.nbytes, after.version, after.snapshots, after.snapshot_bytes)
        == (before.rows, before.nbytes, before.version, before.snapshots, before.snapshot_bytes)
        for after, before in changed
    )
    lines += [
        _rate_line(
            f"    translate()+apply() from {n_raw:,} raw dicts (raw ev/s)", "", n_raw, col("translate_apply_s"), None
        ),
        _rate_line(
            f"(2) SQLite ingest_many, calls of {BATCH}, {n_raw:,} raw events",
            "(2) sqlite",
            n_raw,
            col("sqlite_s"),
            PERSISTED_TARGET,
        ),
        _rate_line("    same, in memory", "", n_raw, col("memory_s"), None),
        _us_line(
            f"(3) duplicate via ingest(), SQLite, {len(duplicates.raw)} recent events",
            "(3) ingest",
            col("duplicate_ingest_s"),
            DUPLICATE_TARGET_US,
        ),
        Line(
            "    stored bytes added by those duplicates (max, all runs)",
            "B",
            float(max(after.nbytes - before.nbytes for after, before in changed)),
            target="0 B",
            met=unchanged,
            short="(3) bytes, recent",
        ),
        _us_line("    duplicate via ingest(), in memory", "", col("duplicate_ingest_memory_s"), None),
        _us_line(f"    duplicate via ingest_many(), calls of {BATCH}, per event", "", col("duplicate_batch_s"), None),
        _us_line("    duplicate through reduce() only, per canonical event", "", col("duplicate_reduce_s"), None),
        _us_line("    duplicate through apply() only, per canonical event", "", col("duplicate_apply_s"), None),
        Line(
            f"(3) all {check.accepted_raw:,} accepted events sent again: bytes stored",
            "B",
            float(check.redelivery_bytes),
            target="0 B",
            met=check.redelivery_bytes == 0 and check.redelivery_rows == 0,
            short="(3) bytes, whole stream",
        ),
    ]
    return lines


def _counts(counts: dict[str, int] | Counter[str]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def notes(config: Config, stream: Stream, check: Check, duplicates: Duplicates, runs: Sequence[RunResult]) -> list[str]:
    counts = stream.counts()
    deltas = counts["response.output_audio_transcript.delta"]
    n_raw = len(stream.events)
    first = runs[0]
    before, after = first.bytes_before, first.bytes_after
    return [
        f"stream: {n_raw:,} raw OpenAI Realtime GA server events (generated, seed {config.seed}), {stream.turns} "
        f"turns, {deltas:,} audio-transcript deltas ({100 * deltas / n_raw:.1f}%; {config.min_deltas}-"
        f"{config.max_deltas} per turn), {stream.late_transcriptions} input transcriptions arriving after their "
        f"response; {check.canonical_events:,} canonical events after translate(); {check.ignored_raw} raw events "
        "ignored",
        f"by type: {_counts(counts)}",
        f"check (untimed, once): {check.messages} messages (user/assistant per turn, texts as generated), outcomes: "
        f"{_counts(check.statuses)}; {check.stored_rows:,} event rows / {check.stored_bytes:,} B stored",
        "(1) events/s = canonical events / seconds to fold them all from a fresh RealtimeState (translated "
        "beforehand, untimed); reduce() copies the state for every event, apply() changes it in place; the "
        "translate()+apply() line counts raw events. The first-turns lines fold the same stream's beginning: the "
        "per-event cost grows with the items the session holds.",
        f"(2) a fresh SQLite file per run (WAL, synchronous=FULL); {len(in_calls(stream.events, BATCH))} "
        f"ingest_many calls of up to {BATCH} raw dicts, each one transaction; session creation untimed; "
        "events/s = raw events / seconds.",
        f"(3) a session built (untimed) from the first {len(duplicates.prefix):,} raw events: {stream.turns - 1} "
        f"turns and the last turn's response in flight, half its deltas in. The {len(duplicates.raw)} accepted raw "
        f"events whose event ids the ingestion state still holds ({_counts(duplicates.kinds())}) are sent again, "
        f"repeated to >= {DUPLICATE_CALLS:,} calls per run, every one 'duplicate' (checked untimed); mean per "
        f"duplicate per run, median of runs. Stored, run 1, before -> after: {before.rows:,} -> {after.rows:,} "
        f"event rows, {before.nbytes:,} -> {after.nbytes:,} B, snapshots {before.snapshot_bytes:,} -> "
        f"{after.snapshot_bytes:,} B, session version {before.version:,} -> {after.version:,}.",
        f"(3) whole stream (untimed, once, calls of {BATCH}): after ingesting it, its {check.accepted_raw:,} "
        f"accepted raw events sent again gave {_counts(check.redelivery_statuses)}; {check.redelivery_rows:,} event "
        f"rows / {check.redelivery_bytes:,} B were added. The reducer forgets the event ids of settled items once "
        "it holds >= 256 ids; an old event about a settled item is still recognised (it adds nothing) and stored "
        "nowhere.",
    ]


# -- running ---------------------------------------------------------------------------------


def run(config: Config) -> dict[str, Any]:
    """Run the benchmark, print its table and notes; return its JSON document."""
    started = time.perf_counter()
    stream = build_stream(config.turns, config.seed, config.min_deltas, config.max_deltas)
    progress(f"realtime: {len(stream.events):,} raw events, {config.turns} turns; checking the stream (untimed)")
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp:
        check = check_stream(stream, tmp)
    canonical = canonical_events(stream.events)
    small = canonical_events(stream.first_turns(SMALL_TURNS))
    duplicates = Duplicates.of(stream)
    results: list[RunResult] = []
    for index in range(config.runs):
        results.append(one_run(stream, canonical, small, duplicates))
        progress(f"  run {index + 1}/{config.runs} done")
    lines = build_lines(stream, check, len(small), duplicates, results)
    print_report(
        machine_line("journal_mode=WAL, synchronous=FULL", config.runs, config.quick),
        format_table(lines),
        notes(config, stream, check, duplicates, results),
        targets_met(lines, f"realtime part took {time.perf_counter() - started:.0f} s"),
    )
    return part_document(
        config,
        lines,
        stream={
            "raw_events": len(stream.events),
            "canonical_events": len(canonical),
            "turns": stream.turns,
            "by_type": dict(stream.counts()),
            "late_transcriptions": stream.late_transcriptions,
            "small_turns": SMALL_TURNS,
            "small_canonical_events": len(small),
            "duplicates": {
                "prefix_raw_events": len(duplicates.prefix),
                "remembered_raw_events": len(duplicates.raw),
                "remembered_canonical_events": len(duplicates.canonical),
            },
        },
        check=asdict(check),
        runs=[asdict(result) for result in results],
        units="runs: reduce_s ... memory_s are seconds for the whole stream (or its first small_turns turns); "
        "duplicate_*_s are seconds per duplicate; table: events/s, us or bytes",
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Config, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realtime",
        description="Benchmark realtime transcript ingestion (reducer, SQLite ingestion, duplicates).",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 5; 3 with --quick)")
    parser.add_argument("--turns", type=int, default=None, help="conversation turns in the stream (default 200)")
    parser.add_argument("--seed", type=int, default=Config.seed, help=f"stream seed (default {Config.seed})")
    parser.add_argument("--quick", action="store_true", help="fast smoke run: 3 runs, 30 turns")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    config = Config(
        runs=runs_from_args(args),
        turns=args.turns if args.turns is not None else (30 if quick else Config.turns),
        seed=args.seed,
        quick=quick,
    )
    if config.runs < 1 or config.turns < 1:
        parser.error("--runs and --turns must be positive")
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse_args(argv)
    document = run(config)
    if json_path:
        write_json(json_path, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
