"""The viewer's pages as HTML text. Everything a store holds is untrusted
(model output, user input, tool results): every value goes through
``_text`` or ``_attribute`` (HTML-escaped), images only as ``data:`` URIs
of raster types, and the page's data for the slider as JSON that cannot
close its ``<script>`` element. The pages load one script and one style
sheet from the viewer itself; the server's Content-Security-Policy allows
nothing else."""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from engine.facade import HistoryEntry, SessionInfo
from engine.state.content import Image, Message, Reasoning, Text, ToolResult, ToolUse, Transcript
from engine.state.events import MessagesErased, MessagesRewritten
from engine.state.transcript import Session
from engine.viewer._timeline import Shown, Timeline

__all__ = [
    "diff_page",
    "error_page",
    "family_page",
    "history_page",
    "list_page",
    "session_page",
]

_NOT_HTML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_RASTER = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})  # never SVG: it can hold script


def _text(value: object) -> str:
    """Any value as HTML text: markup escaped, control characters replaced."""
    return html.escape(_NOT_HTML.sub("\ufffd", str(value)), quote=True)


_attribute = _text


def link(page: str, **query: object) -> str:
    """A URL of the viewer (query values URL-encoded; ``None`` left out)."""
    pairs = [(key, str(value)) for key, value in query.items() if value is not None]
    return f"/{page}" + (("?" + urllib.parse.urlencode(pairs)) if pairs else "")


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _layout(title: str, body: str, notice: str | None, *, active: str = "") -> str:
    banner = f'<p class="notice" role="alert">{_text(notice)}</p>' if notice else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)} · transcripts</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/viewer.css">'
        '<script src="/static/viewer.js" defer></script></head>'
        f'<body data-page="{_attribute(active)}">{banner}'
        '<nav class="top"><a href="/">Sessions</a> <span class="read-only">read-only viewer</span></nav>'
        f"<main>{body}</main></body></html>\n"
    )


def error_page(status: int, message: str, notice: str | None) -> str:
    return _layout(f"{status}", f'<h1>{status}</h1><p class="error">{_text(message)}</p>', notice, active="error")


# -- the session list ---------------------------------------------------------------------


def list_page(
    sessions: Sequence[SessionInfo],
    *,
    query: str,
    status: str,
    tag: str,
    meta: str,
    statuses: Iterable[str],
    total: int,
    notice: str | None,
) -> str:
    options = "".join(
        f'<option value="{_attribute(name)}"{" selected" if name == status else ""}>{_text(name or "any")}</option>'
        for name in ("", *statuses)
    )
    form = (
        '<form class="filters" method="get" action="/" role="search">'
        f'<label>Search <input type="search" name="q" value="{_attribute(query)}" placeholder="title or id"></label>'
        f'<label>Status <select name="status">{options}</select></label>'
        f'<label>Tag <input name="tag" value="{_attribute(tag)}"></label>'
        f'<label>Metadata <input name="meta" value="{_attribute(meta)}" placeholder="key=value"></label>'
        '<button type="submit">Filter</button></form>'
    )
    rows = "".join(
        "<tr>"
        f'<td><a class="session-link" href="{_attribute(link("session", id=info.id))}">'
        f"{_text(info.title or '(untitled)')}</a></td>"
        f'<td class="id">{_text(info.id)}</td>'
        f"<td>{_text(info.status)}</td>"
        f"<td>{' '.join(f'<span class=tag>{_text(tag)}</span>' for tag in info.tags)}</td>"
        f'<td class="number">{info.message_count}</td>'
        f'<td class="number">{info.version}</td>'
        f"<td>{_text(_time(info.updated_at))}</td>"
        "</tr>"
        for info in sessions
    )
    shown = f"{len(sessions):,} of {total:,} sessions" if len(sessions) < total else f"{total:,} sessions"
    table = (
        f'<p class="count">{shown}, newest first</p>'
        '<table class="sessions"><thead><tr><th>Title</th><th>Id</th><th>Status</th><th>Tags</th>'
        "<th>Messages</th><th>Version</th><th>Updated (UTC)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if sessions
        else '<p class="empty">No session matches.</p>'
    )
    return _layout("Sessions", f"<h1>Sessions</h1>{form}{table}", notice, active="list")


# -- one session: the transcript at any version --------------------------------------------


def _session_header(state: Session, here: str) -> str:
    lineage = state.lineage
    facts = [
        f"<dt>Id</dt><dd class=id>{_text(state.id)}</dd>",
        f"<dt>Status</dt><dd>{_text(state.header.status)}</dd>",
        f"<dt>Version</dt><dd>{state.version}</dd>",
        f"<dt>Revision</dt><dd class=id>{_text(state.revision)}</dd>",
    ]
    if state.header.tags:
        facts.append(f"<dt>Tags</dt><dd>{_text(', '.join(state.header.tags))}</dd>")
    if lineage.source is not None:
        where = f" at v{lineage.source_version}" + (
            f", first {lineage.fork_index} messages" if lineage.fork_index is not None else ""
        )
        facts.append(
            f'<dt>Fork of</dt><dd><a href="{_attribute(link("session", id=lineage.source, v=lineage.source_version))}">'
            f"{_text(lineage.source)}</a>{_text(where)}</dd>"
        )
    if state.parent is not None:
        facts.append(
            f'<dt>Spawned by</dt><dd><a href="{_attribute(link("session", id=state.parent))}">'
            f"{_text(state.parent)}</a></dd>"
        )
    tabs = [
        ("session", "Transcript"),
        ("history", "History"),
        ("graph", "Forks and revisions"),
        ("diff", "Diff"),
    ]
    nav = "".join(
        f'<a class="tab{" active" if page == here else ""}" href="{_attribute(link(page, id=state.id))}">{label}</a>'
        for page, label in tabs
    )
    return (
        f"<h1>{_text(state.title or '(untitled)')}</h1>"
        f'<dl class="facts">{"".join(facts)}</dl><nav class="tabs">{nav}</nav>'
    )


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or
    ``&`` (so no ``</script>``), no line separators JavaScript would split."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def session_page(state: Session, line: Timeline, version: int, notice: str | None) -> str:
    entries = line.entries
    by_version = {entry.version: entry for entry in entries}
    calls = _tool_calls(line.shown)
    rendered = []
    visible = 0
    for number, item in enumerate(line.shown):
        shown_now = item.visible_at(version)
        visible += shown_now
        rendered.append(_message(number, item, by_version, calls, hidden=not shown_now, changed=item.added == version))
    data = [[entry.version, _time(entry.at), entry.actor, entry.kind, entry.summary[:300]] for entry in entries]
    current = by_version.get(version)
    slider = (
        '<section class="scrubber" aria-label="Version">'
        f'<button type="button" id="previous" aria-label="previous version">◀</button>'
        f'<input type="range" id="version" min="1" max="{line.version}" value="{version}" '
        f'data-session="{_attribute(state.id)}" aria-label="version">'
        f'<button type="button" id="next" aria-label="next version">▶</button>'
        f'<output id="where">v{version} of {line.version} · <span id="count">{visible}</span> messages</output>'
        '<label class="follow"><input type="checkbox" id="follow" checked> follow the newest message</label>'
        f'<p id="event" class="event">{_event_text(current)}</p></section>'
    )
    body = (
        _session_header(state, "session")
        + slider
        + f'<section id="transcript" class="transcript">{_chunks(rendered)}</section>'
        + f'<script type="application/json" id="entries">{_json_for_script(data)}</script>'
    )
    return _layout(state.title or state.id, body, notice, active="session")


def _chunks(rendered: Sequence[str], size: int = 100) -> str:
    """Messages in groups the browser lays out only when they are on screen
    (``content-visibility``): a slider step that shows or hides a message
    then costs the layout of its group, not of the whole transcript."""
    return "".join(
        f'<div class="chunk">{"".join(rendered[start : start + size])}</div>' for start in range(0, len(rendered), size)
    )


def _event_text(entry: HistoryEntry | None) -> str:
    if entry is None:
        return ""
    actor = entry.actor or "-"
    return _text(f"v{entry.version} · {_time(entry.at)} · {actor} · {entry.kind}: {entry.summary[:300]}")


def _tool_calls(shown: Sequence[Shown]) -> dict[str, ToolUse]:
    calls: dict[str, ToolUse] = {}
    for item in shown:
        for block in item.message.blocks:
            if isinstance(block, ToolUse):
                calls.setdefault(block.id, block)
    return calls


def _message(
    number: int,
    item: Shown,
    entries: dict[int, HistoryEntry],
    calls: dict[str, ToolUse],
    *,
    hidden: bool,
    changed: bool,
) -> str:
    message = item.message
    added = entries.get(item.added)
    origin = (
        f"v{item.added}"
        + (f" · {added.kind}" if added else "")
        + (f" · {added.actor}" if added and added.actor else "")
    )
    marks = []
    if message.incomplete:
        marks.append('<span class="mark incomplete">incomplete: the response stopped early</span>')
    if message.erased is not None:
        marks.append(f'<span class="mark erased">erased (content digest {_text(message.erased[:23])}…)</span>')
    if item.removed is not None:
        gone = entries.get(item.removed)
        why = f" · {gone.kind}" if gone else ""
        marks.append(f'<span class="mark removed">replaced at v{item.removed}{_text(why)}</span>')
    if message.provider_item_id:
        marks.append(f'<span class="item-id">{_text(message.provider_item_id)}</span>')
    removed = f' data-removed="{item.removed}"' if item.removed is not None else ""
    classes = f"msg role-{_attribute(message.role)}" + (" changed" if changed else "")
    blocks = "".join(_block(block, calls) for block in message.blocks)
    if not message.blocks and message.erased is None:
        blocks = '<div class="empty">(no content: a realtime item without its transcript yet)</div>'
    return (
        f'<article class="{classes}" id="m{number}" data-added="{item.added}"{removed}{" hidden" if hidden else ""}>'
        f'<header><span class="role">{_text(message.role)}</span> <span class="origin">{_text(origin)}</span> '
        f"{' '.join(marks)}</header>{blocks}</article>"
    )


def _block(block: object, calls: dict[str, ToolUse]) -> str:
    if isinstance(block, Text):
        return f'<div class="text">{_text(block.text)}</div>'
    if isinstance(block, Transcript):
        cut = (
            f' <span class="mark truncated">truncated at {block.truncated_at_ms / 1000:.1f} s</span>'
            if block.truncated_at_ms is not None
            else ""
        )
        return f'<div class="spoken"><span class="label">spoken</span> {_text(block.text)}{cut}</div>'
    if isinstance(block, Reasoning):
        return (
            '<details class="reasoning"><summary>reasoning</summary>'
            f'<div class="text">{_text(block.text)}</div></details>'
        )
    if isinstance(block, ToolUse):
        return (
            f'<div class="tool-use" id="call-{_attribute(block.id)}"><span class="label">calls</span> '
            f"<b>{_text(block.name)}</b> <code>{_text(block.id)}</code><pre>{_text(block.arguments)}</pre></div>"
        )
    if isinstance(block, ToolResult):
        call = calls.get(block.tool_use_id)
        name = f"<b>{_text(call.name)}</b> " if call is not None else ""
        error = ' <span class="mark error">error</span>' if block.is_error else ""
        parts = "".join(_block(part, calls) for part in block.content)
        return (
            f'<div class="tool-result"><span class="label">result of</span> {name}'
            f'<a href="#call-{_attribute(block.tool_use_id)}"><code>{_text(block.tool_use_id)}</code></a>{error}'
            f"{parts}</div>"
        )
    if isinstance(block, Image):
        return _image(block)
    return f'<div class="text">{_text(block)}</div>'  # pragma: no cover - every block type is above


def _image(block: Image) -> str:
    if block.data is not None and block.media_type in _RASTER:
        encoded = base64.b64encode(block.data).decode("ascii")
        return f'<img class="image" alt="image" src="data:{block.media_type};base64,{encoded}">'
    what = f"{len(block.data):,} bytes" if block.data is not None else f"ref {block.ref}"
    return f'<div class="image-placeholder">image ({_text(block.media_type)}, {_text(what)}) not shown</div>'


# -- audit history ----------------------------------------------------------------------------


def history_page(state: Session, entries: Sequence[HistoryEntry], notice: str | None) -> str:
    rows = []
    for entry in entries:
        event = entry.event
        reason = getattr(event, "reason", None) if isinstance(event, (MessagesRewritten, MessagesErased)) else None
        note = getattr(event, "note", None) if isinstance(event, (MessagesRewritten, MessagesErased)) else None
        rows.append(
            "<tr>"
            f'<td class="number"><a href="{_attribute(link("session", id=state.id, v=entry.version))}">'
            f"v{entry.version}</a></td>"
            f"<td>{_text(_time(entry.at))}</td><td>{_text(entry.actor or '-')}</td>"
            f"<td>{_text(entry.kind)}</td><td>{_text(reason or '')}</td><td>{_text(note or '')}</td>"
            f"<td>{_text(entry.summary)}</td></tr>"
        )
    table = (
        '<table class="history"><thead><tr><th>Version</th><th>Time (UTC)</th><th>Actor</th><th>Event</th>'
        f"<th>Reason</th><th>Note</th><th>What</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _layout(f"History of {state.title or state.id}", _session_header(state, "history") + table, notice)


# -- the family graph --------------------------------------------------------------------------


def family_page(state: Session, svg: str, members: Sequence[Any], notice: str | None) -> str:
    items = "".join(
        f'<li class="depth-{min(member.depth, 9)}"><a href="{_attribute(link("session", id=member.id))}">'
        f"{_text(member.title or '(untitled)')}</a> <span class=id>{_text(member.id)}</span>"
        + (
            f" · fork of v{member.source_version}"
            f' · <a href="{_attribute(link("diff", id=member.id, source=1))}">diff with its source</a>'
            if member.source is not None
            else " · root"
        )
        + "</li>"
        for member in members
    )
    body = (
        _session_header(state, "graph")
        + '<p class="hint">Each lane is a session; dots are its commits (blue: appends, orange: rewrites, '
        "green: the fork point). Click a dot to open that session at that version.</p>"
        + f'<div class="graph">{svg}</div><ul class="family">{items}</ul>'
    )
    return _layout(f"Forks of {state.title or state.id}", body, notice, active="graph")


# -- diffs ----------------------------------------------------------------------------------------


def diff_page(
    state: Session,
    *,
    title: str,
    start: int,
    before: Sequence[Message],
    removed: Sequence[Message],
    added: Sequence[Message],
    choices: Sequence[tuple[int, str]],
    a: str,
    b: str,
    notice: str | None,
) -> str:
    def options(selected: str) -> str:
        return "".join(
            f'<option value="{version}"{" selected" if str(version) == selected else ""}>{_text(label)}</option>'
            for version, label in choices
        )

    form = (
        '<form class="diff-form" method="get" action="/diff">'
        f'<input type="hidden" name="id" value="{_attribute(state.id)}">'
        f'<label>From <select name="a">{options(a)}</select></label>'
        f'<label>to <select name="b">{options(b)}</select></label><button type="submit">Compare</button></form>'
    )
    calls = _tool_calls([Shown(message, 0) for message in (*before, *removed, *added)])
    context = "".join(_plain(message, "context", calls) for message in before[-2:])
    changes = "".join(_plain(message, "removed", calls) for message in removed) + "".join(
        _plain(message, "added", calls) for message in added
    )
    summary = (
        f"<p class=summary>{_text(title)}: at message {start}, {len(removed)} removed and {len(added)} added.</p>"
        if removed or added
        else f"<p class=summary>{_text(title)}: no difference.</p>"
    )
    body = _session_header(state, "diff") + form + summary + f'<section class="diff">{context}{changes}</section>'
    return _layout(f"Diff of {state.title or state.id}", body, notice, active="diff")


def _plain(message: Message, kind: str, calls: dict[str, ToolUse]) -> str:
    sign = {"removed": "−", "added": "+", "context": " "}[kind]
    blocks = "".join(_block(block, calls) for block in message.blocks)
    return (
        f'<article class="msg diff-{kind} role-{_attribute(message.role)}"><header><span class="sign">{sign}</span> '
        f'<span class="role">{_text(message.role)}</span></header>{blocks}</article>'
    )
