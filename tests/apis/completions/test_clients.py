"""Real clients of the completions API, as their users use them, against a native target and a
converted one: the openai SDK's `completions.create`, and LlamaIndex's `OpenAILike` with its
defaults (`is_chat_model` False: `complete()` and `chat()` both post to /v1/completions).

Each: a plain call and a stream, a key over its limit (the client's own rate-limit error),
the usage recorded, a fallback between two targets, and an error in the client's own type.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike

from tests.apis.completions.conftest import KEY, new_key, usage_of
from tests.upstream import Reply

TARGETS = {"native": "/v1/completions", "converted": "/v1/chat/completions"}


@pytest.fixture
def sdk(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0,
                       timeout=30) as client:
        yield client


def llama(gateway, model: str, key: str = KEY) -> OpenAILike:
    return OpenAILike(model=model, api_base=gateway.url + "/v1", api_key=key, max_retries=0,
                      timeout=30)


def upstream_of(model: str, native, chat_only):
    return native if model == "native" else chat_only


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_openai_sdk_plain_and_streamed(sdk, native, chat_only, model):
    upstream = upstream_of(model, native, chat_only)
    answer = sdk.completions.create(model=model, prompt="Say this is a test", max_tokens=12)

    assert answer.object == "text_completion" and answer.model == model
    assert answer.choices[0].text == "echo: Say this is a test"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert upstream.last.path == TARGETS[model]

    chunks = list(sdk.completions.create(model=model, prompt="one two", stream=True,
                                         stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.strip() == "echo: one two"
    assert {c.model for c in chunks} == {model}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_openai_sdk_limits_and_usage(gateway, model):
    name = f"sdk-limited-{model}"
    key = new_key(gateway, name, requests_per_minute=1)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        answer = client.completions.create(model=model, prompt="count me", max_tokens=5)
        with pytest.raises(openai.RateLimitError) as limited:
            client.completions.create(model=model, prompt="once more")
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"]

    totals = usage_of(gateway, name, 1)  # the refused request was never admitted
    assert (totals["requests"], totals["errors"]) == (1, 0)
    assert totals["prompt_tokens"] == answer.usage.prompt_tokens
    assert totals["completion_tokens"] == answer.usage.completion_tokens


def test_openai_sdk_fallback_and_errors(sdk, native, chat_only):
    native.then(Reply(status=500, json={"error": {"message": "boom"}}))
    raw = sdk.completions.with_raw_response.create(model="native-then-chat", prompt="again")

    assert raw.headers["x-gateway-attempts"] == "2"
    assert raw.parse().choices[0].text == "echo: again"
    assert chat_only.last.json["messages"] == [{"role": "user", "content": "again"}]

    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.completions.create(model="no-such-model", prompt="x")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.completions.create(model="converted", prompt="x", echo=True)
    assert refused.value.param == "echo"
    with pytest.raises(openai.BadRequestError) as wrong:
        sdk.completions.create(model="native", prompt="x", logprobs=True)  # chat's boolean
    assert wrong.value.param == "logprobs"


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_llama_index_complete_and_chat(gateway, native, chat_only, model):
    upstream = upstream_of(model, native, chat_only)
    llm = llama(gateway, model)
    assert llm.metadata.is_chat_model is False  # the default: completions for everything

    completed = llm.complete("Tell me a story")
    assert completed.text == "echo: Tell me a story"
    assert upstream.last.path == TARGETS[model]

    answered = llm.chat([ChatMessage(role="system", content="Be brief."),
                         ChatMessage(role="user", content="Hello")])
    prompt = "system: Be brief.\nuser: Hello\nassistant: "  # LlamaIndex's, from the messages
    assert answered.message.content == f"echo: {prompt}"
    sent = upstream.last.json
    if model == "native":
        assert sent["prompt"] == prompt and "max_tokens" not in sent
    else:  # LlamaIndex sets no max_tokens: completions' 16, as a native target would use
        assert sent["messages"] == [{"role": "user", "content": prompt}]
        assert sent["max_completion_tokens"] == 16

    streamed = "".join(piece.delta for piece in llm.stream_complete("one two"))
    assert streamed.strip() == "echo: one two"


@pytest.mark.parametrize("model", sorted(TARGETS))
def test_llama_index_limits_usage_fallback_and_errors(gateway, native, chat_only, model):
    name = f"llama-limited-{model}"
    llm = llama(gateway, model, new_key(gateway, name, requests_per_minute=1))
    completed = llm.complete("count me")
    with pytest.raises(openai.RateLimitError):
        llm.complete("once more")
    totals = usage_of(gateway, name, 1)
    assert totals["completion_tokens"] == completed.raw.usage.completion_tokens

    native.then(Reply(status=503, json={"error": {"message": "busy"}}))
    assert llama(gateway, "native-then-chat").complete("again").text == "echo: again"

    with pytest.raises(openai.NotFoundError):
        llama(gateway, "no-such-model").complete("x")
