"""``AsyncTranscripts``: the store's async twin, for asyncio applications.

The same methods as :class:`engine.Transcripts`, each a coroutine. The work
runs on a worker thread of the store's own (one, so the calls of one store
run in the order they were made), never on the event loop: a long load or a
slow database does not stall other tasks. Errors are the same typed errors.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from engine.facade.transcripts import Transcripts

__all__ = ["AsyncTranscripts"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _awaitable(
    method: Callable[Concatenate[Transcripts, _P], _R],
) -> Callable[Concatenate[AsyncTranscripts, _P], Coroutine[Any, Any, _R]]:
    """``method`` of the synchronous store, as a coroutine run on the worker."""

    async def call(self: AsyncTranscripts, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        worker = self._worker
        if worker is None:  # closed: the store raises StorageUnavailable at once, nothing to wait for
            return method(self._store, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(worker, functools.partial(method, self._store, *args, **kwargs))

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class AsyncTranscripts:
    """A store of sessions, used from asyncio (see :class:`engine.Transcripts`
    for what each method does). Open one with ``await AsyncTranscripts.open(...)``
    (same arguments as ``Transcripts.open``), or wrap a ``Transcripts``."""

    def __init__(self, store: Transcripts) -> None:
        if not isinstance(store, Transcripts):
            from engine.errors import InvalidArgument

            raise InvalidArgument(f"AsyncTranscripts wraps a Transcripts, got {type(store).__name__}")
        self._store = store
        self._worker: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcripts")

    @classmethod
    async def open(cls, target: str | os.PathLike[str] | None = None, **options: Any) -> AsyncTranscripts:
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(None, functools.partial(Transcripts.open, target, **options))
        return cls(store)

    @property
    def sync(self) -> Transcripts:
        """The synchronous store underneath (for code that is not async)."""
        return self._store

    async def run_sync(
        self, function: Callable[Concatenate[Transcripts, _P], _R], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """``function(store, *args, **kwargs)`` with the synchronous store, on
        the worker, in order with the other calls: for steps that belong
        together (a read, then a write with ``expected_revision``)."""
        worker = self._worker
        if worker is None:
            return function(self._store, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(worker, functools.partial(function, self._store, *args, **kwargs))

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.get_running_loop().run_in_executor(worker, self._store.close)
            worker.shutdown(wait=False)

    async def __aenter__(self) -> AsyncTranscripts:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Async{self._store!r}"

    # Commands
    create = _awaitable(Transcripts.create)
    append = _awaitable(Transcripts.append)
    set_title = _awaitable(Transcripts.set_title)
    set_status = _awaitable(Transcripts.set_status)
    set_tags = _awaitable(Transcripts.set_tags)
    set_pinned = _awaitable(Transcripts.set_pinned)
    set_header = _awaitable(Transcripts.set_header)
    spawn = _awaitable(Transcripts.spawn)
    children = _awaitable(Transcripts.children)
    set_task_list = _awaitable(Transcripts.set_task_list)
    update_task = _awaitable(Transcripts.update_task)
    set_pending_question = _awaitable(Transcripts.set_pending_question)
    clear_pending_question = _awaitable(Transcripts.clear_pending_question)
    compact = _awaitable(Transcripts.compact)
    tool_calls = _awaitable(Transcripts.tool_calls)
    generate_title = _awaitable(Transcripts.generate_title)
    update_metadata = _awaitable(Transcripts.update_metadata)
    record_usage = _awaitable(Transcripts.record_usage)
    rewrite = _awaitable(Transcripts.rewrite)
    restore = _awaitable(Transcripts.restore)
    fork = _awaitable(Transcripts.fork)
    fork_at = _awaitable(Transcripts.fork_at)
    fork_replacing = _awaitable(Transcripts.fork_replacing)
    ingest = _awaitable(Transcripts.ingest)
    ingest_many = _awaitable(Transcripts.ingest_many)
    resolve_pending = _awaitable(Transcripts.resolve_pending)
    erase = _awaitable(Transcripts.erase)
    delete = _awaitable(Transcripts.delete)
    # Queries
    get = _awaitable(Transcripts.get)
    history = _awaitable(Transcripts.history)
    sessions = _awaitable(Transcripts.sessions)
    revisions = _awaitable(Transcripts.revisions)
    revision_messages = _awaitable(Transcripts.revision_messages)
    diff = _awaitable(Transcripts.diff)
    lineage = _awaitable(Transcripts.lineage)
    pending = _awaitable(Transcripts.pending)
    out_of_band = _awaitable(Transcripts.out_of_band)
    head_hash = _awaitable(Transcripts.head_hash)
    verify = _awaitable(Transcripts.verify)
    feed = _awaitable(Transcripts.feed)
