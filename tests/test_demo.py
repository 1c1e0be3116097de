"""`make demo` runs and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _demo(target: Path) -> str:
    """What `make demo` prints, run from the project's root on ``target``."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(target)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    return done.stdout


def test_demo_prints_a_timeline_a_time_travel_view_and_the_voice_call(tmp_path: Path) -> None:
    target = tmp_path / "demo.db"
    printed = _demo(target)
    for heading in ("Timeline", "Time travel: as of version 3", "A branch", "The voice call"):
        assert heading in printed
    assert "Hello! How can I help?" in printed and "(incomplete)" in printed
    assert target.exists()


def test_the_demo_shows_the_command_line_and_draws_the_graph(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ElementTree

    from engine import Transcripts

    target = tmp_path / "demo.db"
    printed = _demo(target)
    for command in ("$ transcripts sessions", "$ transcripts tree", "$ transcripts search", "$ transcripts graph"):
        assert command in printed
    assert "[scenic]" in printed  # the search found and marked the word

    # The picture, read back: the trip's family is its root, the branch that
    # replaced message 1 and the one taken at message 2, both from version 9
    # (before the compaction, which is the root's one rewrite).
    store = Transcripts.open(target)
    [root] = [info.id for info in store.sessions() if info.version == 10]
    forks = sorted(
        (store.lineage(info.id).fork_index, info.id) for info in store.sessions() if store.lineage(info.id).source
    )
    assert [index for index, _ in forks] == [1, 2]
    svg = ElementTree.parse(target.with_suffix(".svg")).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert svg.get("data-root") == root
    assert [
        lane.get("data-session") for lane in svg.iterfind("svg:g", ns) if "lane" in (lane.get("class") or "").split()
    ] == [
        root,
        *(sid for _, sid in forks),
    ]
    kinds = [
        (c.get("data-session"), c.get("data-kind"), c.get("data-reason")) for c in svg.iterfind(".//svg:circle", ns)
    ]
    assert [(kind, reason) for sid, kind, reason in kinds if sid == root] == [("append", "")] * 4 + [
        ("rewrite", "compaction")
    ]
    for index, sid in forks:
        assert [(kind, reason) for s, kind, reason in kinds if s == sid] == [
            ("fork", f"fork at {index}"),
            ("append", ""),
        ]
    edges = {
        (e.get("data-source"), e.get("data-child"), e.get("data-source-version"))
        for e in svg.iterfind("svg:path[@class='fork-edge']", ns)
    }
    assert edges == {(root, sid, "9") for _, sid in forks}


def test_the_demo_prints_the_command_that_opens_the_viewer_on_its_store(tmp_path: Path) -> None:
    import shlex
    import urllib.request

    target = tmp_path / "demo.db"
    lines = _demo(target).splitlines()
    command = shlex.split(lines[lines.index("Browse this store (then open http://127.0.0.1:8765/):") + 1])
    assert command[1:] == ["serve", str(target)]
    # The printed command, on any free port instead of 8765.
    viewer = subprocess.Popen([*command, "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert viewer.stdout is not None
        started = viewer.stdout.readline()
        url = started.split(" at ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert "Voice call" in page and "4 sessions, newest first" in page
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
        if viewer.stdout is not None:
            viewer.stdout.close()
