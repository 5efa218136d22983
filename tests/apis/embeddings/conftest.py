"""One real gateway for the embeddings tests, in front of real loopback upstreams.

    emb           -> up (openai profile, a provider key), priced
    emb-vllm      -> vl (vllm profile: extras pass)
    emb-fallback  -> up, then vl
    chat-first    -> gc (a chat-only profile), then vl
    chat-only     -> gc only, with retries to spare
    demo          -> the built-in demo model

Keys are made per test through the admin API (the master key), each with the
limits its test needs, so usage read back by key name is that test's alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess, serving
from tests.upstream import Upstream

MASTER = "sk-emb-master-0123456789"
TEAM = "sk-emb-team-0123456789"
UP_SECRET = "sk-upstream-embeddings-secret-77"
EMBEDDINGS = "/v1/embeddings"
PRICE_INPUT = 25.0  # dollars per million input tokens: high enough to show in 6 decimals


def _upstream(apis: tuple[str, ...] = ("chat", "embeddings")) -> Iterator[Upstream]:
    server = Upstream(apis=apis).start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def up() -> Iterator[Upstream]:
    yield from _upstream()


@pytest.fixture(scope="package")
def vl() -> Iterator[Upstream]:
    yield from _upstream()


@pytest.fixture(scope="package")
def chat_only() -> Iterator[Upstream]:
    yield from _upstream(("chat",))


@pytest.fixture(autouse=True)
def _fresh(request) -> None:
    for name in ("up", "vl", "chat_only"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="package")
def gateway(up, vl, chat_only, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("embeddings"), f"""
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: openai, base_url: "{up.url}", api_key: "{UP_SECRET}"}}
          vl: {{profile: vllm, base_url: "{vl.url}"}}
          gc: {{profile: generalcompute, base_url: "{chat_only.url}", api_key: "sk-gc-0123456789"}}
          demo: {{profile: demo}}
        models:
          emb:
            price: {{input: {PRICE_INPUT}, output: 0.6}}
            targets: [{{provider: up, model: text-embedding-3-small}}]
          emb-vllm: {{targets: [{{provider: vl, model: BAAI/bge-m3}}]}}
          emb-fallback:
            price: {{input: {PRICE_INPUT}, output: 0.6}}
            targets: [{{provider: up, model: first}}, {{provider: vl, model: second}}]
          chat-first:
            targets: [{{provider: gc, model: chat-model}}, {{provider: vl, model: second}}]
          chat-only:
            retry: {{attempts: 3, backoff: 0.5}}
            targets: [{{provider: gc, model: chat-model}}]
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{TEAM}"}}
    """, {"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def auth(key: str = TEAM) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(gateway: GatewayProcess, name: str, **limits) -> str:
    """A key of its own for one test, with these limits; its secret."""
    response = httpx.post(gateway.url + "/admin/keys", headers=auth(MASTER), timeout=10,
                          json={"name": name, "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def usage_of(gateway: GatewayProcess, name: str) -> dict:
    """What /admin/usage says the key has used, all models together."""
    response = httpx.get(gateway.url + f"/admin/usage?key={name}&by=key", headers=auth(MASTER),
                         timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["totals"]
