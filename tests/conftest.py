"""Backends for the contract suite: memory, a SQLite file, and PostgreSQL when
``ENGINE_TEST_POSTGRES_DSN`` is set (then it must be reachable: a test that
cannot connect fails, it is never skipped)."""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncTranscripts, Transcripts
from engine.store import Backend, open_backend

POSTGRES_DSN = os.environ.get("ENGINE_TEST_POSTGRES_DSN")
BACKENDS = ["memory", "sqlite"] + (["postgres"] if POSTGRES_DSN else [])
# Mutation testing of the pure core narrows the run to some backends.
if os.environ.get("ENGINE_TEST_BACKENDS"):
    BACKENDS = [kind for kind in BACKENDS if kind in os.environ["ENGINE_TEST_BACKENDS"].split(",")]
#: The same backends under the async twin: the contract suite runs on them too.
ASYNC_BACKENDS = [f"{kind}+async" for kind in BACKENDS]


class SyncOverAsync:
    """An ``AsyncTranscripts`` driven from synchronous tests: each method call
    runs the coroutine to completion on an event loop of its own (tests call
    from several threads), so the contract suite runs unchanged against the
    async twin."""

    def __init__(self, store: AsyncTranscripts) -> None:
        self._async = store
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # tests that reach into the store (forged rows) use the one underneath
            return getattr(self._async.sync, name)
        attribute = getattr(self._async, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        return lambda *args, **kwargs: asyncio.run(attribute(*args, **kwargs))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            asyncio.run(self._async.close())


@dataclass
class StoreFactory:
    """Opens stores on one backend; ``open()`` again is a cold reopen (a new
    process would see the same thing: empty cache, same data). A kind ending
    in ``+async`` opens the async twin, driven through ``SyncOverAsync``."""

    kind: str
    path: Path
    prefix: str
    opened: list[Any] = field(default_factory=list)
    _memory: Backend | None = None

    @property
    def base(self) -> str:
        return self.kind.removesuffix("+async")

    @property
    def target(self) -> str | None:
        if self.base == "memory":
            return None
        if self.base == "sqlite":
            return str(self.path / "store.db")
        return POSTGRES_DSN

    def open(self, **options: Any) -> Transcripts:
        if self.base == "memory":
            # A memory store cannot be reopened by a new process; a new facade
            # over the same backend has the same cold cache a new process has.
            if self._memory is None:
                self._memory = open_backend(None)
            store = Transcripts(self._memory, **options)
        else:
            store = Transcripts.open(self.target, table_prefix=self.prefix, **options)
        opened: Any = SyncOverAsync(AsyncTranscripts(store)) if self.kind.endswith("+async") else store
        self.opened.append(opened)
        return opened  # type: ignore[no-any-return]

    def close(self) -> None:
        for store in self.opened:
            store.close()
        if self.base == "postgres":
            drop_postgres_tables(self.prefix)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A table prefix of a test's own on the PostgreSQL server, its tables
    dropped afterwards (whether or not the test passed)."""
    name = "w" + uuid.uuid4().hex[:12]
    yield name
    drop_postgres_tables(name)


def drop_postgres_tables(prefix: str) -> None:
    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for table in ("events", "sessions", "snapshots", "feed", "seal"):
            conn.execute(f'DROP TABLE IF EXISTS "{prefix}_{table}"')


@pytest.fixture(scope="session", autouse=True)
def _postgres_reachable() -> None:
    if POSTGRES_DSN:
        import psycopg

        try:
            with psycopg.connect(POSTGRES_DSN, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # fail loudly: CI requires PostgreSQL
            pytest.fail(f"ENGINE_TEST_POSTGRES_DSN is set but PostgreSQL is unreachable: {exc}")


def store_factories(kind: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory on a fresh store of ``kind``, closed (and its tables dropped) after."""
    factory = StoreFactory(kind, tmp_path, "t" + uuid.uuid4().hex[:12])
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from store_factories(request.param, tmp_path)


@pytest.fixture
def store(stores: StoreFactory) -> Transcripts:
    return stores.open()


@pytest.fixture
def new_store(stores: StoreFactory) -> Callable[..., Transcripts]:
    return stores.open
