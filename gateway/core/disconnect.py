"""Stop work the moment the client goes away.

uvicorn's `send` quietly does nothing once the client has gone, so a relay
that only sends would read the upstream to the end: a local vLLM would go on
generating for nobody. So the request's task is cancelled when its client
leaves; the relay's cleanup then closes the upstream connection, which stops
the upstream.

Under `gateway serve`, the server's protocol (serve_protocol.py) hands each
request a `Watch` in `scope["extensions"]` and cancels the task it names when
the connection is lost before the answer is complete: one task per request.
Under another ASGI server, a watcher task waits on `receive` for
`http.disconnect` instead. It is never cancelled: by the ASGI spec `receive`
returns `http.disconnect` once the response is complete, so it ends by
itself, and cancelling a task costs more than letting it return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from gateway.core.errors import ClientDisconnected

EXTENSION = "gateway.disconnect"


class Watch:
    """One request's link to its connection: the protocol cancels `task` if the client goes."""

    __slots__ = ("cycle", "done", "gone", "task")

    def __init__(self, cycle) -> None:
        self.cycle = cycle  # uvicorn's request-response cycle: whether the answer is complete
        self.task: asyncio.Task | None = None  # set while the work runs
        self.gone = False  # the client left before the answer was complete
        self.done = False

    def lost(self) -> None:
        """The connection closed: cancel the work if it is still answering."""
        if self.task is not None and not self.done and not self.cycle.response_complete:
            self.gone = True
            self.task.cancel()


async def until_disconnect(scope, receive, work: Awaitable[None]) -> None:
    """Await `work`; raise ClientDisconnected, with `work` cancelled, if the client leaves first."""
    task = asyncio.current_task()
    assert task is not None  # called from a coroutine, in its task
    extensions = scope.get("extensions")
    watch = extensions.get(EXTENSION) if extensions else None
    if watch is None:
        watch = Watch(None)
        asyncio.get_running_loop().create_task(_watch(receive, watch, task))
    watch.task = task
    try:
        await work
    except asyncio.CancelledError:
        if watch.gone and task.uncancel() == 0:
            raise ClientDisconnected() from None
        raise
    finally:
        watch.done = True


async def _watch(receive, watch: Watch, task: asyncio.Task) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # After the last byte is sent a disconnect is reported too; that one is not a loss.
            if not watch.done:
                watch.gone = True
                task.cancel()
            return
