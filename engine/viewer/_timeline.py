"""A session's whole past as one list: every message it ever showed, with
the version that added it and the version that took it away.

The transcript at any version ``v`` is then the entries with ``added <= v``
and no ``removed``, or ``v < removed``, in the list's order; the viewer's
slider moves from one version to the next by showing and hiding only the
entries added or removed in between, instead of replaying the log from the
start at every step (``get(sid, at=v)`` does that: about 16 ms a step on a
10,000-message session)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.facade import HistoryEntry, Transcripts
from engine.state.content import Message
from engine.state.events import MessagesAppended, MessagesErased, MessagesRewritten, TitleChanged

__all__ = ["Shown", "Timeline", "timeline"]


@dataclass(eq=False)
class Shown:
    """One message as the session showed it, from version ``added`` until
    version ``removed`` (``None``: it is still there)."""

    message: Message
    added: int
    removed: int | None = None
    #: For a fork's first version: "inherited" (from its source) or "replacement".
    origin: str | None = None

    def visible_at(self, version: int) -> bool:
        return self.added <= version and (self.removed is None or version < self.removed)


@dataclass
class Timeline:
    """Every message a session ever showed (``shown``, in transcript order at
    every version), and the event of each version (``entries``)."""

    session_id: str
    version: int
    entries: list[HistoryEntry]
    shown: list[Shown] = field(default_factory=list)
    #: The session's title after each version (``titles[v - 1]``).
    titles: list[str | None] = field(default_factory=list)

    def at(self, version: int) -> list[Message]:
        """The transcript at ``version``: the same messages as
        ``store.get(session_id, at=version).messages``."""
        return [item.message for item in self.shown if item.visible_at(version)]


def timeline(store: Transcripts, session_id: str) -> Timeline:
    """The timeline of ``session_id``, from one read of its history (and one
    of its first version, which a fork takes from its source)."""
    entries = store.history(session_id)
    made = Timeline(session_id, entries[-1].version if entries else 0, entries)
    order = made.shown
    first = store.get(session_id, at=1)
    lineage = first.lineage
    visible = [Shown(message, 1) for message in first.messages]
    if lineage.source is not None:
        kept = len(visible) if lineage.fork_index is None else lineage.fork_index
        for index, item in enumerate(visible):
            item.origin = "inherited" if index < kept else "replacement"
    order.extend(visible)
    title = first.title
    made.titles.append(title)
    for entry in entries[1:]:
        event, version = entry.event, entry.version
        if isinstance(event, TitleChanged):
            title = event.title
        made.titles.append(title)
        if isinstance(event, MessagesAppended):
            added = [Shown(message, version) for message in event.messages]
            order.extend(added)  # appended messages come after everything shown so far
            visible.extend(added)
        elif isinstance(event, MessagesRewritten):
            _replace(order, visible, event.start, event.end, event.messages, version)
        elif isinstance(event, MessagesErased):
            # The log's own messages were erased in place (every version
            # shows the placeholders already); what this event changes is
            # what a fork inherited, as a replay does (Message.erasure).
            erased = frozenset(event.message_ids)
            for index, item in enumerate(visible):
                message = item.message
                if message.id in erased and message.erased is None:
                    _replace(order, visible, index, index + 1, (message.erasure(),), version)
    return made


def _replace(
    order: list[Shown], visible: list[Shown], start: int, end: int, messages: Sequence[Message], version: int
) -> None:
    """``visible[start:end]`` replaced by ``messages`` at ``version``; the new
    entries go into ``order`` right after the last message before them, so
    the order stays the transcript's at every version."""
    for item in visible[start:end]:
        item.removed = version
    added = [Shown(message, version) for message in messages]
    anchor = visible[end - 1] if end > start else (visible[start - 1] if start else None)
    at = 0 if anchor is None else _position(order, anchor) + 1
    order[at:at] = added
    visible[start:end] = added


def _position(order: list[Shown], item: Shown) -> int:
    for index in range(len(order) - 1, -1, -1):  # rewrites touch recent messages most often
        if order[index] is item:
            return index
    raise ValueError("a shown message is not in the order")
