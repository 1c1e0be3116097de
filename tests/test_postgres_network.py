"""PostgreSQL: a server gone from the network (a failover, a dropped route)
fails each call within a bound instead of hanging it.

Such a server answers nothing, not even with a reset: before libpq was given
keepalives and a TCP user timeout, an append to it waited for about 15
minutes of retransmissions, and a call waiting for a reply waited forever.
The black hole is made in a network namespace of the test's own, with a
private server (``tests._network_worker``): this needs root, ``unshare``
and ``ip``, as CI has; without them the test fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from engine import Message, Transcripts
from engine.store._postgres import NETWORK_SETTINGS
from tests._postgres_servers import server_binaries
from tests.conftest import POSTGRES_DSN, drop_postgres_tables

KINDS = ["postgres"] if POSTGRES_DSN else []


def _connection_settings(store: Transcripts) -> dict[str, str]:
    """libpq's settings of a connection the store's pool hands out."""
    pool = store._repository.backend._recorder.datastore.pool  # type: ignore[attr-defined]
    conn = pool.getconn()
    try:
        return dict(conn.info.get_parameters())
    finally:
        pool.putconn(conn)


@pytest.mark.parametrize("kind", KINDS)
def test_every_connection_has_keepalives_and_a_user_timeout_unless_the_string_sets_its_own(kind: str) -> None:
    assert POSTGRES_DSN
    with Transcripts.open(POSTGRES_DSN, table_prefix="network_settings") as store:
        settings = _connection_settings(store)
    assert {name: settings.get(name) for name in NETWORK_SETTINGS} == {
        "keepalives": "1",
        "keepalives_idle": "15",
        "keepalives_interval": "5",
        "keepalives_count": "3",
        "tcp_user_timeout": "30000",
    }
    separator = "&" if "?" in POSTGRES_DSN else "?"
    with Transcripts.open(POSTGRES_DSN + separator + "tcp_user_timeout=1234", table_prefix="network_settings") as own:
        settings = _connection_settings(own)
        sid = own.create()
        own.append(sid, Message.user("works"))
    assert settings["tcp_user_timeout"] == "1234"
    assert settings["keepalives_idle"] == "15"  # the ones it leaves out still apply
    drop_postgres_tables("network_settings")


def _run_in_a_namespace(query: str) -> dict[str, Any]:
    missing = [tool for tool in ("unshare", "ip", "runuser") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)} (and root) to make a network namespace")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests._network_worker", server_binaries(), query],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_calls_to_a_server_gone_from_the_network_fail_within_the_bound(kind: str) -> None:
    # A 2-second TCP user timeout set in the connection string (the default
    # is 30 s), which the store keeps.
    result = _run_in_a_namespace("?tcp_user_timeout=2000&keepalives_idle=1")
    # The append's request went out and nothing came back: whether it was
    # stored cannot be known from here.
    assert result["append"][0] == "WriteOutcomeUnknown"
    for call in ("history", "sessions", "feed"):
        assert result[call][0] == "StorageUnavailable", (call, result)
    # Each within the user timeout (2 s) or the connect timeout (5 s), with
    # room for a slow machine; before, the first of them never returned.
    assert all(result[call][1] < 15 for call in ("append", "history", "sessions", "feed")), result
    # Once the network is back, the store works again: the append that
    # failed was never stored (its request never reached the server).
    assert result["after"][0] == ["before", "after"]
