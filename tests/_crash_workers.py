"""Code run in child processes by the crash and stress tests (importable by
spawned children, so kept apart from the test modules).

Crash workers write forever and report every operation on a line of an
append-only file: ``begin <op>`` just before the engine call, ``ack <op>``
just after it returned. A line is one ``os.write`` on an ``O_APPEND``
descriptor: once the call returns, the kernel holds it, so a SIGKILL cannot
lose it (an fsync would only matter for power loss, and would spend most of
the child's time outside the engine, where a kill teaches nothing).
"""

from __future__ import annotations

import os
import random
import re
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from engine import ConcurrentWriteError, CorruptStore, EngineError, Message, StorageError, Transcripts, Usage

#: A crash worker stops by itself after this long (the parent kills it long before).
MAX_SECONDS = 60.0


# -- what the workers write (the parent recomputes it to check) ---------------


def single_text(op: int) -> str:
    return f"single-{op:07d}"


def batch_text(op: int, index: int, size: int) -> str:
    """Message ``index`` of batch ``op``: its own header, then filler that
    differs per message, so a message of another batch or a cut one never
    passes for it."""
    head = f"batch-{op:07d}-{index:03d}|"
    filler = f"{op}.{index}:" * (size // 4 + 1)
    return head + filler[: max(0, size - len(head))]


def batch_messages(op: int, count: int, size: int) -> list[Message]:
    return [
        (Message.user if index % 2 == 0 else Message.assistant)(batch_text(op, index, size)) for index in range(count)
    ]


# -- crash workers -------------------------------------------------------------


class _Reporter:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, line: str) -> None:
        os.write(self._fd, (line.replace("\n", " | ") + "\n").encode())


def _run_crash_worker(ack_path: str, body: Callable[[_Reporter], None]) -> None:
    report = _Reporter(ack_path)
    try:
        body(report)
    except BaseException as exc:  # reported to the parent, which fails the test
        report("error " + "".join(traceback.format_exception(exc)))
        raise SystemExit(3) from None
    report("finished")


def crash_appends(
    ack_path: str,
    target: str,
    prefix: str,
    session_id: str,
    first_op: int,
    batch: int,
    size: int,
    snapshot_interval: int | None,
) -> None:
    """Append to one session until killed: op ``n`` is one ``append`` call of
    one message (``batch == 1``, text ``single_text(n)``) or of ``batch``
    messages (``batch_messages(n, batch, size)``)."""

    def body(report: _Reporter) -> None:
        store = Transcripts.open(target, table_prefix=prefix, snapshot_interval=snapshot_interval)
        report("started")
        op = first_op
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline:
            messages = [Message.user(single_text(op))] if batch == 1 else batch_messages(op, batch, size)
            report(f"begin {op}")
            store.append(session_id, *messages)
            report(f"ack {op}")
            op += 1
        store.close()

    _run_crash_worker(ack_path, body)


def crash_ingest(
    ack_path: str,
    target: str,
    prefix: str,
    session_prefix: str,
    events: Sequence[dict[str, Any]],
    chunk: int,
    snapshot_interval: int | None,
) -> None:
    """Ingest a realtime stream, ``chunk`` events per ``ingest_many`` call,
    into session ``<session_prefix>-0``, then the same stream into ``-1``, ...
    until killed. Ops: ``<s> create`` and ``<s> <chunk index>``."""

    def body(report: _Reporter) -> None:
        store = Transcripts.open(target, table_prefix=prefix, snapshot_interval=snapshot_interval)
        report("started")
        deadline = time.monotonic() + MAX_SECONDS
        number = 0
        while time.monotonic() < deadline:
            sid = f"{session_prefix}-{number}"
            report(f"begin {number} create")
            store.create(session_id=sid)
            report(f"ack {number} create")
            for index, start in enumerate(range(0, len(events), chunk)):
                part = events[start : start + chunk]
                report(f"begin {number} {index}")
                store.ingest_many(sid, part, provider="openai")
                report(f"ack {number} {index}")
            number += 1
        store.close()

    _run_crash_worker(ack_path, body)


# -- stress workers --------------------------------------------------------------


def stress_writer(
    target: str,
    prefix: str,
    name: str,
    plan: Sequence[tuple[str, int]],
    snapshot_interval: int,
    start_at: float,
    stop_at: float,
    results: Any,
    min_writes: int = 0,
) -> None:
    """Append until ``stop_at`` and until every session of the plan has
    ``min_writes`` calls (on a slow machine that takes longer; at most a
    minute more), cycling through ``plan`` (session id, messages per call);
    the texts are ``<name>-<n>`` (``<name>-<n>-<i>`` in batches), ``n``
    counting this writer's calls to that session from 0. Lost races are
    retried. Reports what was acknowledged, per session, in order."""
    acknowledged: dict[str, list[str]] = {sid: [] for sid, _ in plan}
    calls = dict.fromkeys(acknowledged, 0)
    conflicts = 0
    try:
        store = Transcripts.open(target, table_prefix=prefix, snapshot_interval=snapshot_interval)
        rng = random.Random(name)
        time.sleep(max(0.0, start_at - time.time()))
        op = 0
        while time.time() < stop_at or (min(calls.values()) < min_writes and time.time() < stop_at + 60):
            sid, count = plan[op % len(plan)]
            n = calls[sid]
            texts = [f"{name}-{n}"] if count == 1 else [f"{name}-{n}-{i}" for i in range(count)]
            messages = [Message.user(text) for text in texts]
            usage = Usage(input=count, output=1) if count > 1 else None
            while True:
                try:
                    store.append(sid, *messages, usage=usage)
                except ConcurrentWriteError:
                    conflicts += 1
                    continue
                break
            acknowledged[sid] += texts
            calls[sid] += 1
            op += 1
            time.sleep(rng.random() * 0.002)  # leaves the readers some CPU
        store.close()
    except BaseException as exc:
        results.put(("writer", name, {"error": "".join(traceback.format_exception(exc))}))
        return
    results.put(("writer", name, {"acknowledged": acknowledged, "conflicts": conflicts}))


class Inconsistent(Exception):
    """A reader saw two answers that cannot both be true of one store."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise Inconsistent(what)


def ordered_by_writer(texts: Sequence[str], sid: str) -> None:
    """Each writer's calls appear in the order it made them, from its first,
    with no gap and none twice, each call whole (all its messages, in order)."""
    calls: dict[str, list[tuple[int, list[int]]]] = {}
    for text in texts:
        writer, _, rest = text.partition("-")
        parts = [int(part) for part in rest.split("-")]
        mine = calls.setdefault(writer, [])
        if not mine or mine[-1][0] != parts[0]:
            mine.append((parts[0], []))
        mine[-1][1].append(parts[1] if len(parts) > 1 else 0)
    for writer, made in calls.items():
        _check([n for n, _ in made] == list(range(len(made))), f"{sid}: {writer}'s calls are out of order or missing")
        sizes = {len(indices) for _, indices in made}
        _check(
            all(indices == list(range(len(indices))) for _, indices in made) and len(sizes) == 1,
            f"{sid}: a call of {writer} is torn",
        )


def stress_reader(
    target: str,
    prefix: str,
    name: str,
    sessions: Sequence[str],
    start_at: float,
    stop_at: float,
    results: Any,
) -> None:
    """Until ``stop_at``: open a fresh store, read every session every way
    (listing, head, history, time travel by version, revision and time,
    verify), cross-check the answers, close. Counts each outcome."""
    counts = {"reads": 0, "opens": 0, "corrupt": 0, "untyped": 0, "inconsistent": 0, "typed": 0, "tolerated": 0}
    examples: dict[str, list[str]] = {}
    messages: dict[str, int] = {}  # per error kind and message (ids and numbers left out)

    def record(kind: str, exc: BaseException, step: str) -> None:
        counts[kind] += 1
        gist = re.sub(r"'[^']*'|\d+", "_", f"{kind}: {type(exc).__name__}: {exc}")[:160]
        messages[gist] = messages.get(gist, 0) + 1
        if len(examples.setdefault(kind, [])) < 3:
            examples[kind].append(f"{step}: " + "".join(traceback.format_exception(exc)))

    rng = random.Random(name)
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        interval = rng.choice([None, 3, 5, 100])
        step = "open"
        try:
            store = Transcripts.open(target, table_prefix=prefix, snapshot_interval=interval)
        except BaseException as exc:
            _classify(record, exc, step)
            continue
        counts["opens"] += 1
        try:
            for sid in rng.sample(list(sessions), len(sessions)):
                if time.time() >= stop_at:
                    break
                step = f"{sid} (snapshot_interval={interval})"
                try:
                    _read_everything(store, sid, rng)
                except BaseException as exc:
                    _classify(record, exc, step)
                else:
                    counts["reads"] += 1
        finally:
            store.close()
    results.put(("reader", name, {"counts": counts, "examples": examples, "messages": messages}))


def _classify(record: Callable[[str, BaseException, str], None], exc: BaseException, step: str) -> None:
    if isinstance(exc, Inconsistent):
        record("inconsistent", exc, step)
    elif isinstance(exc, CorruptStore):
        record("corrupt", exc, step)
    elif isinstance(exc, StorageError):  # a busy or slow database: typed, allowed, counted
        record("tolerated", exc, step)
    elif isinstance(exc, EngineError):  # typed, but wrong for a valid query of a healthy store
        record("typed", exc, step)
    elif isinstance(exc, Exception):
        record("untyped", exc, step)
    else:
        raise exc


def _read_everything(store: Transcripts, sid: str, rng: random.Random) -> None:
    listed = {info.id: info for info in store.sessions()}
    _check(sid in listed, f"{sid} is not listed")
    row = listed[sid]
    head = store.get(sid)  # read after the listing: never behind it
    _check(head.version >= row.version, f"{sid}: head v{head.version} is behind its listing row v{row.version}")
    as_listed = store.get(sid, at=row.version)
    _check(
        (len(as_listed.messages), as_listed.revision, as_listed.title) == (row.message_count, row.revision, row.title),
        f"{sid}: the listing row v{row.version} differs from the session at that version",
    )
    texts = [m.text for m in head.messages]
    ordered_by_writer(texts, sid)
    history = store.history(sid)
    _check(len(history) >= head.version, f"{sid}: history has {len(history)} entries, head is v{head.version}")
    _check([e.version for e in history] == list(range(1, len(history) + 1)), f"{sid}: history versions skip")
    version = rng.randint(1, head.version)
    past = store.get(sid, at=version)
    _check(past.version == version, f"{sid}: get(at={version}) returned v{past.version}")
    _check(past.revision == history[version - 1].revision, f"{sid}: v{version} revision differs from history")
    _check(
        [m.id for m in past.messages] == [m.id for m in head.messages[: len(past.messages)]],
        f"{sid}: v{version} is not a prefix of the head",
    )
    again = store.get(sid, at=past.revision)
    _check(again.revision == past.revision and again.version >= version, f"{sid}: get(at=revision) disagrees")
    then = store.get(sid, at=past.updated_at)  # the last state recorded at or before that time
    _check(then.version >= version and then.updated_at == past.updated_at, f"{sid}: get(at=datetime) disagrees")
    verified = store.verify(sid)
    _check(verified.version >= head.version, f"{sid}: verify() v{verified.version} is behind the head")
    _check(
        [m.id for m in verified.messages[: len(head.messages)]] == [m.id for m in head.messages],
        f"{sid}: the head is not a prefix of verify()'s replay",
    )
