"""Writes the golden store once. Never rerun it for a released format: the
committed file is what every future version must keep loading.

    python tests/golden/make_golden.py tests/golden/store-v0.1.db   # by 0.1
    python tests/golden/make_golden.py tests/golden/store-v0.2.db   # the packed log
    python tests/golden/make_golden.py tests/golden/store-v0.3.db   # the text form, snapshot digests
    python tests/golden/make_golden.py tests/golden/store-v0.4.db   # ids named after revisions

It records every event type as today's code writes it, plus one row in the
older ``UsageRecorded.v1`` shape (flat ``input_tokens``/``output_tokens``) to
exercise the upcaster, and writes the expected states beside the store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from engine import Image, Message, Reasoning, ToolResult, ToolUse, Transcript, Transcripts, Usage
from engine.store import Record, SessionRow, head_of


def main(path: str) -> None:
    target = Path(path)
    if target.exists():
        sys.exit(f"{target} exists; the golden store is written once and never replaced")
    store = Transcripts.open(str(target), snapshot_interval=4)
    sid = store.create(title="Golden", metadata={"tier": "gold", "n": 1}, actor="golden", session_id="golden-1")
    store.append(sid, Message.system("Be terse."), Message.user("Weather in Oslo?", Transcript(text="weather in oslo")))
    store.append(
        sid,
        Message.assistant(
            Reasoning(text="need a tool", signature="sig"),
            ToolUse(id="call_1", name="weather", arguments='{"city":"Oslo"}'),
        ),
        usage=Usage(input=20, output=5, cache_read=3, cache_write=1, reasoning=2),
        actor="agent",
    )
    results: tuple[ToolResult, ...] = (ToolResult.of("call_1", "rain"),)
    if target.name == "store-v0.1.db":  # 0.1 let a result answer a call no message made; later versions refuse it
        results += (ToolResult.of("call_x", "boom", is_error=True),)
    store.append(sid, Message.tool_results(*results))
    image = Image(media_type="image/png", data=b"\x89PNG\r\n")
    store.append(sid, Message.assistant("Rain.", image, provider_item_id="item_9"))
    store.update_metadata(sid, {"resolved": True}, remove=["n"], actor="golden")
    store.set_title(sid, "Golden (renamed)")
    # One row in the legacy v1 usage shape, written through the storage contract.
    head = store.get(sid)
    legacy = msgspec.json.encode(
        {"kind": "usage_recorded", "at": head.updated_at, "actor": "legacy", "input_tokens": 7, "output_tokens": 11}
    )
    version = head.version + 1
    backend = store._repository.backend
    record = Record(version, "UsageRecorded.v1", legacy)
    row = SessionRow(
        sid,
        head.title,
        head.created_at.isoformat(),
        head.updated_at.isoformat(),
        len(head.messages),
        head.revision,
        version,
        head_of(sid, [*backend.read(sid), record]).hex(),  # the chain head (0.1 had none: the field came later)
    )
    backend.append(sid, [record], row)
    store.get(sid)  # catch up with the row written behind the facade
    store.append(sid, Message.user("Thanks"), actor="user")
    store.rewrite(sid, 1, 2, [Message.user("Weather in Oslo tomorrow?")], "edit", note="typo", actor="user")
    store.rewrite(sid, 0, 1, [], "redaction", actor="golden")
    first_revision = store.revisions(sid)[0].revision
    store.restore(sid, first_revision, actor="golden")
    second = store.create(session_id="golden-2")
    store.append(second, Message.user("second session"))
    fork = store.fork_replacing(sid, 1, Message.user("Weather in Bergen?"), child_id="golden-fork")
    store.append(fork, Message.assistant("Rain, as ever."))
    store.fork(fork, child_id="golden-fork-of-fork")
    store.fork_at(sid, 1, child_id="golden-fork-at")
    store.close()

    reader = Transcripts.open(str(target))
    expected = {}
    for info in reader.sessions():
        session = reader.get(info.id)
        expected[info.id] = {
            "version": session.version,
            "revision": session.revision,
            "title": session.title,
            "metadata": dict(session.metadata),
            "usage": msgspec.to_builtins(session.usage),
            "messages": msgspec.to_builtins(list(session.messages)),
            "history": [[h.version, h.kind, h.actor, h.revision] for h in reader.history(info.id)],
            "revisions_by_version": [reader.get(info.id, at=v).revision for v in range(1, session.version + 1)],
            "commits": [[c.version, c.generation, c.reason.kind, c.revision] for c in reader.revisions(info.id)],
            "lineage": [session.lineage.root, session.lineage.depth, session.lineage.source],
        }
    reader.close()
    target.with_suffix(".expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
