"""The HTTP transport's pool and parser against a raw HTTP/1.1 server on loopback.

The server reads requests on each connection it accepts and answers each with
the next of the bytes a test gives it, so a test says exactly what goes on the
wire: keep-alive or not, chunked, gzip, a body until the socket closes, a
malformed head. It records every request and counts the connections.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import subprocess
from dataclasses import replace

import pytest

from gateway.upstream import ConnectFailed, ConnectionLost, ResponseTooLarge
from gateway.upstream.connection import Connection
from gateway.upstream.http import HttpTransport
from tests.faulty_upstream import FaultyUpstream


def answer(body: bytes, *headers: str, length: bool = True) -> bytes:
    """A 200 with `body`; `length=False` sends no Content-Length (chunked, or until close)."""
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", *headers]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawUpstream(FaultyUpstream):
    """Answers request after request on a connection. It closes the connection after an
    answer that says `Connection: close`, and after every answer if `close_after`. With
    `tls`, it speaks HTTPS: a handshake that fails ends that connection only."""

    def __init__(self) -> None:
        super().__init__()
        self.tls: ssl.SSLContext | None = None
        self.answers: list[bytes] = []
        self.close_after = False
        self.requests: list[bytes] = []
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        try:
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:  # the client refused the certificate
                    return
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(data) < length:
                    data += conn.recv(65536)
                with self._lock:
                    self.requests.append(head + b"\r\n\r\n" + data[:length])
                    reply = self.answers.pop(0) if self.answers else answer(b'{"ok": true}')
                data = data[length:]
                conn.sendall(reply)
                head = reply.partition(b"\r\n\r\n")[0] + b"\r\n"
                if self.close_after or b"\r\nConnection: close\r\n" in head:
                    return
        finally:
            conn.close()
            with self._lock:
                self.open -= 1


@pytest.fixture
def upstream():
    server = RawUpstream()
    yield server
    server.stop()


@pytest.fixture
def transport_for(compile_routes):
    """A transport for a provider at `url`, as routes.yaml would make it; `pool` overrides."""
    def make(url: str, **pool) -> HttpTransport:
        config = compile_routes(f"""
            providers:
              up: {{profile: vllm, base_url: "{url}"}}
            models:
              m: {{targets: [{{provider: up, model: m}}]}}
            """)
        return HttpTransport.for_provider(replace(config.providers["up"], **pool))

    return make


async def post(transport: HttpTransport, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await transport.send(url, {"content-type": "application/json"}, body)
    try:
        return response.status, await response.read(1 << 20)
    finally:
        response.close()


def in_a_row(transport: HttpTransport, url: str, times: int) -> list[tuple[int, bytes]]:
    """`times` requests, each after the one before, then the transport closed."""
    async def main():
        got = [await post(transport, url) for _ in range(times)]
        await transport.aclose()
        return got

    return asyncio.run(main())


def test_requests_one_after_another_share_one_connection(upstream, transport_for):
    assert in_a_row(transport_for(upstream.url), upstream.url, 5) == [(200, b'{"ok": true}')] * 5
    assert upstream.connections == 1
    assert len(upstream.requests) == 5
    first = upstream.requests[0].split(b"\r\n")
    assert first[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{upstream.port}".encode() in first
    assert b"Content-Length: 2" in first and upstream.requests[0].endswith(b"\r\n\r\n{}")


def test_the_pool_opens_no_more_than_its_limit(upstream, transport_for):
    async def main():
        transport = transport_for(upstream.url, max_connections=2)
        results = await asyncio.gather(*(post(transport, upstream.url) for _ in range(12)))
        await transport.aclose()
        return results

    assert asyncio.run(main()) == [(200, b'{"ok": true}')] * 12
    assert upstream.most_open <= 2 and upstream.connections <= 2


def test_a_request_given_up_while_it_waits_for_the_pool_takes_no_connection(upstream,
                                                                            transport_for):
    async def main():
        transport = transport_for(upstream.url, max_connections=1)
        held = await transport.send(upstream.url, {}, b"{}")  # its connection is busy until closed
        given_up = asyncio.ensure_future(post(transport, upstream.url))
        await _until(lambda: transport.waiting() == 1)
        later = asyncio.ensure_future(post(transport, upstream.url))
        await _until(lambda: transport.waiting() == 2)
        given_up.cancel()
        held.close()  # its answer is all in, read or not: the connection goes to the next in line
        assert await asyncio.wait_for(later, 5) == (200, b'{"ok": true}')
        assert given_up.cancelled() and transport.waiting() == 0
        await transport.aclose()

    asyncio.run(main())
    assert upstream.connections == 1


def test_a_connection_the_upstream_closed_is_not_used_again(upstream, transport_for):
    upstream.close_after = True  # each answer, then the socket closes, with no `Connection: close`

    async def main():
        transport = transport_for(upstream.url)
        for _ in range(3):
            assert await post(transport, upstream.url) == (200, b'{"ok": true}')
            await _until(lambda: transport.idle() == 0)  # it saw the close
        await transport.aclose()

    asyncio.run(main())
    assert upstream.connections == 3


def test_connection_close_and_http_1_0_answers_are_not_kept(upstream, transport_for):
    upstream.answers = [answer(b"{}", "Connection: close"),
                        answer(b"{}").replace(b"HTTP/1.1", b"HTTP/1.0", 1), answer(b"{}")]

    assert in_a_row(transport_for(upstream.url), upstream.url, 3) == [(200, b"{}")] * 3
    assert upstream.connections == 3


def test_chunked_gzip_and_until_close_bodies_arrive_whole(upstream, transport_for):
    packed = gzip.compress(b'{"packed": true}')
    upstream.answers = [
        answer(b'7\r\n{"a": 1\r\n1\r\n}\r\n0\r\n\r\n', "Transfer-Encoding: chunked", length=False),
        answer(packed, "Content-Encoding: gzip"),
        answer(b'{"until": "close"}', "Connection: close", length=False),
    ]

    assert in_a_row(transport_for(upstream.url), upstream.url, 3) == [
        (200, b'{"a": 1}'), (200, b'{"packed": true}'), (200, b'{"until": "close"}')]


def test_a_body_closed_before_its_end_drops_the_connection(upstream, transport_for):
    upstream.answers = [answer(b"x" * 65536, "Content-Length: 10000000", length=False)]  # and waits

    async def main():
        transport = transport_for(upstream.url)
        response = await transport.send(upstream.url, {}, b"{}")
        chunks = response.chunks()
        assert await anext(chunks)
        response.close()  # the rest is not wanted: the upstream must stop
        await _until(lambda: upstream.open == 0)
        assert await post(transport, upstream.url) == (200, b'{"ok": true}')
        await transport.aclose()

    asyncio.run(main())
    assert upstream.connections == 2


def test_an_answer_over_the_limit_is_refused(upstream, transport_for):
    chunked = b"1388\r\n" + b"y" * 5000 + b"\r\n0\r\n\r\n"  # no length to refuse it by
    upstream.answers = [answer(b"x" * 5000),
                        answer(chunked, "Transfer-Encoding: chunked", length=False)]

    async def main():
        transport = transport_for(upstream.url)
        for _ in range(2):
            response = await transport.send(upstream.url, {}, b"{}")
            with pytest.raises(ResponseTooLarge):
                await response.read(1000)
            response.close()
        await transport.aclose()

    asyncio.run(main())


class Wire:
    """The socket side of a Connection, for feeding it an answer in chosen pieces."""

    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data


def test_an_interim_answer_is_skipped_for_the_real_one():
    async def main():
        connection = Connection(("upstream", 80, False), lambda _: None, lambda: None)
        connection.connection_made(Wire())
        head = connection.request(b"POST /v1/chat/completions HTTP/1.1\r\n\r\n", b"{}")
        connection.data_received(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        assert not head.done()  # an interim answer is not the response
        connection.data_received(answer(b'{"ok": true}'))
        response = await head
        assert response.status == 200 and "link" not in response.headers
        assert await response.read(100) == b'{"ok": true}'

    asyncio.run(main())


def test_a_malformed_answer_is_a_lost_connection(upstream, transport_for):
    upstream.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}"]

    async def main():
        transport = transport_for(upstream.url)
        with pytest.raises(ConnectionLost):
            await post(transport, upstream.url)
        await transport.aclose()

    asyncio.run(main())


def test_credentials_in_the_url_are_sent_as_basic_auth_not_as_the_host(upstream, transport_for):
    url = upstream.url.replace("http://", "http://user:p%40ss@")

    assert in_a_row(transport_for(url), url, 1) == [(200, b'{"ok": true}')]
    head = upstream.requests[0].split(b"\r\n")
    assert f"Host: 127.0.0.1:{upstream.port}".encode() in head
    assert b"Authorization: Basic " + base64.b64encode(b"user:p@ss") in head


def test_a_header_with_a_line_break_is_never_sent(upstream, transport_for):
    async def main():
        transport = transport_for(upstream.url)
        with pytest.raises(ConnectFailed, match="line break"):
            await transport.send(upstream.url, {"x-note": "a\r\nx-injected: 1"}, b"{}")
        await transport.aclose()

    asyncio.run(main())
    assert upstream.requests == []


def test_nothing_listening_is_a_connect_failure(transport_for):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there now
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def main():
        transport = transport_for(url)
        with pytest.raises(ConnectFailed, match="Connection refused"):
            await transport.send(url, {}, b"{}")
        await transport.aclose()

    asyncio.run(main())


def test_get_reads_a_small_answer(upstream, transport_for):
    upstream.answers = [answer(b'{"data": []}')]

    async def main():
        transport = transport_for(upstream.url)
        got = await transport.get(upstream.url.replace("chat/completions", "models"), 2.0)
        await transport.aclose()
        return got

    assert asyncio.run(main()) == (200, b'{"data": []}')
    assert upstream.requests[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
    assert b"Content-Length" not in upstream.requests[0]


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_https_is_verified_against_the_trusted_certificates(upstream, transport_for, tmp_path,
                                                            monkeypatch):
    """TLS to the upstream: a certificate the machine trusts is taken, any other refused."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    upstream.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    upstream.tls.load_cert_chain(cert, key)
    url = f"https://localhost:{upstream.port}/v1/chat/completions"

    untrusted = transport_for(url)  # the system's certificates: this one is not among them
    with pytest.raises(ConnectFailed, match="TLS failed: CERTIFICATE_VERIFY_FAILED"):
        in_a_row(untrusted, url, 1)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when a transport makes its context
    assert in_a_row(transport_for(url), url, 2) == [(200, b'{"ok": true}')] * 2
    assert upstream.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
