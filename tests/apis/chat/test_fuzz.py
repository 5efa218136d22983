"""Hypothesis against POST /v1/chat/completions on a running gateway, with raw bodies.

Requests a schema-driven fuzzer would not write: nested content parts, any
unicode (lone surrogates included), integers past 64 bits, nulls where objects
go, JSON nested thousands deep, duplicate keys, bytes that are not JSON. The
property: every answer is a chat completion (200) or an OpenAI-shaped error
with a 4xx status, within seconds. Examples per test: GATEWAY_FUZZ_EXAMPLES
(default 30); `GATEWAY_FUZZ_EXAMPLES=2000` is the long run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, TIMEOUT, answered, deep_json, fuzzed_gateway, json_values
from tests.gateway_process import GatewayProcess

KEY = "sk-fuzz-chat-0123456789"
pytestmark = TIMEOUT


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with fuzzed_gateway(tmp_path_factory.mktemp("fuzz-chat"), "512KiB", f"""
        providers:
          up: {{profile: vllm, base_url: "{{upstream}}"}}
          demo: {{profile: demo}}
        models:
          m: {{targets: [{{provider: up, model: m}}]}}
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """) as process:
        yield process


@pytest.fixture(scope="module")
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def check(http: httpx.Client, body: bytes) -> None:
    started = time.monotonic()
    response = http.post("/v1/chat/completions", content=body, headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    answer = answered(response, started)
    if answer is not None:
        assert answer["object"] in ("chat.completion",) and answer["choices"], answer


content_parts = st.lists(st.fixed_dictionaries({"type": st.sampled_from(
    ["text", "image_url", "input_audio", "", "TEXT"])}, optional={
    "text": json_values, "image_url": json_values | st.fixed_dictionaries(
        {"url": st.text(max_size=40)})}), max_size=4)
messages = st.lists(st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "robot"])
    | json_values,
    "content": st.text() | content_parts | json_values,
    "tool_calls": json_values, "name": json_values, "tool_call_id": json_values,
}), max_size=4)
requests = st.fixed_dictionaries({"model": st.just("m") | json_values, "messages": messages},
                                 optional={name: json_values for name in (
                                     "stream", "n", "max_tokens", "temperature", "stop", "tools",
                                     "response_format", "stream_options", "logit_bias",
                                     "seed", "top_logprobs", "reasoning_effort", "metadata")})


@FUZZ
@given(request=requests)
def test_any_json_request_gets_a_completion_or_a_4xx(http, request):
    check(http, json.dumps(request).encode())


# Every field a message may carry, and shapes close to right (a tool call whose parts are
# anything), so that each field is reached on each role, not only on the roles that are typical.
MESSAGE_FIELDS = ("content", "tool_calls", "function_call", "name", "tool_call_id",
                  "reasoning_content", "reasoning", "refusal", "audio", "role")
near_tool_calls = st.lists(st.fixed_dictionaries({}, optional={
    "id": json_values, "type": json_values,
    "function": json_values | st.fixed_dictionaries({}, optional={
        "name": json_values, "arguments": json_values})}) | json_values, max_size=3)
BASE = {"system": {"content": "be brief"}, "developer": {"content": "be brief"},
        "user": {"content": "hi"}, "assistant": {"content": "hello"},
        "tool": {"content": "42", "tool_call_id": "call_1"}, "function": {"content": "42",
                                                                           "name": "f"}}


@FUZZ
@given(role=st.sampled_from(sorted(BASE)), field=st.sampled_from(MESSAGE_FIELDS),
       value=json_values | near_tool_calls | content_parts, model=st.sampled_from(["m", "demo"]),
       stream=st.booleans(), where=st.sampled_from(["first", "last"]))
def test_any_json_value_in_any_message_field_on_any_role(http, role, field, value, model,
                                                          stream, where):
    message = {"role": role, **BASE[role], field: value}
    others = [{"role": "user", "content": "hi"}]
    messages = [message, *others] if where == "first" else [*others, message]
    check(http, json.dumps({"model": model, "messages": messages, "stream": stream}).encode())


@pytest.mark.parametrize("field,value", [
    ("tool_calls", [1]), ("tool_calls", "abc"), ("tool_calls", [{"function": "f"}]),
    ("reasoning_content", {"a": 1}), ("function_call", 7),
])
@pytest.mark.parametrize("role", ["user", "system", "tool"])
def test_assistant_fields_on_other_roles_are_a_400_naming_the_field(http, role, field, value):
    """Found by a probe: these crashed the prompt estimate (a 500)."""
    message = {"role": role, **BASE[role], field: value}
    response = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                         json={"model": "m", "messages": [message]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == f"messages[0].{field}"


@FUZZ
@given(tools=json_values | st.lists(st.fixed_dictionaries({"type": st.just("function")}, optional={
    "function": json_values | st.fixed_dictionaries({"name": json_values}, optional={
        "parameters": json_values})}), max_size=3),
       tool_choice=json_values | st.sampled_from(["auto", "none", "required"])
       | st.fixed_dictionaries({"type": json_values}, optional={"function": json_values}),
       stream=st.booleans())
def test_any_tools_and_tool_choice_on_the_demo_model(http, tools, tool_choice, stream):
    check(http, json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}],
                            "tools": tools, "tool_choice": tool_choice, "stream": stream}).encode())


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF))
def test_any_unicode_and_lone_surrogates(http, text, surrogate):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    check(http, body.encode())
    check(http, body.replace('"content": ', f'"content": "\\u{surrogate:04x}", "x": ', 1).encode())


@FUZZ
@given(inner=deep_json)
def test_deeply_nested_json(http, inner):
    check(http, ('{"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": '
                 + inner + "}").encode())


@FUZZ
@given(first=json_values, second=json_values)
def test_duplicate_keys(http, first, second):
    check(http, ('{"model": ' + json.dumps(first) + ', "model": ' + json.dumps(second)
                 + ', "messages": [{"role": "user", "content": "a", "content": '
                 + json.dumps(second) + "}]}").encode())


@FUZZ
@given(body=st.binary(max_size=300))
def test_bytes_that_are_not_json(http, body):
    check(http, body)
