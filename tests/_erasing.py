"""Erasures and deletions interleaved with appends across sessions: the
scenario in which SQLite moves rows between pages and leaves old copies in
their unused space, for the tests that look for erased text in a file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from engine import Message, Transcripts


def secret(ident: str) -> str:
    """The text of message ``ident``: unlike any digest, time or id."""
    return f"SECRET-{ident}-END"


def interleaved_erasures(
    store: Transcripts, seed: int, after_step: Callable[[], object] = lambda: None
) -> tuple[dict[str, list[str]], list[str]]:
    """Four sessions; 400 steps, each appending a message to one of them at
    random or, a quarter of the time, erasing one of its messages (then
    ``after_step()``); then the first two sessions deleted. Returns the ids
    of the messages left, by session, and the texts that must be gone."""
    chosen = random.Random(seed)
    sessions = [store.create(session_id=f"s{number}") for number in range(4)]
    live: dict[str, list[str]] = {sid: [] for sid in sessions}
    gone: list[str] = []
    for number in range(400):
        sid = chosen.choice(sessions)
        if chosen.random() < 0.25 and live[sid]:
            ident = live[sid].pop(chosen.randrange(len(live[sid])))
            store.erase(sid, ident)
            gone.append(secret(ident))
        else:
            ident = f"m{number:04d}"
            store.append(sid, Message.user(secret(ident), id=ident))
            live[sid].append(ident)
        after_step()
    for sid in sessions[:2]:
        store.delete(sid)
        gone += [secret(ident) for ident in live.pop(sid)]
    return live, gone


def texts_left(folder: Path, name: str, texts: list[str]) -> list[str]:
    """Those of ``texts`` still in the file ``name`` of ``folder`` or its WAL."""
    stored = b"".join(path.read_bytes() for path in folder.glob(f"{name}*"))
    return [text for text in texts if text.encode() in stored]
