"""Every input round-trips exactly or is refused with a typed error naming
the field: nothing is converted or taken apart silently (the data-safety
reproductions: metadata values, ``remove=`` given a string, invalid
Unicode)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import pytest

from engine import InvalidArgument, InvalidMessage, Message, Reasoning, Text, ToolUse, Transcript, Transcripts
from tests.conftest import StoreFactory


class Level(IntEnum):
    HIGH = 1


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (b"raw", "metadata['k'] is a bytes"),
        ({1, 2}, "metadata['k'] is a set"),
        ((1, 2), "metadata['k'] is a tuple"),
        (datetime(2026, 1, 1, tzinfo=UTC), "metadata['k'] is a datetime"),
        (float("nan"), "metadata['k'] is nan"),
        (float("inf"), "metadata['k'] is inf"),
        (Level.HIGH, "metadata['k'] is a Level"),
        ({"deep": [1, (2,)]}, "metadata['k']['deep'][1] is a tuple"),
        ("a\ud800b", "metadata['k'] is not valid Unicode"),
    ],
)
def test_metadata_that_would_come_back_different_is_refused(store: Transcripts, value: Any, named: str) -> None:
    with pytest.raises(InvalidArgument, match=named.replace("[", r"\[").replace("]", r"\]")):
        store.create(metadata={"k": value})
    sid = store.create(metadata={"kept": 1})
    with pytest.raises(InvalidArgument):
        store.update_metadata(sid, {"k": value})
    assert store.get(sid).metadata == {"kept": 1}
    assert store.get(sid).version == 1  # nothing was written


def test_metadata_nested_too_deep_is_refused_not_a_recursion_error(store: Transcripts) -> None:
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(InvalidArgument, match="nests deeper than 64 levels"):
        store.create(metadata={"k": deep})


def test_json_metadata_round_trips_exactly(stores: StoreFactory) -> None:
    store = stores.open()
    value = {"n": 2**70, "f": 0.1, "s": "é\u2028\x00", "l": [None, True, {"x": []}], "e": {}}
    sid = store.create(metadata=value)
    value["l"].append("changed by the caller afterwards")  # the store kept its own copy
    assert stores.open().get(sid).metadata == {
        "n": 2**70,
        "f": 0.1,
        "s": "é\u2028\x00",
        "l": [None, True, {"x": []}],
        "e": {},
    }


def test_remove_takes_keys_not_a_string(store: Transcripts) -> None:
    sid = store.create(metadata={"key": 1, "k": 2, "e": 3, "y": 4})
    with pytest.raises(InvalidArgument, match="remove= takes an iterable of keys"):
        store.update_metadata(sid, remove="key")
    assert store.get(sid).metadata == {"key": 1, "k": 2, "e": 3, "y": 4}
    store.update_metadata(sid, remove=["key"])
    assert store.get(sid).metadata == {"k": 2, "e": 3, "y": 4}


@pytest.mark.parametrize(
    "build",
    [
        lambda: Message.user("a\ud800b"),
        lambda: Message.assistant(Transcript(text="\udfff")),
        lambda: Message.assistant(Reasoning(text="ok", signature="\ud800")),
        lambda: Message.assistant(ToolUse(id="t\ud800", name="n")),
        lambda: Message.user(Text(text="ok"), provider_item_id="item\udc00"),
    ],
)
def test_invalid_unicode_is_refused_when_a_message_is_built(build: Any) -> None:
    with pytest.raises(InvalidMessage, match="is not valid Unicode: a lone surrogate"):
        build()


def test_invalid_unicode_in_title_or_actor_is_refused(store: Transcripts) -> None:
    with pytest.raises(InvalidArgument, match="title is not valid Unicode"):
        store.create(title="a\ud800")
    sid = store.create()
    with pytest.raises(InvalidArgument, match="actor is not valid Unicode"):
        store.set_title(sid, "fine", actor="\udc00")
    assert store.get(sid).title is None
