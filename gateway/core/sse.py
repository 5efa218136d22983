"""Server-sent events as the gateway writes them: the headers of a stream, and its end.

A stream that fails after its first byte cannot change its status any more: it
ends with an error event in the client API's own shape (the surface says how),
so the client sees why instead of hanging.
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
DONE_EVENT = b"data: [DONE]\n\n"


def data_event(body: bytes) -> bytes:
    """One `data:` event around a JSON body."""
    return b"data: " + body + b"\n\n"


async def end_stream(ex, send, error: GatewayError) -> None:
    """End a started stream with its error event (its adapter's, else the surface's), so the
    client does not hang."""
    ex.error = error.message
    body = ex.stream_error(error) if ex.stream_error is not None else None
    if body is None:
        body = ex.surface.stream_error(error)
    await send({"type": "http.response.body", "body": body, "more_body": False})
