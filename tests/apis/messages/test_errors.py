"""Errors on /v1/messages in Anthropic's shape, each type with its status, as the anthropic SDK
reads them: `{"type": "error", "error": {"type", "message"}}` and a `request-id` header."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from gateway.apis.messages import errors
from gateway.core import errors as gateway_errors
from tests.apis.messages.conftest import KEY, LIMITED
from tests.upstream import Reply

HELLO = [{"role": "user", "content": "Hello"}]


def check(caught: pytest.ExceptionInfo, status: int, kind: str) -> None:
    error = caught.value
    assert error.status_code == status
    assert error.body == {"type": "error", "error": {"type": kind, "message": error.body[
        "error"]["message"]}} and error.body["error"]["message"]
    assert error.response.headers["request-id"] == error.response.headers["x-request-id"]
    assert error.request_id == error.response.headers["request-id"]  # the SDK reads it


def test_a_bad_request_is_an_invalid_request_error(sdk):
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="converted", max_tokens=0, messages=HELLO)
    check(caught, 400, "invalid_request_error")
    assert "max_tokens" in caught.value.body["error"]["message"]


def test_a_thinking_budget_under_1024_is_refused_as_anthropic_refuses_it(http):
    response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 4096,
                                               "messages": HELLO, "thinking": {
                                                   "type": "enabled", "budget_tokens": 1000}})
    assert response.status_code == 400
    assert "thinking.budget_tokens" in response.json()["error"]["message"]


def test_a_missing_max_tokens_is_named(http):
    response = http.post("/v1/messages", json={"model": "converted", "messages": HELLO})
    assert response.status_code == 400
    assert "max_tokens" in response.json()["error"]["message"]


def test_a_bad_key_is_an_authentication_error(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-nope", max_retries=0) as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            sdk.messages.create(model="converted", max_tokens=8, messages=HELLO)
    check(caught, 401, "authentication_error")


def test_an_unknown_model_is_a_not_found_error(sdk):
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.create(model="no-such-model", max_tokens=8, messages=HELLO)
    check(caught, 404, "not_found_error")


def test_a_body_over_the_limit_is_request_too_large(sdk):
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(model="converted", max_tokens=8,
                            messages=[{"role": "user", "content": "x" * 300_000}])
    check(caught, 413, "request_too_large")


def test_a_rate_limit_is_a_rate_limit_error_with_retry_after(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key=LIMITED, max_retries=0) as sdk:
        sdk.messages.create(model="converted", max_tokens=8, messages=HELLO)
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.create(model="converted", max_tokens=8, messages=HELLO)
    check(caught, 429, "rate_limit_error")
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_an_upstream_that_cannot_be_reached_is_an_api_error(sdk):
    with pytest.raises(anthropic.InternalServerError) as caught:
        sdk.messages.create(model="only-dead", max_tokens=8, messages=HELLO)
    check(caught, 502, "api_error")


def test_no_target_able_to_answer_now_is_overloaded_529(sdk, chat_only):
    chat_only.then(Reply(status=429, headers={"retry-after": "60"}, json={"error": {
        "message": "slow down", "type": "rate_limit_error"}}))
    with pytest.raises(anthropic.RateLimitError):  # the upstream's own 429, relayed
        sdk.messages.create(model="resting", max_tokens=8, messages=HELLO)

    with pytest.raises(anthropic.APIStatusError) as caught:  # its only target now rests
        sdk.messages.create(model="resting", max_tokens=8, messages=HELLO)
    check(caught, 529, "overloaded_error")


def test_a_started_stream_that_breaks_ends_with_an_error_event(http, chat_only):
    chat_only.then(Reply(events=[{"id": "c", "object": "chat.completion.chunk", "model": "m",
                                  "choices": [{"index": 0, "delta": {"content": "Hel"},
                                               "finish_reason": None}]},
                                 b"data: {\"id\": \"c\", \"choi"], done=False))
    response = http.post("/v1/messages", json={"model": "converted", "max_tokens": 8,
                                               "messages": HELLO, "stream": True})

    assert response.status_code == 200
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    assert blocks[0].startswith("event: message_start")
    assert blocks[-1].startswith("event: error\ndata: ")
    assert '"type":"error","error":{"type":"api_error"' in blocks[-1]


@pytest.mark.parametrize("error, status, kind", [
    (gateway_errors.InvalidRequest("x"), 400, "invalid_request_error"),
    (gateway_errors.Unauthorized("x"), 401, "authentication_error"),
    (gateway_errors.Forbidden("x"), 403, "permission_error"),
    (gateway_errors.NotFound("x"), 404, "not_found_error"),
    (gateway_errors.PayloadTooLarge("x"), 413, "request_too_large"),
    (gateway_errors.RateLimited("x"), 429, "rate_limit_error"),
    (gateway_errors.GatewayError("x"), 500, "api_error"),
    (gateway_errors.UpstreamTimeout("x"), 504, "api_error"),
    (gateway_errors.NoHealthyTarget("x"), 529, "overloaded_error"),
    (gateway_errors.UpstreamClientError(422, "x"), 422, "invalid_request_error"),
])
def test_each_gateway_error_has_its_anthropic_type_and_status(error, status, kind):
    assert errors.status_of(error) == status
    assert errors.body(error) == (b'{"type":"error","error":{"type":"' + kind.encode()
                                  + b'","message":"x"}}')


def test_a_key_may_be_sent_as_a_bearer_token_too(gateway):
    response = httpx.post(gateway.url + "/v1/messages", timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "converted", "max_tokens": 8, "messages": HELLO})
    assert response.status_code == 200
