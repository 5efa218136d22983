"""Real clients, as their users write them, against the gateway's /v1/embeddings: the openai SDK,
LangChain's OpenAIEmbeddings and litellm.embedding. Each: a plain call, a limit surfacing as the
client's own rate-limit error, the usage recorded, a fallback between two targets, and the
client's own error for an unknown model (and for one that cannot embed)."""

from __future__ import annotations

import os
import warnings

import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.apis.embeddings.conftest import PRICE_INPUT, new_key, usage_of
from tests.gateway_process import wait_for
from tests.upstream import Reply, embedding

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of prices at import
with warnings.catch_warnings():  # its TypedDicts' ReadOnly warn under this pydantic
    warnings.simplefilter("ignore", UserWarning)
    import litellm

litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning")  # and on first use

BUSY = Reply(status=503, json={"error": {"message": "overloaded"}})


def sdk(gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


def langchain(gateway, key: str, model: str = "emb", **options) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(model=model, base_url=gateway.url + "/v1", api_key=key,
                            check_embedding_ctx_length=False, max_retries=0, **options)


def lite(gateway, key: str, model: str = "emb", **options):
    return litellm.embedding(model=f"openai/{model}", api_base=gateway.url + "/v1", api_key=key,
                             num_retries=0, max_retries=0, **options)


def recorded(gateway, name: str, requests: int) -> dict:
    return wait_for(lambda: (t := usage_of(gateway, name))["requests"] == requests and t, 10,
                    f"{requests} requests of {name} in the usage")


# --- the openai SDK -------------------------------------------------------------------------


def test_sdk_base64_by_default_and_float(gateway, up):
    with sdk(gateway, new_key(gateway, "sdk-plain")) as client:
        packed = client.embeddings.create(model="emb", input=["one two", "three"], dimensions=4)
        assert up.last.json["encoding_format"] == "base64"  # what the SDK asks for by default
        floats = client.embeddings.create(model="emb", input="one", dimensions=4,
                                          encoding_format="float")

    assert [d.embedding for d in packed.data] == [embedding(0, 4), embedding(1, 4)]
    assert packed.model == "emb" and packed.usage.prompt_tokens == 3
    assert floats.data[0].embedding == embedding(0, 4)
    assert up.last.json == {"model": "text-embedding-3-small", "input": "one", "dimensions": 4,
                            "encoding_format": "float"}


def test_sdk_limit_usage_fallback_and_errors(gateway, up, vl):
    key = new_key(gateway, "sdk-limited", requests_per_minute=2)
    with sdk(gateway, key) as client:
        up.then(BUSY)
        fell_back = client.embeddings.with_raw_response.create(
            model="emb-fallback", input=["a b c", "d"], dimensions=2)
        assert fell_back.headers["x-gateway-target"] == "vl/second"
        assert [d.embedding for d in fell_back.parse().data] == [embedding(0, 2), embedding(1, 2)]
        client.embeddings.create(model="emb-fallback", input="e f")
        with pytest.raises(openai.RateLimitError) as limited:
            client.embeddings.create(model="emb-fallback", input="g")
        assert "requests per minute" in limited.value.message

    totals = recorded(gateway, "sdk-limited", 2)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (6, 0)
    assert totals["cost"] == pytest.approx(6 * PRICE_INPUT / 1e6)
    with sdk(gateway, new_key(gateway, "sdk-errors")) as client:
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="no-such-model", input="x")
        with pytest.raises(openai.BadRequestError) as unspoken:
            client.embeddings.create(model="chat-only", input="x")
        assert "cannot serve embeddings" in unspoken.value.message
        assert unspoken.value.body["param"] == "model"


# --- LangChain ------------------------------------------------------------------------------


def test_langchain_embed_documents_and_query(gateway, up):
    embedder = langchain(gateway, new_key(gateway, "lc-plain"), dimensions=3)

    documents = embedder.embed_documents(["first text", "second", "third one"])
    query = embedder.embed_query("a question")

    assert documents == [embedding(0, 3), embedding(1, 3), embedding(2, 3)]
    assert query == embedding(0, 3)
    assert up.last.json["input"] == ["a question"] and up.last.json["dimensions"] == 3
    totals = recorded(gateway, "lc-plain", 2)
    assert totals["prompt_tokens"] == 2 + 1 + 2 + 2


def test_langchain_limit_fallback_and_errors(gateway, up, vl):
    key = new_key(gateway, "lc-limited", requests_per_minute=1)
    up.then(BUSY)
    assert langchain(gateway, key, "emb-fallback").embed_query("x y") == embedding(0, 8)
    assert [r.json["model"] for r in up.requests + vl.requests] == ["first", "second"]
    with pytest.raises(openai.RateLimitError):
        langchain(gateway, key, "emb-fallback").embed_documents(["z"])

    assert recorded(gateway, "lc-limited", 1)["prompt_tokens"] == 2
    other = new_key(gateway, "lc-errors")
    with pytest.raises(openai.NotFoundError):
        langchain(gateway, other, "no-such-model").embed_query("x")
    with pytest.raises(openai.BadRequestError, match="cannot serve embeddings"):
        langchain(gateway, other, "chat-only").embed_documents(["x"])


# --- litellm --------------------------------------------------------------------------------


def test_litellm_embedding(gateway, up):
    """litellm lets `dimensions` through only for model names that start with text-embedding-3
    (its own table), so an alias of another name is asked without it."""
    answer = lite(gateway, new_key(gateway, "lite-plain"), input=["one two", "three"])

    assert [d["embedding"] for d in answer.data] == [embedding(0, 8), embedding(1, 8)]
    assert answer.usage.prompt_tokens == 3
    assert up.last.json["model"] == "text-embedding-3-small"
    assert up.last.json["input"] == ["one two", "three"]
    assert recorded(gateway, "lite-plain", 1)["prompt_tokens"] == 3


def test_litellm_limit_fallback_and_errors(gateway, up, vl):
    """litellm retries a 429 whatever `max_retries` says (0 counts as unset), waiting as long
    as Retry-After says up to a minute: so the limit here is a monthly one, whose Retry-After
    is longer, and litellm gives up after two quick tries."""
    key = new_key(gateway, "lite-limited", tokens_per_month=10)
    up.then(Reply(status=500, json={"error": {"message": "boom"}}))
    answer = lite(gateway, key, "emb-fallback", input=[1] * 6)
    assert answer.data[0]["embedding"] == embedding(0, 8)
    assert vl.last.json["model"] == "second"
    with pytest.raises(litellm.RateLimitError, match="tokens per month"):
        lite(gateway, key, "emb-fallback", input=[2] * 6)

    assert recorded(gateway, "lite-limited", 1)["prompt_tokens"] == 6
    other = new_key(gateway, "lite-errors")
    with pytest.raises(litellm.NotFoundError):
        lite(gateway, other, "no-such-model", input="x")
    with pytest.raises(litellm.BadRequestError, match="cannot serve embeddings"):
        lite(gateway, other, "chat-only", input="x")
