"""The openai SDK's Responses client, as its users use it, against a native target (the vllm
profile) and a converted one (the generalcompute profile): `responses.create`, `responses.stream`
with its final response, a function-tool round trip, `responses.parse` with a pydantic model,
and errors in the SDK's own types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from tests.apis.responses.conftest import KEY
from tests.upstream import Reply

TARGETS = {"native": "/v1/responses", "converted": "/v1/chat/completions"}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"], "additionalProperties": False},
           "strict": True}


@pytest.fixture
def sdk(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0,
                       timeout=30) as client:
        yield client


def upstream_of(model: str, native, chat_only):
    return native if model == "native" else chat_only


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_create_plain_and_streamed(sdk, native, chat_only, model):
    upstream = upstream_of(model, native, chat_only)
    answer = sdk.responses.create(model=model, instructions="Be brief.",
                                  input="Say this is a test", max_output_tokens=30)

    assert answer.object == "response" and answer.model == model
    assert answer.status == "completed"
    assert answer.output_text == "echo: Say this is a test"
    assert answer.usage.total_tokens == answer.usage.input_tokens + answer.usage.output_tokens
    assert upstream.last.path == TARGETS[model]

    with sdk.responses.stream(model=model, input="one two three") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas).strip() == "echo: one two three"
    assert final.output_text.strip() == "echo: one two three"
    assert final.status == "completed" and final.model == model
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_a_function_tool_round_trip(sdk, native, chat_only, model):
    upstream = upstream_of(model, native, chat_only)
    history: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = sdk.responses.create(model=model, input=history, tools=[WEATHER])

    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "Paris"}
    history += first.output  # as the SDK's users do: the answer's items, then the output
    history.append({"type": "function_call_output", "call_id": call.call_id,
                    "output": json.dumps({"temperature": "18C"})})
    second = sdk.responses.create(model=model, input=history, tools=[WEATHER])

    assert second.output_text == 'the tool said: {"temperature": "18C"}'  # the upstream's answer
    sent = upstream.last.json
    if model == "native":
        assert sent["input"][-1] == {"type": "function_call_output", "call_id": call.call_id,
                                     "output": '{"temperature": "18C"}'}
    else:
        assert sent["messages"][-2:] == [
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": call.call_id, "type": "function",
                "function": {"name": "get_weather", "arguments": call.arguments}}]},
            {"role": "tool", "tool_call_id": call.call_id, "content": '{"temperature": "18C"}'}]
        assert sent["tools"][0]["function"]["strict"] is True

    with sdk.responses.stream(model=model, input=history[:1], tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    [streamed] = [item for item in final.output if item.type == "function_call"]
    assert streamed.call_id == call.call_id and streamed.arguments == call.arguments


class Echo(BaseModel):
    echo: str


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_text_format_json_schema_with_parse(sdk, native, chat_only, model):
    upstream = upstream_of(model, native, chat_only)
    parsed = sdk.responses.parse(model=model, input="structured please", text_format=Echo)

    assert parsed.output_parsed == Echo(echo="structured please")
    sent = upstream.last.json
    if model == "native":
        assert sent["text"]["format"]["type"] == "json_schema"
        assert sent["text"]["format"]["name"] == "Echo"
    else:  # generalcompute takes JSON mode only: its rule sends json_schema as json_object
        assert sent["response_format"] == {"type": "json_object"}


def test_errors_in_the_sdks_own_types(sdk, native, chat_only):
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.responses.create(model="no-such-model", input="x")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as built_in:
        sdk.responses.create(model="converted", input="x", tools=[{"type": "web_search"}])
    assert built_in.value.param == "tools[0]" and "web_search" in built_in.value.message
    with pytest.raises(openai.BadRequestError) as wrong:
        sdk.responses.create(model="native", input="x", max_output_tokens=0)
    assert wrong.value.param == "max_output_tokens"

    native.then(Reply(status=503, json={"error": {"message": "busy"}}))
    raw = sdk.responses.with_raw_response.create(model="native-then-chat", input="again")
    assert raw.headers["x-gateway-attempts"] == "2"
    assert raw.parse().output_text == "echo: again"
