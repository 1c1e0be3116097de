"""The viewer in a real browser: headless Chromium (Debian's ``chromium``,
which ``make`` and CI install; never a downloaded browser) driven by
Playwright, against stores these tests build on SQLite and PostgreSQL.

Every expected transcript comes from the engine's own time travel
(``get(sid, at=v)``), never from the viewer. With ``ENGINE_UPDATE_DOCS=1``
the screenshots of each page are saved for docs/viewer.md."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from engine import Message, ToolResult, ToolUse, Transcripts
from engine.state.content import Reasoning, Text
from engine.viewer import Viewer, ViewerServer
from tests.conftest import BACKENDS, StoreFactory, store_factories

DOCS_IMAGES = Path(__file__).parent.parent / "docs" / "images"
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(2)>'


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("the browser tests need Debian's chromium: `apt-get install chromium` (make test installs it)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=[kind for kind in BACKENDS if kind != "memory"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


class Served:
    def __init__(self, store: Transcripts) -> None:
        self.store = store
        self.server = ViewerServer(Viewer(store), "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _build(store: Transcripts) -> dict[str, str]:
    trip = store.create(title="Trip planning", tags=["travel"], status="active")
    store.append(trip, Message.system("You are a concise travel assistant."), Message.user("Train or plane to Bergen?"))
    store.append(
        trip,
        Message(
            role="assistant",
            blocks=(
                Reasoning(text="Check the weather first."),
                ToolUse(id="call_1", name="weather", arguments='{"city": "Bergen"}'),
            ),
        ),
    )
    store.append(
        trip, Message(role="tool_results", blocks=(ToolResult(tool_use_id="call_1", content=(Text(text="rain"),)),))
    )
    store.append(trip, Message.assistant("Take the train: it is scenic even in rain."), actor="agent")
    store.rewrite(
        trip, 4, 5, [Message.assistant("The train: scenic, and rain does not delay it.")], reason="edit", note="tone"
    )
    store.append(trip, Message.user("How long does it take?"), Message.assistant("About seven hours."))
    store.set_title(trip, "Oslo to Bergen")
    fork = store.fork_replacing(trip, 1, Message.user("Bus or plane to Bergen?"))
    store.append(fork, Message.assistant("The plane: the bus takes all day."))
    refund = store.create(title="Refund request")
    store.append(refund, Message.user(HOSTILE), Message.assistant("I cannot run that."))
    return {"trip": trip, "fork": fork, "refund": refund}


@pytest.fixture
def served(factory: StoreFactory) -> Iterator[tuple[Served, dict[str, str]]]:
    store = factory.open()
    made = _build(store)
    running = Served(store)
    yield running, made
    running.close()


def _texts(page: Page) -> list[str]:
    """The text of each message the page shows now (hidden ones left out)."""
    return page.eval_on_selector_all(
        "#transcript .msg:not([hidden])",
        "items => items.map(m => Array.from(m.querySelectorAll('.text, .spoken, .tool-use b'))"
        ".filter(e => !e.closest('details')).map(e => e.textContent).join(' | '))",
    )


def _expected(store: Transcripts, sid: str, version: int | None = None) -> list[str]:
    state = store.get(sid) if version is None else store.get(sid, at=version)
    shown = []
    for message in state.messages:
        parts = []
        for block in message.blocks:
            if isinstance(block, Text):
                parts.append(block.text)
            elif isinstance(block, ToolUse):
                parts.append(block.name)
            elif isinstance(block, ToolResult):
                parts += [part.text for part in block.content if isinstance(part, Text)]
        shown.append(" | ".join(parts))
    return shown


def _snap(page: Page, name: str, tmp_path: Path) -> None:
    target = DOCS_IMAGES if os.environ.get("ENGINE_UPDATE_DOCS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"viewer-{name}.png"), full_page=False)


def test_a_person_browses_searches_scrubs_forks_and_diffs(
    browser: Browser, served: tuple[Served, dict[str, str]], tmp_path: Path
) -> None:
    running, made = served
    store = running.store
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    # The list, newest first, then a search.
    page.goto(running.url)
    titles = page.locator("table.sessions a.session-link").all_inner_texts()
    assert titles == ["Refund request", "Oslo to Bergen", "Oslo to Bergen"]  # the fork keeps its source's title
    _snap(page, "list", tmp_path)
    page.fill("input[name=q]", "bergen")
    page.click("form.filters button")
    expect(page.locator("table.sessions tbody tr")).to_have_count(2)
    page.select_option("select[name=status]", "active")
    page.click("form.filters button")
    expect(page.locator("table.sessions tbody tr")).to_have_count(1)

    # A session at its head.
    page.click(f"a[href='/session?id={made['trip']}']")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    assert _texts(page) == _expected(store, made["trip"])
    head = store.get(made["trip"]).version
    assert page.locator("#version").get_attribute("max") == str(head)
    page.locator(".reasoning summary").first.wait_for()
    assert not page.locator(".reasoning .text").first.is_visible()  # reasoning starts collapsed
    assert page.locator(".tool-result b").first.inner_text() == "weather"  # the result names the call it answers
    _snap(page, "session", tmp_path)

    # Back in time: every version shows what get(at=v) gives, and names its event.
    for version in (head - 1, 5, 2, 6, head):
        page.locator("#version").fill(str(version))
        assert _texts(page) == _expected(store, made["trip"], version), version
        entry = store.history(made["trip"])[version - 1]
        assert page.locator("#event").inner_text().startswith(f"v{version} · ")
        assert entry.kind in page.locator("#event").inner_text()
        assert page.locator("#revision").inner_text() == entry.revision[:19] + "…"
        title = store.get(made["trip"], at=version).title
        assert page.locator("h1#title").inner_text() == title, version
        page.wait_for_url(f"**v={version}")
    edit = next(entry.version for entry in store.history(made["trip"]) if entry.kind == "messages_rewritten")
    page.locator("#version").fill(str(edit - 1))
    page.click("#previous")
    assert _texts(page) == _expected(store, made["trip"], edit - 2)
    page.click("#next")
    page.click("#next")
    assert _texts(page) == _expected(store, made["trip"], edit)  # the edit: the old answer gone, the new one there
    assert "rain does not delay it" in page.locator("#transcript .msg.changed").inner_text()
    _snap(page, "session-earlier", tmp_path)

    # Opened at a version (as a history row links it): the change is in view;
    # a version that added no message has no change to show.
    page.goto(f"{running.url}session?id={made['trip']}&v={edit}")
    expect(page.locator("#transcript .msg.changed")).to_be_in_viewport()
    retitled = next(e.version for e in store.history(made["trip"]) if e.kind == "title_changed")
    page.locator("#version").fill(str(retitled))
    expect(page.locator("#jump")).to_be_disabled()
    page.locator("#version").fill(str(edit))
    expect(page.locator("#jump")).to_be_enabled()

    # The history, with the edit's reason and note.
    page.click("nav.tabs a:text('History')")
    row = page.locator("table.history tr", has_text="messages_rewritten")
    assert "edit" in row.inner_text() and "tone" in row.inner_text()
    _snap(page, "history", tmp_path)

    # The family graph: open the fork from its lane's commit.
    page.click("nav.tabs a:text('Forks and revisions')")
    fork_dot = page.locator(f"svg a[href*='id={made['fork']}'] circle.fork")
    expect(fork_dot).to_have_count(1)
    _snap(page, "graph", tmp_path)
    fork_dot.click()
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    assert made["fork"] in page.url
    assert _texts(page) == _expected(store, made["fork"], 1)
    assert page.locator("dl.facts").inner_text().count(made["trip"]) == 1  # "Fork of" the source

    # The fork against its source, then two versions of the source.
    page.goto(f"{running.url}diff?id={made['fork']}&source=1")
    assert page.locator(".diff-removed").all_inner_texts()[0].endswith("Train or plane to Bergen?")
    assert "Bus or plane to Bergen?" in page.locator(".diff-added").first.inner_text()
    page.goto(f"{running.url}diff?id={made['trip']}")
    page.select_option("select[name=a]", str(edit - 1))
    page.select_option("select[name=b]", str(edit))
    page.click("form.diff-form button")
    assert "it is scenic even in rain" in page.locator(".diff-removed").inner_text()
    assert "rain does not delay it" in page.locator(".diff-added").inner_text()
    _snap(page, "diff", tmp_path)

    # Untrusted text is shown as text: no script ran, no element was made of it.
    page.goto(f"{running.url}session?id={made['refund']}")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    assert HOSTILE in page.locator("#transcript").inner_text()
    assert page.locator("#transcript img").count() == 0
    page.goto(f"{running.url}?q={HOSTILE}")
    assert page.locator("input[name=q]").input_value() == HOSTILE
    assert dialogs == []
    assert errors == [], errors
    page.close()


def test_a_10000_message_session_with_100_forks_opens_and_scrubs_quickly(browser: Browser, tmp_path: Path) -> None:
    """Correctness is asserted; the times are printed (a timed assertion on a
    shared machine would be noise: see the note on each figure)."""
    store = Transcripts.open(str(tmp_path / "big.db"), synchronous="off")
    sid = store.create(title="long session")
    for number in range(10_000):
        store.append(
            sid, Message.user(f"question {number}") if number % 2 == 0 else Message.assistant(f"answer {number}")
        )
    for number in range(100):
        store.fork_at(sid, 100 * number + 50)
    head = store.get(sid).version
    running = Served(store)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        loads = []
        for _ in range(3):  # the first load builds the timeline; the next ones reuse it
            started = time.perf_counter()
            page.goto(f"{running.url}session?id={sid}")
            page.locator("body[data-ready=true]").wait_for()
            loads.append((time.perf_counter() - started) * 1000)
        steps: list[float] = page.evaluate(
            """(head) => {
                const slider = document.getElementById("version");
                const times = [];
                for (let step = 0; step < 200; step++) {
                    const started = performance.now();
                    slider.value = String(head - 1 - (step % 100));
                    slider.dispatchEvent(new Event("input"));
                    document.getElementById("transcript").getBoundingClientRect();
                    document.body.offsetHeight;
                    times.push(performance.now() - started);
                }
                return times;
            }""",
            head,
        )
        jump: float = page.evaluate(
            """() => {
                const slider = document.getElementById("version");
                const started = performance.now();
                slider.value = "2";
                slider.dispatchEvent(new Event("input"));
                document.body.offsetHeight;
                return performance.now() - started;
            }"""
        )
        assert page.locator("#count").inner_text() == str(len(store.get(sid, at=2).messages))
        height: int = page.evaluate("() => document.documentElement.scrollHeight")
        assert height < 3000, height  # the groups of hidden messages take no room
        page.locator("#version").fill(str(head - 37))
        assert int(page.locator("#count").inner_text()) == len(store.get(sid, at=head - 37).messages)
        assert _texts(page)[-1] == _expected(store, sid, head - 37)[-1]
        replays = []
        for version in range(head - 20, head):
            started = time.perf_counter()
            store.get(sid, at=version)
            replays.append((time.perf_counter() - started) * 1000)
        figures = {
            "page load, first (ms)": loads[0],
            "page load, cached timeline (median of 2, ms)": statistics.median(loads[1:]),
            "slider step (median of 200, ms)": statistics.median(steps),
            "slider step (slowest of 200, ms)": max(steps),
            "slider jump from the head to v2 (ms)": jump,
            "get(sid, at=v) per step, for comparison (median of 20, ms)": statistics.median(replays),
        }
        print("\nviewer figures, 10,000 messages (10,001 versions) and 100 forks:", file=sys.stderr)
        for name, value in figures.items():
            print(f"  {name}: {value:.2f}", file=sys.stderr)
        _write_figures(figures)
    finally:
        page.close()
        running.close()
        store.close()


def _write_figures(figures: dict[str, Any]) -> None:
    where = os.environ.get("ENGINE_VIEWER_FIGURES")
    if where:
        import json

        Path(where).write_text(json.dumps(figures, indent=2) + "\n")
