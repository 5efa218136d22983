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
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_process import GatewayProcess, serving, upstream_running

KEY = "sk-fuzz-chat-0123456789"
EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "30"))
pytestmark = pytest.mark.timeout(max(120, EXAMPLES))  # a long run takes its time
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with upstream_running() as upstream, serving(tmp_path_factory.mktemp("fuzz-chat"), f"""
        server: {{max_body_bytes: 512KiB}}
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: vllm, base_url: "{upstream.url}"}}
        models:
          m: {{targets: [{{provider: up, model: m}}]}}
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
    assert time.monotonic() - started < 10
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
        return
    answer = response.json()
    if response.status_code == 200:
        assert answer["object"] in ("chat.completion",) and answer["choices"], answer
    else:
        assert set(answer) == {"error"} and answer["error"]["message"], answer
        assert set(answer["error"]) == {"message", "type", "param", "code"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
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


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF))
def test_any_unicode_and_lone_surrogates(http, text, surrogate):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    check(http, body.encode())
    check(http, body.replace('"content": ', f'"content": "\\u{surrogate:04x}", "x": ', 1).encode())


@FUZZ
@given(depth=st.integers(min_value=1, max_value=50_000), kind=st.sampled_from("[{"))
def test_deeply_nested_json(http, depth, kind):
    inner = "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth
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
