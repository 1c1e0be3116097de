"""Shrunk failing examples found by the property tests and benchmarks, kept
so they can never come back."""

from __future__ import annotations

import pytest

from engine import InvalidArgument, Transcripts


def test_a_title_with_nul_is_refused_on_every_backend(store: Transcripts) -> None:
    # Found by the state machine on PostgreSQL: state.create(title='\x00')
    # failed inside the listing table's text column instead of as bad input.
    with pytest.raises(InvalidArgument):
        store.create(title="\x00")
    sid = store.create()
    with pytest.raises(InvalidArgument):
        store.set_title(sid, "a\x00b")
    assert [info.id for info in store.sessions()] == [sid]
