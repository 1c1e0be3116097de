"""An event-sourced transcript engine for LLM-agent conversations.

Sessions are append-only logs of typed events; any session can be rebuilt as
of any event version, revision or time.

The facade (``Transcripts`` and what its methods return) is imported on
first use, so ``import engine.realtime`` or the pure core loads neither the
stores nor eventsourcing.
"""

from importlib import metadata
from typing import TYPE_CHECKING, Any

from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    EngineError,
    EventTooLarge,
    InvalidArgument,
    InvalidForkPoint,
    InvalidMessage,
    InvalidRevision,
    InvalidRewriteRange,
    InvalidStatusTransition,
    InvalidTranscriptShape,
    NoOpRewrite,
    ReplacementMismatch,
    RevisionConflict,
    RevisionNotFound,
    SessionExists,
    SessionHasChildren,
    SessionHasForks,
    SessionNotFound,
    StorageError,
    StorageUnavailable,
    UnknownEventType,
    VersionNotFound,
    WriteOutcomeUnknown,
)
from engine.state.content import Image, Message, Reasoning, ReplaceBlock, Text, ToolResult, ToolUse, Transcript, Usage
from engine.state.header import Header
from engine.state.records import Child, Compaction, Question, Spawn, Task, ToolCall
from engine.state.revisions import EMPTY_REVISION, Commit, Reason, revision_of
from engine.state.sequence import MessageSeq
from engine.state.transcript import Lineage, Session

__all__ = [
    "EMPTY_REVISION",
    "AsyncTranscripts",
    "Child",
    "Commit",
    "Compaction",
    "ConcurrentWriteError",
    "CorruptStore",
    "Diff",
    "EngineError",
    "EventTooLarge",
    "FeedEvent",
    "Header",
    "HistoryEntry",
    "Image",
    "IngestOutcome",
    "InvalidArgument",
    "InvalidForkPoint",
    "InvalidMessage",
    "InvalidRevision",
    "InvalidRewriteRange",
    "InvalidStatusTransition",
    "InvalidTranscriptShape",
    "Lineage",
    "Message",
    "MessageSeq",
    "NoOpRewrite",
    "OutOfBandResponse",
    "Pending",
    "Question",
    "Reason",
    "Reasoning",
    "ReplaceBlock",
    "ReplacementMismatch",
    "RevisionConflict",
    "RevisionNotFound",
    "Session",
    "SessionExists",
    "SessionHasChildren",
    "SessionHasForks",
    "SessionInfo",
    "SessionNotFound",
    "Spawn",
    "StorageError",
    "StorageUnavailable",
    "Tail",
    "Task",
    "Text",
    "ToolCall",
    "ToolResult",
    "ToolUse",
    "Transcript",
    "Transcripts",
    "UnknownEventType",
    "Usage",
    "VersionNotFound",
    "WriteOutcomeUnknown",
    "revision_of",
]

if TYPE_CHECKING:
    from engine.facade import (
        Diff,
        FeedEvent,
        HistoryEntry,
        IngestOutcome,
        OutOfBandResponse,
        Pending,
        SessionInfo,
        Tail,
        Transcripts,
    )
    from engine.facade.aio import AsyncTranscripts

_FACADE = frozenset(
    (
        "Diff",
        "FeedEvent",
        "HistoryEntry",
        "IngestOutcome",
        "OutOfBandResponse",
        "Pending",
        "SessionInfo",
        "Tail",
        "Transcripts",
    )
)


def __getattr__(name: str) -> Any:
    if name == "AsyncTranscripts":
        from engine.facade.aio import AsyncTranscripts

        return AsyncTranscripts
    if name in _FACADE:
        from engine import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


try:  # one version source: the installed package's metadata (pyproject.toml)
    __version__ = metadata.version("transcript-engine")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
