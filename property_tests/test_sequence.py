"""The persistent message sequence against a plain list, under any mix of
appends, prefixes and range replacements on any earlier version."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine import Message
from engine.state.revisions import EMPTY_REVISION_BYTES, chain
from engine.state.sequence import MAX_PIECES, MessageSeq

POOL = [Message.user(str(number)) for number in range(20)]
batches = st.lists(st.sampled_from(POOL), max_size=4)
operations = st.lists(
    st.tuples(st.sampled_from(["extend", "prefix", "replace"]), st.integers(0, 10**6), st.integers(0, 10**6), batches),
    max_size=60,
)


@given(operations=operations)
def test_every_version_matches_its_list(operations: list[tuple[str, int, int, list[Message]]]) -> None:
    versions: list[tuple[MessageSeq, list[Message]]] = [(MessageSeq(), [])]
    for kind, a, b, batch in operations:
        seq, model = versions[a % len(versions)]  # any earlier version, not only the newest
        if kind == "extend":
            seq, model = seq.extended(batch), model + batch
        elif kind == "prefix":
            cut = b % (len(model) + 1)
            seq, model = seq.prefix(cut), model[:cut]
        else:
            start = b % (len(model) + 1)
            end = start + (a % (len(model) - start + 1))
            seq, model = seq.replaced(start, end, batch), model[:start] + batch + model[end:]
        versions.append((seq, model))
        assert seq.piece_count <= MAX_PIECES
    for seq, model in versions:  # no later operation changed an earlier version
        assert list(seq) == model and len(seq) == len(model)
        for cut in range(len(model) + 1):
            assert seq.revision_at(cut) == chain(EMPTY_REVISION_BYTES, model[:cut])
            assert list(seq[cut:]) == model[cut:]
        assert all(seq[index] is model[index] for index in range(len(model)))
