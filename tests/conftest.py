"""Shared fixtures: real upstreams on loopback, and one real gateway process in front of them.

The gateway's config (below) is the map of the test world:

    gpt-test        -> primary (Bearer key)
    gpt-converted   -> primary as a chat-only provider (aggregator profile): Responses converted
    with-fallback   -> primary, then backup
    dead-first      -> a closed port, then backup
    only-dead       -> a closed port
    impatient       -> primary, with 1s first-byte and idle timeouts
    rate-limited    -> primary, a target of its own
    demo            -> the built-in demo model
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess, free_port
from tests.upstream import Upstream

TEAM_KEY = "sk-test-team-a-0123456789"
DEMO_KEY = "sk-test-demo-only-0123456789"
MASTER_KEY = "sk-test-master-0123456789"
UPSTREAM_SECRET = "sk-upstream-primary-secret-42"

CONFIG = """
server:
  max_body_bytes: 1MiB
routing:
  breaker: {{failures: 1000}}  # these tests share one gateway: no breaker carried between them
providers:
  primary: {{profile: openai, base_url: "{primary}", api_key: "${{PRIMARY_KEY}}"}}
  backup: {{profile: vllm, base_url: "{backup}"}}
  dead: {{profile: vllm, base_url: "http://127.0.0.1:{closed}/v1", timeouts: {{connect: 1}}}}
  hasty:
    profile: openai
    base_url: "{primary}"
    api_key: "${{PRIMARY_KEY}}"
    timeouts: {{first_byte: 1, idle: 1}}
  chat-only: {{profile: aggregator, base_url: "{primary}", api_key: "${{PRIMARY_KEY}}"}}
  demo: {{profile: demo}}
models:
  gpt-test:
    targets: [{{provider: primary, model: upstream-model-a}}]
  gpt-converted:
    targets: [{{provider: chat-only, model: upstream-model-a}}]
  with-fallback:
    targets:
      - {{provider: primary, model: upstream-model-a}}
      - {{provider: backup, model: upstream-model-b}}
  dead-first:
    targets:
      - {{provider: dead, model: nothing}}
      - {{provider: backup, model: upstream-model-b}}
  only-dead:
    targets: [{{provider: dead, model: nothing}}]
  impatient:
    targets: [{{provider: hasty, model: upstream-model-a}}]
  rate-limited:  # its own target: the Retry-After it gets rests only this one
    targets: [{{provider: primary, model: upstream-model-r}}]
  demo:
    targets: [{{provider: demo, model: demo}}]
keys:
  team-a:
    key: "${{TEAM_KEY}}"
    models: [gpt-test, gpt-converted, with-fallback, dead-first, only-dead, impatient, rate-limited]
  demo-only:
    key: "{demo_key}"
    models: [demo]
"""


@pytest.fixture(scope="session")
def primary() -> Iterator[Upstream]:
    upstream = Upstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def backup() -> Iterator[Upstream]:
    upstream = Upstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _fresh_upstreams(request) -> None:
    """Each test starts with upstreams that remember nothing and have nothing scripted."""
    for name in ("primary", "backup"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="session")
def gateway(primary: Upstream, backup: Upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    config = tmp_path_factory.mktemp("gateway") / "routes.yaml"
    config.write_text(CONFIG.format(primary=primary.url, backup=backup.url, closed=free_port(),
                                    demo_key=DEMO_KEY))
    env = {"PRIMARY_KEY": UPSTREAM_SECRET, "TEAM_KEY": TEAM_KEY, "GATEWAY_MASTER_KEY": MASTER_KEY}
    with GatewayProcess(config, env) as process:
        yield process


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the gateway, as an app developer would use it."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=TEAM_KEY, max_retries=0,
                       timeout=30) as sdk:
        yield sdk


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client on the gateway, for what the SDK would not send."""
    with httpx.Client(base_url=gateway.url, timeout=30) as session:
        yield session


def auth(key: str = TEAM_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None,
                        code: str | None = None) -> dict:
    """The response has `status` and the OpenAI error shape; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


REPO = Path(__file__).resolve().parent.parent
