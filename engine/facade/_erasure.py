"""Erasure and deletion: the two operations that remove stored bytes
instead of appending. What an erasure reaches and the events it rewrites
are decided in ``engine.decisions.erasure``; here the logs are read, the
rewritten events re-linked into each log's chain, and the store rewritten
in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.decisions import Targets, check_actor, clock, erase_inherited, erase_log, expand, view_of
from engine.errors import (
    ConcurrentWriteError,
    InvalidArgument,
    SessionHasChildren,
    SessionHasForks,
    SessionNotFound,
)
from engine.facade._reads import every_fork, sessions
from engine.facade._repository import Repository
from engine.state.content import got, shown
from engine.state.events import SessionForked
from engine.state.revisions import Reason
from engine.store import (
    ListingFilter,
    Purge,
    Record,
    Rewrite,
    StoredSnapshot,
    chain_of,
    checkpoints_of,
    decode_events,
    decode_snapshot,
    encode_event,
    extended,
)

#: Attempts of an erasure whose family other writers change meanwhile.
_ATTEMPTS = 5


def erase(
    repository: Repository,
    session_id: str,
    message_ids: Sequence[object],
    reason: object,
    note: object,
    actor: str | None,
    *,
    records_only: bool = False,
) -> list[str]:
    if not message_ids:
        raise InvalidArgument("erase() takes a session id and one or more message ids")
    # A list, not next(..., None): None itself is a wrong id.
    wrong = [mid for mid in message_ids if type(mid) is not str][:1]
    if wrong:
        raise InvalidArgument(
            f"erase() takes a session id and one or more message ids, each a str (as arguments: "
            f"erase(sid, *ids)), got {got(wrong[0])}"
        )
    why = Reason.of(reason, note)
    check_actor(actor)
    targets = Targets({mid for mid in message_ids if isinstance(mid, str)}, records_only=records_only)
    attempt = 1
    while True:
        try:
            # The last attempt holds every other writer back while it reads
            # and rewrites: on a session written to many times a second, an
            # erasure that raced them could lose every time.
            erased, purge = _erase_once(repository, session_id, targets, why, actor, alone=attempt == _ATTEMPTS)
        except (ConcurrentWriteError, SessionNotFound) as exc:
            # Another writer changed the family between the reads and the
            # write (nothing was written), or another process deleted a fork
            # of it since it was listed: the intent does not depend on the
            # state, so read the family as it is now and try again.
            if isinstance(exc, SessionNotFound) and exc.session_id == session_id:
                raise
            if attempt == _ATTEMPTS:
                if isinstance(exc, SessionNotFound):
                    # About a fork deleted meanwhile, not this session: a
                    # caller reading "not found" as "already gone" would
                    # skip an erasure that never happened.
                    raise ConcurrentWriteError(session_id, repository.head(session_id).version + 1) from None
                raise
            attempt += 1
        else:
            # Outside the store's lock: waiting for readers of the old bytes
            # holds back none of this store's other calls.
            purge()
            return erased


def _erase_once(
    repository: Repository, session_id: str, targets: Targets, why: Reason, actor: str | None, *, alone: bool
) -> tuple[list[str], Purge]:
    with repository.locks.whole():
        if not alone:
            return _erased(repository, session_id, targets, why, actor)
        # The family as read now: a fork made before the hold is taken is
        # read inside it (no write of the store runs there), and a fork made
        # after waits for the rewrite.
        family = _family(repository, repository.head(session_id).lineage.root)
        with repository.backend.rewriting_alone(family):
            return _erased(repository, session_id, targets, why, actor)


def _erased(
    repository: Repository, session_id: str, targets: Targets, why: Reason, actor: str | None
) -> tuple[list[str], Purge]:
    """One attempt of an erasure (under the store's whole lock): the family
    read, the rewrite decided and made. ``ConcurrentWriteError`` if another
    writer changed the family between the reads and the write."""
    head = repository.head(session_id)
    family = _family(repository, head.lineage.root)
    logs = {sid: repository.log(sid) for sid in family}
    decoded = {sid: decode_events(sid, logs[sid][1]) for sid in family}
    # What the session shows, ids are looked up there: its own log, and
    # what it inherited (its state at version 1).
    view = view_of(session_id, repository.load(session_id, upto=1))
    seen = expand(targets, decoded, view)
    missing = sorted(targets.ids - seen)
    if missing:
        raise InvalidArgument(
            f"message ids {missing} never occur in the history of session {session_id!r} (as message "
            "ids or provider item ids); nothing was erased"
        )
    now = clock()
    found = {
        sid: erase_log(repository.head(sid), decoded[sid], logs[sid][0].head, targets, why, actor, now, view)
        for sid in family
    }
    digests = {
        pair
        for log in found.values()
        if log is not None
        for pair in zip(log.audit.message_ids, log.audit.digests, strict=True)
    }
    emptied = dict.fromkeys(item for log in found.values() if log is not None for item in log.audit.items)
    changes = []
    for sid in family:
        row, records, _ = logs[sid]
        erased = found[sid] or erase_inherited(repository.head(sid), digests, row.head, why, actor, now, emptied)
        if erased is None:
            continue
        replaced = [
            Record(version, *encode_event(event, session_id=sid, version=version)) for version, event in erased.replaced
        ]
        appended = Record(row.version + 1, *encode_event(erased.audit))
        limit = repository.max_event_bytes
        if limit is not None and len(appended.state) > limit:  # a long note or actor: before anything is written
            raise repository.too_large(sid, erased.audit, len(appended.state))
        by_version = {record.version: record for record in replaced}
        rewritten = [by_version.get(r.version, r) for r in records]
        chain = extended(chain_of(sid), [*rewritten, appended])
        new_row = row._replace(
            version=appended.version, updated_at=erased.audit.at.isoformat(), head=chain.digest().hex(), seal=""
        )
        snapshots = _relinked_snapshots(repository, sid, records, rewritten)
        changes.append(Rewrite(sid, replaced, [appended], new_row, previous_head=row.head, snapshots=snapshots))
    try:
        # Also with no change: an earlier erasure may have left old pages
        # behind (a reader held them), which this removes.
        purge = repository.backend.rewrite(changes, family=family)  # refused if a fork was made since
    finally:
        for sid in family:  # cached heads hold the old content
            repository.forget(sid)
    return [change.session_id for change in changes], purge


def _relinked_snapshots(
    repository: Repository, session_id: str, records: Sequence[Record], rewritten: Sequence[Record]
) -> list[StoredSnapshot]:
    """The session's snapshots whose chain checkpoint the rewrite of
    ``records`` into ``rewritten`` moves, with the new link. Read after the
    log: snapshots are written with their events, and the rewrite happens
    only while the listing row still holds the head the log was read with.
    A checkpoint the old log does not give is damage, left for ``verify``
    to report rather than mended here."""
    kept = [
        (stored.version, decode_snapshot(session_id, stored.state))
        for stored in repository.backend.snapshots(session_id)
    ]
    reach = max((snapshot.chain_start or 0 for _, snapshot in kept), default=0)  # links past it are not needed
    if not reach:
        return []
    before, after = checkpoints_of(session_id, records[:reach]), checkpoints_of(session_id, rewritten[:reach])
    moved = []
    for version, snapshot in kept:
        start = snapshot.chain_start
        if start is not None and start in before and before[start] == snapshot.chain_link != after[start]:
            moved.append(StoredSnapshot(version, snapshot.relinked(after[start])))
    return moved


def delete(repository: Repository, session_id: str, with_forks: object, with_children: object = False) -> list[str]:
    for name, flag in (("with_forks", with_forks), ("with_children", with_children)):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name} must be a bool, got {shown(flag)}")
    assert isinstance(with_forks, bool) and isinstance(with_children, bool)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            doomed, purge = _delete_once(repository, session_id, with_forks, with_children)
            break
        except (SessionHasForks, SessionHasChildren) as exc:
            # The store's own check, in the deleting transaction, found a
            # fork (or child) made since they were listed: with with_forks
            # (with_children) it goes too, so list them again (found by an
            # adversarial run).
            if not (with_forks if isinstance(exc, SessionHasForks) else with_children):
                raise
            if attempt == _ATTEMPTS:
                raise ConcurrentWriteError(session_id, repository.head(session_id).version + 1) from None
    purge()  # outside the store's lock, as for an erasure
    return doomed


def _delete_once(
    repository: Repository, session_id: str, with_forks: bool, with_children: bool
) -> tuple[list[str], Purge]:
    with repository.locks.whole():
        repository.head(session_id)  # SessionNotFound, or damage, before anything is removed
        forks: dict[str, list[str]] = {}
        for fork, event in _forks(repository):
            forks.setdefault(event.source, []).append(fork)
        # Forks read their history from the session; children name it as
        # their parent: neither goes unless the caller says so.
        doomed, stack = [session_id], [session_id]
        reached: dict[str, list[str]] = {"forks": [], "children": []}
        while stack:
            current = stack.pop()
            children = [info.id for info in sessions(repository, wanted=ListingFilter(parent=current))]
            for kind, found in (("forks", forks.get(current, [])), ("children", children)):
                for other in found:
                    if other not in doomed:
                        doomed.append(other)
                        stack.append(other)
                        reached[kind].append(other)
        if reached["children"] and not with_children:
            raise SessionHasChildren(session_id, reached["children"])
        if reached["forks"] and not with_forks:
            raise SessionHasForks(session_id, reached["forks"])
        try:
            return doomed, repository.backend.delete(doomed)
        finally:
            for sid in doomed:
                repository.forget(sid)


def _forks(repository: Repository) -> Iterable[tuple[str, SessionForked]]:
    # Every fork with its first event; a name of its own so a test can give
    # the deletion a stale view of the forks.
    return every_fork(repository)


def _family(repository: Repository, root: str) -> list[str]:
    """The root session and every fork of it (at any depth), root first."""
    forks = sorted(sid for sid, event in _forks(repository) if event.root == root)
    return [root, *forks]
