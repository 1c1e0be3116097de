"""Recording fixtures (tests/recordings) through ``ingest_many`` on every
backend: the transcript each call's script meant, whatever the batching,
redelivery, replay after a reconnect, causally equivalent reordering or a
cold reopen of the store."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from engine import Image, Message, Transcript, Transcripts
from tests.recordings import GENERATORS, IMAGES, RECORDINGS, TRUNCATIONS, Expected, Recording

BATCH = 50
NAMES = list(RECORDINGS)
WITH_OUT_OF_BAND = [name for name, recording in RECORDINGS.items() if recording.out_of_band]

Row = tuple[str, str, bool]

# -- helpers ------------------------------------------------------------------


def ingest(store: Transcripts, sid: str, events: Sequence[dict[str, Any]]) -> list[Any]:
    """``events`` in batches of 50, as a client forwarding a socket would."""
    outcomes: list[Any] = []
    for start in range(0, len(events), BATCH):
        outcomes += store.ingest_many(sid, events[start : start + BATCH], provider="openai")
    return outcomes


def rows(messages: Sequence[Message]) -> list[Row]:
    return [(m.role, m.text, m.incomplete) for m in messages]


def expected_rows(expected: Sequence[Expected]) -> list[Row]:
    return [(e.role, e.text, e.incomplete) for e in expected]


def first_difference(expected: Sequence[Any], got: Sequence[Any]) -> str:
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return (
                f"first difference at message {index} ({len(expected)} expected, {len(got)} got):\n"
                f"  expected {want!r}\n  got      {have!r}"
            )
    if len(expected) > len(got):
        return f"{len(got)} messages, {len(expected)} expected; first missing: {expected[len(got)]!r}"
    return f"{len(got)} messages, {len(expected)} expected; first extra: {got[len(expected)]!r}"


def assert_transcript(messages: Sequence[Message], expected: Sequence[Expected]) -> None:
    want, have = expected_rows(expected), rows(messages)
    assert have == want, first_difference(want, have)
    wrong_ids = [
        (index, e.item_id, messages[index].provider_item_id)
        for index, e in enumerate(expected)
        if e.item_id is not None and messages[index].provider_item_id != e.item_id
    ]
    assert wrong_ids == [], f"provider item ids (index, expected, got): {wrong_ids[:3]}"


def assert_same(reference: Sequence[Message], got: Sequence[Message]) -> None:
    want = [(*row, m.provider_item_id) for row, m in zip(rows(reference), reference, strict=True)]
    have = [(*row, m.provider_item_id) for row, m in zip(rows(got), got, strict=True)]
    assert have == want, first_difference(want, have)


def reference(store: Transcripts, recording: Recording) -> tuple[str, Sequence[Message]]:
    sid = store.create()
    ingest(store, sid, recording.events)
    return sid, store.get(sid).messages


def test_the_generators_are_deterministic_and_make_provider_shaped_ids() -> None:
    for make in GENERATORS:
        again = make()
        assert again == RECORDINGS[again.name]
        ids = [event["event_id"] for event in again.events]
        assert len(set(ids)) == len(ids), again.name
        assert all(re.fullmatch(r"event_([0-9A-Za-z]{21,22}|[0-9a-f]{16})", i) for i in ids), again.name
        items = {e.item_id for e in [*again.expected, *again.out_of_band] if e.item_id}
        assert all(re.fullmatch(r"item_[0-9A-Za-z]{21,22}", i) for i in items), again.name


# -- causally equivalent reorderings -------------------------------------------------

TRANSCRIPTION = "conversation.item.input_audio_transcription."
FREE_PREFIXES = ("output_audio_buffer.", "response.content_part.")
FREE_TYPES = {
    "rate_limits.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "response.audio.done",
    "response.output_audio.done",
}


def is_free(event: dict[str, Any]) -> bool:
    return event["type"] in FREE_TYPES or event["type"].startswith(FREE_PREFIXES)


def causal_reorder(events: Sequence[dict[str, Any]], rng: random.Random, *, reach: int = 80) -> list[dict[str, Any]]:
    """A delivery order the server could have produced as well: events that
    change nothing (rate limits, output buffer, VAD, content parts, audio
    done) go anywhere; user transcription events move later by up to
    ``reach`` events, never into a later connection, each item's keeping
    their order; everything else keeps its order."""
    anchored: list[dict[str, Any]] = []
    connections: list[int] = []  # anchored positions of session.created
    movable: list[tuple[bool, int, dict[str, Any]]] = []  # (transcription, slot, event); slot k: before anchored[k]
    for event in events:
        if event["type"].startswith(TRANSCRIPTION):
            movable.append((True, len(anchored), event))
        elif is_free(event):
            movable.append((False, 0, event))
        else:
            if event["type"] == "session.created":
                connections.append(len(anchored))
            anchored.append(event)
    slots: dict[int, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for transcription, slot, event in movable:
        if transcription:
            limit = min([b for b in connections if b >= slot] + [len(anchored)])
            new = rng.randint(slot, min(limit, slot + reach))
        else:
            new = rng.randint(0, len(anchored))
        slots[new].append((rng.random(), event))
    out: list[dict[str, Any]] = []
    for k in range(len(anchored) + 1):
        out += [event for _, event in sorted(slots[k], key=lambda pair: pair[0])]
        if k < len(anchored):
            out.append(anchored[k])
    # Each item's transcription events in their own order, in the places they got.
    per_item: dict[str, list[int]] = defaultdict(list)
    for position, event in enumerate(out):
        if event["type"].startswith(TRANSCRIPTION):
            per_item[event["item_id"]].append(position)
    originals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["type"].startswith(TRANSCRIPTION):
            originals[event["item_id"]].append(event)
    for item, positions in per_item.items():
        for position, event in zip(positions, originals[item], strict=True):
            out[position] = event
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_reordering_is_causal(name: str) -> None:
    events = RECORDINGS[name].events
    for seed in range(5):
        shuffled = causal_reorder(events, random.Random(seed))
        assert sorted(e["event_id"] for e in shuffled) == sorted(e["event_id"] for e in events)
        fixed = [e["event_id"] for e in events if not is_free(e) and not e["type"].startswith(TRANSCRIPTION)]
        assert [e["event_id"] for e in shuffled if e["event_id"] in set(fixed)] == fixed
        position = {e["event_id"]: i for i, e in enumerate(shuffled)}
        anchors = [i for i, e in enumerate(events) if e["event_id"] in set(fixed)]
        for index, event in enumerate(events):
            if not event["type"].startswith(TRANSCRIPTION):
                continue
            before = [a for a in anchors if a < index]
            if before:  # never earlier than the last fixed event before it
                assert position[event["event_id"]] > position[events[before[-1]]["event_id"]]
            later_sessions = [a for a in anchors if a > index and events[a]["type"] == "session.created"]
            if later_sessions:  # never into a later connection
                assert position[event["event_id"]] < position[events[later_sessions[0]]["event_id"]]
        for item in {e["item_id"] for e in events if e["type"].startswith(TRANSCRIPTION)}:
            mine = [e["event_id"] for e in events if e["type"].startswith(TRANSCRIPTION) and e["item_id"] == item]
            assert [i for i in (e["event_id"] for e in shuffled) if i in set(mine)] == mine


# -- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_transcript_is_the_scripted_one(name: str, store: Transcripts) -> None:
    recording = RECORDINGS[name]
    sid = store.create()
    outcomes = ingest(store, sid, recording.events)
    assert len(outcomes) == len(recording.events)
    rejected = [
        (index, recording.events[index]["type"], outcome.reason)
        for index, outcome in enumerate(outcomes)
        if outcome.status == "rejected"
    ]
    assert rejected == [], f"{len(rejected)} rejected, first: {rejected[:3]}"
    assert_transcript(store.get(sid).messages, recording.expected)
    assert store.pending(sid).items == (), "staged items outlived the call"


@pytest.mark.parametrize("name", NAMES)
def test_every_event_twice_changes_nothing(name: str, store: Transcripts) -> None:
    recording = RECORDINGS[name]
    once, messages = reference(store, recording)
    sid = store.create()
    ingest(store, sid, [event for event in recording.events for _ in range(2)])
    assert_same(messages, store.get(sid).messages)
    assert store.get(sid).revision == store.get(once).revision


@pytest.mark.parametrize("name", NAMES)
def test_a_reconnect_replaying_the_last_30_percent(name: str, store: Transcripts) -> None:
    recording = RECORDINGS[name]
    _, messages = reference(store, recording)
    sid = store.create()
    ingest(store, sid, recording.events)
    ingest(store, sid, recording.events[int(len(recording.events) * 0.7) :])
    assert_same(messages, store.get(sid).messages)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_causally_equivalent_orders_give_the_same_transcript(name: str, seed: int, store: Transcripts) -> None:
    recording = RECORDINGS[name]
    _, messages = reference(store, recording)
    sid = store.create()
    outcomes = ingest(store, sid, causal_reorder(recording.events, random.Random(seed)))
    assert "rejected" not in {outcome.status for outcome in outcomes}
    assert_same(messages, store.get(sid).messages)


@pytest.mark.parametrize("name", WITH_OUT_OF_BAND)
def test_out_of_band_responses_stay_out_of_the_transcript(name: str, store: Transcripts) -> None:
    recording = RECORDINGS[name]
    sid = store.create()
    ingest(store, sid, recording.events)
    reports = store.out_of_band(sid)
    got = [message for report in reports for message in report.messages]
    want = expected_rows(recording.out_of_band)
    assert rows(got) == want, first_difference(want, rows(got))
    assert all(report.status == "completed" for report in reports)
    ids = [e.item_id for e in recording.out_of_band]
    assert [m.provider_item_id for m in got] == ids
    texts = {m.text for m in store.get(sid).messages}
    assert [e.text for e in recording.out_of_band if e.text in texts] == []


@pytest.mark.parametrize("name", NAMES)
def test_a_cold_reopen_shows_the_same_transcript(name: str, new_store: Callable[..., Transcripts]) -> None:
    recording = RECORDINGS[name]
    store = new_store()
    sid = store.create()
    ingest(store, sid, recording.events)
    before = store.get(sid)
    reopened = new_store().get(sid)
    assert_same(before.messages, reopened.messages)
    assert reopened.revision == before.revision


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_parts_become_image_blocks(name: str, store: Transcripts) -> None:
    sid = store.create()
    ingest(store, sid, RECORDINGS[name].events)
    messages = store.get(sid).messages
    for index, media_type, data in IMAGES[name]:
        images = [block for block in messages[index].blocks if isinstance(block, Image)]
        assert len(images) == 1, f"message {index}: {messages[index].blocks!r}"
        assert images[0].media_type == media_type
        assert images[0].data is None or images[0].data == data


@pytest.mark.parametrize("name", list(TRUNCATIONS))
def test_truncations_are_recorded_on_the_transcript_block(name: str, store: Transcripts) -> None:
    sid = store.create()
    ingest(store, sid, RECORDINGS[name].events)
    messages = store.get(sid).messages
    for index, audio_end_ms in TRUNCATIONS[name]:
        blocks = [block for block in messages[index].blocks if isinstance(block, Transcript)]
        assert [block.truncated_at_ms for block in blocks] == [audio_end_ms], f"message {index}: {blocks!r}"
        assert messages[index].text == RECORDINGS[name].expected[index].text
