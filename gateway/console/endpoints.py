"""/console/session: sign in with the master key, read the session, sign out.

    POST   /console/session   {"key": "<master key>"} -> the cookie, {"csrf", "expires_at"}
    GET    /console/session   {"csrf", "expires_at"} for a live cookie, else 401
    DELETE /console/session   (X-CSRF-Token) -> 204, the session revoked, the cookie cleared
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict, deque

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.config.load import digest_key
from gateway.core.accept import SEND_JSON, require_json
from gateway.core.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from gateway.endpoints import error_response, json_response
from gateway.store.base import StoreUnavailable

from . import session as sessions

# Wrong master keys tried per client address: past WRONG_TRIES in WRONG_WINDOW seconds,
# sign-in answers 429 until the oldest try is that old. Per process, at most ADDRESSES kept.
WRONG_TRIES = 10
WRONG_WINDOW = 60.0
ADDRESSES = 10_000
NO_STORE = {"cache-control": "no-store"}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=4096)


class WrongTries:
    """Recent wrong sign-ins per client address, to slow guessing (the master key should be
    long enough that guessing is hopeless anyway)."""

    def __init__(self, limit: int = WRONG_TRIES, window: float = WRONG_WINDOW,
                 kept: int = ADDRESSES) -> None:
        self.limit, self.window, self.kept = limit, window, kept
        self.tries: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str, now: float) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        tries = self.tries.get(address)
        while tries and tries[0] <= now - self.window:
            tries.popleft()
        if not tries or len(tries) < self.limit:
            return 0.0
        return tries[0] + self.window - now

    def add(self, address: str, now: float) -> None:
        self.tries.setdefault(address, deque()).append(now)
        self.tries.move_to_end(address)
        while len(self.tries) > self.kept:
            self.tries.popitem(last=False)


WRONG = WrongTries()


def _answering(handler):
    """GatewayErrors and store outages as OpenAI-shaped errors, never cached."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreUnavailable:
            error: GatewayError = ServiceUnavailable(
                "The session store is unreachable; try again shortly.",
                code="store_unavailable", headers={"retry-after": "1"})
        except GatewayError as raised:
            error = raised
        response = error_response(error)
        response.headers.update(NO_STORE)
        if error.status == 401 and sessions.cookie_token(request):
            _clear_cookie(response, request)  # a dead session's cookie goes too
        return response
    endpoint.__name__ = handler.__name__
    return endpoint


@_answering
async def sign_in(request: Request) -> Response:
    runtime = request.app.state.runtime
    master = runtime.config.master_digest
    if master is None:
        raise Unauthorized("The console is disabled: GATEWAY_MASTER_KEY is not set.",
                           code="admin_disabled")
    address = request.client.host if request.client else ""
    now = time.monotonic()
    wait = WRONG.wait(address, now)
    if wait > 0:
        raise RateLimited("Too many wrong keys from this address; try again later.",
                          code="too_many_sign_ins",
                          headers={"retry-after": str(int(wait) + 1)})
    presented = await _key(request)
    if not hmac.compare_digest(digest_key(presented), master):
        WRONG.add(address, now)
        raise Unauthorized("That is not the master key.")
    token, session = await sessions.open_session(runtime)
    response = _session_answer(session)
    response.set_cookie(sessions.COOKIE, token, max_age=runtime.config.console_session_ttl,
                        path="/", secure=sessions.scheme_of(request) == "https",
                        httponly=True, samesite="strict")
    return response


@_answering
async def show(request: Request) -> Response:
    session = await sessions.find_session(request.app.state.runtime,
                                          sessions.cookie_token(request))
    if session is None:
        raise Unauthorized("No console session: sign in with the master key.",
                           code="invalid_session")
    return _session_answer(session)


@_answering
async def sign_out(request: Request) -> Response:
    token = sessions.cookie_token(request) or ""
    await sessions.require_session(request, token)  # needs the CSRF token: it is a change
    await sessions.close_session(request.app.state.runtime, token)
    response = Response(status_code=204, headers=NO_STORE)
    _clear_cookie(response, request)
    return response


def _session_answer(session: sessions.Session) -> Response:
    return json_response({"csrf": session.csrf, "expires_at": session.expires_at},
                         headers=NO_STORE)


def _clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict",
                           secure=sessions.scheme_of(request) == "https")


async def _key(request: Request) -> str:
    require_json(request.headers.get("content-type", "").encode("latin-1") or None)
    try:
        return SignIn.model_validate_json(await request.body() or b"{}").key
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            raise InvalidRequest(f"The request body is not valid JSON. {SEND_JSON}",
                                 code="invalid_json") from None
        raise InvalidRequest("The body is {\"key\": \"<the master key>\"}.", param="key",
                             code="invalid_value") from None
