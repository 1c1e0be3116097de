"""The newest messages of a session without loading all of it:
``Transcripts.get(sid, last=N)``.

The session's newest snapshot keeps where the record chain can be resumed
from. The records after that point are read and chained on from it; if they
reach the head sealed in the listing row, they (and the resumed link) are
the ones the store vouches for, and the newest messages are found by walking
those records back from the head: an append put its messages at the end, a
rewrite replaced a span, an erasure left placeholders in what came before
it. Only the records walked are decoded. When the walk needs older records
(a tail longer than what was written since the checkpoint, a fork's
inherited messages, no snapshot yet, a chain that does not match) it walks
the whole checked log instead, which is what a full load reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from engine.decisions import check_session_id
from engine.errors import CorruptStore, InvalidArgument
from engine.facade._repository import Repository
from engine.state.content import Message, shown
from engine.state.events import MessagesAppended, MessagesErased, MessagesRewritten, SessionCreated, SessionForked
from engine.state.transcript import Tail
from engine.store import Record, SessionRow, chain_from, decode_events, decode_snapshot, extended

__all__ = ["tail"]


def tail(repository: Repository, session_id: str, count: int) -> Tail:
    check_session_id(session_id)  # as every read of a session: a str the store could hold
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidArgument(f"last= is how many of the newest messages (an int >= 0), got {shown(count)}")
    row = repository.backend.session_row(session_id)
    cached = repository.tails.get(session_id)
    if row is not None and cached is not None:
        head, kept = cached
        if (head, kept.version) == (row.head, row.version) and (kept.start == 0 or len(kept.messages) >= count):
            return _last(kept, count)  # the row still shows the head those records reached
    found = _from_checkpoint(repository, session_id, row, count) if row is not None else None
    if found is None:  # the whole checked log (raises SessionNotFound, CorruptStore)
        row, records, _ = repository.log(session_id)
        found = _walk(repository, session_id, records, row.message_count, count, whole=True)
        assert found is not None
    assert row is not None
    messages, times = found
    result = Tail(
        session_id=session_id,
        version=row.version,
        revision=row.revision,
        message_count=row.message_count,
        start=row.message_count - len(messages),
        messages=tuple(messages),
        written_at=tuple(times),
    )
    repository.remember_tail(session_id, row.head, result)
    return result


def _last(cached: Tail, count: int) -> Tail:
    keep = min(count, len(cached.messages))
    cut = len(cached.messages) - keep
    return replace(cached, start=cached.start + cut, messages=cached.messages[cut:], written_at=cached.written_at[cut:])


def _from_checkpoint(
    repository: Repository, session_id: str, row: SessionRow, count: int
) -> tuple[list[Message], list[datetime]] | None:
    """The tail from the records after the newest snapshot's chain
    checkpoint, if they reach the sealed head and hold the whole tail."""
    stored = repository.backend.snapshot(session_id, upto=row.version)
    if stored is None:
        return None
    snapshot = decode_snapshot(session_id, stored.state)
    if snapshot.chain_start is None or snapshot.chain_link is None:
        return None
    try:
        chain = chain_from(snapshot.chain_start, snapshot.chain_link)
    except ValueError:
        return None  # a damaged hint: the whole log says whether anything else is
    # Read to the end, not to the row's version: an event past where the row
    # ends is either a writer that committed after the row was read or one
    # added behind the row's back, and the whole log tells which.
    records = repository.backend.read(session_id, after=snapshot.chain_start)
    if records and records[-1].version > row.version:
        return None
    try:
        reached = extended(chain, records).digest().hex()
    except (TypeError, AttributeError):
        return None
    if len(records) != row.version - snapshot.chain_start or reached != row.head:
        return None
    return _walk(repository, session_id, records, row.message_count, count, whole=False)


def _walk(
    repository: Repository, session_id: str, records: Sequence[Record], message_count: int, count: int, *, whole: bool
) -> tuple[list[Message], list[datetime]] | None:
    """The last ``count`` messages of the state after ``records`` (which
    hold ``message_count`` messages), walking the records back from the end;
    ``None`` if they run out first (``whole``: they are the whole log, and
    running out is damage)."""
    wanted = min(count, message_count)
    messages: list[Message | None] = [None] * wanted
    times: list[datetime | None] = [None] * wanted
    # (position in the state after the record being looked at, index in the result)
    pending = [(message_count - wanted + index, index) for index in range(wanted)]
    erased: set[str] = set()  # ids erased by a record newer than the one being looked at
    size = message_count
    for record in reversed(records):
        if not pending:
            break
        [(_, event)] = decode_events(session_id, (record,))  # damage reads as CorruptStore
        if isinstance(event, MessagesAppended):
            before = size - len(event.messages)
            pending = _resolve(pending, before, event.messages, event.at, messages, times, erased)
            size = before
        elif isinstance(event, MessagesRewritten):
            added = len(event.messages)
            waiting = _resolve(
                [(p, i) for p, i in pending if p < event.start + added],
                event.start,
                event.messages,
                event.at,
                messages,
                times,
                erased,
            )
            moved = [(p - added + (event.end - event.start), i) for p, i in pending if p >= event.start + added]
            pending = waiting + moved
            size = event.count_before
        elif isinstance(event, MessagesErased):
            erased.update(event.message_ids)
        elif isinstance(event, SessionForked):
            _inherited(repository, session_id, event, pending, messages, times, erased)
            pending = []
        elif isinstance(event, SessionCreated) and pending:
            raise CorruptStore(f"session {shown(session_id)}: its log holds fewer messages than its listing row")
    if pending:
        if whole:
            raise CorruptStore(f"session {shown(session_id)}: its log holds fewer messages than its listing row")
        return None
    assert all(message is not None for message in messages) and all(time is not None for time in times)
    return messages, times  # type: ignore[return-value]


def _resolve(
    pending: list[tuple[int, int]],
    start: int,
    written: Sequence[Message],
    at: datetime,
    messages: list[Message | None],
    times: list[datetime | None],
    erased: set[str],
) -> list[tuple[int, int]]:
    """Fill in the pending positions ``written`` holds (it was written at
    ``start``); return those still pending (all before ``start``)."""
    still = []
    for position, index in pending:
        if position >= start:
            message = written[position - start]
            messages[index] = message.erasure() if message.id in erased else message
            times[index] = at
        else:
            still.append((position, index))
    return still


def _inherited(
    repository: Repository,
    session_id: str,
    event: SessionForked,
    pending: list[tuple[int, int]],
    messages: list[Message | None],
    times: list[datetime | None],
    erased: set[str],
) -> None:
    """Positions a fork got from its source (or its replacement message):
    from the source's checked log up to the fork point."""
    source = repository.source_state(session_id, event)
    inherited = [(p, i) for p, i in pending if event.replacement is None or p < (event.index or 0)]
    for position, index in pending:
        if event.replacement is not None and position == event.index:
            message = event.replacement
            messages[index] = message.erasure() if message.id in erased else message
            times[index] = event.at
    if not inherited:
        return
    records = repository.records(event.source, event.source_version)
    deepest = min(p for p, _ in inherited)
    found = _walk(repository, event.source, records, len(source.messages), len(source.messages) - deepest, whole=True)
    assert found is not None
    from_source, source_times = found
    offset = len(source.messages) - len(from_source)
    for position, index in inherited:
        message = from_source[position - offset]
        messages[index] = message.erasure() if message.id in erased and message.erased is None else message
        times[index] = source_times[position - offset]
