"""Part 7: listing sessions with filters. One SQLite store of ``sessions``
sessions (header fields, tags, metadata, some spawned children) is built once;
each run then times ``Transcripts.sessions(...)`` with one filter, interleaved
with a raw sqlite3 query that selects the same rows from the same listing
table (the JSON functions a developer would write over its summary column),
and checks that both found the same sessions."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._report import format_table, machine_line, part_document, print_report, progress, ratio_line
from engine import Transcripts

__all__ = ["ListingConfig", "run"]

_STATUSES = ("active", "idle", "paused", "finished", "failed")
_COLUMNS = "session_id, title, created_at, updated_at, message_count, revision, version"
_ORDER = " ORDER BY created_at, session_id"


@dataclass(frozen=True)
class ListingConfig:
    runs: int = 5
    sessions: int = 100_000
    quick: bool = False


def _build(path: str, count: int) -> list[str]:
    """``count`` sessions: status by turn, 1 in 20 tagged vip, 100 owners, 10
    teams in metadata; the last 1% are children of the first 10 sessions."""
    store = Transcripts.open(path, synchronous="normal", snapshot_interval=None)
    roots = count - count // 100
    ids: list[str] = []
    for number in range(roots):
        tags = ["vip"] if number % 20 == 0 else []
        ids.append(
            store.create(
                f"session {number}",
                {"team": f"team-{number % 10}", "number": number},
                status=_STATUSES[number % len(_STATUSES)],
                tags=tags,
                owner=f"user-{number % 100}",
            )
        )
        if number % 10_000 == 0:
            progress(f"  listing: built {number:,} of {count:,} sessions")
    for number in range(count - roots):
        ids.append(store.spawn(ids[number % 10], task=f"task {number}"))
    store.close()
    return ids


def _raw(connection: sqlite3.Connection, where: str, values: list[Any]) -> Callable[[], list[str]]:
    def query() -> list[str]:
        sql = f"SELECT {_COLUMNS} FROM transcripts_sessions WHERE {where}{_ORDER}"
        return [row[0] for row in connection.execute(sql, values).fetchall()]

    return query


def run(config: ListingConfig) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "store.db")
        started = time.perf_counter()
        ids = _build(path, config.sessions)
        built = time.perf_counter() - started
        parent = ids[0]
        store = Transcripts.open(path, create=False)
        connection = sqlite3.connect(path)  # kept open, as the store keeps its own
        cases: list[tuple[str, str, Callable[[], list[str]], Callable[[], list[str]]]] = [
            (
                "status='finished'",
                "status",
                lambda: [info.id for info in store.sessions(status="finished")],
                _raw(connection, "json_extract(summary, '$.status') = ?", ["finished"]),
            ),
            (
                "tags include 'vip'",
                "tags",
                lambda: [info.id for info in store.sessions(tags=["vip"])],
                _raw(connection, "EXISTS (SELECT 1 FROM json_each(summary, '$.tags') WHERE value = ?)", ["vip"]),
            ),
            (
                "metadata team='team-3'",
                "metadata",
                lambda: [info.id for info in store.sessions(metadata={"team": "team-3"})],
                _raw(connection, "json_extract(summary, '$.metadata.team') = ?", ["team-3"]),
            ),
            (
                "owner='user-4' and status='failed'",
                "owner+status",
                lambda: [info.id for info in store.sessions(owner="user-4", status="failed")],
                _raw(
                    connection,
                    "json_extract(summary, '$.owner') = ? AND json_extract(summary, '$.status') = ?",
                    ["user-4", "failed"],
                ),
            ),
            (
                "children of one session (parent=)",
                "parent",
                lambda: [info.id for info in store.sessions(parent=parent)],
                _raw(connection, "json_extract(summary, '$.parent') = ?", [parent]),
            ),
            (
                "every session, no filter",
                "all",
                lambda: [info.id for info in store.sessions()],
                _raw(connection, "1", []),
            ),
        ]
        samples: dict[str, tuple[list[float], list[float]]] = {short: ([], []) for _, short, _, _ in cases}
        found: dict[str, int] = {}
        for number in range(config.runs):
            for _, short, engine, raw in cases:
                started = time.perf_counter()
                ours = engine()
                samples[short][0].append(time.perf_counter() - started)
                started = time.perf_counter()
                theirs = raw()
                samples[short][1].append(time.perf_counter() - started)
                assert ours == theirs, (short, len(ours), len(theirs))  # the same sessions, in the same order
                found[short] = len(ours)
            progress(f"  listing: run {number + 1}/{config.runs} done")
        store.close()
        connection.close()
    lines = [
        ratio_line(
            f"sessions({label}): {found[short]:,} of {config.sessions:,}",
            short,
            samples[short][0],
            samples[short][1],
            unit="ms",
            scale=1000,
        )
        for label, short, _, _ in cases
    ]
    print_report(
        machine_line(f"one SQLite store of {config.sessions:,} sessions", config.runs, config.quick),
        format_table(lines),
        [
            "engine: Transcripts.sessions() with the filter, through the store's own listing table: the database "
            "filters on the summary each write keeps in the row, then every row returned is checked against its "
            "seal and matched exactly, and becomes a SessionInfo",
            "raw: sqlite3 on the same file, the same rows in the same order from the same table with the JSON "
            "functions over its summary column, returning ids (no checks)",
            f"building the store took {built:.0f} s (not timed in the table)",
        ],
        "targets: none (figures for the note)",
    )
    return part_document(config, lines, found=found, build_seconds=built)
