"""Prometheus metrics: what an operator's dashboard reads.

Every label value comes from the config (aliases, key names, targets) or from
a fixed set (status classes, reasons, limits), never from what a client sent,
so the number of series stays bounded. Labelled children are looked up once
and kept.

One process keeps its metrics as plain numbers (`_Family`), exposed through
prometheus-client at scrape time. With `gateway serve --workers N` the workers
use prometheus-client's own metrics and their multiprocess files
(PROMETHEUS_MULTIPROC_DIR, set by the serve command), and /metrics adds them up.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Literal, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import Counter as SharedCounter
from prometheus_client import Gauge as SharedGauge
from prometheus_client import Histogram as SharedHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# From tens of milliseconds to minutes: LLM requests span all of it.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
NONE = "(none)"


class _Number:
    """A counter's or gauge's value in one process."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class _Buckets:
    """A histogram's counts in one process; made cumulative only when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1


class _Family:
    """A metric of a single-process gateway: plain numbers, read when scraped.

    prometheus-client's own metrics take a lock and check their state on every
    update, a dozen times per request; here every update comes from the event
    loop's thread, so a child is a number and an update an addition.
    """

    def __init__(self, kind: str, name: str, documentation: str, labelnames=(),
                 buckets: tuple[float, ...] = ()) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], _Number | _Buckets] = {}
        if not self.labelnames:
            self.labels()  # shown as 0 from the start, as prometheus-client does
        REGISTRY.register(self)

    def labels(self, *values: str) -> _Number | _Buckets:
        found = self._children.get(values)
        if found is None:
            found = self._children[values] = (_Buckets(self.buckets) if self.kind == "histogram"
                                              else _Number())
        return found

    def remove(self, *values: str) -> None:
        self._children.pop(values, None)

    def inc(self, amount: float = 1) -> None:
        cast(_Number, self.labels()).inc(amount)  # a counter's or gauge's child

    def observe(self, value: float) -> None:
        cast(_Buckets, self.labels()).observe(value)  # a histogram's child

    def describe(self):
        return [self._empty()]

    def _empty(self):
        family = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
                  "histogram": HistogramMetricFamily}[self.kind]
        return family(self.name, self.documentation, labels=self.labelnames)

    def collect(self):
        family = self._empty()
        for values, child in list(self._children.items()):
            if isinstance(child, _Buckets):  # a histogram's
                running, cumulative = 0, []
                for bound, count in zip((*self.buckets, float("inf")), child.counts, strict=True):
                    running += count
                    cumulative.append((floatToGoString(bound), running))
                family.add_metric(list(values), cumulative, child.sum)
            else:
                family.add_metric(list(values), child.value)
        yield family


def counter(name: str, documentation: str, labelnames=()):
    if MULTIPROCESS:
        return SharedCounter(name, documentation, labelnames)
    return _Family("counter", name, documentation, labelnames)


def gauge(name: str, documentation: str, labelnames=(),
          multiprocess_mode: Literal["all", "max", "livesum"] = "all"):  # prometheus-client's
    if MULTIPROCESS:
        return SharedGauge(name, documentation, labelnames, multiprocess_mode=multiprocess_mode)
    return _Family("gauge", name, documentation, labelnames)


def histogram(name: str, documentation: str, labelnames=(), buckets=()):
    if MULTIPROCESS:
        return SharedHistogram(name, documentation, labelnames, buckets=buckets)
    return _Family("histogram", name, documentation, labelnames, buckets)


REQUESTS = counter("gateway_requests", "Requests answered, by client API (chat, embeddings, "
                   "completions), model alias, target, key and status class.",
                   ["api", "model", "target", "key", "status"])
DURATION = histogram("gateway_request_duration_seconds", "Time from request to last byte.",
                     ["model"], buckets=LATENCY_BUCKETS)
TTFT = histogram("gateway_time_to_first_token_seconds",
                 "Streams: time from request to the first event sent to the client.",
                 ["model"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = gauge("gateway_requests_in_flight", "Requests being answered, by model alias.",
                  ["model"], multiprocess_mode="livesum")
TOKENS = counter("gateway_tokens", "Tokens used, by client API, model alias, key and kind "
                 "(prompt, completion, reasoning).", ["api", "model", "key", "kind"])
UPSTREAM = counter("gateway_upstream_requests", "Attempts on upstream targets, by outcome "
                   "(ok, timeout, connect, http_429, http_5xx, http_4xx, refused, context, "
                   "broken, abandoned).",
                   ["target", "outcome"])
UPSTREAM_DURATION = histogram("gateway_upstream_duration_seconds",
                              "Time of one attempt on a target, from sending to its last byte.",
                              ["target"], buckets=LATENCY_BUCKETS)
RETRIES = counter("gateway_retries", "Attempts after a request's first, by model alias and why "
                  "the one before failed.", ["model", "reason"])
FALLBACKS = counter("gateway_fallbacks", "Attempts that moved to a later group of targets, by "
                    "model alias and why.", ["model", "reason"])
RATE_LIMITED = counter("gateway_rate_limited", "Requests refused by a limit, by model, key and "
                       "limit.", ["model", "key", "limit"])
BREAKER = gauge("gateway_target_breaker_state", "Each target's circuit breaker: 0 closed, "
                "1 half open, 2 open.", ["target"], multiprocess_mode="max")
TARGET_IN_FLIGHT = gauge("gateway_target_in_flight", "Attempts in flight on each target.",
                         ["target"], multiprocess_mode="livesum")
STORE_DURATION = histogram("gateway_store_duration_seconds", "Store (Redis) calls, by operation.",
                           ["operation"], buckets=STORE_BUCKETS)
STORE_ERRORS = counter("gateway_store_errors", "Store (Redis) calls that failed, by operation.",
                       ["operation"])
USAGE_DROPPED = counter("gateway_usage_records_dropped",
                        "Usage records dropped because too many waited for the store.")
LOOP_LAG = histogram("gateway_event_loop_lag_seconds", "How late the event loop ran a timer, "
                     "sampled twice a second.", buckets=LAG_BUCKETS)
RELOADS = counter("gateway_config_reloads", "Config reloads, by result (ok, refused).", ["result"])
CONFIG = gauge("gateway_config_info", "The config in force: its hash is a label.", ["hash"],
               multiprocess_mode="max")

for _result in ("ok", "refused"):  # shown as 0 before the first reload, not as no data
    RELOADS.labels(_result)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_children: dict[tuple, object] = {}
# Every request's series, found with one lookup of its labels: requests and duration;
# prompt and completion tokens.
_done: dict[tuple, tuple] = {}
_counted: dict[tuple, tuple] = {}


def child(metric, *labels):
    """`metric.labels(*labels)`, looked up once."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def request_done(api: str, model: str | None, target: str | None, key: str | None, status: int,
                 seconds: float, ttft: float | None) -> None:
    labels = (api, model or NONE, target or NONE, key or NONE, status // 100)
    found = _done.get(labels)
    if found is None:
        found = _done[labels] = (
            REQUESTS.labels(*labels[:4], f"{labels[4]}xx"), DURATION.labels(labels[1]))
    found[0].inc()
    found[1].observe(seconds)
    if ttft is not None:
        child(TTFT, labels[1]).observe(ttft)


def count_tokens(api: str, model: str | None, key: str | None, prompt: int, completion: int,
                 reasoning: int) -> None:
    labels = (api, model or NONE, key or NONE)
    found = _counted.get(labels)
    if found is None:
        found = _counted[labels] = (TOKENS.labels(*labels, "prompt"),
                                    TOKENS.labels(*labels, "completion"))
    found[0].inc(prompt)
    found[1].inc(completion)
    if reasoning:
        child(TOKENS, *labels, "reasoning").inc(reasoning)


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
