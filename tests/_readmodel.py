"""What a read model must hold, computed from the store's own public reads
(an oracle independent of the projection's incremental logic), and a dump
of its tables to compare a caught-up read model with a rebuilt one."""

from __future__ import annotations

import json
from typing import Any

from engine import Transcripts
from engine.readmodel import ReadModel
from engine.state.content import ToolResult


def expected_tables(store: Transcripts) -> dict[str, list[tuple[Any, ...]]]:
    sessions, messages, calls, results, revisions = [], [], [], [], []
    for info in store.sessions():
        state = store.get(info.id)
        usage, lineage = state.usage, state.lineage
        sessions.append(
            (
                state.id,
                state.title,
                state.version,
                state.revision,
                len(state.messages),
                json.loads(json.dumps(dict(state.metadata), sort_keys=True)),
                (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning),
                (lineage.source, lineage.source_version, lineage.fork_index, lineage.root, lineage.depth),
                (state.status, list(state.tags), state.pinned, state.header.model, state.header.owner),
            )
        )
        for position, message in enumerate(state.messages):
            messages.append(
                (
                    state.id,
                    position,
                    message.id,
                    message.role,
                    message.text,
                    message.provider_item_id,
                    message.erased,
                    int(message.incomplete),
                    len(message.tool_uses),
                )
            )
            calls += [(state.id, message.id, use.id, use.name, use.arguments) for use in message.tool_uses]
            results += [
                (state.id, message.id, block.tool_use_id, int(block.is_error))
                for block in message.blocks
                if isinstance(block, ToolResult)
            ]
        revisions += [
            (
                state.id,
                commit.version,
                commit.generation,
                commit.parent_revision,
                commit.revision,
                commit.start,
                commit.end,
                commit.count_before,
                commit.count_after,
                commit.reason.kind,
                commit.reason.note,
                commit.actor,
            )
            for commit in store.revisions(state.id)
        ]
    return {
        "sessions": sorted(sessions, key=repr),
        "messages": sorted(messages, key=repr),
        "tool_calls": sorted(calls, key=repr),
        "tool_results": sorted(results, key=repr),
        "revisions": sorted(revisions, key=repr),
    }


def projected_tables(model: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    """The same view of the read model's tables."""
    db = model.db
    sessions = [
        (
            row["id"],
            row["title"],
            row["version"],
            row["revision"],
            row["message_count"],
            json.loads(row["metadata"]),
            (
                row["input_tokens"],
                row["output_tokens"],
                row["cache_read_tokens"],
                row["cache_write_tokens"],
                row["reasoning_tokens"],
            ),
            (row["source"], row["source_version"], row["fork_index"], row["root"], row["depth"]),
            (row["status"], json.loads(row["tags"]), bool(row["pinned"]), row["model"], row["owner"]),
        )
        for row in db.table("sessions").rows
    ]
    messages = [
        (
            row["session_id"],
            row["position"],
            row["message_id"],
            row["role"],
            row["text"],
            row["provider_item_id"],
            row["erased"],
            row["incomplete"],
            row["tool_calls"],
        )
        for row in db.table("messages").rows
    ]
    calls = [
        (row["session_id"], row["message_id"], row["call_id"], row["name"], row["arguments"])
        for row in db.table("tool_calls").rows
    ]
    results = [
        (row["session_id"], row["message_id"], row["call_id"], row["is_error"]) for row in db.table("tool_results").rows
    ]
    revisions = [
        (
            row["session_id"],
            row["version"],
            row["generation"],
            row["parent_revision"],
            row["revision"],
            row["start"],
            row["end"],
            row["count_before"],
            row["count_after"],
            row["reason"],
            row["note"],
            row["actor"],
        )
        for row in db.table("revisions").rows
    ]
    return {
        "sessions": sorted(sessions, key=repr),
        "messages": sorted(messages, key=repr),
        "tool_calls": sorted(calls, key=repr),
        "tool_results": sorted(results, key=repr),
        "revisions": sorted(revisions, key=repr),
    }


def dump(model: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (no rowids), to compare two read models; the
    full-text index must match the messages table (FTS5's integrity check)."""
    model.db.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)")
    tables = ("sessions", "messages", "tool_calls", "tool_results", "usage", "revisions", "forks")
    return {
        table: sorted((tuple(sorted(row.items())) for row in model.db.table(table).rows), key=repr) for table in tables
    }
