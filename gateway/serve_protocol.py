"""uvicorn's httptools protocol with a deadline for each request's headers, and a hand on
each request's task to cancel it when its client leaves (gateway/core/disconnect.py).

uvicorn closes a keep-alive connection that stays idle after an answer, but
not one that never sends a request, nor one that sends its headers a byte at
a time: thousands of those would hold the gateway's file descriptors for
ever. Here a connection has `GATEWAY_HEADER_TIMEOUT` seconds (server.header_timeout,
set by `gateway serve`) from when it opens, or from its last answer, to send a
whole request head; then it is closed. A head larger than `MAX_HEAD_BYTES`
is refused with a 431 (httptools itself takes any size), however its bytes
arrive: counted as they are received while the head is incomplete, and again
from what the parser hands over, since one read can hold a whole head. What
follows an answer sent before its request's body ended is that body, not a head.

Each response's head goes out with the first bytes of its body, in one write: uvicorn
writes the head when the app starts the response, and the app sends its first body
message straight after, so two writes (two system calls, two TCP segments) become one.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.core.deadline import ticker_of
from gateway.core.disconnect import EXTENSION, Watch

HEADER_TIMEOUT_ENV = "GATEWAY_HEADER_TIMEOUT"
MAX_HEAD_BYTES = 64 * 1024  # request line and headers; nginx's default allows 32 KiB
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_TOO_LARGE_BODY = (b'{"error":{"message":"The request headers are larger than this gateway '
                   b'accepts (65536 bytes).","type":"invalid_request_error","param":null,'
                   b'"code":"headers_too_large"}}')


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self._head_due = 0.0
        self._head_bytes = 0  # received of the head being read; -1 once it is complete
        self._head_size = 0  # of the head being parsed: its URL and headers, as parsed
        self._refused = False  # a head was too large: the rest of the connection is ignored
        # The deadlines' shared ticker, not a timer per request: a set insert and removal.
        self._ticker = ticker_of(self.loop)
        self._watches: list[Watch] = []  # of this connection's requests not yet done

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        reading_head = self._head_bytes >= 0
        super().data_received(data)
        # Still in the head after this data: all of it was head (a body after a complete
        # head does not count).
        if reading_head and self._head_bytes >= 0 and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url) + 14  # the method and "HTTP/1.1", roughly
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._ticker.deadlines.discard(self)
        self._head_bytes = -1
        if self._head_size > MAX_HEAD_BYTES:
            self._refuse_head()  # the request never reaches the app
            return
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:  # not an upgrade
            if self.scope["method"] != "HEAD":  # whose answer has no body to write the head with
                self.cycle.transport = HeadWithBody(self.cycle)
            # The request's task runs later: it finds its Watch in the scope (disconnect.py).
            watch = Watch(self.cycle)
            extensions: dict = self.scope.setdefault("extensions", {})
            extensions[EXTENSION] = watch
            self._watches = [w for w in self._watches if not w.done]
            self._watches.append(watch)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and self._head_bytes < 0:
            self._head_bytes = 0  # the end of a body answered early: the next head starts

    def _refuse_head(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Not while a pipelined request, its head already read, is being answered.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            # An answer sent before its request's body ended (a 401, a 413 by Content-Length):
            # the rest of that body is still to come, and is no head. Its time counts.
            self._await_head(counting=self.cycle is None or not self.cycle.more_body)

    def connection_lost(self, exc) -> None:
        self._ticker.deadlines.discard(self)
        super().connection_lost(exc)
        for watch in self._watches:  # a request still answering: its client has left
            watch.lost()
        self._watches = []

    def _await_head(self, counting: bool = True) -> None:
        self._head_bytes = 0 if counting else -1
        self._head_due = self.loop.time() + self.header_timeout
        self._ticker.add(self)

    def _when(self) -> float:  # for the ticker
        return self._head_due

    def _expire(self) -> None:  # for the ticker: the head is late
        if not self.transport.is_closing():
            self.transport.close()


class HeadWithBody(asyncio.Transport):
    """The transport as one response's cycle sees it: the head is held until the body's first
    write and goes out with it. Before the response starts (a `100 Continue`) and after its
    head, writes pass straight through; closing writes a head still held first. The cycle
    calls only what is here."""

    __slots__ = ("_cycle", "_transport", "_head")

    def __init__(self, cycle) -> None:
        super().__init__()
        self._cycle = cycle
        self._transport = cycle.transport
        self._head: bytes | None = None  # b"" once the head has gone out

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is None and self._cycle.response_started:
            self._head = bytes(data)  # uvicorn writes the head just after marking the start
        elif head:
            self._head = b""
            if len(data) < 8192:
                self._transport.write(head + data)
            else:  # one writev, not a copy of a long stream's first read
                self._transport.writelines((head, data))
        else:
            self._transport.write(data)

    def close(self) -> None:
        if self._head:
            self._transport.write(self._head)
            self._head = b""
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name, default=None):
        return self._transport.get_extra_info(name, default)
