"""Claude Code's requests (tests/apis/messages/corpus/), translated for every shipped profile.

Each body is parsed as the gateway parses it and translated for a target of each
profile: the chat-only ones (the seed providers and openai) get chat requests
holding only what their profile accepts, vLLM gets the Messages request itself
with only what its `api_params.messages` lists. What chat cannot carry
(documents, server tools, images in a tool result) is refused on chat-only
targets, naming where it is. test_strict_upstreams.py sends them to strict
upstreams over the wire.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.messages.schema import KNOWN_PARAMS
from gateway.apis.messages.surface import MESSAGES, PASSTHROUGH, TO_CHAT
from gateway.core.translate import Rejected
from tests.apis.messages import corpus
from tests.profiles import NOWHERE, targets_on

CHAT_PROFILES = ("generalcompute", "model-api", "aggregator", "openai")
BODIES = corpus.load()
# What a chat-only target cannot take, by corpus feature: a request holding one is refused.
UNCONVERTIBLE = {"document", "server_tool", "image_in_tool_result"}
CHAT_CORE = {"model", "messages", "stream", "stream_options", "tools"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict:
    """A target on each shipped profile, from a config compiled as `gateway serve` loads it."""
    return targets_on(tmp_path_factory.mktemp("corpus"), {
        name: f"{{profile: {name}, {NOWHERE}}}" for name in (*CHAT_PROFILES, "vllm")})


def parsed(body: dict) -> dict:
    return MESSAGES.parse(orjson.dumps(body))


def accepted(target, api: str) -> set[str]:
    """What a target's profile takes for `api`, by name."""
    rules = target.dialect.rules if api == "chat" else target.dialect_for(api).rules
    return {name for name, rule in rules.items() if rule.supported}


@pytest.mark.parametrize("profile", CHAT_PROFILES)
@pytest.mark.parametrize("name, body", BODIES, ids=[name for name, _ in BODIES])
def test_each_request_reaches_a_chat_only_profile_with_only_what_it_takes(targets, name, body,
                                                                          profile):
    chat_target = targets[profile]
    assert MESSAGES.codec(chat_target) is TO_CHAT
    payload = parsed(body)
    if corpus.features(body) & UNCONVERTIBLE:
        with pytest.raises(Rejected) as refused:
            TO_CHAT.translate(payload, chat_target, stream=bool(body.get("stream")))
        assert "cannot be sent to provider" in refused.value.message and refused.value.param
        return

    sent = TO_CHAT.translate(payload, chat_target, stream=bool(body.get("stream"))).body

    assert set(sent) - CHAT_CORE <= accepted(chat_target, "chat"), set(sent) - CHAT_CORE
    assert sent["model"] == f"up-{profile}"
    assert {m["role"] for m in sent["messages"]} <= {"system", "user", "assistant", "tool"}
    calls = {c["id"] for m in sent["messages"] for c in m.get("tool_calls", ())}
    results = {m["tool_call_id"] for m in sent["messages"] if m["role"] == "tool"}
    assert results <= calls  # every tool result answers a call of the same id
    for message in sent["messages"]:
        assert set(message) <= {"role", "content", "tool_calls", "tool_call_id",
                                "reasoning_content", "reasoning"}


@pytest.mark.parametrize("name, body", BODIES, ids=[name for name, _ in BODIES])
def test_each_request_reaches_vllm_as_messages_with_only_what_it_lists(targets, name, body):
    vllm = targets["vllm"]
    assert MESSAGES.codec(vllm) is PASSTHROUGH
    payload = parsed(body)
    if "server_tool" in corpus.features(body):
        with pytest.raises(Rejected) as refused:
            PASSTHROUGH.translate(payload, vllm, stream=bool(body.get("stream")))
        assert refused.value.param.startswith("tools[")
        return

    translation = PASSTHROUGH.translate(payload, vllm, stream=bool(body.get("stream")))

    sent = translation.body
    core = {"model", "messages", "stream", "tools"}
    extras = set(body) - KNOWN_PARAMS - core  # Claude Code's own fields
    # The vllm profile's `extras: pass`: vLLM takes its own extras, and ignores what it does
    # not know. Anthropic's parameters it does not list are left out, and named.
    assert set(sent) - core - extras <= accepted(vllm, "messages")
    assert set(body) & KNOWN_PARAMS - accepted(vllm, "messages") <= set(translation.dropped)
    assert sent["messages"] == body["messages"]  # passed through, blocks and all


def test_the_corpus_holds_what_a_chat_target_must_refuse_and_what_it_must_not():
    refused = [name for name, body in BODIES if corpus.features(body) & UNCONVERTIBLE]
    assert 2 <= len(refused) < len(BODIES) - 5
