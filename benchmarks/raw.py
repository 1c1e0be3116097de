"""The raw ``sqlite3`` baseline: the physical limit for what the engine stores.

A table shaped like the engine's log (an integer position, the session's
integer key, the version, the type's integer code and the stored bytes, with
a unique index on session and version), WAL, the same ``PRAGMA synchronous``,
pre-encoded rows and one insert per call, which commits by itself (as the
engine's append of one event is one statement in a transaction of its own).
Loading selects one session's rows of the engine's own log in version order
and decodes each with the decoder the engine's loads use, with no projection
and no revision checks.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple, TypeAlias

import msgspec

from engine import Message, Transcripts
from engine.state.content import check_again
from engine.state.events import MessagesAppended
from engine.state.revisions import EMPTY_REVISION_BYTES, chain_each, format_revision, id_mask, revision_id
from engine.state.transcript import KnownAppend
from engine.store import Chain, Record, SessionRow, decode_for_load, encode_event, extended
from engine.store._chain import seal_of
from engine.store._packed import REVISION_ID_TEXT_APPEND_TOPIC

__all__ = [
    "EVENTS_TABLE",
    "EventRow",
    "LogRow",
    "connect_writer",
    "engine_statement_calls",
    "essential_calls",
    "insert_calls",
    "load_messages",
    "log_rows",
]

EVENTS_TABLE = "log"
_CREATE_EVENTS = (
    f"CREATE TABLE {EVENTS_TABLE} (position INTEGER PRIMARY KEY, session INTEGER NOT NULL, "
    "version INTEGER NOT NULL, kind INTEGER NOT NULL, state BLOB NOT NULL)"
)
_CREATE_INDEX = f"CREATE UNIQUE INDEX {EVENTS_TABLE}_session ON {EVENTS_TABLE} (session, version)"
_INSERT_EVENT = f"INSERT INTO {EVENTS_TABLE} (session, version, kind, state) VALUES (?,?,?,?)"

#: One stored event as the engine makes it: (session id, version, topic, encoded state).
EventRow: TypeAlias = tuple[str, int, str, bytes]
#: The same event as the raw table keeps it: (session key, version, type code, encoded state).
LogRow: TypeAlias = tuple[int, int, int, bytes]


def log_rows(rows: Sequence[EventRow]) -> list[LogRow]:
    """The rows with integer keys and codes, as the engine's log keeps them:
    the session key 1 and the commonest type (one text message) code 1,
    which SQLite stores in no bytes; other types 2, 3, ..."""
    codes = {REVISION_ID_TEXT_APPEND_TOPIC: 1}
    keys: dict[str, int] = {}
    out = []
    for session_id, version, topic, state in rows:
        key = keys.setdefault(session_id, len(keys) + 1)
        code = codes.setdefault(topic, len(codes) + 1)
        out.append((key, version, code, state))
    return out


def connect_writer(path: str, synchronous: str) -> sqlite3.Connection:
    """A new database file with the log table, in WAL mode with ``synchronous``.

    ``isolation_level=None``: the driver never opens transactions by itself,
    so each statement :func:`insert_calls` runs is a transaction of its own.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"could not switch the raw database to WAL (journal_mode={mode})")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(_CREATE_EVENTS)
    connection.execute(_CREATE_INDEX)
    return connection


def insert_calls(connection: sqlite3.Connection, rows: Sequence[LogRow]) -> float:
    """Insert each row in its own transaction (one call = one row = one
    commit): one statement, as the engine runs one per append (with
    ``BEGIN`` and ``COMMIT`` around it, the raw side paid two more calls,
    about 1.6 µs, that the engine does not).

    Returns the elapsed seconds (``time.perf_counter``).
    """
    execute = connection.cursor().execute
    statement = _INSERT_EVENT
    start = time.perf_counter()
    for row in rows:
        execute(statement, row)
    return time.perf_counter() - start


class _EngineSession(NamedTuple):
    """A new session in a store the engine made, with what an append of it
    writes through: the engine's own statement and the TEMP view it inserts
    into (taken from its recorder, so both sides below follow the layout
    when it changes), its type codes, its listing row and its record chain."""

    session_id: str
    append: str
    view: tuple[str, ...]
    codes: dict[str, int]
    row: SessionRow
    chain: Chain


def _engine_session(path: str, synchronous: str) -> _EngineSession:
    """The engine makes the store and the session (untimed), then closes it."""
    with Transcripts.open(path, synchronous=synchronous, snapshot_interval=None) as store:
        session_id = store.create(title="bench")
        repository = store._repository  # type: ignore[attr-defined]
        recorder = repository.backend._recorder
        row = repository.backend.session_row(session_id)
        assert row is not None
        chain = repository.chain_after(repository.head(session_id))
        view = tuple(recorder._append_view_statements)
        return _EngineSession(session_id, recorder._append_one, view, dict(recorder._codes), row, chain)


@contextmanager
def _writer(path: str, synchronous: str, view: Sequence[str]) -> Iterator[Callable[..., sqlite3.Cursor]]:
    """A connection of its own, at the same ``synchronous``, with the
    engine's TEMP append view; its ``execute``."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA synchronous={synchronous}")
        for statement in view:
            connection.execute(statement)
        yield connection.execute
    finally:
        connection.close()


def engine_statement_calls(path: str, synchronous: str, rows: Sequence[EventRow], warm: int = 0) -> float:
    """The engine's own SQL for each call, with no engine code around it: the
    floor of what the engine's layout allows. A store made by the engine
    (untimed) holds the session; then, per row, the statement an append
    runs: one insert into the engine's append view, which advances the
    listing row while it holds the previous head (fresh 64-digit head, seal
    and revision each call, as an append writes) and inserts the event, in
    a transaction of its own. The first ``warm`` calls (after the
    creation row) are made untimed, as the suite warms every side.

    Returns the elapsed seconds of the loop (``time.perf_counter``)."""
    session_id, append, view, codes, row, _ = _engine_session(path, synchronous)
    previous = row.head
    prepared = []
    for number, (_, version, topic, state) in enumerate(rows[1:], 1):
        digits = hashlib.sha256(number.to_bytes(8, "big")).hexdigest()
        revision, seal = "sha256:" + digits, digits[::-1]
        listing = (row.title, row.updated_at, number, revision, version, digits, seal, row.summary)
        prepared.append((session_id, previous, *listing, codes[topic], state))
        previous = digits
    with _writer(path, synchronous, view) as execute:
        for values in prepared[:warm]:
            execute(append, values)
        start = time.perf_counter()
        for values in prepared[warm:]:
            execute(append, values)
        return time.perf_counter() - start


def essential_calls(path: str, synchronous: str, messages: Sequence[Message], warm: int = 0) -> float:
    """What every append must do, in one plain loop with no engine layers
    around it: a floor no arrangement of the engine's code can go below.
    Per message, one append of it alone: check it again (a made message can
    be changed), its content digest and the revision it leads to, the id
    that revision names, the stored event (the engine's packer), the record chain and
    the listing row's seal, then the engine's own statement (as
    :func:`engine_statement_calls` runs it). Left out, so the floor is
    lower still: the session's lock, its cached state, the tool-pairing
    check, snapshots. The first ``warm`` messages are appended untimed, as
    the suite warms every side.

    Returns the elapsed seconds of the loop (``time.perf_counter``)."""
    session_id, append, view, codes, row, chain = _engine_session(path, synchronous)
    copy, set_field = Message.__copy__, msgspec.structs.force_setattr  # type: ignore[attr-defined]
    new_tuple = tuple.__new__  # as the engine builds records and rows (a NamedTuple's __new__ is Python code)
    revision, version, head = EMPTY_REVISION_BYTES, row.version, row.head
    with _writer(path, synchronous, view) as execute:
        start = time.perf_counter()
        for count, message in enumerate(messages, 1):
            if count == warm + 1:
                start = time.perf_counter()
            check_again(message)
            message = copy(message)
            [revision] = chain_each(revision, (message,))
            version += 1
            set_field(message, "id", revision_id(revision, id_mask(session_id, version)))
            now = datetime.now(UTC)
            event = MessagesAppended(at=now, messages=(message,), revision=format_revision(revision))
            topic, state = encode_event(event, revision, session_id=session_id, version=version)
            chain = extended(chain, (new_tuple(Record, (version, topic, state)),))
            new_head = chain.digest().hex()
            updated = now.isoformat()
            fields = (session_id, row.title, row.created_at, updated, count, event.revision, version, new_head)
            listing = new_tuple(SessionRow, (*fields, "", row.summary))
            seal = seal_of(listing, None)
            listing = (row.title, updated, count, event.revision, version, new_head, seal, row.summary)
            execute(append, (session_id, head, *listing, codes[topic], state))
            head = new_head
        return time.perf_counter() - start


def load_messages(path: str, session_id: str) -> list[Message]:
    """Cold load: a new connection, the type names, every row of the session
    in the engine's log in version order, each decoded by the decoder the
    engine's own loads use (a one-text-message row needs no event or
    ``datetime``); the messages flattened into one list."""
    connection = sqlite3.connect(path)
    try:
        topics = dict(connection.execute("SELECT code, topic FROM transcripts_kinds").fetchall())
        rows = connection.execute(
            "SELECT version, kind, state FROM transcripts_log "
            "WHERE session = (SELECT key FROM transcripts_sessions WHERE session_id = ?) ORDER BY version",
            (session_id,),
        ).fetchall()
    finally:
        connection.close()
    messages: list[Message] = []
    for _, event in decode_for_load(session_id, [(version, topics[kind], state) for version, kind, state in rows]):
        if type(event) is KnownAppend:
            messages.append(event.message)
        elif isinstance(event, MessagesAppended):
            messages.extend(event.messages)
    return messages
