"""POST /v1/responses to an upstream that speaks Responses (the vllm profile): passed through.

A real gateway in front of the recording loopback upstream (tests/upstream.py),
whose /v1/responses refuses chat's names, an unknown previous_response_id and
chat's stream option, as OpenAI's does.
"""

from __future__ import annotations

import httpx

from tests.apis.responses.conftest import PROVIDER_KEY, events_of, new_key, usage_of
from tests.conftest import assert_openai_error
from tests.upstream import Reply, message_output, response_event, response_object, response_stream

ITEMS = [{"role": "user", "content": "Weather?"},
         {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
         {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]


def test_the_request_is_passed_as_it_is_with_store_false(http, native):
    response = http.post("/v1/responses", json={
        "model": "native", "input": ITEMS, "instructions": "Be brief.", "max_output_tokens": 30,
        "reasoning": {"effort": "low"}, "top_k": 4, "text": {"format": {"type": "text"}}})

    assert response.status_code == 200, response.text
    sent = native.last
    assert sent.path == "/v1/responses"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.json == {"model": "native-model", "input": ITEMS, "instructions": "Be brief.",
                         "max_output_tokens": 30, "reasoning": {"effort": "low"}, "top_k": 4,
                         "text": {"format": {"type": "text"}}, "store": False}
    answer = response.json()
    assert answer["model"] == "native" and answer["id"].startswith("resp_")  # the upstream's
    assert answer["store"] is True  # what the client asked: the gateway keeps it, not vLLM
    assert answer["output"] == [message_output("the tool said: 18C")]
    assert response.headers["x-gateway-upstream-model"] == "native-model"
    assert "x-gateway-dropped-params" not in response.headers


def test_reasoning_written_as_vllm_writes_it_gets_its_text_as_summary(http, native):
    thought = {"id": "rs_test", "type": "reasoning", "summary": [],
               "content": [{"type": "reasoning_text", "text": "The user greets; "},
                           {"type": "reasoning_text", "text": "greet back."}]}
    native.then(Reply(json=response_object({"model": "native-model"},
                                           [thought, message_output("Hello")])))

    answer = http.post("/v1/responses", json={"model": "native", "input": "Hi"}).json()

    reasoning, message = answer["output"]
    assert reasoning["summary"] == [{"type": "summary_text",
                                     "text": "The user greets; greet back."}]
    assert reasoning["content"] == thought["content"]  # as the upstream wrote it, too
    assert message == message_output("Hello")


def test_the_usage_is_read_for_the_record(gateway, native):
    key = new_key(gateway, "passthrough-usage")
    response = httpx.post(gateway.url + "/v1/responses", timeout=30,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "native", "input": "count"})
    assert response.json()["usage"]["input_tokens"] == 9

    totals = usage_of(gateway, "passthrough-usage", 1)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (9, 5)
    assert totals["reasoning_tokens"] == 1


def test_a_stream_is_relayed_event_by_event_with_the_alias(http, native):
    response = http.post("/v1/responses", json={"model": "native", "input": "one two",
                                                "stream": True})

    assert response.status_code == 200, response.text
    assert "include_usage" not in str(native.last.json) and native.last.json["stream"] is True
    events = events_of(response)
    expected = response_stream({**native.last.json})
    assert [name for name, _ in events] == [e["type"] for e in expected]
    assert [d["sequence_number"] for _, d in events] == list(range(len(expected)))
    assert {d["response"]["model"] for _, d in events if "response" in d} == {"native"}
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "echo: one two"
    assert [d for _, d in events if "response" not in d] == [
        e for e in expected if "response" not in e]  # the rest, as the upstream wrote it


def test_a_stream_that_breaks_off_ends_with_response_failed_numbered_on(gateway, http,
                                                                        native):
    events = response_stream({"model": "m", "input": "a b c d"})[:6]
    native.then(Reply(events=[*map(response_event, events), b"event: response.output_te"]))
    response = http.post("/v1/responses", json={"model": "native", "input": "x",
                                                "stream": True})

    streamed = events_of(response)
    assert [d["sequence_number"] for _, d in streamed] == list(range(7))
    name, failed = streamed[-1]
    assert name == failed["type"] == "response.failed"
    assert failed["response"]["id"] == "resp_test" and failed["response"]["model"] == "native"
    assert failed["response"]["error"]["code"] == "bad_gateway"


def test_a_stream_without_its_last_event_is_charged_the_text_it_carried(gateway, native):
    key = new_key(gateway, "passthrough-tally")
    events = response_stream({"model": "m", "input": " ".join(["word"] * 40)})[:-1]
    native.then(Reply(events=events))
    response = httpx.post(gateway.url + "/v1/responses", timeout=30,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "native", "input": "go", "stream": True})

    assert events_of(response)[-1][0] == "response.failed"
    totals = usage_of(gateway, "passthrough-tally", 1)
    assert totals["completion_tokens"] == 41  # a delta event a word: "echo:" and 40 words


def test_a_fallback_from_native_to_chat_converts_on_the_second_attempt(http, native, chat_only):
    native.then(Reply(status=500, json={"error": {"message": "boom"}}))
    response = http.post("/v1/responses", json={"model": "native-then-chat", "input": "again",
                                                "max_output_tokens": 5})

    assert response.headers["x-gateway-attempts"] == "2"
    assert native.last.json["max_output_tokens"] == 5
    assert chat_only.last.json["max_tokens"] == 5  # generalcompute's name for it
    assert response.json()["output"][0]["content"][0]["text"] == "echo: again"


def test_the_upstreams_refusal_is_relayed_and_a_bad_request_is_ours(http, native):
    native.then(Reply(status=400, json={"error": {"message": "Unsupported parameter: 'top_k'",
                                                  "type": "invalid_request_error",
                                                  "param": "top_k", "code": None}}))
    relayed = http.post("/v1/responses", json={"model": "native", "input": "a", "top_k": 2})
    assert assert_openai_error(relayed, 400, param="top_k")["message"] == (
        "Unsupported parameter: 'top_k'")

    before = len(native.requests)
    assert_openai_error(http.post("/v1/responses", json={"model": "native", "input": 5}), 400,
                        param="input", code="invalid_type")
    assert_openai_error(http.post("/v1/responses", json={"model": "nope", "input": "a"}), 404,
                        code="model_not_found")
    assert_openai_error(http.post("/v1/responses", json={"model": "native", "input": "a",
                                                         "previous_response_id": "resp_1"}),
                        404, param="previous_response_id", code="response_not_found")
    assert_openai_error(http.post("/v1/responses", content=b"{", headers={
        "content-type": "application/json"}), 400, code="invalid_json")
    assert_openai_error(http.get("/v1/responses"), 405, code="method_not_allowed")
    assert len(native.requests) == before


def test_a_200_that_is_no_response_object_moves_on(http, native, chat_only):
    native.then(Reply(json={"object": "list", "data": []}))
    response = http.post("/v1/responses", json={"model": "native-then-chat", "input": "x"})
    assert response.headers["x-gateway-attempts"] == "2"
    assert response.json()["object"] == "response"

    native.then(Reply(json=response_object({"model": "m"}, [message_output(
        f"key {PROVIDER_KEY}")])))
    echoed = http.post("/v1/responses", json={"model": "native", "input": "x"})
    assert PROVIDER_KEY not in echoed.text and "key ***" in echoed.text
