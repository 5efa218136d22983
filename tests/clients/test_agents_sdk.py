"""The OpenAI Agents SDK, as its users run it, against the gateway: an agent with a function
tool, run whole (`Runner.run`) and streamed (`Runner.run_streamed`). The upstream asks for the
tool, the SDK runs it and sends its result back, and the upstream answers from it. Each test
checks what the agent got and what the upstream received.

MODELS are the SDK's model classes the agent is given: chat completions, and Responses (the
SDK's default) on a target that speaks it and on a chat-only one, each read on the upstream's
side by its entry in tests/clients/wire.py. Tracing is off: nothing leaves loopback.
"""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent

from tests.clients.wire import MODELS as ALIASES
from tests.clients.wire import WIRES
from tests.conftest import TEAM_KEY

MODELS = {"chat": OpenAIChatCompletionsModel, "responses": OpenAIResponsesModel,
          "responses-converted": OpenAIResponsesModel}
QUESTION = "Weather in Paris?"
ANSWER = "the tool said: 18C and sunny in Paris"
pytestmark = pytest.mark.parametrize("kind", MODELS)


@function_tool
def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {location}"


async def run_agent(gateway, kind: str, streamed: bool):
    """The agent's run and, streamed, the events it yielded."""
    async with AsyncOpenAI(base_url=gateway.url + "/v1", api_key=TEAM_KEY, max_retries=0,
                           timeout=30) as client:
        agent = Agent(name="forecaster", instructions="Answer with the weather.", tools=[get_weather],
                      model=MODELS[kind](ALIASES[kind], openai_client=client),
                      # Over chat completions the SDK asks for a stream's usage only of OpenAI's own URL.
                      model_settings=ModelSettings(include_usage=True))
        config = RunConfig(tracing_disabled=True)
        if not streamed:
            return await Runner.run(agent, QUESTION, run_config=config), []
        result = Runner.run_streamed(agent, QUESTION, run_config=config)
        return result, [event async for event in result.stream_events()]


def check_run(result, primary, kind: str) -> None:
    """The tool was called, its output went back upstream, and the answer came from it."""
    assert result.final_output.strip() == ANSWER
    assert [type(item) for item in result.new_items] == [ToolCallItem, ToolCallOutputItem,
                                                        MessageOutputItem]
    assert result.new_items[1].output == "18C and sunny in Paris"
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    wire = WIRES[kind]
    assert usage.input_tokens == 2 * wire.usage[0] and usage.output_tokens > 0  # as reported
    first, second = wire.bodies(primary.requests)
    assert first["model"] == second["model"] == "upstream-model-a"
    assert wire.tools(first) == wire.tools(second) == ["get_weather"]
    assert wire.prompt(first) == wire.prompt(second) == QUESTION
    assert wire.tool_result(first) is None
    assert wire.tool_result(second) == ("call_test_1", "18C and sunny in Paris")


def test_run(gateway, primary, kind):
    result, _ = asyncio.run(run_agent(gateway, kind, streamed=False))

    check_run(result, primary, kind)
    assert not any(r.json.get("stream") for r in primary.requests)


def test_run_streamed(gateway, primary, kind):
    result, events = asyncio.run(run_agent(gateway, kind, streamed=True))

    check_run(result, primary, kind)
    assert all(r.json["stream"] is True for r in primary.requests)
    deltas = [e.data.delta for e in events
              if e.type == "raw_response_event" and isinstance(e.data, ResponseTextDeltaEvent)]
    assert len(deltas) > 1 and "".join(deltas) == result.final_output  # the answer, in pieces
    assert [e.name for e in events if e.type == "run_item_stream_event"] == [
        "tool_called", "tool_output", "message_output_created"]
