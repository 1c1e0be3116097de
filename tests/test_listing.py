"""sessions() filters in the database, on the summary each write keeps in
the listing row: the same answers on every backend as reading each
session's state would give, for rows written before summaries existed
too, and a summary altered in the file is damage, not a different answer.
Expected values are the sessions the tests made."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine import CorruptStore, InvalidArgument, SessionNotFound, Transcripts
from engine.store import SessionRow
from engine.store._chain import seal_of
from tests.conftest import StoreFactory


def _made(store: Transcripts) -> dict[str, str]:
    ids = {
        "a": store.create("alpha", {"team": "billing", "n": 1}, status="active", tags=["vip"], owner="ana"),
        "b": store.create("beta", {"team": "billing", "n": 1.0}, status="finished", owner="bo"),
        "c": store.create("gamma", {"team": "sales", "n": True}, tags=["vip", "voice"], pinned=True),
    }
    ids["d"] = store.spawn(ids["a"], task="research", status="active", owner="ana")
    return ids


def _listed(store: Transcripts, **filters: object) -> list[str]:
    return [info.id for info in store.sessions(**filters)]  # type: ignore[arg-type]


def test_each_filter_finds_the_sessions_that_match(stores: StoreFactory) -> None:
    store = stores.open()
    ids = _made(store)
    a, b, c, d = ids["a"], ids["b"], ids["c"], ids["d"]
    assert _listed(store, status="active") == [a, d]
    assert _listed(store, tags=["vip"]) == [a, c]
    assert _listed(store, tags=["vip", "voice"]) == [c]
    assert _listed(store, pinned=True) == [c]
    assert _listed(store, pinned=False) == [a, b, d]
    assert _listed(store, owner="ana") == [a, d]
    assert _listed(store, parent=a) == [d]
    assert _listed(store, parent=b) == []
    assert _listed(store, metadata={"team": "billing"}) == [a, b]
    # JSON equality, as metadata keeps them apart: 1, 1.0 and true differ.
    assert _listed(store, metadata={"n": 1}) == [a]
    assert _listed(store, metadata={"n": 1.0}) == [b]
    assert _listed(store, metadata={"n": True}) == [c]
    assert _listed(store, status="active", owner="ana", parent=a) == [d]
    assert _listed(store, status="active", limit=1) == [a]
    assert _listed(store, status="active", after=a) == [d]
    assert _listed(store, status="active", after=b) == [d]  # after= need not match the filter
    # The listing shows each session's header fields and parent.
    info = {i.id: i for i in store.sessions()}
    assert (info[a].status, info[a].tags, info[a].pinned, info[a].owner, info[a].parent) == (
        "active",
        ("vip",),
        False,
        "ana",
        None,
    )
    assert (info[d].parent, info[c].pinned, info[c].tags) == (a, True, ("vip", "voice"))
    # A change is seen by the next listing, on a reopened store too.
    store.set_status(b, "active")
    store.update_metadata(c, {"team": "billing"})
    assert _listed(store, status="active") == [a, b, d]
    assert _listed(stores.open(), metadata={"team": "billing"}) == [a, b, c]


def test_bad_filters_are_refused(store: Transcripts) -> None:
    with pytest.raises(InvalidArgument, match="status must be one of"):
        store.sessions(status="done")
    with pytest.raises(InvalidArgument, match="parent="):
        store.sessions(parent=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="metadata="):
        store.sessions(metadata=["team"])  # type: ignore[arg-type]
    with pytest.raises(SessionNotFound):
        store.sessions(after="no-such-session")


def _drop_summary(path: Path, session_id: str) -> None:
    """Make a row as an earlier version wrote it: no summary, sealed without one."""
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT session_id, title, created_at, updated_at, message_count, revision, version, head, seal "
            "FROM transcripts_sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        row = SessionRow(*found)
        db.execute(
            "UPDATE transcripts_sessions SET summary = NULL, seal = ? WHERE session_id = ?",
            (seal_of(row, None), session_id),
        )
    db.close()


def test_rows_without_a_summary_are_filtered_from_the_session_state(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path))
    ids = _made(store)
    store.close()
    for session_id in ids.values():
        _drop_summary(path, session_id)
    old = Transcripts.open(str(path))
    assert _listed(old, status="active") == [ids["a"], ids["d"]]
    assert _listed(old, parent=ids["a"]) == [ids["d"]]
    assert _listed(old, metadata={"n": 1.0}) == [ids["b"]]
    assert [i.owner for i in old.sessions()] == ["ana", "bo", None, "ana"]
    old.set_title(ids["b"], "beta 2")  # the next write gives the row its summary
    with sqlite3.connect(path) as db:
        (summary,) = db.execute("SELECT summary FROM transcripts_sessions WHERE session_id = ?", (ids["b"],)).fetchone()
    db.close()
    assert summary is not None and '"owner":"bo"' in summary


def test_a_summary_altered_in_the_file_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path))
    ids = _made(store)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE transcripts_sessions SET summary = replace(summary, '\"finished\"', '\"active\"') "
            "WHERE session_id = ?",
            (ids["b"],),
        )
    db.close()
    with pytest.raises(CorruptStore, match="does not match its seal"):
        Transcripts.open(str(path)).sessions(status="active")
    # Dropping the summary (and keeping the seal) is damage too: the seal covered it.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_sessions SET summary = NULL WHERE session_id = ?", (ids["b"],))
    db.close()
    with pytest.raises(CorruptStore, match="does not match its seal"):
        Transcripts.open(str(path)).sessions()


def test_metadata_the_database_cannot_compare_is_still_found(stores: StoreFactory) -> None:
    # Found by an adversarial pass: keys with control characters, text with
    # NUL and integers past 64 bits were missed or failed on one backend.
    store = stores.open()
    odd = {"line\nbreak": 1, "tab\there": "x", "k": "a\x00b", "nul\x00key": 2, "big": 2**63, 'q"uote': True}
    sid = store.create("odd", odd)
    plain = store.create("plain", {"k": "ab", "big": 1})
    for key, value in odd.items():
        assert _listed(store, metadata={key: value}) == [sid], key
    assert _listed(store, metadata={"k": "ab"}) == [plain]
    assert _listed(store, owner=None, status="started") == [sid, plain]  # the row with NUL filters from its state


def test_a_thousand_tags_are_a_filter_like_any_other(stores: StoreFactory) -> None:
    store = stores.open()
    tags = [f"t{number}" for number in range(1000)]
    sid = store.create(tags=tags)
    store.create(tags=tags[:999])
    assert _listed(store, tags=tags) == [sid]


def test_filter_values_no_session_could_hold_are_refused(store: Transcripts) -> None:
    with pytest.raises(InvalidArgument, match="NaN"):
        store.sessions(metadata={"score": float("nan")})
    with pytest.raises(InvalidArgument):
        store.sessions(metadata={"x": object()})
    with pytest.raises(InvalidArgument):
        store.sessions(parent="\ud800")
    with pytest.raises(InvalidArgument):
        store.sessions(after="\ud800")


def test_a_damaged_summary_is_corruption_and_verify_checks_it(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path))
    sid = store.create(status="active", owner="ana")
    store.close()
    # Edited and sealed again with the plain digest (no seal key): only a
    # replay can tell; verify() replays.
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT * FROM transcripts_sessions WHERE session_id = ?", (sid,)).fetchone()
        forged = row[9].replace('"active"', '"finished"')
        resealed = seal_of(SessionRow(*row[:8], summary=forged), None)
        db.execute(
            "UPDATE transcripts_sessions SET summary = ?, seal = ? WHERE session_id = ?", (forged, resealed, sid)
        )
    db.close()
    reopened = Transcripts.open(str(path))
    with pytest.raises(CorruptStore, match="summary"):
        reopened.verify(sid)
    reopened.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE transcripts_sessions SET summary = 'not json' WHERE session_id = ?", (sid,))
    db.close()
    with pytest.raises(CorruptStore):
        Transcripts.open(str(path)).sessions(status="active")


def test_paging_goes_on_past_a_session_deleted_between_pages(stores: StoreFactory) -> None:
    # Found by a newcomer: after= the id of a session deleted since raised
    # SessionNotFound, so a list could not page on from where it was.
    store = stores.open()
    ids = [store.create(title=str(number)) for number in range(5)]
    page = store.sessions(limit=2)
    assert [info.id for info in page] == ids[:2]
    store.delete(page[-1].id)
    with pytest.raises(SessionNotFound):
        store.sessions(after=page[-1].id, limit=2)  # an id alone no longer says where it was
    assert [info.id for info in store.sessions(after=page[-1], limit=2)] == ids[2:4]
    assert [info.id for info in store.sessions(after=store.sessions(after=page[-1], limit=2)[-1])] == ids[4:]
