"""The facade: ``Transcripts`` and its async twin ``AsyncTranscripts``, over
a repository (``_repository``: load, cache, commit) that the commands and
queries share. Commands are decided in ``engine.decisions``; this layer
only loads, asks and commits."""

from engine.decisions import IngestOutcome, OutOfBandResponse, Pending
from engine.facade._reads import Diff, FeedEvent, HistoryEntry, SessionInfo
from engine.facade._repository import DEFAULT_MAX_EVENT_BYTES
from engine.facade.transcripts import Transcripts
from engine.state.transcript import Tail

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Diff",
    "FeedEvent",
    "HistoryEntry",
    "IngestOutcome",
    "OutOfBandResponse",
    "Pending",
    "SessionInfo",
    "Tail",
    "Transcripts",
]
