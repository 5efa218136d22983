"""Writing responses on raw ASGI: the few shapes the gateway sends."""

from __future__ import annotations

from gateway.core.errors import GatewayError


async def send_json(send, status: int, body: bytes, request_id: str | None = None,
                    extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", b"application/json")]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    for name, value in (extra or {}).items():
        headers.append((name.encode(), value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send, error: GatewayError, body: bytes, request_id: str | None = None,
                     extra: dict[str, str] | None = None, status: int | None = None) -> None:
    """`error`'s status (or `status`, the client API's word for it) and headers, with `body`
    as the client API writes it."""
    headers = {**error.headers, **extra} if extra else error.headers
    await send_json(send, status or error.status, body, request_id, headers)
