"""POST /v1/messages to an upstream that speaks Messages (the vllm and anthropic profiles).

A real gateway in front of the strict loopback upstream (tests/upstream_messages.py),
which refuses what Anthropic's API refuses: what reaches it passed as Anthropic
would take it. Fallback to a chat-only target converts; a stream that breaks
ends with an Anthropic `error` event.
"""

from __future__ import annotations

import httpx

from tests.apis.messages.conftest import KEY, PROVIDER_KEY, sse_events
from tests.gateway_process import new_key, usage_of
from tests.upstream import Reply
from tests.upstream_messages import (
    input_tokens,
    message_event,
    message_object,
    message_stream,
    natural_message,
    output_tokens,
    text_block,
)

HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}


def test_the_request_passes_as_it_is_and_the_answer_has_the_alias(sdk, native):
    raw = sdk.messages.with_raw_response.create(
        model="native", max_tokens=64, system=[{"type": "text", "text": "Be brief.",
                                                "cache_control": {"type": "ephemeral"}}],
        messages=HELLO, metadata={"user_id": "u1"}, stop_sequences=["END"],
        extra_body={"top_k": 5})
    message = raw.parse()

    assert message.model == "native" and message.content[0].text == "echo: Hello there"
    assert raw.headers["x-gateway-upstream-model"] == "native-model"
    sent = native.last
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"  # vLLM's scheme
    assert sent.json == {"model": "native-model", "max_tokens": 64, "messages": HELLO,
                         "system": [{"type": "text", "text": "Be brief.",
                                     "cache_control": {"type": "ephemeral"}}],
                         "metadata": {"user_id": "u1"}, "stop_sequences": ["END"], "top_k": 5}


def test_anthropics_own_api_gets_its_key_and_version_headers(sdk, native):
    sdk.messages.create(model="native-anthropic", max_tokens=64, messages=HELLO,
                        extra_body={"temperature": 3})

    sent = native.last
    assert sent.headers["x-api-key"] == PROVIDER_KEY and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json["temperature"] == 1  # clamped to Anthropic's range by the profile


def test_a_tool_round_trip_passes_through(sdk, native):
    first = sdk.messages.create(model="native", max_tokens=64, tools=[WEATHER],
                                messages=[{"role": "user", "content": "Weather?"}])
    [call] = [b for b in first.content if b.type == "tool_use"]
    second = sdk.messages.create(model="native", max_tokens=64, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "18C"}]}])

    assert first.stop_reason == "tool_use" and call.input == {"location": "Paris"}
    assert "18C" in second.content[0].text


def test_a_stream_is_relayed_event_by_event_with_the_alias(http, native):
    response = http.post("/v1/messages", json={"model": "native", "max_tokens": 64,
                                               "messages": HELLO, "stream": True})

    events = sse_events(response)
    expected = message_stream({**native.last.json})
    assert [name for name, _ in events] == [e["type"] for e in expected]
    assert events[0][1]["message"]["model"] == "native"
    assert [d for _, d in events[1:]] == expected[1:]  # the rest, as the upstream wrote it


def test_the_usage_of_a_native_answer_is_recorded(gateway, native):
    key = new_key(gateway, "messages-native-usage")
    with httpx.Client(base_url=gateway.url, timeout=30, headers={"x-api-key": key}) as http:
        http.post("/v1/messages", json={"model": "native", "max_tokens": 64, "messages": HELLO})
        http.post("/v1/messages", json={"model": "native", "max_tokens": 64, "messages": HELLO,
                                        "stream": True})

    totals = usage_of(gateway, "messages-native-usage", 2)
    reported = input_tokens(native.last.json), output_tokens(natural_message(native.last.json)[
        "content"])
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (2 * reported[0],
                                                                      2 * reported[1])


def test_a_failing_native_target_falls_back_to_a_converted_one(sdk, native, chat_only):
    native.then(Reply(status=500, json={"type": "error", "error": {
        "type": "api_error", "message": "overloaded"}}))

    raw = sdk.messages.with_raw_response.create(model="native-then-chat", max_tokens=64,
                                                messages=HELLO)

    assert raw.parse().content[0].text == "echo: Hello there"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert chat_only.last.path == "/v1/chat/completions"


def test_a_native_stream_that_breaks_ends_with_an_error_event(http, native):
    events = message_stream({"model": "m", "messages": HELLO, "max_tokens": 64})[:4]
    native.then(Reply(events=[*map(message_event, events), b"event: content_block_de"],
                      done=False))

    response = http.post("/v1/messages", json={"model": "native", "max_tokens": 64,
                                               "messages": HELLO, "stream": True})

    streamed = sse_events(response)
    name, error = streamed[-1]
    assert name == "error" and error["type"] == "error"
    assert error["error"]["type"] == "api_error"
    assert [n for n, _ in streamed[:-1]] == [e["type"] for e in events]


def test_a_server_tool_reaches_anthropic_but_not_vllm(http, native):
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    body = {"max_tokens": 64, "messages": HELLO, "tools": [search]}

    refused = http.post("/v1/messages", json={**body, "model": "native"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(
        "Tool 'web_search_20250305' (tools[0]) is not available on provider 'up'")

    http.post("/v1/messages", json={**body, "model": "native-anthropic"})
    assert native.last.json["tools"] == [search]


def test_the_key_is_an_x_api_key_or_a_bearer_token(gateway, native):
    for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        response = httpx.post(gateway.url + "/v1/messages", headers=headers, timeout=30,
                              json={"model": "native", "max_tokens": 8, "messages": HELLO})
        assert response.status_code == 200, response.text


def test_an_id_in_another_form_becomes_a_message_id(http, native):
    """vLLM writes its messages' ids as chat's (`chatcmpl-...`)."""
    answer = message_object({"model": "native-model"}, [text_block("Hi")],
                            message_id="chatcmpl-42")
    native.then(Reply(json=answer), Reply(events=[*map(message_event, message_stream(
        {"model": "native-model"}, answer))], done=False))
    whole = http.post("/v1/messages", json={"model": "native", "max_tokens": 8,
                                            "messages": HELLO})
    streamed = http.post("/v1/messages", json={"model": "native", "max_tokens": 8,
                                               "messages": HELLO, "stream": True})

    assert whole.json()["id"] == "msg_chatcmpl-42"
    assert sse_events(streamed)[0][1]["message"]["id"] == "msg_chatcmpl-42"


def test_a_system_turn_passes_to_a_native_target(http, native):
    turns = [{"role": "user", "content": "Hello there"},
             {"role": "system", "content": "Today is Tuesday."}]
    response = http.post("/v1/messages", json={"model": "native", "max_tokens": 8,
                                               "messages": turns})

    assert response.status_code == 200, response.text
    assert native.last.json["messages"] == turns
