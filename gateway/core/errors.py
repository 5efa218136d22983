"""One exception type per failure kind: its status, its OpenAI type and code, its message.

Every stage raises these; the client API's surface writes the body
(`apis.base.openai_error` for the OpenAI APIs), so each client sees errors in
its own API's shape.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"


class Conflict(GatewayError):
    """The request is fine but the resource's state refuses it (a name taken, a key in the file)."""

    status = 409
    type = "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """The upstream could not be reached, or answered with something unusable."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class NoHealthyTarget(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_healthy_target"


class UpstreamClientError(GatewayError):
    """The upstream refused the request itself (its 4xx): relayed with the upstream's status."""

    type = "invalid_request_error"
    context_overflow = False  # the prompt does not fit this upstream's context window

    def __init__(self, status: int, message: str, *, type: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status
        if type:
            self.type = type


class ClientDisconnected(Exception):
    """The client went away; nothing can be sent, the work is abandoned."""
