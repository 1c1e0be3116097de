"""Run engine commands against a store and the reference model side by side."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.errors import InvalidForkPoint, InvalidRewriteRange, InvalidTranscriptShape, NoOpRewrite
from engine.facade.transcripts import Transcripts
from engine.state.content import Message, Text
from engine.state.header import HEADER_FIELDS
from engine.state.transcript import Session
from engine.testing.model import ModelState, ReferenceModel
from engine.testing.strategies import Append, Command, Create, Fork, Restore, Rewrite, SetTitle

__all__ = ["check_against_model", "check_state", "run_commands"]


def check_against_model(store: Transcripts, model: ReferenceModel, *, past: bool = True) -> None:
    """Check that every session of ``store`` equals the model: content,
    revision, title, metadata, usage and version, now and (with ``past``)
    at every earlier version. Raises ``AssertionError`` naming the session,
    the version and the field, with both values (under ``python -O`` too)."""
    for session_id, expected in model.sessions.items():
        versions = expected.versions if past else [expected.head]
        first = 1 if past else len(expected.versions)
        for version, state in enumerate(versions, first):
            check_state(store.get(session_id, at=version), state)
        where = f"session {session_id!r}"
        _expect(where, "version", store.get(session_id).version, len(expected.versions))
        _expect(where, "lineage depth", store.lineage(session_id).depth, model.depth(session_id))


def check_state(actual: Session, state: ModelState) -> None:
    """Check that one state of the engine equals one version of the model:
    content, revision, title, metadata, usage, header and records (as
    :func:`check_against_model` reports a difference)."""
    where = f"session {actual.id!r} at version {actual.version}"
    contents = [m.canonical_bytes() for m in actual.messages]
    if contents != state.contents:
        _differs(where, "messages", _first_difference(contents, state.contents))
    _expect(where, "revision", actual.revision, state.revision)
    _expect(where, "title", actual.title, state.title)
    _expect(where, "metadata", dict(actual.metadata), state.metadata)
    _expect(where, "usage", actual.usage, state.usage)
    header = {name: getattr(actual.header, name) for name in HEADER_FIELDS}
    _expect(where, "header", {**header, "tags": list(header["tags"])}, state.header)
    actual_records, expected_records = _records_of(actual), _expected_records(state)
    for name in actual_records:
        _expect(where, name, actual_records[name], expected_records[name])


def _expect(where: str, field: str, engine: object, model: object) -> None:
    if engine != model:
        _differs(where, field, f"the engine has {engine!r}, the model {model!r}")


def _differs(where: str, field: str, detail: str) -> None:
    raise AssertionError(f"{where}: {field} differs from the reference model: {detail}")


def _first_difference(engine: list[bytes], model: list[bytes]) -> str:
    for index, (mine, theirs) in enumerate(zip(engine, model, strict=False)):
        if mine != theirs:
            return f"message {index} is {mine!r} in the engine, {theirs!r} in the model"
    return f"the engine has {len(engine)} messages, the model {len(model)}"


def _plain(record: Any) -> dict[str, Any]:
    """A record struct as a dict of every field, tuples as lists."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in ((name, getattr(record, name)) for name in record.__struct_fields__)
    }


def _records_of(state: Session) -> dict[str, Any]:
    return {
        "spawn": None if state.spawn is None else _plain(state.spawn),
        "children": [_plain(child) for child in state.children],
        "task_list": None if state.task_list is None else [_plain(task) for task in state.task_list],
        "question": None if state.pending_question is None else _plain(state.pending_question),
        "compactions": [_plain(record) for record in state.compactions],
    }


def _expected_records(state: ModelState) -> dict[str, Any]:
    return {
        "spawn": state.spawn,
        "children": state.children,
        "task_list": state.task_list,
        "question": state.question,
        "compactions": state.compactions,
    }


def _pick(ids: list[str], index: int) -> str:
    return ids[index % len(ids)]


def _position(fraction: float, length: int) -> int:
    return min(length, int(fraction * (length + 1)))


def run_commands(store: Transcripts, commands: Iterable[Command], *, check_each: bool = True) -> ReferenceModel:
    """Apply ``commands`` to ``store`` and to a fresh model; after each (if
    ``check_each``), the two must agree. Commands the engine refuses (a no-op
    rewrite, a fork point that splits a tool group) must be refused by the
    model too, and change nothing."""
    model = ReferenceModel()
    ids: list[str] = []
    for command in commands:
        if isinstance(command, Create):
            session_id = store.create(title=command.title)
            model.create(session_id, command.title)
            ids.append(session_id)
        elif isinstance(command, Append):
            session_id = _pick(ids, command.session)
            assert store.append(session_id, *command.messages, usage=command.usage) == model.append(
                session_id, list(command.messages), command.usage
            )
        elif isinstance(command, SetTitle):
            session_id = _pick(ids, command.session)
            store.set_title(session_id, command.title)
            model.set_title(session_id, command.title)
        elif isinstance(command, Rewrite):
            session_id = _pick(ids, command.session)
            length = len(model.state(session_id).messages)
            start = _position(command.start, length)
            end = max(start, _position(command.end, length))
            try:
                expected = model.rewrite(session_id, start, end, list(command.replacement))
            except ValueError:
                try:
                    store.rewrite(session_id, start, end, command.replacement, command.reason)
                except (InvalidRewriteRange, NoOpRewrite, InvalidTranscriptShape):
                    continue
                raise AssertionError(f"the engine accepted a rewrite the model refuses: {command}") from None
            assert store.rewrite(session_id, start, end, command.replacement, command.reason).revision == expected
        elif isinstance(command, Restore):
            session_id = _pick(ids, command.session)
            history = model.sessions[session_id].versions
            target = history[min(len(history) - 1, int(command.version * len(history)))].revision
            try:
                expected = model.restore(session_id, target)
            except ValueError:
                try:
                    store.restore(session_id, target)
                except NoOpRewrite:
                    continue
                raise AssertionError(f"the engine accepted a restore the model refuses: {command}") from None
            assert store.restore(session_id, target).revision == expected
        elif isinstance(command, Fork):
            ids.append(_fork(store, model, _pick(ids, command.session), command))
        if check_each:
            check_against_model(store, model, past=False)
    return model


def _fork(store: Transcripts, model: ReferenceModel, source: str, command: Fork) -> str:
    messages = model.state(source).messages
    if command.kind == "fork" or not messages:
        child = store.fork(source)
        model.fork(source, child)
        return child
    if command.kind == "fork_at":
        index = _position(command.index, len(messages))
        while 0 < index < len(messages) and messages[index - 1].tool_uses:
            index -= 1  # the engine refuses to split a tool group; step back to a boundary
        child = store.fork_at(source, index)
        model.fork(source, child, index)
        return child
    index = min(len(messages) - 1, _position(command.index, len(messages)))
    original = messages[index]
    if original.role == "tool_results" or (index and messages[index - 1].tool_uses):
        # Only tool results may follow tool uses: a text replacement must be refused.
        replacement = Message(role="user", blocks=(Text(text=command.replacement_text),))
        try:
            store.fork_replacing(source, index, replacement)
        except (InvalidForkPoint, InvalidTranscriptShape, ValueError):
            child = store.fork(source)
            model.fork(source, child)
            return child
        raise AssertionError("the engine accepted a replacement that breaks tool pairing")
    replacement = Message(role=original.role, blocks=(Text(text=command.replacement_text),))
    child = store.fork_replacing(source, index, replacement)
    model.fork(source, child, index, replacement)
    return child
