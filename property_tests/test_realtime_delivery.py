"""Realtime ingestion under any delivery: duplicates, reconnect replays and
causality-respecting reorderings give exactly the in-order transcript, and
duplicates store nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine import Transcripts
from engine.testing.strategies import deliveries, realtime_conversations


def in_order(chains: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for chain in chains for event in chain]


def ingest(events: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], str, tuple[int, int], int]:
    store = Transcripts.open()
    sid = store.create()
    for event in events:
        assert store.ingest(sid, event, provider="openai").status != "rejected"
    session = store.get(sid)
    stored = sum(len(record.state) for record in store._repository.backend.read(sid))
    usage = (session.usage.input, session.usage.output)
    return [(m.role, m.text) for m in session.messages], session.revision, usage, stored


@given(chains=realtime_conversations(), data=st.data())
def test_duplicates_and_replays_change_nothing(chains: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    events = in_order(chains)
    expected = ingest(events)
    twice = [event for event in events for _ in range(2)]
    assert ingest(twice) == expected  # stored bytes included: a duplicate adds none
    cut = data.draw(st.integers(0, len(events)), label="reconnect at")
    back = data.draw(st.integers(0, cut), label="replay from")
    assert ingest(events[:cut] + events[back:]) == expected


@given(chains=realtime_conversations(), data=st.data())
def test_causal_reorderings_give_the_in_order_transcript(
    chains: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    expected = ingest(in_order(chains))[:3]
    delivered = data.draw(deliveries(chains), label="delivery")  # reordered, some twice, maybe replayed
    assert ingest(delivered)[:3] == expected
