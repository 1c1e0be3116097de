"""A session's family (its root and every fork of it, at any depth) as a
tree, and as an SVG picture: one lane per session, its commits as dots in
time order (rewrites labelled with their reason), and each fork as a branch
from the commit it was taken at. The SVG is written here (a few elements,
no library needed); its elements carry classes and data attributes, so a
program can read the structure back."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from html import escape as _escape
from typing import Any

from engine.facade import Transcripts
from engine.viewer._pages import visible

__all__ = ["Member", "draw", "family"]

_LANE = 56  # px between lanes
_STEP = 46  # px between commits
_LEFT = 230  # px for the lane titles


@dataclass(frozen=True)
class Member:
    id: str
    title: str | None
    depth: int
    source: str | None
    source_version: int | None
    fork_index: int | None
    messages: int
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["created_at"] = self.created_at.isoformat()
        return values


def family(store: Transcripts, session_id: str) -> list[Member]:
    """The root of ``session_id``'s fork tree and every session forked from
    it, depth first, each parent before its forks (oldest fork first)."""
    root = store.lineage(session_id).root
    members: dict[str, Member] = {}
    for info in store.sessions():
        state = store.get(info.id)
        if state.lineage.root != root:
            continue
        lineage = state.lineage
        members[info.id] = Member(
            id=info.id,
            title=state.title,
            depth=lineage.depth,
            source=lineage.source,
            source_version=lineage.source_version,
            fork_index=lineage.fork_index,
            messages=len(state.messages),
            created_at=state.created_at,
        )
    children: dict[str | None, list[Member]] = {}
    for member in members.values():
        children.setdefault(member.source, []).append(member)
    ordered: list[Member] = []
    # Depth first, each member before its forks, oldest fork first; in a
    # loop, not by recursion: a chain of forks can be thousands long.
    pending = [members[root]]
    while pending:
        member = pending.pop()
        ordered.append(member)
        pending.extend(sorted(children.get(member.id, []), key=lambda m: (m.created_at, m.id), reverse=True))
    return ordered


@dataclass(frozen=True)
class _Dot:
    at: datetime
    lane: int
    session_id: str
    version: int
    kind: str  # append, rewrite or fork
    label: str
    first: int = 0  # the first version of a run of appends drawn as one dot (0: this dot's version)

    @property
    def start(self) -> int:
        return self.first or self.version


#: Commits a picture draws one by one; past this, runs of appends between
#: the commits that matter (rewrites, forks and fork points) are one dot each.
_MOST_DOTS = 300


def draw(
    store: Transcripts,
    session_id: str,
    *,
    link: Callable[[str, int | None], str] | None = None,
    members: list[Member] | None = None,
) -> str:
    """The SVG picture of ``session_id``'s family (``members``, if the caller
    has it already). With ``link``, each commit links to
    ``link(session_id, version)`` and each lane title to
    ``link(session_id, None)`` (the viewer's pages)."""
    if members is None:
        members = family(store, session_id)
    lanes = {member.id: index for index, member in enumerate(members)}
    dots: list[_Dot] = []
    for member in members:
        lane = lanes[member.id]
        if member.source is not None:  # a fork's first event made it: its creation
            where = "" if member.fork_index is None else f" at {member.fork_index}"
            dots.append(_Dot(member.created_at, lane, member.id, 1, "fork", f"fork{where}"))
        for commit in store.revisions(member.id):
            kind = "append" if commit.reason.kind == "append" else "rewrite"
            label = "" if kind == "append" else commit.reason.kind
            dots.append(_Dot(commit.at, lane, member.id, commit.version, kind, label))
    if len(dots) > _MOST_DOTS:
        dots = _condensed(dots, members)
    dots.sort(key=lambda dot: (dot.at, dot.lane, dot.version))
    x_of = {(dot.session_id, dot.version): _LEFT + 30 + index * _STEP for index, dot in enumerate(dots)}
    width = _LEFT + 60 + max(len(dots), 1) * _STEP
    height = 40 + len(members) * _LANE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="transcript-graph" data-root="{escape(members[0].id)}">',
        "<style>.lane-line{stroke:#bbb;stroke-width:2}.commit{stroke:#333;stroke-width:1.5}"
        ".append{fill:#4a90d9}.rewrite{fill:#e8a33d}.fork{fill:#6cbf6c}.fork-edge{fill:none;stroke:#6cbf6c;"
        "stroke-width:2}text{font:12px sans-serif;fill:#222}.label{font-size:10px;fill:#8a5a00}</style>",
    ]
    # Each fork's edge starts at the source's last commit at or before the
    # fork point; a fork taken before the source's first commit starts just
    # before the fork's own dot, on the source's lane (drawn from there).
    edges = []
    reach: dict[str, int] = {}
    for member in members:
        if member.source is None or member.source not in lanes:
            continue
        source_dots = [d for d in dots if d.session_id == member.source and d.start <= (member.source_version or 0)]
        x2, y2 = x_of[(member.id, 1)], 30 + lanes[member.id] * _LANE
        x1 = x_of[(member.source, source_dots[-1].version)] if source_dots else max(x2 - _STEP, _LEFT + 10)
        reach[member.source] = min(reach.get(member.source, x1), x1)
        edges.append(
            (member.source, member.id, member.source_version, (x1, 30 + lanes[member.source] * _LANE), (x2, y2))
        )
    for member in members:
        lane = lanes[member.id]
        y = 30 + lane * _LANE
        own = [x for (sid, _), x in x_of.items() if sid == member.id] + (
            [reach[member.id]] if member.id in reach else []
        )
        start, end = (min(own), max(own)) if own else (_LEFT + 30, _LEFT + 30)
        title = escape(member.title or "(untitled)")
        lane_title = (
            f'<text class="lane-title" x="{8 + 12 * member.depth}" y="{y + 4}">'
            f"{title} · {escape(_short(member.id))}</text>"
        )
        here = ' aria-current="true"' if member.id == session_id else ""
        parts.append(
            f'<g class="lane{" current" if here else ""}" data-session="{escape(member.id)}" '
            f'data-depth="{member.depth}"{here}>'
            + _linked(lane_title, link, member.id, None)
            + f'<line class="lane-line" x1="{start}" y1="{y}" x2="{end}" y2="{y}"/>'
        )
        for dot in dots:
            if dot.session_id != member.id:
                continue
            x = x_of[(dot.session_id, dot.version)]
            circle = (
                f'<circle class="commit {dot.kind}" cx="{x}" cy="{y}" r="7" data-session="{escape(dot.session_id)}" '
                f'data-version="{dot.version}" data-kind="{dot.kind}" data-reason="{escape(dot.label)}">'
                f"<title>{escape(dot.kind)} v{dot.version} {escape(dot.label)}</title></circle>"
            )
            parts.append(_linked(circle, link, dot.session_id, dot.version))
            if dot.label:
                # A run's count goes below the lane, reasons above: neighbours' labels never meet.
                below = dot.first != 0
                parts.append(
                    f'<text class="label{" run" if below else ""}" x="{x - 14}" y="{y + 22 if below else y - 12}">'
                    f"{escape(dot.label)}</text>"
                )
        parts.append("</g>")
    for source, child, version, (x1, y1), (x2, y2) in edges:
        parts.append(
            f'<path class="fork-edge" data-source="{escape(source)}" data-child="{escape(child)}" '
            f'data-source-version="{version}" d="M{x1},{y1} C{x1},{y2} {x2 - 20},{y2} {x2 - 7},{y2}"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _condensed(dots: list[_Dot], members: list[Member]) -> list[_Dot]:
    """The dots with each run of appends that no fork was taken from drawn
    as one dot (labelled with its count, linked to its last version)."""
    anchors = set()
    for member in members:
        if member.source is not None:
            before = [
                d.version for d in dots if d.session_id == member.source and d.version <= (member.source_version or 0)
            ]
            if before:
                anchors.add((member.source, max(before)))
    kept: list[_Dot] = []
    run: list[_Dot] = []

    def close() -> None:
        if len(run) == 1:
            kept.append(run[0])
        elif run:
            last = run[-1]
            kept.append(
                _Dot(last.at, last.lane, last.session_id, last.version, "append", f"{len(run)} appends", run[0].version)
            )
        run.clear()

    for dot in sorted(dots, key=lambda dot: (dot.lane, dot.version)):
        if run and run[-1].lane != dot.lane:
            close()
        if dot.kind == "append" and (dot.session_id, dot.version) not in anchors:
            run.append(dot)
        else:
            close()
            kept.append(dot)
    close()
    return kept


def _linked(element: str, link: Callable[[str, int | None], str] | None, session_id: str, version: int | None) -> str:
    if link is None:
        return element
    return f'<a href="{escape(link(session_id, version))}">{element}</a>'


def _short(session_id: str) -> str:
    return session_id if len(session_id) <= 14 else session_id[:8] + "…"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    """Text for the SVG: markup escaped, and characters XML cannot hold at
    all (control characters) replaced, so the file always parses."""
    return _escape(visible(_NOT_XML.sub("\ufffd", text)))
