"""No input ever makes ingestion raise, and a rejected or ignored input
changes nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine import Transcripts

KINDS = [
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.created",
    "response.output_item.done",
    "response.output_audio_transcript.delta",
    "response.output_text.done",
    "response.done",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "input_audio_buffer.committed",
    "conversation.item.input_audio_transcription.completed",
    "unknown.kind",
]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "item",
        "item_id",
        "response_id",
        "delta",
        "transcript",
        "response",
        "previous_item_id",
        "content_index",
        "audio_end_ms",
        "output",
        "status",
        "id",
        "role",
        "content",
    ]
)
events = st.builds(
    lambda kind, event_id, fields: {"type": kind, "event_id": event_id, **fields},
    st.sampled_from(KINDS),
    st.one_of(st.text(max_size=4), st.integers()),
    st.dictionaries(field_names, json_values, max_size=5),
)
anything: Any = st.one_of(events, json_values, st.binary(max_size=64), st.text(max_size=64), st.integers())


@given(batch=st.lists(anything, max_size=6))
def test_ingest_never_raises_and_refusals_change_nothing(batch: list[Any]) -> None:
    store = Transcripts.open()
    sid = store.create()
    for raw in batch:
        before = store.get(sid).version
        outcome = store.ingest(sid, raw, provider="openai")
        assert outcome.status in ("materialised", "staged", "duplicate", "discarded", "rejected", "ignored")
        if outcome.status in ("rejected", "ignored", "duplicate"):
            assert outcome.reason
            assert store.get(sid).version == before
    assert store.verify(sid).version == store.get(sid).version
