"""The endpoints besides the client APIs' POSTs: models, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.apis.base import Surface, openai_error
from gateway.config import Config
from gateway.core.accept import read_headers
from gateway.core.auth import Principal, authenticate, digest_of
from gateway.core.echo import echo
from gateway.core.errors import GatewayError, NotFound, Unauthorized
from gateway.core.route import visible_models


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def error_response(error: GatewayError) -> Response:
    """The OpenAI-shaped error every endpoint outside the client APIs' pipelines answers."""
    return Response(openai_error(error), error.status, error.headers, media_type="application/json")


async def principal_of(request: Request) -> Principal:
    """Who is asking, by the key the request presents, as /v1/* authenticates."""
    runtime = request.app.state.runtime
    return await authenticate(runtime.config.master_digest, runtime.keyring,
                              read_headers(request.scope).key)


def _model_object(alias: str, created: int) -> dict:
    """A model as OpenAI's and Anthropic's clients both read it: each side ignores the other's
    fields (OpenAI's `object`, `created`, `owned_by`; Anthropic's `type`, `display_name`,
    `created_at`)."""
    return {"id": alias, "object": "model", "created": created, "owned_by": "gateway",
            "type": "model", "display_name": alias, "created_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))}


_served: tuple[Config | None, dict[str, list[str]]] = (None, {})


def served_apis(config: Config, surfaces: Iterable[Surface]) -> dict[str, list[str]]:
    """Per alias, the client APIs some target of it serves (natively or converted, as each
    surface says): worked out once per config, not per request."""
    global _served
    if _served[0] is not config:
        surfaces = tuple(surfaces)
        _served = (config, {alias: [s.name for s in surfaces
                                    if any(s.served_by(t) for t in route.attempts())]
                            for alias, route in config.routes.items()})
    return _served[1]


async def list_models(request: Request) -> Response:
    """The key's models, each with the client APIs it serves (`apis`: a field OpenAI's
    clients ignore)."""
    try:
        principal = await principal_of(request)
    except GatewayError as error:
        return error_response(error)
    config = request.app.state.runtime.config
    apis = served_apis(config, request.app.state.surfaces)
    data = [_model_object(a, config.created[a]) | {"apis": apis[a]}
            for a in visible_models(config, principal)]
    # OpenAI's list, with Anthropic's paging fields: every model is on this one page.
    return json_response({"object": "list", "data": data, "has_more": False,
                          "first_id": data[0]["id"] if data else None,
                          "last_id": data[-1]["id"] if data else None})


async def get_model(request: Request) -> Response:
    try:
        principal = await principal_of(request)
    except GatewayError as error:
        return error_response(error)
    config = request.app.state.runtime.config
    alias = request.path_params["model"]
    route = config.route_for(alias)
    if route is None or not principal.allows(alias):
        return error_response(NotFound(
            f"The model '{echo(alias)}' does not exist or you do not have access to it.",
            param="model", code="model_not_found"))
    return json_response(_model_object(alias, config.created[route.alias]))


async def healthz(request: Request) -> Response:
    """The process is alive and serving HTTP."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Config loaded and store reachable: send traffic here."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return json_response({"status": "starting"}, 503)
    drain = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:
        return json_response({"status": "draining"}, 503)
    try:
        store_ok = await asyncio.wait_for(runtime.store.ping(), timeout=1.0)
    except Exception:
        store_ok = False
    now = time.monotonic()
    targets = {}
    for route in runtime.config.routes.values():
        for target in route.attempts():
            targets[target.key] = runtime.health.state(target.key).report(now)
    body = {"status": "ready" if store_ok else "store unreachable",
            "config": runtime.config.digest,
            "store": {"kind": runtime.store.kind, "reachable": store_ok},
            "models": len(runtime.config.routes),
            "targets": targets}
    return json_response(body, 200 if store_ok else 503)


async def prometheus(request: Request) -> Response:
    """The Prometheus text; behind `server.metrics_key` (or the master key) when one is set."""
    config = request.app.state.runtime.config
    if config.metrics_digest is not None:
        presented = read_headers(request.scope).key
        digest = digest_of(presented) if presented else ""
        if not any(wanted is not None and hmac.compare_digest(digest, wanted)
                   for wanted in (config.metrics_digest, config.master_digest)):
            return error_response(Unauthorized(
                "/metrics needs the metrics key (server.metrics_key) as "
                "'Authorization: Bearer KEY'.", code="metrics_key_required",
                headers={"www-authenticate": "Bearer"}))
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
