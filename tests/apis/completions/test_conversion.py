"""POST /v1/completions to a chat-only upstream: converted to chat and back, event by event.

The chat-only loopback upstream answers 404 on /v1/completions, so an answer
at all shows the request was converted; what it recorded shows how.
"""

from __future__ import annotations

import httpx

from tests.apis.completions.conftest import KEY, new_key, usage_of
from tests.apis.completions.test_passthrough import events_of
from tests.conftest import assert_openai_error
from tests.upstream import Reply, chunk, completion


def test_the_prompt_becomes_one_user_message_in_the_chat_dialect(http, chat_only):
    response = http.post("/v1/completions", json={
        "model": "converted", "prompt": "Once upon a time", "max_tokens": 9, "n": 1,
        "stop": ["\n"], "temperature": 0.3, "echo": False, "user": "u1"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "text_completion" and answer["model"] == "converted"
    assert answer["choices"] == [{"index": 0, "text": "echo: Once upon a time", "logprobs": None,
                                  "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    sent = chat_only.last
    assert sent.path == "/v1/chat/completions"
    # aggregator's chat rule: max_tokens is sent as max_completion_tokens
    assert sent.json == {"model": "chat-model", "max_completion_tokens": 9, "n": 1, "stop": ["\n"],
                         "temperature": 0.3, "user": "u1",
                         "messages": [{"role": "user", "content": "Once upon a time"}]}
    assert response.headers["x-gateway-adjusted-params"] == "max_tokens"


def test_completions_default_length_is_kept_and_one_prompt_in_an_array_is_a_prompt(http, chat_only):
    response = http.post("/v1/completions", json={"model": "converted", "prompt": ["Hi there"]})

    assert response.status_code == 200, response.text
    assert chat_only.last.json["max_completion_tokens"] == 16  # OpenAI's default for completions
    assert chat_only.last.json["messages"] == [{"role": "user", "content": "Hi there"}]


def test_the_answer_is_adapted_as_chats_then_written_as_text(http, chat_only):
    answer = completion({"model": "chat-model"}, "the answer")
    answer["choices"][0]["finish_reason"] = "max_tokens"
    answer["choices"][0]["message"]["reasoning_content"] = "thinking it over"
    chat_only.then(Reply(json=answer))
    response = http.post("/v1/completions", json={"model": "converted", "prompt": "q"})

    body = response.json()
    assert body["choices"] == [{"index": 0, "text": "the answer", "logprobs": None,
                                "finish_reason": "length"}]
    assert body["model"] == "converted" and body["object"] == "text_completion"


def test_a_stream_is_converted_event_by_event(http, chat_only):
    response = http.post("/v1/completions", json={
        "model": "converted", "prompt": "one two three", "stream": True,
        "stream_options": {"include_usage": True}})

    assert response.status_code == 200, response.text
    events = events_of(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert {c["model"] for c in chunks} == {"converted"}
    # the role-only event carries no text: left out
    assert all(c["choices"][0]["text"] for c in chunks[:-2])
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == \
        "echo: one two three "
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 11
    assert chat_only.last.json["stream"] is True

    hidden = events_of(http.post("/v1/completions", json={
        "model": "converted", "prompt": "one", "stream": True}))
    assert all("usage" not in c for c in hidden[:-1])
    assert chat_only.last.json["stream_options"] == {"include_usage": True}


def test_a_stream_the_client_leaves_is_charged_what_it_was_sent(gateway, chat_only):
    """Each converted event is sent as it comes: the client reads some and leaves; it is
    charged the chat text it was sent."""
    key = new_key(gateway, "converted-leaver")
    events = [chunk({"model": "m"}, {"role": "assistant", "content": ""})]
    events += [chunk({"model": "m"}, {"content": f" word{i}"}) for i in range(200)]
    chat_only.then(Reply(events=events, interval=0.01))
    with httpx.Client(base_url=gateway.url, timeout=30) as client, client.stream(
            "POST", "/v1/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "converted", "prompt": "go on", "stream": True}) as response:
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                assert '"text_completion"' in line
                seen += 1
            if seen == 5:
                break
    totals = usage_of(gateway, "converted-leaver", 1)
    assert 5 <= totals["completion_tokens"] < 200 * 2


def test_n_fanned_out_by_the_chat_rules_comes_back_as_text_completions(http, chat_only):
    whole = http.post("/v1/completions", json={"model": "converted-fanout", "prompt": "hi",
                                               "n": 2, "seed": 5})
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["object"] == "text_completion"
    assert [(c["index"], c["text"]) for c in answer["choices"]] == [(0, "echo: hi"),
                                                                    (1, "echo: hi")]
    assert answer["usage"]["completion_tokens"] == 14  # both requests' usage, summed
    assert sorted(r.json["seed"] for r in chat_only.requests) == [5, 6]

    events = events_of(http.post("/v1/completions", json={
        "model": "converted-fanout", "prompt": "hi", "n": 2, "stream": True,
        "stream_options": {"include_usage": True}}))
    assert events[-1] == "[DONE]"
    assert {e["object"] for e in events[:-1]} == {"text_completion"}
    assert {e["choices"][0]["index"] for e in events[:-2]} == {0, 1}
    assert events[-2]["choices"] == [] and events[-2]["usage"]["prompt_tokens"] == 22


def test_the_policy_drops_or_refuses_what_chat_lacks(http, chat_only):
    dropped = http.post("/v1/completions", json={"model": "converted", "prompt": "a",
                                                 "logprobs": 2, "best_of": 2})
    assert dropped.status_code == 200, dropped.text
    assert dropped.headers["x-gateway-dropped-params"] == "best_of, logprobs"
    assert "logprobs" not in chat_only.last.json and "best_of" not in chat_only.last.json

    for name, value in (("logprobs", 2), ("best_of", 2)):
        refused = http.post("/v1/completions", json={"model": "converted-strict", "prompt": "a",
                                                     name: value})
        error = assert_openai_error(refused, 400, param=name, code="unsupported_parameter")
        assert "chat-strict" in error["message"]


def test_what_would_change_the_answer_is_refused_naming_it(http, chat_only):
    for fields, param in (({"echo": True}, "echo"), ({"suffix": "end"}, "suffix"),
                          ({"prompt": [1, 2]}, "prompt"), ({"prompt": ["a", "b"]}, "prompt")):
        response = http.post("/v1/completions", json={"model": "converted", "prompt": "a",
                                                      **fields})
        error = assert_openai_error(response, 400, param=param, code="unsupported_parameter")
        assert "which speaks chat completions only" in error["message"]
    assert chat_only.requests == []


def test_a_fallback_from_completions_to_chat_converts_on_the_second_attempt(http, native,
                                                                           chat_only):
    for stream in (False, True):
        native.then(Reply(status=503, json={"error": {"message": "busy"}}))
        response = http.post("/v1/completions", json={
            "model": "native-then-chat", "prompt": "fall back", "max_tokens": 5,
            "stream": stream})

        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-attempts"] == "2"
        assert response.headers["x-gateway-target"] == "chat/chat-model"
        text = ("".join(e["choices"][0]["text"] for e in events_of(response)[:-1]) if stream
                else response.json()["choices"][0]["text"])
        assert text.strip() == "echo: fall back"
        assert native.last.path == "/v1/completions" and native.last.json["max_tokens"] == 5
        assert chat_only.last.json["max_completion_tokens"] == 5


def test_what_chat_cannot_say_falls_back_to_a_target_that_speaks_completions(http, native,
                                                                            chat_only):
    response = http.post("/v1/completions", json={"model": "chat-then-native", "prompt": "a",
                                                  "echo": True})

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-target"] == "up/native-model"
    assert native.last.json["echo"] is True
    assert chat_only.requests == []  # refused before anything was sent


def test_an_unreachable_first_target_falls_back_to_the_conversion(http):
    response = http.post("/v1/completions", json={"model": "dead-then-chat", "prompt": "a"})

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-attempts"] == "2"
    assert response.json()["choices"][0]["text"] == "echo: a"


def test_the_demo_model_answers_completions_by_conversion(gateway):
    response = httpx.post(gateway.url + "/v1/completions", headers={"Authorization":
                                                                    f"Bearer {KEY}"},
                          json={"model": "demo", "prompt": "Hello!", "max_tokens": 60})

    answer = response.json()
    assert 'You said: "Hello!"' in answer["choices"][0]["text"]
    assert answer["usage"]["completion_tokens"] > 10
