"""Hypothesis against POST /v1/completions on a running gateway, with raw bodies.

As tests/apis/chat/test_fuzz.py does for chat: prompts of every shape and near-shape
(text, token ids past 32 and 64 bits, nested arrays, nulls), every parameter
with any JSON value, to a target that speaks completions and to chat-only ones
(the conversion), streamed or not. The property: every answer is a text
completion (200), a stream of them that ends with `[DONE]`, or an OpenAI-shaped
error with a 4xx status, within seconds. Examples per test:
GATEWAY_FUZZ_EXAMPLES (default 30).
"""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apis.chat.test_fuzz import json_values

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "30"))
pytestmark = pytest.mark.timeout(max(120, EXAMPLES))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
MODELS = ("native", "native-vllm", "converted", "demo")


def check(http: httpx.Client, body: bytes) -> None:
    started = time.monotonic()
    response = http.post("/v1/completions", content=body,
                         headers={"Content-Type": "application/json"})
    assert time.monotonic() - started < 10
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
        for event in response.text.split("\n\n")[:-2]:
            data = json.loads(event[6:])
            assert data["object"] == "text_completion", data
        return
    answer = response.json()
    if response.status_code == 200:
        assert answer["object"] == "text_completion" and answer["choices"], answer
        assert all(type(c["text"]) is str for c in answer["choices"])
    else:
        assert set(answer) == {"error"} and answer["error"]["message"], answer
        assert set(answer["error"]) == {"message", "type", "param", "code"}


tokens = st.lists(st.integers(min_value=-5, max_value=2**70) | json_values, max_size=5)
prompts = (st.text() | st.lists(st.text(max_size=20), max_size=3) | tokens
           | st.lists(tokens, max_size=3) | json_values)
PARAMS = ("suffix", "echo", "logprobs", "best_of", "stream", "stream_options", "max_tokens",
          "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
          "logit_bias", "seed", "user", "max_completion_tokens", "top_k")
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | json_values, "prompt": prompts},
    optional={name: json_values for name in PARAMS})


@FUZZ
@given(request=requests)
def test_any_json_request_gets_a_completion_or_a_4xx(http, request):
    check(http, json.dumps(request).encode())


# Values close to right, so that each parameter's own checks are reached on every target.
near = {"echo": st.booleans(), "suffix": st.text(max_size=5) | st.none(),
        "logprobs": st.integers(min_value=-1, max_value=30), "best_of": st.integers(-1, 30),
        "max_tokens": st.integers(-1, 100), "n": st.integers(-1, 20),
        "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=6),
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
        "temperature": st.floats(-1, 5), "logit_bias": st.dictionaries(
            st.text(max_size=3), st.floats(-100, 100), max_size=2)}


@FUZZ
@given(model=st.sampled_from(MODELS), stream=st.booleans(), prompt=st.text(max_size=40)
       | st.lists(st.text(max_size=10), min_size=1, max_size=2)
       | st.lists(st.integers(0, 100), min_size=1, max_size=4),
       fields=st.fixed_dictionaries({}, optional=near))
def test_near_valid_requests_on_every_target(http, model, stream, prompt, fields):
    check(http, json.dumps({"model": model, "prompt": prompt, "stream": stream,
                            **fields}).encode())


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF),
       model=st.sampled_from(MODELS))
def test_any_unicode_and_lone_surrogates(http, text, surrogate, model):
    body = json.dumps({"model": model, "prompt": text})
    check(http, body.encode())
    check(http, body.replace('"prompt": ', f'"prompt": "\\u{surrogate:04x}", "x": ', 1).encode())


def nested(depth: int, kind: str) -> bytes:
    inner = "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth
    return ('{"model": "native", "prompt": ' + inner + "}").encode()


@FUZZ
@given(body=st.binary(max_size=300) | st.builds(nested, st.integers(1, 50_000),
                                                 st.sampled_from("[{")))
def test_bytes_that_are_not_json_and_prompts_nested_deep(http, body):
    check(http, body)
