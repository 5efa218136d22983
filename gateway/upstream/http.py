"""The HTTP transport: a keep-alive pool of HTTP/1.1 connections per provider.

Chosen by measurement. aiohttp was 2.4x (1 connection) to 11x (64) faster
than httpx as a relay here, and this pool, on asyncio's protocols and
httptools' parser, costs less again: aiohttp's request path was about a third
of the gateway's CPU a request under load (bench/README.md, issue 23).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import ssl
import time
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from gateway.config import Provider
from gateway.upstream.base import ConnectFailed, ConnectTimeout
from gateway.upstream.connection import Connection, Response

_UNSAFE = re.compile(r"[\r\n\0]")  # what would end a header line early


class Origin:
    """Where one URL's requests go: its connection key, and the head's fixed part."""

    __slots__ = ("host", "port", "tls", "key", "start", "auth")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the provider's URL is not http:// or https://")  # not echoed
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.host, self.port, self.tls)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # The head after its method, up to the Host line: the same for every request, made once.
        self.start = f" {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}"
        self.auth = None  # user:password in the URL: sent as Basic auth, never in the Host
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.auth = "Basic " + base64.b64encode(pair.encode()).decode()


def _head(method: str, origin: Origin, headers: Mapping[str, str], length: int | None) -> bytes:
    lines = [method + origin.start]
    if origin.auth is not None and "authorization" not in (n.lower() for n in headers):
        lines.append(f"Authorization: {origin.auth}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    for name, value in headers.items():
        line = f"{name}: {value}"
        if not line.isprintable() and _UNSAFE.search(line):  # a tab is fine; a line break is not
            raise ConnectFailed(f"header {name!r} holds a line break; it was not sent")
        lines.append(line)
    lines.append("\r\n")
    return "\r\n".join(lines).encode()


class HttpTransport:
    def __init__(self, max_connections: int = 256, keepalive_seconds: float = 30.0,
                 connect_timeout: float = 10.0) -> None:
        self._limit = max_connections
        self._keepalive = keepalive_seconds
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple, list[Connection]] = {}
        self._open = 0  # connections open or being opened, idle ones included
        self._waiting: list[asyncio.Future] = []  # requests waiting for the limit to allow one
        self._origins: dict[str, Origin] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def _origin(self, url: str) -> Origin:
        origin = self._origins.get(url)
        if origin is None:
            try:
                origin = self._origins[url] = Origin(url)
            except ValueError as exc:
                raise ConnectFailed(str(exc)) from None
        return origin

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        return await self._exchange("POST", self._origin(url), headers, body)

    async def get(self, url: str, timeout: float, limit: int = 4 * 2**20) -> tuple[int, bytes]:
        response = None
        try:
            async with asyncio.timeout(timeout):
                response = await self._exchange("GET", self._origin(url), {}, None)
                return response.status, await response.read(limit)
        except TimeoutError:
            raise ConnectTimeout(f"no answer within {timeout:g}s") from None
        finally:
            if response is not None:
                response.close()

    async def _exchange(self, method: str, origin: Origin, headers: Mapping[str, str],
                        body: bytes | None) -> Response:
        head = _head(method, origin, headers, len(body) if body is not None else None)
        connection = await self._acquire(origin)
        try:
            return await connection.request(head, body or b"")
        except BaseException:
            connection.drop()  # half a request or half a head: nothing else can use it
            raise

    async def _acquire(self, origin: Origin) -> Connection:
        while True:
            idle = self._idle.get(origin.key)
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                if not connection.closed and now - connection.idle_since < self._keepalive:
                    return connection
                connection.drop()
            if self._open < self._limit:
                break
            for other in self._idle.values():  # make room: an idle connection elsewhere goes
                if other:
                    other.pop(0).drop()
                    break
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:  # cancelled: a wake it was given goes to the next in line
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()
                raise
        self._open += 1
        connection = Connection(origin.key, self._release, self._gone)
        try:
            await self._connect(origin, connection)
        except BaseException:
            connection.forget()
            connection.drop()
            raise
        return connection

    async def _connect(self, origin: Origin, connection: Connection) -> None:
        if self._closed:
            raise ConnectFailed("the transport is closed")
        tls = None
        if origin.tls:
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: connection, origin.host, origin.port, ssl=tls,
                    server_hostname=origin.host if tls else None)
        except TimeoutError:
            raise ConnectTimeout(f"connect timed out after {self._connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to upstream: {_describe(exc)}") from None

    def _release(self, connection: Connection) -> None:
        """A connection that may take the next request: to a waiting request, or to the pool."""
        if self._closed:  # the answer of a request that was under way at aclose
            connection.drop()
            return
        now = connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(connection.key, [])
        while idle and now - idle[0].idle_since >= self._keepalive:  # the oldest first
            idle.pop(0).drop()
        idle.append(connection)
        self._wake()

    def _gone(self) -> None:
        """A connection closed (or was never made): one more may be opened."""
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def idle(self) -> int:
        """Pooled connections open and waiting for a request."""
        return sum(not c.closed for pool in self._idle.values() for c in pool)

    def waiting(self) -> int:
        """Requests waiting for the pool's limit to let them have a connection."""
        return len(self._waiting)

    @classmethod
    def for_provider(cls, provider: Provider) -> HttpTransport:
        return cls(provider.max_connections, provider.keepalive_seconds, provider.timeouts.connect)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.drop()
        self._idle.clear()


def _describe(exc: OSError) -> str:
    """Why, in words fit for a client: the reason, never the upstream's address."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or 'handshake error'}"
    if exc.errno:
        return os.strerror(exc.errno) if exc.errno > 0 else "name resolution failed"
    return "connection failed"


