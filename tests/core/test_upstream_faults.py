"""Upstreams that misbehave: each ends in a clean OpenAI-shaped error, in time, with the
upstream connection closed and the key's in-flight slot free for its next request.

Before a stream's first byte reaches the client a fault is an HTTP error (502, or
504 for a timeout); after it, the stream ends with an error event and `[DONE]`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import faulty_upstream as faults
from tests.conftest import assert_openai_error
from tests.gateway_process import GatewayProcess, serving, upstream_running, wait_for

KEY = "sk-faults-tests-0123456789"
SECRET = "sk-upstream-faults-secret-77"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def faulty() -> Iterator[faults.FaultyUpstream]:
    server = faults.FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_gateway(faulty, tmp_path_factory) -> Iterator[GatewayProcess]:
    with upstream_running() as healthy, serving(tmp_path_factory.mktemp("faults"), f"""
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          faulty:
            profile: openai
            base_url: "{faulty.url}"
            api_key: "{SECRET}"
            timeouts: {{connect: 1, first_byte: 1, idle: 1, total: 10}}
            max_response_bytes: 1MiB
          healthy: {{profile: vllm, base_url: "{healthy.url}"}}
        models:
          broken: {{targets: [{{provider: faulty, model: m}}]}}
          good: {{targets: [{{provider: healthy, model: m}}]}}
        keys:
          team: {{key: "{KEY}", limits: {{in_flight: 1}}}}
    """) as gateway:
        yield gateway


@pytest.fixture
def http(fault_gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_gateway.url, timeout=30) as client:
        yield client


def ask(http: httpx.Client, model: str = "broken", stream: bool = False) -> httpx.Response:
    return http.post("/v1/chat/completions", headers=AUTH, json={
        "model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})


def assert_let_go(http: httpx.Client, faulty: faults.FaultyUpstream, log: str) -> None:
    """The upstream connection is closed, the in-flight slot (limit 1) is free again,
    and neither the answer nor the log shows the upstream's key."""
    wait_for(lambda: faulty.open == 0, 5, "the gateway to close the upstream connection")
    assert ask(http, "good").status_code == 200
    assert SECRET not in log


@pytest.mark.parametrize("fault, status, words", [
    (faults.silent, 504, "sent no answer within 1s"),
    (faults.reset, 502, "upstream"),
    (faults.html_502, 502, "HTTP 502"),
    (faults.huge_body, 502, "1048576-byte limit"),
], ids=["never-answers", "tcp-reset", "html-502", "50MB-body"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fault_before_the_answer_is_an_openai_error(http, faulty, fault_gateway, fault, status,
                                                   words, stream):
    faulty.fault = fault
    started = time.monotonic()
    response = ask(http, stream=stream)
    assert time.monotonic() - started < 5
    error = assert_openai_error(response, status)
    assert words in error["message"]
    assert "<html>" not in error["message"]
    assert SECRET not in response.text
    assert_let_go(http, faulty, fault_gateway.log())


def test_an_event_without_end_is_refused_before_the_stream_starts(http, faulty, fault_gateway):
    faulty.fault = faults.huge_event
    error = assert_openai_error(ask(http, stream=True), 502)
    assert "event over the 1048576-byte limit" in error["message"]
    assert_let_go(http, faulty, fault_gateway.log())


@pytest.mark.parametrize("fault, words", [
    (faults.garbled_event, "not JSON"),
    (faults.mid_stream_reset, "ended before the answer did"),
], ids=["garbled-event", "reset-mid-stream"])
def test_fault_mid_stream_ends_with_an_error_event_and_done(http, faulty, fault_gateway, fault,
                                                            words):
    faulty.fault = fault
    events = []
    with http.stream("POST", "/v1/chat/completions", headers=AUTH, json={
            "model": "broken", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
            if len(events) == 2:
                faults.go_on()  # the stream has started: now the upstream misbehaves
    assert events[-1] == "[DONE]"
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["hi", "hi"]
    error = json.loads(events[-2])["error"]
    assert words in error["message"] and error["type"]
    assert all(json.loads(e) for e in events[:-1])  # every event the client got parses
    assert_let_go(http, faulty, fault_gateway.log())


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_stops_reading_holds_the_upstream_back(faulty, fault_gateway):
    """Back-pressure: the gateway reads from the upstream only as fast as the client reads,
    so a stalled client costs a few socket buffers, not the whole stream in memory."""
    faulty.fault = faults.firehose
    before = rss_mb(fault_gateway.process.pid)
    body = json.dumps({"model": "broken", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", fault_gateway.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "
                     f"{KEY}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                     f"\r\n\r\n".encode() + body)
        assert b"200 OK" in sock.recv(4096)  # the stream started; now this client stops reading
        samples = [-1]

        def upstream_held_back() -> bool:
            samples.append(faults.firehose_sent[0])
            return samples[-1] == samples[-2] and samples[-1] > 0

        wait_for(upstream_held_back, 20, "the upstream to be held back", interval=0.5)
        assert samples[-1] < 64 * 2**20, f"{samples[-1]} bytes read from the upstream"
        assert rss_mb(fault_gateway.process.pid) - before < 64
    wait_for(lambda: faulty.open == 0, 10, "the upstream connection to close after the client")
