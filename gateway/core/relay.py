"""Relay: try the route's targets in order until one answers, and pass its answer on.

Each attempt (attempt.py) translates the client's request again for its target,
in the API the surface's codec picks for it. A target that cannot answer
(unreachable, timed out, 429, 5xx, refused our credentials, speaks no API the
request can be sent in, or whose dialect refuses a parameter) moves the
request to the next one. A refusal that is the client's fault (400, 422...) is
relayed as is: another target would refuse it too. This loop is the same for
every client API: the plan, the retry budget and backoff, the breaker and the
metrics.
"""

from __future__ import annotations

import asyncio
import math
import time

from gateway import metrics
from gateway.apis.base import Surface, Unspoken
from gateway.config import Route
from gateway.core.attempt import Failure, attempt
from gateway.core.echo import echo
from gateway.core.errors import (
    GatewayError,
    NoHealthyTarget,
    RateLimited,
    UpstreamClientError,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.core.exchange import Exchange
from gateway.core.route import Plan
from gateway.runtime import Runtime


async def relay(ex: Exchange, surface: Surface, route: Route, payload: dict, runtime: Runtime,
                send) -> None:
    """Answer the request from the route's targets; raise the error to answer if none can."""
    route = route.for_model(payload["model"])
    plan = Plan(route, runtime.health, lambda affinity: surface.session(affinity, payload))
    breaker = runtime.config.breaker
    failures: list[Failure] = []
    why = None  # why the last attempt failed: the reason of the next one
    group = 0
    while True:
        target = plan.next()
        if target is None:
            if failures and all(f.rejection is not None for f in failures):
                break  # each target refused the request as written: it would again
            wait = plan.backoff()
            if wait is None:
                break
            await asyncio.sleep(wait)
            continue
        if why is not None:
            metrics.child(metrics.RETRIES, route.alias, why).inc()
            if plan.group > group:
                metrics.child(metrics.FALLBACKS, route.alias, why).inc()
        group = plan.group
        ex.attempts += 1
        state = runtime.health.state(target.key)
        slot = state.begin()
        started = time.perf_counter()
        outcome = "ok"
        try:
            try:
                codec = surface.codec(target)
            except Unspoken as unspoken:
                raise Failure(target, unspoken.message, rejection=unspoken) from None
            ttfb = await attempt(ex, route, target, codec, payload,
                                 runtime.transports[target.provider.name], send)
            if ex.error is not None:
                outcome = "broken"  # after its first byte
        except asyncio.CancelledError:
            outcome = "abandoned"  # the client left
            raise
        except Failure as failure:
            now = time.monotonic()
            if failure.retry_after is not None:  # a 429 that said how long to wait
                state.rest(failure.retry_after, now)
            elif failure.connect and target.provider.backend is not None:
                state.probe_failed(breaker, now)  # a local replica that is gone: out at once
            elif failure.counts_against_target:
                state.failed(breaker, now)
            failures.append(failure)
            ex.failures.append(str(failure))
            outcome = why = failure.reason
            continue
        except UpstreamClientError as error:
            if error.context_overflow and plan.context_overflow(target):
                ex.failures.append(f"{target.name}: prompt too long for its context")
                outcome = why = "context"
                continue
            outcome = "http_4xx"
            raise
        finally:
            state.end(slot)
            metrics.child(metrics.UPSTREAM, target.key, outcome).inc()
            metrics.child(metrics.UPSTREAM_DURATION, target.key).observe(
                time.perf_counter() - started)
        ex.target_key = target.key
        if ex.error is None:
            state.succeeded(ttfb)
        else:  # the stream broke after its first byte
            state.failed(breaker, time.monotonic())
        return
    if not failures:
        wait = plan.ready_in()
        raise NoHealthyTarget(
            f"No target of model '{echo(payload['model'])}' is available now: each has "
            "failed recently or asked to be left alone; try again shortly.",
            headers={"retry-after": str(max(1, math.ceil(wait)))})
    raise _give_up(payload["model"], failures, surface.name)


def _give_up(model: str, failures: list[Failure], api: str) -> GatewayError:
    rejections = [f.rejection for f in failures if f.rejection is not None]
    if failures and len(rejections) == len(failures):
        unspoken = [r.detail for r in rejections if isinstance(r, Unspoken)]
        if len(unspoken) == len(rejections):  # the model cannot serve this API at all
            return Unspoken(f"Model '{echo(model)}' cannot serve {api}: none of its targets "
                            f"speaks the {api} API ({'; '.join(dict.fromkeys(unspoken))}).",
                            param="model")
        return rejections[0]  # every target refuses the request as written: the client's to fix
    detail = "; ".join(str(f) for f in failures)
    message = f"No upstream could answer for model '{echo(model)}': {detail}"
    if failures and all(f.status == 429 for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        headers = {"retry-after": str(int(min(waits) + 0.999))} if waits else None
        return RateLimited(message, code="upstream_rate_limited", headers=headers)
    if failures and all(f.timeout for f in failures):
        return UpstreamTimeout(message)
    return UpstreamError(message)
