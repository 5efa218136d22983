"""Errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.

The gateway's errors carry OpenAI's types; an Anthropic client reads the type
from the status, as Anthropic's API sets them. Where no target of the model can
take the request now (all unhealthy or resting), the status is Anthropic's 529
`overloaded_error`, which its SDKs and Claude Code retry.
"""

from __future__ import annotations

import orjson

from gateway.core.errors import GatewayError, NoHealthyTarget

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
          529: "overloaded_error"}
OVERLOADED = 529


def status_of(error: GatewayError) -> int:
    return OVERLOADED if isinstance(error, NoHealthyTarget) else error.status


def type_of(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def body(error: GatewayError) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_of(status_of(error)),
                                                    "message": error.message}})


def event(error: GatewayError) -> bytes:
    """The `error` event that ends a stream that had started."""
    return b"event: error\ndata: " + body(error) + b"\n\n"
