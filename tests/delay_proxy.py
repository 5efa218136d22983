"""A TCP proxy on loopback that delays what the server answers, as a slow network or an
overloaded Redis would.

Commands reach the server at once; each piece of its answer is held `delay`
seconds before it is passed on (in order). So a command with a late answer has
been applied all the same: the case a client cannot tell from a lost one.
`delay` can be changed while connections are open. LoadingProxy, below, refuses
some commands instead, as a Redis still loading its data does.
"""

from __future__ import annotations

import asyncio
import threading

import hiredis

from gateway.store.link import pack
from tests.gateway_process import free_port


class DelayProxy:
    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = delay
        self.connections = 0  # accepted so far
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> DelayProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        self.connections += 1
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tasks = [asyncio.create_task(self._pass(client_in, server_out)),
                 asyncio.create_task(self._hold(server_in, held)),
                 asyncio.create_task(self._release(held, client_out))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            client_out.close()
            server_out.close()

    @staticmethod
    async def _pass(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()

    async def _hold(self, source: asyncio.StreamReader, held: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while data := await source.read(65536):
            held.put_nowait((loop.time() + self.delay, data))
        held.put_nowait((loop.time() + self.delay, b""))  # the server closed: so does the client

    @staticmethod
    async def _release(held: asyncio.Queue, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await held.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                return
            sink.write(data)
            await sink.drain()


class LoadingProxy(DelayProxy):
    """A proxy that passes Redis commands on one at a time and can answer the next
    `refuse_scripts` EVALSHA commands itself with Redis' LOADING error, as a Redis that
    finishes loading its data in the middle of a pipeline would: the first commands of
    the pipeline refused, the rest applied."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.refuse_scripts = 0

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        self.connections += 1
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        commands, replies = hiredis.Reader(), hiredis.Reader()
        try:
            while data := await client_in.read(65536):
                commands.feed(data)
                while (command := commands.gets()) is not False:
                    if command[0].upper() == b"EVALSHA" and self.refuse_scripts > 0:
                        self.refuse_scripts -= 1
                        client_out.write(b"-LOADING Redis is loading the dataset in memory\r\n")
                        continue
                    server_out.write(pack(command))
                    client_out.write(await self._one_reply(server_in, replies))
                await client_out.drain()
        finally:
            client_out.close()
            server_out.close()

    @staticmethod
    async def _one_reply(server_in: asyncio.StreamReader, replies: hiredis.Reader) -> bytes:
        answer = b""
        while True:
            data = await server_in.read(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            answer += data
            replies.feed(data)
            if replies.gets() is not False:
                return answer
