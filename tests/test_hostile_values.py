"""Values an adversarial pass gave the public API, the CLI and a damaged
store: each is refused with a typed error (or read as it should be), never
a raw Python error, a traceback or a wrong answer."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from engine import InvalidArgument, InvalidMessage, Message, Transcripts, UnknownEventType
from engine.cli import cli
from engine.store import decode_event
from tests.conftest import StoreFactory


class _NoOffset(tzinfo):
    """A tzinfo that gives no offset: the datetime is naive by Python's rules."""

    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        return None

    def dst(self, moment: datetime | None) -> timedelta | None:
        return None

    def tzname(self, moment: datetime | None) -> str | None:
        return None


def test_a_datetime_whose_tzinfo_gives_no_offset_is_refused_as_naive(store: Transcripts) -> None:
    sid = store.create()
    store.append(sid, Message.user("a"))
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        store.get(sid, at=datetime(2026, 1, 1, tzinfo=_NoOffset()))  # was a raw TypeError


def test_a_page_cursor_in_another_time_zone_pages_as_in_utc(store: Transcripts) -> None:
    # Found by an adversarial pass: the cursor's creation time was compared as
    # text, so the same instant at UTC+2 gave an empty page and at UTC-5 the
    # sessions already seen.
    sids = [store.create(title=f"s{number}") for number in range(4)]
    page = store.sessions(limit=2)
    assert [info.id for info in page] == sids[:2]
    for hours in (2, -5, 0):
        moved = page[-1].created_at.astimezone(timezone(timedelta(hours=hours)))
        cursor = msgspec.structs.replace(page[-1], created_at=moved)
        assert [info.id for info in store.sessions(after=cursor)] == sids[2:]
    for broken in (
        msgspec.structs.replace(page[-1], id=None),  # was a raw TypeError
        msgspec.structs.replace(page[-1], created_at=page[-1].created_at.replace(tzinfo=None)),
    ):
        with pytest.raises(InvalidArgument, match="after= is the last session of the previous page"):
            store.sessions(after=broken)


def test_a_head_hash_with_digits_int_refuses_is_invalid_argument(store: Transcripts) -> None:
    sid = store.create()
    store.append(sid, Message.user("a"))
    digits = store.head_hash(sid).split(":")[1]
    for kept in (f"\u00b2:{digits}", "2" * 5000 + f":{digits}", f"\u0663:{digits}"):  # was a raw ValueError
        with pytest.raises(InvalidArgument, match="head_hash looks like"):
            store.verify(sid, head_hash=kept)
    assert store.verify(sid, head_hash=store.head_hash(sid)).version == 2


@pytest.mark.parametrize("topic", ["SessionCreated.v\u00b2", "SessionCreated.v" + "9" * 5000, "SessionCreated.v\u0661"])
def test_a_stored_type_name_with_digits_int_refuses_is_unknown_event_type(topic: str) -> None:
    # Found by an adversarial pass: "²" passed str.isdigit and then failed
    # int(), so the feed, the read model and verify --all raised ValueError.
    with pytest.raises(UnknownEventType):
        decode_event(topic, b"{}", "row 1")


def test_a_store_whose_type_name_was_altered_to_a_superscript_reads_as_damaged(tmp_path: Path) -> None:
    path = str(tmp_path / "tampered.db")
    with Transcripts.open(path) as store:
        store.create(session_id="s")
        store.append("s", Message.user("hi"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_kinds SET topic='SessionCreated.v\u00b2' WHERE topic='SessionCreated.v1'")
    db.close()
    with Transcripts.open(path) as store, pytest.raises(UnknownEventType):
        store.feed()
    result = CliRunner().invoke(cli, ["verify", path, "--all"])
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    feed = "FAIL the feed: UnknownEventType: session 's' version 1 names event type 'SessionCreated.v²'"
    assert feed in result.output


def test_cli_values_python_cannot_parse_are_one_line_errors(tmp_path: Path) -> None:
    path = str(tmp_path / "cli.db")
    with Transcripts.open(path) as store:
        store.create(session_id="trip", metadata={"n": 1})
        store.append("trip", Message.user("hi"))
    runner = CliRunner()
    shown = runner.invoke(cli, ["show", path, "trip", "--at", "9" * 5000])  # int() refuses 4,300+ digits
    assert shown.exit_code == 2 and isinstance(shown.exception, SystemExit)
    assert shown.output.startswith("Error: Invalid value for --at: '9999") and shown.output.count("\n") == 1
    assert "is beyond any event version a session has" in shown.output
    deep = runner.invoke(cli, ["sessions", path, "--meta", "n=" + "[" * 100_000])  # json.loads: RecursionError
    assert deep.exit_code == 0 and deep.exception is None
    assert "trip" not in deep.output  # matched as the text it is, which n=1 is not
    assert "trip" in runner.invoke(cli, ["sessions", path, "--meta", "n=1"]).output
    assert runner.invoke(cli, ["show", path, "trip", "--at", "2"]).exit_code == 0


def test_a_title_is_generated_without_the_nul_characters_of_the_message(store: Transcripts) -> None:
    sid = store.create()
    store.append(sid, Message.user("Refund\x00 for order 42"))  # a message may hold NUL, a title not
    assert store.generate_title(sid) == "Refund for order 42"
    assert store.get(sid).title == "Refund for order 42"
    only = store.create()
    store.append(only, Message.user("\x00\x00"))
    assert store.generate_title(only) is None


@pytest.mark.parametrize("suffix", ["-wal", "-journal", "-shm"])
def test_a_store_is_not_made_in_a_file_sqlite_keeps_beside_a_database(tmp_path: Path, suffix: str) -> None:
    # Found by an adversarial pass: a store at x.db-wal was made, and the next
    # opening of x.db had SQLite delete it, and the store with it.
    base = tmp_path / "x.db"
    with Transcripts.open(str(base)) as store:
        store.create(session_id="other")
    side = str(base) + suffix
    existed = Path(side).exists()
    with pytest.raises(InvalidArgument, match="a file SQLite keeps beside the database"):
        Transcripts.open(side)
    assert Path(side).exists() == existed  # nothing made there
    alone = tmp_path / "alone.db-wal"  # no database beside it: an ordinary name
    with Transcripts.open(str(alone)) as store:
        store.create()


def test_stores_fixture_backends_agree_on_a_cursor_from_another_zone(stores: StoreFactory) -> None:
    store = stores.open()
    first, second = store.create(), store.create()
    [info] = store.sessions(limit=1)
    east = msgspec.structs.replace(info, created_at=info.created_at.astimezone(timezone(timedelta(hours=9))))
    assert [later.id for later in stores.open().sessions(after=east)] == [second]
    assert info.id == first


def test_an_empty_message_id_and_huge_compaction_figures_are_refused(store: Transcripts) -> None:
    # Found by a newcomer pass: id="" counted as an id; tokens_before had no bound.
    with pytest.raises(InvalidMessage, match=r"Message\.id is empty"):
        Message.user("x", id="")
    sid = store.create()
    store.append(sid, Message.user("a\n  b   c"), Message.assistant("d"))
    forced = Message.user("y", id="set")
    msgspec.structs.force_setattr(forced, "id", "")  # changed after it was made: refused when written
    with pytest.raises(InvalidMessage, match=r"Message\.id is empty"):
        store.append(sid, forced)
    for figure in ("tokens_before", "tokens_after", "latency_ms"):
        with pytest.raises(InvalidArgument, match=rf"{figure} must be an int from 0 to 2\*\*63 - 1"):
            store.compact(sid, 0, 1, Message.system("s"), **{figure: 2**63})
    assert store.get(sid).version == 2
    assert store.get(sid).preview() == "a b c"  # one line: a sidebar shows it
    store.compact(sid, 0, 1, Message.system("s"), tokens_before=2**63 - 1)


def test_a_message_with_an_empty_id_in_an_older_store_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.state.content import as_stored

    with as_stored():  # as a store written before ids were checked holds it
        legacy = Message.user("old", id="")
    path = str(tmp_path / "s.db")
    with Transcripts.open(path) as store:
        sid = store.create()
        monkeypatch.setattr(Message, "__post_init__", lambda self: None)  # the engine before: no check
        store.append(sid, legacy)
        monkeypatch.undo()
    with Transcripts.open(path) as store:
        assert [(m.id, m.text) for m in store.verify(sid).messages] == [("", "old")]
