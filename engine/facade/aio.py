"""``AsyncTranscripts``: the store's async twin, for asyncio applications.

The same methods as :class:`engine.Transcripts`, each a coroutine. The work
runs on worker threads of the store's own, never on the event loop: a long
load or a slow database does not stall other tasks. The calls on one
session run one after another in the order they were made; calls on
different sessions run at once, so a write waiting for a lock on one
session holds back no other. Errors are the same typed errors.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from engine.errors import InvalidArgument, StorageUnavailable
from engine.facade.transcripts import Transcripts
from engine.state.content import shown

__all__ = ["AsyncTranscripts"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Worker threads of one store: as many calls on different sessions run at
#: once (a PostgreSQL store's pool has up to ten connections).
DEFAULT_WORKERS = 8


def _plain_call(
    method: str, function: Callable[..., _R], store: Transcripts, *args: Any, **kwargs: Any
) -> Callable[[], _R]:
    """``function(store, *args, **kwargs)`` for a worker thread, which cannot
    await: a coroutine function is refused before anything runs, and a
    result to await (a lambda that calls one, say) once it is returned."""
    advice = (
        "pass a plain function (def, not async def), which the worker thread calls with the synchronous store; "
        "in async code, await this store's own methods instead"
    )
    if not callable(function):
        raise InvalidArgument(f"{method}() takes a function to call with the store, got {type(function).__name__}")
    name = getattr(function, "__name__", type(function).__name__)
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise InvalidArgument(f"{method}(): {name!r} is an async function, whose result would never run; {advice}")

    def call() -> _R:
        result = function(store, *args, **kwargs)
        if inspect.isawaitable(result) or inspect.isasyncgen(result):
            if inspect.iscoroutine(result):
                result.close()  # never to be awaited: closed, so Python warns of no coroutine left unawaited
            raise InvalidArgument(
                f"{method}(): {name!r} returned {type(result).__name__} to await, which a worker thread cannot; "
                f"{advice}"
            )
        return result

    return call


class _Turns:
    """The order an ``AsyncTranscripts`` keeps. A call on sessions starts
    after every call on any of them made before it; a call on the whole
    store (``run_sync``, ``erase``, ``delete``) starts after every call made
    before it, and every call made after it starts after it. Each call is a
    future, done when the call has ended (or, if it was never made, when it
    no longer holds anyone back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the done-callbacks run on the workers
        self._last: dict[str, Future[None]] = {}
        self._pending: set[Future[None]] = set()
        self._barrier: Future[None] | None = None

    def take(self, session_ids: Sequence[str], *, whole: bool = False) -> tuple[list[Future[None]], Future[None]]:
        """The calls this one waits for, and this one's own future."""
        mine: Future[None] = Future()
        with self._lock:
            if whole:
                before = list(self._pending)
                self._barrier = mine
            else:
                before = [self._barrier] if self._barrier is not None else []
                for session_id in session_ids:
                    previous = self._last.get(session_id)
                    if previous is not None:
                        before.append(previous)
                    self._last[session_id] = mine
            self._pending.add(mine)
        return before, mine

    def end(self, session_ids: Sequence[str], mine: Future[None]) -> None:
        with self._lock:
            if mine.done():  # ended already: an abandoned call is ended by whichever notices first
                return
            self._pending.discard(mine)
            for session_id in session_ids:
                if self._last.get(session_id) is mine:
                    del self._last[session_id]
            if self._barrier is mine:
                self._barrier = None
        mine.set_result(None)


class _Trampoline(threading.local):
    """Callbacks run one after another on this thread, not one inside
    another: a turn that ends lets the next end, and so on down a chain of
    calls cancelled while waiting (hundreds of them under request time-outs),
    which as nested callbacks ran out of stack and stopped halfway."""

    def __init__(self) -> None:
        self.queue: deque[Callable[[], None]] = deque()
        self.running = False

    def soon(self, callback: Callable[[], None]) -> None:
        self.queue.append(callback)
        if self.running:
            return
        self.running = True
        try:
            while self.queue:
                self.queue.popleft()()
        finally:
            self.running = False


_TRAMPOLINE = _Trampoline()


def _after_all(futures: Sequence[Future[None]], callback: Callable[[], None]) -> None:
    """``callback()`` once every one of ``futures`` is done."""
    remaining = [future for future in futures if not future.done()]
    if not remaining:
        _TRAMPOLINE.soon(callback)
        return
    count = [len(remaining)]
    lock = threading.Lock()

    def one_done(_: object) -> None:
        with lock:
            count[0] -= 1
            last = not count[0]
        if last:
            _TRAMPOLINE.soon(callback)

    for future in remaining:
        future.add_done_callback(one_done)


async def _waited(future: Future[None], abandoned: Callable[[], None]) -> None:
    """Wait for ``future`` (another call's) without cancelling it if this
    task is cancelled (``asyncio.wrap_future`` would). ``abandoned()`` if
    this task's loop was closed while it waited: the call can never be made."""
    if future.done():
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def resolve() -> None:
        if not waiter.done():  # cancelled meanwhile
            waiter.set_result(None)

    def wake(_: object) -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # its loop was closed: no one waits any more, and this call holds back the next
            abandoned()

    future.add_done_callback(wake)
    await waiter


def _nothing() -> None:
    """A close waits in no one's turn: its loop closed holds back nothing."""


#: Calls that change sessions found only as they go (a family): in order
#: with every call, as run_sync.
_WHOLE_STORE = frozenset({"erase", "delete"})
#: Parameters naming a session a call creates, besides the one it works on.
_NEW_SESSION = ("child_id", "session_id")


def _sessions_of(method: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], list[str]]:
    """How to find, in a call's arguments, the sessions it works on (and
    creates): what orders it with other calls."""
    names = list(inspect.signature(method).parameters)[1:]
    first = names[0] if names and names[0] in ("session_id", "parent") else None
    extra = [name for name in _NEW_SESSION if name in names and name != first]

    def sessions(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        found = [args[0] if args else kwargs.get(first)] if first is not None else []
        found += [kwargs.get(name) for name in extra]
        return list(dict.fromkeys(sid for sid in found if isinstance(sid, str)))  # once each: not after itself

    return sessions


def _awaitable(
    method: Callable[Concatenate[Transcripts, _P], _R],
) -> Callable[Concatenate[AsyncTranscripts, _P], Coroutine[Any, Any, _R]]:
    """``method`` of the synchronous store, as a coroutine run on a worker in
    its turn."""
    sessions = _sessions_of(method)
    whole = method.__name__ in _WHOLE_STORE
    signature = inspect.signature(method)
    name = f"AsyncTranscripts.{method.__name__}()"

    async def call(self: AsyncTranscripts, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:  # a wrong argument is this method's mistake, said before the call takes a turn
            signature.bind(self._store, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        work = functools.partial(method, self._store, *args, **kwargs)
        return await self._in_turn(sessions(args, kwargs), work, whole=whole)

    call.__name__ = method.__name__
    call.__qualname__ = f"AsyncTranscripts.{method.__name__}"
    call.__doc__ = method.__doc__
    # What inspect.signature() and editors show: the synchronous method's parameters.
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=f"Coroutine[Any, Any, {signature.return_annotation}]"
    )
    return call


_SHARING = threading.Lock()


def shared_async(store: Transcripts) -> AsyncTranscripts:
    """The one ``AsyncTranscripts`` over ``store`` that callers wrapping it
    for a session share (each session object of an integration, say), so
    their calls on one session take turns in order instead of racing."""
    with _SHARING:
        twin = store._shared_async
        if not isinstance(twin, AsyncTranscripts):
            twin = store._shared_async = AsyncTranscripts(store)
        return twin


class AsyncTranscripts:
    """A store of sessions, used from asyncio (see :class:`engine.Transcripts`
    for what each method does). Open one with ``await AsyncTranscripts.open(...)``
    (same arguments as ``Transcripts.open``), or wrap a ``Transcripts``.
    ``workers``: how many calls (on different sessions) run at once."""

    def __init__(self, store: Transcripts, *, workers: int = DEFAULT_WORKERS) -> None:
        if not isinstance(store, Transcripts):
            raise InvalidArgument(f"AsyncTranscripts wraps a Transcripts, got {type(store).__name__}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgument(f"workers must be a positive int, got {workers!r}")
        self._store = store
        self._worker = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcripts")
        self._turns = _Turns()
        self._closing: Future[None] | None = None  # done once the store is closed
        self._closing_lock = threading.Lock()

    @classmethod
    async def open(
        cls, target: str | os.PathLike[str] | None = None, *, workers: int = DEFAULT_WORKERS, **options: Any
    ) -> AsyncTranscripts:
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(None, functools.partial(Transcripts.open, target, **options))
        return cls(store, workers=workers)

    async def _in_turn(self, session_ids: Sequence[str], work: Callable[[], _R], *, whole: bool = False) -> _R:
        """Run ``work`` on a worker once the calls it must follow have ended."""
        self._refuse_if_closed()
        turns = self._turns
        before, mine = turns.take(session_ids, whole=whole)
        submitted = False

        def abandoned() -> None:  # never made: it holds back no one once those before it are done
            _after_all(before, lambda: turns.end(session_ids, mine))

        try:
            await self._turn(before, session_ids, whole, abandoned)
            self._refuse_if_closed()  # closed while this call waited: it is not made
            try:
                running = self._worker.submit(work)
            except RuntimeError:  # shut down between the check and here
                raise self._closed_error() from None
            submitted = True
            running.add_done_callback(lambda _: turns.end(session_ids, mine))
            # Cancelling this wait stops the wait; the worker finishes the
            # call if it has started (not if it is still queued).
            return await asyncio.wrap_future(running)
        finally:
            if not submitted:
                abandoned()

    async def _turn(
        self, before: Sequence[Future[None]], session_ids: Sequence[str], whole: bool, abandoned: Callable[[], None]
    ) -> None:
        """Wait for ``before`` to end, at most the store's ``lock_timeout`` in
        all, as a thread waits for its turn on a session."""
        if not before:
            return
        timeout = self._store._repository.locks.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for future in before:
            try:
                # Not asyncio.wait_for: on Python 3.11 it returns, the
                # cancellation lost, when this task is cancelled as the wait
                # ends, and the call would be made after all.
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await _waited(future, abandoned)
            except TimeoutError:
                what = f"session {shown(session_ids[0])}" if session_ids and not whole else "this store"
                raise StorageUnavailable(
                    f"{what}: calls made before this one kept it busy for lock_timeout ({timeout:g} s); "
                    "this call did nothing. Try again later"
                ) from None

    def _refuse_if_closed(self) -> None:
        if self._closing is not None:
            raise self._closed_error()

    def _closed_error(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"this AsyncTranscripts over {self._store!r} is closed; open it again with AsyncTranscripts.open()"
        )

    @property
    def sync(self) -> Transcripts:
        """The synchronous store underneath (for code that is not async)."""
        return self._store

    async def run_sync(
        self, function: Callable[Concatenate[Transcripts, _P], _R], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """``function(store, *args, **kwargs)`` with the synchronous store, on
        a worker, after every call made before it and before every call made
        after it: for steps that belong together (a read, then a write with
        ``expected_revision``). :meth:`run_on` orders them with one
        session's calls only, and lets other sessions' calls go on.
        ``function`` is a plain function: an ``async def`` one is refused."""
        work = _plain_call("run_sync", function, self._store, *args, **kwargs)
        return await self._in_turn((), work, whole=True)

    async def run_on(
        self,
        session_id: str,
        function: Callable[Concatenate[Transcripts, _P], _R],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _R:
        """As :meth:`run_sync`, in order with the calls on ``session_id``
        only: calls on other sessions go on meanwhile."""
        if not isinstance(session_id, str):
            raise InvalidArgument(f"session_id must be a str, got {type(session_id).__name__}")
        return await self._in_turn((session_id,), _plain_call("run_on", function, self._store, *args, **kwargs))

    async def close(self) -> None:
        """Close the store once the calls under way have ended (each bounded
        by ``lock_timeout``); calls waiting for their turn, and calls made
        from now on, raise ``StorageUnavailable``. Closing again waits for
        the first close to end."""
        with self._closing_lock:
            closing, first = self._closing, self._closing is None
            if closing is None:
                closing = self._closing = Future()
        if not first:
            await _waited(closing, _nothing)
            return
        worker = self._worker
        closed = worker.submit(self._store.close)  # after the calls already on the workers

        def ended(_: object) -> None:
            worker.shutdown(wait=False)
            closing.set_result(None)

        closed.add_done_callback(ended)
        await _waited(closed, _nothing)  # a cancelled close() still closes
        closed.result()

    async def __aenter__(self) -> AsyncTranscripts:
        self._refuse_if_closed()  # at once, not at the first call inside the block
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Async{self._store!r}"

    # Commands
    create = _awaitable(Transcripts.create)
    append = _awaitable(Transcripts.append)
    add_tool_results = _awaitable(Transcripts.add_tool_results)
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
    forks = _awaitable(Transcripts.forks)
    pending = _awaitable(Transcripts.pending)
    out_of_band = _awaitable(Transcripts.out_of_band)
    head_hash = _awaitable(Transcripts.head_hash)
    verify = _awaitable(Transcripts.verify)
    feed = _awaitable(Transcripts.feed)
    unlisted_snapshots = _awaitable(Transcripts.unlisted_snapshots)
