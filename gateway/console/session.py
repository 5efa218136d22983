"""Console sessions: the master key exchanged once for a cookie, kept in the store.

Why the store and not a signed cookie: logout must end a session on every
replica at once, and a store record deleted is gone everywhere, where a signed
cookie would need a revocation list shared by the replicas anyway. A session is
one of the store's TTL records (those the Responses API keeps): its id is the
SHA-256 of the cookie's token, so the store never holds a token that works; its
owner is derived from the master key's digest, so a new master key ends every
session made with the old one. The store's TTL drops it, and the expiry in the
record is checked again here, so an expired session is refused even where a
store keeps it a little longer.

A change made with the cookie needs the session's CSRF token in `X-CSRF-Token`
and, when the browser says where the request comes from (`Origin`,
`Sec-Fetch-Site`), the gateway's own origin: SameSite=Strict alone would stop a
cross-site form in today's browsers, this stops it in any client.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

import orjson
from starlette.requests import Request

from gateway.core.errors import Forbidden, Unauthorized

COOKIE = "gateway_console"
CSRF_HEADER = "x-csrf-token"
RECORD_BYTES = 1024  # a session record is ~200 bytes
SAFE_METHODS = frozenset({"GET", "HEAD"})
_SAME_SITE = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of our own page


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires_at: int  # Unix seconds


def _owner(master_digest: str) -> str:
    """The store owner of this master key's sessions: no key id looks like it (those are
    `key_…`, `cfg-…` and `master`), and it says nothing of the key."""
    mark = hashlib.sha256(b"console-session\0" + master_digest.encode()).hexdigest()
    return "console:" + mark[:32]


def _record_id(token: str) -> str:
    return hashlib.sha256(token.encode("latin-1")).hexdigest()


async def open_session(runtime) -> tuple[str, Session]:
    """A new session for the master key: its cookie token (returned once) and its record."""
    config = runtime.config
    token = secrets.token_urlsafe(32)
    session = Session(csrf=secrets.token_urlsafe(32),
                      expires_at=int(time.time()) + config.console_session_ttl)
    record = orjson.dumps({"token": _record_id(token), "csrf": session.csrf,
                           "expires_at": session.expires_at})
    await runtime.store.save_response(_owner(config.master_digest), _record_id(token), record,
                                      config.console_session_ttl, RECORD_BYTES)
    return token, session


async def find_session(runtime, token: str | None) -> Session | None:
    """The live session of this cookie token, or None (unknown, expired, signed out, or
    made with another master key)."""
    master = runtime.config.master_digest
    if not token or master is None:
        return None
    wanted = _record_id(token)
    raw = await runtime.store.read_response(_owner(master), wanted)
    if raw is None:
        return None
    record = orjson.loads(raw)
    if not hmac.compare_digest(record["token"], wanted) or time.time() >= record["expires_at"]:
        return None
    return Session(csrf=record["csrf"], expires_at=record["expires_at"])


async def close_session(runtime, token: str) -> None:
    await runtime.store.delete_response(_owner(runtime.config.master_digest), _record_id(token))


def cookie_token(request: Request) -> str | None:
    """The session token in the request's Cookie header, if any (a malformed header: none)."""
    header = request.headers.get("cookie")
    if not header or COOKIE not in header:
        return None
    try:
        morsel = SimpleCookie(header).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


def own_origin(request: Request) -> str:
    """This gateway's origin as the browser sees it (`X-Forwarded-Proto` from a TLS proxy)."""
    return f"{scheme_of(request)}://{request.headers.get('host', '')}"


def scheme_of(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return "https" if forwarded == "https" else request.url.scheme


def check_change(request: Request, session: Session) -> None:
    """A change made with the session cookie: the CSRF token, and no foreign origin."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode("latin-1"), session.csrf.encode()):
        raise Forbidden(f"A change made with the console's session needs its CSRF token in "
                        f"'{CSRF_HEADER}' (GET /console/session gives it).", code="csrf_failed")
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if (origin is not None and origin != own_origin(request)) or (
            site is not None and site not in _SAME_SITE):
        raise Forbidden("A change made with the console's session must come from the "
                        "console's own origin.", code="csrf_failed")


async def require_session(request: Request, token: str) -> Session:
    """/admin with the cookie: a live session, and the CSRF rule for a change."""
    session = await find_session(request.app.state.runtime, token)
    if session is None:
        raise Unauthorized("The console session expired or was signed out: sign in again.",
                           code="invalid_session")
    check_change(request, session)
    return session
