"""Wire the stages to ASGI: each client API straight to its pipeline, the rest through Starlette.

The client APIs' POST routes are the hot path, so the entry point sends them to
their pipeline with one dict lookup; Starlette's router, middleware and
request objects serve the other endpoints, where their cost does not matter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import admin, admin_usage, admin_views, console, endpoints, heap, lag, metrics, openapi
from gateway.apis.chat import adapt
from gateway.apis.chat.surface import CHAT
from gateway.apis.completions.surface import COMPLETIONS
from gateway.apis.embeddings.surface import EMBEDDINGS
from gateway.apis.messages import count_tokens
from gateway.apis.messages.surface import MESSAGES
from gateway.apis.responses import endpoints as responses
from gateway.apis.responses.surface import RESPONSES
from gateway.config import Config, ConfigError, load_config
from gateway.core.accept import request_id_of
from gateway.core.echo import echo
from gateway.core.errors import GatewayError, InvalidRequest, NotFound
from gateway.core.pipeline import Pipeline
from gateway.drain import Drain
from gateway.logs import REQUEST_ID, log, log_request, setup_logging
from gateway.monitor import Monitor
from gateway.reload import Reloader
from gateway.runtime import start_runtime, stop_runtime
from gateway.store.base import StoreUnavailable

CONFIG_ENV = "GATEWAY_CONFIG"
# The client APIs served, each on its own paths.
SURFACES = (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES)


class Gateway:
    """The ASGI app."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.site = _starlette(config)
        self.state = self.site.state  # `.runtime` is set at startup and swapped on reload
        self.state.surfaces = SURFACES  # what /v1/models says each model serves
        self.pipelines: dict[str, Any] = {path: Pipeline(self.state, surface)
                                          for surface in SURFACES for path in surface.paths}
        counter = count_tokens.CountTokens(self.state)  # as plain ASGI as a pipeline
        self.pipelines |= dict.fromkeys(count_tokens.PATHS, counter)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.site(scope, receive, send)
        if scope["method"] == "POST":
            pipeline = self.pipelines.get(scope["path"])
            if pipeline is not None:
                return await pipeline(scope, receive, send)
        await _with_request_id(self.site, scope, receive, send)


def create_app(config: Config | None = None) -> Gateway:
    """The app. Without `config`, as `gateway serve` starts it in each worker process:
    config and log settings from the environment the serve command set."""
    if config is None:
        setup_logging(os.environ.get("GATEWAY_LOG_LEVEL", "info"),
                      os.environ.get("GATEWAY_LOG_FORMAT", "auto"))
        config = load_config(os.environ.get(CONFIG_ENV, "routes.yaml"))
    return Gateway(config)


async def _warn_of_store_risks(store) -> None:
    try:
        for risk in await store.risks():
            log.warning(risk)
    except StoreUnavailable:
        pass  # not reachable now: admission reports that as it happens


def _starlette(config: Config) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette):
        metrics.forget_dead_workers()
        metrics.config_loaded(config.digest)
        app.state.runtime = start_runtime(config)
        monitor = Monitor(app.state.runtime)
        monitor.start()
        reloader = app.state.reloader = Reloader(app.state, config.source, monitor.follow)
        loop = asyncio.get_running_loop()
        watcher = (asyncio.create_task(reloader.watch(config.watch_config))
                   if config.watch_config else None)
        try:
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, reloader)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread, or no signals here
        app.state.drain = Drain()
        app.state.drain.install(loop, config.drain_seconds)
        heap.freeze()
        checking = asyncio.create_task(_warn_of_store_risks(app.state.runtime.store))
        lagging = asyncio.create_task(lag.watch())
        log.info("gateway ready", extra={"fields": {
            "config": str(config.source), "config_hash": config.digest,
            "models": len(config.routes), "providers": len(config.providers),
            "stream_helper": adapt._events is not None}})
        if adapt._events is None:
            log.warning("the stream rewrite's C helper was not built (no C compiler when the "
                        "gateway was installed): streams cost more CPU; reinstall with gcc")
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            checking.cancel()
            lagging.cancel()
            await monitor.stop()
            await stop_runtime(app.state.runtime)

    async def wrong_method(request: Request) -> Response:  # a client API's path, not POSTed
        raise HTTPException(405)

    return Starlette(
        routes=[
            *(Route(path, wrong_method, methods=["POST"])
              for path in (*(p for s in SURFACES for p in s.paths), *count_tokens.PATHS)
              if path.startswith("/v1/")),
            Route("/v1/models", endpoints.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", endpoints.get_model, methods=["GET"]),
            Route("/v1/responses/{response_id}", responses.retrieve, methods=["GET"]),
            Route("/v1/responses/{response_id}", responses.delete, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", responses.input_items,
                  methods=["GET"]),
            Route("/healthz", endpoints.healthz, methods=["GET"]),
            Route("/readyz", endpoints.readyz, methods=["GET"]),
            Route("/metrics", endpoints.prometheus, methods=["GET"]),
            Route("/openapi.json", openapi.serve, methods=["GET"]),
            *console.ROUTES,
            Route("/admin/reload", admin.reload_config, methods=["POST"]),
            Route("/admin/keys", admin.create_key, methods=["POST"]),
            Route("/admin/keys", admin.list_keys, methods=["GET"]),
            Route("/admin/keys/{key}", admin.show_key, methods=["GET"]),
            Route("/admin/keys/{key}", admin.update_key, methods=["PATCH"]),
            Route("/admin/keys/{key}", admin.revoke_key, methods=["DELETE"]),
            Route("/admin/usage", admin_usage.usage, methods=["GET"]),
            Route("/admin/overview", admin_views.overview, methods=["GET"]),
            Route("/admin/routes", admin_views.routes, methods=["GET"]),
            Route("/admin/config", admin_views.config, methods=["GET"]),
        ],
        lifespan=lifespan,
        # Starlette types every handler as taking any Exception; it calls this one for HTTPException.
        exception_handlers={HTTPException: _http_error, Exception: _server_error},  # type: ignore[dict-item]
    )


def _reload_on_signal(reloader: Reloader) -> None:
    async def reload() -> None:
        try:
            await reloader.reload("SIGHUP")
        except ConfigError:
            pass  # logged; the old config stays in force

    asyncio.ensure_future(reload())


# Probes and scrapes come every few seconds from machines: their answers are their record.
_UNLOGGED = frozenset({"/healthz", "/readyz", "/metrics"})


async def _with_request_id(app, scope, receive, send) -> None:
    """Every answer carries the request id; every request but probes writes one log line."""
    request_id = request_id_of(scope)
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 0

    async def send_with_id(message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
        await send(message)

    try:
        await app(scope, receive, send_with_id)
    finally:
        if scope["path"] not in _UNLOGGED:
            log_request({"method": scope["method"], "path": echo(scope["path"], 200),
                         "status": status,
                         "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
        REQUEST_ID.reset(token)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"Unknown path: {request.method} {echo(request.url.path)}",
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
