"""Settle: after the client has its answer, record what happened: metrics and the request's log line."""

from __future__ import annotations

import time

from gateway import metrics
from gateway.exchange import Exchange
from gateway.logs import log


def settle(ex: Exchange) -> None:
    seconds = time.perf_counter() - ex.started
    metrics.observe(ex.alias, ex.status, seconds, ex.ttft)
    usage = ex.usage or {}
    fields = {
        "key": ex.key_name, "model": ex.alias, "target": ex.target, "stream": ex.stream,
        "status": ex.status, "attempts": ex.attempts,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "latency_ms": round(seconds * 1000, 1),
        "ttfb_ms": round(ex.ttft * 1000, 1) if ex.ttft is not None else None,
    }
    if ex.failures:
        fields["failures"] = ex.failures
    if ex.error:
        fields["error"] = ex.error
    log.info("request", extra={"fields": fields})
