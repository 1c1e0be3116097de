"""codetether-agent's ``session::Session`` over :class:`engine.Transcripts`: each change is an audited, time-travelable
event when it is made, so nothing is left to save. ``metadata.model`` is the header's ``model``, the provenance flat
``"provenance.<field>"`` keys, other metadata fields keys of the same name; model calls and live objects are runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from engine import InvalidArgument, Message, Session, SessionNotFound, ToolCall, Transcripts, Usage

T = TypeVar("T")
Where = str | os.PathLike[str] | None  # a directory (text or path), or None for any
DEFAULT_AGENT = "build"
PROVENANCE = "provenance."  # prefix of the flat provenance keys
_FLAGS = ("auto_apply_edits", "allow_network", "slash_autocomplete", "use_worktree", "shared")
_KEYS = ("directory", "knowledge_snapshot", "share_url", "rlm", *_FLAGS)  # metadata keys of the same name


class SessionMetadata(msgspec.Struct, frozen=True):
    directory: str | None = None
    model: str | None = None
    knowledge_snapshot: str | None = None
    provenance: dict[str, Any] | None = None
    auto_apply_edits: bool = False
    allow_network: bool = False
    slash_autocomplete: bool = True
    use_worktree: bool = True
    shared: bool = False
    share_url: str | None = None
    rlm: dict[str, Any] = {}


class ClaimProvenance(msgspec.Struct, frozen=True):
    worker_id: str
    task_id: str
    run_id: str | None = None
    attempt_id: str | None = None
    tenant_id: str | None = None
    agent_identity_id: str | None = None


class TailLoad(msgspec.Struct, frozen=True):  # the newest `window` messages and tool uses, and how many were left out
    session: CodetetherSession
    messages: tuple[Message, ...]
    tool_uses: list[ToolCall]
    dropped: int


class _Head(Generic[T]):  # a read-only field of the session's stored head: a typed property
    def __init__(self, read: Callable[[Session], T]) -> None:
        self.read = read

    def __get__(self, handle: CodetetherSession, owner: type[CodetetherSession]) -> T:
        return self.read(handle.store.get(handle.id))


class CodetetherSession:
    """A handle on one session of ``store``; every field reads the stored head."""

    title = _Head(lambda s: s.title)
    created_at = _Head(lambda s: s.created_at)
    updated_at = _Head(lambda s: s.updated_at)  # moved by every recorded event
    agent = _Head(lambda s: s.header.agent or DEFAULT_AGENT)
    messages = _Head(lambda s: tuple(s.messages))
    usage = _Head(lambda s: s.usage)
    tool_uses = _Head(lambda s: s.tool_calls)  # the tool-call audit, derived from the messages

    def __init__(self, store: Transcripts, session_id: str) -> None:
        self.store, self.id = store, session_id

    @classmethod
    def new(cls, store: Transcripts, directory: Where = None) -> CodetetherSession:
        """A new session rooted at ``directory`` (the working directory by default), in one event."""
        where = os.fspath(directory) if directory is not None else os.getcwd()
        return cls(store, store.create(metadata={"directory": where, PROVENANCE + "origin": "local_cli"}))

    @classmethod
    def load(cls, store: Transcripts, session_id: str) -> CodetetherSession:
        return cls(store, store.get(session_id).id)  # SessionNotFound if there is none

    @classmethod
    def last_for_directory(cls, store: Transcripts, workspace: Where = None) -> CodetetherSession:
        """The most recently updated session (in ``workspace``, if given)."""
        infos = store.sessions(metadata=None if workspace is None else {"directory": os.fspath(workspace)})
        if not infos:
            raise SessionNotFound(f"<the last session in {os.fspath(workspace or '*')}>")
        return cls(store, max(reversed(infos), key=lambda info: info.updated_at).id)

    @classmethod
    def last_for_directory_tail(cls, store: Transcripts, workspace: Where, window: int) -> TailLoad:
        session = cls.last_for_directory(store, workspace)
        tail = store.get(session.id, last=window)  # InvalidArgument unless window >= 0
        calls = session.tool_uses
        kept = calls[max(0, len(calls) - window) :]
        return TailLoad(session, tail.messages, kept, tail.start + len(calls) - len(kept))

    last = last_for_directory  # codetether's last(): the most recently updated session of the store

    @property
    def metadata(self) -> SessionMetadata:
        head = self.store.get(self.id)
        stored = {k: v for k, v in head.metadata.items() if k in _KEYS}
        flat = {k.removeprefix(PROVENANCE): v for k, v in head.metadata.items() if k.startswith(PROVENANCE)}
        # The provenance's session and agent are the session's own: derived, never stored twice.
        provenance = {"session_id": self.id, "agent_name": head.header.agent or DEFAULT_AGENT, **flat} if flat else None
        return SessionMetadata(model=head.header.model, provenance=provenance, **stored)

    def update_metadata(self, **fields: Any) -> None:
        """Set durable metadata fields (codetether assigns them, then saves)."""
        if unknown := sorted(set(fields) - {*_KEYS, "model"}):
            raise InvalidArgument(f"codetether's session metadata has no field {unknown}")
        values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in fields.items() if k != "model"}
        if values:  # first: the metadata checks are the ones a value is likelier to fail
            self.store.update_metadata(self.id, values)
        if "model" in fields:  # a header change: a second event (no command sets both at once)
            self.store.set_header(self.id, model=fields["model"])

    def apply_config(self, config: Mapping[str, Any]) -> None:
        """Copy the config's ``rlm`` settings into the metadata; the same settings again write nothing."""
        rlm = dict(config.get("rlm", {}))
        if self.store.get(self.id).metadata.get("rlm") != rlm:
            self.store.update_metadata(self.id, {"rlm": rlm})

    def set_agent_name(self, agent_name: str) -> None:
        self.store.set_header(self.id, agent=agent_name)  # the provenance's agent_name follows

    def attach_worker_task_provenance(self, worker_id: str, task_id: str) -> None:
        self.attach_claim_provenance(ClaimProvenance(worker_id, task_id))

    def attach_claim_provenance(self, claim: ClaimProvenance) -> None:
        # As codetether: only to a provenance record, and the claim's optional ids replace old ones only if it has them.
        if self.metadata.provenance is not None:
            values = {"origin": "worker", **msgspec.structs.asdict(claim)}
            self.store.update_metadata(self.id, {PROVENANCE + k: v for k, v in values.items() if v is not None})

    def add_message(self, message: Message, *, usage: Usage | None = None) -> None:
        self.store.append(self.id, message, usage=usage)

    def save(self) -> None:
        """Nothing to do: every change was committed when it was made."""

    def on_context_change(self, regenerate_title: bool) -> None:
        """Only the title is left to redo: the change itself already moved ``updated_at``."""
        if regenerate_title:
            self.store.generate_title(self.id, width=47, force=True)
