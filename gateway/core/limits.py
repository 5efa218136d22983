"""Admit: check and reserve every limit of a request in one store call, or answer 429.

A request reserves what it is expected to use: one request, and the tokens its
client API's surface estimates (for chat: the messages, plus `max_tokens` or the
configured estimate).
When the answer ends, settlement (recorder.py) replaces the reservation with
the real usage. Limits come from the key, field by field over the defaults in
routes.yaml's `limits:`, and a key may limit single models too.

If the store cannot be reached: `fail-closed` answers 503; `fail-open` admits
against this process's own counters, logs it and counts it in a metric.
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass

from gateway import metrics
from gateway.apis.base import Surface
from gateway.config import Config, Route
from gateway.core.auth import Principal
from gateway.core.errors import RateLimited, ServiceUnavailable, Unauthorized
from gateway.logs import log
from gateway.store.base import Admission, Check, Store, StoreUnavailable, Verdict

LEASE_TTL = 60.0  # seconds; renewed while the request runs, so a crashed replica's slot frees
_FIELDS = ("requests_per_minute", "tokens_per_minute", "in_flight", "tokens_per_day",
           "tokens_per_month", "budget_per_month")
_WHAT = {"requests": "requests per minute", "tokens": "tokens per minute",
         "tokens_per_day": "tokens per day", "tokens_per_month": "tokens per month",
         "budget": "budget per month (dollars)", "in_flight": "requests in flight"}


@dataclass(slots=True)  # per request: not frozen (see store/base.py's Check)
class Admitted:
    key_id: str
    checks: tuple[Check, ...]
    headers: dict[str, str]
    prompt_estimate: int
    local: bool = False  # admitted by this process alone while the store was away


def _merged(defaults: dict, own: dict) -> dict:
    return {f: own.get(f, defaults.get(f)) for f in _FIELDS}


def checks_for(values: dict, scope: str, tokens: int, cost: float, now: float) -> list[Check]:
    today, month, day_end, month_end = _calendar(now)
    out = []
    if values["requests_per_minute"]:
        out.append(Check("requests", "rate", values["requests_per_minute"], 1, 60.0, scope=scope))
    if values["tokens_per_minute"]:
        out.append(Check("tokens", "rate", values["tokens_per_minute"], tokens, 60.0, scope=scope))
    if values["tokens_per_day"]:
        out.append(Check("tokens_per_day", "counter", values["tokens_per_day"], tokens,
                         bucket=today, ttl=day_end - now + 3600, scope=scope))
    if values["tokens_per_month"]:
        out.append(Check("tokens_per_month", "counter", values["tokens_per_month"], tokens,
                         bucket=month, ttl=month_end - now + 86400, scope=scope))
    if values["budget_per_month"]:
        out.append(Check("budget", "counter", values["budget_per_month"], cost, bucket=month,
                         ttl=month_end - now + 86400, scope=scope))
    if values["in_flight"]:
        out.append(Check("in_flight", "lease", values["in_flight"], scope=scope))
    return out


_calendar_cache: tuple[int, tuple] = (-1, ())


def _calendar(now: float) -> tuple[str, str, float, float]:
    """Today and this month (UTC) as bucket names, and when each ends; worked out once a minute."""
    global _calendar_cache
    minute = int(now // 60)
    if _calendar_cache[0] != minute:
        day = time.gmtime(now)
        day_end = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0)) + 86400
        days = calendar.monthrange(day.tm_year, day.tm_mon)[1]
        month_end = calendar.timegm((day.tm_year, day.tm_mon, 1, 0, 0, 0)) + days * 86400
        _calendar_cache = (minute, (time.strftime("%Y-%m-%d", day), time.strftime("%Y-%m", day),
                                    day_end, month_end))
    return _calendar_cache[1]


def duration(seconds: float) -> str:
    """As OpenAI writes resets: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


def rate_headers(verdict: Verdict) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, from the key's own requests and tokens limits."""
    headers = {}
    for outcome in verdict.outcomes:
        if outcome.scope or outcome.name not in ("requests", "tokens"):
            continue
        headers[f"x-ratelimit-limit-{outcome.name}"] = str(int(outcome.limit))
        headers[f"x-ratelimit-remaining-{outcome.name}"] = str(int(max(0, outcome.remaining)))
        headers[f"x-ratelimit-reset-{outcome.name}"] = duration(outcome.reset)
    return headers


class Limiter:
    def __init__(self, config: Config, store: Store, fallback: Store, keyring=None,
                 recorder=None) -> None:
        self.config = config
        self.store = store
        self.fallback = fallback  # this process's own counters, for fail-open
        self.keyring = keyring
        self.recorder = recorder
        self.defaults = config.limits
        self._warned_at = 0.0
        # Merged limits by (key id, model): (the key's record, key-wide, per-model); rebuilt
        # when the record object changes (an update makes a new one).
        self._merged: dict[tuple[str, str], tuple] = {}

    def _limits_for(self, key, alias: str) -> tuple[dict | None, dict | None]:
        cached = self._merged.get((key.id, alias))
        if cached is not None and cached[0] is key:
            return cached[1], cached[2]
        own = key.limits
        values = _merged(self.defaults, own)
        per_model = _merged((self.defaults.get("models") or {}).get(alias, {}),
                            (own.get("models") or {}).get(alias, {}))
        entry = (key, values if any(values.values()) else None,
                 per_model if any(per_model.values()) else None)
        if len(self._merged) > 50_000:
            self._merged.clear()
        self._merged[(key.id, alias)] = entry
        return entry[1], entry[2]

    async def admit(self, principal: Principal, route: Route, surface: Surface, payload: dict,
                    request_id: str) -> Admitted:
        """Check and reserve the key's limits for the request; its surface says what it may use."""
        prompt = surface.prompt_tokens(payload)
        if principal.key is None:  # the master key: no limits
            return Admitted("master", (), {}, prompt)
        values, per_model = self._limits_for(principal.key, route.alias)
        if values is None and per_model is None:
            return Admitted(principal.key_id, (), {}, prompt)
        completion = surface.completion_tokens(payload, self.defaults.get("completion_estimate",
                                                                          1024))
        tokens = prompt + completion
        cost = route.price.cost(prompt, completion) if route.price else 0.0
        now = time.time()
        checks = checks_for(values, "", tokens, cost, now) if values else []
        if per_model:
            checks += checks_for(per_model, route.alias, tokens, cost, now)
        for check in checks:
            if check.name != "requests" and check.kind != "lease" and check.cost > check.limit:
                raise RateLimited(
                    f"Request too large for {_WHAT[check.name]}"
                    + (f" of model '{check.scope}'" if check.scope else "")
                    + f": limit {_number(check.limit)}, requested {_number(check.cost)}. "
                    "Send a shorter prompt or a lower max_tokens.", code="request_too_large")
        admission = Admission(principal.key_id, request_id, tuple(checks), LEASE_TTL)
        local = False
        started = time.perf_counter()
        try:
            verdict = await self.store.admit(admission, now)
            metrics.child(metrics.STORE_DURATION, "admit").observe(time.perf_counter() - started)
        except StoreUnavailable as exc:
            metrics.child(metrics.STORE_ERRORS, "admit").inc()
            leases = [(principal.key_id, c.scope, request_id) for c in checks if c.kind == "lease"]
            if leases and self.recorder is not None:  # the store may have taken them all the same
                self.recorder.release(leases)
            if self.config.store.on_failure == "fail-closed":
                raise ServiceUnavailable(
                    "Rate limits cannot be checked right now; try again shortly.",
                    code="store_unavailable", headers={"retry-after": "1"}) from None
            self._warn(exc)
            verdict = await self.fallback.admit(admission, now)
            local = True
        if verdict.key_invalid:
            if self.keyring is not None:
                self.keyring.forget(principal.key_id)
            raise Unauthorized("This API key was revoked or expired.", code="revoked_api_key")
        headers = rate_headers(verdict)
        if not verdict.allowed:
            assert verdict.denied is not None  # a refusal names the check that refused
            check = verdict.denied
            metrics.child(metrics.RATE_LIMITED, route.alias, principal.name, check.name).inc()
            wait = max(1, math.ceil(verdict.retry_after))
            scope = f" for model '{check.scope}'" if check.scope else ""
            raise RateLimited(
                f"Rate limit reached for {_WHAT[check.name]}{scope}: limit "
                f"{_number(check.limit)}. Try again in {duration(verdict.retry_after)}.",
                headers={**headers, "retry-after": str(wait)})
        return Admitted(principal.key_id, tuple(checks), headers, prompt, local)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:  # once every 10 s while it lasts
            self._warned_at = now
            log.warning("store unreachable: admitting against this process's own counters "
                        "(fail-open)", extra={"fields": {"reason": str(exc)}})


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
