"""Plan: turn the model alias a client sent into the route that serves it, for this principal."""

from __future__ import annotations

from gateway.auth import Principal
from gateway.config import Config, Route
from gateway.errors import NotFound

_LISTED = 20


def visible_models(config: Config, principal: Principal) -> list[str]:
    return [alias for alias in config.routes if principal.allows(alias)]


def resolve(config: Config, alias: str, principal: Principal) -> Route:
    """The route for `alias`; a 404 naming the models this key may use if there is none.

    A model the key may not use answers exactly like one that does not exist,
    so a key cannot discover what else the gateway serves.
    """
    route = config.routes.get(alias)
    if route is not None and principal.allows(alias):
        return route
    available = visible_models(config, principal)
    listed = ", ".join(available[:_LISTED]) or "none"
    if len(available) > _LISTED:
        listed += f" and {len(available) - _LISTED} more (GET /v1/models lists them)"
    raise NotFound(
        f"The model '{alias[:200]}' does not exist or you do not have access to it. "
        f"Models available to this key: {listed}.",
        param="model", code="model_not_found")
