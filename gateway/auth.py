"""Authenticate: the presented key becomes a principal, or the request ends with 401.

Only SHA-256 digests of keys are held. The digest is looked up and then
compared in constant time; the key itself is never stored, logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from gateway.config import Config, Key
from gateway.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a gateway key, or the master (admin) key."""

    name: str
    key: Key | None

    @property
    def is_master(self) -> bool:
        return self.key is None

    def allows(self, alias: str) -> bool:
        return self.key is None or self.key.allows(alias)


MASTER = Principal("master", None)

HOW_TO_SEND = ("Send it as 'Authorization: Bearer KEY', 'Authorization: Api-Key KEY' "
               "or 'x-api-key: KEY'.")


def authenticate(config: Config, presented: str | None) -> Principal:
    if not presented:
        raise Unauthorized(f"Missing API key. {HOW_TO_SEND}", code="missing_api_key")
    # Header values arrive as latin-1 text; encoding back gives the bytes the client sent.
    digest = hashlib.sha256(presented.encode("latin-1")).digest()
    master = config.master_digest
    if master is not None and hmac.compare_digest(digest, master):
        return MASTER
    key = config.keys.get(digest)
    if key is None or not hmac.compare_digest(key.digest, digest):
        raise Unauthorized("Invalid API key.")
    return Principal(key.name, key)
