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
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from engine import Message, Transcripts
from engine.store._postgres import NETWORK_SETTINGS
from tests._postgres_servers import server_binaries
from tests.conftest import POSTGRES_DSN

KINDS = ["postgres"] if POSTGRES_DSN else []


def _pool(store: Transcripts) -> Any:
    return store._repository.backend._recorder.datastore.pool  # type: ignore[attr-defined]


def _connection_settings(store: Transcripts) -> dict[str, str]:
    """libpq's settings of a connection the store's pool hands out."""
    pool = _pool(store)
    conn = pool.getconn()
    try:
        return dict(conn.info.get_parameters())
    finally:
        pool.putconn(conn)


@pytest.mark.parametrize("kind", KINDS)
def test_every_connection_has_keepalives_and_a_user_timeout_unless_the_string_sets_its_own(
    kind: str, prefix: str
) -> None:
    assert POSTGRES_DSN
    with Transcripts.open(POSTGRES_DSN, table_prefix=prefix) as store:
        settings = _connection_settings(store)
        # A connection that failed is given up after 3 s of tries (then the
        # next call asks for a new one at once), not psycopg_pool's 5 minutes
        # of ever longer delays.
        assert _pool(store).reconnect_timeout == 3
    assert {name: settings.get(name) for name in NETWORK_SETTINGS} == {
        "keepalives": "1",
        "keepalives_idle": "15",
        "keepalives_interval": "5",
        "keepalives_count": "3",
        "tcp_user_timeout": "30000",
    }
    separator = "&" if "?" in POSTGRES_DSN else "?"
    with Transcripts.open(POSTGRES_DSN + separator + "tcp_user_timeout=1234", table_prefix=prefix) as own:
        settings = _connection_settings(own)
        sid = own.create()
        own.append(sid, Message.user("works"))
    assert settings["tcp_user_timeout"] == "1234"
    assert settings["keepalives_idle"] == "15"  # the ones it leaves out still apply


@pytest.mark.parametrize("kind", KINDS)
def test_a_service_file_and_the_string_keep_their_own_timeouts(
    kind: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an adversarial run: settings of a service file were replaced
    # by the defaults (only the string's own were looked at), and the
    # string's connect_timeout by the store's 5 seconds.
    assert POSTGRES_DSN
    server = conninfo_to_dict(POSTGRES_DSN)
    services = tmp_path / "services.conf"
    services.write_text(
        "[engine_test]\n"
        + "".join(f"{name}={server[name]}\n" for name in ("host", "port", "dbname", "user") if name in server)
        + "tcp_user_timeout=7000\nkeepalives_idle=44\napplication_name=from_service\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    with Transcripts.open("postgresql:///?service=engine_test&connect_timeout=9", table_prefix=prefix) as store:
        settings = _connection_settings(store)
        sid = store.create()
        store.append(sid, Message.user("works"))
    assert (settings["tcp_user_timeout"], settings["keepalives_idle"], settings["application_name"]) == (
        "7000",
        "44",
        "from_service",
    )
    assert (settings["keepalives"], settings["keepalives_interval"], settings["connect_timeout"]) == ("1", "5", "9")


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
    # 1. The append's request went out and nothing came back, and no new
    # connection reaches the server to ask: whether it was stored cannot be
    # known from here. Each call fails within the user timeout (2 s) or the
    # connect timeout (5 s), the append within both (it tries to ask), with
    # room for a slow machine; before, the first of them never returned.
    assert [outcome for outcome, _ in result["append"]] == ["WriteOutcomeUnknown"]
    for call in ("history", "sessions", "feed"):
        assert [outcome for outcome, _ in result[call]] == ["StorageUnavailable"], (call, result)
    assert all(took < 15 for call in ("append", "history", "sessions", "feed") for _, took in result[call]), result
    # Once the network is back, the store works again: the append that
    # failed was never stored (its request never reached the server).
    assert result["after"][0][0] == "returned", result
    assert result["messages"] == ["before", "after"]
    # 2. An append on a connection idle long enough to be checked first
    # fails after one timeout: it took one per idle connection of the pool
    # (12-17 s here), as the pool checked each in turn.
    [(outcome, took)] = result["idle append"]
    assert outcome == "StorageUnavailable" and took < 5, result["idle append"]
    # 3. After half a minute gone, the store works again within seconds of
    # the server's return (0.01 s in most runs here, 5.5 s at most: a call
    # waiting for a connection when the network came back can time out
    # first). It used to wait for the pool's next try, put off longer after
    # every failure: 42 s after an outage of 100 s.
    assert all(outcome == "StorageUnavailable" for outcome, _ in result["outage sessions"])
    assert result["recovered after"] < 12, result
