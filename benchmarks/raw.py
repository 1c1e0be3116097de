"""The raw ``sqlite3`` baseline: the physical limit for what the engine stores.

A table shaped like the engine's events table (same columns, same primary key),
WAL, the same ``PRAGMA synchronous``, pre-encoded rows and an explicit
``BEGIN`` ... ``COMMIT`` around every call. Loading selects one session's rows
in version order and decodes each with the engine's codec into its event
types, with no projection and no revision checks.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Sequence
from typing import TypeAlias

from engine import Message, Transcripts
from engine.state.events import MessagesAppended
from engine.store import decode_events

__all__ = ["EVENTS_TABLE", "EventRow", "connect_writer", "engine_statement_calls", "insert_calls", "load_messages"]

EVENTS_TABLE = "events"
_CREATE_EVENTS = (
    f"CREATE TABLE {EVENTS_TABLE} (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
    "PRIMARY KEY (originator_id, originator_version))"
)
_INSERT_EVENT = f"INSERT INTO {EVENTS_TABLE} VALUES (?,?,?,?)"

#: One stored event: (session id, version, topic, encoded state).
EventRow: TypeAlias = tuple[str, int, str, bytes]


def connect_writer(path: str, synchronous: str) -> sqlite3.Connection:
    """A new database file with the events table, in WAL mode with ``synchronous``.

    ``isolation_level=None``: the driver never opens transactions by itself;
    :func:`insert_calls` issues ``BEGIN`` and ``COMMIT`` explicitly.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"could not switch the raw database to WAL (journal_mode={mode})")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(_CREATE_EVENTS)
    return connection


def insert_calls(connection: sqlite3.Connection, rows: Sequence[EventRow]) -> float:
    """Insert each row in its own transaction (one call = one row = one commit).

    Returns the elapsed seconds (``time.perf_counter``).
    """
    execute = connection.cursor().execute
    statement = _INSERT_EVENT
    start = time.perf_counter()
    for row in rows:
        execute("BEGIN")
        execute(statement, row)
        execute("COMMIT")
    return time.perf_counter() - start


def engine_statement_calls(path: str, synchronous: str, rows: Sequence[EventRow]) -> float:
    """The engine's own SQL for each call, with no engine code around it: the
    floor of what the engine's layout allows. A store made by the engine
    (untimed) holds the session; then, per row, the statements an append
    runs: ``BEGIN IMMEDIATE``, the listing-row update while it holds the
    previous head (fresh 64-digit head, seal and revision each call, as an
    append writes), the event insert, ``COMMIT``. The statement texts are
    the engine's own, taken from its recorder, so this side follows the
    layout when it changes.

    Returns the elapsed seconds of the loop (``time.perf_counter``)."""
    with Transcripts.open(path, synchronous=synchronous, snapshot_interval=None) as store:
        session_id = store.create(title="bench")
        recorder = store._repository.backend._recorder  # type: ignore[attr-defined]
        update, insert = recorder._advance_session, recorder._insert_record
        codes = dict(recorder._codes)
        row = store._repository.backend.session_row(session_id)
    assert row is not None
    previous = row.head
    prepared = []
    for number, (_, version, topic, state) in enumerate(rows[1:], 1):
        digits = hashlib.sha256(number.to_bytes(8, "big")).hexdigest()
        revision, seal = "sha256:" + digits, digits[::-1]
        changes = (row.title, row.updated_at, number, revision, version, digits, seal, row.summary, session_id)
        prepared.append(((*changes, previous, previous), (session_id, version, codes[topic], state)))
        previous = digits
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA synchronous={synchronous}")
        execute = connection.execute
        start = time.perf_counter()
        for changes, event in prepared:
            execute("BEGIN IMMEDIATE")
            execute(update, changes)
            execute(insert, event)
            execute("COMMIT")
        return time.perf_counter() - start
    finally:
        connection.close()


def load_messages(path: str, table: str, session_id: str) -> list[Message]:
    """Cold load: a new connection, every row of the session in version order,
    each decoded into its typed event by the engine's codec (JSON, or the
    packed form of appended messages); the messages flattened into one list."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            f"SELECT originator_version, topic, state FROM {table} WHERE originator_id=? ORDER BY originator_version",
            (session_id,),
        ).fetchall()
    finally:
        connection.close()
    messages: list[Message] = []
    for _, event in decode_events(session_id, rows):
        if isinstance(event, MessagesAppended):
            messages.extend(event.messages)
    return messages
