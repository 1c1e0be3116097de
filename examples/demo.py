"""`make demo`: record an agent conversation in a SQLite file, then print its
timeline and a time-travel view of an earlier version.

    python examples/demo.py demo.db
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine import Message, Session, ToolResult, ToolUse, Transcripts, Usage


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
    for index, message in enumerate(session.messages):
        calls = "".join(f" [calls {use.name}]" for use in message.tool_uses)
        results = [block for block in message.blocks if isinstance(block, ToolResult)]
        text = message.text or "; ".join(f"{r.tool_use_id} -> {r.content[0].text}" for r in results)  # type: ignore[union-attr]
        print(f"  {index:>2} {message.role:<12} {text[:70]}{calls}")


def main(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):  # a fresh demo file each run
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

        print("\nSessions in the store")
        for info in store.sessions():
            print(f"  {info.id}  {info.title!r}  {info.message_count} messages, version {info.version}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo.db")
