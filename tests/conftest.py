"""Backends for the contract suite: memory, a SQLite file, and PostgreSQL when
``ENGINE_TEST_POSTGRES_DSN`` is set (then it must be reachable: a test that
cannot connect fails, it is never skipped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine import Transcripts
from engine.store import Backend, open_backend

POSTGRES_DSN = os.environ.get("ENGINE_TEST_POSTGRES_DSN")
BACKENDS = ["memory", "sqlite"] + (["postgres"] if POSTGRES_DSN else [])
# Mutation testing of the pure core narrows the run to some backends.
if os.environ.get("ENGINE_TEST_BACKENDS"):
    BACKENDS = [kind for kind in BACKENDS if kind in os.environ["ENGINE_TEST_BACKENDS"].split(",")]


@dataclass
class StoreFactory:
    """Opens stores on one backend; ``open()`` again is a cold reopen (a new
    process would see the same thing: empty cache, same data)."""

    kind: str
    path: Path
    prefix: str
    opened: list[Transcripts] = field(default_factory=list)
    _memory: Backend | None = None

    @property
    def target(self) -> str | None:
        if self.kind == "memory":
            return None
        if self.kind == "sqlite":
            return str(self.path / "store.db")
        return POSTGRES_DSN

    def open(self, **options: Any) -> Transcripts:
        if self.kind == "memory":
            # A memory store cannot be reopened by a new process; a new facade
            # over the same backend has the same cold cache a new process has.
            if self._memory is None:
                self._memory = open_backend(None)
            store = Transcripts(self._memory, **options)
        else:
            store = Transcripts.open(self.target, table_prefix=self.prefix, **options)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()
        if self.kind == "postgres":
            drop_postgres_tables(self.prefix)


def drop_postgres_tables(prefix: str) -> None:
    import psycopg

    assert POSTGRES_DSN
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for table in ("events", "sessions", "snapshots"):
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
