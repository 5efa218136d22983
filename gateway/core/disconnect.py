"""Stop work the moment the client goes away.

uvicorn's `send` quietly does nothing once the client has gone, so a relay
that only sends would read the upstream to the end: a local vLLM would go on
generating for nobody. A watcher task waits on `receive` for
`http.disconnect` and cancels the request's task; the relay's cleanup then
closes the upstream connection, which stops the upstream.

The watcher is never cancelled: by the ASGI spec `receive` returns
`http.disconnect` once the response is complete, so it ends by itself, and
cancelling a task costs more than letting it return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from gateway.core.errors import ClientDisconnected


async def until_disconnect(receive, work: Awaitable[None]) -> None:
    """Await `work`; raise ClientDisconnected, with `work` cancelled, if the client leaves first."""
    task = asyncio.current_task()
    assert task is not None  # called from a coroutine, in its task
    state = {"working": True, "disconnected": False}

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # After the last byte is sent uvicorn reports a disconnect too; that one is not a loss.
                if state["working"]:
                    state["disconnected"] = True
                    task.cancel()
                return

    asyncio.get_running_loop().create_task(watch())
    try:
        await work
    except asyncio.CancelledError:
        if state["disconnected"] and task.uncancel() == 0:
            raise ClientDisconnected() from None
        raise
    finally:
        state["working"] = False
