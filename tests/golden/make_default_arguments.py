"""Writes the golden store of revisions hashed before content digests were
canonical. Never rerun it: the committed file is what every later version
must keep loading.

    python tests/golden/make_default_arguments.py tests/golden/store-v0.3-default-arguments.db

Builds up to 0.3 hashed a message as msgspec encodes it, and msgspec leaves a
field out only when it holds the default object itself: a ``ToolUse`` made
with ``arguments="{}"`` (any "{}" but the class's own) was hashed with its
arguments, one made without them was hashed without. This store holds both,
in every kind of event that can carry a tool call: appends (several messages
in one event too), a rewrite, a restore, a fork replacing a block, and an
erasure. It writes the states it reads back beside the store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from engine import Message, ReplaceBlock, Text, ToolResult, ToolUse, Transcripts
from engine.state.revisions import format_revision


def _explicit_empty() -> str:
    return "".join(["{", "}"])  # "{}", another object than ToolUse's default


def main(path: str) -> None:
    target = Path(path)
    if target.exists():
        sys.exit(f"{target} exists; the golden store is written once and never replaced")
    store = Transcripts.open(str(target), snapshot_interval=3)
    sid = store.create(session_id="calls")
    store.append(sid, Message.user("What time is it?"))
    store.append(sid, Message.assistant(ToolUse(id="c1", name="clock", arguments=_explicit_empty())))
    store.append(sid, Message.tool_results(ToolResult.of("c1", "noon")))
    store.append(sid, Message.assistant(ToolUse(id="c2", name="clock")))  # the default object: left out
    store.append(sid, Message.tool_results(ToolResult.of("c2", "still noon")))
    store.append(
        sid,
        Message.assistant(
            Text(text="Both clocks."),
            ToolUse(id="c3", name="clock", arguments=_explicit_empty()),
            ToolUse(id="c4", name="calendar", arguments=_explicit_empty()),
        ),
        Message.tool_results(ToolResult.of("c3", "noon"), ToolResult.of("c4", "Monday")),
        Message.assistant("Noon on Monday."),
    )
    before_rewrite = store.get(sid).revision
    store.rewrite(
        sid,
        7,
        8,
        [
            Message.assistant(ToolUse(id="c5", name="clock", arguments=_explicit_empty())),
            Message.tool_results(ToolResult.of("c5", "12:00")),
            Message.assistant("It is 12:00."),
        ],
        "edit",
    )
    block = ToolUse(id="c1", name="clock", arguments=_explicit_empty())
    store.fork_replacing(sid, 1, ReplaceBlock(index=0, block=block), child_id="calls-fork")
    store.restore(sid, before_rewrite)
    erased = store.create(session_id="erased")
    store.append(erased, Message.user("Call it."))
    store.append(erased, Message.assistant(ToolUse(id="e1", name="secret", arguments=_explicit_empty())))
    store.append(erased, Message.tool_results(ToolResult.of("e1", "the secret")))
    secret = store.get(erased).messages[2].id
    assert secret is not None
    store.erase(erased, secret)
    store.close()

    reader = Transcripts.open(str(target))
    expected = {}
    for info in reader.sessions():
        session = reader.get(info.id)
        expected[info.id] = {
            "version": session.version,
            "revision": session.revision,
            "messages": msgspec.to_builtins(list(session.messages)),
            "revisions_by_version": [reader.get(info.id, at=v).revision for v in range(1, session.version + 1)],
            "prefix_revisions": [
                format_revision(session.messages.revision_at(length)) for length in range(len(session.messages) + 1)
            ],
        }
    reader.close()
    target.with_suffix(".expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
