"""meerkat-core's ``Session`` (v0.6.34) over ``Transcripts``; pure reads are ``snapshot`` attributes or store reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import Any, TypeVar, cast

import msgspec

from engine import Commit, IngestOutcome, InvalidArgument, Reason, RevisionNotFound, Session, Transcripts
from engine.state.content import Block, Image, Message, ReplaceBlock, Text, ToolResult, Usage

Json = dict[str, Any]
EARLY_STOPS = frozenset({"max_tokens", "content_filter", "cancelled"})  # stop reasons -> Message.incomplete
_B = TypeVar("_B", bound=Block)


# meerkat's typed control state stays under its reserved metadata keys, so a migrated row maps one to one.
def _kept(key: str) -> tuple[Callable[[MeerkatSession, Json | None], None], Callable[[MeerkatSession], Json | None]]:
    def put(self: MeerkatSession, state: Json | None) -> None:  # None clears
        self.set_metadata(key, dict(state)) if state is not None else self.remove_metadata(key)

    def read(self: MeerkatSession) -> Json | None:
        if not isinstance(value := self.snapshot.metadata.get(key), dict | None):  # malformed raises
            raise InvalidArgument(f"metadata[{key!r}] is not a JSON object")
        return value

    return put, read


def _externalized(block: _B, put: Callable[[bytes, str], str]) -> _B:
    if isinstance(block, Image) and block.data is not None:
        return cast(_B, Image(media_type=block.media_type, ref=put(block.data, block.media_type)))
    if isinstance(block, ToolResult):
        return cast(_B, msgspec.structs.replace(block, content=tuple(_externalized(b, put) for b in block.content)))
    return block


class MeerkatSession:
    """A handle on one session (load one with the constructor); every write is by ``actor``."""

    def __init__(self, store: Transcripts, session_id: str, *, actor: str | None = None) -> None:
        self.store, self.id, self.actor = store, session_id, actor

    @classmethod
    def new(cls, store: Transcripts, session_id: str | None = None, *, actor: str | None = None) -> MeerkatSession:
        """``new``, ``Default`` and ``with_id`` (``SessionExists`` if ``session_id`` is taken)."""
        return cls(store, store.create(actor=actor, session_id=session_id), actor=actor)

    with_id = new

    @property
    def snapshot(self) -> Session:
        return self.store.get(self.id)

    def push(self, message: Message) -> None:
        self.push_batch([message])

    def push_batch(self, messages: Sequence[Message]) -> None:  # one event, one transaction
        self.store.append(self.id, *messages, actor=self.actor)

    def append_external_user_content(self, content: str | Sequence[str | Block]) -> None:
        self.push(Message.user(*([content] if isinstance(content, str) else content)))

    def append_external_assistant_blocks(self, blocks: Sequence[str | Block], stop_reason: str, usage: Usage) -> None:
        message = msgspec.structs.replace(Message.assistant(*blocks), incomplete=stop_reason in EARLY_STOPS)
        self.store.append(self.id, message, usage=usage, actor=self.actor)

    def record_usage(self, turn_usage: Usage) -> None:
        self.store.record_usage(self.id, turn_usage, actor=self.actor)

    def append_realtime_transcript_event(self, event: object, *, provider: str | None = None) -> IngestOutcome:
        return self.store.ingest(self.id, event, provider=provider, actor=self.actor)

    def set_system_prompt(self, prompt: str) -> None:
        self._system([Text(text=prompt)], keep=False)

    def append_system_context_blocks(self, appends: Iterable[str]) -> None:
        self._system([Text(text=text) for text in appends], keep=True)

    def _system(self, blocks: list[Text], *, keep: bool) -> None:  # replace, extend or insert: a rewrite
        session = self.snapshot
        had = bool(session.messages) and session.messages[0].role == "system"
        system = Message(role="system", blocks=(*(session.messages[0].blocks if had and keep else ()), *blocks))
        if blocks and not (had and session.messages[0].digest == system.digest):  # unchanged: nothing to record
            self.commit_transcript_rewrite((0, int(had)), [system], "system_prompt", None, session.revision)

    def externalize_media(self, blob_store: Callable[[bytes, str], str], start: int = 0) -> None:
        """Inline image bytes become ``Image.ref = blob_store(data, media_type)``: one rewrite."""
        if start < 0:
            raise InvalidArgument(f"start is a message index (>= 0), got {start}")
        session = self.snapshot
        old = list(session.messages[start:])
        new = [msgspec.structs.replace(m, blocks=tuple(_externalized(b, blob_store) for b in m.blocks)) for m in old]
        if changed := [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]:
            span, fence = (start + changed[0], start + changed[-1] + 1), session.revision
            self.commit_transcript_rewrite(span, new[changed[0] : changed[-1] + 1], "externalize_media", None, fence)

    def set_metadata(self, key: str, value: Any) -> None:
        self.store.update_metadata(self.id, {key: value}, actor=self.actor)

    def remove_metadata(self, key: str) -> None:
        self.store.update_metadata(self.id, remove=[key], actor=self.actor)

    def backfill_metadata_if_absent(self, key: str, value: Any) -> bool:  # an audited event all the same
        if absent := key not in self.snapshot.metadata:
            self.set_metadata(key, value)
        return absent

    set_session_metadata, session_metadata = _kept("session_metadata")
    set_system_context_state, system_context_state = _kept("session_system_context_state")
    set_deferred_turn_state, deferred_turn_state = _kept("session_deferred_turn_state")
    set_build_state, build_state = _kept("session_build_state")
    set_tool_visibility_state, tool_visibility_state = _kept("session_tool_visibility_state_v1")
    try_tool_visibility_state = tool_visibility_state
    set_mob_tool_authority_context, mob_tool_authority_context = _kept("session_mob_tool_authority_context")

    # Both give None for a revision the session never reached, as meerkat; a malformed id raises.
    def transcript_revision_messages(self, revision: str) -> list[Message] | None:
        with suppress(RevisionNotFound):
            return list(self.store.revision_messages(self.id, revision))
        return None

    def transcript_revision_body(self, revision: str) -> Session | None:  # the session as it last was then
        with suppress(RevisionNotFound):
            return self.store.get(self.id, at=revision)
        return None

    def commit_transcript_rewrite(
        self, selection: tuple[int, int], replacement: Sequence[Message], reason: Reason | str,
        actor: str | None = None, expected_parent_revision: str | None = None,
    ) -> Commit:  # fmt: skip
        """``[start, end)`` replaced; reason ``compaction`` is ``compact`` (figures in ``Session.compactions``)."""
        why, who, fence = Reason.of(reason), actor or self.actor, expected_parent_revision
        if why.kind != "compaction":
            return self.store.rewrite(self.id, *selection, replacement, why, actor=who, expected_revision=fence)
        return self.store.compact(self.id, *selection, replacement, note=why.note, actor=who, expected_revision=fence)

    def fork(self) -> MeerkatSession:
        return self._child(self.store.fork(self.id, actor=self.actor))

    def fork_at(self, index: int) -> MeerkatSession:
        return self._child(self.store.fork_at(self.id, index, actor=self.actor))

    def fork_replacing(self, message_index: int, replacement: Message | ReplaceBlock) -> MeerkatSession:
        return self._child(self.store.fork_replacing(self.id, message_index, replacement, actor=self.actor))

    def _child(self, session_id: str) -> MeerkatSession:
        return MeerkatSession(self.store, session_id, actor=self.actor)
