"""Hypothesis strategies for transcripts, engine commands and realtime streams.

Written by hand: ``st.builds`` would ignore the rules a valid message follows
(which blocks a role may hold, tool pairing), so every strategy here only
generates values the engine accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from engine.state.content import Image, Message, Reasoning, Text, ToolResult, ToolUse, Transcript, Usage
from engine.testing.traces import assistant_audio, transcription, user_audio

__all__ = [
    "Append",
    "Command",
    "Create",
    "Fork",
    "Restore",
    "Rewrite",
    "SetTitle",
    "commands",
    "deliveries",
    "messages",
    "realtime_conversations",
    "texts",
    "tool_exchanges",
    "transcripts",
    "usages",
]


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text without surrogates (which no JSON encoder can store)."""
    return st.text(alphabet=st.characters(codec="utf-8"), max_size=max_size)


def usages() -> st.SearchStrategy[Usage]:
    counts = st.integers(0, 100_000)
    return st.builds(
        lambda i, o, r, w, z: Usage(input=i, output=o, cache_read=r, cache_write=w, reasoning=z),
        counts,
        counts,
        counts,
        counts,
        counts,
    )


_images = st.one_of(
    st.builds(lambda data: Image(media_type="image/png", data=data), st.binary(min_size=1, max_size=16)),
    st.builds(lambda ref: Image(media_type="image/png", ref=ref), st.from_regex(r"blob:[a-f0-9]{8}", fullmatch=True)),
)


def messages(roles: tuple[str, ...] = ("system", "user", "assistant")) -> st.SearchStrategy[Message]:
    """Messages without tool uses (see :func:`tool_exchanges` for those)."""
    choices = []
    if "system" in roles:
        choices.append(st.builds(Message.system, texts()))
    if "user" in roles:
        user_blocks = st.one_of(
            st.builds(lambda t: Text(text=t), texts()), st.builds(lambda t: Transcript(text=t), texts()), _images
        )
        choices.append(st.builds(lambda b: Message(role="user", blocks=tuple(b)), st.lists(user_blocks, max_size=3)))
    if "assistant" in roles:
        assistant_blocks = st.one_of(
            st.builds(lambda t: Text(text=t), texts()),
            st.builds(lambda t: Transcript(text=t), texts()),
            st.builds(lambda t: Reasoning(text=t), texts()),
            st.builds(
                lambda t, signature, item_id: Reasoning(text=t, signature=signature, item_id=item_id),
                texts(),
                st.none() | st.text(min_size=1, max_size=8),
                st.none() | st.just("rs_1"),
            ),
        )
        choices.append(
            st.builds(
                lambda b: Message(role="assistant", blocks=tuple(b)), st.lists(assistant_blocks, min_size=1, max_size=3)
            )
        )
    if not choices:
        raise ValueError("roles must include system, user or assistant")
    return st.one_of(choices)


@st.composite
def tool_exchanges(draw: st.DrawFn) -> list[Message]:
    """An assistant message with tool uses, then the tool_results answering
    exactly those ids (in any order, some as errors)."""
    count = draw(st.integers(1, 3))
    ids = draw(
        st.lists(st.from_regex(r"call_[a-z0-9]{4}", fullmatch=True), min_size=count, max_size=count, unique=True)
    )
    names = st.sampled_from(["search", "weather", "calculator"])
    uses = [ToolUse(id=i, name=draw(names), arguments=draw(st.sampled_from(["{}", '{"q": "x"}']))) for i in ids]
    results = [ToolResult.of(i, draw(texts(20)), is_error=draw(st.booleans())) for i in draw(st.permutations(ids))]
    preface = draw(st.lists(st.builds(lambda t: Text(text=t), texts()), max_size=1))
    return [Message(role="assistant", blocks=(*preface, *uses)), Message.tool_results(*results)]


@st.composite
def transcripts(draw: st.DrawFn, max_turns: int = 6) -> list[Message]:
    """A whole valid transcript: turns of plain messages and tool exchanges."""
    result: list[Message] = []
    for _ in range(draw(st.integers(0, max_turns))):
        if draw(st.booleans()):
            result += draw(tool_exchanges())
        else:
            result.append(draw(messages()))
    return result


# -- engine commands ------------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    title: str | None


@dataclass(frozen=True)
class Append:
    session: int  # which session: taken modulo the number created so far
    messages: tuple[Message, ...]
    usage: Usage | None


@dataclass(frozen=True)
class SetTitle:
    session: int
    title: str | None


@dataclass(frozen=True)
class Rewrite:
    session: int
    start: float  # where in the transcript, as a fraction of its length
    end: float
    replacement: tuple[Message, ...]
    reason: str


@dataclass(frozen=True)
class Restore:
    session: int
    version: float  # which past version, as a fraction of the session's history


@dataclass(frozen=True)
class Fork:
    session: int
    kind: str  # "fork", "fork_at" or "fork_replacing"
    index: float
    replacement_text: str


Command = Create | Append | SetTitle | Rewrite | Restore | Fork

_fractions = st.floats(0, 1)
_sessions = st.integers(0, 1_000)


def commands(max_size: int = 20) -> st.SearchStrategy[list[Command]]:
    """Sequences of engine commands, starting with a ``Create``. Positions
    are fractions, resolved against the session when the command runs, so
    every generated sequence is meaningful whatever came before."""
    titles = st.none() | texts(20).filter(lambda t: "\x00" not in t)
    command = st.one_of(
        st.builds(Create, titles),
        st.builds(Append, _sessions, st.lists(messages(), min_size=1, max_size=3).map(tuple), st.none() | usages()),
        st.builds(SetTitle, _sessions, titles),
        st.builds(
            Rewrite,
            _sessions,
            _fractions,
            _fractions,
            st.lists(messages(), max_size=2).map(tuple),
            st.sampled_from(["edit", "compaction", "redaction", "truncation"]),
        ),
        st.builds(Restore, _sessions, _fractions),
        st.builds(Fork, _sessions, st.sampled_from(["fork", "fork_at", "fork_replacing"]), _fractions, texts(20)),
    )
    return st.tuples(st.builds(Create, titles), st.lists(command, max_size=max_size)).map(lambda t: [t[0], *t[1]])


# -- realtime streams --------------------------------------------------------------------


@st.composite
def realtime_conversations(draw: st.DrawFn, max_turns: int = 3) -> list[list[dict[str, Any]]]:
    """An OpenAI Realtime (GA) conversation as causal chains of raw server
    events: chain ``3k`` is turn k's user item, ``3k + 1`` its transcription,
    ``3k + 2`` the response. Each chain keeps its order; :func:`deliveries`
    keeps what the provider's causality requires between them."""
    chains: list[list[dict[str, Any]]] = []
    previous = None
    words = st.lists(st.sampled_from(["yes ", "no ", "maybe ", "the ", "train ", "left."]), min_size=1, max_size=4)
    tag = draw(st.integers(0, 10**6))
    for turn in range(draw(st.integers(1, max_turns))):
        user, assistant = f"u{tag}_{turn}", f"a{tag}_{turn}"
        chains.append(user_audio(user, previous))
        chains.append([transcription(user, draw(st.sampled_from(["Hi.", "Why?", "Go on."])))])
        status = draw(st.sampled_from(["completed", "completed", "cancelled"]))
        chains.append(assistant_audio(f"r{tag}_{turn}", assistant, user, draw(words), status=status))
        previous = assistant
    return chains


_ANNOUNCED = 3  # a response's chain announces its item with its third event (see traces.assistant_audio)


@st.composite
def deliveries(draw: st.DrawFn, chains: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One way the provider might deliver ``chains``: a causality-respecting
    interleaving, with some events delivered twice and, maybe, a reconnect
    that replays a suffix. Causality: a transcription follows its user item's
    first event; a response starts after its user item was announced; the
    next user item is committed after the previous response's item was
    announced (its ``previous_item_id`` names it), and may arrive before that
    response ends (barge-in)."""
    positions = [0] * len(chains)
    delivered: list[dict[str, Any]] = []
    remaining = sum(map(len, chains))

    def allowed(i: int) -> bool:
        if i % 3 == 1:
            return positions[i - 1] > 0
        if i % 3 == 2:
            return positions[i - 2] == len(chains[i - 2])
        return i == 0 or positions[i - 1] >= _ANNOUNCED

    while remaining:
        remaining -= 1
        ready = [i for i, chain in enumerate(chains) if positions[i] < len(chain) and allowed(i)]
        index = draw(st.sampled_from(ready))
        delivered.append(chains[index][positions[index]])
        positions[index] += 1
        if draw(st.integers(0, 9)) == 0:
            delivered.append(delivered[-1])  # delivered twice
    replay: bool = draw(st.booleans())
    if delivered and replay:
        delivered += delivered[draw(st.integers(0, len(delivered) - 1)) :]  # a reconnect replays a suffix
    return delivered
