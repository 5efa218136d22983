"""Admin endpoints, under /admin, for the master key only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.accept import read_headers
from gateway.auth import authenticate
from gateway.config import ConfigError
from gateway.endpoints import error_response, json_response
from gateway.errors import Forbidden, GatewayError, InvalidRequest, Unauthorized


async def require_master(request: Request) -> None:
    runtime = request.app.state.runtime
    if runtime.config.master_digest is None:
        raise Unauthorized("Admin endpoints are disabled: GATEWAY_MASTER_KEY is not set.",
                           code="admin_disabled")
    principal = await authenticate(runtime.config.master_digest, runtime.keyring,
                                   read_headers(request.scope).key)
    if not principal.is_master:
        raise Forbidden("This endpoint needs the master key.", code="master_key_required")


async def reload_config(request: Request) -> Response:
    """POST /admin/reload: read the config files again; a bad config is refused, the old one stays."""
    try:
        await require_master(request)
        config = await request.app.state.reloader.reload("POST /admin/reload")
    except ConfigError as error:
        return error_response(InvalidRequest(
            f"The new config was refused; the old one stays in force.\n{error}",
            code="invalid_config"))
    except GatewayError as error:
        return error_response(error)
    return json_response({"status": "reloaded", "config": config.digest,
                          "models": len(config.routes)})
