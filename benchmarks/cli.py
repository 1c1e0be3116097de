"""``python -m benchmarks``: all seven parts, each with its table: the suite
(appends, loads, listing against raw sqlite3), branching (forks, rewrites,
fork loads, memory of forks), realtime ingestion, realtime calls rebuilt by
the engine and by a peer (the OpenAI Agents SDK, when installed), catching a
read model up, the newest messages of a long session (against the SDK's
SQLiteSession), and listing sessions with filters (against raw sqlite3).

``--only suite|branching|realtime|peers|readmodel|tail|listing|postgres|stores`` runs one part
(``postgres`` needs ``ENGINE_BENCH_POSTGRES_DSN`` or ``ENGINE_TEST_POSTGRES_DSN``;
without either, running every part leaves it out and says so; ``stores``
needs the peers ``make bench-peers`` installs). ``--recordings DIR``
adds real recordings to the peer comparison. ``--json PATH`` writes
``{"suite": ..., "branching": ..., "readmodel": ..., "tail": ...}`` (the parts
that ran).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import branching, listing, peers, postgres, readmodel, realtime, realtime_recordings, suite, tail
from benchmarks._report import write_json

__all__ = ["main"]

PARTS = ("suite", "branching", "realtime", "peers", "readmodel", "tail", "listing", "postgres", "stores")
TITLES = {
    "suite": "part 1: the suite",
    "branching": "part 2: branching and rewrites",
    "realtime": "part 3: realtime",
    "peers": "part 4: realtime calls, the engine and a peer",
    "readmodel": "part 5: the read model",
    "tail": "part 6: the newest messages of a long session",
    "listing": "part 7: listing sessions with filters",
    "postgres": "part 8: PostgreSQL writers",
    "stores": "part 9: the stores a user would pick instead",
}


def parse_args(
    argv: Sequence[str] | None,
) -> tuple[suite.Config, branching.BranchConfig, realtime.Config, tuple[str, ...], str | None, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark the transcript engine (medians of interleaved runs). Part 1, suite: appends, loads and "
            "listing against raw sqlite3. Part 2, branching: forks, rewrites, loading forks and memory of forks. "
            "Part 3, realtime: the ingestion reducer, persisted ingestion and duplicates. Part 4, peers: recorded "
            "and recording-shaped realtime calls rebuilt by the engine and by the OpenAI Agents SDK. Part 5, "
            "readmodel: catching a read model up. Part 6, tail: the newest messages of a long session. Part 7, "
            "listing: sessions with filters. Part 8, postgres: PostgreSQL writers (needs "
            "ENGINE_BENCH_POSTGRES_DSN). Part 9, stores: the engine beside the session stores a user would pick "
            "instead (needs make bench-peers)."
        ),
    )
    parser.add_argument("--only", choices=PARTS, help="run one part only (default: all, in this order)")
    parser.add_argument(
        "--recordings",
        metavar="DIR",
        help="part 4 also replays real recordings: DIR/NAME.json with DIR/NAME.expected.json",
    )
    suite.add_arguments(parser)
    branching.add_arguments(parser)
    args = parser.parse_args(argv)
    parts = PARTS if args.only is None else (args.only,)
    quick = bool(args.quick)
    realtime_config = realtime.Config(
        runs=suite.runs_from_args(args),
        turns=30 if quick else realtime.Config.turns,
        quick=quick,
    )
    return (
        suite.config_from_args(parser, args),
        branching.config_from_args(parser, args),
        realtime_config,
        parts,
        args.json,
        args.recordings,
    )


def main(argv: Sequence[str] | None = None) -> int:
    suite_config, branch_config, realtime_config, parts, json_path, recordings = parse_args(argv)
    started = time.perf_counter()
    document: dict[str, Any] = {}
    for number, part in enumerate(parts):
        if number:
            print()
        if len(parts) > 1:
            print(f"=== {TITLES[part]} ===")
        if part == "suite":
            document["suite"] = suite.run_and_report(suite_config)
        elif part == "branching":
            document["branching"] = branching.run_and_report(branch_config)
        elif part == "realtime":
            document["realtime"] = realtime.run(realtime_config)
        elif part == "peers":
            document["peers"] = realtime_recordings.run(realtime_config.runs, recordings, realtime_config.quick)
        elif part == "tail":
            messages = 10_000 if realtime_config.quick else 100_000
            tail_config = tail.TailConfig(runs=realtime_config.runs, messages=messages, quick=realtime_config.quick)
            document["tail"] = tail.run(tail_config)
        elif part == "stores" and not peers.installed() and len(parts) > 1:
            print("not run: the peer stores are not installed here (make bench-peers installs them)")
        elif part == "stores":
            count = 500 if realtime_config.quick else 4_000
            stores_config = peers.PeersConfig(runs=realtime_config.runs, messages=count, quick=realtime_config.quick)
            document["stores"] = peers.run(stores_config)
        elif part == "postgres" and postgres.dsn() is None and len(parts) > 1:
            print("not run: no PostgreSQL server given (set ENGINE_BENCH_POSTGRES_DSN)")
        elif part == "postgres":
            appends = 100 if realtime_config.quick else 500
            pg_config = postgres.PostgresConfig(runs=realtime_config.runs, appends=appends, quick=realtime_config.quick)
            document["postgres"] = postgres.run(pg_config)
        elif part == "listing":
            count = 10_000 if realtime_config.quick else 100_000
            listing_config = listing.ListingConfig(
                runs=realtime_config.runs, sessions=count, quick=realtime_config.quick
            )
            document["listing"] = listing.run(listing_config)
        else:
            events = 2_000 if realtime_config.quick else 10_000
            config = readmodel.ReadModelConfig(runs=realtime_config.runs, events=events, quick=realtime_config.quick)
            document["readmodel"] = readmodel.run(config)
    if len(parts) > 1:
        print(f"\n(the {len(parts)} parts took {time.perf_counter() - started:.0f} s)")
    if json_path:
        write_json(json_path, document)
    return 0
