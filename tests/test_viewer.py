"""The web viewer without a browser: its timeline against the engine's own
time travel, its pages' escaping of untrusted text, and its HTTP surface
(read-only, loopback-only Host headers, typed errors as pages)."""

from __future__ import annotations

import html
import http.client
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Image, Message, Reasoning, SessionNotFound, ToolResult, ToolUse, Transcripts
from engine.viewer import Viewer, ViewerServer, is_loopback, timeline
from tests.conftest import StoreFactory

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _scenario(store: Transcripts) -> tuple[str, str]:
    """A session with appends, an edit, a compaction, an erasure and a fork
    that replaced a message; returns (session, fork)."""
    sid = store.create(title="trip")
    store.append(sid, Message.system("Be brief."), Message.user("Train or plane?"))
    store.append(sid, Message.assistant("Train."))
    store.append(sid, Message.user("Why?"), Message.assistant("Scenic."))
    store.rewrite(sid, 2, 3, [Message.assistant("The train.")], reason="edit")
    store.append(sid, Message.user("And the price?"))
    secret = store.append(sid, Message.user("my card is 4111"))
    assert secret
    card = store.get(sid).messages[-1].id
    assert card is not None
    store.compact(sid, 1, 3, Message.assistant("Summary: train."))
    store.erase(sid, card)
    fork = store.fork_replacing(sid, 2, Message.user("What about the bus?"))
    store.append(fork, Message.assistant("The bus is slower."))
    return sid, fork


def test_the_timeline_shows_what_time_travel_shows_at_every_version(stores: StoreFactory) -> None:
    store = stores.open()
    for session_id in _scenario(store):
        line = timeline(store, session_id)
        head = store.get(session_id)
        assert line.version == head.version
        for version in range(1, head.version + 1):
            assert line.at(version) == list(store.get(session_id, at=version).messages), version


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 3)),
            st.tuples(st.just("rewrite"), st.integers(0, 8), st.integers(0, 3), st.integers(0, 2)),
            st.tuples(st.just("erase"), st.integers(0, 8)),
        ),
        max_size=12,
    )
)
def test_the_timeline_matches_time_travel_after_any_edits(steps: list[tuple[object, ...]]) -> None:
    store = Transcripts.open()
    sid = store.create()
    made = 0
    for step in steps:
        messages = store.get(sid).messages
        if step[0] == "append":
            store.append(sid, *[Message.user(f"m{made + n}") for n in range(int(step[1]))])  # type: ignore[call-overload]
            made += int(step[1])  # type: ignore[call-overload]
        elif step[0] == "rewrite" and messages:
            start = int(step[1]) % len(messages)  # type: ignore[call-overload]
            end = min(len(messages), start + int(step[2]))  # type: ignore[call-overload]
            new = [Message.user(f"r{made + n}") for n in range(int(step[3]))]  # type: ignore[call-overload]
            made += len(new)
            if end > start or new:
                store.rewrite(sid, start, end, new, reason="edit")
        elif step[0] == "erase" and messages:
            target = messages[int(step[1]) % len(messages)]  # type: ignore[call-overload]
            if target.erased is None and target.id is not None:
                store.erase(sid, target.id)
    line = timeline(store, sid)
    for version in range(1, store.get(sid).version + 1):
        assert line.at(version) == list(store.get(sid, at=version).messages)


@pytest.fixture
def hostile_store() -> Iterator[tuple[Transcripts, str]]:
    store = Transcripts.open()
    sid = store.create(title=HOSTILE, session_id='s"><b>1', tags=["<i>tag"], metadata={"k": HOSTILE})
    store.append(sid, Message.user(HOSTILE), Message.assistant(f"</script>{HOSTILE}"))
    store.append(
        sid,
        Message(role="assistant", blocks=(ToolUse(id="call<1>", name=HOSTILE, arguments='{"q": "</script>"}'),)),
        Message(
            role="tool_results",
            blocks=(
                ToolResult(
                    tool_use_id="call<1>", content=(Image(media_type="image/svg+xml", data=b"<svg onload=alert(1)>"),)
                ),
            ),
        ),
        actor=HOSTILE,
    )
    yield store, sid
    store.close()


def _pages(viewer: Viewer, sid: str) -> dict[str, str]:
    pages = {}
    for name, path, query in (
        ("list", "/", {}),
        ("search", "/", {"q": ["<script"]}),
        ("session", "/session", {"id": [sid]}),
        ("earlier", "/session", {"id": [sid], "v": ["2"]}),
        ("history", "/history", {"id": [sid]}),
        ("graph", "/graph", {"id": [sid]}),
        ("diff", "/diff", {"id": [sid], "a": ["1"], "b": ["3"]}),
    ):
        response = viewer.respond(path, query)
        assert response.status == 200, (name, response.body[:300])
        pages[name] = response.body.decode()
    return pages


def test_untrusted_text_renders_as_text_on_every_page(hostile_store: tuple[Transcripts, str]) -> None:
    store, sid = hostile_store
    for name, page in _pages(Viewer(store), sid).items():
        assert "<script>alert" not in page, name
        assert "<img src=x" not in page, name
        assert "<b>1" not in page and "<i>tag" not in page, name
        assert "<svg onload" not in page, name
        # Only the viewer's own script element, and the JSON data element.
        scripts = re.findall(r"<script[^>]*>", page)
        assert set(scripts) <= {
            '<script src="/static/viewer.js" defer>',
            '<script type="application/json" id="entries">',
        }
        assert page.count("</script>") == len(scripts), name
    session = _pages(Viewer(store), sid)["session"]
    assert html.escape(HOSTILE) in session  # shown, as text
    assert "image (image/svg+xml, 21 bytes) not shown" in session  # SVG can hold script: never an <img>


def test_the_slider_data_cannot_close_its_script_element(hostile_store: tuple[Transcripts, str]) -> None:
    store, sid = hostile_store
    page = Viewer(store).respond("/session", {"id": [sid]}).body.decode()
    data = page.split('<script type="application/json" id="entries">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    assert "\\u003cscript\\u003e" in data  # the actor, escaped for JSON


def test_bidirectional_and_c1_controls_show_as_escapes_on_every_page() -> None:
    # Found by a newcomer: the command line showed them as escapes, but the
    # viewer sent U+202E and U+2066 as they are, so text after them could
    # show reversed.
    import json

    store = Transcripts.open()
    sid = store.create(title="t\u2066itle\u2069")
    store.append(sid, Message.user("abc \u202e evil \x85 next"), actor="a\u200fctor")
    store.set_title(sid, "t\u202eitle 2")
    pages = _pages(Viewer(store), sid)
    for name, page in pages.items():
        for control in ("\u202e", "\u2066", "\u2069", "\u200f", "\x85"):
            assert control not in page, (name, repr(control))
    assert "abc \\u202e evil \\u0085 next" in pages["session"]
    assert "t\\u202eitle 2" in pages["graph"] or "t\\u2066itle" in pages["graph"]
    data = pages["session"].split('<script type="application/json" id="entries">', 1)[1].split("</script>", 1)[0]
    shown = json.dumps(json.loads(data), ensure_ascii=False)
    assert "\\u2066" in json.loads(data)["titles"][0] and "\\u202e" in json.loads(data)["titles"][-1], shown
    assert [m.text for m in store.get(sid).messages] == ["abc \u202e evil \x85 next"]  # the store keeps them
    store.close()


def test_images_of_raster_types_are_shown_inline_and_others_are_not() -> None:
    store = Transcripts.open()
    sid = store.create()
    store.append(
        sid,
        Message(
            role="user",
            blocks=(
                Image(media_type="image/png", data=b"\x89PNG"),
                Image(media_type="image/png", ref="https://example.com/x.png"),
            ),
        ),
    )
    page = Viewer(store).respond("/session", {"id": [sid]}).body.decode()
    assert '<img class="image" alt="image" src="data:image/png;base64,iVBORw==">' in page
    assert "https://example.com/x.png" in page and 'src="https://' not in page  # a reference is text, never fetched


def test_errors_are_pages_with_a_status() -> None:
    store = Transcripts.open()
    sid = store.create()
    viewer = Viewer(store)
    assert viewer.respond("/session", {"id": ["nope"]}).status == 404
    assert viewer.respond("/session", {"id": [sid], "v": ["9"]}).status == 404
    assert viewer.respond("/session", {"id": [sid], "v": ["-1"]}).status == 400
    assert viewer.respond("/session", {}).status == 400
    assert viewer.respond("/nowhere", {}).status == 404
    assert viewer.respond("/static/../../etc/passwd", {}).status == 404
    assert viewer.respond("/", {"meta": ["novalue"]}).status == 400


def test_the_list_searches_and_filters_newest_first() -> None:
    store = Transcripts.open()
    first = store.create(title="Oslo trip", tags=["travel"], metadata={"team": "a"})
    second = store.create(title="Bergen trip", status="active", metadata={"team": 2})
    store.create(title="Refund")
    viewer = Viewer(store)

    def listed(**query: str) -> list[str]:
        page = viewer.respond("/", {key: [value] for key, value in query.items()}).body.decode()
        return re.findall(r'class="id">([^<]+)<', page)

    assert listed(q="TRIP") == [second, first]
    assert listed(q="trip", status="active") == [second]
    assert listed(tag="travel") == [first]
    assert listed(meta="team=2") == [second]  # 2 is a number, as metadata keeps it
    assert listed(meta="team=a") == [first]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ViewerServer, Transcripts, str]]:
    store = Transcripts.open(str(tmp_path / "s.db"))
    sid = store.create(title="served")
    store.append(sid, Message.user("hello"))
    server = ViewerServer(Viewer(store), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, store, sid
    server.shutdown()
    server.server_close()
    store.close()


class _Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = dict(response.getheaders())

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name)


def _request(server: ViewerServer, method: str, path: str, host: str | None = None) -> _Answer:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        headers = {"Host": host} if host is not None else {}
        connection.request(method, path, body=b"x" if method in ("POST", "PUT") else None, headers=headers)
        response = connection.getresponse()
        response.read()
        return _Answer(response)
    finally:
        connection.close()


def test_the_server_is_read_only(served: tuple[ViewerServer, Transcripts, str]) -> None:
    server, store, sid = served
    before = store.history(sid)
    # Every method but GET and HEAD (an adversarial pass found TRACE and made-up ones got a 501 page).
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "BREW"):
        response = _request(server, method, f"/session?id={sid}")
        assert response.status == 405, method
        assert response.getheader("Allow") == "GET, HEAD"
    assert store.history(sid) == before
    page = _request(server, "GET", f"/session?id={sid}")
    assert page.status == 200
    policy = page.getheader("Content-Security-Policy") or ""
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.getheader("X-Content-Type-Options") == "nosniff"
    assert _request(server, "HEAD", "/").status == 200


def test_a_page_of_another_host_name_is_refused(served: tuple[ViewerServer, Transcripts, str]) -> None:
    server, _, _ = served
    port = server.server_address[1]
    assert _request(server, "GET", "/", host=f"attacker.example:{port}").status == 400
    assert _request(server, "GET", "/", host=f"localhost:{port}").status == 200
    assert _request(server, "GET", "/", host=f"127.0.0.1:{port}").status == 200
    # No Host header at all (an HTTP/1.0 tool, never a browser's page): served, as before "" meant every interface.
    with socket.create_connection(server.server_address[:2]) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert raw.recv(12) == b"HTTP/1.1 200"


def test_which_hosts_only_this_machine_can_reach() -> None:
    # "" is every interface: it was taken for loopback, and `serve --host ""`
    # listened on all of them without the warning or the notice.
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert is_loopback("::ffff:127.0.0.1")  # 127.0.0.1, IPv4-mapped
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")


def test_a_notice_is_on_every_page_when_the_viewer_is_reachable_from_other_hosts() -> None:
    store = Transcripts.open()
    sid = store.create()
    viewer = Viewer(store, notice="This viewer listens on 0.0.0.0: other hosts can reach it")
    for path, query in (("/", {}), ("/session", {"id": [sid]}), ("/nowhere", {})):
        assert 'class="notice" role="alert">This viewer listens on 0.0.0.0' in viewer.respond(path, query).body.decode()
    assert "notice" not in Viewer(store).respond("/", {}).body.decode().split("<main>")[0].split("<body")[1]


def test_odd_query_strings_get_a_4xx_page_never_an_exception(served: tuple[ViewerServer, Transcripts, str]) -> None:
    # Found by an adversarial tester: each of these raised, and the client got no answer.
    server, _, sid = served
    viewer = server.viewer
    assert viewer.respond("/session", {"id": [sid], "v": ["\u00b2"]}).status == 400  # a digit to str.isdigit
    assert viewer.respond("/diff", {"id": [sid], "a": ["\u0663"]}).status == 400
    assert viewer.respond("/", {"meta": ["k=" + "[" * 5000]}).status == 200  # not JSON: matched as text
    assert viewer.respond("/", {"meta": ["k=" + "x" * 20_000]}).status == 400
    assert _request(server, "GET", "/?" + "&".join(["q=a"] * 51)).status == 400
    assert _request(server, "GET", f"/session?id={sid}&v=%C2%B2").status == 400
    beyond = viewer.respond("/session", {"id": [sid], "v": ["9" * 23]})  # a whole number, beyond any version
    assert beyond.status == 400 and b"beyond any a session has" in beyond.body


def test_a_session_deleted_and_made_again_under_its_id_never_shows_the_old_content() -> None:
    # Found by an adversarial tester: the timeline was kept by version only.
    store = Transcripts.open()
    store.create(session_id="case-42")
    store.append("case-42", Message.user("SECRET card 4111"))
    viewer = Viewer(store)
    assert "SECRET" in viewer.respond("/session", {"id": ["case-42"]}).body.decode()
    store.delete("case-42")
    store.create(session_id="case-42")
    store.append("case-42", Message.user("hello"))
    for page in ("/session", "/history"):
        body = viewer.respond(page, {"id": ["case-42"]}).body.decode()
        assert "SECRET" not in body and "hello" in body, page


def test_an_id_no_store_can_hold_is_not_found_on_every_backend(stores: StoreFactory) -> None:
    # PostgreSQL text cannot hold NUL: its driver error was a 500 page.
    store = stores.open()
    with pytest.raises(SessionNotFound):
        store.get("a\x00b")
    assert Viewer(store).respond("/session", {"id": ["a\x00b"]}).status == 404


def test_the_list_pages_through_every_session() -> None:
    # Found by a newcomer: past the first 200 there was no way on.
    store = Transcripts.open()
    made = [store.create(title=f"s{number:03d}") for number in range(450)]
    viewer = Viewer(store)
    seen: list[str] = []
    page: str | None = "/"
    query: dict[str, list[str]] = {}
    while page is not None:
        body = viewer.respond("/", query).body.decode()
        seen += re.findall(r'class="id">([^<]+)<', body)
        older = re.search(r'rel="next" href="/\?page=(\d+)"', body)
        page, query = (None, {}) if older is None else ("/", {"page": [older.group(1)]})
    assert sorted(seen) == sorted(made) and len(seen) == 450
    assert "401-450 of 450 sessions" in viewer.respond("/", {"page": ["3"]}).body.decode()


def test_history_filters_by_event_and_links_each_content_change_to_its_diff() -> None:
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("a"))
    store.set_title(sid, "named")
    store.rewrite(sid, 0, 1, [Message.user("b")], reason="edit", note="typo")
    viewer = Viewer(store)
    body = viewer.respond("/history", {"id": [sid]}).body.decode()
    assert "4 events" in body
    assert body.count('class="row-diff"') == 2  # the append and the rewrite
    assert f'href="/diff?id={sid}&amp;a=3&amp;b=4"' in body
    only = viewer.respond("/history", {"id": [sid], "kind": ["messages_rewritten"]}).body.decode()
    assert "1 event<" in only and "typo" in only and "title_changed</td>" not in only


def test_a_diff_takes_revision_ids_and_a_fork_is_compared_at_its_fork_point() -> None:
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("one"), Message.assistant("two"))
    before = store.get(sid).revision
    store.append(sid, Message.user("three"))
    viewer = Viewer(store)
    body = viewer.respond("/diff", {"id": [sid], "a": [before], "b": ["3"]}).body.decode()
    assert "v2 against v3" in body and "at message 2, 0 removed and 1 added" in body
    # Found by a newcomer pass: a short revision was blamed on get()'s at=, a parameter this page has not.
    short = viewer.respond("/diff", {"id": [sid], "a": [before[:15]], "b": ["3"]})
    said = short.body.decode()
    assert short.status == 400 and "a= a revision id looks like" in said and "at=" not in said
    fork = store.fork_replacing(sid, 1, Message.assistant("TWO"))
    store.append(fork, Message.user("later"))
    body = viewer.respond("/diff", {"id": [fork], "source": ["1"]}).body.decode()
    # What the fork changed when made (two replaced by TWO, three dropped), not what came after it.
    assert "at message 1, 2 removed and 1 added" in body and "later" not in body
    assert "<select" not in body  # no version pickers that would say something else
    page = viewer.respond("/session", {"id": [fork]}).body.decode()
    assert page.count("inherited from the source") == 1 and page.count("the fork's replacement") == 1


def test_the_header_follows_the_version_shown_and_long_texts_fold() -> None:
    store = Transcripts.open()
    sid = store.create(title="first title")
    store.append(sid, Message.user("x" * 10_000))
    store.set_title(sid, "second title")
    viewer = Viewer(store)
    early = viewer.respond("/session", {"id": [sid], "v": ["2"]}).body.decode()
    assert '<h1 id="title">first title</h1>' in early and "<dt>Title now</dt><dd>second title</dd>" in early
    assert "show all 10,000 characters" in early
    assert '<h1 id="title">second title</h1>' in viewer.respond("/session", {"id": [sid]}).body.decode()
    never = store.create()
    store.append(never, Message.user("hi"))
    untitled = viewer.respond("/session", {"id": [never]}).body.decode()
    assert '<h1 id="title">(untitled)</h1>' in untitled and "Title now" not in untitled


def test_a_long_family_is_drawn_with_runs_of_appends_as_one_dot() -> None:
    # Found by a newcomer: one dot per commit made a 10,000-commit session
    # 231,000 pixels wide, its forks out of sight.
    from engine.viewer import draw

    store = Transcripts.open()
    sid = store.create()
    for number in range(400):
        store.append(sid, Message.user(f"m{number}"))
        if number == 150:
            store.rewrite(sid, 0, 1, [Message.user("edited")], reason="edit")
            edited = store.get(sid).version
        if number == 250:
            fork = store.fork(sid)
            fork_point = store.get(sid).version
    svg = draw(store, sid)
    circles = re.findall(r'<circle class="commit (\w+)"[^>]*data-session="([^"]+)" data-version="(\d+)"', svg)
    assert len(circles) < 10
    root = [(kind, int(version)) for kind, session, version in circles if session == sid]
    assert ("rewrite", edited) in root and ("append", fork_point) in root  # kept: the edit and the fork point
    assert ("append", store.get(sid).version) in root  # the last run ends at the head
    edge = re.search(r'data-child="[^"]+" data-source-version="(\d+)" d="M(\d+)', svg)
    assert edge is not None and int(edge.group(1)) == fork_point
    assert fork in svg
    assert "appends</text>" in svg


def test_what_a_second_adversarial_pass_found() -> None:
    store = Transcripts.open()
    viewer = Viewer(store)

    # A session untitled at a version showed its later title there.
    sid = store.create()
    store.append(sid, Message.user("hello"))
    store.set_title(sid, "Named later")
    early = viewer.respond("/session", {"id": [sid], "v": ["2"]}).body.decode()
    assert '<h1 id="title">(untitled)</h1>' in early

    # "then a replacement" was worked out from the head, not from the fork.
    base = store.create()
    store.append(base, Message.user("q1"), Message.assistant("a1"), Message.user("q2"), Message.assistant("a2"))
    kept = store.fork_at(base, 2)
    store.append(kept, Message.user("a new question"))
    replaced = store.fork_replacing(base, 2, Message.user("q2 edited"))
    store.rewrite(replaced, 1, 3, [], reason="trim")
    facts = {
        fork: re.sub(r"<[^>]+>", "", re.search(r"<dt>Fork of</dt><dd>(.*?)</dd>", body).group(1))  # type: ignore[union-attr]
        for fork in (kept, replaced)
        for body in [viewer.respond("/session", {"id": [fork]}).body.decode()]
    }
    assert facts[kept].endswith("keeping its first 2 messages")
    assert facts[replaced].endswith("keeping its first 2 messages, then a replacement")

    # An erasure's history row linked to a diff that could only say "no difference".
    store.erase(sid, store.get(sid).messages[0].id or "")
    history = viewer.respond("/history", {"id": [sid]}).body.decode()
    assert history.count('class="row-diff"') == 1  # the append only

    # Folding covered text blocks only.
    big = "x" * 50_000
    long = store.create()
    store.append(
        long,
        Message.user("write it"),
        Message(role="assistant", blocks=(Reasoning(text=big), ToolUse(id="c1", name="write", arguments=f'"{big}"'))),
    )
    assert viewer.respond("/session", {"id": [long]}).body.decode().count('class="more"') == 2

    # Paging words.
    assert "page= is a page number" in viewer.respond("/", {"page": ["x"]}).body.decode()
    past = viewer.respond("/", {"page": ["2"]}).body.decode()
    assert "No session on page 2" in past and 'rel="prev" href="/?page=1"' in past


def test_a_fork_edge_taken_before_the_source_had_commits_starts_on_the_source_lane() -> None:
    from engine.viewer import draw

    store = Transcripts.open()
    root = store.create(title="root")
    early = store.fork(root)
    store.append(root, Message.user("later"))
    store.append(early, Message.user("e"))
    svg = draw(store, root)
    lane = re.search(rf'data-session="{root}".*?<line class="lane-line" x1="(\d+)" y1="(\d+)"', svg, re.S)
    edge = re.search(r'<path class="fork-edge"[^>]* d="M(\d+),(\d+) C[^"]*?(\d+),(\d+)"', svg)
    assert lane is not None and edge is not None
    assert int(lane.group(1)) <= int(edge.group(1))  # the edge starts on the drawn lane
    assert int(edge.group(1)) < int(edge.group(3))  # and runs forward to the fork's dot


def test_the_timeline_follows_an_erasure_made_in_a_fork_of_what_it_inherited() -> None:
    store = Transcripts.open()
    source = store.create()
    store.append(source, Message.user("my card is 4111"), Message.assistant("noted"))
    fork = store.fork(source)
    store.append(fork, Message.user("and now?"))
    store.erase(fork, store.get(fork).messages[0].id or "")
    line = timeline(store, fork)
    for version in range(1, store.get(fork).version + 1):
        assert line.at(version) == list(store.get(fork, at=version).messages), version
    assert line.at(1)[0].erased is not None  # erased where it is stored: the source's log, so from v1


def test_a_forks_diff_shows_its_replacement_first_and_folds_what_it_left_out() -> None:
    # Found by a newcomer: the one replacement came after 140 removed messages.
    store = Transcripts.open()
    sid = store.create()
    store.append(sid, *[Message.user(f"m{number}") for number in range(40)])
    fork = store.fork_replacing(sid, 5, Message.user("the edit"))
    viewer = Viewer(store)
    body = viewer.respond("/diff", {"id": [fork]}).body.decode()  # a fork's diff: what it changed
    assert "at message 5, 35 removed and 1 added" in body
    changed = body.split('<section class="diff">', 1)[1]
    assert changed.index("m5<") < changed.index("the edit") < changed.index('<details class="more">')
    assert "34 more removed messages" in body
    assert "Compare versions of this fork instead" in body
    versions = viewer.respond("/diff", {"id": [fork], "a": ["1"], "b": ["1"]}).body.decode()
    assert "v1 against v1: no difference" in versions


def test_the_graph_marks_the_session_it_was_opened_from() -> None:
    from engine.viewer import draw

    store = Transcripts.open()
    root = store.create()
    store.append(root, Message.user("hi"))
    fork = store.fork(root)
    svg = draw(store, fork)
    assert re.search(rf'<g class="lane current" data-session="{fork}"[^>]*aria-current="true"', svg)
    assert f'<g class="lane" data-session="{root}"' in svg


def test_a_browser_closing_its_connection_is_not_printed_as_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Seen in a test run: "Exception occurred during processing of request"
    # and a traceback on stderr when a page was left mid-answer.
    with Transcripts.open() as store:
        server = ViewerServer(Viewer(store), port=0)
        try:
            for error in (ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")):
                try:
                    raise error
                except ConnectionError:
                    server.handle_error(None, ("127.0.0.1", 1))
            assert capsys.readouterr().err == ""
            try:
                raise ValueError("a real fault")
            except ValueError:
                server.handle_error(None, ("127.0.0.1", 1))
            assert "ValueError: a real fault" in capsys.readouterr().err  # a real one is still reported
        finally:
            server.server_close()
