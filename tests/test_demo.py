"""`make demo` runs and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_prints_a_timeline_a_time_travel_view_and_the_voice_call(tmp_path: Path) -> None:
    target = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(target)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    for heading in ("Timeline", "Time travel: as of version 3", "A branch", "The voice call"):
        assert heading in done.stdout
    assert "Hello! How can I help?" in done.stdout and "(incomplete)" in done.stdout
    assert target.exists()
