"""What someone who can write to an unkeyed SQLite store can do after
editing its log: link the session's records into a new chain head and seal
its listing row again, so that the row matches the edited log."""

from __future__ import annotations

import sqlite3

from engine.store import Record, SessionRow, head_of
from engine.store._chain import seal_of


def relink_and_reseal(db: sqlite3.Connection, session_id: str) -> None:
    records = db.execute(
        "SELECT originator_version, topic, state FROM transcripts_events WHERE originator_id=? "
        "ORDER BY originator_version",
        (session_id,),
    ).fetchall()
    head = head_of(session_id, [Record(*record) for record in records]).hex()
    row = db.execute("SELECT * FROM transcripts_sessions WHERE session_id=?", (session_id,)).fetchone()
    forged = SessionRow(*row[:7], head, summary=row[9])  # every field but the seal, resealed
    db.execute(
        "UPDATE transcripts_sessions SET head=?, seal=? WHERE session_id=?",
        (head, seal_of(forged, None), session_id),
    )
