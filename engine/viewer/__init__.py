"""A read-only look at a store: the family graph of a session as SVG (what
``transcripts graph`` draws) and a web viewer (``transcripts serve``): the
session list, any session's transcript at any version with a slider, its
audit history, its forks and revisions as a graph, and diffs.

The viewer is the standard library's HTTP server and a few files shipped in
the package (no build step, nothing fetched at run time). It has no write
endpoint: GET and HEAD only."""

from engine.viewer._graph import Member, draw, family
from engine.viewer._server import Viewer, ViewerServer, is_loopback
from engine.viewer._timeline import Shown, Timeline, timeline

__all__ = [
    "Member",
    "Shown",
    "Timeline",
    "Viewer",
    "ViewerServer",
    "draw",
    "family",
    "is_loopback",
    "timeline",
]
