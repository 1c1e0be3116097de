"""Chains of forks, each a fork of the one before: read after reopening
however deep the engine made them, and a chain that comes back to itself
(only a forged log can) is damage, never a RecursionError."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from engine import CorruptStore, Message, ToolResult, ToolUse, Transcripts
from engine.viewer import family
from tests._resealing import relink_and_reseal


def test_a_chain_of_forks_deeper_than_the_recursion_limit_reads_after_reopening(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 200
    path = str(tmp_path / "store.db")
    with Transcripts.open(path) as store:
        other = store.create(session_id="other")
        store.append(other, Message.user("unrelated"))
        sid = store.create(session_id="f0")
        store.append(sid, Message.user("level 0"))
        store.append(sid, Message.assistant(ToolUse(id="call_0", name="look", arguments="{}")))
        store.append(sid, Message.tool_results(ToolResult.of("call_0", "seen")))
        for level in range(1, depth + 1):
            sid = store.fork(sid, child_id=f"f{level}")
            store.append(sid, Message.user(f"level {level}"))
    # .text holds text blocks only: the tool call and its result show as ""
    expected = ["level 0", "", "", *(f"level {level}" for level in range(1, depth + 1))]
    with Transcripts.open(path) as store:  # nothing cached: every source is read from its log
        assert [m.text for m in store.get(sid).messages] == expected
        assert [m.text for m in store.get(sid, at=1).messages] == expected[:-1]  # the fork point
        assert [m.text for m in store.get(sid, last=2).messages] == expected[-2:]
        assert store.verify(sid).version == 2
        assert [m.text for m in store.get(f"f{depth // 2}").messages] == expected[: depth // 2 + 3]
        [call] = store.tool_calls(sid)  # replayed from the root of the chain
        assert (call.call_id, call.position, call.result_position) == ("call_0", 1, 2)
        assert [member.id for member in family(store, sid)] == [f"f{level}" for level in range(depth + 1)]
        assert [m.text for m in store.get(other).messages] == ["unrelated"]


def _forge_fork_sources(path: Path, sources: dict[str, str]) -> None:
    """Point each fork's first event at another source, and recompute its
    chain head and row seal, as someone who can write to an unkeyed store can."""
    with sqlite3.connect(path) as db:
        for sid, source in sources.items():
            (state,) = db.execute(
                "SELECT state FROM transcripts_events WHERE originator_id=? AND originator_version=1", (sid,)
            ).fetchone()
            event = json.loads(state)
            assert event["kind"] == "session_forked"
            event["source"], event["source_version"] = source, 2
            db.execute(
                "UPDATE transcripts_events SET state=? WHERE originator_id=? AND originator_version=1",
                (json.dumps(event, separators=(",", ":")).encode(), sid),
            )
            relink_and_reseal(db, sid)
    db.close()


@pytest.mark.parametrize(
    ("sources", "read"),
    [({"b": "b"}, "b"), ({"b": "c", "c": "b"}, "b"), ({"b": "c", "c": "b"}, "d")],
    ids=["a fork of itself", "two forks of each other", "a fork of such a pair"],
)
def test_a_chain_of_forks_that_comes_back_to_itself_is_damage(
    tmp_path: Path, sources: dict[str, str], read: str
) -> None:
    path = tmp_path / "store.db"
    with Transcripts.open(str(path)) as store:
        root = store.create(session_id="a")
        store.append(root, Message.user("root"))
        for child, parent in (("b", "a"), ("c", "b"), ("d", "c")):
            store.fork(parent, child_id=child)
            store.append(child, Message.user(f"in {child}"))
    _forge_fork_sources(path, sources)
    with Transcripts.open(str(path)) as store:
        for _ in range(50):  # more reads than the store has connections: none is kept by a failed read
            with pytest.raises(CorruptStore, match="chain of forks comes back to"):
                store.get(read)
        with pytest.raises(CorruptStore, match="chain of forks comes back to"):
            store.verify(read)
        assert [m.text for m in store.get("a").messages] == ["root"]
