"""Rewrites, restores, forks, lineage, revisions and diffs: the branching
half of the facade."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from engine._base import _Base, _check_actor, _message_id, _new_session_id, _now, _replace, _stamped
from engine.content import Message, ReplaceBlock, shown
from engine.errors import (
    InvalidArgument,
    InvalidForkPoint,
    InvalidMessage,
    ReplacementMismatch,
)
from engine.events import (
    MessagesAppended,
    MessagesRewritten,
    SessionForked,
)
from engine.revisions import (
    EMPTY_REVISION,
    Commit,
    Reason,
    chain,
    format_revision,
    parse_revision,
    span_digest,
)
from engine.sequence import MessageSeq
from engine.transcript import Lineage, check_shape, forked


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed between two states of a session: ``removed`` (from the
    first) was replaced by ``added`` (in the second) at ``start``; everything
    before ``start`` and after the changed span is equal."""

    start: int
    removed: tuple[Message, ...]
    added: tuple[Message, ...]
    from_revision: str
    to_revision: str


class _Branching(_Base):
    """Rewrites and restores (audited commits), forks, lineage, the commit
    list and diffs; mixed into ``Transcripts``."""

    # -- revisions: rewrite, restore -----------------------------------------

    def rewrite(
        self,
        session_id: str,
        start: int,
        end: int,
        replacement: Iterable[Message] = (),
        reason: str | Reason = "edit",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Replace messages ``[start, end)`` with ``replacement`` as one audited
        commit, and return it.

        Only the replacement is stored. Raises, writing nothing:
        :class:`RevisionConflict` if ``expected_revision`` is not the head,
        :class:`InvalidRewriteRange`, :class:`NoOpRewrite` if the content would
        not change, :class:`InvalidTranscriptShape` if tool pairing would break.
        """
        why = Reason.of(reason, note)
        stamped = _stamped(replacement if not isinstance(replacement, Message) else (replacement,), "rewrite()")
        _check_actor(actor)
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            event = self._rewrite_event(state, start, end, stamped, why, actor)
            new_state = self._commit(session_id, state, [event])
            return _commit_of(event, new_state.version, new_state.messages.__len__())

    def restore(
        self,
        session_id: str,
        revision: str,
        reason: str | Reason = "restore",
        *,
        note: str | None = None,
        actor: str | None = None,
        expected_revision: str | None = None,
    ) -> Commit:
        """Make the transcript what it was at ``revision`` (any revision the
        session reached), as a new audited commit. Only the span that differs
        from the head is stored."""
        parse_revision(revision)
        if note is None and not isinstance(reason, Reason):
            note = f"back to {revision}"
        why = Reason.of(reason, note)
        _check_actor(actor)
        target = list(self.revision_messages(session_id, revision))
        expected = None if expected_revision is None else (parse_revision(expected_revision), expected_revision)
        with self._lock:
            state = self._head_for_write(session_id, expected)
            current = state.messages
            start, removed_end, added_end = _changed_span(current, target)
            event = self._rewrite_event(state, start, removed_end, target[start:added_end], why, actor)
            new_state = self._commit(session_id, state, [event])
            return _commit_of(event, new_state.version, len(new_state.messages))

    # -- forks ------------------------------------------------------------

    def fork(self, session_id: str, *, actor: str | None = None, child_id: str | None = None) -> str:
        """A new session holding this one's transcript as it is now. O(1): one
        event naming the source and its version; nothing is copied."""
        return self._fork(session_id, None, None, actor, child_id)

    def fork_at(self, session_id: str, index: int, *, actor: str | None = None, child_id: str | None = None) -> str:
        """A new session holding ``messages[:index]``. Raises
        :class:`InvalidForkPoint` if ``index`` is out of range or would split a
        tool-use message from its results."""
        return self._fork(session_id, _index(index), None, actor, child_id)

    def fork_replacing(
        self,
        session_id: str,
        index: int,
        replacement: Message | ReplaceBlock,
        *,
        actor: str | None = None,
        child_id: str | None = None,
    ) -> str:
        """Edit and retry: a new session holding ``messages[:index]`` followed by
        ``replacement``, a whole message of the same role or one
        :class:`ReplaceBlock` inside message ``index``."""
        if not isinstance(replacement, (Message, ReplaceBlock)):
            raise InvalidArgument(f"replacement must be a Message or a ReplaceBlock, got {type(replacement).__name__}")
        return self._fork(session_id, _index(index), replacement, actor, child_id)

    def lineage(self, session_id: str) -> Lineage:
        """Where the session comes from: source, source version, fork index,
        root and depth (a session that is not a fork is its own root)."""
        return self.get(session_id).lineage

    def _fork(
        self,
        source_id: str,
        index: int | None,
        replacement: Message | ReplaceBlock | None,
        actor: str | None,
        child_id: str | None,
    ) -> str:
        _check_actor(actor)
        child_id = _new_session_id(child_id)
        with self._lock:
            source = self._head(source_id)
            messages = source.messages
            count = len(messages)
            kept = count if index is None else index
            new_message = None
            if replacement is None:
                if not 0 <= kept <= count:
                    raise InvalidForkPoint(f"fork_at index {kept} is outside 0..{count} of session {source_id!r}")
                if 0 < kept < count and messages[kept - 1].tool_uses:
                    raise InvalidForkPoint(
                        f"fork_at index {kept} would split message {kept - 1}'s tool uses from their results; "
                        f"fork at {kept - 1} or {kept + 1} instead"
                    )
            else:
                if not 0 <= kept < count:
                    raise InvalidForkPoint(
                        f"fork_replacing index {kept} is outside 0..{count - 1} of session {source_id!r}"
                    )
                new_message = _replacing(messages[kept], kept, replacement)
                check_shape(messages.prefix(kept).extended((new_message,)), kept, kept + 1)
            raw = source._revision_bytes if kept == count else messages.revision_at(kept)
            if new_message is not None:
                raw = chain(raw, (new_message,))
            event = SessionForked(
                at=_now(),
                actor=actor,
                source=source_id,
                source_version=source.version,
                index=index,
                replacement=new_message,
                revision=format_revision(raw),
                root=source.lineage.root,
                depth=source.lineage.depth + 1,
            )
            self._commit(child_id, None, [event], result=forked(child_id, event, source, verify=False))
        return child_id

    def revisions(self, session_id: str) -> list[Commit]:
        """Every content commit of the session, oldest first: appends and
        rewrites (restores included), each from its parent revision to its
        revision. A fork's own commits start after its fork point."""
        records = self._records(session_id)
        commits: list[Commit] = []
        revision, count, generation = EMPTY_REVISION, 0, 0
        for version, event in self._decoded(session_id, records):
            if isinstance(event, SessionForked):
                revision = event.revision
                count = len(self._source_state(session_id, event, 0).messages)
            elif isinstance(event, MessagesAppended):
                generation += 1
                added = len(event.messages)
                commits.append(
                    Commit(
                        version=version,
                        generation=generation,
                        parent_revision=revision,
                        revision=event.revision,
                        start=count,
                        end=count,
                        removed_digest=EMPTY_REVISION,
                        replacement_digest=span_digest(event.messages),
                        count_before=count,
                        count_after=count + added,
                        reason=Reason(kind="append"),
                        actor=event.actor,
                        at=event.at,
                    )
                )
                revision, count = event.revision, count + added
            elif isinstance(event, MessagesRewritten):
                generation = event.generation
                count = event.count_before - (event.end - event.start) + len(event.messages)
                commits.append(_commit_of(event, version, count))
                revision = event.revision
        return commits

    def revision_messages(self, session_id: str, revision: str) -> MessageSeq:
        """The messages of any revision the session reached (after any of its
        events), rebuilt from the log: no copy is stored per revision."""
        parse_revision(revision)
        with self._lock:
            head = self._head(session_id)
        if revision == head.revision:
            return head.messages
        return self._state_at(session_id, self._last_version_with_revision(session_id, revision, head.version)).messages

    def diff(self, session_id: str, before: int | str, after: int | str) -> Diff:
        """The changed span between two versions or revisions of a session."""
        for point in (before, after):
            if isinstance(point, bool) or not isinstance(point, (int, str)):
                raise InvalidArgument(f"diff() takes event versions (int) or revision ids (str), got {shown(point)}")
        old, new = self.get(session_id, at=before), self.get(session_id, at=after)
        start, removed_end, added_end = _changed_span(old.messages, new.messages)
        return Diff(
            start=start,
            removed=old.messages[start:removed_end],
            added=new.messages[start:added_end],
            from_revision=old.revision,
            to_revision=new.revision,
        )


def _index(index: object) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise InvalidForkPoint(f"a message index must be an int, got {shown(index)}")
    return index


def _replacing(original: Message, index: int, replacement: Message | ReplaceBlock) -> Message:
    """The message that replaces ``original`` in ``fork_replacing``, with a new id."""
    if isinstance(replacement, Message):
        if replacement.role != original.role:
            raise ReplacementMismatch(
                f"message {index} is a {original.role} message; it cannot be replaced by a {replacement.role} message"
            )
        return _replace(replacement, id=_message_id())
    if not isinstance(replacement.index, int) or not 0 <= replacement.index < len(original.blocks):
        raise ReplacementMismatch(
            f"message {index} has {len(original.blocks)} blocks; "
            f"there is no block {shown(replacement.index)} to replace"
        )
    blocks = list(original.blocks)
    blocks[replacement.index] = replacement.block
    try:
        return Message(
            role=original.role, blocks=tuple(blocks), id=_message_id(), provider_item_id=original.provider_item_id
        )
    except InvalidMessage as exc:
        raise ReplacementMismatch(f"block {replacement.index} of message {index}: {exc}") from None


def _changed_span(old: Sequence[Message], new: Sequence[Message]) -> tuple[int, int, int]:
    """``(start, old_end, new_end)``: ``old[start:old_end]`` became ``new[start:new_end]``."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and (old[start] is new[start] or old[start] == new[start]):
        start += 1
    suffix = 0
    while suffix < limit - start and (old[-1 - suffix] is new[-1 - suffix] or old[-1 - suffix] == new[-1 - suffix]):
        suffix += 1
    return start, len(old) - suffix, len(new) - suffix


def _commit_of(event: MessagesRewritten, version: int, count_after: int) -> Commit:
    return Commit(
        version=version,
        generation=event.generation,
        parent_revision=event.parent_revision,
        revision=event.revision,
        start=event.start,
        end=event.end,
        removed_digest=event.removed_digest,
        replacement_digest=event.replacement_digest,
        count_before=event.count_before,
        count_after=count_after,
        reason=Reason(kind=event.reason, note=event.note),
        actor=event.actor,
        at=event.at,
    )
