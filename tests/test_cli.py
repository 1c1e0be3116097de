"""The ``transcripts`` command-line tool on SQLite and PostgreSQL stores,
through click's runner and as real processes: every command, its JSON
output against the library's own answers, and one-line errors with a
non-zero exit code for bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result

from engine import Message, Reasoning, ToolResult, ToolUse, Transcripts, Usage
from engine.cli import cli
from tests._resealing import relink_and_reseal
from tests.conftest import POSTGRES_DSN, StoreFactory, store_factories

CLI_BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_DSN else [])


@pytest.fixture(params=CLI_BACKENDS)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


def _run(factory: StoreFactory, *args: str) -> Result:
    """``transcripts COMMAND STORE --prefix P ARGS``: the store is always the first argument."""
    command, *rest = args
    extra = ["--read-model", str(factory.path / "read.db")] if command in ("search", "project") else []
    if command == "project":
        extra = ["--into", str(factory.path / "read.db")]
    target = factory.target
    assert target is not None
    return CliRunner().invoke(cli, [command, target, "--prefix", factory.prefix, *rest, *extra])


def _one_message_store(path: Path, text: str, **create: Any) -> str:
    """A SQLite store at ``path`` holding one session of one user message, closed; the session's id."""
    store = Transcripts.open(path)
    sid = store.create(**create)
    store.append(sid, Message.user(text))
    store.close()
    return sid


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _family(store: Transcripts) -> dict[str, str]:
    sid = store.create(title="Trip", metadata={"channel": "web"})
    store.append(sid, Message.system("Be brief."), Message.user("Is the Bergen line scenic?"))
    store.append(sid, Message.assistant("Checking.", ToolUse(id="c1", name="weather", arguments="{}")))
    store.append(sid, Message.tool_results(ToolResult.of("c1", "Snow.")), usage=Usage(input=9, output=2))
    store.append(sid, Message.assistant("Yes, in snow."))
    store.rewrite(sid, 4, 5, [Message.assistant("Yes: sit on the left.")], "edit", note="shorter")
    first = store.fork_at(sid, 2)
    store.append(first, Message.assistant("Maybe."))
    second = store.fork_replacing(sid, 1, Message.user("Is the night train worth it?"))
    other = store.create(title="Other", metadata={"channel": "phone"})
    store.append(other, Message.user("hello"))
    return {"root": sid, "first": first, "second": second, "other": other}


def test_every_listing_command_agrees_with_the_library(factory: StoreFactory) -> None:
    store = factory.open()
    ids = _family(store)
    listed = json.loads(_ok(_run(factory, "sessions", "--json")))
    assert {row["id"] for row in listed} == {info.id for info in store.sessions()}
    assert [row["updated_at"] for row in listed] == sorted((row["updated_at"] for row in listed), reverse=True)
    assert [row["id"] for row in json.loads(_ok(_run(factory, "sessions", "--json", "--meta", "channel=phone")))] == [
        ids["other"]
    ]
    assert len(json.loads(_ok(_run(factory, "sessions", "--json", "--title", "TRIP")))) == 3
    assert len(json.loads(_ok(_run(factory, "sessions", "--json", "--limit", "2")))) == 2

    shown = json.loads(_ok(_run(factory, "show", ids["root"], "--format", "json")))
    assert [m["role"] for m in shown["messages"]] == [m.role for m in store.get(ids["root"]).messages]
    assert shown["revision"] == store.get(ids["root"]).revision
    past = json.loads(_ok(_run(factory, "show", ids["root"], "--at", "2", "--format", "json")))
    assert past["version"] == 2 and len(past["messages"]) == 2
    assert "sit on the left" in _ok(_run(factory, "show", ids["root"]))
    assert _ok(_run(factory, "show", ids["root"], "--format", "markdown")).startswith("# Trip")

    logged = json.loads(_ok(_run(factory, "log", ids["root"], "--json")))
    assert [row["kind"] for row in logged] == [entry.kind for entry in store.history(ids["root"])]
    assert json.loads(_ok(_run(factory, "history", ids["root"], "--json"))) == logged  # the Python API's name
    commits = json.loads(_ok(_run(factory, "revisions", ids["root"], "--json")))
    assert [row["reason"] for row in commits] == ["append"] * 4 + ["edit"]
    changed = json.loads(_ok(_run(factory, "diff", ids["root"], "6", "7", "--json")))
    assert changed["start"] == 4 and changed["added"][0]["blocks"][0]["text"] == "Yes: sit on the left."

    tree = json.loads(_ok(_run(factory, "tree", ids["first"], "--json")))
    assert [(m["id"], m["depth"], m["fork_index"]) for m in tree] == [
        (ids["root"], 0, None),
        (ids["first"], 1, 2),
        (ids["second"], 1, 1),
    ]
    assert "ok" in _ok(_run(factory, "verify", "--all"))


def test_export_formats(factory: StoreFactory) -> None:
    store = factory.open()
    ids = _family(store)
    lines = _ok(_run(factory, "export", ids["root"])).splitlines()
    assert [json.loads(line)["role"] for line in lines] == [m.role for m in store.get(ids["root"]).messages]
    chat = json.loads(_ok(_run(factory, "export", ids["root"], "--format", "openai-chat")))
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "assistant"]
    assert chat[2]["tool_calls"][0]["id"] == "c1" and chat[3]["tool_call_id"] == "c1"
    anthropic = json.loads(_ok(_run(factory, "export", ids["root"], "--format", "anthropic")))
    assert anthropic["system"] == "Be brief."
    assert [m["role"] for m in anthropic["messages"]] == ["user", "assistant", "user", "assistant"]
    assert anthropic["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": "Snow.",
        "is_error": False,
    }
    thinking = store.create()
    store.append(thinking, Message.assistant(Reasoning(text="Hm."), "Hi."))
    refused = _run(factory, "export", thinking, "--format", "openai-chat")
    assert refused.exit_code == 1 and "messages[0].blocks[0]" in refused.output
    assert "pass --lossy to" in refused.output and "lossy=True" not in refused.output  # the flag, not the argument
    lossy = json.loads(_ok(_run(factory, "export", thinking, "--format", "openai-chat", "--lossy")))
    assert lossy == [{"role": "assistant", "content": "Hi."}]


def test_project_and_search(factory: StoreFactory) -> None:
    store = factory.open()
    ids = _family(store)
    assert "events applied" in _ok(_run(factory, "project"))
    hits = json.loads(_ok(_run(factory, "search", "scenic", "--json")))
    assert {(hit["session"], hit["position"]) for hit in hits} == {(ids["root"], 1), (ids["first"], 1)}
    store.append(ids["other"], Message.assistant("The scenic route, then."))
    hits = json.loads(_ok(_run(factory, "search", "scenic", "--json")))  # caught up first
    assert (ids["other"], 1) in {(hit["session"], hit["position"]) for hit in hits}


def test_ingest_a_file_of_realtime_events(factory: StoreFactory, tmp_path: Path) -> None:
    factory.open()
    events = [
        {"type": "conversation.item.added", "event_id": "e1", "item": {"id": "item_1", "type": "message",
         "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}},
        {"type": "conversation.item.done", "event_id": "e2", "item": {"id": "item_1", "type": "message",
         "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}},
        {"type": "not.an.event"},
    ]  # fmt: skip
    path = tmp_path / "call.jsonl"
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n\n", encoding="utf-8")
    output = _ok(_run(factory, "ingest", "voice-1", str(path), "--create"))
    assert output.startswith("3 events:") and "the session has 1 message" in output
    again = _ok(_run(factory, "ingest", "voice-1", str(path)))
    assert "duplicate" in again and "the session has 1 message" in again
    assert factory.open().get("voice-1").messages[0].text == "Hello there"


def test_the_graph_of_a_session_with_two_forks_and_a_rewrite(factory: StoreFactory, tmp_path: Path) -> None:
    store = factory.open()
    ids = _family(store)
    picture = tmp_path / "graph.svg"
    assert "wrote" in _ok(_run(factory, "graph", ids["second"], "--svg", str(picture)))
    svg = ElementTree.parse(picture).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert svg.get("data-root") == ids["root"]
    lanes = [
        lane.get("data-session") for lane in svg.iterfind("svg:g", ns) if "lane" in (lane.get("class") or "").split()
    ]
    assert lanes == [ids["root"], ids["first"], ids["second"]]  # the other session is not in the family
    dots = [
        (dot.get("data-session"), dot.get("data-kind"), dot.get("data-reason"))
        for dot in svg.iterfind(".//svg:circle", ns)
    ]
    root_dots = [(kind, reason) for session, kind, reason in dots if session == ids["root"]]
    assert root_dots == [("append", "")] * 4 + [("rewrite", "edit")]
    assert [(kind, reason) for session, kind, reason in dots if session == ids["first"]] == [
        ("fork", "fork at 2"),
        ("append", ""),
    ]
    assert [(kind, reason) for session, kind, reason in dots if session == ids["second"]] == [("fork", "fork at 1")]
    edges = {
        (edge.get("data-source"), edge.get("data-child"), edge.get("data-source-version"))
        for edge in svg.iterfind("svg:path[@class='fork-edge']", ns)
    }
    assert edges == {(ids["root"], ids["first"], "7"), (ids["root"], ids["second"], "7")}  # after the rewrite
    labels = [text.text for text in svg.iterfind(".//svg:text[@class='label']", ns)]
    assert "edit" in labels


def test_bad_input_gives_one_line_and_a_non_zero_exit(factory: StoreFactory, tmp_path: Path) -> None:
    store = factory.open()
    ids = _family(store)
    cases = [
        (("show", "no-such-session"), 1, "SessionNotFound"),
        (("show", ids["root"], "--at", "yesterday"), 2, "--at"),
        (("show", ids["root"], "--at", "99"), 1, "VersionNotFound"),
        (("show", ids["root"], "--at", "2026-01-01T00:00:00"), 2, "time zone"),
        (("diff", ids["root"], "1", "later"), 2, "neither"),
        (("verify",), 2, "--all"),
        (("sessions", "--meta", "channel"), 2, "KEY=VALUE"),
        (("export", ids["root"], "--format", "yaml"), 2, "yaml"),
        (("search", 'unbalanced "quote'), 1, "search query"),
        (("ingest", ids["root"], str(tmp_path / "missing.jsonl")), 2, "missing.jsonl"),
    ]
    for args, code, words in cases:
        result = _run(factory, *args)
        assert result.exit_code == code, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, (args, result.output)  # one line, never a traceback
        assert result.output.startswith("Error: ")


def test_a_store_that_is_not_there_or_not_a_store(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["sessions", str(tmp_path / "nothing.db")])
    assert missing.exit_code == 1 and "no store at" in missing.output
    assert not (tmp_path / "nothing.db").exists()  # looking never creates a store
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"junk " * 500)
    broken = runner.invoke(cli, ["sessions", str(junk)])
    assert broken.exit_code == 1 and "StorageUnavailable" in broken.output and len(broken.output.splitlines()) == 1
    dead = runner.invoke(cli, ["sessions", "postgresql://postgres@127.0.0.1:1/test"])
    assert dead.exit_code == 1 and "StorageUnavailable" in dead.output


def test_a_real_process_and_the_console_script(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    sid = _one_message_store(path, "hi", title="From a process")
    module = subprocess.run(
        [sys.executable, "-m", "engine", "sessions", str(path), "--json"], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0, module.stderr
    assert json.loads(module.stdout)[0]["title"] == "From a process"
    script = Path(sys.executable).with_name("transcripts")
    shown = subprocess.run([str(script), "show", str(path), sid], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "hi" in shown.stdout and "\x1b[" not in shown.stdout  # no colour when piped
    bad = subprocess.run([str(script), "show", str(path), "nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error: SessionNotFound")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_mistakes_found_by_review_are_one_line_errors(factory: StoreFactory, tmp_path: Path) -> None:
    store = factory.open()
    ids = _family(store)
    not_utf8 = tmp_path / "bad.jsonl"
    not_utf8.write_bytes(b"\xff\xfe{}\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    cases = [
        (("show", ids["root"], "--at", "²"), 2),  # a digit to str.isdigit(), not to int()
        (("diff", ids["root"], "٣", "3"), 2),
        (("search", "scenic", "--limit", "99999999999999999999"), 2),
        (("ingest", "voice", str(not_utf8), "--create"), 1),
        (("ingest", "voice", str(empty), "--create"), 1),
        (("ingest", "voice", str(empty), "--create", "--provider", "opneai"), 2),
        (("verify", ids["root"], "--all"), 2),
        (("show", ids["root"], "--at", "sha256:0000"), 2),  # too short a prefix
        (("show", ids["root"], "--at", "sha256:00000000000"), 2),  # no such revision
    ]
    for args, code in cases:
        result = _run(factory, *args)
        assert result.exit_code == code, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: "), result.output
    assert "voice" not in {info.id for info in store.sessions()}  # nothing was made by a refused ingest


def test_broken_lines_of_an_ingest_file_are_named(factory: StoreFactory, tmp_path: Path) -> None:
    factory.open()
    path = tmp_path / "call.jsonl"
    good = {"type": "conversation.item.added", "event_id": "e1", "item": {"id": "i1", "type": "message",
            "role": "user", "content": [{"type": "input_text", "text": "hi"}]}}  # fmt: skip
    # A byte order mark first (Windows tools write one) is not part of the first event.
    path.write_text("\ufeff" + json.dumps(good) + "\n{not json\n\n" + json.dumps({"type": 7}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["ingest", str(factory.target), "--prefix", factory.prefix, "v", str(path), "--create"]
    )
    assert result.exit_code == 1, result.output  # a script can tell that lines were rejected
    assert "line 2: rejected:" in result.output and "line 4: rejected:" in result.output
    assert "line 1" not in result.output
    assert "3 events:" in result.output and "2 rejected" in result.output
    assert "2 of 3 events were rejected" in result.output
    assert [m.text for m in factory.open().get("v").messages] == ["hi"]  # the good line is stored
    path.write_text("{not json\n", encoding="utf-8")
    again = CliRunner().invoke(cli, ["ingest", str(factory.target), "--prefix", factory.prefix, "v", str(path)])
    assert again.exit_code == 1 and "1 of 1 event was rejected" in again.output, again.output
    missing = CliRunner().invoke(cli, ["ingest", str(factory.target), "--prefix", factory.prefix, "w", str(path)])
    assert missing.exit_code == 1 and "pass --create" in missing.output, missing.output


def test_revision_prefixes_times_and_metadata_values(factory: StoreFactory) -> None:
    store = factory.open()
    ids = _family(store)
    store.update_metadata(ids["other"], {"n": 2, "flag": True, "none": None})
    commits = store.revisions(ids["root"])
    short = commits[-1].revision[:19]
    shown = json.loads(_ok(_run(factory, "show", ids["root"], "--at", short, "--format", "json")))
    assert shown["revision"] == commits[-1].revision and shown["metadata"] == {"channel": "web"}
    logged = json.loads(_ok(_run(factory, "log", ids["root"], "--json")))
    at_third = json.loads(_ok(_run(factory, "show", ids["root"], "--at", logged[2]["at"], "--format", "json")))
    assert at_third["version"] >= 3  # a time log printed shows the state after that event

    def listed(*meta: str) -> set[str]:
        args = [item for value in meta for item in ("--meta", value)]
        return {row["id"] for row in json.loads(_ok(_run(factory, "sessions", "--json", *args)))}

    assert listed("n=2") == listed("flag=true") == listed("none=null") == {ids["other"]}
    assert listed('n="2"') == set()  # the string "2" is not the number 2
    assert listed("missing=null") == set()  # a key that is not there is not null


def test_control_characters_never_reach_the_terminal_or_break_the_picture(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    # Found by adversarial testers: bidirectional overrides and marks, C1
    # controls (U+009B starts an escape sequence) and a title's newline
    # reached the terminal through show, diff, markdown and every JSON output.
    title = "bell\x07 esc\x1b[31m red \u202erlo\u200f c1\x9b2J\n   0  system  forged line"
    sid = store.create(title=title, session_id="ctl")
    store.append(sid, Message.user("line one\nline two \x1b[2J cleared?"))
    store.append(sid, Message.user("pay \u202eoreze\u202c now \u2066isolated\u2069 \u061c\u200e\x9b"))
    store.append(sid, Message.user("to be edited"))
    store.rewrite(
        sid, 2, 3, [Message.user("after\x1b[2J\u202eRTL\x07bell\n+ assistant: forged\n\n**assistant**")], reason="edit"
    )
    store.close()
    runner = CliRunner()
    unsafe = "\x1b\x07\x9b\u202e\u202c\u2066\u2069\u061c\u200e\u200f"
    text, json_document, json_lines = "text", "json", "jsonl"
    for form, args in (
        (text, ["sessions", str(path)]),
        (json_document, ["sessions", str(path), "--json"]),
        (text, ["show", str(path), sid]),
        (json_document, ["show", str(path), sid, "--format", "json"]),
        (text, ["show", str(path), sid, "--format", "markdown"]),
        (text, ["tree", str(path), sid]),
        (json_document, ["tree", str(path), sid, "--json"]),
        (text, ["log", str(path), sid]),
        (json_document, ["log", str(path), sid, "--json"]),
        (text, ["diff", str(path), sid, "4", "5"]),
        (json_document, ["diff", str(path), sid, "4", "5", "--json"]),
        (json_lines, ["export", str(path), sid]),
        (text, ["export", str(path), sid, "--format", "markdown"]),
        (json_document, ["export", str(path), sid, "--format", "openai-chat"]),
    ):
        output = _ok(runner.invoke(cli, args))
        assert not any(character in output for character in unsafe), args
        assert not any(line.lstrip().startswith("0  system") for line in output.splitlines()), args
        if args[0] == "diff" and form == text:  # a message's lines cannot pass for the diff's own
            assert not any(line.startswith("+ assistant: forged") for line in output.splitlines()), args
        if "markdown" in args:  # found by a newcomer: a message's text could pass for the next message's role
            roles = [line for line in output.splitlines() if line.startswith("**")]
            assert roles == ["**user**"] * 3, args
            assert "> + assistant: forged" in output.splitlines(), args
        for document in output.splitlines() if form == json_lines else [output] if form == json_document else []:
            json.loads(document)  # still JSON: the characters are escaped inside its strings
    assert "pay \\u202eoreze\\u202c now" in _ok(runner.invoke(cli, ["show", str(path), sid]))
    assert "after\\x1b[2J\\u202eRTL\\x07bell" in _ok(runner.invoke(cli, ["diff", str(path), sid, "4", "5"]))
    shown = json.loads(_ok(runner.invoke(cli, ["show", str(path), sid, "--format", "json"])))
    assert shown["title"] == title  # the same data, escaped for the terminal only
    picture = tmp_path / "g.svg"
    _ok(runner.invoke(cli, ["graph", str(path), sid, "--svg", str(picture)]))
    ElementTree.parse(picture)  # well-formed XML


def test_looking_never_creates_a_store(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    result = CliRunner().invoke(cli, ["sessions", str(other)])
    assert result.exit_code == 1 and "no transcript store" in result.output
    with sqlite3.connect(other) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"notes"}
    store = tmp_path / "store.db"
    Transcripts.open(store, table_prefix="acme").close()
    wrong = CliRunner().invoke(cli, ["sessions", str(store)])
    assert wrong.exit_code == 1 and "another table prefix" in wrong.output
    assert json.loads(_ok(CliRunner().invoke(cli, ["sessions", str(store), "--prefix", "acme", "--json"]))) == []


@pytest.mark.parametrize("form", ["openai-responses", "gemini"])
def test_export_to_the_other_model_formats_reads_back(tmp_path: Path, form: str) -> None:
    from engine import formats

    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    sid = store.create()
    store.append(sid, Message.user("Is the Bergen line scenic?"), Message.assistant("Yes, very."))
    result = CliRunner().invoke(cli, ["export", str(path), sid, "--format", form])
    assert result.exit_code == 0, result.output
    read = formats.from_openai_responses if form == "openai-responses" else formats.from_gemini
    back = read(json.loads(result.output))
    assert [m.digest for m in back] == [m.digest for m in store.get(sid).messages]


def test_a_session_is_named_by_the_start_of_its_id_as_listings_show_it(factory: StoreFactory) -> None:
    # Found by a newcomer: `tree` prints ids cut to 8 characters, and `show`
    # given one of them said there was no such session.
    store = factory.open()
    ids = _family(store)
    root = ids["root"]
    assert f"<- {root[:8]} v" in _ok(_run(factory, "tree", ids["first"]))
    assert "Yes: sit on the left." in _ok(_run(factory, "show", root[:8]))
    for command in ("log", "revisions", "tree", "export"):
        assert _ok(_run(factory, command, root[:8])) == _ok(_run(factory, command, root)), command
    store.create(session_id="case-1")
    store.create(session_id="case-2")
    ambiguous = _run(factory, "show", "case-")
    assert ambiguous.exit_code == 1
    assert "SID 'case-' is the start of 2 session ids (case-1, case-2): give more of it" in ambiguous.output
    missing = _run(factory, "show", "nothing-like-it")
    assert missing.exit_code == 1 and "SessionNotFound" in missing.output


def test_error_messages_quoting_stored_or_given_text_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    # Found by an adversarial pass: messages of errors quote what they are
    # about (a rejected event's field, a damaged row's bytes), and the CLI
    # printed them as they were: a tampered store could repaint the screen
    # of whoever runs `verify`.
    import sqlite3

    path = tmp_path / "store.db"
    sid = _one_message_store(path, "hello", session_id="trip")
    unsafe = "\x1b\x07\x9b\u202e"
    events = tmp_path / "events.jsonl"
    part = {"type": "input_text\x1b[2J\u202e", "text": "hi"}
    item = {"id": "u1", "type": "message", "role": "user", "content": [part]}
    event = {"type": "conversation.item.added", "event_id": "e1", "previous_item_id": None, "item": item}
    events.write_text(json.dumps(event, ensure_ascii=False) + "\n")
    ingested = CliRunner().invoke(cli, ["ingest", str(path), sid, str(events)])
    assert ingested.exit_code == 1
    assert "rejected" in ingested.output and "\\x1b[2J" in ingested.output, ingested.output
    assert not any(character in ingested.output for character in unsafe)
    with sqlite3.connect(path) as connection:  # a tampered event (still JSON, a key holding escapes), resealed
        connection.execute(
            "UPDATE transcripts_log SET state = ? WHERE version = 1",
            (
                b'{"kind":"session_created","at":"2026-01-01T00:00:00Z","\\u001b]8;;http://evil/\\u0007\\u001b[2J\\u202e":1}',
            ),
        )
        relink_and_reseal(connection, sid)
    for args in (["verify", str(path), "--all"], ["show", str(path), sid]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert not any(character in result.output for character in unsafe), (args, result.output)
        assert "\\x1b" in result.output, (args, result.output)


def test_arguments_that_are_not_unicode_and_a_damaged_listing_row(tmp_path: Path) -> None:
    # Found by an adversarial pass: a command-line argument of bytes that are
    # not UTF-8 (Python gives them as lone surrogates) ended in a traceback
    # in show, search and serve; `verify --all` stopped at one altered listing
    # row without checking anything else; verify took no id prefix.
    import sqlite3

    path = tmp_path / "store.db"
    store = Transcripts.open(path)
    trip = store.create(session_id="trip-0001", title="Trip")
    store.append(trip, Message.user("hello"))
    refund = store.create(session_id="refund-0002")
    store.append(refund, Message.user("money back"))
    store.close()
    runner = CliRunner()
    _ok(runner.invoke(cli, ["project", str(path), "--into", str(tmp_path / "read.db")]))
    for args in (
        ["show", str(path), "\udcff"],
        ["log", str(path), "\udcff"],
        ["search", str(path), "\udcff", "--read-model", str(tmp_path / "read.db")],
        ["serve", str(path), "--host", "\udcff", "--port", "0"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Unicode" in result.output or "not a host" in result.output, (args, result.output)
    assert "ok   trip-0001" in _ok(runner.invoke(cli, ["verify", str(path), "trip"]))  # the start of its id
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE transcripts_sessions SET title = 'Hacked' WHERE session_id = 'trip-0001'")
    audit = runner.invoke(cli, ["verify", str(path), "--all"])
    assert audit.exit_code == 1
    lines = audit.output.splitlines()
    assert lines[0].startswith("FAIL the listing: CorruptStore") and "trip-0001" in lines[0], lines
    assert any(line.startswith("FAIL trip-0001") for line in lines), lines
    assert any(line.startswith("ok   refund-0002") for line in lines), lines
    assert any(line.startswith("ok   the feed") for line in lines), lines
    assert lines[-1] == "Error: failed verification: 1 of 2 sessions and the listing", lines


def test_looking_at_a_store_whose_type_names_were_deleted_writes_nothing(tmp_path: Path) -> None:
    # Found by an adversarial pass: opening such a store named the missing
    # types again under new codes, a write during a look that left the log
    # unreadable for good (its rows keep the old codes).
    import sqlite3

    path = tmp_path / "store.db"
    _one_message_store(path, "hello")
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM transcripts_kinds WHERE topic = 'MessagesAppended.v1.text-revid'")
        before = connection.execute("SELECT code, topic FROM transcripts_kinds ORDER BY code").fetchall()
    result = CliRunner().invoke(cli, ["sessions", str(path)])
    assert result.exit_code == 1 and "CorruptStore" in result.output and "type codes [1]" in result.output, (
        result.output
    )
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT code, topic FROM transcripts_kinds ORDER BY code").fetchall() == before


def test_a_seal_key_file_that_is_a_device_or_too_long_is_refused_not_read_forever(tmp_path: Path) -> None:
    # Found by an adversarial pass: --seal-key-file /dev/zero read until memory ran out.
    path = tmp_path / "store.db"
    Transcripts.open(path).close()
    long_key = tmp_path / "long.key"
    long_key.write_bytes(b"k" * 100_000)
    for key, problem in (("/dev/zero", "not a regular file"), (str(long_key), "not a seal key file")):
        result = CliRunner().invoke(cli, ["sessions", str(path), "--seal-key-file", key])
        assert result.exit_code == 2 and problem in result.output, result.output


def test_the_tool_run_bare_shows_its_help() -> None:
    result = CliRunner().invoke(cli, [], prog_name="transcripts")
    assert result.exit_code == 2
    assert result.output.startswith("Usage: transcripts") and "\nCommands:\n" in result.output, result.output


def test_show_diff_and_export_say_what_a_newcomer_missed(tmp_path: Path) -> None:
    # Found by a newcomer pass: show and the markdown export hid incomplete
    # and cut-short messages; diff said "no change" across a title and a
    # metadata change; export had no --at; a directory was "no store".
    from engine import Transcript

    path = str(tmp_path / "s.db")
    spoken = Message(
        role="assistant", blocks=(Transcript(text="Once upon a time", truncated_at_ms=900),), incomplete=True
    )
    tricky = Message.user("bidi \u202e and \x1b[31m escape")
    with Transcripts.open(path) as store:
        store.create(title="voice", session_id="v", metadata={"tier": "free"})
        store.append("v", Message.user("Tell me a story"), spoken, tricky)
        store.set_title("v", "Refund request")
        store.update_metadata("v", {"tier": "vip"})
        spoken_id = store.get("v").messages[1].id
    runner = CliRunner()
    shown = runner.invoke(cli, ["show", path, "v"]).output
    assert f"   1  assistant     {spoken_id}  (incomplete) Once upon a time [heard up to 900 ms]" in shown
    assert (
        "(incomplete) Once upon a time [heard up to 900 ms]"
        in runner.invoke(cli, ["export", path, "v", "--format", "markdown"]).output
    )
    changed = runner.invoke(cli, ["diff", path, "v", "2", "4"]).output.splitlines()
    assert changed[1:] == [
        "no change to the messages",
        'title: "voice" -> "Refund request"',
        'metadata "tier": "free" -> "vip"',
    ]
    lines = runner.invoke(cli, ["export", path, "v"]).output.splitlines()  # jsonl: reads back as the messages
    with Transcripts.open(path) as store:
        assert [msgspec.json.decode(line, type=Message) for line in lines] == list(store.get("v").messages)
    assert runner.invoke(cli, ["export", path, "v", "--at", "1"]).output == ""  # the session when it was created
    early = runner.invoke(cli, ["export", path, "v", "--at", "2", "--format", "openai-chat", "--lossy"])
    assert early.exit_code == 0 and json.loads(early.output)[0] == {"role": "user", "content": "Tell me a story"}
    directory = runner.invoke(cli, ["sessions", str(tmp_path)])
    assert directory.exit_code == 1 and f"no store at {tmp_path}: is a directory" in directory.output


def test_diff_prints_each_changed_value_exactly_as_json(tmp_path: Path) -> None:
    # Found by a newcomer pass: diff collapsed whitespace runs ("a  b" and
    # "a b" both printed as 'a b', so a change read as none), printed header
    # fields as Python reprs (() and None), and marked a removed metadata
    # key but not an added one. Expected lines are the JSON of each value.
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        store.create(title="a b", session_id="d", metadata={"note": "x  y", "gone": [1, 2]})
        store.set_title("d", "a  b")
        store.update_metadata(
            "d", {"note": "x y", "new": {"k": "line\nbreak"}, "ctl": "\x1b[31m\u202e\x9b"}, remove=["gone"]
        )
        store.set_tags("d", ["vip"])
        store.set_header("d", model="gpt-5")
        version = store.get("d").version
    output = CliRunner().invoke(cli, ["diff", path, "d", "1", str(version)]).output
    assert output.splitlines()[1:] == [
        "no change to the messages",
        'title: "a b" -> "a  b"',
        'metadata "note": "x  y" -> "x y"',
        'metadata "gone": removed [1, 2]',
        'metadata "new": added {"k": "line\\nbreak"}',
        'metadata "ctl": added "\\u001b[31m\\u202e\\u009b"',  # escaped as JSON escapes them
        'tags: [] -> ["vip"]',
        'model: null -> "gpt-5"',
    ]


def test_ingest_titles_a_created_session_as_asked(tmp_path: Path) -> None:
    path, events = str(tmp_path / "s.db"), tmp_path / "call.jsonl"
    item = {"id": "item_u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    events.write_text(
        json.dumps({"type": "conversation.item.added", "event_id": "e1", "previous_item_id": None, "item": item}) + "\n"
    )
    runner = CliRunner()
    alone = runner.invoke(cli, ["ingest", path, "call-1", str(events), "--title", "Platform question"])
    assert alone.exit_code == 2 and "--title" in alone.output and not Path(path).exists()
    made = runner.invoke(cli, ["ingest", path, "call-1", str(events), "--create", "--title", "Platform question"])
    assert made.exit_code == 0, made.output
    with Transcripts.open(path) as store:
        assert store.get("call-1").title == "Platform question"


def test_tables_align_wide_characters_and_show_json_has_the_header(tmp_path: Path) -> None:
    # Found by a newcomer pass: a CJK title pushed the columns after it out
    # of line; show --format json left the header out.
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        store.create(title="東京から大阪への新幹線", session_id="a", model="gpt-5", tags=["rail"])
        store.create(title="plain title", session_id="b")
    runner = CliRunner()
    lines = runner.invoke(cli, ["sessions", path]).output.splitlines()

    def columns_before(line: str, word: str) -> int:  # a CJK ideograph takes two columns of a terminal
        return sum(2 if "\u3000" <= char <= "\u9fff" else 1 for char in line[: line.index(word)])

    assert [columns_before(line, "started") for line in lines[1:]] == [columns_before(lines[0], "status")] * 2
    header = json.loads(runner.invoke(cli, ["show", path, "a", "--format", "json"]).output)["header"]
    assert (header["model"], header["tags"], header["status"]) == ("gpt-5", ["rail"], "started")


def test_verify_reports_as_json_for_scripts(tmp_path: Path) -> None:
    # Asked for by a newcomer pass: verify had no --json.
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        store.create(session_id="a")
        store.append("a", Message.user("hi"))
        store.create(session_id="b")
    runner = CliRunner()
    healthy = runner.invoke(cli, ["verify", path, "--all", "--json"])
    assert healthy.exit_code == 0, healthy.output
    document = json.loads(healthy.output)
    assert document["ok"] is True
    sessions = {entry["id"]: entry for entry in document["results"] if entry["check"] == "session"}
    assert (sessions["a"]["status"], sessions["a"]["version"], sessions["a"]["messages"]) == ("ok", 2, 1)
    assert [entry["check"] for entry in document["results"] if entry["check"] != "session"] == ["feed", "snapshots"]
    with sqlite3.connect(path) as db:  # the message's bytes altered behind the engine's back
        db.execute("UPDATE transcripts_log SET state = replace(state, X'6869', X'686f') WHERE version = 2")
    db.close()
    damaged = runner.invoke(cli, ["verify", path, "a", "--json"])
    assert damaged.exit_code == 1
    document = json.loads(damaged.stdout)
    assert document["ok"] is False
    [entry] = document["results"]
    assert (entry["id"], entry["status"], entry["error"]) == ("a", "fail", "CorruptStore")


def test_show_prints_each_message_id_in_a_column(tmp_path: Path) -> None:
    # Found by a newcomer pass: show printed no ids, and erase(), fork_replacing()
    # and the rest take one. Given ids of any length, the column is as wide as
    # the longest; an id the store made is shown whole.
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        sid = store.create(session_id="ids")
        store.append(sid, Message.user("first", id="a"), Message.assistant("second", id="turn-0002"))
        store.append(sid, Message.user("third"))
        made = store.get(sid).messages[2].id
    assert made is not None and made.startswith("msg_")
    lines = _ok(CliRunner().invoke(cli, ["show", path, sid])).splitlines()
    assert lines[2:] == [
        "   0  user          a                         first",
        "   1  assistant     turn-0002                 second",
        f"   2  user          {made}  third",
    ]


def test_ingest_reads_a_json_array_and_leaves_no_empty_session_behind(tmp_path: Path) -> None:
    # Found by a newcomer pass: a file holding a JSON array of events (as a
    # recorder may save a call) was one rejected "event", and --create left
    # the session it made behind, empty.
    path, events = str(tmp_path / "s.db"), tmp_path / "call.json"
    item = {"id": "item_u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    added = {"type": "conversation.item.added", "event_id": "e1", "previous_item_id": None, "item": item}
    events.write_text(json.dumps([added, {"type": "conversation.item.done", "event_id": "e2", "item": item}], indent=1))
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", path, "call-1", str(events), "--create"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 events:") and "the session has 1 message" in result.output
    with Transcripts.open(path) as store:
        assert [m.text for m in store.get("call-1").messages] == ["hi"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "conversation.item.added"}\n[1, 2]\n')  # no event id, no item; not an object
    failed = runner.invoke(cli, ["ingest", path, "call-2", str(broken), "--create"])
    assert failed.exit_code == 1 and "line 1: rejected" in failed.output and "line 2: rejected" in failed.output
    assert "was not created" in failed.output
    with Transcripts.open(path) as store:
        assert [info.id for info in store.sessions()] == ["call-1"]


def test_ingest_names_the_events_it_ignores_and_why(tmp_path: Path) -> None:
    # Found by a newcomer pass: a mistyped event type was ignored in silence
    # (the summary counted it among events that change no transcript).
    path, events = str(tmp_path / "s.db"), tmp_path / "call.jsonl"
    item = {"id": "item_u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}
    second = {**item, "id": "item_u2", "content": [{"type": "input_text", "text": "second"}]}
    lines = [
        {"type": "conversation.item.added", "event_id": "e1", "previous_item_id": None, "item": item},
        {"type": "rate_limits.updated", "event_id": "e2", "rate_limits": []},
        {"type": "conversation.itme.added", "event_id": "e3", "previous_item_id": "item_u1", "item": second},
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner().invoke(cli, ["ingest", path, "call-1", str(events), "--create"])
    assert result.exit_code == 0, result.output
    said = result.output.splitlines()
    assert said[0] == "3 events: 2 ignored, 1 materialised; the session has 1 message"
    assert "ignored (lines 2): rate_limits.updated does not change the transcript" in said
    unknown = (
        "ignored (lines 3): 'conversation.itme.added' is not an OpenAI Realtime server event type this engine knows"
    )
    assert any(line.startswith(unknown) for line in said)
