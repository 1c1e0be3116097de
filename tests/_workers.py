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
