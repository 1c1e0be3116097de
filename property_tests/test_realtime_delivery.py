"""Realtime ingestion under any delivery: duplicates, reconnect replays and
causality-respecting reorderings give exactly the in-order transcript, and
duplicates store nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine import Transcripts
from tests.realtime_traces import assistant_audio, transcription, user_audio

words = st.lists(st.sampled_from(["yes ", "no ", "maybe ", "the ", "train ", "left."]), min_size=1, max_size=4)


@st.composite
def conversations(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Causal chains of one conversation: each chain's events must keep their
    order; a user transcription may come any time after its item."""
    chains: list[list[dict[str, Any]]] = []
    previous = None
    for turn in range(draw(st.integers(1, 3))):
        user, assistant = f"u{turn}", f"a{turn}"
        chains.append(user_audio(user, previous))
        chains.append([transcription(user, draw(st.sampled_from(["Hi.", "Why?", "Go on."])))])
        status = draw(st.sampled_from(["completed", "completed", "cancelled"]))
        chains.append(assistant_audio(f"r{turn}", assistant, user, draw(words), status=status))
        previous = assistant
    return chains


def in_order(chains: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for chain in chains for event in chain]


def ingest(events: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], str, tuple[int, int], int]:
    store = Transcripts.open()
    sid = store.create()
    for event in events:
        assert store.ingest(sid, event, provider="openai").status != "rejected"
    session = store.get(sid)
    stored = sum(len(record.state) for record in store._backend.read(sid))
    usage = (session.usage.input, session.usage.output)
    return [(m.role, m.text) for m in session.messages], session.revision, usage, stored


@given(chains=conversations(), data=st.data())
def test_duplicates_and_replays_change_nothing(chains: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    events = in_order(chains)
    expected = ingest(events)
    twice = [event for event in events for _ in range(2)]
    assert ingest(twice) == expected  # stored bytes included: a duplicate adds none
    cut = data.draw(st.integers(0, len(events)), label="reconnect at")
    back = data.draw(st.integers(0, cut), label="replay from")
    assert ingest(events[:cut] + events[back:]) == expected


@given(chains=conversations(), data=st.data())
def test_causal_reorderings_give_the_in_order_transcript(
    chains: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    expected = ingest(in_order(chains))[:3]
    positions = [0] * len(chains)
    delivered: list[dict[str, Any]] = []
    while len(delivered) < sum(map(len, chains)):
        ready = [
            index for index, chain in enumerate(chains)
            if positions[index] < len(chain)
            # a transcription chain (index 3k+1) waits for its user item (chain 3k)
            and not (index % 3 == 1 and positions[index - 1] == 0)
        ]
        index = data.draw(st.sampled_from(ready), label="next chain")
        delivered.append(chains[index][positions[index]])
        positions[index] += 1
    assert ingest(delivered)[:3] == expected
