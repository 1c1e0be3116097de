"""An event-sourced transcript engine for LLM-agent conversations.

Sessions are append-only logs of typed events; any session can be rebuilt as
of any event version, revision or time.
"""

from engine.app import HistoryEntry, SessionInfo, Transcripts
from engine.content import Image, Message, Reasoning, Text, ToolResult, ToolUse, Transcript, Usage
from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    InvalidArgument,
    InvalidMessage,
    InvalidRevision,
    RevisionConflict,
    RevisionNotFound,
    SessionExists,
    SessionNotFound,
    StorageError,
    StorageUnavailable,
    UnknownEventType,
    VersionNotFound,
)
from engine.revisions import EMPTY_REVISION, revision_of
from engine.transcript import Session

__all__ = [
    "EMPTY_REVISION",
    "ConcurrentWriteError",
    "CorruptStore",
    "EngineError",
    "HistoryEntry",
    "Image",
    "InvalidArgument",
    "InvalidMessage",
    "InvalidRevision",
    "Message",
    "Reasoning",
    "RevisionConflict",
    "RevisionNotFound",
    "Session",
    "SessionExists",
    "SessionInfo",
    "SessionNotFound",
    "StorageError",
    "StorageUnavailable",
    "Text",
    "ToolResult",
    "ToolUse",
    "Transcript",
    "Transcripts",
    "UnknownEventType",
    "Usage",
    "VersionNotFound",
    "revision_of",
]

__version__ = "0.1.0"
