"""A pipelined Redis connection for the request path's two calls: admit and settle.

Measured on this kind of machine: an admission through redis-py's client cost
260 us of CPU, on a plain asyncio connection with hiredis parsing 118 us.
Everything else (key management, usage queries, pub/sub, Cluster) stays
with redis-py.

Any number of requests share the connection. Commands issued in one turn of
the event loop go out in one write; Redis answers in order, and each answer
resolves its command's future as it is parsed. A timeout or a broken
connection fails every command in flight (their outcome is unknown) and the
next call reconnects.

Answers come in order, so the oldest command in flight is the one that times out
first: the link is one deadline of the shared ticker (gateway/core/deadline.py),
due `timeout` after its oldest command was written, instead of a timer a call
(a heap push and a cancel each). It fires up to the ticker's 25 ms late.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url

from gateway.core.deadline import _Ticker, ticker_of


class LinkError(Exception):
    """The connection failed or timed out: the command's outcome is unknown."""


def pack(args) -> bytes:
    """A command in RESP."""
    return f"*{len(args)}\r\n".encode() + pack_items(args)


def pack_items(args) -> bytes:
    """A command's arguments in RESP, without the count that heads them: a caller that packs
    a constant part of its commands once joins it to the rest (`Packed`). ASCII arguments
    (nearly all) are encoded once, as a whole."""
    texts = [a if type(a) is str else (a.decode() if type(a) is bytes else str(a)) for a in args]
    if all(t.isascii() for t in texts):
        return "".join(f"${len(t)}\r\n{t}\r\n" for t in texts).encode()
    out = []
    for text in texts:
        data = text.encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class Packed:
    """The first arguments of a command, packed once (a script's SHA and its keys, say)."""

    __slots__ = ("count", "items")

    def __init__(self, args) -> None:
        self.count = len(args)
        self.items = pack_items(args)

    def command(self, *rest) -> bytes:
        """The whole command: these arguments, then `rest`."""
        return f"*{self.count + len(rest)}\r\n".encode() + self.items + pack_items(rest)


class _Protocol(asyncio.Protocol):
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.parser = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        link = self.link
        pending, sent = link.pending, link.sent
        try:
            while (reply := self.parser.gets()) is not False:
                if pending:
                    future = pending.popleft()
                    sent.popleft()
                    if not future.done():
                        future.set_result(reply)
        except hiredis.ProtocolError as exc:
            link.broken(LinkError(f"unreadable answer from redis: {exc}"))
        if not pending:
            link.unwatch()

    def connection_lost(self, exc) -> None:
        if self.link.protocol is self:
            self.link.broken(LinkError(f"redis closed the connection: {exc or 'end of stream'}"))


class RedisLink:
    def __init__(self, url: str, timeout: float) -> None:
        # redis-py types the result with a few keys; it holds the URL's query options too.
        self.options: dict[str, Any] = dict(parse_url(url))
        self.tls = url.startswith("rediss://")
        self.timeout = timeout
        self.protocol: _Protocol | None = None
        self.pending: deque[asyncio.Future] = deque()
        self.sent: deque[float] = deque()  # when each pending command was issued (loop time)
        self._outgoing: list[bytes] = []  # written together at the end of this loop turn
        self._connecting: asyncio.Lock | None = None
        # The loop's ticker while commands are in flight: the link is one of its deadlines.
        self._ticker: _Ticker | None = None

    async def call(self, *args):
        """One command's reply; Redis errors come back as hiredis.ReplyError values."""
        return await self.send(pack(args))

    async def send(self, command: bytes):
        """`call`, for a command already in RESP."""
        if self.protocol is None:
            await self._connect()
        try:
            return await self._send(command)
        except LinkError as exc:
            message = str(exc)
        # Raised here, outside the handler and held by no variable, the error references
        # neither the one the future held nor this frame from a local: no reference cycle,
        # so a Redis outage's thousands of failed calls are freed at once, not left to the
        # cyclic collector.
        raise LinkError(message)

    def _send(self, command: bytes) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append(future)
        self.sent.append(loop.time())
        if self._ticker is None or self._ticker.loop is not loop:
            self._ticker = ticker_of(loop)
            self._ticker.add(self)
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)
        return future

    def _when(self) -> float:  # for the ticker: the oldest command's answer is due
        return self.sent[0] + self.timeout if self.sent else float("inf")

    def _expire(self) -> None:  # for the ticker, which has let the link go
        self._ticker = None
        self.broken(LinkError(f"no answer from redis within {self.timeout:g}s"))

    def unwatch(self) -> None:
        """Nothing in flight: no deadline (the ticker sleeps when it has none)."""
        if self._ticker is not None:
            self._ticker.deadlines.discard(self)
            self._ticker = None

    def _flush(self) -> None:
        """One write (one system call) for every command issued in this loop turn."""
        data, self._outgoing = b"".join(self._outgoing), []
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None and data:
            protocol.transport.write(data)

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.protocol is not None:
                return
            options = self.options
            context = None
            if self.tls:
                context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
                if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    _, self.protocol = await loop.create_connection(
                        lambda: _Protocol(self), options.get("host", "127.0.0.1"),
                        options.get("port", 6379), ssl=context)
                    setup: list[tuple] = []
                    if options.get("password"):
                        setup.append(("AUTH", options["username"], options["password"])
                                     if options.get("username") else ("AUTH", options["password"]))
                    if options.get("db"):
                        setup.append(("SELECT", options["db"]))
                    for command in setup:
                        reply = await self._send(pack(command))
                        if isinstance(reply, hiredis.ReplyError):
                            raise LinkError(f"redis refused {command[0]}: {reply}")
            except (OSError, TimeoutError, LinkError) as exc:
                self.broken(LinkError(str(exc)))
                raise LinkError(f"cannot connect to redis: {exc or type(exc).__name__}") from None

    def broken(self, error: LinkError) -> None:
        """Fail every command in flight and drop the connection; the next call reconnects."""
        protocol, self.protocol = self.protocol, None
        self._outgoing = []
        self.sent.clear()
        self.unwatch()
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        message = str(error)
        while self.pending:
            future = self.pending.popleft()
            if not future.done():  # an error of its own: one raised in many tasks would
                future.set_exception(LinkError(message))  # hold all their tracebacks

    async def close(self) -> None:
        self.broken(LinkError("closed"))
