"""Bad input gets a clear OpenAI-shaped error with the right status, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_openai_error, auth

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def test_no_body(http):
    response = http.post(CHAT, headers=auth())
    error = assert_openai_error(response, 400, code="invalid_json")
    assert "empty" in error["message"]


def test_bad_json(http):
    response = http.post(CHAT, headers=auth(), content=b'{"model": "gpt-test", "messages": [')
    error = assert_openai_error(response, 400, code="invalid_json")
    assert "not valid JSON" in error["message"]


def test_body_not_an_object(http):
    response = http.post(CHAT, headers=auth(), json=["model", "gpt-test"])
    assert_openai_error(response, 400, code="invalid_type")


@pytest.mark.parametrize("body, param, code", [
    ({"model": "gpt-test"}, "messages", "missing_required_parameter"),
    ({"messages": HELLO}, "model", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": []}, "messages", "empty_array"),
    ({"model": "gpt-test", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": 42, "messages": HELLO}, "model", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"content": "hi"}]}, "messages[0].role",
     "missing_required_parameter"),
    ({"model": "gpt-test", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role",
     "invalid_value"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": 7}]}, "messages[0].content",
     "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages[0].content[0].text", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"detail": "low"}}]}]},
     "messages[0].content[0].image_url.url", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": HELLO, "temperature": "hot"}, "temperature", "invalid_type"),
    ({"model": "gpt-test", "messages": HELLO, "max_tokens": 0}, "max_tokens", "invalid_value"),
    ({"model": "gpt-test", "messages": HELLO, "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "gpt-test", "messages": HELLO, "n": True}, "n", "invalid_type"),
    ({"model": "gpt-test", "messages": HELLO, "stop": ["a", 1]}, "stop[1]", "invalid_type"),
    ({"model": "gpt-test", "messages": HELLO, "tools": [{"type": "function"}]}, "tools[0].function",
     "missing_required_parameter"),
])
def test_schema_errors_name_the_field(http, primary, body, param, code):
    response = http.post(CHAT, headers=auth(), json=body)

    error = assert_openai_error(response, 400, param=param, code=code)
    assert f"'{param}'" in error["message"]
    assert primary.requests == []  # nothing reached the upstream


def test_unknown_model_lists_the_models_of_this_key(http):
    response = http.post(CHAT, headers=auth(), json={"model": "gpt-99", "messages": HELLO})

    error = assert_openai_error(response, 404, param="model", code="model_not_found")
    assert "'gpt-99'" in error["message"]
    assert "gpt-test" in error["message"] and "with-fallback" in error["message"]
    assert "demo" not in error["message"].split("available to this key:")[1]


def test_model_of_another_key_looks_unknown(http):
    response = http.post(CHAT, headers=auth(), json={"model": "demo", "messages": HELLO})
    assert_openai_error(response, 404, code="model_not_found")


def test_oversized_body(http, primary):
    big = "x" * (1024 * 1024 + 1)
    response = http.post(CHAT, headers=auth(), json={"model": "gpt-test",
                                                     "messages": [{"role": "user", "content": big}]})
    assert_openai_error(response, 413, code="request_too_large")
    assert primary.requests == []


def test_oversized_body_without_content_length(http):
    def body():
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}]}'

    response = http.post(CHAT, headers=auth(), content=body())
    assert_openai_error(response, 413)


def test_compressed_body_is_refused(http):
    headers = {**auth(), "content-encoding": "gzip"}
    response = http.post(CHAT, headers=headers, content=b"\x1f\x8b...")
    assert_openai_error(response, 415)


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary=x",
    "text/plain",
])
def test_a_body_declared_as_not_json_is_refused(http, primary, content_type):
    headers = {**auth(), "content-type": content_type}
    response = http.post(CHAT, headers=headers, content=json.dumps({"model": "gpt-test", "messages": HELLO}))
    error = assert_openai_error(response, 415, code="unsupported_content_type")
    assert content_type in error["message"] and "application/json" in error["message"]
    assert primary.requests == []


@pytest.mark.parametrize("content_type", [
    None, "application/json", "application/json; charset=utf-8", "Application/JSON",
    "application/vnd.api+json",
    "application/x-www-form-urlencoded",  # what curl -d sends without -H: read as JSON
])
def test_json_content_types_are_accepted(http, content_type):
    headers = auth() | ({"content-type": content_type} if content_type else {})
    response = http.post(CHAT, headers=headers, content=json.dumps({"model": "gpt-test", "messages": HELLO}))
    assert response.status_code == 200, response.text


def test_a_form_body_that_is_not_json_says_how_to_send_json(http, primary):
    headers = {**auth(), "content-type": "application/x-www-form-urlencoded"}
    response = http.post(CHAT, headers=headers, content=b"model=gpt-test&messages=hi")
    error = assert_openai_error(response, 400, code="invalid_json")
    assert "'Content-Type: application/json'" in error["message"]
    assert primary.requests == []


def test_unknown_path_and_wrong_method(http):
    assert_openai_error(http.get("/v1/nothing-here", headers=auth()), 404)
    assert_openai_error(http.get(CHAT, headers=auth()), 405, code="method_not_allowed")


def test_json_with_non_ascii_and_nulls_passes(http, primary):
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "héllo 🌍"}],
            "temperature": None, "stop": None}
    response = http.post(CHAT, headers=auth(), content=json.dumps(body, ensure_ascii=False).encode())
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: héllo 🌍"


HUGE = 2**64 + 1  # JSON parsers take it; the gateway cannot write it on to an upstream
WIDE_TOOL = {"type": "function", "function": {"name": "f", "parameters": {
    "type": "object", "properties": {"n": {"type": "integer", "maximum": HUGE}}}}}


@pytest.mark.parametrize("path, body", [
    (CHAT, {"model": "gpt-test", "messages": HELLO, "tools": [WIDE_TOOL]}),
    (CHAT, {"model": "gpt-test", "messages": HELLO, "stream": True, "response_format": {
        "type": "json_schema", "json_schema": {"name": "n", "schema": {"maximum": HUGE}}}}),
    ("/v1/responses", {"model": "gpt-test", "input": "hi",
                       "tools": [{"type": "function", **WIDE_TOOL["function"]}]}),
    ("/v1/responses", {"model": "gpt-converted", "input": "hi", "stream": True,
                       "text": {"format": {"type": "json_schema", "name": "n",
                                           "schema": {"maximum": HUGE}}}}),
])
def test_an_integer_over_64_bits_is_a_400_not_a_500(http, primary, path, body):
    response = http.post(path, headers={**auth(), "Content-Type": "application/json"},
                         content=json.dumps(body))

    error = assert_openai_error(response, 400)
    assert "64 bits" in error["message"]
    assert primary.requests == []  # refused before any upstream saw it


def test_dropped_names_are_masked_in_the_header_unless_safe(http, primary):
    body = {"model": "gpt-test", "messages": HELLO, "x\n": 1, "fine[0].name": 2, "a b": 3}
    response = http.post(CHAT, headers={**auth(), "Content-Type": "application/json"},
                         content=json.dumps(body))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-dropped-params"] == "(unprintable), fine[0].name"
