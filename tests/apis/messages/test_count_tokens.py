"""POST /v1/messages/count_tokens through a real gateway: the anthropic SDK's `count_tokens`.

A chat-only target gets no request: the answer is the gateway's estimate. A
target that speaks count_tokens (vllm, anthropic profiles, on the strict test
upstream of tests/upstream_messages.py) gets the request passed through, with
its provider's key and headers, and its count is the answer; when it fails,
the estimate is. Errors are Anthropic's; no limit counts a count.

    converted       -> chat (generalcompute profile: chat only)
    native          -> messages upstream, vllm profile
    anthropic       -> messages upstream, anthropic profile
    claude-*        -> messages upstream, anthropic profile, by a wildcard
    dead            -> a closed port, vllm profile
    resting         -> messages upstream, anthropic profile (told to wait by a test)
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from gateway.apis.messages.surface import estimate_prompt
from tests.apis.messages.conftest import KEY
from tests.gateway_process import GatewayProcess, free_port, serving, wait_for
from tests.upstream import Reply
from tests.upstream_messages import input_tokens

LIMITED = "sk-count-limited-0123456789"
CONVERTED_ONLY = "sk-count-converted-only-0123456789"
PROVIDER_KEY = "sk-count-provider-secret-57"
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}
PROMPT = {"system": "Be brief.", "tools": [WEATHER],
          "messages": [{"role": "user", "content": "What is the weather in Paris today?"}]}


@pytest.fixture(scope="module")
def gateway(messages_upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    url = messages_upstream.url
    with serving(tmp_path_factory.mktemp("count-tokens"), f"""
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          chat: {{profile: generalcompute, base_url: "{url}", api_key: "{PROVIDER_KEY}"}}
          up: {{profile: vllm, base_url: "{url}", api_key: "{PROVIDER_KEY}"}}
          anth: {{profile: anthropic, base_url: "{url}", api_key: "{PROVIDER_KEY}"}}
          dead: {{profile: vllm, base_url: "http://127.0.0.1:{free_port()}/v1",
                  timeouts: {{connect: 1}}}}
        models:
          converted: {{targets: [{{provider: chat, model: chat-model}}]}}
          native: {{targets: [{{provider: up, model: native-model}}]}}
          anthropic: {{targets: [{{provider: anth, model: claude-upstream}}]}}
          "claude-*": {{targets: [{{provider: anth, model: "claude-*"}}]}}
          dead: {{targets: [{{provider: dead, model: x}}, {{provider: up, model: native-model}}]}}
          resting: {{targets: [{{provider: anth, model: claude-resting}}]}}
        keys:
          team: {{key: "{KEY}"}}
          limited: {{key: "{LIMITED}", limits: {{requests_per_minute: 1, tokens_per_minute: 50}}}}
          converted-only: {{key: "{CONVERTED_ONLY}", models: [converted]}}
    """, {"GATEWAY_MASTER_KEY": "sk-count-master-0123456789"}) as process:
        yield process


def counted(sdk: anthropic.Anthropic, **asked) -> tuple[int, httpx.Headers]:
    raw = sdk.messages.with_raw_response.count_tokens(**asked)
    return raw.parse().input_tokens, raw.headers


def test_a_chat_only_target_gets_the_gateways_estimate(sdk, messages_upstream, gateway):
    count, headers = counted(sdk, model="converted", **PROMPT)

    assert count == estimate_prompt(PROMPT) > 0
    assert headers["x-gateway-estimated"] == "true" and "x-gateway-target" not in headers
    assert messages_upstream.requests == []  # nothing asked of the chat upstream
    line = wait_for(lambda: gateway.request_log(headers["x-request-id"]), 5, "the log line")
    assert (line["api"], line["model"], line["key"], line["status"], line["input_tokens"]) == (
        "messages_count_tokens", "converted", "team", 200, count)


def test_a_native_target_counts_them_itself(sdk, messages_upstream, gateway):
    count, headers = counted(sdk, model="native", **PROMPT)

    sent = messages_upstream.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.json == {"model": "native-model", **PROMPT}
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert count == input_tokens(sent.json) != estimate_prompt(PROMPT)
    assert headers["x-gateway-target"] == "up/native-model"
    assert "x-gateway-estimated" not in headers
    line = wait_for(lambda: gateway.request_log(headers["x-request-id"]), 5, "the log line")
    assert (line["target"], line["input_tokens"]) == ("up/native-model", count)


def test_anthropics_api_gets_its_key_and_version_and_no_answer_settings(gateway,
                                                                       messages_upstream):
    """What count_tokens refuses (max_tokens, sampling, stream) is not sent; the rest is."""
    response = httpx.post(gateway.url + "/v1/messages/count_tokens", headers={
        "x-api-key": KEY, "anthropic-version": "2023-06-01"}, json={
        "model": "claude-sonnet-4-5", **PROMPT, "max_tokens": 64, "temperature": 0.5,
        "stream": True, "metadata": {"user_id": "u"}, "context_management": {"edits": []},
        "thinking": {"type": "enabled", "budget_tokens": 2048}})

    assert response.status_code == 200, response.text
    sent = messages_upstream.last
    assert sent.headers["x-api-key"] == PROVIDER_KEY and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {"model": "claude-sonnet-4-5", **PROMPT,
                         "context_management": {"edits": []},
                         "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert response.json() == {"input_tokens": input_tokens(sent.json)}


@pytest.mark.parametrize("reply", [
    Reply(status=500, json={"error": {"message": f"boom {PROVIDER_KEY}"}}),
    Reply(status=400, json={"type": "error", "error": {"type": "invalid_request_error",
                                                       "message": f"no {PROVIDER_KEY}"}}),
    Reply(status=429, headers={"retry-after": "1"}),
    Reply(json={"tokens": 12}),
    Reply(raw=b"not json"),
    Reply(json={"input_tokens": -1}),
])
def test_an_upstream_that_gives_no_count_gets_the_estimate(sdk, messages_upstream, gateway,
                                                           reply):
    messages_upstream.then(reply)
    count, headers = counted(sdk, model="anthropic", **PROMPT)

    assert messages_upstream.requests[0].path == "/v1/messages/count_tokens"
    assert count == estimate_prompt(PROMPT) and headers["x-gateway-estimated"] == "true"
    line = wait_for(lambda: gateway.request_log(headers["x-request-id"]), 5, "the log line")
    assert line["status"] == 200 and line["target"] is None
    [failure] = line["failures"]
    assert failure.startswith("anth/claude-upstream: ") and PROVIDER_KEY not in failure


def test_an_unreachable_first_target_gets_the_estimate(sdk, messages_upstream):
    count, headers = counted(sdk, model="dead", **PROMPT)

    assert count == estimate_prompt(PROMPT) and headers["x-gateway-estimated"] == "true"
    assert messages_upstream.requests == []  # the first target counts; the others are not tried


def test_a_target_told_to_wait_is_not_asked(sdk, messages_upstream, gateway):
    messages_upstream.then(Reply(status=429, headers={"retry-after": "60"}))
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model="resting", max_tokens=8, messages=PROMPT["messages"])
    count, headers = counted(sdk, model="resting", **PROMPT)

    assert count == estimate_prompt(PROMPT) and headers["x-gateway-estimated"] == "true"
    assert [r.path for r in messages_upstream.requests] == ["/v1/messages"]
    line = wait_for(lambda: gateway.request_log(headers["x-request-id"]), 5, "the log line")
    assert line["failures"] == ["anth/claude-resting: resting or its breaker is open"]


def test_a_server_tool_the_target_does_not_take_gets_the_estimate(sdk, messages_upstream):
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    count, headers = counted(sdk, model="native", messages=PROMPT["messages"], tools=tools)

    assert count == estimate_prompt({**PROMPT, "tools": tools, "system": None})
    assert messages_upstream.requests == []  # vllm's profile takes client tools only


@pytest.mark.parametrize("body, message", [
    ({"model": "converted"}, "'messages'"),
    ({"model": "converted", "messages": []}, "'messages'"),
    ({"model": "converted", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"model": "converted", "messages": PROMPT["messages"], "tool_choice": {"type": "tool"}},
     "tool_choice.name"),
    ("{not json", "not valid JSON"),
])
def test_a_bad_body_is_anthropics_400(sdk, body, message):
    send = {"content": body} if isinstance(body, str) else {"body": body}
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.post("/v1/messages/count_tokens", cast_to=object, options={}, **send)

    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert message in caught.value.body["error"]["message"]
    assert caught.value.response.headers["request-id"] == caught.value.request_id


@pytest.mark.parametrize("key", [KEY + "x", PROVIDER_KEY])
def test_a_bad_key_is_anthropics_401(gateway, key):
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.count_tokens(model="converted", **PROMPT)

    assert caught.value.body == {"type": "error", "error": {
        "type": "authentication_error", "message": "Invalid API key."}}
    assert caught.value.response.headers["request-id"]
    missing = httpx.post(gateway.url + "/v1/messages/count_tokens",
                         json={"model": "converted", **PROMPT})
    assert missing.status_code == 401 and missing.headers["request-id"]
    assert missing.json()["error"]["type"] == "authentication_error"


def test_a_model_the_key_may_not_use_is_a_404_as_one_that_does_not_exist(gateway,
                                                                        messages_upstream):
    with anthropic.Anthropic(base_url=gateway.url, api_key=CONVERTED_ONLY,
                             max_retries=0) as client:
        assert client.messages.count_tokens(model="converted", **PROMPT).input_tokens > 0
        refused = []
        for model in ("native", "no-such-model"):
            with pytest.raises(anthropic.NotFoundError) as caught:
                client.messages.count_tokens(model=model, **PROMPT)
            refused.append(caught.value.body["error"])

    assert refused[0]["type"] == "not_found_error"
    assert refused[0]["message"].replace("native", "no-such-model") == refused[1]["message"]
    assert messages_upstream.requests == []


def test_claude_codes_model_ids_reach_the_target_by_a_wildcard(sdk, messages_upstream):
    count, headers = counted(sdk, model="claude-opus-4-1", **PROMPT)

    assert messages_upstream.last.json["model"] == "claude-opus-4-1"
    assert headers["x-gateway-target"] == "anth/claude-opus-4-1"


def test_no_limit_counts_a_count(gateway):
    """A key with one request and 50 tokens a minute counts as often as it likes, and still
    has its one request for /v1/messages."""
    with anthropic.Anthropic(base_url=gateway.url, api_key=LIMITED, max_retries=0) as client:
        for model in ("converted", "native", "converted"):
            assert client.messages.count_tokens(model=model, **PROMPT).input_tokens > 0
        client.messages.create(model="converted", max_tokens=8, messages=PROMPT["messages"])
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="converted", max_tokens=8,
                                   messages=PROMPT["messages"])


def test_other_methods_are_refused_and_metrics_name_the_api(gateway, sdk):
    counted(sdk, model="converted", **PROMPT)
    assert httpx.get(gateway.url + "/v1/messages/count_tokens").status_code == 405

    metrics = httpx.get(gateway.url + "/metrics").text
    assert any(line.startswith("gateway_requests_total{") and 'api="messages_count_tokens"' in line
               and 'model="converted"' in line and 'status="2xx"' in line
               for line in metrics.splitlines())
