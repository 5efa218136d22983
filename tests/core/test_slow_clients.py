"""Clients that misbehave: connections that never send a request, headers or a body that
never finish arriving."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from tests.gateway_process import GatewayProcess, demo_config, serving, wait_for

KEY = "sk-slow-clients-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("slow"),
                 demo_config(KEY, server="body_timeout: 1, header_timeout: 1")) as process:
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


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def assert_closed_and_released(gateway, idle: list[socket.socket], before: int) -> None:
    """The gateway closes every one of `idle` and is back to `before` descriptors (give or
    take 5), without waiting for the clients to hang up."""
    for sock in idle:
        sock.setblocking(False)
    wait_for(lambda: all(closed_by_peer(s) for s in idle), 15,
             "the gateway to close the idle connections")
    wait_for(lambda: open_descriptors(gateway.process.pid) <= before + 5, 10,
             "the gateway to release their descriptors")


def test_idle_connections_are_closed_and_do_not_block_others(gateway):
    before = open_descriptors(gateway.process.pid)
    idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(300)]
    try:
        body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(request_head(len(body)) + body.encode())
            assert read_answer(sock)[0] == 200  # served while 300 connections sit idle
        assert_closed_and_released(gateway, idle, before)
    finally:
        for sock in idle:
            sock.close()


def test_a_thousand_idle_keep_alive_connections_are_closed_after_their_answer(gateway):
    before = open_descriptors(gateway.process.pid)
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
    ask = request_head(len(body)) + body.encode()
    idle = []
    try:
        for _ in range(1000):  # each asks once, keeps the connection and says nothing more
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
            idle.append(sock)
            sock.sendall(ask)
            assert read_answer(sock)[0] == 200
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(ask)
            assert read_answer(sock)[0] == 200  # a newcomer is served meanwhile
        assert_closed_and_released(gateway, idle, before)
    finally:
        for sock in idle:
            sock.close()


def test_headers_sent_a_byte_at_a_time_are_cut_off(gateway):
    head = request_head(2)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        started = time.monotonic()
        sent = 0
        try:
            while sent < len(head):
                sock.sendall(head[sent:sent + 1])
                sent += 1
                time.sleep(0.1)  # the slow client itself, not a wait in the test
        except OSError:
            pass  # the gateway closed the connection
        assert sent < len(head)
        assert time.monotonic() - started < 5


def test_headers_too_large_are_a_431(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        try:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nX-Big: "
                         + b"a" * 1_000_000 + b"\r\n\r\n")
        except OSError:
            pass  # the gateway answered and closed before taking it all
        status, answer = read_answer(sock)
    assert status == 431
    assert answer["error"]["code"] == "headers_too_large"


def answer_with_headers(gateway, extra: bytes) -> tuple[int, dict]:
    """A whole demo request with `extra` header lines, sent in one write: the gateway gets
    its head in one read, parsed complete before any byte count of its own could stop it."""
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
    head = request_head(len(body)).replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head + body.encode())
        return read_answer(sock)


@pytest.mark.parametrize("extra", [
    b"X-Big: " + b"b" * 100_000 + b"\r\n",  # one header of 100 KB
    b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 1000) for i in range(80)),  # 80 of 1 KB
], ids=["one-100-KB-header", "80-headers-of-1-KB"])
def test_a_head_over_the_limit_in_one_write_is_a_431(gateway, extra):
    status, answer = answer_with_headers(gateway, extra)
    assert status == 431
    assert answer["error"]["code"] == "headers_too_large"


def test_large_headers_within_the_limit_are_served(gateway):
    assert answer_with_headers(gateway, b"X-Trace: " + b"t" * 30_000 + b"\r\n")[0] == 200


def test_a_large_body_sent_with_its_head_is_not_mistaken_for_a_large_head(gateway):
    text = "x" * 300_000
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": text}]})
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(request_head(len(body)) + body.encode())
        assert read_answer(sock)[0] == 200


def test_a_body_answered_before_it_arrived_is_not_taken_for_the_next_head(gateway):
    """A wrong key is answered before the body is read; the body (over the head cap) still
    arrives, and the next request on the connection is served."""
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "x" * 200_000}]})
    wrong = request_head(len(body)).replace(KEY.encode(), b"sk-not-a-key-0123456789")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(wrong)
        assert read_answer(sock)[0] == 401
        sock.sendall(body.encode())
        small = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
        sock.sendall(request_head(len(small)) + small.encode())
        status, answer = read_answer(sock)
        assert status == 200, answer
