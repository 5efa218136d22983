"""How answers reach the client's socket: a head goes out with the first bytes of its body,
in one write, and nothing that must go out alone waits for a body (`100 Continue`, an
answer to HEAD)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.gateway_process import GatewayProcess, demo_config, serving

KEY = "sk-writes-0123456789"
BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("writes"), demo_config(KEY)) as process:
        yield process


def head(extra: str = "", length: int = len(BODY)) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def test_the_head_and_the_body_of_an_answer_arrive_in_one_read(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head() + BODY)
        data = sock.recv(1 << 20)  # one write on loopback arrives as one segment
    status, _, rest = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200")
    assert b'"chat.completion"' in rest and rest.endswith(b"0\r\n\r\n")


def test_a_long_answer_goes_out_with_its_head_in_one_write_too(gateway):
    """A body of 8 KB or more goes out with the held head in one writev, not a copy."""
    fields = [f"field_{i}" for i in range(60)]
    tool = {"type": "function", "function": {"name": "fill", "parameters": {
        "type": "object", "properties": {f: {"type": "string"} for f in fields},
        "required": fields}}}
    body = json.dumps({"model": "demo", "n": 16, "tools": [tool], "tool_choice": "required",
                       "messages": [{"role": "user", "content": "fill it"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head(length=len(body)) + body)
        data = sock.recv(1 << 20)
    status, _, rest = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200") and rest.endswith(b"\r\n0\r\n\r\n")
    size, _, chunk = rest.partition(b"\r\n")
    assert int(size, 16) > 8192 and len(json.loads(chunk[:int(size, 16)])["choices"]) == 16


def test_100_continue_is_sent_before_the_body_comes(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head("Expect: 100-continue\r\n"))
        assert sock.recv(1 << 16).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(BODY)
        answer = b""
        while not answer.endswith(b"0\r\n\r\n"):
            piece = sock.recv(1 << 16)
            assert piece, f"the connection closed after {answer!r}"
            answer += piece
    assert answer.startswith(b"HTTP/1.1 200")


def test_an_answer_to_head_is_its_head_alone(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        answer = sock.recv(1 << 16)
    assert answer.startswith(b"HTTP/1.1 ") and answer.endswith(b"\r\n\r\n")
