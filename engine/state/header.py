"""A session's header: its lifecycle status and the settings a runtime
keeps beside the transcript (tags, pinning, model, reasoning effort, system
prompt of record, agent, owner, locale) and the outcome a session ended
with (a sub-agent's result, a failure's cause). Changed only by ``HeaderChanged``
events, so every change is audited and every past header can be read.

What only one runtime needs goes in the session's metadata instead."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

__all__ = ["FINAL_STATUSES", "HEADER_FIELDS", "STATUSES", "TRANSITIONS", "Header"]

#: The lifecycle of a session (everruns' statuses).
STATUSES = (
    "started",
    "active",
    "idle",
    "waiting_for_tool_results",
    "paused",
    "finished",
    "failed",
    "cancelled",
)
FINAL_STATUSES = frozenset({"finished", "failed", "cancelled"})
_RUNNING = ("active", "idle", "waiting_for_tool_results", "paused")

#: From each status, the statuses a session may go to. A session that ended
#: may only become active again (reopened, audited like any change).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "started": frozenset(STATUSES) - {"started"},
    "active": frozenset(_RUNNING + tuple(FINAL_STATUSES)) - {"active"},
    "idle": frozenset(_RUNNING + tuple(FINAL_STATUSES)) - {"idle"},
    # Waiting for tools: it cannot have finished before they answer.
    "waiting_for_tool_results": frozenset({"active", "idle", "paused", "failed", "cancelled"}),
    "paused": frozenset({"active", "idle", "waiting_for_tool_results", "finished", "failed", "cancelled"}),
    "finished": frozenset({"active"}),
    "failed": frozenset({"active"}),
    "cancelled": frozenset({"active"}),
}


class Header(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A session's header. A new session is ``started``, untagged and not
    pinned, with no settings of record."""

    status: str = "started"
    tags: tuple[str, ...] = ()
    pinned: bool = False
    model: str | None = None
    reasoning_effort: str | None = None
    system_prompt: str | None = None
    agent: str | None = None
    owner: str | None = None
    locale: str | None = None
    outcome: str | None = None


HEADER_FIELDS: tuple[str, ...] = Header.__struct_fields__
