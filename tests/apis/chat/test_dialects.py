"""Provider dialects end to end: one rich OpenAI request, the right request for each upstream.

Every profile gets a target in front of the recording upstream; each test
asserts exactly what the upstream received and what the client got back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway.apis.chat.surface import CODEC
from tests.conftest import assert_openai_error
from tests.gateway_process import GatewayProcess
from tests.profiles import target
from tests.upstream import Reply, chunk

KEY = "sk-dialect-tests-0123456789"
CHAT = "/v1/chat/completions"
THINKING = {"rename": "chat_template_kwargs.enable_thinking",
            "map": {"none": False, "minimal": False, "low": True, "medium": True, "high": True}}

CONFIG = """
providers:
  to-openai: {{profile: openai, base_url: "{url}", api_key: k-openai}}
  to-vllm: {{profile: vllm, base_url: "{url}", api_key: k-vllm}}
  to-generalcompute: {{profile: generalcompute, base_url: "{url}", api_key: k-gc}}
  to-model-api: {{profile: model-api, base_url: "{url}", api_key: k-ma}}
  to-aggregator: {{profile: aggregator, base_url: "{url}", api_key: k-agg}}
  strict-openai: {{profile: openai, base_url: "{url}", unsupported_params: reject}}
models:
  via-openai: {{targets: [{{provider: to-openai, model: up-openai}}]}}
  via-vllm: {{targets: [{{provider: to-vllm, model: up-vllm}}]}}
  via-generalcompute: {{targets: [{{provider: to-generalcompute, model: up-gc}}]}}
  via-model-api: {{targets: [{{provider: to-model-api, model: up-ma}}]}}
  via-aggregator: {{targets: [{{provider: to-aggregator, model: up-agg}}]}}
  strict: {{targets: [{{provider: strict-openai, model: up-strict}}]}}
  top-k-allowed:
    targets: [{{provider: to-openai, model: up-openai, params: {{top_k: true}}}}]
  thinking:
    params: {{reasoning_effort: {thinking}}}
    targets: [{{provider: to-vllm, model: qwen3}}]
  fan-out:
    params: {{n: {{min: 1, max: 1, on_range: fanout}}}}
    targets: [{{provider: to-model-api, model: up-ma}}]
  fan-out-json:
    params: {{n: {{min: 1, max: 1, on_range: fanout}}}}
    targets: [{{provider: to-model-api, model: up-timed-json}}]
  fan-out-stream:
    params: {{n: {{min: 1, max: 1, on_range: fanout}}}}
    targets: [{{provider: to-model-api, model: up-timed-stream}}]
  openai-then-vllm:
    targets:
      - {{provider: to-openai, model: first}}
      - {{provider: to-vllm, model: second}}
  strict-then-vllm:
    targets:
      - {{provider: strict-openai, model: first}}
      - {{provider: to-vllm, model: second}}
  reasoning-both:
    reasoning_field: both
    targets: [{{provider: to-vllm, model: up-vllm}}]
keys:
  tester: {{key: "{key}"}}
"""

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello", "reasoning_content": "they greeted me"},
    {"role": "user", "content": "weather?"},
]
RICH = {
    "messages": HISTORY, "temperature": 3.0, "top_p": 0.9, "n": 1,
    "stop": ["a", "b", "c", "d", "e"], "max_tokens": 100, "presence_penalty": 0.5,
    "frequency_penalty": 0.5, "logit_bias": {"50256": -100}, "logprobs": True, "top_logprobs": 25,
    "user": "u-1", "seed": 7, "tools": [TOOL], "tool_choice": "auto", "parallel_tool_calls": False,
    "response_format": SCHEMA_FORMAT, "reasoning_effort": "minimal", "top_k": -1, "min_p": 0.1,
    "repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False},
    "x_custom": "extra",
}
NO_REASONING = [m if m["role"] != "assistant" else {"role": "assistant", "content": "hello"}
                for m in HISTORY]
AS_REASONING = [m if m["role"] != "assistant" else {"role": "assistant", "content": "hello",
                                                     "reasoning": "they greeted me"}
                for m in HISTORY]
COMMON = {"top_p": 0.9, "n": 1, "presence_penalty": 0.5, "frequency_penalty": 0.5,
          "logit_bias": {"50256": -100}, "user": "u-1", "tools": [TOOL], "tool_choice": "auto"}

# What each upstream must receive for RICH, its auth header, and what the client is told.
EXPECTED = {
    "openai": (
        {**COMMON, "model": "up-openai", "messages": NO_REASONING, "temperature": 2.0,
         "stop": ["a", "b", "c", "d"], "max_completion_tokens": 100, "logprobs": True,
         "top_logprobs": 20, "seed": 7, "parallel_tool_calls": False,
         "response_format": SCHEMA_FORMAT, "reasoning_effort": "minimal"},
        "Bearer k-openai",
        "top_k, min_p, repetition_penalty, chat_template_kwargs, x_custom",
        "temperature, stop, top_logprobs, max_tokens"),
    "vllm": (
        {**COMMON, "model": "up-vllm", "messages": AS_REASONING, "temperature": 3.0,
         "stop": ["a", "b", "c", "d", "e"], "max_tokens": 100, "logprobs": True,
         "top_logprobs": 20, "seed": 7, "parallel_tool_calls": False,
         "response_format": SCHEMA_FORMAT, "reasoning_effort": "low", "top_k": -1, "min_p": 0.1,
         "repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False},
         "x_custom": "extra"},
        "Bearer k-vllm", None, "top_logprobs, reasoning_effort"),
    "generalcompute": (
        {**COMMON, "model": "up-gc", "messages": NO_REASONING, "temperature": 2.0,
         "stop": ["a", "b", "c", "d", "e"], "max_tokens": 100, "repetition_penalty": 1.1,
         "response_format": {"type": "json_object"}},
        "Bearer k-gc",
        "logprobs, top_logprobs, seed, parallel_tool_calls, reasoning_effort, top_k, min_p, "
        "chat_template_kwargs, x_custom",
        "temperature, response_format"),
    "model-api": (
        {**COMMON, "model": "up-ma", "messages": HISTORY, "temperature": 3.0,
         "stop": ["a", "b", "c", "d", "e"], "max_tokens": 100, "logprobs": True,
         "top_logprobs": 20, "seed": 7, "parallel_tool_calls": False,
         "response_format": SCHEMA_FORMAT, "top_k": -1, "min_p": 0.1, "repetition_penalty": 1.1,
         "chat_template_kwargs": {"enable_thinking": False}},
        "Api-Key k-ma", "reasoning_effort, x_custom", "top_logprobs"),
    "aggregator": (
        {**COMMON, "model": "up-agg", "messages": NO_REASONING, "temperature": 2.0,
         "stop": ["a", "b", "c", "d"], "max_completion_tokens": 100, "seed": 7,
         "response_format": SCHEMA_FORMAT, "reasoning_effort": "low"},
        "Bearer k-agg",
        "logprobs, top_logprobs, parallel_tool_calls, top_k, min_p, repetition_penalty, "
        "chat_template_kwargs, x_custom",
        "temperature, stop, reasoning_effort, max_tokens"),
}


@pytest.fixture(scope="module")
def dialects(primary, tmp_path_factory) -> Iterator[GatewayProcess]:
    path = tmp_path_factory.mktemp("dialects") / "routes.yaml"
    path.write_text(CONFIG.format(url=primary.url, key=KEY, thinking=json.dumps(THINKING)))
    with GatewayProcess(path) as gateway:
        yield gateway


@pytest.fixture
def http(dialects) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dialects.url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as client:
        yield client


@pytest.fixture
def sdk(dialects) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=dialects.url + "/v1", api_key=KEY, max_retries=0) as client:
        yield client


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_each_profile_receives_its_own_dialect(http, primary, profile):
    body, auth, dropped, adjusted = EXPECTED[profile]

    response = http.post(CHAT, json={"model": f"via-{profile}", **RICH})

    assert response.status_code == 200, response.text
    assert primary.last.json == body
    assert primary.last.headers["authorization"] == auth
    assert response.headers.get("x-gateway-dropped-params") == dropped
    assert response.headers.get("x-gateway-adjusted-params") == adjusted
    assert response.headers["x-gateway-upstream-model"] == body["model"]
    assert response.json()["model"] == f"via-{profile}"


def test_demo_profile_takes_what_the_demo_model_honours():
    result = CODEC.translate({"model": "demo", **RICH}, target("demo"), stream=False)

    assert result.body == {
        **COMMON, "model": "upstream-model", "messages": NO_REASONING, "temperature": 2.0,
        "stop": ["a", "b", "c", "d", "e"], "max_tokens": 100, "logprobs": True,
        "top_logprobs": 20, "seed": 7, "parallel_tool_calls": False,
        "response_format": SCHEMA_FORMAT, "reasoning_effort": "minimal"}
    assert result.dropped == ["top_k", "min_p", "repetition_penalty", "chat_template_kwargs",
                              "x_custom"]


def test_reject_policy_names_the_parameter_and_the_provider(http, primary):
    response = http.post(CHAT, json={"model": "strict", "messages": HISTORY, "temperature": 7})
    assert response.status_code == 200  # out of range is clamped, not refused
    assert primary.last.json["temperature"] == 2

    primary.reset()
    error = assert_openai_error(
        http.post(CHAT, json={"model": "strict", "messages": HISTORY, "top_k": 5}),
        400, param="top_k", code="unsupported_parameter")
    assert "'top_k'" in error["message"] and "strict-openai" in error["message"]
    assert primary.requests == []


def test_rejected_by_one_target_served_by_the_next(http, primary):
    response = http.post(CHAT, json={"model": "strict-then-vllm", "messages": HISTORY, "top_k": 5})

    assert response.status_code == 200, response.text
    assert primary.last.json["model"] == "second" and primary.last.json["top_k"] == 5
    assert len(primary.requests) == 1


def test_fallback_translates_again_for_the_next_provider(http, primary):
    primary.then(Reply(status=503))

    response = http.post(CHAT, json={"model": "openai-then-vllm", **RICH})

    assert response.status_code == 200
    first, second = primary.requests[-2].json, primary.requests[-1].json
    assert first["max_completion_tokens"] == 100 and "top_k" not in first  # openai's dialect
    assert second["max_tokens"] == 100 and second["top_k"] == -1  # then vllm's
    assert second["messages"] == AS_REASONING
    assert response.headers["x-gateway-upstream-model"] == "second"


def test_a_route_can_allow_what_the_profile_does_not(http, primary):
    http.post(CHAT, json={"model": "top-k-allowed", "messages": HISTORY, "top_k": 40})
    assert primary.last.json["top_k"] == 40


@pytest.mark.parametrize("effort, thinking", [("minimal", False), ("high", True)])
def test_reasoning_effort_mapped_to_enable_thinking(http, primary, effort, thinking):
    http.post(CHAT, json={"model": "thinking", "messages": HISTORY, "reasoning_effort": effort,
                          "chat_template_kwargs": {"custom": 1}})

    sent = primary.last.json
    assert sent["chat_template_kwargs"] == {"custom": 1, "enable_thinking": thinking}
    assert "reasoning_effort" not in sent


def test_client_enable_thinking_wins_over_reasoning_effort(http, primary):
    http.post(CHAT, json={"model": "thinking", "messages": HISTORY, "reasoning_effort": "high",
                          "chat_template_kwargs": {"enable_thinking": False}})
    assert primary.last.json["chat_template_kwargs"] == {"enable_thinking": False}


def test_n_fans_out_and_merges_choices(sdk, primary):
    answer = sdk.chat.completions.create(model="fan-out", messages=HISTORY, n=3, seed=10)

    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert len(primary.requests) == 3
    assert all("n" not in r.json for r in primary.requests)
    assert sorted(r.json["seed"] for r in primary.requests) == [10, 11, 12]
    assert answer.usage.total_tokens == 3 * 18


def test_n_fans_out_streams_too(sdk, primary):
    chunks = list(sdk.chat.completions.create(model="fan-out", messages=HISTORY, n=2, stream=True,
                                              stream_options={"include_usage": True}))

    texts = {0: "", 1: ""}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "echo: weather? ", 1: "echo: weather? "}
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 22
    assert len(primary.requests) == 2


@pytest.mark.parametrize("mode", ["json", "stream"])
def test_fanned_out_answers_teach_the_target_its_latency(sdk, dialects, mode):
    """Load balancing reads each target's time to first byte; fanned-out answers count."""
    answer = sdk.chat.completions.create(model=f"fan-out-{mode}", messages=HISTORY, n=2,
                                         stream=mode == "stream")
    if mode == "stream":
        list(answer)  # read to the end

    targets = httpx.get(dialects.url + "/readyz").json()["targets"]
    [report] = [report for key, report in targets.items() if f"up-timed-{mode}" in key]
    assert report["successes"] == 1 and report["errors"] == 0
    assert report["ttfb_ms"] > 0, report


def test_stream_usage_is_asked_for_and_hidden_from_a_client_that_did_not(sdk, primary):
    chunks = list(sdk.chat.completions.create(model="via-vllm", messages=HISTORY, stream=True))

    assert primary.last.json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_streamed_reasoning_arrives_as_reasoning_content(sdk, primary):
    request = {"model": "up-vllm"}
    primary.then(Reply(events=[
        chunk(request, {"role": "assistant", "reasoning": ""}),
        chunk(request, {"reasoning": "Two plus "}),
        chunk(request, {"reasoning": "two is four."}),
        chunk(request, {"content": "4"}),
        chunk(request, {}, "stop"),
        {**chunk(request, {}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9,
                                                        "total_tokens": 14}},
    ]))

    chunks = list(sdk.chat.completions.create(model="via-vllm", messages=HISTORY, stream=True))

    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                        for c in chunks if c.choices)
    assert reasoning == "Two plus two is four."
    assert all(getattr(c.choices[0].delta, "reasoning", None) is None for c in chunks if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "4"


def test_reasoning_under_both_names_when_the_route_asks(http, primary):
    primary.then(Reply(json={
        "id": "x", "object": "chat.completion", "created": 1, "model": "up-vllm",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "4", "reasoning": "2+2"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))

    message = http.post(CHAT, json={"model": "reasoning-both", "messages": HISTORY}).json()[
        "choices"][0]["message"]

    assert message["reasoning_content"] == message["reasoning"] == "2+2"


def test_streamed_tool_call_is_relayed_intact(sdk, primary):
    request = {"model": "up-agg"}
    calls = [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"location":'}},
        {"index": 0, "function": {"arguments": ' "Paris"}'}},
        {"index": 1, "id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": "{}"}},
    ]
    primary.then(Reply(events=[chunk(request, {"role": "assistant", "content": None})]
                       + [chunk(request, {"tool_calls": [c]}) for c in calls]
                       + [chunk(request, {}, "tool_calls")]))

    chunks = list(sdk.chat.completions.create(model="via-aggregator", messages=HISTORY,
                                              tools=[TOOL], stream=True))

    relayed = [t.model_dump(exclude_none=True) for c in chunks if c.choices
               for t in c.choices[0].delta.tool_calls or []]
    assert relayed == calls
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_missing_usage_is_filled_in(http, primary):
    primary.then(Reply(json={"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                             "choices": [{"index": 0, "finish_reason": "eos", "message": {
                                 "role": "assistant", "content": "four words right here"}}]}))

    answer = http.post(CHAT, json={"model": "via-vllm", "messages": HISTORY}).json()

    assert answer["usage"]["completion_tokens"] >= 1 and answer["usage"]["estimated"] is True
    assert answer["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("sent_as", ["reasoning", "reasoning_content"])
@pytest.mark.parametrize("profile, expected_as", [
    ("model-api", "reasoning_content"), ("vllm", "reasoning"), ("openai", None)])
def test_reasoning_sent_back_under_either_name(sent_as, profile, expected_as):
    messages = [{"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4", sent_as: "add them"},
                {"role": "user", "content": "and 3+3?"}]

    sent = CODEC.translate({"model": "m", "messages": messages}, target(profile), stream=False).body

    expected = {"role": "assistant", "content": "4"}
    if expected_as:
        expected[expected_as] = "add them"
    assert sent["messages"][1] == expected
    assert messages[1] == {"role": "assistant", "content": "4", sent_as: "add them"}  # untouched
