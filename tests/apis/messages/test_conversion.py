"""POST /v1/messages converted to chat, over the wire: what the dialect does to the request,
what is refused, fallback, and the accounting (limits, usage, metrics, the log line)."""

from __future__ import annotations

import httpx

from tests.apis.messages.conftest import sse_events
from tests.gateway_process import new_key, usage_of, wait_for
from tests.upstream import Gate, Reply, chunk

HELLO = [{"role": "user", "content": "Hello"}]


def test_fields_chat_does_not_know_are_left_out_and_named(http, chat_only):
    response = http.post("/v1/messages", json={
        "model": "converted", "max_tokens": 64, "messages": HELLO,
        "context_management": {"edits": []}, "cache_control": {"type": "ephemeral"},
        "service_tier": "auto", "top_k": 5})

    assert response.status_code == 200, response.text
    assert set(response.headers["x-gateway-dropped-params"].split(", ")) == {
        "context_management", "cache_control", "service_tier"}
    assert chat_only.last.json == {"model": "chat-model", "max_tokens": 64, "top_k": 5,
                                   "messages": HELLO}  # generalcompute takes top_k


def test_the_dialect_renames_and_refuses_in_the_clients_words(http, chat_only):
    agg = http.post("/v1/messages", json={"model": "converted-agg", "max_tokens": 64,
                                          "messages": HELLO, "stop_sequences": ["x"]})
    assert agg.status_code == 200
    assert chat_only.last.json["max_completion_tokens"] == 64  # aggregator's name for it
    assert "max_tokens" in agg.headers["x-gateway-adjusted-params"]

    strict = http.post("/v1/messages", json={
        "model": "converted-strict", "max_tokens": 64, "messages": HELLO,
        "thinking": {"type": "enabled", "budget_tokens": 2048}})
    assert strict.status_code == 400
    assert strict.json()["error"]["message"].startswith(
        "Parameter 'thinking' (sent as 'reasoning_effort') is not supported for provider "
        "'chat-strict'")


def test_what_chat_cannot_carry_is_refused_by_name_before_anything_is_sent(http, chat_only):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": "a"}}
    cases = [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": [document]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": "q"},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": "t1",
                                                          "name": "f", "input": {}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                     "content": [{"type": "image", "source": {
                                                         "type": "url", "url": "http://x/y.png"
                                                     }}]}]}]},
         "messages[2].content[0].content[0]"),
    ]
    for fields, where in cases:
        response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 8,
                                                   "messages": HELLO, **fields})
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert f"({where})" in message and "cannot be sent to provider 'chat'" in message
    assert chat_only.requests == []


def test_a_failure_before_the_first_byte_moves_to_the_next_target(sdk, chat_only):
    with sdk.messages.stream(model="dead-then-chat", max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "echo: Hello "
    assert chat_only.last.path == "/v1/chat/completions"


def test_a_converted_stream_has_anthropics_events_in_order(http, chat_only):
    response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 64,
                                               "messages": HELLO, "stream": True})

    names = [name for name, _ in sse_events(response)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "[DONE]" not in response.text
    delta = sse_events(response)[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0


def test_usage_is_recorded_and_limits_apply(gateway, chat_only):
    key = new_key(gateway, "messages-limited", requests_per_minute=1)
    with httpx.Client(base_url=gateway.url, timeout=30, headers={"x-api-key": key}) as client:
        first = client.post("/v1/messages", json={"model": "converted", "max_tokens": 64,
                                                  "messages": HELLO})
        limited = client.post("/v1/messages", json={"model": "converted", "max_tokens": 64,
                                                    "messages": HELLO})
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-requests"] == "1"
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert limited.json()["error"]["type"] == "rate_limit_error"
    totals = usage_of(gateway, "messages-limited", 1)
    assert (totals["requests"], totals["prompt_tokens"], totals["completion_tokens"]) == (1, 11, 7)


def test_a_stream_the_client_leaves_is_charged_what_it_was_sent(gateway, chat_only):
    key = new_key(gateway, "messages-leaver")
    gate = Gate()
    events = [chunk({"model": "m"}, {"role": "assistant", "content": ""})]
    events += [chunk({"model": "m"}, {"content": f" word{i}"}) for i in range(10)]
    chat_only.then(Reply(events=[*events, gate, *events[1:]]))
    with httpx.Client(base_url=gateway.url, timeout=30) as client, client.stream(
            "POST", "/v1/messages", headers={"x-api-key": key},
            json={"model": "converted", "max_tokens": 64, "messages": HELLO,
                  "stream": True}) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: content_block_delta"
            if deltas == 10:
                break
    gate.open()
    totals = usage_of(gateway, "messages-leaver", 1)
    assert 10 <= totals["completion_tokens"] < 20 * 2  # what it was sent, not what followed


def test_metrics_and_the_log_line_say_messages(gateway, http):
    response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 8,
                                               "messages": HELLO})
    metrics = httpx.get(gateway.url + "/metrics").text

    assert ('gateway_requests_total{api="messages",key="team",model="converted",status="2xx",'
            'target="chat/chat-model"}') in metrics
    assert ('gateway_tokens_total{api="messages",key="team",kind="prompt",model="converted"}'
            in metrics)
    line = wait_for(lambda: gateway.request_log(response.headers["x-request-id"]), 10,
                    "the request's log line")
    assert (line["api"], line["model"], line["target"], line["status"]) == (
        "messages", "converted", "chat/chat-model", 200)
    assert line["prompt_tokens"] == 11 and line["completion_tokens"] == 7


def test_claude_codes_system_turns_billing_header_and_deferred_tools(http, chat_only):
    """What Claude Code's current models send: a system turn mid-conversation (with a turn's
    own output_config), a billing header first in `system`, a tool held back for tool search."""
    tools = [{"name": "Read", "input_schema": {"type": "object"}},
             {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True}]
    response = http.post("/v1/messages", json={
        "model": "converted", "max_tokens": 64, "tools": tools, "tool_choice": {"type": "none"},
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.e78;"},
                   {"type": "text", "text": "You are Claude Code."}],
        "messages": [{"role": "user", "content": "Hello"},
                     {"role": "system", "content": [{"type": "text", "text": "Today is Tuesday.",
                                                     "cache_control": {"type": "ephemeral"}}],
                      "output_config": {"effort": "medium"}}]})

    assert response.status_code == 200, response.text
    sent = chat_only.last.json
    assert sent["messages"] == [{"role": "system", "content": "You are Claude Code."},
                                {"role": "user", "content": "Hello"},
                                {"role": "system", "content": "Today is Tuesday."}]
    assert [t["function"]["name"] for t in sent["tools"]] == ["Read"]
    assert set(response.headers["x-gateway-dropped-params"].split(", ")) == {
        "messages[1].output_config", "tools[1]"}
