"""Two loopback proxies for a client that is a closed program (tests/clients/test_claude_code.py):
one shows what it sent the gateway, the other what it tried to send anywhere else.

`Recorder` stands between the client and the gateway and records each request whole
(method, path with its query, headers, body) before passing it on; the answer comes back as
the gateway sends it, streamed piece by piece. `Refuser` is the client's HTTP(S)_PROXY: every
connection to the outside world comes to it, is noted (its first line: `CONNECT host:443`
or `GET http://...`) and refused, so a test can check that none was tried.
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web

from tests.upstream import Recorded

# Per-connection headers (RFC 9110 7.6.1) and the ones aiohttp writes itself.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                  "proxy-connection", "content-length", "host"})


class _Looped:
    """A server on 127.0.0.1 run by an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=type(self).__name__)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def start(self):
        self._thread.start()
        self.port = self._run(self._start())
        return self

    def stop(self) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _start(self) -> int:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError


class Recorder(_Looped):
    """A reverse proxy to `target` (an http://host:port origin) that records every request."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.requests: list[Recorded] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(Recorded(request.method, request.path_qs, headers, body))
        sent = {name: value for name, value in headers.items() if name not in _HOP}
        async with self._session.request(request.method, self.target + request.path_qs,
                                         headers=sent, data=body,
                                         allow_redirects=False) as answer:
            response = web.StreamResponse(status=answer.status, headers={
                name: value for name, value in answer.headers.items()
                if name.lower() not in _HOP})
            await response.prepare(request)
            async for piece in answer.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response


class Refuser(_Looped):
    """An HTTP proxy that lets nothing through: `asked` holds each connection's first line."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._refuse, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            self.asked.append(line.decode("latin-1").strip())
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
