"""A store as plain SQLite tables, for sqlite-utils, datasette and SQL:
sessions, the messages of every session head (with full-text search), tool
calls and results, usage, revisions and forks, kept up to date from the
store-wide feed. See docs/read-model.md."""

from engine.readmodel._projection import ReadModel, SearchHit

__all__ = ["ReadModel", "SearchHit"]
