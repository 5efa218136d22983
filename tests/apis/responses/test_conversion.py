"""POST /v1/responses to a chat-only upstream (the generalcompute profile): converted and back.

The chat-only loopback upstream answers 404 on /v1/responses, so an answer at
all shows the request was converted; what it recorded shows how.
"""

from __future__ import annotations

import httpx

from tests.apis.responses.conftest import KEY, events_of, new_key, usage_of
from tests.conftest import assert_openai_error
from tests.upstream import Gate, Reply, chunk, completion

FUNCTION = {"type": "function", "name": "weather", "parameters": {"type": "object"}}


def test_the_request_reaches_chat_in_its_dialect_and_the_answer_is_a_response(http, chat_only):
    response = http.post("/v1/responses", json={
        "model": "converted", "instructions": "Be brief.", "input": "Hello there",
        "max_output_tokens": 40, "temperature": 0.2, "metadata": {"team": "a"}})

    assert response.status_code == 200, response.text
    assert chat_only.last.path == "/v1/chat/completions"
    assert chat_only.last.json == {"model": "chat-model", "temperature": 0.2, "max_tokens": 40,
                                   "messages": [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "Hello there"}]}
    assert response.headers["x-gateway-adjusted-params"] == "max_output_tokens"
    answer = response.json()
    assert answer["id"].startswith("resp_") and len(answer["id"]) == 53
    assert answer["object"] == "response" and answer["model"] == "converted"
    assert answer["status"] == "completed" and answer["error"] is None
    assert answer["incomplete_details"] is None
    [message] = answer["output"]
    assert message["id"].startswith("msg_")
    assert {k: v for k, v in message.items() if k != "id"} == {
        "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "echo: Hello there", "annotations": []}]}
    assert answer["usage"] == {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0},
                               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
                               "total_tokens": 18}
    # the request's own settings, echoed as OpenAI does
    assert (answer["instructions"], answer["max_output_tokens"], answer["temperature"]) == (
        "Be brief.", 40, 0.2)
    assert answer["metadata"] == {"team": "a"} and answer["store"] is True
    assert answer["text"] == {"format": {"type": "text"}} and answer["tools"] == []


def test_reasoning_and_tool_calls_become_items_and_length_is_incomplete(http, chat_only):
    answer = completion({"model": "chat-model"}, "Partly", tool_calls=[
        {"id": "call_9", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}])
    answer["choices"][0]["message"]["reasoning_content"] = "Think first."
    answer["choices"][0]["finish_reason"] = "length"
    answer["usage"] |= {"prompt_tokens_details": {"cached_tokens": 4},
                        "completion_tokens_details": {"reasoning_tokens": 3}}
    chat_only.then(Reply(json=answer))
    body = http.post("/v1/responses", json={"model": "converted", "input": "q",
                                            "tools": [FUNCTION]}).json()

    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    reasoning, message, call = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think first."}]
    assert message["content"][0]["text"] == "Partly" and message["status"] == "incomplete"
    assert call["type"] == "function_call" and call["id"].startswith("fc_")
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_9", "weather",
                                                                  '{"city": "Oslo"}')
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 4}
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 3}


def test_a_stream_is_written_as_responses_events_in_order(http, chat_only):
    response = http.post("/v1/responses", json={"model": "converted", "input": "one two three",
                                                "stream": True})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    events = events_of(response)
    names = [name for name, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * 4,
                     "response.output_text.done", "response.content_part.done",
                     "response.output_item.done", "response.completed"]
    assert [data["type"] for _, data in events] == names
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    created, final = events[0][1]["response"], events[-1][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["id"] == final["id"] and final["model"] == "converted"
    text = "".join(data["delta"] for name, data in events if name.endswith(".delta"))
    assert text == "echo: one two three "
    assert events[8][1]["text"] == text
    assert final["output"][0]["content"][0]["text"] == text
    assert final["status"] == "completed"
    assert final["usage"]["output_tokens"] == 6  # the upstream's usage event, asked for
    assert chat_only.last.json["stream_options"] == {"include_usage": True}


def test_a_streamed_tool_call_and_reasoning_are_items_of_their_own(http, chat_only):
    request = {"model": "chat-model"}
    events = [chunk(request, {"role": "assistant", "content": ""}),
              chunk(request, {"reasoning_content": "Need "}), chunk(request, {"reasoning_content": "data."}),
              chunk(request, {"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                              "function": {"name": "weather", "arguments": ""}}]}),
              chunk(request, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
              chunk(request, {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
              chunk(request, {}, "tool_calls")]
    chat_only.then(Reply(events=events))
    streamed = events_of(http.post("/v1/responses", json={
        "model": "converted", "input": "q", "tools": [FUNCTION], "stream": True}))

    names = [name for name, _ in streamed]
    assert names == ["response.created", "response.in_progress",
                     "response.output_item.added", "response.reasoning_summary_part.added",
                     "response.reasoning_summary_text.delta",
                     "response.reasoning_summary_text.delta",
                     "response.reasoning_summary_text.done",
                     "response.reasoning_summary_part.done", "response.output_item.done",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done",
                     "response.completed"]
    data = [d for _, d in streamed]
    assert data[6]["text"] == "Need data." and data[6]["output_index"] == 0
    assert data[9]["item"]["call_id"] == "call_7" and data[9]["output_index"] == 1
    assert data[12]["arguments"] == '{"a": 1}' and data[12]["name"] == "weather"
    reasoning, call = data[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Need data."}]
    assert (call["call_id"], call["arguments"], call["status"]) == ("call_7", '{"a": 1}',
                                                                    "completed")
    # no usage from the upstream: the gateway's count of what it sent
    assert data[-1]["response"]["usage"]["estimated"] is True


def test_a_failure_before_the_first_byte_moves_to_the_next_target(http, native, chat_only):
    for stream in (False, True):
        native.then(Reply(status=503, json={"error": {"message": "busy"}}))
        response = http.post("/v1/responses", json={"model": "native-then-chat",
                                                    "input": "fall back", "stream": stream})

        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-attempts"] == "2"
        assert response.headers["x-gateway-target"] == "chat/chat-model"
        assert native.last.path == "/v1/responses"
        final = (events_of(response)[-1][1]["response"] if stream else response.json())
        assert final["output"][0]["content"][0]["text"].strip() == "echo: fall back"


def test_a_failure_after_the_first_byte_ends_with_response_failed(gateway, http, chat_only):
    events = [chunk({"model": "m"}, {"role": "assistant", "content": ""}),
              chunk({"model": "m"}, {"content": "half"}), b'data: {"choices": [{"del']
    chat_only.then(Reply(events=events, done=False))
    response = http.post("/v1/responses", json={"model": "converted", "input": "q",
                                                "stream": True})

    assert response.status_code == 200
    streamed = events_of(response)
    assert [name for name, _ in streamed][-3:] == ["response.content_part.added",
                                                   "response.output_text.delta",
                                                   "response.failed"]
    failed = streamed[-1][1]
    assert failed["sequence_number"] == len(streamed) - 1
    assert failed["response"]["id"] == streamed[0][1]["response"]["id"]
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "bad_gateway"
    assert "ended in the middle of an event" in failed["response"]["error"]["message"]
    assert failed["response"]["output"][0]["status"] == "incomplete"
    assert failed["response"]["output"][0]["content"][0]["text"] == "half"


def test_a_stream_the_client_leaves_is_charged_what_it_was_sent(gateway, chat_only):
    key = new_key(gateway, "responses-leaver")
    gate = Gate()
    events = [chunk({"model": "m"}, {"role": "assistant", "content": ""})]
    events += [chunk({"model": "m"}, {"content": f" word{i}"}) for i in range(10)]
    chat_only.then(Reply(events=[*events, gate, *events[1:]]))
    with httpx.Client(base_url=gateway.url, timeout=30) as client, client.stream(
            "POST", "/v1/responses", headers={"Authorization": f"Bearer {key}"},
            json={"model": "converted", "input": "go on", "stream": True}) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas == 10:
                break
    gate.open()
    totals = usage_of(gateway, "responses-leaver", 1)
    assert 10 <= totals["completion_tokens"] < 20 * 2  # what it was sent, not what followed
    assert totals["prompt_tokens"] > 0


def test_usage_is_recorded_and_limits_apply(gateway, chat_only):
    key = new_key(gateway, "responses-limited", requests_per_minute=1)
    with httpx.Client(base_url=gateway.url, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        first = client.post("/v1/responses", json={"model": "converted", "input": "count me"})
        limited = client.post("/v1/responses", json={"model": "converted", "input": "again"})
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert_openai_error(limited, 429, code="rate_limit_exceeded")
    assert limited.headers["retry-after"]
    totals = usage_of(gateway, "responses-limited", 1)
    assert (totals["requests"], totals["errors"]) == (1, 0)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (11, 7)


def test_the_metrics_count_requests_and_tokens_under_the_responses_api(gateway, http):
    assert http.post("/v1/responses", json={"model": "converted", "input": "m"}).status_code == 200
    metrics = httpx.get(gateway.url + "/metrics").text

    assert ('gateway_requests_total{api="responses",key="team",model="converted",status="2xx",'
            'target="chat/chat-model"}') in metrics
    assert ('gateway_tokens_total{api="responses",key="team",kind="prompt",model="converted"}'
            in metrics)


def test_what_chat_cannot_say_is_refused_or_falls_back_to_a_native_target(http, native,
                                                                          chat_only):
    tools = [FUNCTION, {"type": "web_search"}]
    refused = http.post("/v1/responses", json={"model": "converted", "input": "q",
                                               "tools": tools})
    error = assert_openai_error(refused, 400, param="tools[1]", code="unsupported_parameter")
    assert "Tool 'web_search'" in error["message"]

    moved = http.post("/v1/responses", json={"model": "chat-then-native", "input": "q",
                                             "tools": tools})
    assert moved.status_code == 200, moved.text
    assert moved.headers["x-gateway-target"] == "up-openai/openai-model"
    assert native.last.json["tools"] == tools
    assert chat_only.requests == []  # refused before anything was sent


def test_the_demo_model_answers_responses_by_conversion(gateway):
    response = httpx.post(gateway.url + "/v1/responses", timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "demo", "input": "Hello!"})

    answer = response.json()
    assert 'You said: "Hello!"' in answer["output"][0]["content"][0]["text"]
    assert answer["usage"]["output_tokens"] > 10


def test_reasoning_effort_and_the_length_limit_take_each_dialects_names(http, native, chat_only):
    asked = {"input": "think", "reasoning": {"effort": "xhigh"}, "max_output_tokens": 64}
    aggregator = http.post("/v1/responses", json={"model": "converted-agg", **asked})
    assert aggregator.status_code == 200, aggregator.text
    assert chat_only.last.json["reasoning_effort"] == "high"  # its map: xhigh -> high
    assert chat_only.last.json["max_completion_tokens"] == 64
    assert aggregator.headers["x-gateway-adjusted-params"] == "reasoning.effort"
    assert aggregator.json()["reasoning"] == {"effort": "xhigh", "summary": None}

    generalcompute = http.post("/v1/responses", json={"model": "converted", **asked})
    assert "reasoning_effort" not in chat_only.last.json  # its rules: not supported
    assert chat_only.last.json["max_tokens"] == 64
    assert generalcompute.headers["x-gateway-dropped-params"] == "reasoning.effort"
    strict = http.post("/v1/responses", json={"model": "converted-strict", **asked})
    assert_openai_error(strict, 400, param="reasoning.effort", code="unsupported_parameter")

    assert http.post("/v1/responses", json={"model": "native", **asked}).status_code == 200
    assert native.last.json["reasoning"] == {"effort": "xhigh"}  # a Responses upstream's own


def test_the_policy_drops_or_refuses_what_only_changes_the_extras(http, chat_only):
    asked = {"input": "q", "include": ["message.output_text.logprobs"], "top_logprobs": 2}
    dropped = http.post("/v1/responses", json={"model": "converted", **asked})
    assert dropped.status_code == 200, dropped.text
    assert dropped.headers["x-gateway-dropped-params"] == "top_logprobs, include"
    assert set(chat_only.last.json) == {"model", "messages"}

    refused = http.post("/v1/responses", json={"model": "converted-strict", **asked})
    error = assert_openai_error(refused, 400, param="top_logprobs",
                                code="unsupported_parameter")
    assert "which speaks chat completions only" in error["message"]
