"""Wire the stages to Starlette: routes, lifespan, and OpenAI-shaped answers for everything."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import endpoints
from gateway.config import Config, load_config
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.logs import log
from gateway.pipeline import ChatCompletions
from gateway.runtime import start_runtime, stop_runtime

CONFIG_ENV = "GATEWAY_CONFIG"


def create_app(config: Config | None = None) -> Starlette:
    """The ASGI app. Without `config`, loads the file named by $GATEWAY_CONFIG (how workers get it)."""
    if config is None:
        config = load_config(os.environ.get(CONFIG_ENV, "routes.yaml"))

    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.runtime = start_runtime(config)
        log.info("gateway ready", extra={"fields": {
            "config": str(config.source), "config_hash": config.digest,
            "models": len(config.routes), "providers": len(config.providers)}})
        try:
            yield
        finally:
            await stop_runtime(app.state.runtime)

    app = Starlette(
        routes=[],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    chat = ChatCompletions(app.state)
    app.router.routes.extend([
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", endpoints.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", endpoints.get_model, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/readyz", endpoints.readyz, methods=["GET"]),
        Route("/metrics", endpoints.prometheus, methods=["GET"]),
    ])
    return app


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"Unknown path: {request.method} {request.url.path[:200]}",
                                       code="unknown_url")
    else:
        error = InvalidRequest(exc.detail or "Bad request.")
        error.status = exc.status_code
        if exc.status_code == 405:
            error.code = "method_not_allowed"
    return endpoints.error_response(error)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=exc)
    return endpoints.error_response(GatewayError("The gateway failed unexpectedly."))
