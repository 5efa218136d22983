"""Two replicas on one real Redis, as behind a load balancer: a session made on either is
good on both, and a logout on either ends it on both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from tests.conftest import assert_openai_error
from tests.console.helpers import MASTER_KEY, config, signed_in
from tests.gateway_process import GatewayProcess
from tests.redis_server import RedisServer, redis_fixture  # noqa: F401 (the `redis` fixture)


@pytest.fixture(scope="module")
def replicas(redis: RedisServer, tmp_path_factory) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    path = tmp_path_factory.mktemp("replicas") / "routes.yaml"
    path.write_text(config(redis_url=redis.url))
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY}
    with GatewayProcess(path, env) as one, GatewayProcess(path, env) as two:
        yield one, two


def test_a_session_works_on_either_replica_and_logout_ends_it_on_both(replicas, redis):
    one, two = replicas
    console = signed_in(one)
    made = console.call("POST", "/admin/keys", {"name": "from-two"}, gateway=two,
                        origin=two.url)
    assert made.status_code == 201, made.text
    assert console.call("GET", "/admin/keys/from-two", csrf=None).status_code == 200
    shown = console.call("GET", "/console/session", csrf=None, gateway=two)
    assert shown.status_code == 200 and shown.json()["csrf"] == console.csrf
    # Redis holds the session by its token's SHA-256, never the token or the master key.
    with Redis.from_url(redis.url) as client:
        places = client.keys("*console:*")
        assert len(places) == 1
        kept = b"".join(places) + client.get(places[0])
    assert console.token.encode() not in kept and MASTER_KEY.encode() not in kept
    assert console.csrf.encode() in kept  # the record found is this session's
    assert console.call("DELETE", "/console/session", gateway=two).status_code == 204
    for replica in replicas:
        assert_openai_error(console.call("GET", "/admin/keys", csrf=None, gateway=replica), 401,
                            code="invalid_session")
