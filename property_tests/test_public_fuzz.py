"""Fuzz of the public API and of realtime ingestion with hostile values.

Every call either succeeds or raises one of the engine's own errors (an
``EngineError``); anything else (a ``TypeError``, a ``UnicodeEncodeError``, a
``RecursionError``, ...) fails the test. A refused call changes nothing a
caller can observe; what a call accepted replays from the log (``verify``)
and reads back equal from a cold reopen. Ingestion also keeps its documented
contract: no event raises, a refused event (``rejected``, ``ignored``,
``duplicate``) stores nothing, and a redelivered batch stores nothing.

Strategies draw *recipes* (``Build``, ``Special``, ``Sid``, ...) that the test
body turns into values: constructors then run inside the test, where their
errors are checked, and values nested 10,000 levels deep or megabytes long
never reach Hypothesis' printer.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from engine import (
    EMPTY_REVISION,
    EngineError,
    Image,
    InvalidArgument,
    Message,
    Reason,
    Reasoning,
    ReplaceBlock,
    SessionNotFound,
    StorageUnavailable,
    Text,
    ToolResult,
    ToolUse,
    Transcript,
    Transcripts,
    Usage,
)
from engine import realtime as rt
from engine.store import open_backend
from engine.testing.strategies import messages, texts, tool_exchanges, usages
from engine.testing.traces import assistant_audio
from tests.recordings import RECORDINGS

# -- values nobody should send -------------------------------------------------------

DEPTH = 10_000
MIB = 1 << 20


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


DEEP_LIST = _nested_list(DEPTH)
DEEP_DICT = _nested_dict(DEPTH)
DEEP_JSON = '{"a":' * DEPTH + "1" + "}" * DEPTH  # valid JSON text, 10,000 objects deep
DEEP_ARRAY_JSON = "[" * DEPTH + "]" * DEPTH
HUGE = "x" * (3 * MIB)  # built once: a few MB, reused by reference
SURROGATES = ("\ud800", "a\udfffz", "\udc80", "ok\ud83d")


@dataclass(frozen=True)
class Special:
    """A value too big or too deep to draw (or print): made in the test body."""

    name: str

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def make(self) -> Any:
        return _SPECIALS[self.name]()


def _event_with(extra: Any) -> dict[str, Any]:
    return {"type": "conversation.item.deleted", "event_id": "ev_special", "item_id": "item_x", "extra": extra}


_SPECIALS: dict[str, Callable[[], Any]] = {
    "deep list": lambda: DEEP_LIST,
    "deep dict": lambda: DEEP_DICT,
    "deep JSON text": lambda: DEEP_JSON,
    "deep JSON array text": lambda: DEEP_ARRAY_JSON,
    "3 MiB str": lambda: HUGE,
    "3 MiB bytes": lambda: HUGE.encode(),
    "3 MiB str with a surrogate": lambda: HUGE + "\ud800",
    # Raw realtime events over the 1 MiB limit, in every input form.
    "huge event dict": lambda: _event_with(HUGE[: MIB + 10]),
    "huge event str": lambda: json.dumps(_event_with(HUGE[: MIB + 10])),
    "huge event bytes": lambda: json.dumps(_event_with(HUGE[: MIB + 10])).encode(),
    "huge event bytearray": lambda: bytearray(json.dumps(_event_with(HUGE[: MIB + 10])).encode()),
    "huge event memoryview": lambda: memoryview(json.dumps(_event_with(HUGE[: MIB + 10])).encode()),
    # Just under the limit: accepted or refused, never an untyped error.
    "big event dict": lambda: _event_with(HUGE[: MIB - 200]),
    "big event str": lambda: json.dumps(_event_with(HUGE[: MIB - 200])),
    # Nested 10,000 levels deep, in every input form.
    "deep event dict": lambda: _event_with(DEEP_LIST),
    "deep event dict of dicts": lambda: _event_with(DEEP_DICT),
    "deep event str": lambda: '{"type":"conversation.item.deleted","event_id":"e","item_id":"i","x":' + DEEP_JSON + "}",
    "deep event bytes": lambda: ('{"type":"response.done","event_id":"e","x":' + DEEP_ARRAY_JSON + "}").encode(),
}

# -- recipes ----------------------------------------------------------------------------


def shown(value: Any, width: int = 300) -> str:
    """A repr for messages that never fails (a built value may hold one with none)."""
    try:
        text = repr(value)
    except Exception:
        return f"<a {type(value).__name__} without a repr>"
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class Build:
    """Call ``target`` with ``args``/``kwargs`` (themselves built first)."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = [shown(a) for a in self.args] + [f"{k}={shown(v)}" for k, v in self.kwargs.items()]
        return f"{self.target}({', '.join(parts)})"


_CANONICAL_CLASSES: dict[str, type[Any]] = {cls.__name__: cls for cls in rt.RealtimeEvent.__args__}

TARGETS: dict[str, Callable[..., Any]] = {
    "Text": Text,
    "Transcript": Transcript,
    "Reasoning": Reasoning,
    "ToolUse": ToolUse,
    "Image": Image,
    "ToolResult": ToolResult,
    "ToolResult.of": ToolResult.of,
    "Message": Message,
    "Message.user": Message.user,
    "Message.assistant": Message.assistant,
    "Message.system": Message.system,
    "Message.tool_results": Message.tool_results,
    "Usage": Usage,
    "ReplaceBlock": ReplaceBlock,
    "Reason": Reason,
    "Reason.of": Reason.of,
    **{f"rt.{name}": cls for name, cls in _CANONICAL_CLASSES.items()},
}


@dataclass(frozen=True)
class Sid:
    """The ``index``-th session of the store (an unknown id past the end)."""

    index: int


@dataclass(frozen=True)
class Rev:
    """A revision session ``session`` reached (its ``which``-th event's)."""

    session: int
    which: int


@dataclass(frozen=True)
class Now:
    """An aware time ``seconds`` from now."""

    seconds: int


@dataclass(frozen=True)
class Replay:
    """Events ``start`` to ``end`` of a recorded call (``ga-transcribed-call``), sent as ``form``."""

    start: int
    end: int
    form: str


@dataclass(frozen=True)
class FileName:
    """A SQLite file of this name, in a temporary directory."""

    name: str


@dataclass(frozen=True)
class Mutated:
    """Event ``index`` of the recordings' pool, changed by ``mutations``, sent as ``form``."""

    index: int
    mutations: tuple[Mutation, ...]
    form: str


@dataclass(frozen=True)
class Mutation:
    """Walk ``path`` into an event (an index picks a key or an element), then ``action``."""

    path: tuple[int, ...]
    action: str
    value: Any = None


@dataclass
class World:
    """What a recipe is resolved against."""

    store: Transcripts
    sids: list[str]


def build(recipe: Any, world: World | None = None) -> Any:
    """The value a recipe means; constructors run here (their errors propagate)."""
    if isinstance(recipe, Special):
        return recipe.make()
    if isinstance(recipe, Build):
        args = [build(arg, world) for arg in recipe.args]
        kwargs = {key: build(value, world) for key, value in recipe.kwargs.items()}
        return TARGETS[recipe.target](*args, **kwargs)
    if isinstance(recipe, Mutated):
        return _mutated(recipe, world)
    if isinstance(recipe, Replay):
        events = RECORDINGS["ga-transcribed-call"].events[recipe.start : recipe.end]
        return [_in_form(copy.deepcopy(event), recipe.form) for event in events]
    if isinstance(recipe, Sid):
        if world is not None and recipe.index < len(world.sids):
            return world.sids[recipe.index]
        return f"no-such-session-{recipe.index}"
    if isinstance(recipe, Rev):
        return _revision(recipe, world)
    if isinstance(recipe, Now):
        return datetime.now(UTC) + timedelta(seconds=recipe.seconds)
    if type(recipe) is list:
        return [build(item, world) for item in recipe]
    if type(recipe) is tuple:
        return tuple(build(item, world) for item in recipe)
    if type(recipe) is dict:
        return {key: build(value, world) for key, value in recipe.items()}
    return recipe


def _revision(recipe: Rev, world: World | None) -> str:
    if world is None or recipe.session >= len(world.sids):
        return EMPTY_REVISION
    try:
        history = world.store.history(world.sids[recipe.session])
    except EngineError:
        return EMPTY_REVISION
    return history[recipe.which % len(history)].revision


def _seeded_history() -> list[dict[str, Any]]:
    """A client re-seeding a conversation with a tool exchange (typed items
    only, no response), then a spoken reply: items written whole, each
    announced after its predecessor."""

    def added(event_id: str, previous: str | None, item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "conversation.item.added", "event_id": event_id, "previous_item_id": previous, "item": item}

    def message(item_id: str, role: str, text: str) -> dict[str, Any]:
        kind = "input_text" if role != "assistant" else "output_text"
        return {
            "id": item_id,
            "type": "message",
            "role": role,
            "status": "completed",
            "content": [{"type": kind, "text": text}],
        }

    return [
        {
            "type": "session.created",
            "event_id": "h0",
            "session": {"id": "sess_h", "audio": {"input": {"transcription": None}}},
        },
        added("h1", None, message("s1", "system", "Be brief.")),
        added("h2", "s1", message("u1", "user", "Weather in Oslo?")),
        added("h3", "u1", message("a1", "assistant", "Let me check.")),
        added(
            "h4",
            "a1",
            {
                "id": "f1",
                "type": "function_call",
                "status": "completed",
                "call_id": "c1",
                "name": "weather",
                "arguments": '{"city": "Oslo"}',
            },
        ),
        added("h5", "f1", {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "rain"}),
        added("h6", "o1", message("a2", "assistant", "Rain after 15:00.")),
        *assistant_audio("r_h", "a3", "a2", ["Anything ", "else?"]),
    ]


STREAMS: dict[str, list[dict[str, Any]]] = {
    **{name: recording.events for name, recording in RECORDINGS.items()},
    "client-seeded-history": _seeded_history(),
}
POOL: list[dict[str, Any]] = [event for name in sorted(STREAMS) for event in STREAMS[name]]


def _mutated(recipe: Mutated, world: World | None) -> Any:
    event = copy.deepcopy(POOL[recipe.index % len(POOL)])
    for mutation in recipe.mutations:
        event = _mutate(event, mutation, world)
    return _in_form(event, recipe.form)


def _in_form(event: Any, form: str) -> Any:
    """``event`` as a dict, or as JSON text in one of the forms ingest takes (a
    value JSON cannot write, such as one nested too deep, stays a dict)."""
    if form == "dict":
        return event
    try:
        text = json.dumps(event, ensure_ascii=form == "str (JSON escapes)", default=repr, skipkeys=True)
    except (RecursionError, ValueError, TypeError):
        return event
    if form.startswith("str"):
        return text
    data = text.encode("utf-8", "surrogatepass")
    return {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[form]


def _mutate(event: Any, mutation: Mutation, world: World | None) -> Any:
    """``event`` with the value at ``mutation.path`` changed (in place below the root)."""
    parent: Any = None
    key: Any = None
    node = event
    for step in mutation.path:
        if isinstance(node, dict) and node:
            keys = list(node)
            parent, key = node, keys[step % len(keys)]
        elif isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    new = _changed(node, mutation, world)
    if parent is None:
        return new if new is not _DROP else {}
    if new is _DROP:
        del parent[key]
    else:
        parent[key] = new
    return event


_DROP = object()


def _changed(value: Any, mutation: Mutation, world: World | None) -> Any:
    action = mutation.action
    if action == "drop":
        return _DROP
    if action == "replace":
        return build(mutation.value, world)
    if action == "surrogate":
        return value + "\ud800" if isinstance(value, str) else "\udfff"
    if action == "nul":
        return value + "\x00" if isinstance(value, str) else "\x00"
    if action == "blank":
        return "" if isinstance(value, str) else " "
    # "retype": the same meaning in another JSON type
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


# -- strategies ----------------------------------------------------------------------


def specials(*names: str) -> st.SearchStrategy[Special]:
    return st.sampled_from([Special(name) for name in names])


odd_text = st.one_of(
    texts(12),
    st.sampled_from(SURROGATES),
    st.builds(lambda a, s, b: a + s + b, texts(4), st.sampled_from(SURROGATES), texts(4)),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\u202e", "\ufeff", "\U0001f4a5", "\r\n", "sha256:" + "0" * 64]),
    st.text(max_size=8),
)
big_ints = st.sampled_from([2**63 - 1, 2**63, 2**64, 2**70, -(2**63) - 1, -(2**70), 10**30])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.integers(-(2**70), 2**70),
    big_ints,
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), -0.0]),
    odd_text,
    st.binary(max_size=8),
    st.builds(bytearray, st.binary(max_size=4)),
    st.builds(object),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.builds(Now, st.integers(-100, 100)),
)
keys = st.one_of(odd_text, st.integers(), st.none(), st.booleans(), st.floats(), st.tuples(st.integers()))
SPECIAL_VALUES = specials(
    "deep list", "deep dict", "deep JSON text", "3 MiB str", "3 MiB bytes", "3 MiB str with a surrogate"
)
_nested: st.SearchStrategy[Any] = st.recursive(
    st.one_of(scalars, SPECIAL_VALUES),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
        st.frozensets(st.integers(), max_size=2),
    ),
    max_leaves=6,
)
# Values nested 10,000 deep are cheap to send and break what recurses: a third of the time.
hostile: st.SearchStrategy[Any] = st.one_of(_nested, _nested, specials("deep list", "deep dict"))
# What a JSON document may hold, with the values JSON (or the store) cannot keep.
json_like: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        big_ints,
        st.floats(),
        odd_text,
        specials("deep list", "deep dict"),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)


def arg(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes a hostile one."""
    return st.one_of(valid, valid, hostile)


ids = st.sampled_from(["call_1", "call_2", "a", "msg_1"]) | odd_text
tool_arguments = st.one_of(
    st.sampled_from(["{}", '{"q": "x"}', "[1, 2]", "{", "not json", '{"a": "\\ud800"}', '"\\udfff"', "1e999999"]),
    specials("deep JSON text", "deep JSON array text"),
    odd_text,
)
media_types = st.sampled_from(["image/png", "image/jpeg", ""]) | odd_text
block_fields: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "Text": {"text": odd_text},
    "Transcript": {"text": odd_text, "truncated_at_ms": st.none() | st.integers(0, 10**6)},
    "Reasoning": {"text": odd_text, "signature": st.none() | odd_text},
    "ToolUse": {"id": ids, "name": st.sampled_from(["search", "f"]) | odd_text, "arguments": tool_arguments},
    "Image": {"media_type": media_types, "data": st.none() | st.binary(max_size=8), "ref": st.none() | odd_text},
}
REQUIRED = {
    "Text": {"text"},
    "Transcript": {"text"},
    "Reasoning": {"text"},
    "ToolUse": {"id", "name"},
    "Image": {"media_type"},
    "ToolResult": {"tool_use_id"},
}


@st.composite
def block_recipes(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("Text", "Transcript", "Reasoning", "ToolUse", "Image", "ToolResult")
) -> Build:
    kind = draw(st.sampled_from(kinds))
    if kind == "ToolResult":
        fields: dict[str, st.SearchStrategy[Any]] = {
            "tool_use_id": ids,
            "content": st.lists(block_recipes(("Text", "Image")), max_size=2).map(tuple) | hostile,
            "is_error": st.booleans(),
        }
    else:
        fields = block_fields[kind]
    kwargs = {}
    for name, valid in fields.items():
        if name in REQUIRED[kind] or draw(st.booleans()):
            kwargs[name] = draw(arg(valid))
    return Build(kind, (), kwargs)


roles = st.sampled_from(["user", "assistant", "system", "tool_results"])
any_blocks = st.lists(block_recipes(), max_size=3).map(tuple)
content_items = st.one_of(block_recipes(), odd_text, hostile)
maybe_ids = st.none() | odd_text | hostile


def _content_call(target: str) -> st.SearchStrategy[Build]:
    return st.builds(
        lambda items, kw: Build(target, tuple(items), kw),
        st.lists(content_items, max_size=3),
        st.fixed_dictionaries({}, optional={"id": maybe_ids, "provider_item_id": maybe_ids}),
    )


message_recipes = st.one_of(
    st.builds(
        lambda kw: Build("Message", (), kw),
        st.fixed_dictionaries(
            {"role": arg(roles)},
            optional={
                "blocks": arg(any_blocks),
                "id": maybe_ids,
                "provider_item_id": maybe_ids,
                "incomplete": arg(st.booleans()),
            },
        ),
    ),
    _content_call("Message.user"),
    _content_call("Message.assistant"),
    st.builds(
        lambda text, kw: Build("Message.system", (text,), kw),
        arg(odd_text),
        st.fixed_dictionaries({}, optional={"id": maybe_ids}),
    ),
    st.builds(
        lambda results, kw: Build("Message.tool_results", tuple(results), kw),
        st.lists(arg(block_recipes(("ToolResult",))), max_size=2),
        st.fixed_dictionaries({}, optional={"id": maybe_ids}),
    ),
)
usage_recipes = st.builds(
    lambda kw: Build("Usage", (), kw),
    st.fixed_dictionaries(
        {},
        optional={
            name: arg(st.integers(0, 10**6) | big_ints.filter(lambda n: n > 0))
            for name in ("input", "output", "cache_read", "cache_write", "reasoning")
        },
    ),
)
other_recipes = st.one_of(
    st.builds(
        lambda i, c, e: Build("ToolResult.of", (i, c), e),
        arg(ids),
        arg(odd_text | block_recipes(("Text",))),
        st.fixed_dictionaries({}, optional={"is_error": arg(st.booleans())}),
    ),
    st.builds(
        lambda i, b: Build("ReplaceBlock", (), {"index": i, "block": b}), arg(st.integers(-1, 3)), arg(block_recipes())
    ),
    st.builds(
        lambda k, n: Build("Reason", (), {"kind": k, "note": n}),
        arg(st.sampled_from(["edit", "x_1"])),
        st.none() | odd_text | hostile,
    ),
    st.builds(
        lambda k, n: Build("Reason.of", (k, n)),
        arg(st.sampled_from(["edit", "compaction"])),
        st.none() | odd_text | hostile,
    ),
)
content_recipes = st.one_of(block_recipes(), message_recipes, usage_recipes, other_recipes)

# Canonical realtime events with hostile fields (Structs are not checked when built).
_ID_FIELDS = ("event_id", "item_id", "response_id", "previous_item_id", "call_id")
rt_ids = st.sampled_from(["i1", "i2", "r1", "c1", "e1", "e2", "e3", rt.UNKNOWN]) | odd_text
field_values: dict[str, st.SearchStrategy[Any]] = {
    "content_index": st.integers(0, 3) | big_ints,
    "audio_end_ms": st.none() | st.integers(0, 5000) | big_ints,
    "role": st.sampled_from(["user", "assistant", "system"]),
    "status": st.sampled_from(["completed", "cancelled", "incomplete", "failed"]),
    "lane": st.sampled_from(["text", "transcript"]),
    "usage": st.none() | usage_recipes,
    "data": st.none() | st.binary(max_size=8),
    "output_item_ids": st.none() | st.lists(rt_ids, max_size=2).map(tuple),
    "out_of_band": st.booleans(),
    "audio": st.booleans(),
    "complete": st.booleans(),
    "new_connection": st.booleans(),
    "input_transcription": st.none() | st.booleans(),
}


small_ids = st.sampled_from(["i1", "i2", "i3", "r1", "r2", "c1"])
words = st.sampled_from(["", "hi", "yes ", "{}"])
plausible_values: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.none() | st.builds(lambda n: f"e{n}", st.integers(0, 30)),
    "previous_item_id": st.sampled_from([None, rt.UNKNOWN, "i1", "i2", "i3"]),
    "content_index": st.integers(0, 2),
    "audio_end_ms": st.none() | st.integers(0, 5000),
    "text": st.none() | st.sampled_from(["", "hi", "yes"]),
    "media_type": st.just("image/png"),
    "ref": st.none() | st.just("https://example.com/a.png"),
}


@st.composite
def canonical_recipes(draw: st.DrawFn, plausible: bool = False) -> Build:
    """A canonical event: with hostile fields, or (``plausible``) with valid
    ones over a few ids, so sequences of them reach deep into the reducer."""
    name = draw(st.sampled_from(sorted(_CANONICAL_CLASSES)))
    kwargs = {}
    for field_name in _CANONICAL_CLASSES[name].__struct_fields__:
        valid = rt_ids if field_name in _ID_FIELDS else field_values.get(field_name, odd_text)
        if plausible:
            fallback = small_ids if field_name in _ID_FIELDS else field_values.get(field_name, words)
            valid = plausible_values.get(field_name, fallback)
        kwargs[field_name] = draw(valid if plausible else arg(valid))
    return Build(f"rt.{name}", (), kwargs)


junk_events = st.one_of(
    st.sampled_from(
        [
            "",
            "{",
            "null",
            "[]",
            "{}",
            '{"type": 5}',
            b"\xff\xfe",
            b"{not json",
            '{"type": "conversation.item.deleted"}',
            '{"type":"conversation.item.deleted","event_id":"\\ud800","item_id":"x"}',
            '{"type":"conversation.item.input_audio_transcription.completed","event_id":"e9","item_id":"i1",'
            '"transcript":"a\\udc80b"}',
            '{"type":"response.output_text.delta","event_id":"e8","response_id":"r1","item_id":"i1","delta":"\\ud83d"}',
            '{"type":"conversation.item.deleted","event_id":"e7","item_id":"i\\u0000"}',
            '{"type":"conversation.item.truncated","event_id":"e6","item_id":"i1","audio_end_ms":1e400}',
            '{"type":"session.created","event_id":"e5","session":{"audio":{"input":{"transcription":7}}}}',
        ]
    ),
    specials(*[name for name in _SPECIALS if "event" in name]),
    hostile,
)
mutations = st.builds(
    Mutation,
    st.lists(st.integers(0, 50), max_size=5).map(tuple),
    st.sampled_from(["replace", "drop", "surrogate", "nul", "blank", "retype"]),
    json_like | hostile,
)
FORMS = ["dict", "str (JSON escapes)", "str (raw)", "bytes", "bytearray", "memoryview"]
mutated_events = st.builds(
    Mutated, st.integers(0, len(POOL) - 1), st.lists(mutations, max_size=3).map(tuple), st.sampled_from(FORMS)
)
raw_events = st.one_of(
    mutated_events, junk_events, st.builds(Mutated, st.integers(0, len(POOL) - 1), st.just(()), st.sampled_from(FORMS))
)
any_events = st.one_of(raw_events, canonical_recipes(), canonical_recipes(plausible=True))

# -- checks -------------------------------------------------------------------------


def examples(factor: int) -> int:
    """``factor`` times the profile's examples: each example here is cheap, and
    bugs hide in rare combinations (``ci`` stays well under a minute)."""
    return settings().max_examples * factor


def attempt(what: str, action: Callable[[], Any]) -> Any:
    """``action()``'s result, or the engine error it raised. Any other exception
    propagates, named: it is what this file hunts."""
    note(f"call: {what}")
    try:
        return action()
    except EngineError as exc:
        return exc
    except Exception as exc:
        exc.add_note(f"untyped {type(exc).__name__} from {what}: every engine error derives from EngineError")
        raise


def observe(store: Transcripts) -> dict[str, Any]:
    """Everything a caller can read of every session."""
    seen: dict[str, Any] = {}
    for info in store.sessions():
        row = (info.title, info.message_count, info.revision, info.version)
        try:
            s = store.get(info.id)
        except EngineError as exc:
            seen[info.id] = (row, f"{type(exc).__name__}: {exc}")
            continue
        seen[info.id] = (row, s.version, s.revision, list(s.messages), s.usage, dict(s.metadata), s.title, s.lineage)
    return seen


def audit(store: Transcripts, reopen: Callable[[], Transcripts]) -> None:
    """Every session replays from its log to what ``get`` shows, and a cold
    reopen reads back exactly the same."""
    warm = observe(store)
    for sid, seen in warm.items():
        try:
            verified = store.verify(sid)
        except EngineError as exc:
            raise AssertionError(f"session {sid!r} no longer loads after the calls it accepted: {exc!r}") from exc
        assert seen[1:4] == (verified.version, verified.revision, list(verified.messages)), sid
    cold = reopen()
    try:
        assert observe(cold) == warm
    finally:
        cold.close()


@contextmanager
def opened(backend: str) -> Iterator[tuple[Transcripts, Callable[[], Transcripts]]]:
    """A store on ``backend`` and a way to reopen it cold."""
    if backend == "memory":
        memory = open_backend(None)
        store = Transcripts(memory)
        try:
            yield store, lambda: Transcripts(memory)
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fuzz.db")
        store = Transcripts.open(path)
        try:
            yield store, lambda: Transcripts.open(path)
        finally:
            store.close()


def seed(store: Transcripts) -> list[str]:
    """Three sessions: one with a tool exchange and metadata, its fork, an empty one."""
    first = store.create(title="seed", metadata={"k": [1, {"v": None}]})
    store.append(
        first,
        Message.user("Weather in Oslo?"),
        Message.assistant("Checking.", ToolUse(id="call_1", name="weather", arguments='{"city": "Oslo"}')),
        Message.tool_results(ToolResult.of("call_1", "rain")),
        usage=Usage(input=5, output=3),
    )
    store.append(first, Message.assistant("Rain after 15:00."))
    fork = store.fork(first)
    return [first, fork, store.create()]


REFUSED = {"rejected", "ignored", "duplicate"}
STATUSES = {"materialised", "staged", "discarded"} | REFUSED


def check_outcomes(store: Transcripts, sid: str, outcomes: list[Any], count: int, before: dict[str, Any]) -> None:
    """The documented ingest contract, for outcomes of ``count`` events."""
    assert len(outcomes) == count
    head = store.get(sid).version
    for outcome in outcomes:
        assert outcome.status in STATUSES, outcome
        assert outcome.version == head, (outcome, head)  # "the session's version after it"
        if outcome.status in REFUSED:
            assert outcome.reason, outcome
            assert not outcome.messages and not outcome.out_of_band, outcome
    if all(outcome.status in REFUSED for outcome in outcomes):
        assert observe(store) == before, "a refused event changed the store"


# -- content --------------------------------------------------------------------------


def exercise(value: Any) -> None:
    """Every public view of a built value: none may raise untyped errors."""
    if isinstance(value, Message):
        attempt("Message views", lambda: (value.text, value.tool_uses, value.canonical_bytes(), value.digest))
    if isinstance(value, ToolUse):
        attempt("ToolUse.parsed_arguments()", value.parsed_arguments)
    if isinstance(value, Usage):
        attempt("Usage + Usage", lambda: (value + value).total)


def as_messages(value: Any) -> list[Any]:
    """Messages that hold ``value`` (for a block: one per role that may hold it)."""
    if isinstance(value, Message):
        return [value]
    if isinstance(value, ToolResult):
        return [Build("Message.tool_results", (value,))]
    if isinstance(value, (Text, Transcript, Reasoning, ToolUse, Image)):
        return [Build("Message", (), {"role": role, "blocks": (value,)}) for role in ("user", "assistant", "system")]
    return []


@settings(max_examples=examples(16))
@given(recipe=content_recipes)
def test_content_is_built_or_refused_with_an_engine_error(recipe: Build) -> None:
    built = attempt(shown(recipe), lambda: build(recipe))
    if isinstance(built, EngineError):
        assert isinstance(built, InvalidArgument), built  # content errors are argument errors
        return
    exercise(built)
    for message in as_messages(built):
        made = attempt(f"wrap {shown(message)}", lambda m=message: build(m))
        if not isinstance(made, EngineError):
            exercise(made)


@settings(max_examples=examples(4))
@given(
    backend=st.sampled_from(["memory", "sqlite"]),
    recipes=st.lists(st.one_of(message_recipes, block_recipes(), messages()), min_size=1, max_size=4),
)
def test_accepted_content_reads_back_equal_after_a_cold_reopen(backend: str, recipes: list[Any]) -> None:
    with opened(backend) as (store, reopen):
        sid = store.create()
        accepted: list[Message] = []
        for recipe in recipes:
            for candidate in as_messages(recipe if isinstance(recipe, Message) else build_or_none(recipe)):
                message = build_or_none(candidate)
                if not isinstance(message, Message):
                    continue
                before = observe(store)
                result = attempt(f"append({shown(message)})", lambda m=message: store.append(sid, m))
                if isinstance(result, EngineError):
                    assert observe(store) == before, "a refused append changed the store"
                    continue
                accepted.append(message)
        stored = list(store.get(sid).messages)
        assert len(stored) == len(accepted)
        for original, kept in zip(accepted, stored, strict=True):
            assert msgspec.structs.replace(kept, id=original.id) == original
        audit(store, reopen)


def build_or_none(recipe: Any) -> Any:
    built = attempt(shown(recipe), lambda: build(recipe))
    return None if isinstance(built, EngineError) else built


# -- every public method, with hostile arguments --------------------------------------

sids = arg(st.builds(Sid, st.integers(0, 4)))
actors = st.none() | odd_text | hostile
message_args = st.one_of(messages(), message_recipes, hostile)
revisions = arg(st.builds(Rev, st.integers(0, 3), st.integers(0, 8)) | st.just(EMPTY_REVISION))
versions = arg(st.integers(-2, 12) | big_ints)
at_values = st.one_of(
    st.none(),
    versions,
    revisions,
    st.builds(Now, st.integers(-100, 100)),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
)
metadata = arg(st.dictionaries(texts(8), json_like, max_size=3)) | st.none()
reasons = arg(st.sampled_from(["edit", "compaction", "redaction"])) | other_recipes
indexes = arg(st.integers(-2, 8) | big_ints)
child_ids = st.none() | arg(st.builds(lambda n: f"child-{n}", st.integers(0, 3))) | st.builds(Sid, st.integers(0, 3))
event_batches = st.lists(any_events, max_size=4)
# The start of a recorded call, as it would be delivered again after a reconnect.
replayed = st.builds(Replay, st.integers(0, 2), st.integers(14, 16), st.sampled_from(FORMS))


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        parts = [shown(a) for a in self.args] + [f"{k}={shown(v)}" for k, v in self.kwargs.items()]
        return f"{self.method}({', '.join(parts)})"


def call(method: str, args: st.SearchStrategy[tuple[Any, ...]], **optional: st.SearchStrategy[Any]) -> Any:
    return st.builds(lambda a, kw: Call(method, a, kw), args, st.fixed_dictionaries({}, optional=optional))


def one(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(sids, strategy)


calls = st.one_of(
    call(
        "create",
        st.tuples(),
        title=st.none() | odd_text | hostile,
        metadata=metadata,
        actor=actors,
        session_id=st.none() | odd_text | hostile | st.builds(Sid, st.integers(0, 3)),
    ),
    call(
        "append",
        st.builds(lambda s, m: (s, *m), sids, st.lists(message_args, max_size=3) | tool_exchanges()),
        expected_revision=revisions,
        usage=st.none() | usages() | usage_recipes | hostile,
        actor=actors,
    ),
    call("set_title", one(st.none() | odd_text | hostile), actor=actors),
    call("update_metadata", one(metadata), remove=arg(st.lists(texts(4), max_size=2)), actor=actors),
    call("record_usage", one(arg(usages() | usage_recipes)), response_id=st.none() | odd_text | hostile, actor=actors),
    call(
        "rewrite",
        st.tuples(sids, indexes, indexes),
        replacement=arg(st.lists(message_args, max_size=2)) | message_args,
        reason=reasons,
        note=st.none() | odd_text | hostile,
        actor=actors,
        expected_revision=revisions,
    ),
    call(
        "restore",
        one(revisions),
        reason=reasons,
        note=st.none() | odd_text | hostile,
        actor=actors,
        expected_revision=revisions,
    ),
    call("fork", st.tuples(sids), actor=actors, child_id=child_ids),
    call("fork_at", one(indexes), actor=actors, child_id=child_ids),
    call(
        "fork_replacing", st.tuples(sids, indexes, arg(message_args | other_recipes)), actor=actors, child_id=child_ids
    ),
    call("get", st.tuples(sids), at=at_values),
    call("get", st.tuples(sids, at_values)),
    call("history", st.tuples(sids)),
    call("revisions", st.tuples(sids)),
    call("lineage", st.tuples(sids)),
    call("verify", st.tuples(sids)),
    call("pending", st.tuples(sids)),
    call("out_of_band", st.tuples(sids)),
    call("sessions", st.tuples()),
    call("diff", st.tuples(sids, at_values, at_values)),
    call("revision_messages", one(revisions)),
    call("ingest", one(any_events), provider=arg(st.sampled_from(["openai", None])), actor=actors),
    call("ingest_many", one(arg(event_batches)), provider=arg(st.sampled_from(["openai", None])), actor=actors),
    call("ingest_many", st.tuples(st.just(Sid(0)), replayed), provider=st.just("openai")),
    call("ingest_many", st.tuples(st.just(Sid(0)), replayed), provider=st.just("openai")),
    call("resolve_pending", st.tuples(sids), policy=arg(st.sampled_from(["place", "drop"])), actor=actors),
)


# One bug at a time: shrinking each of several distinct bugs would take minutes.
@settings(max_examples=examples(6), report_multiple_bugs=False)
@given(backend=st.sampled_from(["memory", "sqlite"]), script=st.lists(calls, min_size=1, max_size=6))
def test_every_public_method_raises_only_engine_errors(backend: str, script: list[Call]) -> None:
    with opened(backend) as (store, reopen):
        world = World(store, seed(store))
        for step in script:
            world.sids = [info.id for info in store.sessions()]
            before = observe(store)
            args = attempt(f"arguments of {step!r}", lambda s=step: build(s.args, world))
            kwargs = attempt(f"keyword arguments of {step!r}", lambda s=step: build(s.kwargs, world))
            if isinstance(args, EngineError) or isinstance(kwargs, EngineError):
                continue  # content refused while being built: the content tests cover it
            method = getattr(store, step.method)
            result = attempt(repr(step), lambda m=method, a=args, k=kwargs: m(*a, **k))
            if isinstance(result, EngineError):
                assert observe(store) == before, f"{step!r} raised {result!r} but changed the store"
            ingesting = step.method in ("ingest", "ingest_many")
            if ingesting and isinstance(result, EngineError):
                # Only wrong arguments raise; events are refused by outcome.
                assert isinstance(result, (InvalidArgument, SessionNotFound)), result
                arguments_ok = (
                    args[0] in world.sids
                    and kwargs.get("provider") == "openai"
                    and valid_actor(kwargs.get("actor"))
                    and (step.method == "ingest" or type(args[1]) is list)
                )
                assert not arguments_ok, f"{step!r} raised {result!r}: no event raises"
            elif ingesting and args[0] in world.sids:
                outcomes = [result] if step.method == "ingest" else result
                count = 1 if step.method == "ingest" else len(list(args[1]))
                check_outcomes(store, args[0], outcomes, count, before)
        audit(store, reopen)


def valid_actor(actor: object) -> bool:
    if actor is None:
        return True
    if not isinstance(actor, str):
        return False
    try:
        actor.encode()
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=examples(4))
@given(
    target=st.one_of(
        st.none(),
        st.just(":memory:"),
        st.builds(FileName, odd_text),
        hostile,
        st.sampled_from(["", "mysql://x", "postgresql://\ud800@localhost/x", "sqlite://x"]),
    ),
    options=st.fixed_dictionaries(
        {},
        optional={
            "snapshot_interval": arg(st.none() | st.integers(1, 200)),
            "cache_size": arg(st.integers(1, 100)),
            "table_prefix": arg(st.sampled_from(["transcripts", "t2"])),
            "synchronous": arg(st.sampled_from(["full", "normal"])),
            "lock_timeout": arg(st.integers(0, 30)),
        },
    ),
)
def test_open_raises_only_engine_errors(target: Any, options: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        if isinstance(target, FileName):  # kept inside the temporary directory
            target = os.path.join(directory, "db-" + target.name.replace("/", "_"))
        elif isinstance(target, str) and "://" not in target and target not in ("", ":memory:"):
            target = os.path.join(directory, target.replace("/", "_"))
        built = attempt("options", lambda: (build(target), build(options)))
        if isinstance(built, EngineError):
            return
        store = attempt(
            f"Transcripts.open({shown(target)}, **{shown(options)})", lambda: Transcripts.open(built[0], **built[1])
        )
        if isinstance(store, EngineError):
            return
        with store:
            sid = attempt("create", store.create)
            assert isinstance(sid, str), sid
            assert attempt("append", lambda: store.append(sid, Message.user("x"))).startswith("sha256:")
        for method, args in (("get", (sid,)), ("sessions", ()), ("create", ()), ("history", (sid,))):
            closed = attempt(f"{method} on a closed store", lambda m=method, a=args: getattr(store, m)(*a))
            assert isinstance(closed, StorageUnavailable), closed


# -- realtime ingestion ---------------------------------------------------------------


def ingested(store: Transcripts, sid: str, events: list[Any], provider: str | None) -> list[Any]:
    """The outcomes of ``ingest_many``, which raises for no event, typed or not."""
    outcomes = attempt(
        f"ingest_many({sid!r}, {len(events)} events, provider={provider!r})",
        lambda: store.ingest_many(sid, events, provider=provider),
    )
    assert not isinstance(outcomes, EngineError), f"an event made ingest raise {outcomes!r}"
    return list(outcomes)


@settings(max_examples=examples(6))
@given(
    backend=st.sampled_from(["memory", "sqlite"]),
    batch=st.lists(any_events, min_size=1, max_size=5)
    | st.lists(canonical_recipes(plausible=True), min_size=1, max_size=12),
    many=st.booleans(),
)
def test_no_event_raises_and_refused_events_change_nothing(backend: str, batch: list[Any], many: bool) -> None:
    with opened(backend) as (store, reopen):
        sid = store.create()
        world = World(store, [sid])
        events = attempt("building the events", lambda: build(batch, world))
        if isinstance(events, EngineError):
            return  # a canonical event with a refused Usage: the content tests cover it
        canonical = all(isinstance(event, tuple(_CANONICAL_CLASSES.values())) for event in events)
        # Dedupe needs an event id; a raw event without one is rejected, a canonical one may omit it.
        identified = all(getattr(event, "event_id", "") is not None for event in events)
        for provider in ("openai", None) if canonical else ("openai",):
            if many:
                before = observe(store)
                check_outcomes(store, sid, ingested(store, sid, events, provider), len(events), before)
            else:
                for event in events:
                    before = observe(store)
                    check_outcomes(store, sid, ingested(store, sid, [event], provider), 1, before)
            after = observe(store)
            again = ingested(store, sid, events, provider)
            check_outcomes(store, sid, again, len(events), after)
            if identified:
                assert observe(store) == after, "a redelivered batch changed the store"
        if not canonical:
            before = observe(store)
            refused = attempt("ingest_many without provider", lambda: store.ingest_many(sid, events))
            assert isinstance(refused, InvalidArgument), refused
            assert observe(store) == before
        audit(store, reopen)


# Values JSON text can hold, so every input form of an event means the same.
json_safe: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        big_ints,
        st.floats(allow_nan=False, allow_infinity=False),
        odd_text,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=6,
)
json_mutations = st.builds(
    Mutation,
    st.lists(st.integers(0, 50), max_size=5).map(tuple),
    st.sampled_from(["replace", "drop", "surrogate", "nul", "blank", "retype"]),
    json_safe,
)


@settings(max_examples=examples(4))
@given(index=st.integers(0, len(POOL) - 1), changes=st.lists(json_mutations, max_size=3))
def test_every_input_form_of_an_event_gets_the_same_status(index: int, changes: list[Mutation]) -> None:
    """A dict, its JSON text (escaped or raw) and its UTF-8 bytes are one
    event: each is accepted or refused alike (reasons may word it differently)."""
    store = Transcripts.open()
    statuses = {}
    for form in FORMS:
        event = build(Mutated(index, tuple(changes), form))
        sid = store.create()
        [outcome] = ingested(store, sid, [event], "openai")
        statuses[form] = outcome.status
    assert len(set(statuses.values())) == 1, statuses


WRITES: dict[str, Callable[[Transcripts, str], Any]] = {
    "append": lambda store, sid: store.append(sid, Message.user("typed")),
    "set_title": lambda store, sid: store.set_title(sid, "renamed"),
    "update_metadata": lambda store, sid: store.update_metadata(sid, {"k": 1}),
    "record_usage": lambda store, sid: store.record_usage(sid, Usage(input=1)),
    "rewrite": lambda store, sid: store.rewrite(sid, 0, 0, [Message.system("note")]),
}


@settings(max_examples=examples(1))
@given(
    backend=st.sampled_from(["memory", "sqlite"]),
    batch=replayed,
    write=st.sampled_from(sorted(WRITES)),
    many=st.booleans(),
)
def test_redelivery_after_other_writes_reports_the_current_version(
    backend: str, batch: Replay, write: str, many: bool
) -> None:
    """A redelivered event stores nothing, and its outcome's ``version`` is the
    session's version after it, even when other writes came in between."""
    with opened(backend) as (store, reopen):
        sid = store.create()
        events = build(batch)
        check_outcomes(store, sid, ingested(store, sid, events, "openai"), len(events), observe(store))
        WRITES[write](store, sid)
        before = observe(store)
        if many:
            check_outcomes(store, sid, ingested(store, sid, events, "openai"), len(events), before)
        else:
            for event in events:
                check_outcomes(store, sid, ingested(store, sid, [event], "openai"), 1, before)
        assert observe(store) == before, "a redelivered event changed the store"
        audit(store, reopen)


@settings(max_examples=examples(3))
@given(
    backend=st.sampled_from(["memory", "sqlite"]),
    name=st.sampled_from(sorted(STREAMS)),
    start=st.integers(0, 200),
    length=st.integers(1, 60),
    changes=st.lists(st.tuples(st.integers(0, 59), mutations), max_size=6),
    swaps=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=6),
    forms=st.lists(st.sampled_from(FORMS), min_size=1, max_size=3),
)
def test_mutated_recordings_ingest_without_untyped_errors(
    backend: str,
    name: str,
    start: int,
    length: int,
    changes: list[tuple[int, Mutation]],
    swaps: list[tuple[int, int]],
    forms: list[str],
) -> None:
    """Slices of recorded calls, changed and delivered out of order: no event
    raises, and everything above holds."""
    recorded = STREAMS[name]
    start %= len(recorded)
    events = copy.deepcopy(recorded[start : start + length])
    for index, mutation in changes:
        position = index % len(events)
        events[position] = _mutate(events[position], mutation, None)
    for first, second in swaps:  # delivered out of order
        first, second = first % len(events), second % len(events)
        events[first], events[second] = events[second], events[first]
    raw = [_in_form(event, forms[n % len(forms)]) for n, event in enumerate(events)]
    with opened(backend) as (store, reopen):
        sid = store.create()
        before = observe(store)
        check_outcomes(store, sid, ingested(store, sid, raw, "openai"), len(raw), before)
        after = observe(store)
        for event in raw:  # one by one, as a reconnect would redeliver them
            check_outcomes(store, sid, ingested(store, sid, [event], "openai"), 1, after)
        assert observe(store) == after, "a redelivered event changed the store"
        resolved = attempt("resolve_pending", lambda: store.resolve_pending(sid, "place"))
        assert not isinstance(resolved, EngineError), resolved
        audit(store, reopen)
        cold = reopen()
        try:  # dedupe survives a restart
            settled = observe(cold)
            ingested(cold, sid, raw, "openai")
            assert observe(cold) == settled, "events redelivered after a reopen changed the store"
        finally:
            cold.close()
