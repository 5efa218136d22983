"""The admin console's read-only views, under /admin, for the master key like the rest:

    GET /admin/overview   today's and this month's usage, requests in flight, the config
    GET /admin/routes     each alias's groups and targets, with their health right now
    GET /admin/config     the config file in force, key-shaped literals masked

Usage totals come from the store's per-day sums (store.totals), so the overview reads a row
a day however many keys there are. Health is this process's own view (core/health.py).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.admin import admin
from gateway.config import Route
from gateway.core.health import TargetState
from gateway.endpoints import json_response
from gateway.store.base import UsageRow

# A YAML `name: value` (block or flow style) whose name says secret.
_SECRET_FIELD = re.compile(
    r"""(?i)((?<![\w.-])["']?[\w.-]*(?:key|secret|token|password|passwd|credential)s?["']?"""
    r"""[ \t]*:[ \t]*)(?:"([^"\n]*)"|'([^'\n]*)'|([^\s"'#,{}\[\]][^,{}\[\]#\n]*?))"""
    r"""(?=[ \t]*(?:[,}\]#\n]|$))""")
# A value shaped like an API key anywhere else (sk-..., gw-..., a bearer token).
_KEY_SHAPED = re.compile(r"\b((?:sk|gw|pk|rk)[-_][A-Za-z0-9_-]{3})[A-Za-z0-9_-]{8,}|"
                         r"(?i:\b(Bearer\s+))[A-Za-z0-9._~+/-]{8,}=*")
_PLAIN = re.compile(r"^(?:[0-9][0-9_.]*\s*[KMG]?i?B?|true|false|null|~)\s*$", re.IGNORECASE)
MASK = "********"


@admin
async def overview(request: Request) -> Response:
    runtime = request.app.state.runtime
    reloader = request.app.state.reloader
    now = datetime.now(UTC).date()
    today = await runtime.store.totals(now.isoformat(), now.isoformat())
    month = await runtime.store.totals(now.replace(day=1).isoformat(), now.isoformat())
    return json_response({
        "today": _totals(today), "month": _totals(month), "in_flight": _in_flight(),
        "config": {"path": str(runtime.config.source), "hash": runtime.config.digest,
                   "loaded_at": round(reloader.loaded_at, 3), "last_reload": reloader.last}})


@admin
async def routes(request: Request) -> Response:
    runtime = request.app.state.runtime
    now = time.monotonic()
    return json_response([_route(route, runtime.health.state, now)
                          for _, route in sorted(runtime.config.routes.items())])


@admin
async def config(request: Request) -> Response:
    runtime = request.app.state.runtime
    return json_response({"path": str(runtime.config.source), "hash": runtime.config.digest,
                          "text": mask(request.app.state.reloader.text)})


def mask(text: str) -> str:
    """The file with every literal secret replaced: provider keys belong in `${ENV}`
    references, and one written in the file is not shown to whoever reads the console."""
    text = _SECRET_FIELD.sub(_masked_field, text)
    return _KEY_SHAPED.sub(lambda m: (m[1] or m[2]) + MASK, text)


def _masked_field(match: re.Match) -> str:
    value = next(v for v in match.groups()[1:] if v is not None)
    if value.startswith("${") or _PLAIN.match(value):
        return match[0]  # a reference to the environment, a number, a switch: no secret
    quote = '"' if match[2] is not None else "'" if match[3] is not None else ""
    return f"{match[1]}{quote}{MASK}{quote}"


def _totals(row: UsageRow) -> dict:
    return {"requests": row.requests, "errors": row.errors, "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens, "reasoning_tokens": row.reasoning_tokens,
            "cost": row.cost}


def _in_flight() -> int:
    """Requests being answered by this process, every alias together (the metric's gauges)."""
    return int(sum(sample.value for family in metrics.IN_FLIGHT.collect()
                   for sample in family.samples))


def _route(route: Route, state_of, now: float) -> dict:
    return {"alias": route.alias, "description": route.description, "wildcard": route.wildcard,
            "groups": [{"strategy": group.strategy,
                        "targets": [_target(t, state_of(t.key), now) for t in group.targets]}
                       for group in route.groups]}


def _target(target, state: TargetState, now: float) -> dict:
    health = state.report(now)  # as /readyz tells it
    return {"name": target.name, "provider": target.provider.name, "model": target.model,
            "apis": sorted(target.dialects), "weight": target.weight, "breaker": health["state"],
            "latency_ms": health.get("ttfb_ms"), "in_flight": state.in_flight,
            "successes": state.successes, "errors": state.errors, "load": health.get("load"),
            "retry_in_s": health.get("retry_in_s")}
