"""Code run in child processes by the multi-process tests."""

from __future__ import annotations

import time
from typing import Any

from engine import ConcurrentWriteError, Message, Transcripts


def append_many(
    target: str, prefix: str, session_id: str, name: str, count: int, start_at: float, results: Any
) -> None:
    """Append ``count`` messages, retrying lost races; report what was
    acknowledged (or the error that stopped the worker)."""
    try:
        _append_many(target, prefix, session_id, name, count, start_at, results)
    except Exception as exc:  # reported to the parent, which fails the test at once
        results.put((name, repr(exc), -1))


def _append_many(
    target: str, prefix: str, session_id: str, name: str, count: int, start_at: float, results: Any
) -> None:
    store = Transcripts.open(target, table_prefix=prefix)
    acknowledged, conflicts = [], 0
    time.sleep(max(0.0, start_at - time.time()))  # start together
    for index in range(count):
        text = f"{name}-{index}"
        while True:
            try:
                store.append(session_id, Message.user(text))
            except ConcurrentWriteError:
                conflicts += 1
                continue
            acknowledged.append(text)
            break
    store.close()
    results.put((name, acknowledged, conflicts))


def race_to_create(folder: str, trials: int, barrier: Any, results: Any) -> None:
    """For each trial, once every racer is at the barrier, open a store file
    that does not exist yet, create a session and append to it; report the
    errors met."""
    import os

    errors = []
    for trial in range(trials):
        barrier.wait(timeout=120)
        try:
            with Transcripts.open(os.path.join(folder, f"{trial}.db"), lock_timeout=20) as store:
                store.append(store.create(), Message.user("hi"))
        except Exception as exc:
            errors.append(f"trial {trial}: {type(exc).__name__}: {exc}")
    results.put(errors)
