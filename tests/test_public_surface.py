"""The public surface, pinned (as httpx pins its own): a name added to or
dropped from ``engine.__all__`` must be a deliberate change of this test, and
everything a public method returns is importable from ``engine``."""

from __future__ import annotations

import subprocess
import sys
import typing

import engine
from engine.state.events import REASON_KINDS

PUBLIC = {
    "EMPTY_REVISION",
    "AsyncTranscripts",
    "Commit",
    "ConcurrentWriteError",
    "CorruptStore",
    "Diff",
    "EngineError",
    "EventTooLarge",
    "FeedEvent",
    "Header",
    "HistoryEntry",
    "Image",
    "IngestOutcome",
    "InvalidArgument",
    "InvalidForkPoint",
    "InvalidStatusTransition",
    "InvalidMessage",
    "InvalidRevision",
    "InvalidRewriteRange",
    "InvalidTranscriptShape",
    "Lineage",
    "Message",
    "MessageSeq",
    "NoOpRewrite",
    "OutOfBandResponse",
    "Pending",
    "Reason",
    "Reasoning",
    "ReplaceBlock",
    "ReplacementMismatch",
    "RevisionConflict",
    "RevisionNotFound",
    "Session",
    "SessionExists",
    "SessionHasChildren",
    "SessionHasForks",
    "SessionInfo",
    "SessionNotFound",
    "StorageError",
    "StorageUnavailable",
    "Tail",
    "Text",
    "ToolResult",
    "ToolUse",
    "Transcript",
    "Transcripts",
    "UnknownEventType",
    "Usage",
    "VersionNotFound",
    "WriteOutcomeUnknown",
    "revision_of",
    # The records beside the transcript (engine.state.records).
    "Child",
    "Compaction",
    "Question",
    "Spawn",
    "Task",
    "ToolCall",
}


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(engine.__all__) == PUBLIC
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_what_public_methods_return_is_importable_from_engine() -> None:
    exported = {getattr(engine, name) for name in engine.__all__ if isinstance(getattr(engine, name), type)}
    for name in dir(engine.Transcripts):
        method = getattr(engine.Transcripts, name)
        if name.startswith("_") or not callable(method):
            continue
        returned = typing.get_type_hints(method).get("return")
        for kind in (returned, *typing.get_args(returned)):
            for inner in (kind, *typing.get_args(kind)):
                if isinstance(inner, type) and inner.__module__.startswith("engine"):
                    assert inner in exported, f"Transcripts.{name} returns {inner.__name__}, not in engine.__all__"


def test_the_realtime_layer_and_the_pure_core_load_no_storage() -> None:
    code = (
        "import sys, engine.realtime, engine.realtime.reducer, engine.state.transcript, engine.state.revisions, "
        "engine.decisions; "
        "loaded = [m for m in sys.modules if m.startswith(('eventsourcing', 'engine.store', 'engine.facade'))]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib import metadata

    assert engine.__version__ == metadata.version("transcript-engine")


def test_reason_kinds_name_every_reason_the_engine_records() -> None:
    from engine import Message, Transcripts

    store = Transcripts.open()
    sid = store.create()
    store.append(sid, Message.user("a"))
    revision = store.get(sid).revision
    store.rewrite(sid, 0, 1, [Message.user("b")], reason="edit")
    store.restore(sid, revision)
    store.erase(sid, store.get(sid).messages[0].id or "")
    recorded = {c.reason.kind for c in store.revisions(sid)} | {h.event.reason for h in store.history(sid)[-1:]}
    assert recorded <= set(REASON_KINDS)
    assert {"append", "edit", "restore", "erasure"} <= recorded


#: The layers, lowest first; a module may import its own layer and those below.
#: ``store`` and ``decisions`` are side by side: neither imports the other.
LAYERS = {
    "engine.errors": 0,
    "engine.state": 1,
    "engine.realtime": 2,
    "engine.formats": 2,
    "engine.decisions": 3,
    "engine.store": 3,
    "engine.facade": 4,
    "engine.testing": 5,
    "engine.readmodel": 5,
    "engine.adapters": 5,
    "engine.viewer": 5,
    "engine.cli": 6,
    "engine.__main__": 7,
}


def _layer(module: str) -> str:
    return next(name for name in sorted(LAYERS, key=len, reverse=True) if module.startswith(name))


def test_no_module_imports_up_a_layer_or_across_to_a_peer() -> None:
    import ast
    from pathlib import Path

    root = Path(engine.__file__).parent
    problems = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue  # the public namespace over every layer
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        own = _layer(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module == "engine":
                names = [f"engine.{alias.name}" for alias in node.names]  # a layer's package, or a public name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "engine" or (name.startswith("engine.") and not any(map(name.startswith, LAYERS))):
                    problems.append(f"{module} imports the engine namespace ({name})")
                elif name.startswith("engine."):
                    other = _layer(name)
                    if other != own and LAYERS[other] >= LAYERS[own]:
                        problems.append(f"{module} ({own}) imports {name} ({other})")
    assert problems == []
