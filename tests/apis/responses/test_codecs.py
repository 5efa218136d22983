"""The Responses surface in process: validation, estimates, and what each codec sends where.

On a config compiled from a few lines of routes.yaml with the shipped profiles, as
`gateway serve` loads it; the same through a real gateway: test_passthrough.py and
test_conversion.py.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.responses.surface import PASSTHROUGH, RESPONSES, TO_CHAT, parse
from gateway.config import Target
from gateway.core.errors import InvalidRequest
from gateway.core.translate import Rejected
from tests.profiles import NOWHERE, targets_on

PROVIDERS = {name: f"{{profile: {name}, {NOWHERE}}}" for name in (
    "openai", "vllm", "generalcompute", "aggregator", "model-api")} | {
    "strict": f"{{profile: generalcompute, {NOWHERE}, unsupported_params: reject}}",
    "demo": "{profile: demo}"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict[str, Target]:
    """A target on each provider, by the provider's name."""
    return targets_on(tmp_path_factory.mktemp("codecs"), PROVIDERS)


def request(**fields) -> dict:
    return parse(orjson.dumps({"model": "m", "input": "Say hi", **fields}))


WEATHER = {"type": "function", "name": "weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
# A conversation as the openai SDK sends it back: the last answer's output items, then the
# function's output (items without `type` are messages).
TURNS = [
    {"role": "user", "content": "Weather in Paris?"},
    {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Look"},
                                                    {"type": "summary_text", "text": "it up."}]},
    {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
     "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
    {"id": "fc_1", "type": "function_call", "call_id": "call_a", "name": "weather",
     "arguments": '{"city": "Paris"}', "status": "completed"},
    {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
    {"type": "function_call_output", "call_id": "call_b",
     "output": [{"type": "input_text", "text": "sunny"}]},
    {"role": "developer", "content": [{"type": "input_text", "text": "Answer in one line."},
                                      {"type": "input_text", "text": "No emoji."}]},
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "And this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
]
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_a", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
    {"role": "system", "content": "Answer in one line.\nNo emoji."},
    {"role": "user", "content": [
        {"type": "text", "text": "And this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                            "detail": "low"}}]},
]


@pytest.mark.parametrize("fields,param,message", [
    ({"input": 5}, "input", "Invalid type for 'input': expected a string or an array, but got "
                            "an integer instead."),
    ({"input": []}, "input", "Invalid 'input': empty array. Expected an array with minimum "
                             "length 1, but got an empty array instead."),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role",
     "Invalid value for 'input[0].role': 'robot'. Supported values are: 'user', 'system', "
     "'developer' or 'assistant'."),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id", "Missing required parameter: 'input[0].call_id'."),
    ({"input": [{"content": "no role, no type"}]}, "input[0].type",
     "Missing required parameter: 'input[0].type'."),
    ({"tools": [{"type": "function"}]}, "tools[0].name",
     "Missing required parameter: 'tools[0].name'."),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type",
     "Invalid value for 'text.format.type': 'yaml'. Supported values are: 'text', "
     "'json_object' or 'json_schema'."),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema",
     "Missing required parameter: 'text.format.schema'."),
    ({"max_output_tokens": 0}, "max_output_tokens", "Invalid value for 'max_output_tokens': "
                                                    "input should be greater than or equal to "
                                                    "1, but got 0 instead."),
    ({"tool_choice": "any"}, "tool_choice", "Invalid value for 'tool_choice': 'any'. Supported "
                                            "values are: 'none', 'auto' or 'required'."),
])
def test_a_request_of_the_wrong_shape_is_a_400_naming_the_field(fields, param, message):
    with pytest.raises(InvalidRequest) as refused:
        request(**fields)
    assert (refused.value.param, refused.value.message) == (param, message)


@pytest.mark.parametrize("name,value", [("background", True),
                                        ("conversation", "conv_1")])
def test_what_the_gateway_does_not_do_is_refused_before_any_target(name, value):
    with pytest.raises(InvalidRequest) as refused:
        request(**{name: value})
    assert refused.value.param == name and refused.value.code == "unsupported_parameter"
    assert request(**{name: None, "background": False})["input"] == "Say hi"


def test_the_estimates_read_every_item():
    plain = request(input="x" * 40, instructions="y" * 8)
    assert RESPONSES.prompt_tokens(plain) == 12 + 4 * 2
    items = request(input=TURNS, tools=[WEATHER])
    texts = ("Weather in Paris?", "Look", "it up.", "Checking.", '{"city": "Paris"}', "{}",
             "18C", "sunny", "Answer in one line.", "No emoji.", "And this?")
    chars = sum(map(len, texts)) + len(orjson.dumps([WEATHER]))
    assert RESPONSES.prompt_tokens(items) == chars // 4 + 1000 + 4 * len(TURNS)
    assert RESPONSES.completion_tokens(request(max_output_tokens=300), 1024) == 300
    assert RESPONSES.completion_tokens(request(), 1024) == 1024


def test_each_target_gets_the_codec_of_the_api_it_speaks(targets):
    for name in ("openai", "vllm"):
        assert RESPONSES.codec(targets[name]) is PASSTHROUGH
    for name in ("generalcompute", "aggregator", "model-api", "demo"):
        assert RESPONSES.codec(targets[name]) is TO_CHAT
    assert all(RESPONSES.served_by(t) for t in targets.values())


def test_passthrough_sends_the_request_as_it_is_with_store_false(targets):
    payload = request(input=TURNS, instructions="Be brief.", tools=[WEATHER],
                      max_output_tokens=50, temperature=3, reasoning={"effort": "high"},
                      text={"format": {"type": "json_object"}}, metadata={"a": "b"},
                      store=True, top_k=5, stream_options={"include_obfuscation": False})
    sent = PASSTHROUGH.translate(payload, targets["vllm"], stream=True)

    assert sent.body == {"model": "up-vllm", "input": TURNS, "tools": [WEATHER],
                         "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 3,
                         "reasoning": {"effort": "high"}, "text": {"format": {"type": "json_object"}},
                         "metadata": {"a": "b"}, "top_k": 5, "store": False, "stream": True,
                         "stream_options": {"include_obfuscation": False}}
    openai = PASSTHROUGH.translate(payload, targets["openai"], stream=False).body
    assert openai["temperature"] == 2 and "top_k" not in openai  # its rules: clamped; no extras
    assert openai["store"] is False and "stream" not in openai


def test_built_in_tools_reach_only_a_native_target_whose_profile_lists_them(targets):
    payload = request(tools=[WEATHER, {"type": "web_search"}])
    sent = PASSTHROUGH.translate(payload, targets["openai"], stream=False)
    assert sent.body["tools"] == [WEATHER, {"type": "web_search"}]

    with pytest.raises(Rejected) as native:
        PASSTHROUGH.translate(payload, targets["vllm"], stream=False)
    assert native.value.param == "tools[1]"
    assert native.value.message == ("Tool 'web_search' (tools[1]) is not available on provider "
                                    "'vllm' (profile 'vllm'), which takes function tools.")
    with pytest.raises(Rejected) as converted:
        TO_CHAT.translate(payload, targets["generalcompute"], stream=False)
    assert converted.value.param == "tools[1]"
    assert converted.value.message.startswith(
        "Tool 'web_search' (tools[1]) cannot be sent to provider 'generalcompute' (profile "
        "'generalcompute'), which speaks chat completions only: built-in tools run where ")


def test_conversion_writes_the_items_as_chat_messages_in_the_chat_dialect(targets):
    payload = request(input=TURNS, instructions="Be brief.", tools=[WEATHER],
                      tool_choice={"type": "function", "name": "weather"},
                      max_output_tokens=50, temperature=0.5, user="u1", store=True,
                      metadata={"a": "b"}, parallel_tool_calls=True)
    sent = TO_CHAT.translate(payload, targets["generalcompute"], stream=True)

    assert sent.body == {
        "model": "up-generalcompute", "messages": MESSAGES,  # reasoning: not taken there
        "temperature": 0.5, "user": "u1",
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "The weather in a city.",
            "parameters": WEATHER["parameters"]}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "max_tokens": 50, "stream": True, "stream_options": {"include_usage": True}}
    assert sent.adjusted == ["max_output_tokens"]  # named as the client sent it
    assert sent.dropped == ["parallel_tool_calls"]  # generalcompute does not document it
    assert sent.hide_usage


def test_reasoning_goes_back_under_the_dialects_name_and_effort_by_its_rules(targets):
    payload = request(input=TURNS[:3], reasoning={"effort": "xhigh", "summary": "auto"},
                      text={"format": {"type": "json_schema", "name": "answer", "strict": True,
                                       "schema": {"type": "object"}}, "verbosity": "low"})
    sent = TO_CHAT.translate(payload, targets["model-api"], stream=False)
    assert sent.body["messages"][1] == {"role": "assistant", "content": "Checking.",
                                        "reasoning_content": "Look\n\nit up."}
    assert sent.body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object"}, "strict": True}}
    assert sorted(sent.dropped) == ["reasoning.effort", "text.verbosity"]

    aggregator = TO_CHAT.translate(payload, targets["aggregator"], stream=False)
    assert aggregator.body["reasoning_effort"] == "high"  # its map: xhigh -> high
    assert "reasoning_content" not in aggregator.body["messages"][1]  # in_messages: drop
    assert "reasoning.effort" in aggregator.adjusted
    with pytest.raises(Rejected) as refused:
        TO_CHAT.translate(request(reasoning={"effort": "high"}), targets["strict"], stream=False)
    assert refused.value.param == "reasoning.effort"
    assert refused.value.message.startswith("Parameter 'reasoning.effort' (sent as "
                                            "'reasoning_effort') is not supported for provider "
                                            "'strict'")


def test_conversion_drops_or_refuses_by_the_policy_what_only_changes_the_extras(targets):
    fields = {"include": ["message.output_text.logprobs"], "top_logprobs": 3,
              "truncation": "auto", "stop": ["x"]}
    sent = TO_CHAT.translate(request(**fields, max_tool_calls=2), targets["generalcompute"],
                             stream=False)
    assert sorted(sent.dropped) == ["include", "stop", "top_logprobs", "truncation"]
    assert set(sent.body) == {"model", "messages"}

    for name, value in fields.items():
        with pytest.raises(Rejected) as refused:
            TO_CHAT.translate(request(**{name: value}), targets["strict"], stream=False)
        assert refused.value.param == name
    quiet = TO_CHAT.translate(request(include=[], truncation="disabled"), targets["strict"],
                              stream=False)
    assert quiet.dropped == []


@pytest.mark.parametrize("fields,param,why", [
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type",
     "Input item type 'item_reference' (input[0])"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type",
     "Input item type 'web_search_call' (input[0])"),
    ({"input": [{"type": "", "role": "user", "content": "Hi"}]}, "input[0].type",
     "Input item type '' (input[0])"),  # only a missing type makes a message (the fuzz's 500)
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type", "Content part type 'input_file' (input[0].content[0])"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url", "a file uploaded to OpenAI cannot be read there"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": [
        {"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].output[0].type", "Content part type 'input_image' (input[0].output[0])"),
    ({"tool_choice": {"type": "file_search"}}, "tool_choice", "Tool choice 'file_search'"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt", "a prompt template is stored at OpenAI"),
])
def test_conversion_refuses_what_would_change_the_answer_under_either_policy(targets, fields,
                                                                            param, why):
    for name in ("generalcompute", "strict"):
        with pytest.raises(Rejected) as refused:
            TO_CHAT.translate(request(**fields), targets[name], stream=False)
        assert refused.value.param == param
        assert why in refused.value.message
        assert f"provider '{name}' (profile 'generalcompute'), which speaks chat completions " \
               "only" in refused.value.message
