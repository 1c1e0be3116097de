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
from engine.state.content import BIDI_CONTROLS, Image, Message, Reasoning, Text, ToolResult, ToolUse, Transcript
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
# C1 controls, and the bidirectional marks, embeddings, overrides and
# isolates, which reorder how the text around them is shown: shown as
# escapes (as the command line shows them), never as they are.
_UNSEEN = re.compile(f"[\x80-\x9f{BIDI_CONTROLS}]")


def visible(text: str) -> str:
    """``text`` with C1 controls and bidirectional controls as escapes (``\\u202e``)."""
    return _UNSEEN.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


_RASTER = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})  # never SVG: it can hold script


def _text(value: object) -> str:
    """Any value as HTML text: markup escaped, control characters replaced."""
    return html.escape(visible(_NOT_HTML.sub("\ufffd", str(value))), quote=True)


_attribute = _text


def link(where: str, **query: object) -> str:
    """A URL of the viewer (query values URL-encoded; ``None`` left out)."""
    pairs = [(key, str(value)) for key, value in query.items() if value is not None]
    return f"/{where}" + (("?" + urllib.parse.urlencode(pairs)) if pairs else "")


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


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
    first: int,
    page: int,
    page_size: int,
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
    if len(sessions) < total:
        shown = f"{first + 1:,}-{first + len(sessions):,} of {_count(total, 'session')}"
    else:
        shown = _count(total, "session")
    filters = {"q": query or None, "status": status or None, "tag": tag or None, "meta": meta or None}
    pager = []
    if page > 1:
        pager.append(f'<a rel="prev" href="{_attribute(link("", **filters, page=page - 1))}">newer</a>')
    if first + page_size < total:
        pager.append(f'<a rel="next" href="{_attribute(link("", **filters, page=page + 1))}">older</a>')
    pages = f'<nav class="pager">{" · ".join(pager)}</nav>' if pager else ""
    table = (
        f'<p class="count">{shown}, newest first</p>'
        '<table class="sessions"><thead><tr><th>Title</th><th>Id</th><th>Status</th><th>Tags</th>'
        "<th>Messages</th><th>Version</th><th>Updated (UTC)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{pages}"
        if sessions
        else f'<p class="empty">No session on page {page} ({_count(total, "session")} in all).</p>{pages}'
        if total
        else '<p class="empty">No session matches.</p>'
    )
    return _layout("Sessions", f"<h1>Sessions</h1>{form}{table}", notice, active="list")


# -- one session: the transcript at any version --------------------------------------------


def _session_header(
    state: Session, here: str, *, replaced: bool, title: str | None = None, retitled: bool = False
) -> str:
    """The session's name, facts as of its head, and the tabs of its pages."""
    lineage = state.lineage
    header = state.header
    facts = [
        f"<dt>Id</dt><dd class=id>{_text(state.id)}</dd>",
        f"<dt>Status</dt><dd>{_text(header.status)}</dd>",
        f"<dt>Head</dt><dd>v{state.version} · <span class=id>{_text(state.revision)}</span></dd>",
    ]
    if retitled:  # the title shown follows the slider: say what it is now
        facts.append(f"<dt>Title now</dt><dd>{_text(state.title or '(untitled)')}</dd>")
    if header.tags:
        facts.append(f"<dt>Tags</dt><dd>{_text(', '.join(header.tags))}</dd>")
    settings = [
        f"{name} {value}"
        for name in ("model", "reasoning_effort", "agent", "owner", "locale", "outcome")
        if (value := getattr(header, name)) is not None
    ]
    if settings:
        facts.append(f"<dt>Settings</dt><dd>{_text(' · '.join(settings))}</dd>")
    usage = state.usage
    if usage.total:
        facts.append(
            f"<dt>Usage</dt><dd>{usage.input:,} in · {usage.output:,} out"
            + (f" · {usage.cache_read:,} cache read" if usage.cache_read else "")
            + (f" · {usage.reasoning:,} reasoning" if usage.reasoning else "")
            + "</dd>"
        )
    if state.metadata:
        shown = json.dumps(dict(state.metadata), ensure_ascii=False, sort_keys=True, default=str)
        facts.append(f"<dt>Metadata</dt><dd class=id>{_text(shown[:500])}{'…' if len(shown) > 500 else ''}</dd>")
    if lineage.source is not None:
        kept = (
            "all its messages"
            if lineage.fork_index is None
            else f"its first {_count(lineage.fork_index, 'message')}" + (", then a replacement" if replaced else "")
        )
        facts.append(
            f'<dt>Fork of</dt><dd><a href="{_attribute(link("session", id=lineage.source, v=lineage.source_version))}">'
            f"{_text(lineage.source)}</a> at v{lineage.source_version}, keeping {_text(kept)}</dd>"
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
    shown_title = state.title if title is None else title
    return (
        f'<h1 id="title">{_text(shown_title or "(untitled)")}</h1>'
        f'<dl class="facts">{"".join(facts)}</dl><nav class="tabs">{nav}</nav>'
    )


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or
    ``&`` (so no ``</script>``), no line separators JavaScript would split."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Only inside strings: an escaped backslash, so the script shows the escape.
    text = _UNSEEN.sub(lambda found: f"\\\\u{ord(found.group()):04x}", text)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _short(revision: str) -> str:
    return revision[:19] + "…"


def session_page(state: Session, line: Timeline, version: int, notice: str | None) -> str:
    entries = line.entries
    by_version = {entry.version: entry for entry in entries}
    calls = _tool_calls(line.shown)
    rendered = []
    shown_flags = []
    for number, item in enumerate(line.shown):
        shown_now = item.visible_at(version)
        shown_flags.append(shown_now)
        rendered.append(_message(number, item, by_version, calls, hidden=not shown_now, changed=item.added == version))
    titles: dict[str | None, int] = {}
    rows = []
    for entry, title in zip(entries, line.titles, strict=True):
        rows.append(
            [
                entry.version,
                _time(entry.at),
                entry.actor,
                entry.kind,
                entry.summary[:300],
                _short(entry.revision),
                titles.setdefault(title, len(titles)),
            ]
        )
    data = {"entries": rows, "titles": [title or "(untitled)" for title in titles]}
    current = by_version.get(version)
    title_now = line.titles[version - 1] if 0 < version <= len(line.titles) else state.title
    slider = (
        '<section class="scrubber" aria-label="Version">'
        f'<button type="button" id="previous" aria-label="previous version">◀</button>'
        f'<input type="range" id="version" min="1" max="{line.version}" value="{version}" '
        f'data-session="{_attribute(state.id)}" aria-label="version">'
        f'<button type="button" id="next" aria-label="next version">▶</button>'
        f'<output id="where">v{version} of {line.version} · <span id="count">{sum(shown_flags)}</span> messages · '
        f'revision <span id="revision" class="id">{_text(_short(current.revision) if current else "")}</span></output>'
        '<div class="controls"><label class="follow"><input type="checkbox" id="follow" checked> '
        "scroll to what each version changed</label> "
        '<button type="button" id="jump">show the change</button></div>'
        f'<p id="event" class="event">{_event_text(current)}</p></section>'
    )
    body = (
        _session_header(
            state,
            "session",
            replaced=any(item.origin == "replacement" for item in line.shown),
            title=title_now or "(untitled)",
            retitled=any(t != state.title for t in line.titles),
        )
        + slider
        + f'<section id="transcript" class="transcript">{_chunks(rendered, shown_flags)}</section>'
        + f'<script type="application/json" id="entries">{_json_for_script(data)}</script>'
    )
    return _layout(state.title or state.id, body, notice, active="session")


def _chunks(rendered: Sequence[str], shown: Sequence[bool], size: int = 100) -> str:
    """Messages in groups the browser lays out only when they are on screen
    (``content-visibility``): a slider step that shows or hides a message
    then costs the layout of its group, not of the whole transcript. A group
    with nothing to show is hidden, so the page is as tall as what it shows."""
    groups = []
    for start in range(0, len(rendered), size):
        hidden = "" if any(shown[start : start + size]) else " hidden"
        groups.append(f'<div class="chunk"{hidden}>{"".join(rendered[start : start + size])}</div>')
    return "".join(groups)


def _event_text(entry: HistoryEntry | None) -> str:
    if entry is None:
        return ""
    actor = f" · {entry.actor}" if entry.actor else ""
    return _text(f"v{entry.version} · {_time(entry.at)}{actor} · {entry.kind}: {entry.summary[:300]}")


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
    if item.origin == "inherited":
        marks.append('<span class="mark inherited">inherited from the source</span>')
    elif item.origin == "replacement":
        marks.append('<span class="mark replacement">the fork\'s replacement</span>')
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
        return _long_text(block.text)
    if isinstance(block, Transcript):
        cut = (
            f' <span class="mark truncated">truncated at {block.truncated_at_ms / 1000:.1f} s</span>'
            if block.truncated_at_ms is not None
            else ""
        )
        return (
            f'<div class="spoken"><span class="label">spoken</span> {_long_text(block.text, "span", "said")}{cut}</div>'
        )
    if isinstance(block, Reasoning):
        return f'<details class="reasoning"><summary>reasoning</summary>{_long_text(block.text)}</details>'
    if isinstance(block, ToolUse):
        return (
            f'<div class="tool-use" id="call-{_attribute(block.id)}"><span class="label">calls</span> '
            f"<b>{_text(block.name)}</b> <code>{_text(block.id)}</code>"
            f"{_long_text(block.arguments, 'pre', 'arguments')}</div>"
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


_LONG = 4000  # characters of a text shown before "show all"


def _long_text(text: str, element: str = "div", kind: str = "text") -> str:
    """A text (a block's, a tool call's arguments); past ``_LONG``
    characters the rest is folded away (a 2 MB tool dump would otherwise
    make the page hundreds of screens tall)."""
    if len(text) <= _LONG:
        return f'<{element} class="{kind}">{_text(text)}</{element}>'
    return (
        f'<{element} class="{kind}">{_text(text[:_LONG])}</{element}><details class="more"><summary>show all '
        f'{len(text):,} characters</summary><{element} class="{kind}">{_text(text[_LONG:])}</{element}></details>'
    )


def _image(block: Image) -> str:
    if block.data is not None and block.media_type in _RASTER:
        encoded = base64.b64encode(block.data).decode("ascii")
        return f'<img class="image" alt="image" src="data:{block.media_type};base64,{encoded}">'
    what = f"{len(block.data):,} bytes" if block.data is not None else f"ref {block.ref}"
    return f'<div class="image-placeholder">image ({_text(block.media_type)}, {_text(what)}) not shown</div>'


# -- audit history ----------------------------------------------------------------------------


def history_page(
    state: Session,
    entries: Sequence[HistoryEntry],
    kinds: Sequence[str],
    kind: str,
    replaced: bool,
    notice: str | None,
) -> str:
    # An erasure rewrites the content at every version: there is nothing to compare.
    changes_content = {"messages_appended", "messages_rewritten"}
    rows = []
    for entry in entries:
        event = entry.event
        audited = isinstance(event, (MessagesRewritten, MessagesErased))
        reason = event.reason if audited else None
        note = event.note if audited else None
        compared = link("diff", id=state.id, a=entry.version - 1, b=entry.version)
        diff = (
            f' <a class="row-diff" href="{_attribute(compared)}">diff</a>'
            if entry.kind in changes_content and entry.version > 1
            else ""
        )
        rows.append(
            "<tr>"
            f'<td class="number"><a href="{_attribute(link("session", id=state.id, v=entry.version))}">'
            f"v{entry.version}</a></td>"
            f"<td>{_text(_time(entry.at))}</td><td>{_text(entry.actor or '')}</td>"
            f"<td>{_text(entry.kind)}{diff}</td><td>{_text(reason or '')}</td><td>{_text(note or '')}</td>"
            f"<td>{_text(entry.summary)}</td></tr>"
        )
    options = "".join(
        f'<option value="{_attribute(name)}"{" selected" if name == kind else ""}>'
        f"{_text(name or 'every event')}</option>"
        for name in ("", *kinds)
    )
    form = (
        '<form class="filters" method="get" action="/history">'
        f'<input type="hidden" name="id" value="{_attribute(state.id)}">'
        f'<label>Event <select name="kind">{options}</select></label><button type="submit">Show</button></form>'
    )
    table = (
        f'{form}<p class="count">{_count(len(entries), "event")}</p>'
        '<table class="history"><thead><tr><th>Version</th><th>Time (UTC)</th><th>Actor</th><th>Event</th>'
        f"<th>Reason</th><th>Note</th><th>What</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    header = _session_header(state, "history", replaced=replaced)
    return _layout(f"History of {state.title or state.id}", header + table, notice)


# -- the family graph --------------------------------------------------------------------------


def family_page(state: Session, svg: str, members: Sequence[Any], replaced: bool, notice: str | None) -> str:
    items = "".join(
        f'<li class="depth-{min(member.depth, 9)}"><a href="{_attribute(link("session", id=member.id))}">'
        f"{_text(member.title or '(untitled)')}</a> <span class=id>{_text(member.id)}</span>"
        + (
            f" · fork of v{member.source_version}"
            + ("" if member.fork_index is None else f", keeping {_count(member.fork_index, 'message')}")
            + f' · <a href="{_attribute(link("diff", id=member.id, source=1))}">what the fork changed</a>'
            if member.source is not None
            else " · root"
        )
        + "</li>"
        for member in members
    )
    body = (
        _session_header(state, "graph", replaced=replaced)
        + '<p class="hint">Each lane is a session; dots are its commits (blue: appends, orange: rewrites, '
        "green: the fork point). Click a dot to open that session at that version.</p>"
        + f'<div class="graph">{svg}</div><ul class="family">{items}</ul>'
    )
    return _layout(f"Forks of {state.title or state.id}", body, notice, active="graph")


# -- diffs ----------------------------------------------------------------------------------------


def diff_page(
    state: Session,
    *,
    replaced: bool,
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
        ""
        if not a
        else (
            '<form class="diff-form" method="get" action="/diff">'
            f'<input type="hidden" name="id" value="{_attribute(state.id)}">'
            f'<label>From <select name="a">{options(a)}</select></label>'
            f'<label>to <select name="b">{options(b)}</select></label><button type="submit">Compare</button></form>'
        )
    )
    calls = _tool_calls([Shown(message, 0) for message in (*before, *removed, *added)])
    context = "".join(_plain(message, "context", calls) for message in before[-2:])
    changes = _changes(removed, added, calls)
    if not a:
        form = (
            f'<p class="hint"><a href="{_attribute(link("diff", id=state.id, a=1, b=state.version))}">'
            "Compare versions of this fork instead</a></p>"
        )
    summary = (
        f"<p class=summary>{_text(title)}: at message {start}, {len(removed)} removed and {len(added)} added.</p>"
        if removed or added
        else f"<p class=summary>{_text(title)}: no difference.</p>"
    )
    body = (
        _session_header(state, "diff", replaced=replaced)
        + form
        + summary
        + f'<section class="diff">{context}{changes}</section>'
    )
    return _layout(f"Diff of {state.title or state.id}", body, notice, active="diff")


_FOLD_AFTER = 10  # messages a diff shows of a removed or added run before folding the rest


def _changes(removed: Sequence[Message], added: Sequence[Message], calls: dict[str, ToolUse]) -> str:
    """Each removed message beside the one that took its place, first; then
    what only one side has, folded past ``_FOLD_AFTER`` messages (a fork
    that leaves out the source's 140 later messages shows its one
    replacement first, not last)."""
    paired = min(len(removed), len(added))
    parts = []
    for old, new in zip(removed[:paired], added[:paired], strict=True):
        parts += [_plain(old, "removed", calls), _plain(new, "added", calls)]
    for rest, kind in ((removed[paired:], "removed"), (added[paired:], "added")):
        shown = "".join(_plain(message, kind, calls) for message in rest)
        if len(rest) > _FOLD_AFTER:
            shown = (
                f'<details class="more"><summary>{_count(len(rest), f"more {kind} message")}</summary>{shown}</details>'
            )
        parts.append(shown)
    return "".join(parts)


def _plain(message: Message, kind: str, calls: dict[str, ToolUse]) -> str:
    sign = {"removed": "−", "added": "+", "context": " "}[kind]
    blocks = "".join(_block(block, calls) for block in message.blocks)
    return (
        f'<article class="msg diff-{kind} role-{_attribute(message.role)}"><header><span class="sign">{sign}</span> '
        f'<span class="role">{_text(message.role)}</span></header>{blocks}</article>'
    )
