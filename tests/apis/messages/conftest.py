"""One gateway in front of an upstream that speaks Messages and one that speaks chat only.

    native            -> up (vllm profile: speaks Messages)
    native-anthropic  -> up, through the anthropic profile (x-api-key, anthropic-version)
    native-then-chat  -> up, then chat (the fallback converts)
    converted         -> chat (generalcompute profile: chat only)
    converted-strict  -> chat, with unsupported_params: reject
    converted-agg     -> chat (aggregator profile: reasoning_effort, max_completion_tokens)
    converted-reason  -> chat (model-api profile: takes reasoning back in assistant turns)
    claude-*          -> chat: Claude Code's model ids, by a wildcard
    dead-then-chat    -> a closed port, then chat
    only-dead         -> a closed port
    resting           -> chat, a target of its own (a Retry-After rests only it)
    demo              -> the built-in demo model (chat only)

`limited` is a key with one request a minute; `demo-only` may use demo alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.apis import upstreams
from tests.gateway_process import GatewayProcess, free_port, serving
from tests.upstream import Upstream

KEY = "sk-messages-team-0123456789"
LIMITED = "sk-messages-limited-0123456789"
DEMO_ONLY = "sk-messages-demo-only-0123456789"
MASTER = "sk-messages-master-0123456789"
PROVIDER_KEY = "sk-messages-provider-secret-91"

chat_only, _fresh = upstreams.chat_only, upstreams._fresh
messages_upstream = upstreams.messages_upstream  # chat and Messages


@pytest.fixture(scope="session")
def native(messages_upstream) -> Upstream:
    """The loopback upstream with Anthropic's Messages API (tests/upstream_messages.py), fresh
    for each test that asks for it (upstreams._fresh)."""
    return messages_upstream


@pytest.fixture(scope="session")
def gateway(native, chat_only, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("messages"), f"""
        server: {{max_body_bytes: 256KiB}}
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: vllm, base_url: "{native.url}", api_key: "{PROVIDER_KEY}"}}
          ant: {{profile: anthropic, base_url: "{native.url}", api_key: "{PROVIDER_KEY}"}}
          chat: {{profile: generalcompute, base_url: "{chat_only.url}", api_key: "{PROVIDER_KEY}"}}
          chat-strict: {{profile: generalcompute, base_url: "{chat_only.url}",
                         unsupported_params: reject}}
          chat-agg: {{profile: aggregator, base_url: "{chat_only.url}"}}
          chat-reason: {{profile: model-api, base_url: "{chat_only.url}"}}
          dead: {{profile: vllm, base_url: "http://127.0.0.1:{free_port()}/v1", timeouts: {{connect: 1}}}}
          demo: {{profile: demo}}
        models:
          native: {{targets: [{{provider: up, model: native-model}}]}}
          native-anthropic: {{targets: [{{provider: ant, model: claude-upstream}}]}}
          native-then-chat:
            targets: [{{provider: up, model: native-model}}, {{provider: chat, model: chat-model}}]
          converted: {{targets: [{{provider: chat, model: chat-model}}]}}
          converted-strict: {{targets: [{{provider: chat-strict, model: chat-model}}]}}
          converted-agg: {{targets: [{{provider: chat-agg, model: agg-model}}]}}
          converted-reason: {{targets: [{{provider: chat-reason, model: reason-model}}]}}
          "claude-*": {{targets: [{{provider: chat, model: glm-4.6}}]}}
          dead-then-chat:
            targets: [{{provider: dead, model: x}}, {{provider: chat, model: chat-model}}]
          only-dead: {{targets: [{{provider: dead, model: x}}]}}
          resting: {{targets: [{{provider: chat, model: resting-model}}]}}
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
          limited: {{key: "{LIMITED}", limits: {{requests_per_minute: 1}}}}
          demo-only: {{key: "{DEMO_ONLY}", models: [demo]}}
    """, {"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


@pytest.fixture
def sdk(gateway) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK pointed at the gateway, as Claude Code's users point theirs."""
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0,
                             timeout=30) as client:
        yield client


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30, headers={
            "x-api-key": KEY, "anthropic-version": "2023-06-01"}) as client:
        yield client


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """A Messages stream's events: each `event:` name and its data, parsed."""
    import json

    events = []
    for block in response.text.split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((lines["event"], json.loads(lines["data"])))
    return events
