"""One gateway in front of an upstream that speaks Responses and one that speaks chat only.

    native            -> up (vllm profile: speaks Responses)
    native-openai     -> up, through the openai profile (takes built-in tools)
    converted         -> chat (generalcompute profile: chat only)
    converted-strict  -> chat, with unsupported_params: reject
    converted-agg     -> chat (aggregator profile: reasoning_effort, max_completion_tokens)
    native-then-chat  -> up, then chat (the fallback converts)
    chat-then-native  -> chat, then up (what chat cannot say falls back to Responses)
    dead-then-chat    -> a closed port, then chat
    demo              -> the built-in demo model (chat only)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.apis import upstreams
from tests.gateway_process import (  # noqa: F401 (admin, new_key, usage_of: for the tests)
    GatewayProcess,
    admin,
    free_port,
    new_key,
    serving,
    usage_of,
)

KEY = "sk-responses-team-0123456789"
MASTER = "sk-responses-master-0123456789"
PROVIDER_KEY = "sk-responses-provider-secret-77"

# The two upstreams, fresh for each test.
native, chat_only, _fresh = upstreams.native, upstreams.chat_only, upstreams._fresh


@pytest.fixture(scope="session")
def gateway(native, chat_only, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("responses"), f"""
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: vllm, base_url: "{native.url}", api_key: "{PROVIDER_KEY}"}}
          up-openai: {{profile: openai, base_url: "{native.url}", api_key: "{PROVIDER_KEY}"}}
          chat: {{profile: generalcompute, base_url: "{chat_only.url}", api_key: "{PROVIDER_KEY}"}}
          chat-strict: {{profile: generalcompute, base_url: "{chat_only.url}",
                         unsupported_params: reject}}
          chat-agg: {{profile: aggregator, base_url: "{chat_only.url}"}}
          dead: {{profile: vllm, base_url: "http://127.0.0.1:{free_port()}/v1", timeouts: {{connect: 1}}}}
          demo: {{profile: demo}}
        models:
          native: {{targets: [{{provider: up, model: native-model}}]}}
          native-openai: {{targets: [{{provider: up-openai, model: openai-model}}]}}
          converted: {{targets: [{{provider: chat, model: chat-model}}]}}
          converted-strict: {{targets: [{{provider: chat-strict, model: chat-model}}]}}
          converted-agg: {{targets: [{{provider: chat-agg, model: agg-model}}]}}
          native-then-chat:
            targets: [{{provider: up, model: native-model}}, {{provider: chat, model: chat-model}}]
          chat-then-native:
            targets: [{{provider: chat, model: chat-model}}, {{provider: up-openai, model: openai-model}}]
          dead-then-chat:
            targets: [{{provider: dead, model: x}}, {{provider: chat, model: chat-model}}]
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """, {"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def events_of(response: httpx.Response) -> list[tuple[str, dict]]:
    """A Responses stream's events: each `event:` name and its data, parsed."""
    events = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines.get("event"), json.loads(lines["data"])))
    return events

