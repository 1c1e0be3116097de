"""PostgreSQL: the feed read on a hot standby, and prepared transactions.

Both need a server of their own (a streaming replica; prepared transactions
switched on), which these tests make with the PostgreSQL binaries of the
server in ``ENGINE_TEST_POSTGRES_DSN`` (CI sets it): a primary and its hot
standby in a temporary directory, stopped and removed afterwards. Without
those binaries the tests fail: they are required wherever PostgreSQL is."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Message, Transcripts
from tests._postgres_servers import free_port, server_binaries
from tests.conftest import POSTGRES_DSN

KINDS = ["postgres"] if POSTGRES_DSN else []


class _Cluster:
    """A primary (prepared transactions on) and its streaming hot standby."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.root = tempfile.mkdtemp(prefix="engine-standby-")
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: the servers run as postgres
            shutil.chown(self.root, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.primary_port, self.standby_port = free_port(), free_port()
        self.started: list[str] = []

    def run(self, *command: str) -> None:
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        primary, standby = os.path.join(self.root, "primary"), os.path.join(self.root, "standby")
        self.run(f"{self.bin}/initdb", "-D", primary, "-A", "trust", "-U", "postgres")
        with open(os.path.join(primary, "postgresql.conf"), "a") as conf:
            conf.write(
                f"port = {self.primary_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nmax_prepared_transactions = 4\n"
                "shared_buffers = 16MB\nmax_connections = 40\nfsync = off\n"
            )
        with open(os.path.join(primary, "pg_hba.conf"), "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self.run(f"{self.bin}/pg_ctl", "-D", primary, "-l", primary + ".log", "-w", "start")
        self.started.append(primary)
        port = str(self.primary_port)
        self.run(f"{self.bin}/pg_basebackup", "-D", standby, "-R", "-h", "127.0.0.1", "-p", port, "-U", "postgres")
        with open(os.path.join(standby, "postgresql.conf"), "a") as conf:
            conf.write(f"port = {self.standby_port}\nmax_prepared_transactions = 4\n")
        self.run(f"{self.bin}/pg_ctl", "-D", standby, "-l", standby + ".log", "-w", "start")
        self.started.append(standby)

    def stop(self) -> None:
        for data in reversed(self.started):
            with contextlib.suppress(subprocess.SubprocessError):
                self.run(f"{self.bin}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="module")
def cluster() -> Iterator[_Cluster]:
    made = _Cluster()
    try:
        made.start()
        yield made
    finally:
        made.stop()


def _replayed(primary: Any, standby: Any) -> None:
    """Wait until the standby has replayed everything the primary wrote."""
    (lsn,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
    deadline = time.monotonic() + 30
    while not standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the standby did not catch up in 30 s"
        time.sleep(0.01)


def _tail(store: Transcripts, position: int, seen: list[tuple[str, int]]) -> int:
    while page := store.feed(after=position, limit=100):
        seen += [(entry.session_id, entry.version) for entry in page]
        position = page[-1].position
    return position


def _slow_writer(conn: Any, prefix: str, session_id: str, version: int) -> None:
    """Begin, on ``conn``, a write of one event as the engine's writers do
    (the events table locked before the transaction has an id), and leave
    it running: a copy of the session's first event as ``version``."""
    conn.execute(f'LOCK TABLE "{prefix}_events" IN ROW EXCLUSIVE MODE')
    conn.execute(
        f'INSERT INTO "{prefix}_events" (originator_id, originator_version, topic, state, position) '
        "SELECT originator_id, %s, topic, state, %s + pg_current_xact_id()::text::bigint * %s + 1 "
        f'FROM "{prefix}_events" WHERE originator_id = %s AND originator_version = 1',
        (version, 2**40, 2**20, session_id),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_reader_on_a_hot_standby_never_passes_a_writer_still_running_on_the_primary(
    kind: str, cluster: _Cluster
) -> None:
    # Found by an adversarial run: a standby sees none of the primary's
    # locks, and its reader passed positions a running writer then took
    # (about one event in twenty lost under load).
    import psycopg

    prefix = "sb" + uuid.uuid4().hex[:10]
    primary_dsn, standby_dsn = cluster.dsn(cluster.primary_port), cluster.dsn(cluster.standby_port)
    with (
        Transcripts.open(primary_dsn, table_prefix=prefix) as writer,
        psycopg.connect(primary_dsn, autocommit=True) as primary,
        psycopg.connect(standby_dsn, autocommit=True) as standby,
        psycopg.connect(primary_dsn) as slow,
    ):
        first, second = writer.create(title="slow"), writer.create(title="fast")
        _replayed(primary, standby)
        with Transcripts.open(standby_dsn, table_prefix=prefix, create=False) as reader:
            seen: list[tuple[str, int]] = []
            position = _tail(reader, 0, seen)
            _slow_writer(slow, prefix, first, 2)  # running, with an id older than the next append's
            writer.append(second, Message.user("committed while the slow writer runs"))
            _replayed(primary, standby)
            position = _tail(reader, position, seen)
            assert (second, 2) not in seen  # held back: the slow writer could still commit below it
            slow.commit()
            _replayed(primary, standby)
            _tail(reader, position, seen)
        assert sorted(seen) == sorted([(first, 1), (second, 1), (first, 2), (second, 2)])
        primary.execute(f'DROP TABLE "{prefix}_events", "{prefix}_sessions", "{prefix}_snapshots", "{prefix}_feed"')


@pytest.mark.parametrize("kind", KINDS)
def test_a_prepared_transaction_holds_the_feed_back_only_if_it_locked_the_events_table(
    kind: str, cluster: _Cluster
) -> None:
    # Found by an adversarial run: every prepared transaction of the
    # database held the feed back, one that never touched the store too
    # (and a prepared transaction left behind survives restarts).
    import psycopg

    prefix = "pr" + uuid.uuid4().hex[:10]
    dsn = cluster.dsn(cluster.primary_port)
    with Transcripts.open(dsn, table_prefix=prefix) as store, psycopg.connect(dsn, autocommit=True) as conn:
        sid = store.create()
        conn.execute("CREATE TABLE IF NOT EXISTS unrelated (n int)")
        position = store.feed(after=0)[-1].position
        for locks_the_table, gid in ((False, "unrelated-" + prefix), (True, "writer-" + prefix)):
            conn.execute("BEGIN")
            if locks_the_table:
                conn.execute(f'LOCK TABLE "{prefix}_events" IN ROW EXCLUSIVE MODE')
            conn.execute("INSERT INTO unrelated VALUES (1)")  # an id
            conn.execute(f"PREPARE TRANSACTION '{gid}'")
            store.append(sid, Message.user(gid))
            shown = store.feed(after=position)
            conn.execute(f"ROLLBACK PREPARED '{gid}'")
            if locks_the_table:
                assert shown == []
                shown = store.feed(after=position)
            assert [entry.event.messages[0].text for entry in shown] == [gid]  # type: ignore[attr-defined]
            position = shown[-1].position
        conn.execute(
            f'DROP TABLE unrelated, "{prefix}_events", "{prefix}_sessions", "{prefix}_snapshots", "{prefix}_feed"'
        )
