"""SQLite's writer connection: found by an adversarial pass on the
one-statement append (which held), around it: the write-alone block waited
twice ``lock_timeout``, an erasure's purge reopened a connection after the
store was closed, and damage the event insert ran into was reported as a
conflict to retry."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from engine import ConcurrentWriteError, CorruptStore, Message, StorageUnavailable, Transcripts, Usage
from engine.store import open_backend


def _held(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock."""
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_the_write_alone_block_waits_lock_timeout_in_all_behind_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Transcripts.open(str(path)) as store:
        sid = store.create()
    backend = open_backend(str(path), lock_timeout=2)
    blocker = _held(path)
    took: dict[str, tuple[float, str]] = {}

    def alone(name: str) -> None:
        started = time.monotonic()
        try:
            with backend.writing_alone(sid):
                outcome = "entered"
        except StorageUnavailable:
            outcome = "StorageUnavailable"
        took[name] = (time.monotonic() - started, outcome)

    try:
        first = threading.Thread(target=alone, args=("first",))
        first.start()
        time.sleep(0.2)  # the first holds the writer connection's turn, waiting for the database
        second = threading.Thread(target=alone, args=("second",))
        second.start()
        first.join(30)
        second.join(30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        backend.close()
    assert [outcome for _, outcome in took.values()] == ["StorageUnavailable"] * 2
    # The second waited for its turn, then for the database: 2 s in all (it was about 4).
    assert took["second"][0] < 3.0, took


def _open_descriptors(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_closing_the_store_while_an_erasure_removes_old_pages_leaves_no_connection_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path), lock_timeout=2)
    sid = store.create()
    store.append(sid, Message.user("secret"))
    message_id = store.get(sid).messages[0].id
    assert message_id is not None
    reader = sqlite3.connect(str(path), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM transcripts_log").fetchone()  # keeps the old pages in the WAL
    errors: list[BaseException] = []

    def erase() -> None:
        try:
            store.erase(sid, message_id)
        except StorageUnavailable as exc:
            errors.append(exc)

    eraser = threading.Thread(target=erase)
    eraser.start()
    time.sleep(0.5)  # the erasure is committed; its purge retries the checkpoint
    store.close()
    eraser.join(30)
    reader.execute("ROLLBACK")
    reader.close()
    [error] = errors
    assert "the erasure is committed" in str(error) and "closed" in str(error)
    assert _open_descriptors(path) == []
    with Transcripts.open(str(path)) as again:
        assert again.get(sid).messages[0].erased is not None


@pytest.mark.parametrize("with_usage", [False, True], ids=["one statement", "transaction"])
@pytest.mark.parametrize(
    "damage",
    [
        "INSERT INTO transcripts_log (session, version, kind, state) "
        "SELECT session, version + 1, kind, state FROM transcripts_log WHERE version = 2",
        "UPDATE transcripts_sessions SET key = NULL",
    ],
    ids=["a row already at the next version", "a listing row without its key"],
)
def test_damage_the_event_insert_runs_into_is_corruption_not_a_conflict(
    tmp_path: Path, damage: str, with_usage: bool
) -> None:
    path = tmp_path / "store.db"
    store = Transcripts.open(str(path))
    sid = store.create()
    store.append(sid, Message.user("one"))
    with sqlite3.connect(str(path)) as db:
        db.execute(damage)
    db.close()
    usage = Usage(input=1) if with_usage else None
    with pytest.raises(CorruptStore, match="the log or the listing row was altered") as refused:
        store.append(sid, Message.user("two"), usage=usage)
    assert not isinstance(refused.value, ConcurrentWriteError)
    with sqlite3.connect(str(path)) as db:
        (version,) = db.execute("SELECT version FROM transcripts_sessions").fetchone()
    db.close()
    assert version == 2  # the listing row is as it was: nothing was written
    store.close()
