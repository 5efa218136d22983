"""Clients that misbehave: a body that never finishes arriving, and one sent a byte at a time."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.gateway_process import GatewayProcess, serving

KEY = "sk-slow-clients-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("slow"), f"""
        server: {{body_timeout: 1}}
        providers:
          demo: {{profile: demo}}
        models:
          demo: {{targets: [{{provider: demo, model: demo}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """) as process:
        yield process


def request_head(length: int) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one HTTP/1.1 answer, sized or chunked."""
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, json.loads(reader.read(int(headers["content-length"])))
    body = b""
    while size := int(reader.readline(), 16):  # chunked
        body += reader.read(size)
        reader.readline()
    return status, json.loads(body)


def test_a_body_that_stops_arriving_is_a_408_within_body_timeout(gateway):
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request_head(len(body)) + body[:10])  # and the rest never comes
        started = time.monotonic()
        status, answer = read_answer(sock)
    assert status == 408
    assert answer["error"]["code"] == "request_timeout"
    assert 0.9 < time.monotonic() - started < 5


def test_a_body_sent_slowly_but_in_time_is_answered(gateway):
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request_head(len(body)))
        for piece in (body[:20], body[20:40], body[40:]):
            sock.sendall(piece)  # three packets: the gateway reads the body in parts
        status, answer = read_answer(sock)
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"]
