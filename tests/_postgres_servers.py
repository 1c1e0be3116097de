"""PostgreSQL servers of a test's own, made with the binaries of the server
in ``ENGINE_TEST_POSTGRES_DSN``: for what the shared server cannot show (a
hot standby, prepared transactions, a server gone from the network)."""

from __future__ import annotations

import glob
import os
import shutil
import socket

import pytest

from tests.conftest import POSTGRES_DSN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_binaries() -> str:
    """The folder of initdb, pg_ctl and pg_basebackup of the shared server's
    major version (the test fails without them: they are required wherever
    PostgreSQL is)."""
    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
    found = sorted(glob.glob(f"/usr/lib/postgresql/{major}/bin/initdb")) or [
        path for path in [shutil.which("initdb")] if path
    ]
    if not found:
        pytest.fail(f"these tests need PostgreSQL {major}'s initdb, pg_ctl and pg_basebackup (not found)")
    return os.path.dirname(found[0])
