"""What every part of the benchmarks prints and writes, written once.

A part reduces its runs to :class:`Line` records (medians, ratios, targets),
prints them with :func:`print_report` (the machine, the table, its notes, the
targets met) and returns a JSON document from :func:`part_document`. The
statistics here are only medians and paired ratios; what is measured, and how
often, stays in the parts.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Line:
    """One row of a part's table (and of its JSON ``table``, hence the field names)."""

    benchmark: str
    unit: str  # of engine and raw: "ms", "us", "B" or a rate such as "msg/s"
    engine: float | None  # the measured median
    raw: float | None = None  # the median it is compared with (raw sqlite3, or the other side)
    ratio: float | None = None
    target: str = ""
    met: bool | None = None  # None: no target
    run_ratios: tuple[float, ...] = ()  # the same ratio, run by run (paired runs)
    spread: tuple[float, float] | None = None  # min and max of engine over the runs, when nothing is compared
    short: str = ""  # a short name for the notes


# -- statistics ------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Run i of one side over run i of the other (the sides ran interleaved)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def paired_median(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The ratio a table shows and a target is judged on: the median of the
    runs' paired ratios. A ratio of the two medians could pair one side's
    run with another run of the other side, and match no run at all."""
    return median(paired_ratios(numerator, denominator))


def ratio_target(
    ratio: float, *, at_most: float | None = None, at_least: float | None = None
) -> tuple[str, bool | None]:
    """The target column's text and whether ``ratio`` met it ("(info)" without a bound)."""
    if at_most is not None:
        return f"<= {at_most:.2f}x", ratio <= at_most
    if at_least is not None:
        return f">= {at_least:.2f}x", ratio >= at_least
    return "(info)", None


def ratio_line(
    benchmark: str,
    short: str,
    measured: Sequence[float],
    compared: Sequence[float],
    *,
    unit: str,
    scale: float,
    at_most: float | None = None,
) -> Line:
    """Two interleaved sides, per run (seconds, shown times ``scale`` in ``unit``):
    their medians, the median of their paired ratios with an optional at-most
    target, and the ratio run by run."""
    ratio = paired_median(measured, compared)
    target, met = ratio_target(ratio, at_most=at_most)
    return Line(
        benchmark,
        unit,
        median(measured) * scale,
        median(compared) * scale,
        ratio,
        target,
        met,
        tuple(paired_ratios(measured, compared)),
        short=short,
    )


# -- text --------------------------------------------------------------------------


def _value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return f"{value:,.2f} µs"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "B" and value >= 1e5:
        return f"{value / 1e6:,.2f} MB"  # one unit from 100 kB up, so that sizes in a column compare at a glance
    if unit == "B" and value < 1000 and value != int(value):
        return f"{value:.1f} B"  # bytes per message: a byte apart is a difference
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f} {unit}"


def _ratio_text(line: Line) -> str:
    if line.ratio is None:
        return "-"
    text = f"{line.ratio:.2f}" if line.ratio >= 0.1 else f"{line.ratio:.2g}"  # tiny ratios keep two digits
    return text + "x" if line.raw is not None else text


def _spread_text(line: Line) -> str:
    if line.spread is None:
        return "-"
    low, high = line.spread
    if line.unit in ("us", "ms"):
        decimals = 2 if line.unit == "us" else 3
        return f"{low:,.{decimals}f}-{high:,.{decimals}f}"
    return f"{low:,.0f}-{high:,.0f}"


def render_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """Aligned columns: the first left-justified, the rest right-justified."""
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def render(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(row) for row in cells)])


def format_table(
    lines: Sequence[Line], measured: str = "engine (median)", compared: str = "raw sqlite3 (median)"
) -> str:
    """A part's results table. The compared and ratio columns appear when some
    line compares two sides, the min-max column when some line has a spread."""
    comparing = any(line.raw is not None or line.ratio is not None for line in lines)
    spreading = any(line.spread is not None for line in lines)
    header = [
        "benchmark",
        measured,
        *((compared, "ratio (paired)") if comparing else ()),
        *(("min-max of runs",) if spreading else ()),
        "target",
        "met",
    ]
    cells = [
        [
            line.benchmark,
            _value_text(line.engine, line.unit),
            *((_value_text(line.raw, line.unit), _ratio_text(line)) if comparing else ()),
            *((_spread_text(line),) if spreading else ()),
            line.target or "-",
            "-" if line.met is None else "yes" if line.met else "NO",
        ]
        for line in lines
    ]
    return render_table(header, cells)


def ratio_ranges(lines: Sequence[Line]) -> str:
    """The note on how far the paired runs' ratios spread, for the lines with a target."""
    spreads = [
        f"{line.short} {min(line.run_ratios):.2f}-{max(line.run_ratios):.2f}"
        for line in lines
        if line.met is not None and line.run_ratios
    ]
    return "ratio range over the paired runs (run i of one side against run i of the other): " + "; ".join(spreads)


def targets_met(lines: Sequence[Line], took: str) -> str:
    """The closing bullet: the targets met, the ones missed, and how long the part took."""
    targets = [line for line in lines if line.met is not None]
    missed = [line.short for line in targets if line.met is False]
    return (
        f"targets met: {sum(line.met is True for line in targets)}/{len(targets)}"
        + (f"; missed: {'; '.join(missed)}" if missed else "")
        + f" ({took})"
    )


# -- the machine ----------------------------------------------------------------------


def machine_line(setup: str | None, runs: int, quick: bool) -> str:
    """The line above a table: the machine, Python and SQLite, the part's
    storage ``setup`` (if any) and how many runs the medians are of."""
    return " | ".join(
        [
            f"machine: {platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs",
            f"Python {platform.python_version()} ({platform.python_implementation()})",
            f"SQLite {sqlite3.sqlite_version}",
            *([setup] if setup else []),
            f"{runs} runs each, medians shown (a ratio: the median of the runs' paired ratios)",
            *(["QUICK smoke run"] if quick else []),
        ]
    )


def machine_facts() -> dict[str, Any]:
    """The machine, for the JSON documents."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }


# -- output -----------------------------------------------------------------------------


def progress(text: str) -> None:
    """Progress goes to stderr, so that stdout holds only the reports."""
    print(text, file=sys.stderr, flush=True)


def print_report(machine: str, table: str, notes: Iterable[str], summary: str) -> None:
    """A part's report: the machine line, its table, then its notes and the summary as bullets."""
    print(machine)
    print()
    print(table)
    print()
    for note in [*notes, summary]:
        print(f"* {note}")


def part_document(config: Any, lines: Sequence[Line], **details: Any) -> dict[str, Any]:
    """A part's JSON document: the machine, its config (a dataclass) and its table, then its own details."""
    return {"machine": machine_facts(), "config": asdict(config), "table": [asdict(line) for line in lines], **details}


def write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
