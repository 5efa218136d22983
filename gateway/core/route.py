"""Plan: the route for the model a client asked for, and the order its targets are tried in.

A request tries its route's groups in order. Within a group the strategy
(balance.py) picks among the targets that are available (breaker not open, not
resting after a 429) and not yet tried by this request; when a group has none
left, the next group is the fallback. Once every target was tried, a request
with retry budget left tries them again after a backoff. After an upstream said
the prompt is too long, only targets that declare a larger context remain.
"""

from __future__ import annotations

import time

from gateway.config import Config, Route, Target
from gateway.core.auth import Principal
from gateway.core.balance import Session, pick
from gateway.core.echo import echo
from gateway.core.errors import NotFound
from gateway.core.health import Health

_LISTED = 20


def visible_models(config: Config, principal: Principal) -> list[str]:
    return [alias for alias in config.routes if principal.allows(alias)]


def resolve(config: Config, model: str, principal: Principal) -> Route:
    """The route for `model`; a 404 naming the models this key may use if there is none.

    A model the key may not use answers exactly like one that does not exist,
    so a key cannot discover what else the gateway serves.
    """
    route = config.route_for(model)
    if route is not None and principal.allows(model):
        return route
    available = visible_models(config, principal)
    listed = ", ".join(available[:_LISTED]) or "none"
    if len(available) > _LISTED:
        listed += f" and {len(available) - _LISTED} more (GET /v1/models lists them)"
    raise NotFound(
        f"The model '{echo(model)}' does not exist or you do not have access to it. "
        f"Models available to this key: {listed}.",
        param="model", code="model_not_found")


class Plan:
    """The attempts of one request, chosen one at a time as earlier ones fail."""

    __slots__ = ("route", "health", "session", "tried", "attempts", "repeats", "min_context",
                 "group")

    def __init__(self, route: Route, health: Health, session: Session | None = None) -> None:
        self.route = route
        self.health = health
        self.session = session  # the request's session key, for groups with affinity
        self.tried: set[str] = set()
        self.attempts = 0
        self.repeats = 0  # rounds over targets already tried
        self.min_context: int | None = None  # after a context overflow: larger than this only
        self.group = -1  # the group of the last target picked

    def next(self) -> Target | None:
        """The next target to try, or None if none is available now."""
        if self.attempts >= self.route.retry.attempts:
            return None
        now = time.monotonic()
        for index, group in enumerate(self.route.groups):
            candidates = [t for t in group.targets if t.key not in self.tried
                          and self._fits(t) and self.health.state(t.key).available(now)]
            if candidates:
                target = pick(group, f"{self.route.alias}#{index}", candidates, self.health,
                              self.session)
                self.group = index
                self.tried.add(target.key)
                self.attempts += 1
                return target
        return None

    def backoff(self) -> float | None:
        """Seconds to wait before trying targets again, or None if this request should stop."""
        if self.attempts >= self.route.retry.attempts or not self.tried:
            return None
        now = time.monotonic()
        if not any(self._fits(t) and self.health.state(t.key).available(now)
                   for t in self.route.attempts()):
            return None
        retry = self.route.retry
        self.tried.clear()
        self.repeats += 1
        return min(retry.backoff * 2 ** (self.repeats - 1), retry.max_backoff)

    def context_overflow(self, target: Target) -> bool:
        """The upstream said the prompt is too long: keep only targets declaring more context.

        False (relay the upstream's error) when no target declares more."""
        self.min_context = max(self.min_context or 0, target.context_window or 0)
        return any(self._fits(t) for t in self.route.attempts() if t.key not in self.tried)

    def ready_in(self) -> float:
        """Seconds until some target of the route may be tried again."""
        now = time.monotonic()
        waits = [self.health.state(t.key).ready_in(now) for t in self.route.attempts()]
        return min(waits, default=1.0)

    def _fits(self, target: Target) -> bool:
        if self.min_context is None:
            return True
        return target.context_window is not None and target.context_window > self.min_context
