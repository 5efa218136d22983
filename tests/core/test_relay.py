"""Relaying to real upstreams: fallback, relayed refusals, timeouts, streams, disconnects."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_SECRET, assert_openai_error, auth
from tests.gateway_process import wait_for
from tests.upstream import Gate, Reply, chunk

CHAT = "/v1/chat/completions"


def ask(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def events_of(response: httpx.Response) -> list[bytes]:
    return [e for e in response.content.split(b"\n\n") if e.strip()]


@pytest.mark.parametrize("status", [500, 502, 503, 429, 401, 404])
def test_failing_target_falls_back_to_the_next(http, primary, backup, status):
    primary.then(Reply(status=status, json={"error": {"message": "primary is unwell"}}))

    response = http.post(CHAT, headers=auth(), json=ask("with-fallback"))

    assert response.status_code == 200, response.text
    assert response.json()["model"] == "with-fallback"
    assert len(primary.requests) == 1
    assert backup.last.json["model"] == "upstream-model-b"  # translated again for the new target
    assert "authorization" not in backup.last.headers  # backup has no key: none is sent


def test_unreachable_target_falls_back(http, backup):
    response = http.post(CHAT, headers=auth(), json=ask("dead-first"))

    assert response.status_code == 200, response.text
    assert len(backup.requests) == 1


def test_unreachable_upstream_is_502(http):
    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("only-dead")), 502)
    assert "only-dead" in error["message"]
    assert "dead/nothing" in error["message"]  # which target failed, and...
    assert "Connection refused" in error["message"]  # ...why...
    assert "127.0.0.1" not in error["message"]  # ...but not where it lives


def test_all_targets_failing_is_502_naming_each(http, primary, backup):
    primary.then(Reply(status=503))
    backup.then(Reply(status=500, raw=b"<html>oops</html>"))

    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("with-fallback")), 502)
    assert "primary/upstream-model-a: HTTP 503" in error["message"]
    assert "backup/upstream-model-b: HTTP 500" in error["message"]
    assert "<html>" not in error["message"]


def test_all_targets_rate_limited_is_429_with_retry_after(http, primary):
    primary.then(Reply(status=429, json={"error": {"message": "slow down"}},
                       headers={"retry-after": "7"}))

    response = http.post(CHAT, headers=auth(), json=ask("rate-limited"))

    assert_openai_error(response, 429, code="upstream_rate_limited")
    assert response.headers["retry-after"] == "7"


def test_client_error_is_relayed_not_retried(http, primary, backup):
    primary.then(Reply(status=400, json={"error": {
        "message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error",
        "param": "messages", "code": "context_length_exceeded"}}))

    response = http.post(CHAT, headers=auth(), json=ask("with-fallback"))

    error = assert_openai_error(response, 400, param="messages", code="context_length_exceeded")
    assert "maximum context length" in error["message"]
    assert backup.requests == []


def test_vllm_style_error_is_reshaped(http, primary):
    primary.then(Reply(status=422, json={"object": "error", "message": "bad top_k",
                                         "type": "BadRequestError", "param": None, "code": 422}))

    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("gpt-test")), 422)
    assert error["message"] == "bad top_k"
    assert error["code"] is None


def test_provider_secret_is_scrubbed_from_relayed_errors(http, primary):
    primary.then(Reply(status=400, json={"error": {"message": f"key {UPSTREAM_SECRET} lacks scope"}}))

    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("gpt-test")), 400)
    assert UPSTREAM_SECRET not in error["message"]


def test_slow_upstream_is_504(http, primary):
    primary.then(Reply(delay=3))

    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("impatient")), 504,
                                code="upstream_timeout")
    assert "within 1s" in error["message"]


def test_garbled_upstream_answer_is_502(http, primary):
    primary.then(Reply(raw=b"this is not json"))
    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("gpt-test")), 502)
    assert "not JSON" in error["message"]


def test_error_inside_a_200_is_502(http, primary):
    primary.then(Reply(json={"error": {"message": "model overloaded"}}))
    error = assert_openai_error(http.post(CHAT, headers=auth(), json=ask("gpt-test")), 502)
    assert "model overloaded" in error["message"]


def test_stream_is_relayed_event_by_event(gateway, primary):
    """The first event reaches the client while the upstream is still holding back the rest."""
    request = ask("gpt-test")
    gate = Gate()
    primary.then(Reply(events=[chunk(request, {"content": "first"}), gate,
                               chunk(request, {"content": "second"}, "stop")]))

    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        with http.stream("POST", CHAT, headers=auth(), json=ask("gpt-test", stream=True)) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["content"] == "first"
            gate.open()
            rest = [line for line in lines if line]
    assert json.loads(rest[0].removeprefix("data: "))["model"] == "gpt-test"
    assert rest[-1] == "data: [DONE]"


def test_stream_end_is_not_held_while_the_upstream_body_stays_open(gateway, primary):
    """The events before the upstream's `[DONE]` reach the client at once, even when the
    upstream is slow to end its body; the gateway's own `[DONE]` follows the body's end."""
    request = ask("gpt-test")
    gate = Gate()
    primary.then(Reply(events=[chunk(request, {"content": "all"}, "stop"), b"data: [DONE]\n\n",
                               gate], done=False))

    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        with http.stream("POST", CHAT, headers=auth(), json=ask("gpt-test", stream=True)) as response:
            lines = response.iter_lines()
            last = next(line for line in lines if line)
            assert json.loads(last.removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"
            gate.open()
            rest = [line for line in lines if line]
    assert rest == ["data: [DONE]"]


def test_client_disconnect_closes_the_upstream_stream(gateway, primary):
    request = ask("gpt-test")
    primary.then(Reply(events=[chunk(request, {"content": "tok "})] * 1000, interval=0.02))

    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        with http.stream("POST", CHAT, headers=auth(), json=ask("gpt-test", stream=True)) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line).startswith("data: ")
        # leaving the block closes the connection mid-stream

    wait_for(primary.closed_early.is_set, 5, "the upstream to see the stream closed")
    assert primary.events_sent < 1000


def test_client_giving_up_on_a_plain_request_closes_the_upstream_request(gateway, primary):
    primary.then(Reply(hang=True))

    headers = {**auth(), "x-request-id": "abandoned-plain-request"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + CHAT, headers=headers, json=ask("gpt-test"), timeout=0.5)

    wait_for(primary.closed_early.is_set, 5, "the upstream to see the request abandoned")
    entry = wait_for(lambda: gateway.request_log("abandoned-plain-request"), 5, "its log line")
    assert entry["status"] == 499 and entry["error"] == "client disconnected"


def test_stream_that_fails_before_its_first_byte_falls_back(gateway, primary, backup):
    primary.then(Reply(status=503))

    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        response = http.post(CHAT, headers=auth(), json=ask("with-fallback", stream=True))

    assert response.status_code == 200
    assert events_of(response)[-1] == b"data: [DONE]"
    assert len(backup.requests) == 1


def test_stream_cut_mid_event_ends_with_an_error_event(client, primary):
    request = ask("gpt-test")
    primary.then(Reply(events=[chunk(request, {"content": "partial"}), b'data: {"trunc'],
                       done=False))

    stream = client.chat.completions.create(**ask("gpt-test", stream=True))
    pieces = []
    with pytest.raises(openai.APIError, match="middle of an event"):
        for c in stream:
            pieces.append(c.choices[0].delta.content)
    assert pieces == ["partial"]


def test_stream_without_done_still_ends_with_done(http, primary):
    request = ask("gpt-test")
    last = b"data: " + json.dumps(chunk(request, {}, "stop")).encode()  # no blank line, no [DONE]
    primary.then(Reply(events=[chunk(request, {"content": "all"}), last], done=False))

    events = events_of(http.post(CHAT, headers=auth(), json=ask("gpt-test", stream=True)))

    assert json.loads(events[-2].removeprefix(b"data: "))["choices"][0]["finish_reason"] == "stop"
    assert json.loads(events[-2].removeprefix(b"data: "))["model"] == "gpt-test"
    assert events[-1] == b"data: [DONE]"


def test_stream_stall_ends_with_an_error_event(gateway, primary):
    request = ask("impatient")
    gate = Gate()
    primary.then(Reply(events=[chunk(request, {"content": "partial"}), gate]))
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            response = http.post(CHAT, headers=auth(), json=ask("impatient", stream=True))
    finally:
        gate.open()

    events = events_of(response)
    assert b"partial" in events[0]
    error = json.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_timeout" and "stalled" in error["message"]
    assert events[-1] == b"data: [DONE]"


def test_sdk_raises_on_a_mid_stream_error(gateway, primary):
    request = ask("impatient")
    gate = Gate()
    primary.then(Reply(events=[chunk(request, {"content": "partial"}), gate]))
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=auth()["Authorization"][7:],
                       max_retries=0) as sdk:
        try:
            with pytest.raises(openai.APIError, match="stalled"):
                list(sdk.chat.completions.create(**ask("impatient", stream=True)))
        finally:
            gate.open()
