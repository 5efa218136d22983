"""Prometheus metrics: what an operator's dashboard reads.

Every label value comes from the config (aliases, key names, targets) or from
a fixed set (status classes, reasons, limits), never from what a client sent,
so the number of series stays bounded. Labelled children are looked up once
and kept: `labels()` takes a lock and builds tuples on every call.

With `gateway serve --workers N` the workers share prometheus-client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the serve command), and
/metrics adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# From tens of milliseconds to minutes: LLM requests span all of it.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
NONE = "(none)"

REQUESTS = Counter("gateway_requests", "Chat requests answered, by model alias, target, key "
                   "and status class.", ["model", "target", "key", "status"])
DURATION = Histogram("gateway_request_duration_seconds", "Time from request to last byte.",
                     ["model"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("gateway_time_to_first_token_seconds",
                 "Streams: time from request to the first event sent to the client.",
                 ["model"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge("gateway_requests_in_flight", "Chat requests being answered, by model alias.",
                  ["model"], multiprocess_mode="livesum")
TOKENS = Counter("gateway_tokens", "Tokens used, by model alias, key and kind "
                 "(prompt, completion, reasoning).", ["model", "key", "kind"])
UPSTREAM = Counter("gateway_upstream_requests", "Attempts on upstream targets, by outcome "
                   "(ok, timeout, connect, http_429, http_5xx, http_4xx, refused, context, "
                   "broken, abandoned).",
                   ["target", "outcome"])
UPSTREAM_DURATION = Histogram("gateway_upstream_duration_seconds",
                              "Time of one attempt on a target, from sending to its last byte.",
                              ["target"], buckets=LATENCY_BUCKETS)
RETRIES = Counter("gateway_retries", "Attempts after a request's first, by model alias and why "
                  "the one before failed.", ["model", "reason"])
FALLBACKS = Counter("gateway_fallbacks", "Attempts that moved to a later group of targets, by "
                    "model alias and why.", ["model", "reason"])
RATE_LIMITED = Counter("gateway_rate_limited", "Requests refused by a limit, by model, key and "
                       "limit.", ["model", "key", "limit"])
BREAKER = Gauge("gateway_target_breaker_state", "Each target's circuit breaker: 0 closed, "
                "1 half open, 2 open.", ["target"], multiprocess_mode="max")
TARGET_IN_FLIGHT = Gauge("gateway_target_in_flight", "Attempts in flight on each target.",
                         ["target"], multiprocess_mode="livesum")
STORE_DURATION = Histogram("gateway_store_duration_seconds", "Store (Redis) calls, by operation.",
                           ["operation"], buckets=STORE_BUCKETS)
STORE_ERRORS = Counter("gateway_store_errors", "Store (Redis) calls that failed, by operation.",
                       ["operation"])
USAGE_DROPPED = Counter("gateway_usage_records_dropped",
                        "Usage records dropped because too many waited for the store.")
RELOADS = Counter("gateway_config_reloads", "Config reloads, by result (ok, refused).", ["result"])
CONFIG = Gauge("gateway_config_info", "The config in force: its hash is a label.", ["hash"],
               multiprocess_mode="max")

for _result in ("ok", "refused"):  # shown as 0 before the first reload, not as no data
    RELOADS.labels(_result)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_children: dict[tuple, object] = {}


def child(metric, *labels):
    """`metric.labels(*labels)`, looked up once."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def request_done(model: str | None, target: str | None, key: str | None, status: int,
                 seconds: float, ttft: float | None) -> None:
    model = model or NONE
    child(REQUESTS, model, target or NONE, key or NONE, f"{status // 100}xx").inc()
    child(DURATION, model).observe(seconds)
    if ttft is not None:
        child(TTFT, model).observe(ttft)


def count_tokens(model: str | None, key: str | None, prompt: int, completion: int,
                 reasoning: int) -> None:
    model, key = model or NONE, key or NONE
    child(TOKENS, model, key, "prompt").inc(prompt)
    child(TOKENS, model, key, "completion").inc(completion)
    if reasoning:
        child(TOKENS, model, key, "reasoning").inc(reasoning)


def breaker(target: str, state: str) -> None:
    child(BREAKER, target).set(BREAKER_STATES[state])


def config_loaded(digest: str, previous: str | None = None) -> None:
    if previous and previous != digest and not MULTIPROCESS:
        CONFIG.remove(previous)
    CONFIG.labels(digest).set(1)


def render() -> tuple[bytes, str]:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def forget_dead_workers() -> None:
    """Drop the live gauges of worker processes that are gone (a restart leaves them behind)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    from prometheus_client import multiprocess

    for name in os.listdir(directory):
        if name.startswith("gauge_live") and name.endswith(".db"):
            pid = name.rsplit("_", 1)[1][:-3]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
