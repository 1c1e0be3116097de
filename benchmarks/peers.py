"""Part 9 (``make bench-peers``): the engine beside the stores a user would
pick instead, on the same 200-byte messages, each in a SQLite file of its
own: raw sqlite3, the OpenAI Agents SDK's ``SQLiteSession`` and
``AdvancedSQLiteSession``, LangGraph's ``SqliteSaver`` (a one-node graph over
``MessagesState``, as LangGraph users keep a conversation), and Google ADK's
``DatabaseSessionService`` (on SQLite).

Per store: appends of one message per call (each committed), the cost of an
append at 100 and at ``messages`` messages, a cold load of the whole
conversation by a new object, a fork (each peer's own branching API, or its
nearest equivalent: a copy), and the bytes the file grew by per message,
appended one per call and, in a file of its own, 100 per call (where the
store can take several messages in one call).
The peers are installed only in the benchmark environment."""

from __future__ import annotations

import asyncio
import gc
import math
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._report import Line, format_table, machine_line, median, part_document, print_report, progress
from engine import Message, Transcripts

__all__ = ["PeersConfig", "installed", "run"]


@dataclass(frozen=True)
class PeersConfig:
    runs: int = 3
    messages: int = 4_000
    quick: bool = False


def installed() -> bool:
    """Whether the peer stores can be imported here."""
    import importlib.util

    names = ("agents", "langgraph.checkpoint.sqlite", "google.adk", "sqlalchemy", "aiosqlite")
    try:
        return all(importlib.util.find_spec(name) is not None for name in names)
    except ModuleNotFoundError:
        return False


def _text(number: int) -> str:
    return f"message {number:06d} " + "x" * 185  # 200 bytes


def _size(folder: str) -> int:
    """Bytes the SQLite files of ``folder`` hold: their pages in use, WAL
    frames included (``page_count`` counts them), free pages not. No
    checkpoint: truncating a WAL would make the next appends grow it again,
    which would time the file's growth instead of the store's work."""
    total = 0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".db"):
            continue
        connection = sqlite3.connect(os.path.join(folder, name))
        try:
            pages, free, size = (
                connection.execute(f"PRAGMA {pragma}").fetchone()[0]
                for pragma in ("page_count", "freelist_count", "page_size")
            )
        finally:
            connection.close()
        total += (pages - free) * size
    return total


def _journal_modes(folder: str) -> str:
    """The journal mode each SQLite file of ``folder`` is in, as a new
    connection finds it (WAL is kept in the file; any other mode reads as
    SQLite's default, ``delete``)."""
    modes = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".db"):
            connection = sqlite3.connect(os.path.join(folder, name))
            try:
                modes.append(str(connection.execute("PRAGMA journal_mode").fetchone()[0]))
            finally:
                connection.close()
    return "/".join(modes)


class _Store:
    """One store under test: ``append(n)`` one message per call,
    ``load()`` every message by a new object, ``fork()`` its branching.
    ``new_session()`` sends the next appends to a second session in the
    same file; ``fork_size()`` is how many messages the fork holds."""

    name = ""
    fork_kind = ""
    most = 1_000_000  # messages it is measured with at most
    synchronous = ""  # what the store sets; "" for SQLite's default
    fork_drops = 0  # messages of the source its fork leaves out

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def append(self, number: int) -> None:
        raise NotImplementedError

    def new_session(self) -> None:
        raise NotImplementedError

    def prepare_fork(self) -> None:
        """What a fork needs that is not the fork (untimed)."""

    def fork_size(self) -> int:
        raise NotImplementedError

    def append_many(self, numbers: range) -> bool:
        """Append these messages in one call; ``False`` if the store has no
        call for several messages."""
        return False

    def load(self) -> int:
        raise NotImplementedError

    def fork(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Engine(_Store):
    name, fork_kind = "engine (SQLite, synchronous=full)", "fork() on a store opened anew: one event"
    synchronous = "FULL"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.path = os.path.join(folder, "store.db")
        self.store = Transcripts.open(self.path)
        self.sid = self.writing = self.store.create()
        self.forked = ""

    def append(self, number: int) -> None:
        self.store.append(self.writing, Message.user(_text(number)))

    def new_session(self) -> None:
        self.writing = self.store.create()

    def append_many(self, numbers: range) -> bool:
        self.store.append(self.sid, *(Message.user(_text(number)) for number in numbers))
        return True

    def load(self) -> int:
        with Transcripts.open(self.path) as store:
            return len(store.get(self.sid).messages)

    def prepare_fork(self) -> None:
        # A store opened anew, not the writer holding the source in its
        # cache: the fork works from the file alone, as the copying peers do.
        self.store.close()
        self.store = Transcripts.open(self.path)

    def fork(self) -> None:
        self.forked = self.store.fork(self.sid)

    def fork_size(self) -> int:
        return len(self.store.get(self.forked).messages)

    def close(self) -> None:
        self.store.close()


class _Raw(_Store):
    name, fork_kind = "raw sqlite3 (one row per message)", "INSERT ... SELECT copy"
    synchronous = "FULL"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.path = os.path.join(folder, "raw.db")
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("CREATE TABLE messages (session TEXT, position INTEGER, body TEXT)")
        self.writing = "s"

    def append(self, number: int) -> None:
        body = '{"role":"user","content":"' + _text(number) + '"}'
        # One statement, a transaction of its own (the connection is in autocommit).
        self.connection.execute("INSERT INTO messages VALUES (?, ?, ?)", (self.writing, number, body))

    def new_session(self) -> None:
        self.writing = "t"

    def append_many(self, numbers: range) -> bool:
        rows = [(number, '{"role":"user","content":"' + _text(number) + '"}') for number in numbers]
        self.connection.execute("BEGIN")
        self.connection.executemany("INSERT INTO messages VALUES ('s', ?, ?)", rows)
        self.connection.execute("COMMIT")
        return True

    def load(self) -> int:
        connection = sqlite3.connect(self.path)
        rows = connection.execute("SELECT body FROM messages WHERE session = 's' ORDER BY position").fetchall()
        connection.close()
        return len(rows)

    def fork(self) -> None:
        self.connection.execute("BEGIN")
        self.connection.execute("INSERT INTO messages SELECT 'f', position, body FROM messages WHERE session = 's'")
        self.connection.execute("COMMIT")

    def fork_size(self) -> int:
        return int(self.connection.execute("SELECT count(*) FROM messages WHERE session = 'f'").fetchone()[0])

    def close(self) -> None:
        self.connection.close()


class _AgentsSession(_Store):
    name, fork_kind = "OpenAI Agents SDK SQLiteSession", "copy to a new session"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        from agents import SQLiteSession

        self.path = os.path.join(folder, "agents.db")
        self.session = self.writing = SQLiteSession("s", self.path)
        self.loop = asyncio.new_event_loop()
        self.copy: Any = None

    def append(self, number: int) -> None:
        self.loop.run_until_complete(self.writing.add_items([{"role": "user", "content": _text(number)}]))

    def new_session(self) -> None:
        self.writing = type(self.session)(session_id="t", db_path=self.path)

    def append_many(self, numbers: range) -> bool:
        items: list[Any] = [{"role": "user", "content": _text(number)} for number in numbers]
        self.loop.run_until_complete(self.session.add_items(items))
        return True

    def load(self) -> int:
        from agents import SQLiteSession

        fresh = SQLiteSession("s", self.path)
        found = len(self.loop.run_until_complete(fresh.get_items()))
        fresh.close()
        return found

    def fork(self) -> None:
        from agents import SQLiteSession

        items = self.loop.run_until_complete(self.session.get_items())
        self.copy = SQLiteSession("f" + uuid.uuid4().hex[:8], self.path)
        self.loop.run_until_complete(self.copy.add_items(items))

    def fork_size(self) -> int:
        return len(self.loop.run_until_complete(self.copy.get_items()))

    def close(self) -> None:
        for session in {id(s): s for s in (self.session, self.writing, self.copy) if s is not None}.values():
            session.close()
        self.loop.close()


class _AdvancedSession(_AgentsSession):
    name, fork_kind = "OpenAI Agents SDK AdvancedSQLiteSession", "create_branch_from_turn()"
    fork_drops = 1  # a branch from a turn holds what came before that turn

    def __init__(self, folder: str) -> None:
        _Store.__init__(self, folder)
        from agents.extensions.memory import AdvancedSQLiteSession

        self.path = os.path.join(folder, "advanced.db")
        self.session = self.writing = AdvancedSQLiteSession(session_id="s", db_path=self.path, create_tables=True)
        self.loop = asyncio.new_event_loop()
        self.copy = None
        self.turns = 0

    def new_session(self) -> None:
        from agents.extensions.memory import AdvancedSQLiteSession

        self.writing = AdvancedSQLiteSession(session_id="t", db_path=self.path, create_tables=True)

    def load(self) -> int:
        from agents.extensions.memory import AdvancedSQLiteSession

        fresh = AdvancedSQLiteSession(session_id="s", db_path=self.path)
        found = len(self.loop.run_until_complete(fresh.get_items()))
        fresh.close()
        return found

    def prepare_fork(self) -> None:
        # Each user message is a turn: the fork branches from the last one.
        self.turns = len(self.loop.run_until_complete(self.session.get_conversation_turns()))

    def fork(self) -> None:
        self.loop.run_until_complete(self.session.create_branch_from_turn(self.turns))

    def fork_size(self) -> int:
        return len(self.loop.run_until_complete(self.session.get_items()))  # the branch it switched to


class _LangGraph(_Store):
    name, fork_kind = "LangGraph SqliteSaver (MessagesState graph)", "update_state() from a checkpoint"
    # Each checkpoint keeps the whole message list: 4,000 messages would
    # write gigabytes (the bytes-per-message row shows the growth).
    most = 1_000

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import START, MessagesState, StateGraph

        self.path = os.path.join(folder, "langgraph.db")
        self.connection = sqlite3.connect(self.path, check_same_thread=False)
        self.saver = SqliteSaver(self.connection)
        self.saver.setup()  # its tables, made on the first write otherwise: part of the empty file, as for the others
        builder = StateGraph(MessagesState)
        builder.add_node("agent", lambda state: {})
        builder.add_edge(START, "agent")
        self.graph = builder.compile(checkpointer=self.saver)
        self.config: dict[str, Any] = {"configurable": {"thread_id": "s"}}
        self.writing = self.config

    def append(self, number: int) -> None:
        self.graph.invoke({"messages": [{"role": "user", "content": _text(number)}]}, self.writing)

    def new_session(self) -> None:
        self.writing = {"configurable": {"thread_id": "t"}}

    def append_many(self, numbers: range) -> bool:
        self.graph.invoke({"messages": [{"role": "user", "content": _text(number)} for number in numbers]}, self.config)
        return True

    def load(self) -> int:
        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(self.path, check_same_thread=False)
        saver = SqliteSaver(connection)
        checkpoint = saver.get_tuple(self.config)
        assert checkpoint is not None
        found = len(checkpoint.checkpoint["channel_values"]["messages"])
        connection.close()
        return found

    def fork(self) -> None:
        latest = self.graph.get_state(self.config)
        self.graph.update_state(latest.config, {"messages": []})

    def fork_size(self) -> int:
        return len(self.graph.get_state(self.config).values["messages"])

    def close(self) -> None:
        self.connection.close()


class _Adk(_Store):
    name, fork_kind = "Google ADK DatabaseSessionService (SQLite)", "copy to a new session"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        from google.adk.sessions import DatabaseSessionService

        self.path = os.path.join(folder, "adk.db")
        self.loop = asyncio.new_event_loop()
        self.service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{self.path}")
        self.session = self.writing = self.loop.run_until_complete(
            self.service.create_session(app_name="bench", user_id="u")
        )
        self.copy: Any = None

    def _event(self, text: str) -> Any:
        from google.adk.events import Event
        from google.genai import types

        return Event(author="user", content=types.Content(role="user", parts=[types.Part(text=text)]))

    def append(self, number: int) -> None:
        self.loop.run_until_complete(self.service.append_event(self.writing, self._event(_text(number))))

    def new_session(self) -> None:
        self.writing = self.loop.run_until_complete(self.service.create_session(app_name="bench", user_id="u"))

    def load(self) -> int:
        from google.adk.sessions import DatabaseSessionService

        fresh = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{self.path}")
        found = self.loop.run_until_complete(
            fresh.get_session(app_name="bench", user_id="u", session_id=self.session.id)
        )
        assert found is not None
        return len(found.events)

    def fork(self) -> None:
        source = self.loop.run_until_complete(
            self.service.get_session(app_name="bench", user_id="u", session_id=self.session.id)
        )
        assert source is not None
        self.copy = copy = self.loop.run_until_complete(self.service.create_session(app_name="bench", user_id="u"))
        for event in source.events:
            self.loop.run_until_complete(self.service.append_event(copy, self._event(event.content.parts[0].text)))

    def fork_size(self) -> int:
        found = self.loop.run_until_complete(
            self.service.get_session(app_name="bench", user_id="u", session_id=self.copy.id)
        )
        assert found is not None
        return len(found.events)

    def close(self) -> None:
        self.loop.close()


STORES: tuple[type[_Store], ...] = (_Engine, _Raw, _AgentsSession, _AdvancedSession, _LangGraph, _Adk)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _timed_alone(action: Callable[[], object]) -> float:
    """``action`` timed after a full collection: a collection owed by what
    ran before (the peers' libraries hold many objects) lands in no one's
    timed call by chance. (The engine pauses the collector while it loads;
    what it then owes is collected before the next timed call, untimed.)"""
    gc.collect()
    return _timed(action)


#: Appends timed at each end of the cost-growth row, and where the early ones start.
_WINDOW = 50
_EARLY = 100
#: Cold loads timed per run (the run's figure is their median).
_LOADS = 5


def one_run(kind: type[_Store], messages: int) -> dict[str, Any]:
    messages = min(messages, kind.most)
    with tempfile.TemporaryDirectory() as folder:
        store = kind(folder)
        empty = _size(folder)
        late: list[float] = []
        gc.collect()
        started = time.perf_counter()
        for number in range(messages):
            took = _timed(lambda number=number: store.append(number))  # type: ignore[misc]
            if number >= messages - _WINDOW:
                late.append(took)
        appending = time.perf_counter() - started
        grown = _size(folder) - empty
        # The cost at 100 messages: a second session in the same file, now
        # that it holds the first (and its WAL has reached the same size), so
        # both windows differ only in the size of the session appended to.
        store.new_session()
        early: list[float] = []
        for number in range(_EARLY + _WINDOW):
            took = _timed(lambda number=number: store.append(number))  # type: ignore[misc]
            if number >= _EARLY:
                early.append(took)
        loaded = median(_timed_alone(store.load) for _ in range(_LOADS))
        store.prepare_fork()
        before_fork = _size(folder)
        forked = _timed_alone(store.fork)
        fork_bytes = _size(folder) - before_fork
        fork_size = store.fork_size()
        assert fork_size == messages - kind.fork_drops, (kind.name, fork_size)
        assert store.load() == messages, kind.name
        journal = _journal_modes(folder)
        store.close()
    with tempfile.TemporaryDirectory() as folder:
        batched = kind(folder)
        empty = _size(folder)
        took_many = all(
            batched.append_many(range(start, min(start + 100, messages))) for start in range(0, messages, 100)
        )
        grown_in_calls = _size(folder) - empty
        assert not took_many or batched.load() == messages, kind.name
        batched.close()
    return {
        "append_rate": messages / appending,
        "append_at_100": median(early),
        "append_at_end": median(late),
        "load": loaded,
        "fork": forked,
        "fork_bytes": fork_bytes,
        "fork_size": fork_size,
        "bytes_per_message": grown / messages,
        "bytes_per_message_in_calls": grown_in_calls / messages if took_many else float("nan"),
        "messages": messages,
        "journal": journal,
    }


def run(config: PeersConfig) -> dict[str, object]:
    results: dict[str, list[dict[str, Any]]] = {kind.name: [] for kind in STORES}
    for number in range(config.runs):
        # Who goes first rotates from run to run, as in the other parts.
        shift = number % len(STORES)
        for kind in STORES[shift:] + STORES[:shift]:
            results[kind.name].append(one_run(kind, config.messages))
        progress(f"  peers: run {number + 1}/{config.runs} done")
    rows = {
        name: {key: median(run[key] for run in runs) for key in runs[0] if key != "journal"}
        for name, runs in results.items()
    }
    lines: list[Line] = []
    for kind in STORES:
        row = rows[kind.name]
        lines.append(Line(kind.name, "", None, short=kind.name))
        lines.append(Line("    appends/s, 1 message per call", "msg/s", row["append_rate"]))
        growth = row["append_at_end"] / row["append_at_100"]
        count = int(row["messages"])
        lines.append(Line("    one append, session at 100 messages", "us", row["append_at_100"] * 1e6))
        lines.append(Line(f"    one append, session at {count:,} messages", "us", row["append_at_end"] * 1e6))
        lines.append(Line(f"    append at {count:,} over append at 100 (cost growth)", "x", growth, short="growth"))
        lines.append(Line(f"    cold load of {count:,} messages", "ms", row["load"] * 1000))
        lines.append(Line(f"    fork ({kind.fork_kind})", "ms", row["fork"] * 1000))
        lines.append(Line("    bytes the fork added (whole pages)", "B", row["fork_bytes"]))
        lines.append(Line("    bytes stored per 200-byte message", "B", row["bytes_per_message"]))
        in_calls = row["bytes_per_message_in_calls"]
        lines.append(Line("    same, 100 messages per call", "B", None if math.isnan(in_calls) else in_calls))
    leads = _leads(results)
    led = sum("leads every peer" in line for line in leads)
    default_sync = sqlite3.connect(":memory:").execute("PRAGMA synchronous").fetchone()[0]
    durability = "; ".join(
        f"{kind.name.split(' (')[0]}: journal {results[kind.name][0]['journal']}, synchronous "
        + (f"{kind.synchronous} (set)" if kind.synchronous else f"not set (SQLite's default here, {default_sync})")
        for kind in STORES
    )
    print_report(
        machine_line(f"SQLite files, {config.messages:,} messages of 200 bytes", config.runs, config.quick),
        format_table(lines, "median of runs"),
        [
            "raw sqlite3 (one plain row per message: no checks, no ids, no session API) is the floor, shown for "
            "scale: it is not a peer, and the words below compare the engine with the peer stores only",
            "every store writes to a SQLite file of its own, as its library sets it up (the journal mode is read "
            f"from each file; synchronous 2 is FULL, 1 NORMAL): {durability}",
            "LangGraph keeps a conversation as checkpoints of a graph's state: each append is one invoke of a "
            "one-node graph over MessagesState (several checkpoint writes); it is measured up to 1,000 messages, "
            "as every checkpoint keeps the whole list",
            f"cost growth: the median of the last {_WINDOW} appends over that of appends {_EARLY + 1}-"
            f"{_EARLY + _WINDOW} of a second session, made in the same file afterwards (same file and WAL sizes)",
            f"cold load: a new object (and connection) reads every message; a run's figure is the median of "
            f"{_LOADS} loads, each after a full collection (gc.collect(), untimed), so that a collection owed by "
            "earlier work lands in no store's load by chance",
            "fork: the engine's fork() on a store opened anew (untimed), so that it works from the file alone "
            "as the copying peers do, not from its writer's cache (it reads the source's listing row and first "
            "event); AdvancedSQLiteSession's "
            "create_branch_from_turn() of the last turn (its "
            "branch holds the messages before that turn, one fewer; the turn lookup is not timed); LangGraph's "
            "update_state() from the latest checkpoint (a new checkpoint of the same thread); SQLiteSession, ADK "
            "and raw sqlite3 have no branching, so their nearest equivalent, a copy into a new session, is timed. "
            "Each fork's message count is checked. Bytes a fork added are whole pages: under a page shows 0 B",
            "-: not measured (ADK has no call that appends several messages)",
            *leads,
        ],
        f"target: the engine leads every measure where a peer has the feature: it leads {led} of {len(leads)}, "
        + ("met" if led == len(leads) else "NOT met"),
    )
    return part_document(config, lines, results=results)


#: How each compared measure reads in the words under the table.
_MEASURES = (
    ("append_rate", "appends per second", "msg/s", 1.0),
    ("append_at_end", "one append at the end", "µs", 1e6),
    ("load", "cold load", "ms", 1e3),
    ("fork", "fork time", "ms", 1e3),
    ("fork_bytes", "bytes a fork adds", "B", 1.0),
    ("bytes_per_message", "bytes per message", "B", 1.0),
    ("bytes_per_message_in_calls", "bytes per message, 100 per call", "B", 1.0),
)


def _leads(results: dict[str, list[dict[str, float]]]) -> list[str]:
    """In words, for each measure: whether the engine leads every peer store
    (better in every run, run ``i`` of the engine against run ``i`` of the
    peer, made in the same round), and where it does not, each peer it does
    not lead, with both medians and how many runs the engine was better in;
    and which peers the measure leaves out. Within 1% is level, not better:
    a byte count moves in whole pages, a time with the machine."""
    higher_is_better = {"append_rate"}
    engine_runs = results[_Engine.name]
    said = []
    for key, label, unit, scale in _MEASURES:

        def figure(value: float, unit: str = unit, scale: float = scale) -> str:
            return f"{value * scale:,.1f} {unit}"

        # Only peers measured with as many messages as the engine compare on size-dependent rows.
        any_size = key == "append_rate"
        compared = {
            name: runs
            for name, runs in results.items()
            if name != _Engine.name
            and "raw" not in name
            and (any_size or runs[0]["messages"] == engine_runs[0]["messages"])
            and not math.isnan(runs[0][key])  # no call for several messages: nothing to compare
        }
        left_out = [
            f"{name} (measured at {int(runs[0]['messages']):,} messages)"
            for name, runs in results.items()
            if name != _Engine.name
            and "raw" not in name
            and not any_size
            and runs[0]["messages"] != engine_runs[0]["messages"]
        ]
        sign = 1 if key in higher_is_better else -1
        not_led = []
        for name, runs in compared.items():
            pairs = list(zip(engine_runs, runs, strict=False))
            wins = sum(sign * (ours[key] - theirs[key]) > 0.01 * abs(theirs[key]) for ours, theirs in pairs)
            if wins < len(pairs):
                peer = figure(median(run[key] for run in runs))
                not_led.append(f"{name} ({peer}; the engine better in {wins} of {len(pairs)} runs)")
        ours = f" (the engine {figure(median(run[key] for run in engine_runs))})"
        if not_led:
            text = f"the engine does NOT lead in every run: {', '.join(not_led)}{ours}"
        else:
            text = "the engine leads every peer, in every run"
        said.append(f"{label}: {text}" + (f"; not compared: {', '.join(left_out)}" if left_out else ""))
    return said
