"""Paging ``history()`` and filtering and paging ``sessions()``, on every
backend; expected pages are written from the commands the tests make."""

from __future__ import annotations

import pytest

from engine import InvalidArgument, Message, SessionNotFound, Transcripts
from tests.conftest import StoreFactory


def _session_of_ten_events(store: Transcripts) -> str:
    """Version 1 creates, 2..9 append one message each, 10 sets the title."""
    sid = store.create()
    for number in range(8):
        store.append(sid, Message.user(f"m{number}"))
    store.set_title(sid, "ten")
    return sid


def test_history_pages_forward_and_back(stores: StoreFactory) -> None:
    store = stores.open()
    sid = _session_of_ten_events(store)
    whole = store.history(sid)
    assert [entry.version for entry in whole] == list(range(1, 11))

    def versions(**page: int) -> list[int]:
        return [entry.version for entry in store.history(sid, **page)]

    assert versions(limit=3) == [8, 9, 10]  # the newest
    assert versions(after=0, limit=3) == [1, 2, 3]
    assert versions(after=3, limit=3) == [4, 5, 6]
    assert versions(after=9, limit=3) == [10]
    assert versions(after=10, limit=3) == []
    assert versions(before=8, limit=3) == [5, 6, 7]
    assert versions(before=3, limit=3) == [1, 2]
    assert versions(after=2, before=6) == [3, 4, 5]
    assert versions(after=2, before=9, limit=2) == [7, 8]
    assert versions(after=5, before=5) == []
    # Each entry of a page equals the same entry of the whole history,
    # revision included (the page starts after content events it did not decode).
    for page in (store.history(sid, after=4, limit=3), store.history(sid, limit=1)):
        for entry in page:
            assert entry == whole[entry.version - 1]


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ({"limit": 0}, "limit="),
        ({"limit": True}, "limit="),
        ({"after": -1}, "after="),
        ({"before": "5"}, "before="),
    ],
)
def test_bad_pages_are_refused(stores: StoreFactory, page: dict[str, object], problem: str) -> None:
    store = stores.open()
    sid = _session_of_ten_events(store)
    with pytest.raises(InvalidArgument, match=problem):
        store.history(sid, **page)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ({"after": -1}, r"after= is a feed position \(an int >= 0\), got -1"),
        ({"after": "5"}, r"after= is a feed position \(an int >= 0\), got '5'"),
        ({"limit": 0}, "limit= is 1 to 10,000 entries per page, got 0"),
        ({"limit": 10_001}, "limit= is 1 to 10,000 entries per page, got 10001"),
    ],
)
def test_bad_feed_pages_are_refused_naming_the_value(
    stores: StoreFactory, page: dict[str, object], problem: str
) -> None:
    # A newcomer read "got int" for after=-1: the type, not what was wrong.
    store = stores.open()
    _session_of_ten_events(store)
    with pytest.raises(InvalidArgument, match=problem):
        store.feed(**page)  # type: ignore[arg-type]


def test_sessions_filter_by_title_and_metadata_and_page(stores: StoreFactory) -> None:
    store = stores.open()
    made = [
        store.create(title="Trip to Bergen", metadata={"team": "red", "n": 1}),
        store.create(title="Invoice", metadata={"team": "blue"}),
        store.create(title="bergen again", metadata={"team": "red", "n": 2}),
        store.create(metadata={"team": "red"}),
    ]
    assert [info.id for info in store.sessions()] == made
    assert [info.id for info in store.sessions(title="BERGEN")] == [made[0], made[2]]
    assert [info.id for info in store.sessions(metadata={"team": "red"})] == [made[0], made[2], made[3]]
    assert [info.id for info in store.sessions(metadata={"team": "red", "n": 2})] == [made[2]]
    assert store.sessions(metadata={"missing": None}) == []
    assert store.sessions(metadata={"n": True}) == []  # 1 is not True, as metadata keeps them apart
    assert store.sessions(metadata={"n": 1.0}) == []
    assert [info.id for info in store.sessions(limit=2)] == made[:2]
    assert [info.id for info in store.sessions(after=made[1], limit=2)] == made[2:]
    assert [info.id for info in store.sessions(after=made[0], metadata={"team": "red"}, limit=1)] == [made[2]]
    assert store.sessions(after=made[3]) == []
    with pytest.raises(SessionNotFound):
        store.sessions(after="no-such-session")
    with pytest.raises(InvalidArgument, match="limit="):
        store.sessions(limit=0)
    with pytest.raises(InvalidArgument, match="metadata="):
        store.sessions(metadata=[("team", "red")])  # type: ignore[arg-type]
