"""One root error and a shallow, typed hierarchy.

Errors caused by a caller's bad argument also derive from ``ValueError`` so
that generic code can catch them the usual way. Storage-layer exceptions are
translated into :class:`StorageError` subclasses in one place
(``engine.store._backend``); nothing from a database driver leaks out.
"""

from __future__ import annotations

__all__ = [
    "ConcurrentWriteError",
    "CorruptStore",
    "EngineError",
    "EventTooLarge",
    "InvalidArgument",
    "InvalidForkPoint",
    "InvalidMessage",
    "InvalidRevision",
    "InvalidRewriteRange",
    "InvalidStatusTransition",
    "InvalidTranscriptShape",
    "NoOpRewrite",
    "ReplacementMismatch",
    "RevisionConflict",
    "RevisionNotFound",
    "SessionExists",
    "SessionHasChildren",
    "SessionHasForks",
    "SessionNotFound",
    "StorageError",
    "StorageUnavailable",
    "UnknownEventType",
    "VersionNotFound",
    "WriteOutcomeUnknown",
]


def _brief(value: object) -> str:
    """A value for a message: its ``str``, clipped, never raising (a list
    nested thousands of levels deep has none)."""
    try:
        text = str(value)
    except Exception:
        return f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


class EngineError(Exception):
    """Root of every error this library raises on purpose."""


class InvalidArgument(EngineError, ValueError):
    """A caller passed a value the engine cannot accept; nothing was written."""


class EventTooLarge(InvalidArgument):
    """One write would store an event larger than the store's
    ``max_event_bytes``; it was refused before anything was sent."""


class InvalidMessage(InvalidArgument):
    """A message or content block is malformed (wrong role, block or type)."""


class InvalidRevision(InvalidArgument):
    """A revision id is not of the form ``sha256:<64 hex digits>``."""


class VersionNotFound(InvalidArgument, LookupError):
    """Time travel asked for a version, or a time, the session never had."""


class RevisionNotFound(InvalidArgument, LookupError):
    """Time travel asked for a revision the session never reached."""


class InvalidRewriteRange(InvalidArgument):
    """``rewrite`` was given a range outside ``0 <= start <= end <= len``."""

    def __init__(self, start: object, end: object, message_count: int) -> None:
        if type(start) is not int or type(end) is not int:
            problem = f"start and end are ints, got {type(start).__name__} and {type(end).__name__}"
        else:
            problem = f"the range is half-open and needs 0 <= start <= end <= {message_count}"
        super().__init__(
            f"cannot rewrite [{_brief(start)}, {_brief(end)}) of a transcript of {message_count} messages; {problem}"
        )
        self.start, self.end, self.message_count = start, end, message_count


class NoOpRewrite(InvalidArgument):
    """The rewrite would leave the transcript exactly as it is; nothing written."""

    def __init__(self, revision: str) -> None:
        super().__init__(f"the rewrite leaves the transcript at revision {revision} unchanged; nothing was written")
        self.revision = revision


class InvalidTranscriptShape(InvalidArgument):
    """The result would break tool pairing: a tool-use message must be
    followed by one tool_results message covering exactly its ids (at the
    end of the transcript the results may be missing, or some of them)."""


class InvalidStatusTransition(InvalidArgument):
    """A session's status cannot go from what it is to what was asked (see
    ``engine.state.header.TRANSITIONS``); nothing written."""


class InvalidForkPoint(InvalidArgument):
    """``fork_at``/``fork_replacing`` got an index out of range, or one that
    would split a tool-use message from its results."""


class ReplacementMismatch(InvalidArgument):
    """``fork_replacing``'s replacement does not fit what it replaces (another
    role, or a block index out of range)."""


class SessionNotFound(EngineError, LookupError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r} in this store")
        self.session_id = session_id


class SessionExists(EngineError):
    """``create(session_id=...)`` (or a fork's ``child_id=``) named an id that
    is already taken. ``parameter``: the argument that named it."""

    def __init__(self, session_id: str, parameter: str = "session_id") -> None:
        super().__init__(
            f"a session with id {session_id!r} already exists; choose another id or omit {parameter} to get a fresh one"
        )
        self.session_id = session_id
        self.parameter = parameter


class SessionHasForks(EngineError):
    """``delete`` was asked to remove a session that other sessions were
    forked from (they read their shared history from its log); nothing was
    deleted. Pass ``with_forks=True`` to delete them too."""

    def __init__(self, session_id: str, forks: list[str]) -> None:
        self.session_id, self.forks = session_id, forks
        super().__init__(
            f"session {session_id!r} has forks that read their history from it: {forks}; nothing was deleted. "
            "Delete them first, or pass with_forks=True to delete them with it"
        )


class SessionHasChildren(EngineError):
    """``delete`` was asked to remove a session that spawned child sessions
    still in the store (they name it as their parent); nothing was deleted.
    Pass ``with_children=True`` to delete them too."""

    def __init__(self, session_id: str, children: list[str]) -> None:
        self.session_id, self.children = session_id, children
        super().__init__(
            f"session {session_id!r} has child sessions that name it as their parent: {children}; nothing was "
            "deleted. Delete them first, or pass with_children=True to delete them with it"
        )


class RevisionConflict(EngineError):
    """``expected_revision`` did not match the session's head; nothing written."""

    def __init__(self, session_id: str, expected: str, actual: str) -> None:
        super().__init__(
            f"session {session_id!r} is at revision {actual}, not the expected "
            f"{expected}; reload it with get() and decide again"
        )
        self.session_id = session_id
        self.expected = expected
        self.actual = actual


class ConcurrentWriteError(EngineError):
    """Another writer committed to the session first; nothing was written.

    Appends and the writes that name no message are decided again by the
    store itself (after four lost races, on a fifth try no other writer can
    commit beside), so they raise this only when the id names another
    session now (deleted and created again); a rewrite, restore or compaction (without ``expected_revision``) raises
    it at once, as the other write may have moved the messages it names.
    The store has already read the other writer's change: look at the
    session again, then retry the call.
    """

    retryable = True

    def __init__(self, session_id: str, version: int) -> None:
        super().__init__(
            f"another writer recorded version {version} of session "
            f"{session_id!r} first; nothing was written, retry the call"
        )
        self.session_id = session_id
        self.version = version


class StorageError(EngineError):
    """The storage backend failed; the message says which operation."""


class StorageUnavailable(StorageError):
    """The store could not be opened or reached (bad path, server down)."""


class WriteOutcomeUnknown(StorageUnavailable):
    """The connection was lost while a write was under way, and the store
    could not tell on a new connection whether it was stored (an append it
    can tell of returns, or is written again once). It may have been stored
    before the reply was lost, or not: read the session before writing it
    again (a blind retry could store it twice)."""


class CorruptStore(StorageError):
    """Stored data cannot be read back as valid transcript events."""


class UnknownEventType(CorruptStore):
    """A stored row names an event type outside the closed registry.

    Nothing named by stored data is ever imported; the row is refused.
    """
