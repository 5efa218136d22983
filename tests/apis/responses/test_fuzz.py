"""Hypothesis against POST /v1/responses on a running gateway, with raw bodies.

As tests/apis/completions/test_fuzz.py does for completions: inputs of every shape
and near-shape (strings, items of every type and none, parts, nulls), tools and
formats, every parameter with any JSON value, to targets that speak Responses
(the vllm and openai profiles) and to chat-only ones (the conversion), streamed or
not. The property: every answer is a response object (200), a stream of Responses
events numbered from 0 whose last is response.completed, .incomplete or .failed,
or an OpenAI-shaped error with a 4xx status, within seconds (tests/fuzzing.py's
`answered`). Examples per test: GATEWAY_FUZZ_EXAMPLES (default 30).
"""

from __future__ import annotations

import json
import time

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tests.apis.responses.conftest import events_of
from tests.fuzzing import FUZZ, TIMEOUT, answered, deep_json, json_values

pytestmark = TIMEOUT
MODELS = ("native", "native-openai", "converted", "demo")
LAST = ("response.completed", "response.incomplete", "response.failed")


def check(http: httpx.Client, body: bytes) -> None:
    started = time.monotonic()
    response = http.post("/v1/responses", content=body,
                         headers={"Content-Type": "application/json"})
    if response.headers["content-type"].startswith("text/event-stream"):
        assert time.monotonic() - started < 10 and response.status_code == 200
        events = events_of(response)
        assert events, response.text
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
        assert [name for name, _ in events] == [data["type"] for _, data in events]
        assert events[0][0] == "response.created" and events[-1][0] in LAST, events[-1]
        return
    answer = answered(response, started)  # a Responses stream has no [DONE]: checked above
    if answer is not None:
        assert answer["object"] == "response" and type(answer["output"]) is list, answer
        assert answer["status"] in ("completed", "incomplete", "failed")


texts = st.text(max_size=20)
parts = st.fixed_dictionaries({"type": st.sampled_from(
    ["input_text", "output_text", "input_image", "input_file", "refusal"]) | json_values},
    optional={"text": texts | json_values, "image_url": texts | json_values,
              "file_id": texts | json_values, "detail": json_values})
items = (
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "developer", "assistant",
                                                    "tool"]) | json_values},
                          optional={"type": st.sampled_from(["message"]) | json_values,
                                    "content": texts | st.lists(parts, max_size=3)
                                    | json_values})
    | st.fixed_dictionaries({"type": st.sampled_from(
        ["function_call", "function_call_output", "reasoning", "item_reference",
         "web_search_call"]) | json_values},
        optional={"call_id": texts | json_values, "name": texts | json_values,
                  "arguments": texts | json_values, "output": texts | st.lists(parts, max_size=2)
                  | json_values, "summary": st.lists(st.fixed_dictionaries(
                      {"type": st.just("summary_text"), "text": texts}), max_size=2)
                  | json_values, "id": texts})
    | json_values)
inputs = texts | st.lists(items, max_size=4) | json_values
tools = st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search", "file_search", "mcp"]) | json_values},
    optional={"name": texts | json_values, "parameters": json_values,
              "strict": json_values}), max_size=3)
PARAMS = ("instructions", "stream", "stream_options", "tool_choice", "parallel_tool_calls",
          "text", "reasoning", "max_output_tokens", "temperature", "top_p", "top_logprobs",
          "user", "metadata", "store", "previous_response_id", "include", "truncation",
          "max_tool_calls", "background", "service_tier", "prompt", "conversation",
          "max_tokens", "messages", "top_k")
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | json_values, "input": inputs},
    optional={"tools": tools | json_values, **{name: json_values for name in PARAMS}})


@FUZZ
@given(request=requests)
def test_any_json_request_gets_a_response_or_a_4xx(http, request):
    check(http, json.dumps(request).encode())


# Values close to right, so that each parameter's own checks are reached on every target.
formats = st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema"])},
                                optional={"name": texts, "schema": st.just({"type": "object"}),
                                          "strict": st.booleans()})
near = {"instructions": texts | st.none(), "tools": tools,
        "tool_choice": st.sampled_from(["none", "auto", "required"])
        | st.fixed_dictionaries({"type": st.sampled_from(["function", "web_search"]),
                                 "name": texts}),
        "text": st.fixed_dictionaries({}, optional={"format": formats,
                                                     "verbosity": st.sampled_from(["low"])}),
        "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(
            ["none", "minimal", "low", "high", "xhigh", "max"]), "summary": st.just("auto")}),
        "max_output_tokens": st.integers(-1, 100), "temperature": st.floats(-1, 5),
        "include": st.lists(st.sampled_from(["message.output_text.logprobs", "x"]), max_size=2),
        "truncation": st.sampled_from(["auto", "disabled"]), "store": st.booleans(),
        "metadata": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)}


@FUZZ
@given(model=st.sampled_from(MODELS), stream=st.booleans(),
       input=texts | st.lists(items, min_size=1, max_size=3),
       fields=st.fixed_dictionaries({}, optional=near))
def test_near_valid_requests_on_every_target(http, model, stream, input, fields):
    check(http, json.dumps({"model": model, "input": input, "stream": stream,
                            **fields}).encode())


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF),
       model=st.sampled_from(MODELS), stream=st.booleans())
def test_any_unicode_and_lone_surrogates(http, text, surrogate, model, stream):
    body = json.dumps({"model": model, "input": [{"role": "user", "content": text}],
                       "stream": stream})
    check(http, body.encode())
    check(http, body.replace('"content": ', f'"content": "\\u{surrogate:04x}", "x": ', 1)
          .encode())


@FUZZ
@given(body=st.binary(max_size=300) | deep_json.map(
    lambda inner: ('{"model": "converted", "input": ' + inner + "}").encode()))
def test_bytes_that_are_not_json_and_inputs_nested_deep(http, body):
    check(http, body)
