"""The viewer's HTTP server: GET and HEAD only (nothing can write), the pages
of ``_pages`` and two static files.

``Viewer.respond`` answers a path and query without any HTTP, so the pages
are testable on their own; ``ViewerServer`` serves it from a thread per
request (the standard library's ``ThreadingHTTPServer``)."""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from engine.errors import EngineError, InvalidArgument, InvalidRevision, SessionNotFound, VersionNotFound
from engine.facade import Transcripts
from engine.state.content import Message
from engine.state.events import SessionForked
from engine.state.header import STATUSES
from engine.state.revisions import parse_revision
from engine.state.transcript import Session
from engine.viewer import _pages
from engine.viewer._graph import draw, family
from engine.viewer._timeline import Timeline, timeline

__all__ = ["Viewer", "ViewerServer"]

_SECURITY_HEADERS = {
    # The pages load their script and style sheet from here and nothing
    # else: an injected tag could neither run nor fetch.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC = {"viewer.js": "text/javascript; charset=utf-8", "viewer.css": "text/css; charset=utf-8"}
_PAGE_SIZE = 200
_INLINE_STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


class Response:
    __slots__ = ("body", "content_type", "status")

    def __init__(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.status, self.body, self.content_type = status, body, content_type


class Viewer:
    """The pages of one store. Thread-safe (as the store is): each session's
    timeline is kept for its chain head, a few sessions at a time, under a
    lock of its own."""

    def __init__(self, store: Transcripts, *, notice: str | None = None, cached: int = 8) -> None:
        self.store = store
        self.notice = notice
        self._lock = threading.Lock()
        self._timelines: OrderedDict[str, tuple[str, Timeline]] = OrderedDict()
        self._cached = cached

    def respond(self, path: str, query: dict[str, list[str]]) -> Response:
        route: Callable[[dict[str, list[str]]], Response] | None = {
            "/": self._list,
            "/session": self._session,
            "/history": self._history,
            "/graph": self._graph,
            "/diff": self._diff,
        }.get(path)
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        if route is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no page at {path}")
        try:
            return route(query)  # Transcripts is safe to share between threads
        except (SessionNotFound, VersionNotFound) as exc:
            return self._error(HTTPStatus.NOT_FOUND, f"{type(exc).__name__}: {exc}")
        except InvalidArgument as exc:
            return self._error(HTTPStatus.BAD_REQUEST, f"{type(exc).__name__}: {exc}")
        except EngineError as exc:
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    # -- pages ------------------------------------------------------------------------

    def _list(self, query: dict[str, list[str]]) -> Response:
        text, status, tag, meta = (_one(query, name) for name in ("q", "status", "tag", "meta"))
        metadata: dict[str, Any] = {}
        if meta:
            key, equals, value = meta.partition("=")
            if not equals or not key:
                raise InvalidArgument(f"metadata filter {meta!r} is not key=value")
            metadata[key] = _json_value(value)
        found = self.store.sessions(status=status or None, tags=[tag] if tag else None, metadata=metadata or None)
        needle = text.lower()
        matching = [
            info for info in found if not needle or needle in (info.title or "").lower() or needle in info.id.lower()
        ]
        matching.sort(key=lambda info: (info.updated_at, info.id), reverse=True)
        number = _version(query, "page", default=1, what="a page number")
        if number < 1:
            raise InvalidArgument("page= counts from 1")
        start = (number - 1) * _PAGE_SIZE
        page = _pages.list_page(
            matching[start : start + _PAGE_SIZE],
            query=text,
            status=status,
            tag=tag,
            meta=meta,
            statuses=STATUSES,
            total=len(matching),
            first=start,
            page=number,
            page_size=_PAGE_SIZE,
            notice=self.notice,
        )
        return _html(page)

    def _session(self, query: dict[str, list[str]]) -> Response:
        state = self._head(query)
        line = self._timeline(state)
        if line.version != state.version:  # another process wrote between the two reads
            state = self.store.get(state.id, at=line.version)
        version = _version(query, "v", default=state.version)
        if not 1 <= version <= state.version:
            raise VersionNotFound(f"session {state.id!r} has versions 1 to {state.version}, not {version}")
        return _html(_pages.session_page(state, line, version, self.notice))

    def _history(self, query: dict[str, list[str]]) -> Response:
        state = self._head(query)
        entries = self._timeline(state).entries
        kinds = sorted({entry.kind for entry in entries})
        kind = _one(query, "kind")
        shown = [entry for entry in entries if entry.kind == kind] if kind else entries
        return _html(_pages.history_page(state, shown, kinds, kind, self._replaced(state), self.notice))

    def _graph(self, query: dict[str, list[str]]) -> Response:
        state = self._head(query)
        members = family(self.store, state.id)
        svg = draw(
            self.store, state.id, link=lambda sid, version: _pages.link("session", id=sid, v=version), members=members
        )
        svg = _INLINE_STYLE.sub("", svg)  # the page's style sheet colours it; the policy refuses inline style
        return _html(_pages.family_page(state, svg, members, self._replaced(state), self.notice))

    def _diff(self, query: dict[str, list[str]]) -> Response:
        state = self._head(query)
        choices = [(entry.version, f"v{entry.version} · {entry.kind}") for entry in self._timeline(state).entries]
        lineage = state.lineage
        compared = _one(query, "a") or _one(query, "b")
        wanted = _one(query, "source") or not compared  # a fork's diff shows what it changed, unless asked
        if wanted and lineage.source is not None and lineage.source_version is not None:
            # What the fork changed when it was made: its first version
            # against its source at the version it was taken from.
            source = self.store.get(lineage.source, at=lineage.source_version)
            forked = self.store.get(state.id, at=1)
            title = f"the fork at v1 against its source {lineage.source} at v{lineage.source_version}"
            return self._diff_page(state, title, source.messages, forked.messages, choices, "", "")
        a, b = _point(query, "a", max(state.version - 1, 1)), _point(query, "b", state.version)
        first, second = self.store.get(state.id, at=a), self.store.get(state.id, at=b)
        title = f"v{first.version} against v{second.version}"
        return self._diff_page(
            state, title, first.messages, second.messages, choices, str(first.version), str(second.version)
        )

    def _diff_page(
        self,
        state: Session,
        title: str,
        old: Any,
        new: Any,
        choices: list[tuple[int, str]],
        a: str,
        b: str,
    ) -> Response:
        start, removed, added = difference(list(old), list(new))
        page = _pages.diff_page(
            state,
            replaced=self._replaced(state),
            title=title,
            start=start,
            before=list(old)[:start],
            removed=removed,
            added=added,
            choices=choices,
            a=a,
            b=b,
            notice=self.notice,
        )
        return _html(page)

    # -- helpers -----------------------------------------------------------------------

    def _head(self, query: dict[str, list[str]]) -> Session:
        session_id = _one(query, "id")
        if not session_id:
            raise InvalidArgument("give the session: ?id=<session id>")
        return self.store.get(session_id)

    def _timeline(self, state: Session) -> Timeline:
        # Kept by the session's chain head, which commits to every event: a
        # session deleted and made again under its id at the same version
        # has another head, so its old timeline is never shown.
        head = self.store.head_hash(state.id)
        with self._lock:
            kept = self._timelines.get(state.id)
        if kept is None or kept[0] != head:
            kept = (head, timeline(self.store, state.id))  # outside the lock: other pages go on meanwhile
        with self._lock:
            self._timelines[state.id] = kept
            self._timelines.move_to_end(state.id)
            while len(self._timelines) > self._cached:
                self._timelines.popitem(last=False)
        return kept[1]

    def _replaced(self, state: Session) -> bool:
        """Whether the session is a fork made with a replacement message."""
        first = self._timeline(state).entries[0].event
        return isinstance(first, SessionForked) and first.replacement is not None

    def _static(self, name: str) -> Response:
        content_type = _STATIC.get(name)
        if content_type is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no file {name}")
        data = resources.files("engine.viewer").joinpath("static", name).read_bytes()
        return Response(HTTPStatus.OK, data, content_type)

    def _error(self, status: int, message: str) -> Response:
        return _html(_pages.error_page(status, message, self.notice), status)


def difference(old: list[Message], new: list[Message]) -> tuple[int, list[Message], list[Message]]:
    """Where two transcripts differ: the first index that differs, and the
    messages of each in the changed span (the common head and tail left out)."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old, end_new = end_old - 1, end_new - 1
    return start, old[start:end_old], new[start:end_new]


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[-1]


def _version(query: dict[str, list[str]], name: str, *, default: int, what: str = "an event version") -> int:
    text = _one(query, name)
    if not text:
        return default
    if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit
        raise InvalidArgument(f"{name}= is {what} (a whole number), got {text[:40]!r}")
    if len(text) > 18:
        raise InvalidArgument(f"{name}= is {what}, and {text[:40]!r} is beyond any a session has")
    return int(text)


def _point(query: dict[str, list[str]], name: str, default: int) -> int | str:
    """A point of a session's past: an event version, or a revision id."""
    text = _one(query, name)
    if text.startswith("sha256:"):
        try:
            parse_revision(text)
        except InvalidRevision as exc:  # named by this page's parameter, not get()'s at=
            raise InvalidArgument(f"{name}= {exc}: pass a whole revision id, or an event version") from None
        return text
    return _version(query, name, default=default)


def _json_value(text: str) -> Any:
    """A metadata value typed in a filter: JSON if it parses (so 3 is a number
    and true a boolean), else the text itself."""
    if len(text) > 10_000:
        raise InvalidArgument("a metadata filter value is at most 10,000 characters")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep for it
        return text


def _html(page: str, status: int = HTTPStatus.OK) -> Response:
    return Response(status, page.encode("utf-8"))


# -- HTTP ---------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` ("" is every interface)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class ViewerServer(ThreadingHTTPServer):
    """The viewer on ``host:port`` (port 0: any free port; see ``url``)."""

    daemon_threads = True

    def __init__(self, viewer: Viewer, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.viewer = viewer
        self.local_only = is_loopback(host)
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that closed its connection mid-answer (a page left, a
        tab closed) is no error of the viewer's: not printed as one."""
        if isinstance(sys.exc_info()[1], ConnectionError):  # reset, broken pipe, aborted
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        body = b"read-only viewer: only GET and HEAD\n"
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # its body, if any, is never read
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def __getattr__(self, name: str) -> Any:
        # Every other method (TRACE, CONNECT, PROPFIND, made-up ones) is
        # refused the same way, not with the standard library's 501 page.
        if name.startswith("do_"):
            return self._refuse_method
        raise AttributeError(name)

    def _answer(self, *, send_body: bool) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if self.server.local_only and not _local_host_header(self.headers.get("Host", "")):
            # A page of another site that resolves its own name to 127.0.0.1
            # (DNS rebinding) sends its own Host: refuse it.
            response = Response(HTTPStatus.BAD_REQUEST, b"unexpected Host header\n", "text/plain; charset=utf-8")
        else:
            try:
                query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True, max_num_fields=50)
            except ValueError:
                query = None
            response = (
                Response(HTTPStatus.BAD_REQUEST, b"too many query parameters\n", "text/plain; charset=utf-8")
                if query is None
                else self._respond(parsed.path, query)
            )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def _respond(self, path: str, query: dict[str, list[str]]) -> Response:
        try:
            return self.server.viewer.respond(path, query)
        except Exception as exc:  # a bug: a plain 500 page for the browser, one line for the console
            print(f"viewer: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain; charset=utf-8")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the command prints where it serves, not every request


def _local_host_header(value: str) -> bool:
    if not value:  # no Host header (an HTTP/1.0 tool): no browser's page sends that, so no rebinding
        return True
    host = value.rsplit(":", 1)[0] if not value.endswith("]") else value
    return is_loopback(host)
