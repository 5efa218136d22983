"""One gateway in front of an upstream that speaks completions and one that speaks chat only.

    native            -> up (openai profile: speaks completions)
    native-vllm       -> up, through the vllm profile
    converted         -> chat (aggregator profile: chat only, max_tokens renamed)
    converted-strict  -> chat, with unsupported_params: reject
    converted-fanout  -> chat, n > 1 fanned out to n requests
    native-then-chat  -> up, then chat (the fallback converts)
    chat-then-native  -> chat, then up (what chat cannot say falls back to completions)
    dead-then-chat    -> a closed port, then chat
    demo              -> the built-in demo model (chat only)
"""

from __future__ import annotations

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

KEY = "sk-completions-team-0123456789"
MASTER = "sk-completions-master-0123456789"
PROVIDER_KEY = "sk-completions-provider-secret-77"

# The two upstreams, fresh for each test.
native, chat_only, _fresh = upstreams.native, upstreams.chat_only, upstreams._fresh


@pytest.fixture(scope="session")
def gateway(native, chat_only, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("completions"), f"""
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: openai, base_url: "{native.url}", api_key: "{PROVIDER_KEY}"}}
          up-vllm: {{profile: vllm, base_url: "{native.url}"}}
          chat: {{profile: aggregator, base_url: "{chat_only.url}", api_key: "{PROVIDER_KEY}"}}
          chat-strict: {{profile: aggregator, base_url: "{chat_only.url}", unsupported_params: reject}}
          dead: {{profile: openai, base_url: "http://127.0.0.1:{free_port()}/v1", timeouts: {{connect: 1}}}}
          demo: {{profile: demo}}
        models:
          native: {{targets: [{{provider: up, model: native-model}}]}}
          native-vllm: {{targets: [{{provider: up-vllm, model: vllm-model}}]}}
          converted: {{targets: [{{provider: chat, model: chat-model}}]}}
          converted-strict: {{targets: [{{provider: chat-strict, model: chat-model}}]}}
          converted-fanout:
            params: {{n: {{min: 1, max: 1, on_range: fanout}}}}
            targets: [{{provider: chat, model: chat-model}}]
          native-then-chat:
            targets: [{{provider: up, model: native-model}}, {{provider: chat, model: chat-model}}]
          chat-then-native:
            targets: [{{provider: chat, model: chat-model}}, {{provider: up, model: native-model}}]
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

