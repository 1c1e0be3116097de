"""Summarise a mutmut run of the pure core: killed / total, per file, and the
surviving mutants' names (inspect one with ``mutmut show <name>``)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

MUTMUT = Path(sys.executable).with_name("mutmut")


def main() -> int:
    done = subprocess.run([str(MUTMUT), "results", "--all", "true"], capture_output=True, text=True, check=False)
    statuses: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x", 1)[0] if ".x" in name else name.split("__mutmut_")[0]
        statuses[status] += 1
        per_file.setdefault(module, Counter())[status] += 1
        if status == "survived":
            survivors.append(name)
    total = sum(statuses.values())
    if not total:
        print(done.stdout or done.stderr)
        return 1
    killed = statuses["killed"] + statuses["timeout"]
    print(
        f"mutants: {total}; killed {killed} ({100 * killed / total:.1f}%), "
        + ", ".join(
            f"{status} {count}" for status, count in sorted(statuses.items()) if status not in ("killed", "timeout")
        )
    )
    for module, counts in sorted(per_file.items()):
        module_total = sum(counts.values())
        module_killed = counts["killed"] + counts["timeout"]
        print(f"  {module:<40} {module_killed:>5}/{module_total:<5} {100 * module_killed / module_total:5.1f}%")
    print(f"survivors: {len(survivors)} (mutmut show <name> for each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
