"""Scale-out on one machine: three gateway processes sharing one real Redis.

A round-robin client spreads requests over the three, as a load balancer
would. Limits, usage totals, key revocation and config reloads must agree
across them; the figures printed here are the ones in docs/scaling-out.md.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess, wait_for
from tests.redis_server import RedisServer

MASTER = "sk-scale-out-master-0123456789"
CHAT = "/v1/chat/completions"
CONFIG = """
server: {{watch_config: 0.2}}
store: {{url: "{redis}"}}
models:
  demo: {{targets: [{{provider: demo, model: demo}}]}}
{extra}
providers:
  demo: {{profile: demo}}
"""


class RoundRobin:
    """One client over several gateways, the next one for each request."""

    def __init__(self, gateways: list[GatewayProcess]) -> None:
        self.gateways = gateways
        self.clients = [httpx.Client(base_url=g.url, timeout=20) for g in gateways]
        self._next = itertools.cycle(range(len(gateways)))

    def chat(self, key: str, model: str = "demo", **extra) -> httpx.Response:
        return self.clients[next(self._next)].post(
            CHAT, headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra})

    def each(self, method: str, path: str, body: dict | None = None) -> list[httpx.Response]:
        return [c.request(method, path, json=body, headers={"authorization": f"Bearer {MASTER}"})
                for c in self.clients]

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[tuple[RoundRobin, RedisServer, Path]]:
    redis = RedisServer("redis").start()
    directory = tmp_path_factory.mktemp("scale-out")
    config = directory / "routes.yaml"
    config.write_text(CONFIG.format(redis=redis.url, extra=""))
    gateways = [GatewayProcess(config, env={"GATEWAY_MASTER_KEY": MASTER}).start()
                for _ in range(3)]
    balancer = RoundRobin(gateways)
    yield balancer, redis, config
    balancer.close()
    for gateway in gateways:
        gateway.stop()
    redis.stop()


def new_key(balancer: RoundRobin, name: str, **limits) -> str:
    response = balancer.clients[0].post("/admin/keys", json={"name": name, "limits": limits},
                                        headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_a_limit_holds_exactly_across_three_replicas(fleet):
    balancer, _, _ = fleet
    key = new_key(balancer, "limited", requests_per_minute=60)
    started = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        statuses = Counter(pool.map(lambda _: balancer.chat(key).status_code, range(90)))
    took = time.monotonic() - started
    assert statuses == {200: 60, 429: 30}
    print(f"\nscale-out: 90 concurrent requests over 3 replicas, limit 60/min: "
          f"{statuses[200]} admitted, {statuses[429]} refused, {took:.2f} s")


def test_usage_totals_agree_on_every_replica_and_match_the_client(fleet):
    balancer, _, _ = fleet
    key = new_key(balancer, "counted")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: balancer.chat(key, max_tokens=5 + i % 7), range(120)))
    assert {a.status_code for a in answers} == {200}
    expected = {"requests": 120,
                "prompt_tokens": sum(a.json()["usage"]["prompt_tokens"] for a in answers),
                "completion_tokens": sum(a.json()["usage"]["completion_tokens"] for a in answers)}

    def totals() -> list[dict]:
        return [{k: r.json()["totals"][k] for k in expected}
                for r in balancer.each("GET", "/admin/usage?key=counted&by=key")]

    started = time.monotonic()
    wait_for(lambda: totals() == [expected] * 3, 10, "every replica to report the same usage")
    print(f"\nscale-out: usage of 120 requests identical on 3 replicas "
          f"{time.monotonic() - started:.2f} s after the last answer: {expected}")


def test_a_revoked_key_is_refused_by_every_replica(fleet):
    balancer, _, _ = fleet
    key = new_key(balancer, "revoked")
    assert [balancer.chat(key).status_code for _ in range(3)] == [200] * 3
    revoked = balancer.clients[1].delete("/admin/keys/revoked",
                                         headers={"authorization": f"Bearer {MASTER}"})
    assert revoked.status_code == 200
    started = time.monotonic()
    wait_for(lambda: [balancer.chat(key).status_code for _ in range(3)] == [401] * 3, 5,
             "every replica to refuse the revoked key")
    print(f"\nscale-out: key revoked on one replica, refused by all 3 within "
          f"{time.monotonic() - started:.3f} s")


def test_a_config_change_reaches_every_replica(fleet):
    balancer, redis, config = fleet
    key = new_key(balancer, "reloading")
    before = {r.json()["config"] for r in balancer.each("GET", "/readyz")}
    assert len(before) == 1
    config.write_text(CONFIG.format(
        redis=redis.url, extra="  demo-2: {targets: [{provider: demo, model: demo}]}"))
    started = time.monotonic()
    wait_for(lambda: len({r.json()["config"] for r in balancer.each("GET", "/readyz")} - before)
             == 1 and len({r.json()["config"] for r in balancer.each("GET", "/readyz")}) == 1,
             10, "every replica to load the new config")
    took = time.monotonic() - started
    assert [balancer.chat(key, model="demo-2").status_code for _ in range(3)] == [200] * 3
    print(f"\nscale-out: routes.yaml edited, new config in force on all 3 within {took:.2f} s")


def test_workers_in_one_process_group_share_limits_and_usage(fleet, tmp_path):
    """`gateway serve --workers 2`: two processes behind one port, the same guarantees."""
    balancer, redis, _ = fleet
    config = tmp_path / "routes.yaml"
    config.write_text(CONFIG.format(redis=redis.url, extra=""))
    with GatewayProcess(config, env={"GATEWAY_MASTER_KEY": MASTER},
                        args=["--workers", "2"]) as gateway:
        key = new_key(balancer, "workers", requests_per_minute=40)
        single = RoundRobin([gateway])
        with ThreadPoolExecutor(12) as pool:
            statuses = Counter(pool.map(lambda _: single.chat(key).status_code, range(60)))
        assert statuses == {200: 40, 429: 20}
        wait_for(lambda: single.each("GET", "/admin/usage?key=workers&by=key")[0]
                 .json()["totals"]["requests"] == 40, 10, "40 usage records")
        single.close()
