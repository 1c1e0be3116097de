"""`make demo`: record an agent conversation in a SQLite file, then print its
timeline and a time-travel view of an earlier version; branch it; and ingest
a sample OpenAI Realtime voice trace (written for this project, beside this
file) into a second session; then look at the store with the command-line
tool (sessions, the fork tree, a search, and a picture of the graph).

    python examples/demo.py demo.db
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import Message, Session, ToolResult, ToolUse, Transcript, Transcripts, Usage

TRACE = Path(__file__).with_name("openai-realtime-sample.jsonl")


def record(store: Transcripts) -> str:
    sid = store.create(title="Trip planning", metadata={"channel": "web"}, actor="frontend")
    store.append(
        sid,
        Message.system("You are a concise travel assistant."),
        Message.user("Is it worth taking the train from Oslo to Bergen in March?"),
        actor="frontend",
    )
    store.append(
        sid,
        Message.assistant(
            "Let me check the forecast first.",
            ToolUse(id="call_1", name="weather", arguments='{"route": "Oslo-Bergen", "month": "March"}'),
        ),
        usage=Usage(input=412, output=38),
        actor="agent",
    )
    store.append(sid, Message.tool_results(ToolResult.of("call_1", "Snow on the mountain pass, clear valleys.")))
    store.append(
        sid,
        Message.assistant("Yes: the Bergen line is at its most scenic in snow. Book a window seat on the left."),
        usage=Usage(input=470, output=25, cache_read=400),
        actor="agent",
    )
    store.update_metadata(sid, {"resolved": True}, actor="agent")
    store.set_title(sid, "Oslo to Bergen by train", actor="summariser")
    return sid


def show(session: Session, heading: str) -> None:
    print(f"\n{heading}")
    print(f"  version {session.version}, {len(session.messages)} messages, revision {session.revision[:19]}…")
    print(f"  title {session.title!r}, usage {session.usage.input} in / {session.usage.output} out")
    marks = {True: " (incomplete)", False: ""}
    for index, message in enumerate(session.messages):
        calls = "".join(f" [calls {use.name}]" for use in message.tool_uses)
        results = [block for block in message.blocks if isinstance(block, ToolResult)]
        text = message.text or "; ".join(f"{r.tool_use_id} -> {r.content[0].text}" for r in results)  # type: ignore[union-attr]
        cut = [b.truncated_at_ms for b in message.blocks if isinstance(b, Transcript) and b.truncated_at_ms]
        cut_note = f" [cut at {cut[0]} ms]" if cut else ""
        print(f"  {index:>2} {message.role:<12} {text[:70]}{calls}{marks[message.incomplete]}{cut_note}")


def main(path: str) -> None:
    for suffix in ("", "-wal", "-shm", ".read.db", ".read.db-wal", ".read.db-shm"):  # fresh files each run
        Path(path + suffix).unlink(missing_ok=True)
    with Transcripts.open(path) as store:
        sid = record(store)

    # A new store object on the same file sees everything: the log is the truth.
    with Transcripts.open(path) as store:
        print(f"Session {sid} in {path}\n\nTimeline")
        for entry in store.history(sid):
            who = entry.actor or "-"
            print(f"  v{entry.version:<2} {entry.at:%H:%M:%S.%f}  {who:<10} {entry.kind:<18} {entry.summary}")

        show(store.get(sid), "Now")
        earlier = store.get(sid, at=3)
        show(earlier, "Time travel: as of version 3 (before the tool answered)")
        assert store.get(sid, at=earlier.revision).revision == earlier.revision

        # Edit and retry: branch from the user's question with a new question.
        branch = store.fork_replacing(sid, 1, Message.user("Is the night train from Oslo to Bergen worth it?"))
        store.append(branch, Message.assistant("Yes: you sleep through the mountains and wake up in Bergen."))
        show(store.get(branch), f"A branch (fork_replacing message 1), lineage depth {store.lineage(branch).depth}")

        # Another branch, from before the tool call; then the original is compacted.
        retry = store.fork_at(sid, 2)
        store.append(retry, Message.assistant("In March the pass is snowy: scenic, but check the forecast."))
        store.rewrite(
            sid,
            1,
            4,
            [Message.user("Is the Oslo-Bergen train worth it in March? (The weather tool said: snow on the pass.)")],
            "compaction",
            note="folded the tool call into the question",
            actor="compactor",
        )
        show(store.get(sid), "After a compaction rewrite (the branches keep what they had)")

        # A voice call: raw realtime server events, delivered with duplicates.
        voice = store.create(title="Voice call")
        trace = [json.loads(line) for line in TRACE.read_text().splitlines()]
        outcomes = store.ingest_many(voice, trace + trace[5:12], provider="openai")
        counts = {status: sum(o.status == status for o in outcomes) for status in sorted({o.status for o in outcomes})}
        print(f"\nRealtime: {len(outcomes)} raw events ingested: {counts}")
        show(store.get(voice), "The voice call")

    # The same store from the shell: `transcripts` (or `python -m engine`).
    picture = str(Path(path).with_suffix(".svg"))
    for command in (
        ["sessions", path],
        ["tree", path, sid],
        ["search", path, "scenic"],
        ["graph", path, sid, "--svg", picture],
    ):
        print(f"\n$ transcripts {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, "-m", "engine", *command], check=True)

    # The same store in a web browser (read-only; Ctrl-C stops it).
    tool = os.path.relpath(Path(sys.executable).parent / "transcripts")
    print(f"\nBrowse this store (then open http://127.0.0.1:8765/):\n  {tool} serve {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo.db")
