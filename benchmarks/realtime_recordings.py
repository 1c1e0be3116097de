"""Realtime calls rebuilt by the engine and by a peer: ``python -m benchmarks.realtime_recordings``.

The cases are (1) the recording fixtures of ``tests/recordings`` (server-event
streams shaped like recorded OpenAI Realtime calls, each with the transcript
its script meant to produce) and (2), with ``--recordings DIR``, real
recordings kept outside the project: every ``NAME.json`` (a JSON array of
server events in arrival order) that has a ``NAME.expected.json`` beside it
(a list of ``{"role", "text", ...}`` written by reading the events; entries
marked ``"same_response"`` belong to one response).

Each case goes through the engine (``Transcripts.ingest_many`` into an
in-memory store, one call) and through the OpenAI Agents SDK's realtime
history (``benchmarks.realtime_peers``: a real ``RealtimeSession`` fed the
same events offline). A side is *right* on a case when its transcript equals
the expected one after the same normalisation on all three: the user,
assistant and system entries as ``(role, text)`` in order, tool calls and
tool results left out, consecutive assistant entries joined by a newline
(the SDK keeps one entry per provider item where the engine keeps one
message per response). Events/s: all the case's events / seconds for one
replay (``time.perf_counter`` around the feeding only), median of ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import realtime_peers
from benchmarks._report import machine_facts, machine_line, median, print_report, progress, render_table
from engine import Transcripts

__all__ = ["Case", "load_cases", "main", "normalised", "run"]

Entry = tuple[str, str]


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # "fixture" or "recording"
    events: list[dict[str, Any]]
    expected: list[Entry]


@dataclass(frozen=True)
class Row:
    name: str
    source: str
    events: int
    expected_messages: int
    engine_right: bool
    engine_first_difference: str | None
    engine_events_per_s: float
    peer_right: bool | None
    peer_first_difference: str | None
    peer_events_per_s: float | None
    peer_refused: int | None  # events the SDK's GA types refused (dropped); 0 means the case is valid GA


def normalised(entries: Sequence[tuple[str, str]]) -> list[Entry]:
    """User, assistant and system entries in order, consecutive assistant ones joined."""
    result: list[Entry] = []
    for role, text in entries:
        if role not in ("user", "assistant", "system"):
            continue
        if role == "assistant" and result and result[-1][0] == "assistant":
            result[-1] = ("assistant", "\n".join(part for part in (result[-1][1], text) if part))
        else:
            result.append((role, text))
    return result


def load_cases(recordings: str | None) -> list[Case]:
    from tests.recordings import RECORDINGS  # the fixtures live with the tests that check them

    cases = [
        Case(name, "fixture", recording.events, normalised([(m.role, m.text) for m in recording.expected]))
        for name, recording in RECORDINGS.items()
    ]
    if recordings:
        for path in sorted(Path(recordings).glob("*.json")):
            expected_path = path.with_name(path.stem + ".expected.json")
            if path.name.endswith(".expected.json") or not expected_path.exists():
                continue
            expected = json.loads(expected_path.read_text())
            cases.append(
                Case(
                    path.stem,
                    "recording",
                    json.loads(path.read_text()),
                    normalised([(entry["role"], entry["text"]) for entry in expected]),
                )
            )
    return cases


def engine_transcript(events: list[dict[str, Any]]) -> tuple[list[Entry], float]:
    store = Transcripts.open()
    session = store.create()
    started = time.perf_counter()
    store.ingest_many(session, events, provider="openai")
    seconds = time.perf_counter() - started
    return normalised([(m.role, m.text) for m in store.get(session).messages]), seconds


def first_difference(expected: list[Entry], got: list[Entry]) -> str | None:
    if expected == got:
        return None
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return f"message {index}: expected {want!r:.80}, got {have!r:.80}"
    return f"expected {len(expected)} messages, got {len(got)}"


def measure(case: Case, runs: int, peer: bool) -> Row:
    engine_runs = [engine_transcript(case.events) for _ in range(runs)]
    engine_got = engine_runs[0][0]
    peer_right = peer_difference = peer_rate = peer_refused = None
    if peer:
        replay = realtime_peers.agents_sdk_replay(case.events)
        peer_refused = sum(replay.parse_failures.values())
        peer_got = normalised([(role, text) for _, role, text in replay.transcript])
        peer_difference = first_difference(case.expected, peer_got)
        peer_right = peer_difference is None
        peer_rate = realtime_peers.agents_sdk_events_per_second(case.events, runs=runs)
    engine_difference = first_difference(case.expected, engine_got)
    return Row(
        name=case.name,
        source=case.source,
        events=len(case.events),
        expected_messages=len(case.expected),
        engine_right=engine_difference is None,
        engine_first_difference=engine_difference,
        engine_events_per_s=len(case.events) / median(seconds for _, seconds in engine_runs),
        peer_right=peer_right,
        peer_first_difference=peer_difference,
        peer_events_per_s=peer_rate,
        peer_refused=peer_refused,
    )


def report(rows: Sequence[Row], peer_version: str | None, runs: int) -> tuple[str, list[str], str]:
    """The table, its notes and the target line."""

    def mark(right: bool | None) -> str:
        return "-" if right is None else ("right" if right else "WRONG")

    cells = [
        [
            row.name,
            row.source,
            f"{row.events:,}",
            str(row.expected_messages),
            mark(row.engine_right),
            f"{row.engine_events_per_s:,.0f}",
            mark(row.peer_right),
            "-" if row.peer_events_per_s is None else f"{row.peer_events_per_s:,.0f}",
            "-" if row.peer_refused is None else f"{row.peer_refused:,}",
        ]
        for row in rows
    ]
    engine_total = sum(row.engine_right for row in rows)
    peer_total = sum(bool(row.peer_right) for row in rows)
    cells.append(
        [
            "all cases",
            "",
            f"{sum(row.events for row in rows):,}",
            "",
            f"{engine_total}/{len(rows)}",
            "",
            f"{peer_total}/{len(rows)}" if peer_version else "-",
            "",
            "",
        ]
    )
    peer_name = f"Agents SDK {peer_version}" if peer_version else "Agents SDK (not installed)"
    table = render_table(
        [
            "case",
            "source",
            "events",
            "messages",
            "engine",
            "engine ev/s",
            peer_name,
            "peer ev/s",
            "refused by GA types",
        ],
        cells,
    )
    notes = [
        f"{row.name}, {side}: {difference}"
        for row in rows
        for side, difference in (("engine", row.engine_first_difference), ("peer", row.peer_first_difference))
        if difference
    ]
    notes.append(
        f"right = the transcript equals the expected one after normalisation (module docstring); events/s = the "
        f"case's events / seconds of one replay, median of {runs} runs; engine: Transcripts.ingest_many into an "
        "in-memory store, one call; peer: a RealtimeSession fed the events offline through its model's raw-event "
        "handler (benchmarks/realtime_peers.py). refused by GA types: events the SDK validated against "
        "openai-python's GA server-event types and dropped (beta-schema events are refused by design; a GA case "
        "with 0 is valid against those types)."
    )
    if not peer_version:
        notes.append(
            f"the peer is not installed here: `pip install '{realtime_peers.AGENTS_SDK_REQUIREMENT}'` "
            "(make bench installs it in its own environment)"
        )
    met = engine_total == len(rows)
    return (
        table,
        notes,
        f"target: the engine rebuilds every case: {'met' if met else 'MISSED'} ({engine_total}/{len(rows)})",
    )


def run(runs: int = 5, recordings: str | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the comparison, print its table and notes; return its JSON document."""
    peer_version = realtime_peers.agents_sdk_available()
    cases = load_cases(recordings)
    rows = []
    for case in cases:
        rows.append(measure(case, runs, peer_version is not None))
        progress(f"  {case.name} done")
    print_report(machine_line(None, runs, quick), *report(rows, peer_version, runs))
    return {"machine": machine_facts(), "peer": peer_version, "runs": runs, "rows": [asdict(row) for row in rows]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realtime_recordings", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--recordings", metavar="DIR", help="also real recordings: DIR/NAME.json + NAME.expected.json")
    args = parser.parse_args(argv)
    run(args.runs, args.recordings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
