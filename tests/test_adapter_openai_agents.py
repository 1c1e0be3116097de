"""The OpenAI Agents SDK session (``engine.adapters.openai_agents``) with the
real SDK, offline: ``Runner.run`` end to end with a scripted model that calls
a tool, on every backend; the protocol's own semantics next to the SDK's
``SQLiteSession`` on the same items; and what the SDK's sessions lack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled  # the dev extra has it
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)

from engine import InvalidArgument, InvalidTranscriptShape, Text, Transcripts
from engine.adapters.openai_agents import TranscriptSession
from tests.conftest import StoreFactory

set_tracing_disabled(True)  # offline: nothing to export traces to


class ScriptedModel(Model):
    """A model that answers with the next scripted output and records the
    input it was given (what the session replayed)."""

    def __init__(self, outputs: list[list[Any]]) -> None:
        self.outputs = list(outputs)
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        self.inputs.append(json.loads(json.dumps(input)))
        return ModelResponse(output=self.outputs.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the tests run without streaming")


def _text(text: str, item_id: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=item_id,
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _call(call_id: str, name: str, arguments: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}", type="function_call", call_id=call_id, name=name, arguments=arguments, status="completed"
    )


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"Snow in {city}."


@pytest.fixture
def store(stores: StoreFactory) -> Iterator[Transcripts]:
    yield stores.open()


def test_runner_runs_end_to_end_with_a_tool_and_a_second_turn(store: Transcripts) -> None:
    model = ScriptedModel(
        [
            [_call("call_1", "weather", '{"city": "Bergen"}'), _call("call_2", "weather", '{"city": "Oslo"}')],
            [_text("Snow in both.", "msg_1")],
            [_text("You asked about Bergen and Oslo.", "msg_2")],
        ]
    )
    agent = Agent(name="guide", instructions="Be brief.", model=model, tools=[weather])
    session = TranscriptSession("trip", store)

    async def run() -> None:
        first = await Runner.run(agent, "Weather in Bergen and Oslo?", session=session)
        assert first.final_output == "Snow in both."
        second = await Runner.run(agent, "What did I ask?", session=session)
        assert second.final_output == "You asked about Bergen and Oslo."

    asyncio.run(run())
    # The second model call was given the whole first turn back from the store.
    replayed = model.inputs[2]
    assert replayed[0] == {"content": "Weather in Bergen and Oslo?", "role": "user"}
    assert [item.get("type") for item in replayed[1:5]] == [
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert replayed[3]["output"] == "Snow in Bergen." and replayed[4]["output"] == "Snow in Oslo."
    assert replayed[5]["content"][0]["text"] == "Snow in both." and replayed[5]["id"] == "msg_1"
    assert replayed[6] == {"content": "What did I ask?", "role": "user"}
    # In the transcript: user, the two calls in one assistant message, their
    # results in one tool_results message, the answer, user, answer.
    messages = store.get("trip").messages
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "assistant", "user", "assistant"]
    assert [use.id for use in messages[1].tool_uses] == ["call_1", "call_2"]
    assert messages[3].text == "Snow in both."


ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "Is the Bergen line scenic?"},
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "The user asks about a railway."}],
    },
    {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "lookup",
        "arguments": '{"q":"Bergen line"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "Very scenic."},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Yes, very.", "annotations": [], "logprobs": []}],
    },
    {"role": "user", "content": "Thanks!"},
]


def test_the_protocol_behaves_as_the_sdks_sqlite_session(store: Transcripts, tmp_path: Any) -> None:
    """The same calls on the SDK's SQLiteSession and on ours give the same
    answers (expected values are the items themselves, as added)."""
    ours = TranscriptSession("s", store)
    theirs = SQLiteSession("s", str(tmp_path / "sdk.db"))

    async def both(call: str, *args: Any) -> Any:
        mine = await getattr(ours, call)(*args)
        sdk = await getattr(theirs, call)(*args)
        assert mine == sdk, (call, args)
        return mine

    async def run() -> None:
        assert await both("get_items") == []
        assert await both("pop_item") is None
        await both("add_items", ITEMS[:4])
        await both("add_items", ITEMS[4:])
        assert await both("get_items") == ITEMS
        for limit in (1, 2, 3, 5, 6, 10, 0, -1):
            expected = [] if limit == 0 else ITEMS if limit < 0 else ITEMS[-limit:]
            assert await both("get_items", limit) == expected
        assert await both("pop_item") == ITEMS[5]
        assert await both("pop_item") == ITEMS[4]
        assert await both("get_items") == ITEMS[:4]
        await both("add_items", [ITEMS[4]])
        assert await both("get_items", 2) == ITEMS[3:5]
        await both("clear_session")
        assert await both("get_items") == []
        assert await both("pop_item") is None
        await both("add_items", [])
        assert await both("get_items") == []

    asyncio.run(run())
    theirs.close()


def test_pop_and_clear_are_audited_rewrites_not_deletions(store: Transcripts) -> None:
    session = TranscriptSession("s", store, actor="support-bot")

    async def run() -> None:
        await session.add_items(ITEMS)
        before = await session.revision()
        assert await session.pop_item() == ITEMS[-1]
        await session.clear_session()
        assert await session.get_items() == []
        assert await session.items_at(before) == ITEMS  # time travel to before the pop

    asyncio.run(run())
    history = store.history("s")
    assert [(entry.kind, entry.actor) for entry in history[-2:]] == [
        ("messages_rewritten", "support-bot"),
        ("messages_rewritten", "support-bot"),
    ]
    assert [entry.event.reason for entry in history[-2:]] == ["pop_item", "clear_session"]


def test_fork_at_a_turn_keeps_that_turn_and_edit_and_retry_replaces_it(store: Transcripts) -> None:
    session = TranscriptSession("s", store)
    model = ScriptedModel([[_text("Bergen is rainy.", "msg_9")]])
    agent = Agent(name="guide", model=model)

    async def run() -> None:
        await session.add_items(ITEMS)
        first_turn = await session.fork_at(0)
        assert await first_turn.get_items() == ITEMS[:5]
        assert await (await session.fork_at(1)).get_items() == ITEMS
        retry = await session.edit_and_retry(0, "Is Bergen rainy?")
        assert await retry.get_items() == [{"role": "user", "content": "Is Bergen rainy?"}]
        result = await Runner.run(agent, [], session=retry)
        assert result.final_output == "Bergen is rainy."
        assert (await retry.get_items())[-1]["id"] == "msg_9"
        assert await session.get_items() == ITEMS  # the original is untouched
        with pytest.raises(InvalidArgument, match="no turn 2"):
            await session.fork_at(2)

    asyncio.run(run())
    assert model.inputs == [[{"role": "user", "content": "Is Bergen rainy?"}]]
    assert store.lineage(first_turn_id(store)).source == "s"


def first_turn_id(store: Transcripts) -> str:
    return next(info.id for info in store.sessions() if info.id != "s")


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([{"type": "web_search_call", "id": "ws_1", "status": "completed"}], "items\\[0\\]"),
        (["hello"], "items\\[0\\] is a str"),
        ([{"role": "user", "content": "ok"}, {"role": "user", "content": float("nan")}], "items\\[1\\]"),
        ({"role": "user", "content": "hi"}, "a list of items"),
        # Found by an adversarial pass: JSON text gives these back changed
        # (a list, "1"), and 1 and "1" as keys kept one value.
        (
            [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}], "x": (1, 2)}],
            r"items\[0\]\['x'\] is a tuple, which would not come back as itself from the store; pass a list",
        ),
        (
            [{"role": "user", "content": [{"type": "input_text", "text": "hi", "logprobs": [{1: "a", "1": "b"}]}]}],
            r"items\[0\]\['content'\]\[0\]\['logprobs'\]\[0\] keys must be str, got 1",
        ),
    ],
)
def test_items_it_cannot_hold_are_refused_and_nothing_is_written(store: Transcripts, items: Any, problem: str) -> None:
    session = TranscriptSession("s", store)

    async def run() -> None:
        await session.add_items([ITEMS[0]])
        with pytest.raises(InvalidArgument, match=problem):
            await session.add_items(items)
        assert await session.get_items() == [ITEMS[0]]

    asyncio.run(run())


def test_an_edit_through_the_store_shows_in_the_items(store: Transcripts) -> None:
    from engine import Message

    session = TranscriptSession("s", store)
    asyncio.run(session.add_items(ITEMS[:1]))
    assert asyncio.run(session.get_items()) == ITEMS[:1]  # read (and its items checked) before the edit
    store.rewrite("s", 0, 1, [Message.user("Is the Flåm line scenic?")], "edit")
    items = asyncio.run(session.get_items())
    assert len(items) == 1 and items[0]["role"] == "user"
    assert json.dumps(items[0], ensure_ascii=False).count("Flåm") == 1
    # An edit that keeps a message's id and kept items but changes its content, after a read: made anew.
    asyncio.run(session.clear_session())
    asyncio.run(session.add_items(ITEMS[:1]))
    assert asyncio.run(session.get_items()) == ITEMS[:1]
    [message] = store.get("s").messages
    assert message.provider_data is not None
    edited = msgspec.structs.replace(message, blocks=(Text(text="Is the Rauma line scenic?"),))
    store.rewrite("s", 0, 1, [edited], "edit")
    assert store.get("s").messages[0].id == message.id
    assert "Rauma" in json.dumps(asyncio.run(session.get_items()))


def test_two_store_objects_take_turns_on_one_conversation(stores: StoreFactory) -> None:
    """As two web workers would: each writes after the other, with its own cache."""
    first, second = TranscriptSession("s", stores.open()), TranscriptSession("s", stores.open())

    async def run() -> None:
        for number in range(6):
            writer = first if number % 2 == 0 else second
            await writer.get_items(2)
            await writer.add_items([{"role": "user", "content": f"q{number}"}])
            await writer.pop_item() if number == 5 else None
        assert [item["content"] for item in await first.get_items()] == [f"q{n}" for n in range(5)]

    asyncio.run(run())


SDK_SHAPES: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}]},
    {
        "id": "fc_3",
        "type": "function_call",
        "call_id": "call_3",
        "name": "lookup",
        "namespace": "maps",
        "arguments": "{}",
    },
    {"type": "function_call_output", "call_id": "call_3", "output": "found"},
    {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "phase": "final_answer",
        "content": [{"type": "refusal", "refusal": "I cannot help with that."}],
    },
]


def test_item_fields_the_transcript_does_not_hold_come_back_as_added(store: Transcripts) -> None:
    session = TranscriptSession("s", store)
    asyncio.run(session.add_items(SDK_SHAPES))
    assert asyncio.run(session.get_items()) == SDK_SHAPES
    messages = store.get("s").messages
    assert messages[3].text == "I cannot help with that." and messages[3].provider_item_id == "msg_2"
    store.erase("s", "msg_2")  # by the SDK item's id
    items = asyncio.run(session.get_items())
    assert items[:3] == SDK_SHAPES[:3]
    assert items[3]["role"] == "assistant" and "cannot help" not in json.dumps(items[3])


def test_settings_as_a_dict_and_ids_the_store_cannot_hold(store: Transcripts) -> None:
    session = TranscriptSession("s", store, session_settings={"limit": 1})
    asyncio.run(session.add_items(ITEMS))
    assert asyncio.run(session.get_items()) == ITEMS[-1:]
    for bad in ("", "a\nb", "x" * 1000):
        with pytest.raises(InvalidArgument, match="session id"):
            TranscriptSession(bad, store)
    deep: Any = "x"
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(InvalidArgument, match="items\\[0\\]"):
        asyncio.run(session.add_items([{"role": "user", "content": "hi", "extra": deep}]))


PARALLEL: list[dict[str, Any]] = [
    {"role": "user", "content": "Book both trains."},
    {"type": "function_call", "call_id": "c1", "name": "book", "arguments": '{"train":1}'},
    {"type": "function_call", "call_id": "c2", "name": "book", "arguments": '{"train":2}'},
    {"type": "function_call_output", "call_id": "c2", "output": "booked 2"},
]
APPROVED: list[dict[str, Any]] = [
    {"type": "function_call_output", "call_id": "c1", "output": "booked 1"},
    {"role": "assistant", "content": "Both are booked."},
]


def test_a_turn_answered_in_part_stays_open_until_its_last_output(store: Transcripts, tmp_path: Any) -> None:
    """What the SDK stores while a human approval of one of two parallel calls
    is pending, then after it: the same as SQLiteSession, call by call."""
    ours, theirs = TranscriptSession("s", store), SQLiteSession("s", str(tmp_path / "sdk.db"))

    async def both(call: str, *args: Any) -> Any:
        mine = await getattr(ours, call)(*args)
        assert mine == await getattr(theirs, call)(*args), (call, args)
        return mine

    async def run() -> None:
        await both("add_items", PARALLEL)
        assert await both("get_items") == PARALLEL
        # The turn stays open: its calls, then the one output that came.
        messages = store.get("s").messages
        assert [m.role for m in messages] == ["user", "assistant", "tool_results"]
        assert [block.tool_use_id for block in messages[2].blocks] == ["c2"]
        await both("add_items", APPROVED)
        assert await both("get_items") == PARALLEL + APPROVED
        assert [m.role for m in store.get("s").messages] == ["user", "assistant", "tool_results", "assistant"]
        assert await both("pop_item") == APPROVED[1]
        assert await both("pop_item") == APPROVED[0]  # one of two outputs: the turn is open again
        assert await both("get_items") == PARALLEL
        assert await both("pop_item") == PARALLEL[3]
        assert await both("pop_item") == PARALLEL[2]
        assert await both("get_items") == PARALLEL[:2]
        await both("add_items", [PARALLEL[2]])  # a call of the same turn, added on its own
        await both("add_items", [PARALLEL[3], *APPROVED])
        assert await both("get_items") == PARALLEL + APPROVED

    asyncio.run(run())
    theirs.close()
    kinds = [entry.event.reason for entry in store.history("s") if entry.kind == "messages_rewritten"]
    # The last add_items left the turn's calls as they were and added its
    # outputs and answer after them: an append, with nothing rewritten.
    assert kinds == ["add_items", "pop_item", "pop_item", "pop_item", "pop_item", "add_items"]
    rewritten = [entry.event for entry in store.history("s") if entry.kind == "messages_rewritten"]
    assert (rewritten[0].start, rewritten[0].end) == (2, 3)  # only the outputs, not the turn's calls again


def test_a_transcript_made_from_items_converts_back_to_responses_items(store: Transcripts) -> None:
    from engine.formats import from_openai_responses, to_openai_responses

    asyncio.run(TranscriptSession("s", store).add_items(ITEMS))
    messages = list(store.get("s").messages)
    assert [m.role for m in messages] == ["user", "assistant", "tool_results", "assistant", "user"]
    back = from_openai_responses(to_openai_responses(messages))  # strict: nothing lost
    assert [m.digest for m in back] == [m.digest for m in messages]


def test_an_output_without_its_call_says_what_to_do(store: Transcripts) -> None:
    session = TranscriptSession("s", store)
    asyncio.run(session.add_items(ITEMS[:3]))  # a call, not answered yet
    with pytest.raises(InvalidTranscriptShape, match="function_call_output before the next input"):
        asyncio.run(session.add_items([{"role": "user", "content": "never mind"}]))
    with pytest.raises(InvalidArgument, match=r"^items\[1\]\.type"):
        asyncio.run(session.add_items([ITEMS[3], {"type": "web_search_call", "id": "ws_1"}]))
    assert asyncio.run(TranscriptSession("new", store).history()) == []


def test_a_model_turn_with_reasoning_or_text_after_its_calls_is_kept_whole(store: Transcripts, tmp_path: Any) -> None:
    # Found by a pass with the real SDK: a model output of [reasoning, call a,
    # reasoning, call b] (or [call, message]) was split into two assistant
    # messages, the first one's calls answered only after the second, and
    # add_items refused the turn after both tools had run.
    def reasoning(item_id: str) -> ResponseReasoningItem:
        return ResponseReasoningItem(id=item_id, type="reasoning", summary=[], encrypted_content=f"enc-{item_id}")

    for name, first in (
        ("interleaved", [reasoning("rs_1"), _call("a", "weather", '{"city":"Oslo"}'), reasoning("rs_2"),
                         _call("b", "weather", '{"city":"Bergen"}')]),
        ("text-after", [_call("a", "weather", '{"city":"Oslo"}'), _text("Checking...", "msg_0")]),
    ):  # fmt: skip
        outputs = [first, [_text("Snow in both.", "msg_9")]]
        results = {}
        for session in (TranscriptSession(name, store), SQLiteSession(name, str(tmp_path / "sdk.db"))):
            agent = Agent(name="a", model=ScriptedModel([list(outputs[0]), list(outputs[1])]), tools=[weather])
            assert asyncio.run(Runner.run(agent, "Weather?", session=session)).final_output == "Snow in both."
            results[type(session).__name__] = asyncio.run(session.get_items())
        calls = [item for item in first if item.type == "function_call"]
        # Written from the run: the input, the model's output as it came, one output per call, the answer.
        expected_types = ["message", *(item.type for item in first), *["function_call_output"] * len(calls), "message"]
        assert [item.get("type", "message") for item in results["TranscriptSession"]] == expected_types
        assert results["TranscriptSession"] == results["SQLiteSession"]
        messages = store.get(name).messages
        assert [message.role for message in messages] == ["user", "assistant", "tool_results", "assistant"]
        assert [use.id for use in messages[1].tool_uses] == [call.call_id for call in calls]


def test_a_tool_output_image_keeps_its_detail(store: Transcripts) -> None:
    # The docs say image detail stays in the kept items; for a tool's output
    # image it was refused ("'high' would be lost") after the tool had run.
    items = [
        {"role": "user", "content": "Look."},
        _call("c1", "camera", "{}").model_dump(exclude_none=True),
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": [{"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"}],
        },
    ]
    session = TranscriptSession("s", store)
    asyncio.run(session.add_items(items))
    assert asyncio.run(session.get_items()) == items
    [result] = store.get("s").messages[2].blocks
    assert result.content[0].ref == "https://example.com/a.png"  # type: ignore[union-attr]


def test_many_session_objects_over_one_store_keep_every_item(store: Transcripts) -> None:
    # Found with the real SDK's usage pattern (a session object per task):
    # each object wrapped the store anew, so their calls on one conversation
    # raced, and with 24 writers some add_items gave up with RevisionConflict
    # (SQLiteSession kept every item). Expected: every item kept.
    writers, turns = 24, 4

    async def writer(number: int) -> None:
        session = TranscriptSession("s", store)
        for turn in range(turns):
            await session.get_items()
            await session.add_items([{"role": "user", "content": f"w{number} q{turn}"}])
            await session.add_items([{"role": "assistant", "content": f"w{number} a{turn}"}])

    async def run() -> None:
        await asyncio.gather(*(writer(number) for number in range(writers)))

    asyncio.run(run())
    texts = sorted(message.text for message in store.get("s").messages)
    assert texts == sorted(f"w{n} {kind}{t}" for n in range(writers) for t in range(turns) for kind in ("q", "a"))


def test_erasing_by_an_items_id_and_erased_outputs_keep_the_items_in_step(store: Transcripts) -> None:
    # Found by a second adversarial pass: a turn whose first item is its
    # reasoning was found by that item's id only, so erase(sid, "msg_...")
    # as the docs show it was refused; and erased outputs gave no items at
    # all, so their calls went to the model unanswered and get_items(limit=2)
    # was not the last two of get_items().
    session = TranscriptSession("s", store)
    turn = [
        {"role": "user", "content": "Balance?"},
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "e1"},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking account 12345678.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "balance", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "acct 12345678: 250 EUR"},
        {"role": "assistant", "content": "You have 250 EUR."},
    ]  # fmt: skip
    asyncio.run(session.add_items(turn))
    outputs = store.get("s").messages[2]
    assert outputs.role == "tool_results"
    store.erase("s", outputs.id)  # type: ignore[arg-type]
    items = asyncio.run(session.get_items())
    # Written from the turn: the call stays, answered by an empty output, as the formats send an erased result.
    assert items[:2] == turn[:2] and items[3] == turn[3] and items[5] == turn[5]
    assert items[4]["type"] == "function_call_output" and items[4]["call_id"] == "c1" and not items[4]["output"]
    for limit in range(1, 7):
        assert asyncio.run(session.get_items(limit)) == items[-limit:]
    store.erase("s", "msg_1")  # by the id of the turn's message item: its reasoning, text and call go together
    items = asyncio.run(session.get_items())
    assert "12345678" not in json.dumps(items)
    # The input, the erased turn as one empty message, no output (its call is gone), the answer.
    assert items == [turn[0], {"type": "message", "role": "assistant", "content": []}, turn[5]]
    for limit in range(1, 4):
        assert asyncio.run(session.get_items(limit)) == items[-limit:]
