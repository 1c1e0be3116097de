"""Every ```python block in README.md and docs/*.md runs, in order, one
namespace per file, in a scratch directory. Blocks marked ```python no-run
(connection strings to servers the reader has, not the test machine) are not
executed; the PostgreSQL backend is covered by the contract suite instead."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return [
        body
        for language, options, body in FENCE.findall(page.read_text())
        if language == "python" and "no-run" not in options
    ]


def test_every_page_has_examples() -> None:
    for page in PAGES:
        assert python_blocks(page), f"{page.name} has no runnable example"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(python_blocks(page), 1):
        code = compile(block, f"{page.name} block {number}", "exec")
        exec(code, namespace)
    assert os.getcwd() == str(tmp_path)
