"""A compiled config from a few lines of routes.yaml, as `gateway serve` would load it; stores
on every backend (memory, Redis, Valkey, a Cluster), on servers the tests start."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from gateway.config import Config, load_config
from gateway.store import MemoryStore
from gateway.store.redis import RedisStore
from tests.redis_server import RedisCluster, RedisServer


@pytest.fixture
def compile_routes(tmp_path) -> Callable[[str], Config]:
    def compile_(text: str) -> Config:
        path = tmp_path / "routes.yaml"
        path.write_text(textwrap.dedent(text))
        return load_config(path, {})  # no environment: no master key, no Redis URL

    return compile_


@pytest.fixture(scope="module")
def servers():
    started = {}
    try:
        for kind in ("redis", "valkey"):
            started[kind] = RedisServer(kind).start()
        started["cluster"] = RedisCluster().start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=["memory", "redis", "valkey", "cluster"])
def make_store(request, servers):
    """A factory of stores on one backend (two Redis stores share one server, like replicas)."""
    def make():
        if request.param == "memory":
            return MemoryStore()
        return RedisStore(servers[request.param].url, cluster=request.param == "cluster")

    if request.param != "memory":
        servers[request.param].flush()
    return make
