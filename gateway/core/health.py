"""What this gateway knows about each target right now: breaker state, load, latency.

One `TargetState` per target key (`provider/model`), kept across config reloads
so a reload neither forgets a failing target nor resets the balancing. Every
number here is this process's own view; nothing on the request path waits for
the network to learn it.

The circuit breaker: `failures` failures within `window` seconds open it for
`cooldown` seconds; then it is half-open and lets one trial request through,
whose success closes it and whose failure opens it again. A trial that ends
any other way (the client left, a 429, a 4xx) frees the slot for the next
one, or the target would stay half-open, and unused, for good. A 429 is not a
failure: the target is rested for its `Retry-After` instead.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from gateway import metrics
from gateway.config import Breaker
from gateway.config.compiled import LoadWeights

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
EWMA_WEIGHT = 0.3  # weight of the newest time-to-first-byte sample


@dataclass(slots=True)
class Load:
    """A server's load from its metrics (vLLM's /metrics), and when it was read."""

    running: float
    waiting: float
    kv_cache: float  # 0..1
    read_at: float

    def score(self, sent_since: int, weights: LoadWeights) -> float:
        """Lower is better, weighed as the profile says; a request sent since counts as running."""
        return (weights.running * (self.running + sent_since) + weights.waiting * self.waiting
                + weights.kv_cache * self.kv_cache)


class TargetState:
    __slots__ = ("key", "state", "failures", "opened_at", "reopen_at", "trial", "rest_until",
                 "in_flight", "ewma_ttfb", "load", "sent_since_load", "successes", "errors")

    def __init__(self, key: str) -> None:
        self.key = key
        self.state = CLOSED
        self.failures: deque[float] = deque()
        self.opened_at = 0.0
        self.reopen_at = 0.0
        self.trial: object | None = None  # the half-open trial request that is out
        self.rest_until = 0.0  # honouring the upstream's Retry-After
        self.in_flight = 0
        self.ewma_ttfb: float | None = None
        self.load: Load | None = None
        self.sent_since_load = 0  # requests sent after the last /metrics reading
        self.successes = 0
        self.errors = 0

    def available(self, now: float) -> bool:
        if now < self.rest_until:
            return False
        if self.state == OPEN:
            if now < self.reopen_at:
                return False
            self._become(HALF_OPEN)
            self.trial = None
        if self.state == HALF_OPEN:
            return self.trial is None
        return True

    def ready_in(self, now: float) -> float:
        """Seconds until this target may be tried again."""
        wait = self.rest_until - now
        if self.state == OPEN:
            wait = max(wait, self.reopen_at - now)
        return max(wait, 0.0)

    def begin(self) -> object:
        """An attempt starts; its token goes back to `end`."""
        self.in_flight += 1
        metrics.child(metrics.TARGET_IN_FLIGHT, self.key).inc()
        self.sent_since_load += 1
        attempt = object()
        if self.state == HALF_OPEN:
            self.trial = attempt
        return attempt

    def end(self, attempt: object) -> None:
        """An attempt is over, however it ended: if it was the trial, the slot is free."""
        self.in_flight -= 1
        metrics.child(metrics.TARGET_IN_FLIGHT, self.key).dec()
        if self.trial is attempt:
            self.trial = None

    def succeeded(self, ttfb: float | None) -> None:
        self.successes += 1
        if self.state != CLOSED:
            self._become(CLOSED)
            self.failures.clear()
        if ttfb is not None:
            previous = self.ewma_ttfb
            self.ewma_ttfb = ttfb if previous is None else (
                EWMA_WEIGHT * ttfb + (1 - EWMA_WEIGHT) * previous)

    def failed(self, breaker: Breaker, now: float) -> None:
        self.errors += 1
        if self.state == HALF_OPEN:
            self._open(breaker, now)
            return
        self.failures.append(now)
        while self.failures and self.failures[0] < now - breaker.window:
            self.failures.popleft()
        if len(self.failures) >= breaker.failures:
            self._open(breaker, now)

    def probe_failed(self, breaker: Breaker, now: float) -> None:
        if self.state != OPEN:
            self._open(breaker, now)

    def probe_passed(self) -> None:
        """The server answers its health check: if open, let a trial request through now."""
        if self.state == OPEN:
            self._become(HALF_OPEN)
            self.trial = None

    def rest(self, seconds: float, now: float) -> None:
        """The upstream asked us to wait (429 with Retry-After)."""
        self.rest_until = max(self.rest_until, now + seconds)

    def _become(self, state: str) -> None:
        self.state = state
        metrics.breaker(self.key, state)

    def _open(self, breaker: Breaker, now: float) -> None:
        self._become(OPEN)
        self.opened_at = now
        self.reopen_at = now + breaker.cooldown
        self.trial = None
        self.failures.clear()

    def report(self, now: float) -> dict:
        """For /readyz."""
        state = self.state
        if state == OPEN and now >= self.reopen_at:
            state = HALF_OPEN
        out: dict = {"state": state, "in_flight": self.in_flight, "successes": self.successes,
                     "errors": self.errors}
        if state == OPEN:
            out["retry_in_s"] = round(self.reopen_at - now, 1)
        if now < self.rest_until:
            out["resting_s"] = round(self.rest_until - now, 1)
        if self.ewma_ttfb is not None:
            out["ttfb_ms"] = round(self.ewma_ttfb * 1000, 1)
        if self.load is not None:
            out["load"] = {"running": self.load.running, "waiting": self.load.waiting,
                           "kv_cache": round(self.load.kv_cache, 3),
                           "age_s": round(time.monotonic() - self.load.read_at, 1)}
        return out


class Health:
    """Every target's state, by key; survives reloads."""

    def __init__(self) -> None:
        self.targets: dict[str, TargetState] = {}
        self.round_robin: dict[tuple[str, str], float] = {}  # smooth weighted round robin

    def state(self, key: str) -> TargetState:
        found = self.targets.get(key)
        if found is None:
            found = self.targets[key] = TargetState(key)
        return found
