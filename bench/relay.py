"""The reference relay: the least a Python proxy can do, to measure the gateway against.

    python bench/relay.py UPSTREAM_URL PORT

Raw ASGI on uvicorn (uvloop, httptools) with one shared aiohttp session: read
the body, POST it upstream, copy the status and stream the body back chunk by
chunk. No auth, no parsing, no limits, no metrics: the Python ceiling for a
relay on this machine, so the cost of each gateway feature shows as the
distance from it.
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn

UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
session: aiohttp.ClientSession | None = None


async def app(scope, receive, send) -> None:
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256), auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    async with session.post(UPSTREAM + scope["path"], data=body,
                            headers={"content-type": "application/json"}) as upstream:
        await send({"type": "http.response.start", "status": upstream.status,
                    "headers": [(b"content-type", upstream.headers["content-type"].encode())]})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
