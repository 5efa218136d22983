"""Admin endpoints, under /admin, for the master key (or the console's session): keys, usage, reload.

    POST   /admin/keys              create a key; the secret is in this answer only
    GET    /admin/keys              list keys (those in routes.yaml too), by name, a page at a time
    GET    /admin/keys/{key}        one key, by id or name
    PATCH  /admin/keys/{key}        change its name, models, limits, expiry, metadata
    DELETE /admin/keys/{key}        revoke it (its record and usage stay)
    GET    /admin/usage             usage, filtered and grouped (admin_usage.py)
    POST   /admin/reload            read the config again
    GET    /admin/overview, /admin/routes, /admin/config: the console's views (admin_views.py)
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.config import ConfigError
from gateway.config.load import digest_key
from gateway.config.schema import LimitsSpec
from gateway.console.session import cookie_token, require_session
from gateway.core.accept import SEND_JSON, read_headers, require_json
from gateway.core.auth import authenticate
from gateway.core.echo import echo
from gateway.core.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from gateway.core.keys import new_id, new_secret, visible_prefix
from gateway.endpoints import error_response, json_response
from gateway.store.base import KeyConflict, KeyRecord, StoreUnavailable

# A number and a unit, at most a couple of centuries: so every duration this accepts ends
# before year 9999, and the OpenAPI document can say exactly what is accepted.
EXPIRES_IN = r"^\s*([0-9]{1,10}\s*s|[0-9]{1,8}\s*m|[0-9]{1,6}\s*h|[0-9]{1,5}\s*d|[0-9]{1,4}\s*w)\s*$"
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z: later is no date
PAGE, MAX_PAGE = 100, 1000  # keys a page of GET /admin/keys: by default, at most


class KeyChange(BaseModel):
    """The body of POST and PATCH /admin/keys."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@:\-]+$")] | None = None
    models: list[Annotated[str, Field(min_length=1)]] | None = None
    limits: LimitsSpec | None = None
    expires_at: str | float | None = None  # ISO date or time, or a Unix timestamp
    expires_in: str | None = None  # 30d, 12h, 90m... (EXPIRES_IN)
    metadata: dict[str, str] | None = None


async def require_master(request: Request) -> None:
    """The master key by header (the CLI), or else the console's session cookie, which needs
    the session's CSRF token for a change (gateway/console/session.py)."""
    runtime = request.app.state.runtime
    if runtime.config.master_digest is None:
        raise Unauthorized("Admin endpoints are disabled: GATEWAY_MASTER_KEY is not set.",
                           code="admin_disabled")
    presented = read_headers(request.scope).key
    if presented is None and (token := cookie_token(request)) is not None:
        await require_session(request, token)
        return
    principal = await authenticate(runtime.config.master_digest, runtime.keyring, presented)
    if not principal.is_master:
        raise Forbidden("This endpoint needs the master key.", code="master_key_required")


def admin(handler):
    """Master key first; GatewayErrors and store outages answered in the OpenAI error shape."""
    async def endpoint(request: Request) -> Response:
        try:
            await require_master(request)
            return await handler(request)
        except GatewayError as error:
            return error_response(error)
        except StoreUnavailable:
            return error_response(ServiceUnavailable(
                "The key store is unreachable; try again shortly.", code="store_unavailable",
                headers={"retry-after": "1"}))
    endpoint.__name__ = handler.__name__
    return endpoint


@admin
async def reload_config(request: Request) -> Response:
    """POST /admin/reload: read the config files again; a bad config is refused, the old one stays."""
    try:
        config = await request.app.state.reloader.reload("POST /admin/reload")
    except ConfigError as error:
        # The message names each problem as `file:line: path: reason`; the same, structured,
        # is the overview's `config.last_reload` (an OpenAI error has no room for it).
        raise InvalidRequest(f"The new config was refused; the old one stays in force.\n{error}",
                             code="invalid_config") from None
    return json_response({"status": "reloaded", "config": config.digest,
                          "models": len(config.routes)})


@admin
async def create_key(request: Request) -> Response:
    change = await _body(request)
    if change.name is None:
        raise InvalidRequest("Missing required parameter: 'name'.", param="name",
                             code="missing_required_parameter")
    runtime = request.app.state.runtime
    if any(k.name == change.name for k in runtime.config.keys.values()):
        raise _conflict(change.name)
    secret = new_secret()
    now = time.time()
    record = KeyRecord(
        id=new_id(), name=change.name, digest=digest_key(secret), prefix=visible_prefix(secret),
        models=tuple(change.models or ("*",)), limits=_limits(change), created_at=now,
        expires_at=_expiry(change, now), metadata=change.metadata or {})
    try:
        await runtime.store.create_key(record)
    except KeyConflict:
        raise _conflict(change.name) from None
    view = _view(record) | {"key": secret}
    return json_response(view | _warnings(runtime.config, record), status=201)


@admin
async def list_keys(request: Request) -> Response:
    """A page of keys by name, after `after`: the store reads that page only (10,000 keys
    are not read to show 100); the few keys of routes.yaml are merged in by name."""
    runtime = request.app.state.runtime
    query = request.query_params
    limit = query_number(query, "limit", 1, MAX_PAGE) or PAGE
    after = query.get("after") or ""
    revoked = query.get("revoked") in ("1", "true", "yes")
    stored, more = await runtime.store.key_page(after, limit, revoked)
    declared = [k for k in runtime.config.keys.values()
                if k.name > after and (revoked or k.revoked_at is None)]
    keys = sorted(stored + declared, key=lambda k: k.name)
    more = more or len(keys) > limit
    keys = keys[:limit]
    used = await runtime.store.last_used([k.id for k in keys])
    return json_response({"object": "list", "data": [_view(k, used.get(k.id)) for k in keys],
                          "has_more": more, "next_after": keys[-1].name if more else None})


def query_number(query, param: str, least: int, most: int) -> int | None:
    """A whole-number query parameter within bounds; None when it is absent or empty."""
    value = query.get(param)
    if value is None or value == "":
        return None
    if not value.isdigit() or not least <= int(value) <= most:
        raise InvalidRequest(f"'{param}' takes a whole number from {least} to {most}.",
                             param=param, code="invalid_value")
    return int(value)


@admin
async def show_key(request: Request) -> Response:
    record = await _find(request)
    used = await request.app.state.runtime.store.last_used([record.id])
    return json_response(_view(record, used.get(record.id)))


@admin
async def update_key(request: Request) -> Response:
    record = await _find(request, writable=True)
    change = await _body(request)
    runtime = request.app.state.runtime
    if change.name is not None and any(k.name == change.name for k in runtime.config.keys.values()):
        raise _conflict(change.name)
    updated = replace(
        record,
        name=change.name if change.name is not None else record.name,
        models=tuple(change.models) if change.models is not None else record.models,
        limits=_merge_limits(record.limits, change) if change.limits is not None else record.limits,
        expires_at=_expiry(change, time.time()) if (change.expires_at is not None
                                                    or change.expires_in is not None)
        else record.expires_at,
        metadata=change.metadata if change.metadata is not None else record.metadata)
    try:
        await runtime.store.update_key(updated)
    except KeyConflict:
        raise _conflict(updated.name) from None
    runtime.keyring.forget(updated.id)
    return json_response(_view(updated) | _warnings(runtime.config, updated))


@admin
async def revoke_key(request: Request) -> Response:
    record = await _find(request, writable=True)
    runtime = request.app.state.runtime
    if record.revoked_at is None:
        record = replace(record, revoked_at=time.time())
        await runtime.store.update_key(record)
        runtime.keyring.forget(record.id)
    return json_response(_view(record))


async def _body(request: Request) -> KeyChange:
    require_json(request.headers.get("content-type", "").encode("latin-1") or None)
    raw = await request.body()
    try:
        return KeyChange.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            raise InvalidRequest(f"The request body is not valid JSON. {SEND_JSON}",
                                 code="invalid_json") from None
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequest(f"Invalid '{where}': {err['msg']}.", param=where or None,
                             code="invalid_value") from None


async def _find(request: Request, writable: bool = False) -> KeyRecord:
    wanted = request.path_params["key"]
    runtime = request.app.state.runtime
    for record in runtime.config.keys.values():
        if wanted in (record.id, record.name):
            if writable:
                raise Conflict(
                    f"Key '{record.name}' is declared in {runtime.config.source.name}: change or "
                    "remove it there (then reload); the admin API changes only keys it made.",
                    code="key_in_config")
            return record
    record = await runtime.store.find_key(wanted)
    if record is None:
        raise NotFound(f"No key '{echo(wanted)}'.", code="key_not_found")
    return record


def _conflict(name: str) -> Conflict:
    return Conflict(f"A key named '{name}' exists already.", code="key_exists")


def _limits(change: KeyChange) -> dict:
    return change.limits.model_dump(exclude_none=True) if change.limits else {}


def _merge_limits(current: dict, change: KeyChange) -> dict:
    """PATCH semantics: the fields given replace those of the key; null removes one."""
    assert change.limits is not None  # the caller merges only limits that were given
    merged = dict(current)
    for field, value in change.limits.model_dump(exclude_unset=True).items():
        if field == "models" and value is not None:
            models = dict(merged.get("models") or {})
            for alias, values in value.items():
                kept = {**models.get(alias, {}), **{k: v for k, v in values.items() if v is not None}}
                kept = {k: v for k, v in kept.items() if values.get(k, 0) is not None}
                models[alias] = kept
            merged["models"] = {a: v for a, v in models.items() if v}
        elif value is None:
            merged.pop(field, None)
        else:
            merged[field] = value
    return merged


def _expiry(change: KeyChange, now: float) -> float | None:
    if change.expires_in is not None:
        if not re.match(EXPIRES_IN, change.expires_in):
            raise InvalidRequest("expires_in takes a number and a unit: 90m, 12h, 30d, 2w (at "
                                 "most 10 digits of seconds, 8 of minutes, 6 of hours, 5 of "
                                 "days, 4 of weeks).", param="expires_in")
        match = _DURATION.match(change.expires_in.strip())
        assert match is not None  # EXPIRES_IN matched it
        return now + int(match.group(1)) * _UNITS[match.group(2)]
    value = change.expires_at
    if value is None or value == "":
        return None
    if isinstance(value, float | int):
        if not 0 <= value <= _LAST_SECOND:
            raise InvalidRequest("expires_at as a Unix timestamp is a number of seconds between "
                                 "0 and the end of year 9999.", param="expires_at")
        return float(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("expires_at takes an ISO date or time (2026-12-31, "
                             "2026-12-31T18:00:00Z) or a Unix timestamp.",
                             param="expires_at") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _view(record: KeyRecord, last_used: float | None = None) -> dict:
    """A key as the API shows it; `last_used_at` is Unix seconds (the console's contract)."""
    def when(t: float | None) -> str | None:
        return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")

    return {"id": record.id, "name": record.name, "prefix": record.prefix,
            "models": list(record.models), "limits": record.limits,
            "expires_at": when(record.expires_at), "created_at": when(record.created_at),
            "revoked_at": when(record.revoked_at), "source": record.source,
            "metadata": record.metadata, "last_used_at": last_used}


def _warnings(config, record: KeyRecord) -> dict:
    unknown = [m for m in record.models if not m.endswith("*") and config.route_for(m) is None]
    if not unknown:
        return {}
    return {"warnings": [f"model '{m}' is not served by the current config" for m in unknown]}

