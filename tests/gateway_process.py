"""Run the real gateway, `python -m gateway serve`, on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from tests.upstream import Upstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, message: str, interval: float = 0.02):
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class GatewayProcess:
    """`gateway serve` in a child process, with its log captured to a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, args: list[str] = (),
                 cwd: Path | None = None, pass_config: bool = True) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config.with_suffix(f".{self.port}.log")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = list(args)
        self.cwd = cwd
        self.pass_config = pass_config  # False: let the gateway find ./routes.yaml itself
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self._log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "gateway", "serve", "--port", str(self.port),
                   "--log-format", "json", *self.args]
        if self.pass_config:
            command += ["--config", str(self.config)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=self.env, cwd=self.cwd)
        wait_for(self._ready, timeout, f"the gateway on port {self.port} to be ready")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def request_log(self, request_id: str) -> dict | None:
        """The gateway's log line for one request, found by its request id; None if not written yet."""
        for line in self.log().splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg") == "request" and entry.get("request_id") == request_id:
                    return entry
        return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # SIGTERM would drain first (drain.py)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process:
            self._log.close()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def admin(gateway: GatewayProcess, method: str, path: str, body: dict | None = None
          ) -> httpx.Response:
    """A call to /admin as the gateway's master key (GATEWAY_MASTER_KEY in its environment)."""
    return httpx.request(method, gateway.url + path, json=body, timeout=10,
                         headers={"Authorization": f"Bearer {gateway.env['GATEWAY_MASTER_KEY']}"})


def new_key(gateway: GatewayProcess, name: str, **limits) -> str:
    """A key of its own for one test (its limits and usage are that test's alone)."""
    response = admin(gateway, "POST", "/admin/keys", {"name": name, "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def usage_of(gateway: GatewayProcess, name: str, requests: int) -> dict:
    """The key's usage totals, once its `requests` requests are recorded (off the request path)."""
    def totals() -> dict | None:
        found = admin(gateway, "GET", f"/admin/usage?key={name}&by=key").json()["totals"]
        return found if found["requests"] >= requests else None

    return wait_for(totals, 10, f"{requests} usage records of key {name}")


def demo_config(key: str, server: str = "") -> str:
    """A gateway's config with the demo model alone and one key, `team`; `server` is the
    server block's fields, in YAML's flow style."""
    head = f"server: {{{server}}}\n" if server else ""
    return head + f"""providers:
  demo: {{profile: demo}}
models:
  demo: {{targets: [{{provider: demo, model: demo}}]}}
keys:
  team: {{key: "{key}"}}
"""


@contextlib.contextmanager
def serving(directory: Path, config: str, env: dict[str, str] | None = None
            ) -> Iterator[GatewayProcess]:
    """A gateway on `config` (YAML, dedented), written to `directory`/routes.yaml."""
    path = directory / "routes.yaml"
    path.write_text(textwrap.dedent(config))
    with GatewayProcess(path, env) as process:
        yield process


@contextlib.contextmanager
def upstream_running() -> Iterator[Upstream]:
    """A loopback OpenAI-compatible upstream (tests/upstream.py) for the block's length."""
    from tests.upstream import Upstream

    server = Upstream().start()
    try:
        yield server
    finally:
        server.stop()
