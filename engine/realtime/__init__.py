"""Realtime transcript ingestion: canonical events, the pure reducer, and
provider adapters (``providers/``)."""

from engine.realtime.events import (
    UNKNOWN,
    AssistantTextDelta,
    AssistantTranscriptDelta,
    AssistantTranscriptFinalText,
    AssistantTranscriptTruncated,
    AssistantTurnCompleted,
    AssistantTurnInterrupted,
    FunctionCall,
    FunctionCallOutput,
    ItemDeleted,
    ItemObserved,
    ItemSkipped,
    RealtimeEvent,
    UserContentFinal,
    UserTranscriptFailed,
    UserTranscriptFinal,
)
from engine.realtime.reducer import Outcome, RealtimeState, reduce

__all__ = [
    "UNKNOWN",
    "AssistantTextDelta",
    "AssistantTranscriptDelta",
    "AssistantTranscriptFinalText",
    "AssistantTranscriptTruncated",
    "AssistantTurnCompleted",
    "AssistantTurnInterrupted",
    "FunctionCall",
    "FunctionCallOutput",
    "ItemDeleted",
    "ItemObserved",
    "ItemSkipped",
    "Outcome",
    "RealtimeEvent",
    "RealtimeState",
    "UserContentFinal",
    "UserTranscriptFailed",
    "UserTranscriptFinal",
    "reduce",
]
