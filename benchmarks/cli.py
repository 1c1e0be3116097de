"""``python -m benchmarks``: both parts, the suite first, each with its table.

``--only suite`` or ``--only branching`` runs one part. ``--json PATH`` writes
``{"suite": ..., "branching": ...}`` (the parts that ran).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import branching, suite

__all__ = ["main"]

PARTS = ("suite", "branching")


def parse_args(argv: Sequence[str] | None) -> tuple[suite.Config, branching.BranchConfig, tuple[str, ...], str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark the transcript engine (medians of interleaved runs). Part 1, the suite: appends, loads and "
            "listing against raw sqlite3. Part 2, branching: forks, rewrites, loading forks and memory of forks."
        ),
    )
    parser.add_argument("--only", choices=PARTS, help="run one part only (default: both, the suite first)")
    suite.add_arguments(parser)
    branching.add_arguments(parser)
    args = parser.parse_args(argv)
    parts = PARTS if args.only is None else (args.only,)
    return suite.config_from_args(parser, args), branching.config_from_args(parser, args), parts, args.json


def main(argv: Sequence[str] | None = None) -> int:
    suite_config, branch_config, parts, json_path = parse_args(argv)
    started = time.perf_counter()
    document: dict[str, Any] = {}
    for number, part in enumerate(parts):
        if number:
            print()
        if len(parts) > 1:
            title = "part 1: the suite" if part == "suite" else "part 2: branching and rewrites"
            print(f"=== {title} ===")
        if part == "suite":
            document["suite"] = suite.run_and_report(suite_config)
        else:
            document["branching"] = branching.run_and_report(branch_config)
    if len(parts) > 1:
        print(f"\n(both parts took {time.perf_counter() - started:.0f} s)")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    return 0
