"""Erasure and deletion, mixed into ``Transcripts``: the two operations that
remove stored bytes instead of appending.

``erase`` replaces messages' content, wherever it is stored (the session's
log, the logs of the sessions it was forked from and of its forks, realtime
audit records), by a placeholder that keeps the content's digest, so every
revision and snapshot still verifies; each rewritten log gets an audited
``MessagesErased`` event and a new chain head. ``delete`` removes sessions.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from engine._base import _Base, _check_actor, _now
from engine.content import Message, ToolResult, shown
from engine.errors import InvalidArgument, SessionHasForks
from engine.events import (
    Event,
    MessagesAppended,
    MessagesErased,
    MessagesRewritten,
    RealtimeRecorded,
    SessionForked,
)
from engine.revisions import Reason
from engine.store import Record, Rewrite, chain_of, decode_events, encode_event, extended

_replace = msgspec.structs.replace
# Realtime audit fields that carry content, and what they hold once erased.
_REALTIME_CONTENT = {"text": "", "delta": "", "arguments": "{}", "output": "", "data": None, "ref": None}
_encode = msgspec.json.encode


class _Targets:
    """What an erasure removes: messages by id (or by provider item id), every
    message and realtime record about the same provider items (a realtime
    message is rebuilt under new ids as its transcript arrives), the realtime
    records of the tool calls those messages make or answer, and fork
    replacements that still hold any of their blocks (``ReplaceBlock``
    copies the blocks it does not replace)."""

    def __init__(self, message_ids: set[str]) -> None:
        self.ids = message_ids
        self.items: set[str] = set()
        self.calls: set[str] = set()
        self.blocks: set[bytes] = set()

    def hit(self, message: Message) -> bool:
        item = message.provider_item_id
        return message.id in self.ids or (item is not None and item in self.items)

    def hit_copy(self, message: Message) -> bool:
        return self.hit(message) or any(_encode(block) in self.blocks for block in message.blocks)

    def add(self, message: Message) -> None:
        if message.provider_item_id is not None:
            self.items.add(message.provider_item_id)
        self.calls.update(use.id for use in message.tool_uses)
        self.calls.update(block.tool_use_id for block in message.blocks if isinstance(block, ToolResult))
        self.blocks.update(_encode(block) for block in message.blocks)

    def hit_realtime(self, event: object) -> bool:
        return getattr(event, "item_id", None) in self.items or getattr(event, "call_id", None) in self.calls


class _Erasing(_Base):
    def erase(
        self,
        session_id: str,
        *message_ids: str,
        reason: str | Reason = "erasure",
        note: str | None = None,
        actor: str | None = None,
    ) -> list[str]:
        """Remove the content of the messages ``message_ids`` from every
        stored event that holds it: in this session's log, in the logs of the
        sessions it was forked from or that were forked from it, and in
        realtime audit records about the same provider items. Each message
        becomes a placeholder (``Message.erased`` holds the digest its
        content had), so revisions, snapshots and the chain still verify;
        each rewritten log gets an audited ``MessagesErased`` event (who,
        when, why, which ids and digests; never the content). On SQLite the
        freed bytes are overwritten and the WAL is checkpointed and truncated.

        Returns the ids of the sessions whose logs were rewritten (empty if
        every message was erased already). Raises ``InvalidArgument`` if a
        message id never occurs in the session's history; then nothing changes.
        """
        if not message_ids or not all(isinstance(mid, str) for mid in message_ids):
            raise InvalidArgument("erase() takes a session id and one or more message ids (str)")
        why = Reason.of(reason, note)
        _check_actor(actor)
        targets = _Targets(set(message_ids))
        with self._lock:
            head = self._head(session_id)
            family = self._family(head.lineage.root)
            logs = {sid: self._log(sid) for sid in family}
            decoded = {sid: decode_events(sid, logs[sid][1]) for sid in family}
            seen = self._expand(session_id, targets, decoded)
            missing = sorted(targets.ids - seen)
            if missing:
                raise InvalidArgument(
                    f"message ids {missing} never occur in the history of session {session_id!r} (as message "
                    "ids or provider item ids); nothing was erased"
                )
            changes = []
            for sid in family:
                row, records, _ = logs[sid]
                replaced: list[Record] = []
                erased: dict[str, str] = {}
                for version, event in decoded[sid]:
                    cleaned = _erased_event(event, targets, erased)
                    if cleaned is not event:
                        topic, data = encode_event(cleaned)
                        replaced.append(Record(version, topic, data))
                if not replaced:
                    continue
                state = self._head(sid)
                audit = MessagesErased(
                    at=_now(state),
                    actor=actor,
                    message_ids=tuple(erased),
                    digests=tuple(erased.values()),
                    versions=tuple(record.version for record in replaced),
                    reason=why.kind,
                    note=why.note,
                    previous_head=row.head,
                )
                appended = Record(row.version + 1, *encode_event(audit))
                by_version = {record.version: record for record in replaced}
                chain = extended(chain_of(sid), [by_version.get(r.version, r) for r in records] + [appended])
                new_row = row._replace(
                    version=appended.version, updated_at=audit.at.isoformat(), head=chain.digest().hex(), seal=""
                )
                changes.append(Rewrite(sid, replaced, [appended], new_row))
            try:
                # Also with no change: an earlier erasure may have left old
                # pages behind (a reader held them), which this removes.
                self._backend.rewrite(changes)
            finally:
                for sid in family:  # cached heads hold the old content
                    self._forget(sid)
        return [change.session_id for change in changes]

    def delete(self, session_id: str, *, with_forks: bool = False) -> list[str]:
        """Remove a session: its events, listing row and snapshots, from the
        store's files too (as :meth:`erase` does). Its forks read their shared
        history from its log, so a session with forks is refused with
        :class:`SessionHasForks` unless ``with_forks=True``, which deletes
        them (and their forks) too. Content a fork inherited from the
        sessions it was forked from stays in their logs: erase it there.
        No trace of a deleted session is kept. Returns the deleted ids."""
        if not isinstance(with_forks, bool):
            raise InvalidArgument(f"with_forks must be a bool, got {shown(with_forks)}")
        with self._lock:
            self._head(session_id)  # SessionNotFound, or damage, before anything is removed
            children: dict[str, list[str]] = {}
            for child, event in self._forks():
                children.setdefault(event.source, []).append(child)
            doomed, stack = [session_id], list(children.get(session_id, ()))
            while stack:
                child = stack.pop()
                if child not in doomed:
                    doomed.append(child)
                    stack += children.get(child, ())
            if len(doomed) > 1 and not with_forks:
                raise SessionHasForks(session_id, doomed[1:])
            try:
                self._backend.delete(doomed)
            finally:
                for sid in doomed:
                    self._forget(sid)
        return doomed

    def _forks(self) -> Iterable[tuple[str, SessionForked]]:
        """Every fork in the store with its first event (read from each
        session's first record; a damaged one fails its own reads)."""
        for row in self._backend.session_rows():
            first = self._backend.read(row.session_id, upto=1)
            if first and first[0].topic.startswith("SessionForked."):
                event = decode_events(row.session_id, first)[0][1]
                if isinstance(event, SessionForked):
                    yield row.session_id, event

    def _family(self, root: str) -> list[str]:
        """The root session and every fork of it (at any depth), root first."""
        forks = sorted(sid for sid, event in self._forks() if event.root == root)
        return [root, *forks]

    @staticmethod
    def _expand(session_id: str, targets: _Targets, decoded: dict[str, list[tuple[int, Event]]]) -> set[str]:
        """The target ids found in the family's logs (as message ids, or as
        provider item ids of realtime records); grows ``targets`` until every
        message about the same items or tool calls is in it."""
        seen: set[str] = set()
        events = [event for logged in decoded.values() for _, event in logged]
        for event in events:
            if isinstance(event, RealtimeRecorded):
                item = getattr(event.event, "item_id", None)
                if item in targets.ids:
                    seen.add(item)
                    targets.items.add(item)
        messages = list(_messages_of(events))
        seen.update(message.id for message in messages if message.id in targets.ids)
        grown = True
        while grown:  # a message hit by item or call may bring more items and calls
            before = (len(targets.items), len(targets.calls))
            for message in messages:
                if targets.hit(message):
                    targets.add(message)
            grown = (len(targets.items), len(targets.calls)) != before
        return seen


def _messages_of(events: Iterable[Event]) -> Iterable[Message]:
    for event in events:
        if isinstance(event, (MessagesAppended, MessagesRewritten)):
            yield from event.messages
        elif isinstance(event, SessionForked) and event.replacement is not None:
            yield event.replacement


def _erased_event(event: Event, targets: _Targets, erased: dict[str, str]) -> Event:
    """``event`` with the targets' content removed, or ``event`` itself if it
    holds none. Records each erased message's id and digest in ``erased``."""

    def cleaned(message: Message, copies: bool = False) -> Message:
        if message.erased is not None or not (targets.hit_copy(message) if copies else targets.hit(message)):
            return message
        placeholder = message.erasure()
        assert placeholder.erased is not None
        erased.setdefault(message.id or "", placeholder.erased)
        return placeholder

    if isinstance(event, (MessagesAppended, MessagesRewritten)):
        messages = tuple(cleaned(message) for message in event.messages)
        if any(new is not old for new, old in zip(messages, event.messages, strict=True)):
            return _replace(event, messages=messages)
    elif isinstance(event, SessionForked) and event.replacement is not None:
        replacement = cleaned(event.replacement, copies=True)
        if replacement is not event.replacement:
            return _replace(event, replacement=replacement)
    elif isinstance(event, RealtimeRecorded) and targets.hit_realtime(event.event):
        inner = event.event
        changes = {
            name: empty
            for name, empty in _REALTIME_CONTENT.items()
            if name in inner.__struct_fields__ and getattr(inner, name) not in (empty, None)
        }
        if changes:
            return _replace(event, event=_replace(inner, **changes))
    return event
