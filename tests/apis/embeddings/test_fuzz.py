"""Hypothesis against POST /v1/embeddings on a running gateway, with raw bodies.

Inputs a schema-driven fuzzer would not write: every shape `input` can take
and shapes near them (mixed arrays, nulls, nested arrays, floats among token
ids, integers past 64 bits), any unicode (lone surrogates included), JSON
nested thousands deep, duplicate keys, bytes that are not JSON. The property:
every answer is a list of embeddings, one an input (200), or an OpenAI-shaped
error with a 4xx status, within seconds. Examples per test:
GATEWAY_FUZZ_EXAMPLES (default 30); `GATEWAY_FUZZ_EXAMPLES=2000` is the long run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, TIMEOUT, answered, deep_json, fuzzed_gateway, json_values
from tests.gateway_process import GatewayProcess

KEY = "sk-fuzz-embeddings-0123456789"
pytestmark = TIMEOUT


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with fuzzed_gateway(tmp_path_factory.mktemp("fuzz-emb"), "512KiB", f"""
        providers:
          up: {{profile: vllm, base_url: "{{upstream}}"}}
          strict: {{profile: openai, base_url: "{{upstream}}", api_key: "sk-fuzz-upstream-1"}}
          demo: {{profile: demo}}
        models:
          m: {{targets: [{{provider: up, model: m}}]}}
          o: {{targets: [{{provider: strict, model: o}}]}}
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """) as process:
        yield process


@pytest.fixture(scope="module")
def embed(gateway) -> Iterator:
    """POST a raw body to /v1/embeddings as the fuzz key: the response, and when it was sent."""
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        def post(body: bytes) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            return client.post("/v1/embeddings", content=body, headers={
                "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}), started
        yield post


def inputs_of(body: bytes) -> int | None:
    """How many embeddings a valid request asks for (a JSON body, as a client would parse it)."""
    try:
        value = json.loads(body)["input"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(value, list) and value and isinstance(value[0], (str, list)):
        return len(value)
    return 1


def check(embed, body: bytes) -> None:
    answer = answered(*embed(body))
    if answer is not None:
        assert answer["object"] == "list" and len(answer["data"]) == inputs_of(body), answer
        assert [d["index"] for d in answer["data"]] == list(range(len(answer["data"])))
        assert answer["usage"]["prompt_tokens"] >= 0


token_ids = st.integers(min_value=-5, max_value=2**31 + 5) | st.floats(allow_nan=False,
                                                                       max_value=2**32)
inputs = (st.text() | st.lists(st.text(max_size=40), max_size=6)
          | st.lists(token_ids, max_size=8) | st.lists(st.lists(token_ids, max_size=5), max_size=4)
          | st.lists(st.text(max_size=5) | token_ids | st.lists(token_ids, max_size=3), max_size=5)
          | json_values)
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "o", "demo"]) | json_values, "input": inputs},
    optional={"encoding_format": st.sampled_from(["float", "base64", "bytes", ""]) | json_values,
              "dimensions": st.integers(min_value=-2, max_value=5000) | json_values,
              "user": st.text(max_size=10) | json_values, "stream": json_values,
              "truncate_prompt_tokens": json_values})


@FUZZ
@given(request=requests)
def test_any_json_request_gets_embeddings_or_a_4xx(embed, request):
    check(embed, json.dumps(request).encode())


@FUZZ
@given(model=st.sampled_from(["m", "o", "demo"]), texts=st.lists(st.text(min_size=1), min_size=1,
                                                                 max_size=5),
       encoding_format=st.sampled_from(["float", "base64"]),
       dimensions=st.none() | st.integers(min_value=1, max_value=64))
def test_valid_requests_are_answered(embed, model, texts, encoding_format, dimensions):
    body = {"model": model, "input": texts, "encoding_format": encoding_format}
    if dimensions is not None:
        body["dimensions"] = dimensions
    response, _ = embed(json.dumps(body).encode())
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == len(texts)


@FUZZ
@given(text=st.text(), surrogate=st.integers(min_value=0xD800, max_value=0xDFFF),
       model=st.sampled_from(["m", "demo"]))
def test_any_unicode_and_lone_surrogates(embed, text, surrogate, model):
    body = json.dumps({"model": model, "input": [text or "x", f"a{chr(surrogate)}b"]})
    check(embed, body.encode())
    check(embed, body.replace('"input": ', f'"input": "\\u{surrogate:04x}", "x": ', 1).encode())


@FUZZ
@given(inner=deep_json)
def test_deeply_nested_input(embed, inner):
    check(embed, ('{"model": "m", "input": ' + inner + "}").encode())


@FUZZ
@given(first=json_values, second=inputs)
def test_duplicate_keys(embed, first, second):
    check(embed, ('{"model": "demo", "input": ' + json.dumps(first) + ', "input": '
                 + json.dumps(second) + "}").encode())


@FUZZ
@given(body=st.binary(max_size=300))
def test_bytes_that_are_not_json(embed, body):
    check(embed, body)
