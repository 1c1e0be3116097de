"""The floor `make bench` prints beside the per-call appends (an append's
essential work in one plain loop) does all of that work: the store it
writes holds every message, with revisions, chain and seals that the
engine's own full check accepts. A floor that skipped a step would be
refused here, not reported as a floor."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchmarks.raw import essential_calls
from engine import CorruptStore, Message, Transcripts


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_the_floor_writes_a_store_the_engine_verifies(tmp_path: Path, synchronous: str) -> None:
    path = str(tmp_path / "floor.db")
    texts = [f"message {number} " + "x" * number for number in range(40)]
    seconds = essential_calls(path, synchronous, [Message.user(text) for text in texts])
    assert seconds > 0
    with Transcripts.open(path) as store:
        [info] = store.sessions()
        verified = store.verify(info.id)
        assert [message.text for message in verified.messages] == texts
        assert len({message.id for message in verified.messages}) == len(texts)
        assert verified.version == 1 + len(texts)  # its creation, then one append per message


def test_a_floor_that_skipped_the_seal_would_be_caught(tmp_path: Path) -> None:
    # The check above is one that can fail: a listing row whose seal does not
    # cover what it holds reads as damage.
    path = str(tmp_path / "floor.db")
    essential_calls(path, "normal", [Message.user("one"), Message.user("two")])
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE transcripts_sessions SET seal = 'not a seal'")
    connection.close()
    with Transcripts.open(path) as store, pytest.raises(CorruptStore):
        store.get(store.sessions()[0].id)
