"""The OpenAI Agents SDK's ``Session`` protocol over a transcript store.

``TranscriptSession(session_id, store)`` is a drop-in for the SDK's
``SQLiteSession``: pass it as ``session=`` to ``Runner.run``. The SDK is not
imported here (the class implements its protocol); install
``transcript-engine[openai-agents]`` to get it.

Each item the SDK adds becomes part of a message of the transcript: a user
input, an assistant message or a reasoning item one message each; the tool
calls of one model turn one assistant message (with the turn's messages and
reasoning before them, and after them up to the outputs), and their outputs
one ``tool_results`` message, as the transcript's tool pairing wants. The
items themselves are kept byte for byte in the message's ``provider_data``,
so ``get_items`` gives back exactly what was added, ids and statuses
included, as long as the message still says what its items say (after an
edit through the store, the items are made again from the message).

What the SDK's own sessions cannot do comes with it: ``pop_item`` and
``clear_session`` are audited rewrites (the history keeps what they removed);
``fork_at(turn)`` and ``edit_and_retry(turn, text)`` branch without copying;
``items_at(at)`` reads the conversation as of any version, revision or time;
``revision()`` is its content address and ``history()`` its log.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from engine.decisions import new_session_id
from engine.errors import (
    ConcurrentWriteError,
    InvalidArgument,
    InvalidTranscriptShape,
    RevisionConflict,
    SessionExists,
    SessionNotFound,
)
from engine.facade import HistoryEntry, Transcripts
from engine.facade.aio import AsyncTranscripts, shared_async
from engine.formats import from_openai_responses, to_openai_responses
from engine.state.content import Message, Reasoning, ToolResult, shown, with_default_objects
from engine.state.json_values import check_json_value

__all__ = ["TranscriptSession"]

Item = dict[str, Any]
_R = TypeVar("_R")
#: How long a write is tried again while other writers (other processes, other
#: store objects) keep committing first, and the longest pause between tries
#: (seconds; each pause is random up to a bound that doubles, so writers that
#: collided spread out).
_RETRY_FOR = 10.0
_MAX_PAUSE = 0.2


class TranscriptSession:
    """The conversation ``session_id`` of ``store`` (a :class:`Transcripts` or
    :class:`AsyncTranscripts`), as an Agents SDK session. The transcript is
    created by the first ``add_items``; until then the session reads empty.
    ``actor`` is recorded on every change it makes; ``session_settings`` is
    the SDK's (its ``limit`` applies when ``get_items`` is given none)."""

    def __init__(
        self,
        session_id: str,
        store: Transcripts | AsyncTranscripts,
        *,
        actor: str | None = "openai-agents",
        session_settings: Any = None,
    ) -> None:
        new_session_id(session_id)  # one the store can create: refused here, not at the first write
        if isinstance(store, Transcripts):
            # One twin for every session object over this store: calls on one
            # conversation take turns, as the SDK's runners expect.
            store = shared_async(store)
        elif not isinstance(store, AsyncTranscripts):
            raise InvalidArgument(f"store must be a Transcripts or an AsyncTranscripts, got {type(store).__name__}")
        self.session_id = session_id
        self.store = store
        self.actor = actor
        self.session_settings = _coerced({} if session_settings is None else session_settings)
        self._verified: Verified = {}

    def __repr__(self) -> str:
        return f"TranscriptSession({self.session_id!r}, {self.store!r})"

    async def _run(self, function: Callable[[Transcripts], _R]) -> _R:
        # In order with this conversation's other calls; other conversations
        # of the store go on meanwhile.
        return await self.store.run_on(self.session_id, function)

    # -- the SDK's protocol -------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[Item]:
        """The conversation's items, oldest first; with ``limit``, the last
        ``limit`` of them (0: none; below 0: all, as the SDK's SQLite session)."""
        if limit is None:
            limit = _settings_limit(self.session_settings)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise InvalidArgument(f"limit must be an int or None, got {shown(limit)}")
        if limit == 0:
            return []
        messages, partial = await self._run(lambda store: self._messages(store, limit if limit and limit > 0 else None))
        items = _tail_items(messages, limit, self._verified)
        if partial and limit is not None and len(items) < limit:
            # Erased messages whose calls are gone hold no items: read further back.
            messages, _ = await self._run(lambda store: self._messages(store, None))
            items = _tail_items(messages, limit, self._verified)
        return items

    async def add_items(self, items: list[Item]) -> None:
        """Append ``items`` to the conversation, as one commit. Items this
        engine cannot hold are refused with :class:`InvalidArgument` naming
        the item, and nothing is written."""
        if not isinstance(items, (list, tuple)):
            raise InvalidArgument(f"add_items() takes a list of items, got {type(items).__name__}")
        if not items:
            return
        messages = messages_of(items)  # refused here, before anything is read or written
        await self._run(lambda store: self._append(store, items, messages))

    async def pop_item(self) -> Item | None:
        """Remove the newest item and return it (``None`` if there is none),
        as an audited rewrite with reason ``pop_item``."""
        return await self._run(self._pop)

    async def clear_session(self) -> None:
        """Remove every item, as an audited rewrite with reason
        ``clear_session``: the session's history keeps them."""
        await self._run(self._clear)

    # -- what the SDK's sessions lack --------------------------------------------

    async def fork_at(self, turn: int) -> TranscriptSession:
        """A new session holding this one up to the end of ``turn`` (turns are
        counted from 0 at each user input): its input and the agent's answer
        to it, nothing after."""
        return await self._run(lambda store: self._fork(store, turn, None))

    async def edit_and_retry(self, turn: int, text: str) -> TranscriptSession:
        """A new session holding this one before ``turn``, then ``text`` as
        the turn's user input (recorded as a replacing fork). Run the agent on
        it with no new input to retry: ``Runner.run(agent, [], session=...)``."""
        if not isinstance(text, str) or not text:
            raise InvalidArgument(f"edit_and_retry() takes the new input as a non-empty str, got {shown(text)}")
        return await self._run(lambda store: self._fork(store, turn, text))

    async def items_at(self, at: int | str | datetime) -> list[Item]:
        """The items as of an event version, a revision or a time (see
        :meth:`Transcripts.get`)."""
        state = await self.store.get(self.session_id, at=at)
        return _tail_items(state.messages, None)

    async def revision(self) -> str:
        """The content address of the conversation now."""
        state = await self.store.get(self.session_id)
        return state.revision

    async def history(self) -> list[HistoryEntry]:
        """Every change of the conversation, oldest first (none before the
        first ``add_items``, as the session reads empty until then)."""
        try:
            return await self.store.history(self.session_id)
        except SessionNotFound:
            return []

    # -- on the store's worker ------------------------------------------------------

    def _messages(self, store: Transcripts, last: int | None) -> tuple[Sequence[Message], bool]:
        """The messages, or (``last``) the newest ``last`` of them and the one
        before (an erased tool_results message's items are made from it), and
        whether older ones were left out. A message holds at least one item
        (but for the outputs of an erased call), so they hold the newest
        ``last`` items."""
        try:
            if last is not None:
                tail = store.get(self.session_id, last=last + 1)
                return tail.messages, tail.start > 0
            return store.get(self.session_id).messages, False
        except SessionNotFound:
            return (), False

    def _append(self, store: Transcripts, items: list[Item], messages: list[Message]) -> None:
        """Append ``messages`` (made from ``items``), or, when the last turn is
        still open, make its messages again with ``items`` after its own."""

        def append() -> None:
            try:
                head = store.get(self.session_id)
            except SessionNotFound:
                with contextlib.suppress(SessionExists):  # another writer made it in between
                    store.create(session_id=self.session_id, actor=self.actor)
                head = store.get(self.session_id)
            count = len(head.messages)
            start = _open_turn(head.messages)
            if start is not None:
                # The last turn's calls are not all answered yet: the new items
                # continue it (more calls, more outputs), so its messages are
                # made again from all their items; those that changed are
                # replaced as one audited rewrite (the others are not stored again).
                turn = head.messages[start:]
                held = [
                    item
                    for at in range(start, count)
                    for item in items_of(head.messages[at], None, head.messages[at - 1] if at else None)
                ]
                grown = messages_of([*held, *items])
                same = 0
                while same < min(len(turn), len(grown)) and _unchanged(turn[same], grown[same]):
                    same += 1
                if same == len(turn):
                    store.append(self.session_id, *grown[same:], actor=self.actor, expected_revision=head.revision)
                else:
                    store.rewrite(
                        self.session_id,
                        start + same,
                        count,
                        _keeping_id(grown[same:], turn[same]),
                        "add_items",
                        actor=self.actor,
                        expected_revision=head.revision,
                    )
            else:
                store.append(self.session_id, *messages, actor=self.actor, expected_revision=head.revision)

        try:
            _retried(append)
        except InvalidTranscriptShape as exc:
            raise InvalidTranscriptShape(
                f"add_items() on {self.session_id!r}: {exc}. Every function_call needs its function_call_output "
                "before the next input; answer a call that will not run with an output saying so"
            ) from None

    def _pop(self, store: Transcripts) -> Item | None:
        return _retried(lambda: self._pop_once(store))

    def _pop_once(self, store: Transcripts) -> Item | None:
        try:
            head = store.get(self.session_id)
        except SessionNotFound:
            return None
        messages = head.messages
        if not messages:
            return None
        count = len(messages)
        # A tool turn's calls and outputs are popped as one run of items, so
        # popping one of several outputs leaves the turn open, not broken.
        start = count - 2 if count > 1 and messages[-1].role == "tool_results" else count - 1
        *kept, popped = [
            item
            for at in range(start, count)
            for item in items_of(messages[at], None, messages[at - 1] if at else None)
        ]
        replacement = _keeping_id(messages_of(kept), messages[start]) if kept else []
        store.rewrite(
            self.session_id,
            start,
            count,
            replacement,
            "pop_item",
            actor=self.actor,
            expected_revision=head.revision,
        )
        return popped

    def _clear(self, store: Transcripts) -> None:
        _retried(lambda: self._clear_once(store))

    def _clear_once(self, store: Transcripts) -> None:
        try:
            head = store.get(self.session_id)
        except SessionNotFound:
            return
        if head.messages:
            store.rewrite(
                self.session_id,
                0,
                len(head.messages),
                [],
                "clear_session",
                actor=self.actor,
                expected_revision=head.revision,
            )

    def _fork(self, store: Transcripts, turn: int, text: str | None) -> TranscriptSession:
        if isinstance(turn, bool) or not isinstance(turn, int) or turn < 0:
            raise InvalidArgument(f"turn is a turn number (an int from 0), got {shown(turn)}")
        messages = store.get(self.session_id).messages
        starts = [index for index, message in enumerate(messages) if message.role == "user"]
        if turn >= len(starts):
            raise InvalidArgument(
                f"session {self.session_id!r} has {len(starts)} turns (0 to {len(starts) - 1}); there is no turn {turn}"
            )
        if text is None:
            end = starts[turn + 1] if turn + 1 < len(starts) else len(messages)
            child = store.fork_at(self.session_id, end, actor=self.actor)
        else:
            child = store.fork_replacing(self.session_id, starts[turn], _user_input(text), actor=self.actor)
        return TranscriptSession(child, self.store, actor=self.actor, session_settings=self.session_settings)


def _coerced(settings: Any) -> Any:
    """Settings given as a dict, as the SDK's ``SessionSettings`` when the
    SDK is installed (its runner reads them as one); else kept as given."""
    if isinstance(settings, dict):
        try:
            from agents.memory.session_settings import coerce_session_settings
        except ImportError:
            return settings
        return coerce_session_settings(settings)
    return settings


def _settings_limit(settings: Any) -> Any:
    """The ``limit`` of the SDK's session settings, given as a
    ``SessionSettings`` or a dict (the SDK takes both)."""
    if settings is None:
        return None
    if isinstance(settings, dict):
        return settings.get("limit")
    return getattr(settings, "limit", None)


def _retried(step: Callable[[], _R]) -> _R:
    """``step`` (a write, or a read then a write that expects what was read),
    tried again when another writer committed first: the store has caught
    up by then, so the next try decides on what is stored now."""
    pause = 0.002
    deadline = time.monotonic() + _RETRY_FOR
    while time.monotonic() < deadline:
        try:
            return step()
        except (RevisionConflict, ConcurrentWriteError):
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, _MAX_PAUSE)
    return step()


# -- items and messages ----------------------------------------------------------


def messages_of(items: Sequence[Item], *, keep: bool = True) -> list[Message]:
    """The messages that hold ``items``, each with its own items verbatim in
    ``provider_data``, grouped as ``engine.formats.from_openai_responses``
    groups them (so the transcript converts back to Responses items): an
    assistant turn's reasoning, text and calls are one message unless a
    message or reasoning item follows a message or call of a message that
    holds no call yet; outputs that follow each other are one
    ``tool_results`` message. ``keep=False``: items read back from a
    message, only to compare its content (no ``provider_data``, and they are
    JSON already)."""
    groups: list[list[tuple[Item, Message]]] = []
    previous: str | None = None
    calls = False  # the message being grouped holds a function call
    for index, item in enumerate(items):
        single = _message_of(item, index, keep)
        kind = _kind(single)
        if groups and _continues(previous, kind, calls):
            groups[-1].append((item, single))
        else:
            groups.append([(item, single)])
            calls = False
        calls = calls or kind == "function_call"
        previous = kind
    return [_grouped(group, keep) for group in groups]


def _kind(message: Message) -> str:
    """The kind of item one message came from, for the grouping rule."""
    if message.role == "tool_results":
        return "output"
    if message.role != "assistant":
        return "other"
    if message.tool_uses:
        return "function_call"
    if message.blocks and all(isinstance(block, Reasoning) for block in message.blocks):
        return "reasoning"
    return "text"


def _continues(previous: str | None, kind: str, calls: bool) -> bool:
    """``engine.formats``' grouping rule for Responses items (``calls``: the
    message so far holds a function call, whose output the rest of the
    model's turn comes before)."""
    if kind == "output":
        return previous == "output"
    turn = ("reasoning", "text", "function_call")
    if kind not in turn or previous not in turn:
        return False
    return kind == "function_call" or previous == "reasoning" or calls


def _grouped(group: list[tuple[Item, Message]], keep: bool) -> Message:
    first = group[0][1]
    if len(group) == 1:
        message = first
    else:
        blocks = tuple(block for _, single in group for block in single.blocks)
        incomplete = any(single.incomplete for _, single in group)
        # The id erase() finds the message by: its first message item's (the
        # text a user would erase), else its first item's.
        said = [single.provider_item_id for item, single in group if item.get("type", "message") == "message"]
        provider_item_id = next((found for found in said if found), first.provider_item_id)
        message = Message(role=first.role, blocks=blocks, incomplete=incomplete, provider_item_id=provider_item_id)
    return msgspec.structs.replace(message, provider_data=_kept([item for item, _ in group])) if keep else message


def _open_turn(messages: Sequence[Message]) -> int | None:
    """Where the last turn starts if its calls are not all answered yet (its
    calls last, or followed by the outputs of some of them: the others wait,
    say, for a human's approval); ``None`` if it is not open."""
    last = messages[-1] if messages else None
    if last is None or last.erased is not None:
        return None
    if last.role == "assistant" and last.tool_uses:
        return len(messages) - 1
    if last.role == "tool_results" and len(messages) > 1:
        calls = {use.id for use in messages[-2].tool_uses}
        answered = {block.tool_use_id for block in last.blocks if isinstance(block, ToolResult)}
        if answered < calls:
            return len(messages) - 2
    return None


def _unchanged(stored: Message, made: Message) -> bool:
    """Whether ``made`` (from items, with no id yet) is ``stored`` again."""
    return msgspec.structs.replace(made, id=stored.id) == stored


def _keeping_id(messages: list[Message], replaced: Message) -> list[Message]:
    """``messages`` replacing ``replaced``: the first keeps its id when it is
    the same kind of message (the turn grew or shrank; it is the same turn)."""
    if messages and messages[0].role == replaced.role and replaced.id is not None:
        messages[0] = msgspec.structs.replace(messages[0], id=replaced.id)
    return messages


#: Messages whose kept items were found to say what the message says, by
#: message id: the content digest and the kept text that was checked. A
#: conversation's reads (the SDK reads the session at every turn) then check
#: each message by its digest instead of reading its items again.
Verified = dict[str, tuple[bytes, str]]


def items_of(message: Message, verified: Verified | None = None, previous: Message | None = None) -> list[Item]:
    """The items a message holds: those it was added with, while the message
    still says what they say; else items made from its content (``previous``:
    the message before it, whose calls an erased tool_results message answers)."""
    data = message.provider_data
    if data is not None:
        try:
            kept = _KEPT_DECODER.decode(data)
        except ValueError:
            kept = None  # not what add_items keeps: made from the message's content below
        # Its content digest as same_content() takes it, computed once.
        digest = with_default_objects(message).digest_bytes()
        known = verified.get(message.id) if verified is not None and message.id is not None else None
        if known is not None and known[1] == data and known[0] == digest:
            return kept  # type: ignore[no-any-return]
        if isinstance(kept, list) and kept and all(isinstance(item, dict) for item in kept):
            try:
                (again,) = messages_of(kept, keep=False)
            except (InvalidArgument, ValueError):
                again = None
            if (
                again is not None
                and again.role == message.role
                and with_default_objects(again).digest_bytes() == digest
            ):
                if verified is not None and message.id is not None:
                    verified[message.id] = (digest, data)
                return kept
    if message.erased is not None and message.role != "tool_results":
        # An erased message keeps its place among the session's items (the
        # SDK counts and pops items), with no content; the formats leave it out.
        return [{"type": "message", "role": message.role, "content": []}]
    if message.erased is not None:
        # Erased outputs still answer their calls, with empty results, as the
        # formats send them: a call without its output would be dropped by the SDK.
        made: list[Item] = to_openai_responses([previous, message] if previous else [message], lossy=True)
        return [item for item in made if item.get("type") == "function_call_output"]
    # Made in the store (an edit, an erasure, an error result): as the Responses
    # format can hold it, converting what it cannot as engine.formats documents.
    items: list[Item] = to_openai_responses([message], lossy=True)
    return items


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON data")


_KEPT_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _tail_items(messages: Sequence[Message], limit: int | None, verified: Verified | None = None) -> list[Item]:
    if limit is not None and limit == 0:
        return []
    newest_first: list[list[Item]] = []  # each message's items, the newest message first
    count = 0
    for at in range(len(messages) - 1, -1, -1):
        newest_first.append(items_of(messages[at], verified, messages[at - 1] if at else None))
        count += len(newest_first[-1])
        if limit is not None and 0 < limit <= count:
            break
    items = [item for held in reversed(newest_first) for item in held]
    return items[-limit:] if limit is not None and limit > 0 else items


def _message_of(item: Item, index: int, keep: bool = True) -> Message:
    if not isinstance(item, dict):
        raise InvalidArgument(f"items[{index}] is a {type(item).__name__}, not an item (a dict)")
    if keep:  # (items read back from a message are JSON: the store keeps provider_data as JSON text)
        # Kept as JSON text, an item must read back as itself: no tuples,
        # no keys but str (1 and "1" would both become "1").
        check_json_value(item, f"items[{index}]")
    try:
        (message,) = from_openai_responses([_content_of(item)])
    except InvalidArgument as exc:  # it names the item as items[0]: the one converted alone
        raise InvalidArgument(str(exc).replace("items[0]", f"items[{index}]")) from None
    if item.get("status") == "incomplete" and message.role == "assistant":
        message = msgspec.structs.replace(message, incomplete=True)
    item_id = item.get("id")
    if isinstance(item_id, str) and item_id:  # so erase(sid, item_id) finds it
        message = msgspec.structs.replace(message, provider_item_id=item_id)
    return message


# Fields an item carries that the transcript does not hold: kept, with the
# whole item, in provider_data only. An item's id, status, answer phase and
# tool namespace; a part's annotations, log probabilities and image detail.
_ITEM_ONLY = ("id", "status", "phase", "namespace")
_PART_ONLY = ("annotations", "logprobs", "detail")


def _content_of(item: Item) -> Item:
    """``item`` as the transcript holds it: without the fields above, and a
    refusal part as the text the model said."""
    content = {key: value for key, value in item.items() if key not in _ITEM_ONLY}
    for key in ("content", "output"):  # a message's parts, a function_call_output's parts
        parts = content.get(key)
        if isinstance(parts, list):
            content[key] = [_part_content(part) for part in parts]
    return content


def _part_content(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    if part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "output_text", "text": part["refusal"]}
    return {key: value for key, value in part.items() if key not in _PART_ONLY}


def _kept(items: list[Item]) -> str:
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _user_input(text: str) -> Message:
    item: Item = {"role": "user", "content": text}
    return messages_of([item])[0]
