"""POST /v1/completions to an upstream that speaks completions: passed through, in its dialect.

A real gateway in front of the recording loopback upstream (tests/upstream.py),
which refuses chat's parameters on /v1/completions as OpenAI does.
"""

from __future__ import annotations

import json

import httpx

from tests.apis.completions.conftest import PROVIDER_KEY, new_key, usage_of
from tests.conftest import assert_openai_error
from tests.upstream import Reply, text_chunk, text_completion


def events_of(response) -> list:
    """A stream's data events, parsed; `[DONE]` as the string."""
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_a_completion_is_passed_through_with_max_tokens_as_it_is(http, native):
    response = http.post("/v1/completions", json={
        "model": "native", "prompt": "Once upon a time", "max_tokens": 7, "temperature": 0.5,
        "echo": True, "logprobs": 2, "seed": 3, "user": "u1"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "text_completion" and answer["model"] == "native"
    assert answer["choices"][0]["text"] == "echo: Once upon a time"
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert response.headers["x-gateway-upstream-model"] == "native-model"
    assert "x-gateway-dropped-params" not in response.headers
    sent = native.last
    assert sent.path == "/v1/completions"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.json == {"model": "native-model", "prompt": "Once upon a time", "max_tokens": 7,
                         "temperature": 0.5, "echo": True, "logprobs": 2, "seed": 3,
                         "user": "u1"}


def test_the_completions_rules_apply_not_chats(http, native):
    """Chat's openai rule renames max_tokens; completions has no max_completion_tokens, and the
    upstream refuses it (a 400), so it is not sent."""
    response = http.post("/v1/completions", json={
        "model": "native", "prompt": [[1, 2, 3]], "max_tokens": 4, "logprobs": 9,
        "max_completion_tokens": 4})

    assert response.status_code == 200, response.text
    assert native.last.json == {"model": "native-model", "prompt": [[1, 2, 3]], "max_tokens": 4,
                                "logprobs": 5}
    assert response.headers["x-gateway-dropped-params"] == "max_completion_tokens"
    assert response.headers["x-gateway-adjusted-params"] == "logprobs"


def test_the_vllm_profile_passes_its_extras(http, native):
    response = http.post("/v1/completions", json={
        "model": "native-vllm", "prompt": ["a", "b"], "best_of": 2, "top_k": 4, "min_tokens": 2})

    assert response.status_code == 200, response.text
    assert native.last.json == {"model": "vllm-model", "prompt": ["a", "b"], "top_k": 4,
                                "min_tokens": 2}
    assert response.headers["x-gateway-dropped-params"] == "best_of"


def test_finish_reasons_are_openais_and_a_missing_usage_is_estimated(http, native):
    answer = text_completion({"model": "native-model"}, "a few words here")
    answer["choices"][0]["finish_reason"] = "end_of_text"  # no word of OpenAI's, nor in the profile
    del answer["usage"]
    native.then(Reply(json=answer))
    response = http.post("/v1/completions", json={"model": "native", "prompt": "x" * 40})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 10 and body["usage"]["completion_tokens"] >= 3
    assert body["usage"]["estimated"] is True


def test_a_stream_is_relayed_event_by_event_with_usage_only_when_asked(http, native):
    plain = http.post("/v1/completions", json={"model": "native", "prompt": "one two",
                                               "stream": True})
    assert plain.status_code == 200, plain.text
    assert plain.headers["content-type"].startswith("text/event-stream")
    events = events_of(plain)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "echo: one two"
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert {c["model"] for c in chunks} == {"native"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)  # asked for upstream, kept from the client
    assert native.last.json["stream_options"] == {"include_usage": True}

    asked = events_of(http.post("/v1/completions", json={
        "model": "native", "prompt": "one two", "stream": True,
        "stream_options": {"include_usage": True}}))
    assert asked[-2]["choices"] == [] and asked[-2]["usage"]["completion_tokens"] == 3


def test_a_stream_without_usage_is_charged_the_text_it_carried(gateway, native):
    """The upstream sends no usage: the client that asked gets the gateway's estimate, in a
    text_completion chunk, counted from the chunks' `text` (chat's tally reads `content`)."""
    key = new_key(gateway, "passthrough-tally")
    words = [" word"] * 40
    native.then(Reply(events=[text_chunk({"model": "m"}, w) for w in words]
                      + [text_chunk({"model": "m"}, "", "stop")]))
    response = httpx.post(gateway.url + "/v1/completions", timeout=30,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "native", "prompt": "go", "stream": True,
                                "stream_options": {"include_usage": True}})
    usage_event = events_of(response)[-2]

    assert usage_event["object"] == "text_completion" and usage_event["choices"] == []
    assert usage_event["usage"]["completion_tokens"] == 40
    assert usage_event["usage"]["estimated"] is True
    assert usage_of(gateway, "passthrough-tally", 1)["completion_tokens"] == 40


def test_the_upstreams_refusal_is_relayed_and_a_bad_request_is_ours(http, native):
    native.then(Reply(status=400, json={"error": {"message": "suffix is not supported",
                                                  "type": "invalid_request_error",
                                                  "param": "suffix", "code": None}}))
    relayed = http.post("/v1/completions", json={"model": "native", "prompt": "a",
                                                 "suffix": "b"})
    assert assert_openai_error(relayed, 400, param="suffix")["message"] == "suffix is not supported"

    before = len(native.requests)
    assert_openai_error(http.post("/v1/completions", json={"model": "native", "prompt": 5}), 400,
                        param="prompt", code="invalid_value")
    assert_openai_error(http.post("/v1/completions", json={"model": "nope", "prompt": "a"}), 404,
                        code="model_not_found")
    assert len(native.requests) == before
