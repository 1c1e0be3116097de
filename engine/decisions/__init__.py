"""The decision layer: pure functions from a state and a command to the
events that carry the command out, with every rule and argument check, and
no I/O. The facade (``engine.facade``) loads the state, asks here, and
commits what comes back; an async front end or a test does the same.

- ``commands``: the commands as values, built from a caller's arguments
  (``Append.of(...)`` checks them and gives new messages ids);
- ``transcript``: ``decide(state, command, now)`` for appends, rewrites,
  restores, forks, titles, metadata and usage;
- ``records``: spawning child sessions, task lists, pending questions and
  compactions; its ``decide`` takes every command;
- ``ingestion``: realtime input translated and reduced into events;
- ``erasure``: what an erasure reaches and the events it rewrites.
"""

from engine.decisions._checks import (
    at,
    check_actor,
    check_metadata,
    check_optional_str,
    check_session_id,
    check_title,
    clock,
    new_session_id,
)
from engine.decisions.commands import (
    AddToolResults,
    Append,
    Command,
    Create,
    Fork,
    RecordUsage,
    Restore,
    Rewrite,
    SetHeader,
    SetTitle,
    UpdateMetadata,
)
from engine.decisions.erasure import ErasedLog, Targets, erase_inherited, erase_log, expand, view_of
from engine.decisions.ingestion import (
    IngestDecision,
    IngestOutcome,
    OutOfBandResponse,
    Pending,
    Translated,
    duplicate_reasons,
    ingest,
    out_of_band,
    pending,
    realtime_state,
    reject,
    resolve,
    translate,
)
from engine.decisions.records import (
    AskQuestion,
    ClearQuestion,
    Compact,
    RecordCommand,
    SetTaskList,
    SpawnChild,
    UpdateTask,
    decide,
    spawned,
)
from engine.decisions.transcript import Decision, ForkSource, changed_span, commit_of, rewrite_event, whole_fork

__all__ = [
    "AddToolResults",
    "Append",
    "AskQuestion",
    "ClearQuestion",
    "Command",
    "Compact",
    "Create",
    "Decision",
    "ErasedLog",
    "Fork",
    "ForkSource",
    "IngestDecision",
    "IngestOutcome",
    "OutOfBandResponse",
    "Pending",
    "RecordCommand",
    "RecordUsage",
    "Restore",
    "Rewrite",
    "SetHeader",
    "SetTaskList",
    "SetTitle",
    "SpawnChild",
    "Targets",
    "Translated",
    "UpdateMetadata",
    "UpdateTask",
    "at",
    "changed_span",
    "check_actor",
    "check_metadata",
    "check_optional_str",
    "check_session_id",
    "check_title",
    "clock",
    "commit_of",
    "decide",
    "duplicate_reasons",
    "erase_inherited",
    "erase_log",
    "expand",
    "ingest",
    "new_session_id",
    "out_of_band",
    "pending",
    "realtime_state",
    "reject",
    "resolve",
    "rewrite_event",
    "spawned",
    "translate",
    "view_of",
    "whole_fork",
]
