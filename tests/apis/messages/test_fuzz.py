"""Hypothesis against POST /v1/messages and /v1/messages/count_tokens, with raw bodies.

As tests/apis/responses/test_fuzz.py does for Responses: messages of every shape
and near-shape (strings, content blocks of every type and none, sources, nulls),
tools custom and server, tool choices, thinking and output_config variants, every
parameter with any JSON value, to chat-only targets (the conversion, three
profiles), to the demo, and to targets that speak Messages (the vllm and
anthropic profiles, on the strict test upstream of tests/upstream_messages.py),
streamed or not. The property: within seconds, every answer is a message (200),
an Anthropic event stream that ends with message_stop or an `error` event, or an
Anthropic-shaped 4xx error with a `request-id`; count_tokens answers a count or
such an error. Examples per test: GATEWAY_FUZZ_EXAMPLES (default 30).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.apis.messages.errors import type_of
from tests.apis.messages.conftest import KEY, sse_events
from tests.fuzzing import FUZZ, TIMEOUT, deep_json, json_values
from tests.gateway_process import GatewayProcess, serving

pytestmark = TIMEOUT
MODELS = ("native", "native-anthropic", "converted", "converted-strict", "converted-agg", "demo")
COUNT = "/v1/messages/count_tokens"
UNWRITABLE = ("Integer exceeds 64-bit range", "surrogates not allowed")


@pytest.fixture(scope="module")
def gateway(messages_upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    url = messages_upstream.url
    with serving(tmp_path_factory.mktemp("messages-fuzz"), f"""
        server: {{max_body_bytes: 256KiB}}
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: vllm, base_url: "{url}", api_key: "sk-messages-fuzz-provider-1"}}
          anth: {{profile: anthropic, base_url: "{url}", api_key: "sk-messages-fuzz-provider-2"}}
          chat: {{profile: generalcompute, base_url: "{url}"}}
          chat-strict: {{profile: generalcompute, base_url: "{url}", unsupported_params: reject}}
          chat-agg: {{profile: aggregator, base_url: "{url}"}}
          demo: {{profile: demo}}
        models:
          native: {{targets: [{{provider: up, model: native-model}}]}}
          native-anthropic: {{targets: [{{provider: anth, model: claude-model}}]}}
          converted: {{targets: [{{provider: chat, model: chat-model}}]}}
          converted-strict: {{targets: [{{provider: chat-strict, model: chat-model}}]}}
          converted-agg: {{targets: [{{provider: chat-agg, model: agg-model}}]}}
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """) as process:
        yield process


def _in_time(started: float) -> None:
    assert time.monotonic() - started < 10


def _anthropic_error(response: httpx.Response) -> None:
    """A 4xx in Anthropic's shape, its type the one of its status, with a request-id."""
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert set(answer) == {"type", "error"} and answer["type"] == "error", answer
    assert set(answer["error"]) == {"type", "message"} and answer["error"]["message"], answer
    assert answer["error"]["type"] == type_of(response.status_code), answer
    assert response.headers["request-id"] == response.headers["x-request-id"]
    # orjson's errors are TypeErrors, so the pipeline's 400 for what JSON cannot carry on
    # would also word any other TypeError: only orjson's own reasons may be given.
    if "cannot relay" in answer["error"]["message"]:
        assert any(why in answer["error"]["message"] for why in UNWRITABLE), answer


def check(http: httpx.Client, body: bytes) -> None:
    """POST /v1/messages: a message, a whole Anthropic event stream, or an Anthropic 4xx."""
    started = time.monotonic()
    response = http.post("/v1/messages", content=body,
                         headers={"Content-Type": "application/json"})
    _in_time(started)
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.status_code == 200
        events = sse_events(response)
        assert events, response.text
        assert [name for name, _ in events] == [data["type"] for _, data in events]
        assert events[0][0] in ("message_start", "error"), events[0]
        assert events[-1][0] in ("message_stop", "error"), events[-1]
        assert [name for name, _ in events].count("message_start") <= 1
        return
    if response.status_code != 200:
        return _anthropic_error(response)
    answer = response.json()
    assert (answer["type"], answer["role"]) == ("message", "assistant"), answer
    assert type(answer["content"]) is list and type(answer["usage"]["input_tokens"]) is int


def check_count(http: httpx.Client, body: bytes) -> None:
    """POST /v1/messages/count_tokens: a count, or an Anthropic 4xx."""
    started = time.monotonic()
    response = http.post(COUNT, content=body, headers={"Content-Type": "application/json"})
    _in_time(started)
    if response.status_code != 200:
        return _anthropic_error(response)
    count = response.json()["input_tokens"]
    assert type(count) is int and count >= 0


texts = st.text(max_size=20)
names = st.sampled_from(["get_weather", "lookup", ""]) | texts
BLOCK_TYPES = ["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "document", "search_result", "server_tool_use", "web_search_tool_result",
               "image_url", "input_text"]
sources = st.fixed_dictionaries(
    {"type": st.sampled_from(["base64", "url", "file"]) | json_values},
    optional={"media_type": st.sampled_from(["image/png", "application/pdf"]) | json_values,
              "data": texts | json_values, "url": texts | json_values,
              "file_id": texts | json_values})
cache = st.fixed_dictionaries({"type": st.just("ephemeral") | json_values},
                              optional={"ttl": json_values}) | json_values
parts = st.fixed_dictionaries({"type": st.sampled_from(BLOCK_TYPES) | json_values},
                              optional={"text": texts | json_values, "source": sources,
                                        "cache_control": cache})
blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(BLOCK_TYPES) | json_values},
    optional={"text": texts | json_values, "source": sources | json_values,
              "id": texts | json_values, "name": names | json_values,
              "input": st.dictionaries(texts, json_values, max_size=2) | json_values,
              "tool_use_id": texts | json_values,
              "content": texts | st.lists(parts, max_size=2) | json_values,
              "is_error": json_values, "thinking": texts | json_values,
              "signature": texts | json_values, "data": texts | json_values,
              "cache_control": cache})
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | json_values,
     "content": texts | st.lists(blocks, max_size=3) | json_values})
tools = st.lists(st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124", "function"])
    | json_values,
    "name": names | json_values, "description": texts | json_values,
    "input_schema": st.just({"type": "object"}) | json_values, "cache_control": cache}),
    max_size=3)
tool_choices = st.fixed_dictionaries(
    {"type": st.sampled_from(["auto", "any", "tool", "none", "required"]) | json_values},
    optional={"name": names | json_values, "disable_parallel_tool_use": json_values})
thinkings = st.fixed_dictionaries(
    {"type": st.sampled_from(["enabled", "disabled", "adaptive", "between_tools"])
     | json_values},
    optional={"budget_tokens": st.integers(-5, 40_000) | json_values})
output_configs = st.fixed_dictionaries({}, optional={
    "effort": st.sampled_from(["low", "medium", "high", "xhigh", "max", "none"]) | json_values,
    "format": st.fixed_dictionaries({"type": st.just("json_schema") | json_values},
                                    optional={"schema": st.just({"type": "object"})
                                              | json_values})})
PARAMS = ("system", "max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k",
          "metadata", "service_tier", "container", "context_management", "mcp_servers",
          "cache_control", "inference_geo", "max_completion_tokens", "n", "user",
          "reasoning_effort")
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | json_values,
     "messages": st.lists(messages, max_size=3) | json_values},
    optional={"tools": tools | json_values, "tool_choice": tool_choices | json_values,
              "thinking": thinkings | json_values, "output_config": output_configs | json_values,
              **{name: json_values for name in PARAMS}})


@FUZZ
@given(request=requests)
def test_any_json_request_gets_a_message_or_a_4xx(http, request):
    body = json.dumps(request).encode()
    check(http, body)
    check_count(http, body)


# Values close to right, so that each parameter's own checks are reached on every target.
near_blocks = st.one_of(
    st.builds(lambda text: {"type": "text", "text": text}, texts),
    st.builds(lambda data, kind: {"type": "image", "source": {
        "type": "base64", "media_type": kind, "data": data}},
        st.sampled_from(["iVBORw0KGgo=", ""]), st.sampled_from(["image/png", "image/gif"])),
    st.builds(lambda url: {"type": "image", "source": {"type": "url", "url": url}}, texts),
    st.builds(lambda i, name, args: {"type": "tool_use", "id": i, "name": name, "input": args},
              st.sampled_from(["toolu_1", "call_test_1", ""]), names,
              st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)),
    st.builds(lambda i, content, error: {"type": "tool_result", "tool_use_id": i,
                                         "content": content, "is_error": error},
              st.sampled_from(["toolu_1", "toolu_test_1", "call_test_1"]),
              texts | st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts),
                               max_size=2) | st.none(), st.booleans() | st.none()),
    st.builds(lambda text, signature: {"type": "thinking", "thinking": text,
                                       "signature": signature}, texts, texts | st.none()),
    st.builds(lambda data: {"type": "redacted_thinking", "data": data}, texts),
    st.builds(lambda: {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                      "data": "a page"}}))
near_contents = texts | st.lists(near_blocks, min_size=1, max_size=3)
near_messages = st.lists(near_contents, min_size=1, max_size=4).map(  # turns as they alternate
    lambda contents: [{"role": ("user", "assistant")[i % 2], "content": content}
                      for i, content in enumerate(contents)]) | st.lists(st.builds(
                          lambda role, content: {"role": role, "content": content},
                          st.sampled_from(["user", "assistant"]), near_contents),
                          min_size=1, max_size=4)
near_tools = st.lists(st.one_of(
    st.builds(lambda name, description: {"name": name, "description": description,
                                         "input_schema": {"type": "object", "properties": {
                                             "location": {"type": "string"}}}},
              names, texts | st.none()),
    st.sampled_from([{"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
                     {"type": "custom", "name": "lookup", "input_schema": {"type": "object"}},
                     {"type": "bash_20250124", "name": "bash"}])), max_size=3)
near = {"system": texts | st.lists(st.builds(lambda t: {"type": "text", "text": t,
                                                        "cache_control": {"type": "ephemeral"}},
                                             texts), max_size=2) | st.none(),
        "tools": near_tools,
        "tool_choice": st.builds(lambda kind, name, one: {
            "type": kind, "name": name, "disable_parallel_tool_use": one},
            st.sampled_from(["auto", "any", "tool", "none"]), names, st.booleans()),
        "thinking": st.sampled_from([{"type": "disabled"}, {"type": "adaptive"}])
        | st.builds(lambda budget: {"type": "enabled", "budget_tokens": budget},
                    st.integers(-1, 40_000)),
        "output_config": st.fixed_dictionaries({}, optional={
            "effort": st.sampled_from(["low", "high", "max"]),
            "format": st.just({"type": "json_schema", "schema": {"type": "object"}})}),
        "stop_sequences": st.lists(texts, max_size=3), "temperature": st.floats(-1, 3),
        "top_p": st.floats(-1, 2), "top_k": st.integers(-1, 100),
        "metadata": st.fixed_dictionaries({}, optional={"user_id": texts | st.none()}),
        "service_tier": st.sampled_from(["auto", "standard_only", "priority"]),
        "context_management": st.just({"edits": [{"type": "clear_tool_uses_20250919"}]}),
        "speed": st.just("fast")}


@FUZZ
@given(model=st.sampled_from(MODELS), stream=st.booleans(),
       max_tokens=st.integers(1, 5000) | st.integers(1, 100) | st.sampled_from([0, -1, 2**63]),
       messages=near_messages, fields=st.fixed_dictionaries({}, optional=near))
def test_near_valid_requests_on_every_target(http, model, stream, max_tokens, messages, fields):
    body = json.dumps({"model": model, "max_tokens": max_tokens, "messages": messages,
                       "stream": stream, **fields}).encode()
    check(http, body)
    check_count(http, body)


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF),
       model=st.sampled_from(MODELS), stream=st.booleans())
def test_any_unicode_and_lone_surrogates(http, text, surrogate, model, stream):
    body = json.dumps({"model": model, "max_tokens": 16, "stream": stream,
                       "messages": [{"role": "user", "content": text}]})
    broken = body.replace('"content": ', f'"content": "\\u{surrogate:04x}", "x": ', 1)
    for sent in (body, broken):
        check(http, sent.encode())
        check_count(http, sent.encode())


@FUZZ
@given(body=st.binary(max_size=300) | deep_json.map(
    lambda inner: ('{"model": "converted", "max_tokens": 8, "messages": ' + inner
                   + "}").encode()))
def test_bytes_that_are_not_json_and_messages_nested_deep(http, body):
    check(http, body)
    check_count(http, body)


# What the fuzzing found.


def test_a_thinking_signature_that_is_not_ascii_is_dropped_not_a_400(http):
    """hmac.compare_digest raises on a non-ASCII string, and the pipeline took that
    TypeError for orjson's: a garbled signature was a 400, not a block left out."""
    response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 8, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t",
                                           "signature": "gw1.\u00e9"},
                                          {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"}]})

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-dropped-params"] == "messages[1].content[0]"
