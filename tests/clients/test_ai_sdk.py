"""The Vercel AI SDK (`ai`, `@ai-sdk/openai`), run by node as its users run it, against the gateway:
generateText, streamText, a two-step tool call and generateObject. Each test checks what the
client got and what the upstream received.

The scripts (tests/clients/node/ai_sdk.mjs) take the model kind: "chat" is
`createOpenAI(...).chat(model)`; "responses" is `openai(model)`, the provider's default, which
speaks /v1/responses ("responses-converted": the same, to a chat-only target). The first
test of a session runs `npm ci` unless node_modules is current.
"""

from __future__ import annotations

import json

import pytest

from tests.clients import node_scripts
from tests.clients.wire import MODELS, WIRES
from tests.conftest import TEAM_KEY

KINDS = ["chat", "responses", "responses-converted"]

pytestmark = [pytest.mark.parametrize("kind", KINDS),
              pytest.mark.timeout(300)]  # the session's first test may run `npm ci`


@pytest.fixture
def ai_sdk(gateway, kind):
    """Run one scenario of ai_sdk.mjs with the `kind` model; its result."""
    env = {"GATEWAY_BASE_URL": gateway.url + "/v1", "GATEWAY_API_KEY": TEAM_KEY,
           "GATEWAY_MODEL": MODELS[kind]}
    script_kind = "responses" if kind == "responses-converted" else kind
    return lambda scenario: node_scripts.run("ai_sdk.mjs", script_kind, scenario, env=env)


@pytest.fixture
def wire(kind):
    return WIRES[kind]


def test_generate_text(ai_sdk, wire, primary, kind):
    result = ai_sdk("generateText")

    assert result["text"] == "echo: Hello, gateway"
    assert result["finishReason"] == "stop"
    assert result["modelId"] == MODELS[kind]  # the alias it asked for, not the upstream's name
    usage = result["usage"]
    assert (usage["inputTokens"], usage["outputTokens"], usage["totalTokens"]) == wire.usage
    [sent] = wire.bodies(primary.requests)
    assert sent["model"] == "upstream-model-a"
    assert wire.prompt(sent) == "Hello, gateway"
    assert not sent.get("stream")


def test_stream_text(ai_sdk, wire, primary, kind):
    result = ai_sdk("streamText")

    assert result["text"] == "".join(result["deltas"])
    assert result["text"].strip() == "echo: one two three"
    assert len(result["deltas"]) > 1  # it came in pieces, as streamed
    assert result["finishReason"] == "stop" and result["modelId"] == MODELS[kind]
    assert result["usage"]["inputTokens"] == wire.usage[0] and result["usage"]["outputTokens"] > 0
    [sent] = wire.bodies(primary.requests)
    assert sent["stream"] is True
    assert wire.prompt(sent) == "one two three"


def test_two_step_tool_call(ai_sdk, wire, primary):
    result = ai_sdk("toolSteps")

    call, answer = result["steps"]
    assert call["finishReason"] == "tool-calls"
    assert call["toolCalls"] == [{"toolName": "weather", "input": {"location": "Paris"}}]
    assert call["toolResults"] == [{"toolName": "weather", "output": "18C and sunny in Paris"}]
    assert answer["finishReason"] == "stop"
    assert result["text"] == answer["text"] == "the tool said: 18C and sunny in Paris"
    assert result["totalUsage"]["inputTokens"] == 2 * wire.usage[0]  # both steps, as reported
    first, second = wire.bodies(primary.requests)
    assert wire.tools(first) == wire.tools(second) == ["weather"]
    assert wire.tool_result(first) is None
    assert wire.tool_result(second) == ("call_test_1", "18C and sunny in Paris")


def test_generate_object(ai_sdk, wire, primary):
    primary.then(wire.answer(json.dumps({"city": "Paris", "celsius": 18})))

    result = ai_sdk("generateObject")

    assert result == {"object": {"city": "Paris", "celsius": 18}, "finishReason": "stop"}
    [sent] = wire.bodies(primary.requests)
    schema = wire.schema(sent)
    assert schema["properties"] == {"city": {"type": "string"}, "celsius": {"type": "number"}}
    assert sorted(schema["required"]) == ["celsius", "city"]
