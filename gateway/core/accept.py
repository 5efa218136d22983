"""Accept: read what the client sent, once: headers in one pass, the body size-capped."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.deadline import Deadline
from gateway.core.errors import ClientDisconnected, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# Media types whose body is parsed as JSON (curl -d sends the second one unless told otherwise).
SEND_JSON = "Send a JSON object, with the header 'Content-Type: application/json'."
_READ_AS_JSON = frozenset({b"application/json", b"application/x-www-form-urlencoded", b""})


@dataclass(slots=True)
class Incoming:
    key: str | None
    request_id: str
    content_length: int | None
    content_encoding: bytes | None
    content_type: bytes | None = None


def new_request_id() -> str:
    """96 random bits. An id needs to be unique, not secret: no system call per request
    (`random` is seeded from the OS, and again in a forked child)."""
    return f"{random.getrandbits(96):024x}"


def request_id_of(scope: dict) -> str:
    """The client's `x-request-id` if it is a sane one, else a new id."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID.match(value):
            return value.decode()
    return new_request_id()


def read_headers(scope: Mapping[str, Any]) -> Incoming:
    """The key (Bearer, Api-Key, x-api-key or api-key), the request id, and the body's framing."""
    key = alt_key = None
    request_id = None
    length = encoding = media = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() in (b"bearer", b"api-key") and token.strip():
                key = token.strip().decode("latin-1")
        elif name == b"x-api-key" or name == b"api-key":
            alt_key = value.strip().decode("latin-1") or None
        elif name == b"x-request-id":
            if _REQUEST_ID.match(value):
                request_id = value.decode()
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-encoding":
            encoding = value.lower()
        elif name == b"content-type":
            media = value
    return Incoming(
        key=key or alt_key,
        request_id=request_id or new_request_id(),
        content_length=length,
        content_encoding=encoding,
        content_type=media,
    )


def require_json(content_type: bytes | None) -> None:
    """Refuse a body that cannot be JSON: multipart forms and other declared media types.

    No Content-Type, and curl's default for `-d` (`application/x-www-form-urlencoded`), are
    read as JSON: `curl -d '{...}'` without `-H 'Content-Type: application/json'` is how most
    people try an API first, and a body that is not JSON after all gets a 400 that says how
    to send it. Parameters (`; charset=utf-8`) are ignored.
    """
    if content_type is None:
        return
    media = content_type.partition(b";")[0].strip().lower()
    if media in _READ_AS_JSON or (media.startswith(b"application/") and media.endswith(b"+json")):
        return
    shown = content_type.decode("latin-1")[:100]
    raise UnsupportedMediaType(
        f"Unsupported content type '{shown}'. {SEND_JSON}", code="unsupported_content_type")


async def read_body(receive, incoming: Incoming, limit: int, timeout: float) -> bytes:
    """The whole body within `timeout` seconds, refused as soon as it is known to exceed `limit`."""
    try:
        async with Deadline(timeout, timeout, timeout):
            return await _read_body(receive, incoming, limit)
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {timeout:g}s.") from None


async def _read_body(receive, incoming: Incoming, limit: int) -> bytes:
    if incoming.content_encoding not in (None, b"identity"):
        raise UnsupportedMediaType(
            "Compressed request bodies are not accepted; send the JSON body uncompressed.",
            code="unsupported_content_encoding")
    require_json(incoming.content_type)
    if incoming.content_length is not None and incoming.content_length > limit:
        raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this gateway accepts ({limit} bytes).")
