"""Prometheus metrics. Label values come only from config (aliases), never from raw client input."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()

# From tens of milliseconds to minutes: LLM requests span all of it.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

REQUESTS = Counter("gateway_requests", "Chat requests answered, by model alias and status class.",
                   ["model", "status"])
DURATION = Histogram("gateway_request_duration_seconds", "Time from request to last byte.",
                     ["model"], buckets=LATENCY_BUCKETS)
TTFB = Histogram("gateway_time_to_first_byte_seconds",
                 "Time from request to the first byte of the answer sent to the client.",
                 ["model"], buckets=LATENCY_BUCKETS)

TOKENS = Counter("gateway_tokens", "Tokens used, by model alias and kind (prompt, completion).",
                 ["model", "kind"])
RATE_LIMITED = Counter("gateway_rate_limited", "Requests refused by a limit, by model and limit.",
                       ["model", "limit"])
STORE_ERRORS = Counter("gateway_store_errors", "Store (Redis) calls that failed, by operation.",
                       ["operation"])
USAGE_DROPPED = Counter("gateway_usage_records_dropped",
                        "Usage records dropped because too many waited for the store.")

UNKNOWN = "(unrouted)"

# Labelled children, looked up once per (alias, status class): `labels()` takes a lock and
# builds tuples on every call. Aliases come from config, so this stays small.
_children: dict[tuple[str, int], tuple] = {}


def observe(alias: str | None, status: int, seconds: float, ttfb: float | None) -> None:
    key = (alias or UNKNOWN, status // 100)
    children = _children.get(key)
    if children is None:
        model = key[0]
        children = _children[key] = (REQUESTS.labels(model, f"{key[1]}xx"),
                                     DURATION.labels(model), TTFB.labels(model))
    children[0].inc()
    children[1].observe(seconds)
    if ttfb is not None:
        children[2].observe(ttfb)


_token_children: dict[str | None, tuple] = {}


def count_tokens(alias: str | None, prompt: int, completion: int) -> None:
    children = _token_children.get(alias)
    if children is None:
        model = alias or UNKNOWN
        children = _token_children[alias] = (TOKENS.labels(model, "prompt"),
                                             TOKENS.labels(model, "completion"))
    children[0].inc(prompt)
    children[1].inc(completion)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
