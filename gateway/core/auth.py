"""Authenticate: the presented key becomes a principal, or the request ends with 401.

Only SHA-256 digests of keys are held. The digest is looked up (keys.py) and
then compared in constant time; the key itself is never stored, logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from gateway.core.errors import ServiceUnavailable, Unauthorized
from gateway.core.keys import KeyRing, allows
from gateway.store.base import KeyRecord, StoreUnavailable

HOW_TO_SEND = ("Send it as 'Authorization: Bearer KEY', 'Authorization: Api-Key KEY' "
               "or 'x-api-key: KEY'.")


@dataclass(slots=True)  # per request: not frozen (see store/base.py's Check)
class Principal:
    """Who is asking: a gateway key, or the master (admin) key."""

    name: str
    key: KeyRecord | None

    @property
    def is_master(self) -> bool:
        return self.key is None

    @property
    def key_id(self) -> str:
        return "master" if self.key is None else self.key.id

    def allows(self, model: str) -> bool:
        return self.key is None or allows(self.key, model)


MASTER = Principal("master", None)


def digest_of(presented: str) -> str:
    # Header values arrive as latin-1 text; encoding back gives the bytes the client sent.
    return hashlib.sha256(presented.encode("latin-1")).hexdigest()


async def authenticate(master_digest: str | None, keyring: KeyRing,
                       presented: str | None) -> Principal:
    if not presented:
        raise Unauthorized(f"Missing API key. {HOW_TO_SEND}", code="missing_api_key")
    digest = digest_of(presented)
    if master_digest is not None and hmac.compare_digest(digest, master_digest):
        return MASTER
    try:
        key = await keyring.lookup(digest)
    except StoreUnavailable:
        raise ServiceUnavailable("The gateway cannot check keys right now; try again shortly.",
                                 code="store_unavailable", headers={"retry-after": "1"}) from None
    if key is None or not hmac.compare_digest(key.digest, digest):
        raise Unauthorized("Invalid API key.")
    if key.revoked_at is not None:
        raise Unauthorized("This API key was revoked.", code="revoked_api_key")
    if key.expires_at is not None and time.time() >= key.expires_at:
        raise Unauthorized("This API key expired.", code="expired_api_key")
    return Principal(key.name, key)
