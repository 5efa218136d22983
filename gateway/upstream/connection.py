"""One keep-alive HTTP/1.1 connection to an upstream, and the response it is reading.

The request is written in one `transport.write`; the response is parsed by
httptools (llhttp, in C) as bytes arrive, and its body is handed to the reader
chunk by chunk. This is the whole of what the relay needs from an HTTP client,
and measured against aiohttp on the bench it costs a fraction of aiohttp's
per-request Python (bench/README.md, issue 23).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httptools

from gateway.upstream.base import ConnectionLost, ResponseTooLarge

HIGH_WATER = 1 << 20  # bytes of body held unread before the socket stops being read


class Response:
    """A response whose head has arrived; its body arrives through `chunks()`."""

    __slots__ = ("status", "headers", "_connection", "_parts", "_waiter", "_size", "complete",
                 "_error", "_inflate", "_names")

    def __init__(self, connection: Connection) -> None:
        self._connection: Connection | None = connection  # until closed
        self.status = 0
        self._names: dict[str, str] = {}  # names in lower case
        self.headers: Mapping[str, str] = self._names  # what the seam promises
        self._parts: deque[bytes] = deque()
        self._waiter: asyncio.Future | None = None
        self._size = 0  # bytes held unread
        self.complete = False  # the whole body has arrived
        self._error: Exception | None = None
        self._inflate: Any = None  # a zlib decompressor for a gzip or deflate body

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _feed(self, data: bytes) -> None:
        if self._inflate is not None:
            data = self._inflate.decompress(data)
            if not data:
                return
        self._parts.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def _end(self, error: Exception | None = None) -> None:
        if self.complete or self._error is not None:
            return
        if error is None:
            self.complete = True
        else:
            self._error = error
        self._wake()

    async def read(self, limit: int) -> bytes:
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"upstream answered {declared} bytes, over the {limit}-byte limit")
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"upstream answer is over the {limit}-byte limit")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        parts = self._parts
        while True:
            if parts:
                chunk = parts.popleft()
                self._size -= len(chunk)
                if self._size < HIGH_WATER // 2 and self._connection is not None:
                    self._connection.resume()
                yield chunk
            elif self.complete:
                return
            elif self._error is not None:
                raise self._error
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter

    def exhausted(self) -> bool:
        return self.complete and not self._parts

    def close(self) -> None:
        """Give the connection back if the whole body has arrived (read or not), else drop it,
        so that an upstream still sending stops. Once."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._parts.clear()
            connection.done(reusable=self.complete)


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; `release` is called when it may take the next request."""

    def __init__(self, key: tuple, release, gone) -> None:
        self.key = key  # (host, port, tls): which pool it belongs to
        self._release = release  # called with this connection when it is reusable
        self._gone = gone  # called once, when it closes (or was never made)
        self._counted = True
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._head: asyncio.Future | None = None
        self._keep_alive = True
        self._until_eof = False  # no length and not chunked: the body ends when the socket does
        self._interim = False  # parsing a 1xx answer (103 Early Hints): the real one follows
        self._paused = False
        self.closed = False
        self.idle_since = 0.0

    # The client's side.

    def request(self, head: bytes, body: bytes) -> asyncio.Future:
        """Send one request; the future is its Response, once the head is in."""
        assert self.transport is not None and self._response is None
        self._response = Response(self)
        self._head = asyncio.get_running_loop().create_future()
        self._keep_alive = True
        self._until_eof = False
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return self._head

    def done(self, reusable: bool) -> None:
        """The reader is finished with the response."""
        self._response = None
        self._head = None
        if reusable and self._keep_alive and not self.closed:
            self.resume()
            self._release(self)
        else:
            self.drop()

    def forget(self) -> None:
        """Count this connection out of its pool's limit, once."""
        if self._counted:
            self._counted = False
            self._gone()

    def drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    # asyncio's side.

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"upstream sent a malformed response: {exc}"))
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.forget()
        response = self._response
        if response is not None and self._until_eof and self._head is not None and self._head.done():
            response._end()  # the socket's end is the body's end
            return
        self._fail(ConnectionLost("connection to upstream lost: the upstream closed it"))

    def eof_received(self) -> bool:
        self.closed = True
        return False  # close our side too: no request can follow on this connection

    def _fail(self, error: Exception) -> None:
        head, response = self._head, self._response
        if head is not None and not head.done():
            head.set_exception(error)
        elif response is not None:
            response._end(error)

    # httptools' callbacks.

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is not None:
            self._response._names[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        response, head = self._response, self._head
        if response is None or head is None:
            return
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer: its headers are not the response's
            self._interim = True
            response._names.clear()
            return
        response.status = status
        self._keep_alive = self._parser.should_keep_alive()
        headers = response.headers
        self._until_eof = ("content-length" not in headers
                           and "chunked" not in headers.get("transfer-encoding", "").lower())
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            response._inflate = zlib.decompressobj(47)  # gzip or zlib, told by its header
        if not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif self._response is not None:
            self._response._end()
