"""An upstream that misbehaves at the socket level, for the fault tests.

tests/upstream.py answers like a model through a real HTTP server; the faults
here are below what an HTTP server lets a handler do: reset the connection,
accept it and say nothing, promise 50 MB, send one event without an end. Each
connection reads one request, then does what `fault` says. The server counts
the connections still open, so a test can check that the gateway let go.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable


def _read_request(conn: socket.socket) -> bool:
    """Read one HTTP request (headers and a Content-Length body); False if the peer left."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def _head(status: str, content_type: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


EVENT = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
         b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n')


def silent(conn: socket.socket) -> None:
    """Accept, read the request, never answer; wait for the caller to hang up."""
    while conn.recv(65536):
        pass


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset instead of an answer."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def html_502(conn: socket.socket) -> None:
    body = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    conn.sendall(_head("502 Bad Gateway", "text/html", len(body)) + body)


def huge_body(conn: socket.socket) -> None:
    """A 200 that promises 50 MB of JSON and keeps sending until the caller leaves."""
    size = 50 * 2**20
    conn.sendall(_head("200 OK", "application/json", size) + b'{"choices": ["')
    block = b"x" * 65536
    sent = 0
    while sent < size:
        conn.sendall(block)
        sent += len(block)


def huge_event(conn: socket.socket) -> None:
    """A stream whose first event never ends: megabytes with no blank line."""
    conn.sendall(_head("200 OK", "text/event-stream") + b'data: {"choices": [{"delta": {"content": "')
    block = b"y" * 65536
    for _ in range(200):  # 12.5 MB
        conn.sendall(block)


def garbled_event(conn: socket.socket) -> None:
    """A stream cut short: a good event, then one that is not JSON, then the rest.
    Whether it reaches the client before the stream starts is up to `mid_stream`."""
    conn.sendall(_head("200 OK", "text/event-stream") + EVENT + EVENT)
    _mid_stream.wait(10)
    conn.sendall(b'data: {"id":"c","choices":[{"delta":{"content":"h\n\n' + EVENT
                 + b"data: [DONE]\n\n")


def mid_stream_reset(conn: socket.socket) -> None:
    """Two events, then a TCP reset."""
    conn.sendall(_head("200 OK", "text/event-stream") + EVENT + EVENT)
    _mid_stream.wait(10)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


firehose_sent = [0]  # bytes `firehose` got into the socket so far


def firehose(conn: socket.socket) -> None:
    """A stream as fast as the socket takes it, for as long as the caller reads (or 1 GB)."""
    firehose_sent[0] = 0
    conn.sendall(_head("200 OK", "text/event-stream"))
    block = EVENT * 64
    while firehose_sent[0] < 2**30:
        conn.sendall(block)
        firehose_sent[0] += len(block)


_mid_stream = threading.Event()  # the client has the first events: go on with the fault


def go_on() -> None:
    """Let a mid-stream fault happen, now that the client has seen the stream start."""
    _mid_stream.set()


class FaultyUpstream:
    def __init__(self) -> None:
        self.fault: Callable[[socket.socket], None] = silent
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._lock = threading.Lock()
        self.open = 0  # connections the gateway has not closed yet
        self.most_open = 0
        self.connections = 0  # accepted, in all
        self.served = 0

    def start(self) -> FaultyUpstream:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _mid_stream.clear()
            if _read_request(conn):
                with self._lock:
                    self.served += 1
                self.fault(conn)
                if self.fault is not silent:
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):  # until the gateway closes its end
                        pass
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1
