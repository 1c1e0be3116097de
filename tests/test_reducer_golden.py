"""Every outcome the pure reducer gives for the named scenarios (status,
reason, changes) and what it leaves pending, against a reviewed golden file.
A change of behaviour, wording included, shows here first: regenerate with
``python -m tests.test_reducer_golden`` and review the diff."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.realtime import RealtimeState, reduce
from engine.realtime.reducer import resolve
from tests.reducer_scenarios import SCENARIOS

GOLDEN = Path(__file__).parent / "golden" / "reducer-outcomes.json"


def run(events: list[Any]) -> dict[str, Any]:
    state = RealtimeState()
    steps = []
    for event in events:
        state, outcome = reduce(state, event)
        steps.append(json.loads(msgspec.json.encode(outcome)))
    pending = [[item.id, item.previous, item.status, item.kind] for item in state.pending_items()]
    in_flight = state.in_flight_responses()
    placed = resolve(state.copy(), "place")
    dropped = resolve(state.copy(), "drop")
    return {
        "steps": steps,
        "pending": pending,
        "in_flight": in_flight,
        "tail": state.tail,
        "resolve_place": json.loads(msgspec.json.encode(placed)),
        "resolve_drop": json.loads(msgspec.json.encode(dropped)),
    }


def compute() -> dict[str, Any]:
    return {name: run(events) for name, events in SCENARIOS.items()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_reducer_outcomes_match_the_golden_file(name: str) -> None:
    expected = json.loads(GOLDEN.read_text())
    assert run(SCENARIOS[name]) == expected[name]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    sys.exit(0)
