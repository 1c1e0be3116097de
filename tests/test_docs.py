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


PROMPT = "$ transcripts "
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")
#: An id the store made at random (a rewrite's, say): it differs run to run, as times do.
MADE_ID = re.compile(r"msg_[0-9a-f]{20}")


def console_pages() -> list[Path]:
    return [page for page in PAGES if any(language == "console" for language, _, _ in FENCE.findall(page.read_text()))]


@pytest.mark.parametrize("page", console_pages(), ids=lambda page: page.name)
def test_command_line_examples_print_what_the_page_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``$ transcripts ...`` line of a ```console block runs (after the
    page's python blocks before it, in the same directory), and prints what
    the page shows below it; only times and made ids may differ. ENGINE_UPDATE_DOCS=1
    writes the output the commands print now into the page instead."""
    import shlex

    from click.testing import CliRunner

    from engine.cli import cli

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    text = page.read_text()
    updated, cursor = [], 0
    for match in FENCE.finditer(text):
        language, _, body = match.groups()
        if language == "python":
            exec(compile(body, f"{page.name} python", "exec"), namespace)
            continue
        if language != "console":
            continue
        shown: list[str] = []
        for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
            if not chunk.startswith(PROMPT):
                continue
            command, _, expected = chunk.partition("\n")
            result = CliRunner().invoke(cli, shlex.split(command[len(PROMPT) :]), prog_name="transcripts")
            assert result.exception is None or isinstance(result.exception, SystemExit), command
            failed = expected.strip().splitlines()[-1:] and expected.strip().splitlines()[-1].startswith("Error:")
            assert (result.exit_code != 0) == bool(failed), f"{command}: exit {result.exit_code}\n{result.output}"
            if os.environ.get("ENGINE_UPDATE_DOCS"):
                shown.append(command + "\n" + result.output)
            else:
                assert _unvarying(result.output) == _unvarying(expected), command
        if shown:
            start = match.start(3)
            updated.append(text[cursor:start] + "".join(shown))
            cursor = match.end(3)
    if updated:
        page.write_text("".join(updated) + text[cursor:])


def _unvarying(output: str) -> str:
    """Command output without what differs run to run: times, and the ids
    the store makes (an id named after a revision would not, but a rewrite's
    is random)."""
    return MADE_ID.sub("<id>", TIME.sub("<time>", output))
