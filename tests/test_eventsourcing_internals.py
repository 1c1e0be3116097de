"""What the backends use of eventsourcing beyond its documented surface,
pinned: an eventsourcing release that renames or reshapes one of these fails
here, by name, instead of somewhere deep in a backend (the pin in
pyproject.toml is >=9.5.6,<10)."""

from __future__ import annotations

import inspect

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteDatastore

from tests.conftest import POSTGRES_DSN


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_in_memory_recorder_internals_the_memory_backend_uses() -> None:
    recorder = POPOApplicationRecorder()
    assert isinstance(recorder._stored_events, list)
    assert isinstance(recorder._stored_events_index, dict)
    assert hasattr(recorder._database_lock, "__enter__")
    # Overridden: runs under the lock after the uniqueness check; numbers rows by list index.
    assert _parameters(POPOApplicationRecorder._update_table) == ["self", "stored_events", "_"]
    recorder.insert_events([StoredEvent("s", 1, "T.v1", b"{}")])
    assert recorder._stored_events_index["s"] == {1: 0}
    assert recorder.select_notifications(0, 10, inclusive_of_start=False)[0].id == 1


def test_the_sqlite_recorder_internals_the_sqlite_backend_uses() -> None:
    # The SQLite backend keeps its own tables (the log), and uses
    # eventsourcing's datastore: its pool, connections and transactions.
    datastore = SQLiteDatastore(":memory:", originator_id_type="text")
    try:
        pool = datastore.pool
        assert isinstance(pool, SQLiteConnectionPool)
        for name in ("db_name", "lock_timeout", "is_sqlite_memory_mode", "max_age"):
            assert hasattr(pool, name), name
        assert callable(SQLiteConnectionPool._create_connection)
        assert "sqlite_conn" in _parameters(SQLiteConnection.__init__)
        with datastore.get_connection(commit=False) as connection:
            assert hasattr(connection.cursor(), "sqlite_cursor")
        with datastore.transaction(commit=False) as cursor:
            assert hasattr(cursor, "sqlite_cursor")
    finally:
        datastore.close()
    assert {"id", "originator_id", "originator_version", "topic", "state"} <= set(Notification.__dataclass_fields__)


def test_the_postgres_recorder_internals_the_postgres_backend_uses() -> None:
    if POSTGRES_DSN is None:
        return  # needs the PostgreSQL extra's driver; CI always sets the DSN
    from eventsourcing.postgres import PostgresApplicationRecorder

    from engine.store import open_backend
    from tests.conftest import drop_postgres_tables

    backend = open_backend(POSTGRES_DSN, table_prefix="tinternals")
    try:
        recorder = backend._recorder  # type: ignore[attr-defined]
        assert isinstance(recorder, PostgresApplicationRecorder)
        assert recorder.insert_events_statement is not None
        assert len(recorder.lock_table_statements) >= 1
        assert isinstance(recorder.sql_create_statements, list)
        assert isinstance(recorder.datastore.pool.kwargs, dict)
        assert recorder.datastore.schema
    finally:
        backend.close()
        drop_postgres_tables("tinternals")
    assert _parameters(PostgresApplicationRecorder.construct_pg_stored_event)[1:] == [
        "originator_id",
        "originator_version",
        "topic",
        "state",
    ]
