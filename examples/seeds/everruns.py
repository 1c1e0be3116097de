"""everruns-core's ``Session`` (a config-and-status row) over :class:`engine.Transcripts`; fields keep their names."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from engine import InvalidArgument, Session, Transcripts, Usage
from engine.state.header import FINAL_STATUSES

PREFIX = "everruns."  # settings of record with no engine column (CONFIG_FIELDS) are metadata under PREFIX + name
CONFIG_FIELDS = (
    *("organization_id", "harness_id", "agent_version_id", "agent_identity_id", "capabilities", "tools"),
    *("mcp_servers", "initial_files", "hints", "network_access", "max_iterations", "blueprint_id", "blueprint_config"),
)
HEADER_FIELDS = {"agent_id": "agent", "owner_principal_id": "owner", "model_id": "model", "is_pinned": "pinned"}
HEADER_FIELDS |= {name: name for name in ("system_prompt", "locale", "tags", "status")}  # everruns name: header name
VECS = ("capabilities", "tools", "initial_files")  # a Vec reads [] when unset, an Option None
REQUIRED = ("organization_id", "harness_id", "owner_principal_id")  # not Option in everruns
PREVIEW_WIDTH = 200  # everruns stores previews already cut; the width is this example's choice


def _split(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Field values as (header changes, metadata items); an unknown name is refused before anything is written."""
    if unknown := fields.keys() - HEADER_FIELDS.keys() - set(CONFIG_FIELDS):
        raise InvalidArgument(f"everruns' Session has no settable field(s) {sorted(unknown)}")
    header = {HEADER_FIELDS[name]: value for name, value in fields.items() if name in HEADER_FIELDS}
    return header, {PREFIX + name: value for name, value in fields.items() if name in CONFIG_FIELDS}


def _read(get: Any, doc: str) -> Any:
    return property(lambda self: get(self.session), doc=doc)


def _field(name: str) -> Any:  # a property reading the field from its home, the header or the metadata
    if name in HEADER_FIELDS:
        return _read(lambda s: getattr(s.header, HEADER_FIELDS[name]), f"header.{HEADER_FIELDS[name]}")
    return _read(lambda s: s.metadata.get(PREFIX + name, [] if name in VECS else None), f'metadata["{PREFIX}{name}"]')


class AgentConfigOverlay(NamedTuple):  # the session layer of an agent's config
    system_prompt: str | None
    capabilities: list[Any]
    initial_files: list[Any]
    network_access: Any
    default_model_id: str | None
    tools: list[Any]
    max_iterations: int | None


class EverrunsSession:
    """A store and a session id; with ``at`` (version, revision or time) the session as it was then, read-only."""

    def __init__(self, store: Transcripts, session_id: str, at: int | str | datetime | None = None) -> None:
        self.store, self.id, self.at = store, session_id, at

    @classmethod
    def create(cls, store: Transcripts, *, actor: str | None = None, **fields: Any) -> EverrunsSession:
        """A new session from field values (``id`` is ``session_{32 hex}`` unless given), header in one transaction."""
        if missing := [name for name in REQUIRED if fields.get(name) is None]:
            raise InvalidArgument(f"an everruns session needs {missing}")
        sid, title = fields.pop("id", None) or f"session_{uuid.uuid4().hex}", fields.pop("title", None)
        header, config = _split({name: value for name, value in fields.items() if value is not None})
        return cls(store, store.create(title, config, actor=actor, session_id=sid, **header))

    @property
    def session(self) -> Session:  # the engine's session the fields are read from
        return self.store.get(self.id, at=self.at)

    def _head(self) -> str:
        if self.at is not None:
            raise InvalidArgument(f"session {self.id!r} read at {self.at!r} is the past: change the head")
        return self.id

    def update(self, *, actor: str | None = None, **fields: Any) -> None:
        """One audited event per part, not one transaction: header, config (``None`` removes a key), ``title``."""
        header, config = _split({name: value for name, value in fields.items() if name != "title"})
        if header:
            self.store.set_header(self._head(), actor=actor, **header)
        if config:
            kept = {key: value for key, value in config.items() if value is not None}
            self.store.update_metadata(self._head(), kept, remove=config.keys() - kept.keys(), actor=actor)
        if "title" in fields:
            self.store.set_title(self._head(), fields["title"], actor=actor)

    def set_status(self, status: str, *, outcome: str | None = None, actor: str | None = None) -> None:
        """Move along the lifecycle (``InvalidStatusTransition`` if it may not)."""
        self.store.set_status(self._head(), status, outcome=outcome, actor=actor)

    def spawn(self, task: str, name: str, *, actor: str | None = None, **fields: Any) -> EverrunsSession:
        """A subagent in the parent's organization and harness, owned by its owner; names are unique per parent."""
        if name in (child.name for child in self.session.children):
            raise InvalidArgument(f"session {self.id!r} already has a subagent named {name!r}")
        header, config = _split({field: getattr(self, field) for field in REQUIRED} | fields)
        child = self.store.spawn(self._head(), task=task, name=name, metadata=config, actor=actor, **header)
        return EverrunsSession(self.store, child)

    def subagents(self) -> list[EverrunsSession]:  # oldest first, as they are now
        return [EverrunsSession(self.store, child.id) for child in self.store.children(self.id)]

    organization_id, harness_id, tools = _field("organization_id"), _field("harness_id"), _field("tools")
    agent_version_id, agent_identity_id = _field("agent_version_id"), _field("agent_identity_id")
    capabilities, initial_files, mcp_servers = _field("capabilities"), _field("initial_files"), _field("mcp_servers")
    hints, network_access, max_iterations = _field("hints"), _field("network_access"), _field("max_iterations")
    blueprint_id, blueprint_config, locale = _field("blueprint_id"), _field("blueprint_config"), _field("locale")
    agent_id, owner_principal_id, model_id = _field("agent_id"), _field("owner_principal_id"), _field("model_id")
    system_prompt, tags, is_pinned = _field("system_prompt"), _field("tags"), _field("is_pinned")
    status, title = _field("status"), _read(lambda s: s.title, "title")
    created_at, updated_at = _read(lambda s: s.created_at, "created"), _read(lambda s: s.updated_at, "updated")
    preview = _read(lambda s: s.preview(PREVIEW_WIDTH), "the first user message, cut")
    output_preview = _read(lambda s: s.output_preview(PREVIEW_WIDTH), "the last assistant text, cut")
    usage = _read(lambda s: None if s.usage == Usage() else s.usage, "token usage; None until some is recorded")
    parent_session_id = _read(lambda s: s.parent, "Spawn.parent")
    subagent_name = _read(lambda s: s.spawn and s.spawn.name, "Spawn.name")
    subagent_task = _read(lambda s: s.spawn and s.spawn.task, "Spawn.task")
    subagent_status = _read(lambda s: s.spawn and s.subagent_status, "spawning ... cancelled; None at top level")
    audit_target_id = property(lambda self: self.id, doc="HasAuditTargetId: history() is the audit trail")

    def _status_times(self) -> list[tuple[str, datetime]]:
        entries = self.store.history(self.id, before=self.session.version + 1)
        changes = [(e.event.changes, e.at) for e in entries if e.kind == "header_changed"]
        return [(change["status"], at) for change, at in changes if "status" in change]

    @property
    def started_at(self) -> datetime | None:  # when it first became active (started executing)
        return next((at for status, at in self._status_times() if status == "active"), None)

    @property
    def finished_at(self) -> datetime | None:  # when it ended, while it is ended (finished, failed or cancelled)
        times = self._status_times()
        return times[-1][1] if times and times[-1][0] in FINAL_STATUSES else None

    def agent_config_overlay(self) -> AgentConfigOverlay:  # From<&Session> for AgentConfigOverlay
        config = [getattr(self, name) for name in ("system_prompt", "capabilities", "initial_files", "network_access")]
        return AgentConfigOverlay._make([*config, self.model_id, self.tools, self.max_iterations])

    def __repr__(self) -> str:  # Debug
        return f"EverrunsSession({self.id!r}, at={self.at!r})"


def sessions(
    store: Transcripts, *, title: str | None = None, after: str | None = None, limit: int | None = None, **fields: Any
) -> list[EverrunsSession]:
    """everruns' listing: header fields (status, tags, is_pinned, owner_principal_id) and config fields filter."""
    header, metadata = _split(fields)
    if unfiltered := header.keys() - {"status", "tags", "pinned", "owner"}:
        raise InvalidArgument(f"sessions() cannot filter the header by {sorted(unfiltered)}")
    found = store.sessions(title=title, metadata=metadata or None, after=after, limit=limit, **header)
    return [EverrunsSession(store, info.id) for info in found]
