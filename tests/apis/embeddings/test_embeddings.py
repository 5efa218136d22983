"""POST /v1/embeddings through a real gateway to real loopback upstreams, over HTTP."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from tests.apis.embeddings.conftest import (
    EMBEDDINGS,
    PRICE_INPUT,
    UP_SECRET,
    auth,
    new_key,
    usage_of,
)
from tests.conftest import assert_openai_error
from tests.gateway_process import wait_for
from tests.upstream import Reply, embedding, embeddings_answer


def test_passthrough_renames_the_model_and_keeps_the_vectors(http, up):
    response = http.post(EMBEDDINGS, headers=auth(), json={
        "model": "emb", "input": ["one two", "three"], "dimensions": 3, "user": "u-1"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "emb"
    assert response.headers["x-gateway-upstream-model"] == "text-embedding-3-small"
    assert [d["embedding"] for d in answer["data"]] == [embedding(0, 3), embedding(1, 3)]
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    sent = up.last
    assert sent.path == "/v1/embeddings"
    assert sent.headers["authorization"] == f"Bearer {UP_SECRET}"
    assert sent.json == {"model": "text-embedding-3-small", "input": ["one two", "three"],
                         "dimensions": 3, "user": "u-1"}


@pytest.mark.parametrize("value", ["a text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_every_input_shape_is_sent_as_it_came(http, up, value):
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "emb", "input": value})

    assert response.status_code == 200, response.text
    assert up.last.json["input"] == value


def test_base64_passes_as_the_upstream_wrote_it(http, up):
    response = http.post(EMBEDDINGS, headers=auth(), json={
        "model": "emb", "input": "x", "encoding_format": "base64", "dimensions": 4})

    vector = response.json()["data"][0]["embedding"]
    assert struct.unpack("<4f", base64.b64decode(vector)) == tuple(embedding(0, 4))
    assert up.last.json["encoding_format"] == "base64"


def test_each_profile_rules_on_the_parameters(http, up, vl):
    """openai drops what OpenAI does not define (its API refuses unknown fields); vllm passes
    its own extras such as truncate_prompt_tokens."""
    body = {"input": "x", "truncate_prompt_tokens": 8, "stream": False}
    to_openai = http.post(EMBEDDINGS, headers=auth(), json={"model": "emb", **body})
    to_vllm = http.post(EMBEDDINGS, headers=auth(), json={"model": "emb-vllm", **body})

    assert to_openai.status_code == to_vllm.status_code == 200
    assert to_openai.headers["x-gateway-dropped-params"] == "truncate_prompt_tokens"
    assert up.last.json == {"model": "text-embedding-3-small", "input": "x"}
    assert "x-gateway-dropped-params" not in to_vllm.headers
    assert vl.last.json == {"model": "BAAI/bge-m3", "input": "x", "truncate_prompt_tokens": 8}


def test_a_model_no_target_of_which_speaks_embeddings_is_a_400_naming_it(http, chat_only):
    """Not the 502 of "no upstream could answer", and at once: no retry round, no backoff."""
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "chat-only", "input": "x"})

    error = assert_openai_error(response, 400, param="model", code="unsupported_api")
    assert error["message"] == (
        "Model 'chat-only' cannot serve embeddings: none of its targets speaks the embeddings "
        "API (provider 'gc' speaks chat).")
    assert response.headers["x-gateway-attempts"] == "1"
    assert chat_only.requests == []


def test_a_target_that_does_not_speak_embeddings_falls_back_to_one_that_does(http, chat_only, vl):
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "chat-first", "input": "x"})

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-target"] == "vl/second"
    assert response.headers["x-gateway-attempts"] == "2"
    assert chat_only.requests == [] and vl.last.json["model"] == "second"


@pytest.mark.parametrize("failure", [Reply(status=503, json={"error": {"message": "busy"}}),
                                     Reply(status=200, json={"object": "list"}),
                                     Reply(status=200, raw=b"not json")])
def test_a_failing_first_target_falls_back(http, up, vl, failure):
    up.then(failure)
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "emb-fallback", "input": "x"})

    assert response.status_code == 200, response.text
    assert response.json()["model"] == "emb-fallback"
    assert response.headers["x-gateway-target"] == "vl/second"
    assert [r.json["model"] for r in up.requests + vl.requests] == ["first", "second"]


def test_the_upstreams_refusal_of_the_request_is_relayed(http, up):
    up.then(Reply(status=400, json={"error": {"message": "This model does not support "
                                                         "specifying dimensions.",
                                              "param": "dimensions", "code": None}}))
    response = http.post(EMBEDDINGS, headers=auth(),
                         json={"model": "emb", "input": "x", "dimensions": 3})

    error = assert_openai_error(response, 400, param="dimensions")
    assert "does not support specifying dimensions" in error["message"]


def test_the_provider_key_is_masked_in_what_is_relayed(http, up):
    answer = embeddings_answer({"model": "m", "input": "x"}) | {"debug": f"sent {UP_SECRET}"}
    up.then(Reply(json=answer))
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "emb", "input": "x"})

    assert response.status_code == 200
    assert UP_SECRET not in response.text
    assert response.json()["debug"] == "sent ***"


def test_usage_counts_the_prompt_and_its_cost(gateway, http, up):
    key = new_key(gateway, "emb-usage")
    for words in ("a b c", "d e f g h"):
        assert http.post(EMBEDDINGS, headers=auth(key),
                         json={"model": "emb", "input": words}).status_code == 200

    totals = wait_for(lambda: (t := usage_of(gateway, "emb-usage"))["requests"] == 2 and t,
                      10, "the usage of two requests")
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (8, 0)
    assert totals["cost"] == pytest.approx(8 * PRICE_INPUT / 1e6)


def test_usage_is_estimated_from_the_input_when_the_upstream_sends_none(gateway, http, up):
    answer = embeddings_answer({"model": "m", "input": "x"})
    del answer["usage"]
    up.then(Reply(json=answer))
    key = new_key(gateway, "emb-no-usage")
    text = "The quick brown fox jumps over the lazy dog. " * 20
    response = http.post(EMBEDDINGS, headers=auth(key), json={"model": "emb", "input": text})

    usage = response.json()["usage"]
    assert usage["estimated"] is True and usage["prompt_tokens"] == usage["total_tokens"]
    assert 150 <= usage["prompt_tokens"] <= 250  # o200k_base counts 200 tokens in it
    totals = wait_for(lambda: (t := usage_of(gateway, "emb-no-usage"))["requests"] and t, 10,
                      "the usage to be recorded")
    assert totals["prompt_tokens"] == usage["prompt_tokens"]


def test_token_id_inputs_reserve_their_count_and_nothing_for_an_answer(gateway, http):
    """A key allowed 100 tokens a minute: 100 token ids are admitted, 101 are too many."""
    key = new_key(gateway, "emb-tokens", tokens_per_minute=100)
    fits = http.post(EMBEDDINGS, headers=auth(key), json={"model": "emb", "input": [7] * 100})
    too_many = http.post(EMBEDDINGS, headers=auth(key),
                         json={"model": "emb", "input": [[7] * 50, [8] * 51]})

    assert fits.status_code == 200, fits.text
    assert fits.headers["x-ratelimit-limit-tokens"] == "100"
    error = assert_openai_error(too_many, 429, code="request_too_large")
    assert "requested 101" in error["message"]


def test_requests_per_minute(gateway, http):
    key = new_key(gateway, "emb-rpm", requests_per_minute=1)
    answers = [http.post(EMBEDDINGS, headers=auth(key), json={"model": "emb", "input": "x"})
               for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert_openai_error(answers[1], 429, code="rate_limit_exceeded")
    assert answers[1].headers["retry-after"]


def test_metrics_say_embeddings(gateway, http):
    assert http.post(EMBEDDINGS, headers=auth(), json={"model": "emb", "input": "a b"}
                     ).status_code == 200
    metrics = httpx.get(gateway.url + "/metrics").text

    assert ('gateway_requests_total{api="embeddings",key="team",model="emb",status="2xx",'
            'target="up/text-embedding-3-small"}') in metrics
    assert 'gateway_tokens_total{api="embeddings",key="team",kind="prompt",model="emb"}' in metrics


def test_models_say_which_apis_each_serves(http):
    listed = http.get("/v1/models", headers=auth()).json()["data"]

    apis = {m["id"]: m["apis"] for m in listed}
    # completions, responses and messages: natively, or converted to chat wherever chat is
    assert apis["emb"] == apis["emb-fallback"] == apis["demo"] == [
        "chat", "completions", "embeddings", "responses", "messages"]
    assert apis["chat-only"] == ["chat", "completions", "responses", "messages"]
    # its second target embeds
    assert apis["chat-first"] == ["chat", "completions", "embeddings", "responses", "messages"]


@pytest.mark.parametrize("body, param, code", [
    ({"model": "emb"}, "input", "missing_required_parameter"),
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "emb", "input": ""}, "input", "invalid_value"),
    ({"model": "emb", "input": []}, "input", "empty_array"),
    ({"model": "emb", "input": ["a", ""]}, "input[1]", "invalid_value"),
    ({"model": "emb", "input": ["a", 1]}, "input[1]", "invalid_type"),
    ({"model": "emb", "input": [1, -2]}, "input[1]", "invalid_value"),
    ({"model": "emb", "input": [[1], []]}, "input[1]", "empty_array"),
    ({"model": "emb", "input": [[1], ["a"]]}, "input[1][0]", "invalid_type"),
    ({"model": "emb", "input": ["x"] * 2049}, "input", "array_above_max_length"),
    ({"model": "emb", "input": {"text": "x"}}, "input", "invalid_type"),
    ({"model": "emb", "input": 5}, "input", "invalid_type"),
    ({"model": "emb", "input": "x", "encoding_format": "bytes"}, "encoding_format",
     "invalid_value"),
    ({"model": "emb", "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
    ({"model": "emb", "input": "x", "dimensions": "8"}, "dimensions", "invalid_type"),
    ({"model": "emb", "input": "x", "user": 3}, "user", "invalid_type"),
    ({"model": "emb", "input": "x", "stream": True}, "stream", "invalid_value"),
])
def test_bad_requests_are_a_400_naming_the_field(http, up, body, param, code):
    response = http.post(EMBEDDINGS, headers=auth(), json=body)

    assert_openai_error(response, 400, param=param, code=code)
    assert up.requests == []


def test_the_error_says_what_input_may_be(http):
    error = assert_openai_error(http.post(EMBEDDINGS, headers=auth(),
                                          json={"model": "emb", "input": 5}), 400)
    assert error["message"] == (
        "Invalid type for 'input': expected a string, an array of strings, an array of integers "
        "(token ids) or an array of arrays of integers, but got an integer instead.")


def test_an_unknown_model_is_a_404_and_a_get_a_405(http):
    assert_openai_error(http.post(EMBEDDINGS, headers=auth(), json={"model": "nope", "input": "x"}),
                        404, code="model_not_found")
    assert_openai_error(http.get(EMBEDDINGS, headers=auth()), 405)
