"""Graceful shutdown: SIGTERM with a stream in flight.

The replica reports not-ready at once and keeps serving for drain_seconds,
then stops taking connections; the stream in flight still ends normally. A
stream that outlives shutdown_grace is cut, and the process exits anyway.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess, wait_for
from tests.upstream import Gate, Reply, Upstream, chunk

KEY = "sk-shutdown-tests-0123456789"
REQUEST = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


def start(tmp_path, upstream: Upstream, drain: float, grace: float) -> GatewayProcess:
    config = tmp_path / "routes.yaml"
    config.write_text(textwrap.dedent(f"""
        server: {{drain_seconds: {drain}, shutdown_grace: {grace}}}
        providers:
          up: {{profile: vllm, base_url: "{upstream.url}"}}
        models:
          m: {{targets: [{{provider: up, model: m}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """))
    return GatewayProcess(config).start()


def stream_in_flight(gateway: GatewayProcess, upstream: Upstream) -> tuple[Gate, list[str],
                                                                           threading.Thread]:
    """A stream whose upstream holds after its first event until the gate opens; the lines
    the client receives are collected by a thread."""
    request = {"model": "m"}
    gate = Gate()
    upstream.then(Reply(events=[chunk(request, {"role": "assistant", "content": "first"}), gate,
                                chunk(request, {"content": " last"}, finish="stop")]))
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=REQUEST,
                          timeout=30, headers={"authorization": f"Bearer {KEY}"}) as response:
            try:
                for line in response.iter_lines():
                    if line:
                        lines.append(line)
                        first.set()
            except httpx.HTTPError as error:
                lines.append(f"error: {type(error).__name__}")

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10), "the stream's first event"
    return gate, lines, reader


def ready(gateway: GatewayProcess) -> int | str:
    try:
        return httpx.get(gateway.url + "/readyz", timeout=2).status_code
    except httpx.TransportError:
        return "refused"


def test_sigterm_drains_then_lets_the_stream_in_flight_finish(tmp_path, upstream):
    gateway = start(tmp_path, upstream, drain=1.5, grace=20)
    gate, lines, reader = stream_in_flight(gateway, upstream)
    try:
        gateway.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        wait_for(lambda: ready(gateway) == 503, 1, "/readyz to say not ready")
        assert httpx.get(gateway.url + "/readyz").json()["status"] == "draining"
        late = httpx.post(gateway.url + "/v1/chat/completions", timeout=10,
                          headers={"authorization": f"Bearer {KEY}"},
                          json={**REQUEST, "stream": False})
        assert late.status_code == 200  # still served while draining

        wait_for(lambda: ready(gateway) == "refused", 5, "the socket to close after the drain")
        assert time.monotonic() - signalled >= 1.5
        assert gateway.process.poll() is None  # waiting for the stream in flight
        gate.open()
        reader.join(10)
        assert lines[-1] == "data: [DONE]" and any('" last"' in line for line in lines)
        assert gateway.process.wait(10) is not None
    finally:
        gate.open()
        gateway.stop()


def test_a_stream_longer_than_the_grace_period_is_cut(tmp_path, upstream):
    gateway = start(tmp_path, upstream, drain=0, grace=1)
    gate, lines, reader = stream_in_flight(gateway, upstream)
    try:
        gateway.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        gateway.process.wait(10)
        assert time.monotonic() - signalled < 5  # grace (1 s), not the stream, decides
        reader.join(10)
        assert "data: [DONE]" not in lines
    finally:
        gate.open()
        gateway.stop()
