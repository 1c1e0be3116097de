"""Storage: one contract (``Backend``), eventsourcing's recorders behind it.

``open_backend`` picks the backend from its argument alone (never from
environment variables): nothing or ``":memory:"`` is memory, a
``postgresql://`` URL is PostgreSQL, anything else is a SQLite file path.
"""

from __future__ import annotations

import os
import re

from engine.errors import InvalidArgument
from engine.state.content import shown, unicode_error
from engine.store._backend import MAX_EVENTS_PER_WRITE, Backend, ClosedBackend, Purge
from engine.store._chain import Chain, chain_from, chain_of, checkpoints_of, extended, head_of, legacy_head_of
from engine.store._codec import (
    Snapshot,
    SnapshotCheck,
    decode_event,
    decode_events,
    decode_for_load,
    decode_snapshot,
    decode_summary,
    encode_event,
    encode_snapshot,
    forked_summary,
    listing_summary,
    summary_matches,
    summary_of,
)
from engine.store._records import FeedEntry, ListingFilter, Record, Rewrite, SessionRow, StoredSnapshot
from engine.store._wal import READ_MODEL_APPLICATION_ID, enter_wal, refuse_side_file

__all__ = [
    "MAX_EVENTS_PER_WRITE",
    "READ_MODEL_APPLICATION_ID",
    "Backend",
    "Chain",
    "ClosedBackend",
    "FeedEntry",
    "ListingFilter",
    "Purge",
    "Record",
    "Rewrite",
    "SessionRow",
    "Snapshot",
    "SnapshotCheck",
    "StoredSnapshot",
    "chain_from",
    "chain_of",
    "checkpoints_of",
    "decode_event",
    "decode_events",
    "decode_for_load",
    "decode_snapshot",
    "decode_summary",
    "encode_event",
    "encode_snapshot",
    "enter_wal",
    "extended",
    "forked_summary",
    "head_of",
    "legacy_head_of",
    "listing_summary",
    "open_backend",
    "refuse_side_file",
    "summary_matches",
    "summary_of",
]

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def open_backend(
    target: str | os.PathLike[str] | None = None,
    *,
    table_prefix: str = "transcripts",
    synchronous: str = "full",
    lock_timeout: int = 10,
    seal_key: bytes | None = None,
    seal_legacy: bool = False,
    create: bool = True,
) -> Backend:
    if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix) or table_prefix.startswith("sqlite"):
        raise InvalidArgument(
            "table_prefix must be 1-40 lowercase letters, digits or underscores, starting with a letter or an "
            f"underscore, and not with 'sqlite' (SQLite keeps such names for itself), got {shown(table_prefix)}"
        )
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not 0 < lock_timeout < 86400:
        raise InvalidArgument(
            f"lock_timeout is in seconds: a number above 0 and below a day, got {shown(lock_timeout)}"
        )
    if seal_key is not None and (not isinstance(seal_key, bytes) or len(seal_key) < 16):
        raise InvalidArgument("seal_key must be bytes, at least 16 of them (for example os.urandom(32))")
    memory = target is None or (isinstance(target, str) and target == ":memory:")
    postgres = isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
    if synchronous != "full" and (memory or postgres):
        # Asked for, it would silently do nothing.
        raise InvalidArgument(
            f"synchronous={shown(synchronous)} is a setting of SQLite files; a PostgreSQL store commits as its "
            "server's synchronous_commit says, and a memory store keeps nothing: leave synchronous out"
        )
    if memory:
        if create is not True:
            raise InvalidArgument(
                "create=False opens only a store that is there, and a memory store never is: "
                "give a SQLite file path or a postgresql:// URL, or leave create out"
            )
        from engine.store._memory import open_memory

        return open_memory(seal_key)
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, str) and not target.isascii():
        unicode_error(target, "Transcripts.open() target", InvalidArgument)
    if not isinstance(target, str) or not target:
        raise InvalidArgument(
            f"Transcripts.open() takes nothing (memory), a SQLite file path or a postgresql:// URL, got {shown(target)}"
        )
    if target.startswith(("postgresql://", "postgres://")):
        from engine.store._postgres import open_postgres

        return open_postgres(
            target,
            prefix=table_prefix,
            lock_timeout=lock_timeout,
            seal_key=seal_key,
            seal_legacy=seal_legacy,
            create=create,
        )
    scheme = _SCHEME.match(target)
    if scheme:
        raise InvalidArgument(
            f"unknown URL scheme {scheme.group(1)!r} in {shown(target)}: Transcripts.open() takes nothing (memory), "
            "a SQLite file path or a postgresql:// URL"
        )
    from engine.store._sqlite import open_sqlite

    return open_sqlite(
        target,
        prefix=table_prefix,
        synchronous=synchronous,  # type: ignore[arg-type]
        lock_timeout=lock_timeout,
        seal_key=seal_key,
        seal_legacy=seal_legacy,
        create=create,
    )
