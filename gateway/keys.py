"""Gateway keys: minted once, kept only as SHA-256 digests, looked up through a short cache.

The key ring answers "which key is this digest?" for every request without a
store round trip: keys declared in routes.yaml are in the config; keys made
through the admin API come from the store and are cached in this process.
Any replica's change to a key is announced by the store and drops the cached
entry at once (when announcements may have been missed, every entry is read
again at its next use, and served meanwhile); without that message a cached
key is re-read after a second
(and meanwhile admission, which reads a key's revocation in the store itself,
refuses a revoked key). Unknown digests are remembered for a second too, so a
flood of bad keys does not become a flood of store reads.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time

from gateway.config import Config
from gateway.store.base import KeyRecord, Store, StoreUnavailable

SECRET_PREFIX = "sk-gw-"
TRUSTED_FOR = 1.0  # seconds a cached store key is used before it is read again
UNKNOWN_FOR = 1.0  # seconds an unknown digest is remembered as unknown


def new_secret() -> str:
    """A new key's secret: 240 random bits, shown to its owner once and never stored."""
    return SECRET_PREFIX + secrets.token_urlsafe(30)


def new_id() -> str:
    return "key_" + secrets.token_hex(6)


def visible_prefix(secret: str) -> str:
    """Enough of a secret for a person to tell keys apart, not enough to use one."""
    return secret[: len(SECRET_PREFIX) + 4]


def allows(record: KeyRecord, model: str) -> bool:
    """Whether the key may use `model`: exact aliases, `prefix/*` wildcards, or `*`."""
    for pattern in record.models:
        if pattern == "*" or pattern == model:
            return True
        if pattern.endswith("*") and model.startswith(pattern[:-1]):
            return True
    return False


class KeyRing:
    def __init__(self, config: Config, store: Store, cache: dict | None = None) -> None:
        self.declared = config.keys
        self.store = store
        self.cache: dict[str, tuple[KeyRecord | None, float]] = {} if cache is None else cache
        self._refreshing: set[str] = set()

    def forget(self, key_id: str | None) -> None:
        """A key changed somewhere: drop it from the cache.

        None: changes may have been missed (the store was away). Every cached key is then
        read again at its next use and served meanwhile, as when a refresh fails: dropping
        them would make each one's next request wait on a store that has only just come
        back, and refuse it if that read fails, under either store policy.
        """
        for digest, (record, _) in list(self.cache.items()):
            if record is None or record.id == key_id:
                self.cache.pop(digest, None)
            elif key_id is None:
                self.cache[digest] = (record, -math.inf)

    async def lookup(self, digest: str) -> KeyRecord | None:
        """The key with this digest, or None. StoreUnavailable if it cannot be known now."""
        record = self.declared.get(digest)
        if record is not None:
            return record
        now = time.monotonic()
        cached = self.cache.get(digest)
        if cached is not None:
            record, read_at = cached
            if record is None and now - read_at < UNKNOWN_FOR:
                return None
            if record is not None:
                if now - read_at >= TRUSTED_FOR and digest not in self._refreshing:
                    self._refreshing.add(digest)  # serve it, and read it again meanwhile
                    asyncio.get_running_loop().create_task(self._refresh(digest))
                return record
        return await self._read(digest)

    async def _read(self, digest: str) -> KeyRecord | None:
        record = await self.store.get_key(digest)
        self.cache[digest] = (record, time.monotonic())
        if len(self.cache) > 100_000:  # bounded, whatever clients send
            self.cache.clear()
        return record

    async def _refresh(self, digest: str) -> None:
        try:
            await self._read(digest)
        except StoreUnavailable:
            pass  # keep serving the cached record; admission still checks revocation
        finally:
            self._refreshing.discard(digest)
