"""Gateway keys: minted once, kept only as SHA-256 digests, looked up through a short cache.

The key ring answers "which key is this digest?" for every request without a
store round trip: keys declared in routes.yaml are in the config; keys made
through the admin API come from the store and are cached in this process.
Any replica's change to a key is announced by the store and drops the cached
entry at once (when announcements may have been missed, every entry is read
again at its next use, and served meanwhile); without that message a cached
key is re-read after a second. Meanwhile admission refuses a revoked key that
has limits, since it reads the key's revocation in the store itself; a key with
no limits is admitted without a store call, so once revoked it may still serve
until its entry is re-read.

Bursts and floods: concurrent lookups of one digest share one store read, so
a thousand requests arriving together on a key this process has not seen yet
cost one read. Unknown digests are remembered for a second, so a bad key sent
again and again is not read again and again; they are kept apart from the
known keys and at most UNKNOWN_KEPT of them (the oldest go first), so a flood
of made-up keys neither grows memory nor pushes a real key out of the cache.
Any key change announced drops every unknown digest: a key made on another
replica works here at once, even if this process refused its secret a moment
before.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import OrderedDict

from gateway.config import Config
from gateway.store.base import KeyRecord, Store

SECRET_PREFIX = "sk-gw-"
TRUSTED_FOR = 1.0  # seconds a cached store key is used before it is read again
UNKNOWN_FOR = 1.0  # seconds an unknown digest is remembered as unknown
UNKNOWN_KEPT = 10_000  # unknown digests remembered at most


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


class KeyCache:
    """What this process knows of the store's keys; it outlives config reloads (every key
    ring of the process shares it, and the store's change messages reach it).

    `known` holds only keys the store has (so it is as large as the store's key list,
    whatever clients send); `unknown` holds at most `unknown_kept` digests the store
    lacks, oldest first; `reading` the one store read in flight per digest. The dicts are
    changed in place, never replaced: key rings hold them for their fast path.
    """

    def __init__(self, unknown_kept: int = UNKNOWN_KEPT) -> None:
        self.known: dict[str, tuple[KeyRecord, float]] = {}  # digest -> record, read at
        self.ids: dict[str, str] = {}  # key id -> digest, of the known keys
        self.unknown: OrderedDict[str, float] = OrderedDict()  # digest -> read at
        self.unknown_kept = unknown_kept
        self.reading: dict[str, asyncio.Task] = {}
        self.changes = 0  # key changes heard: a read that overlaps one is not kept

    def forget(self, key_id: str | None) -> None:
        """A key changed somewhere: drop it, and every unknown digest (it may be that key's).

        None: changes may have been missed (the store was away). Every cached key is then
        read again at its next use and served meanwhile, as when a refresh fails: dropping
        them would make each one's next request wait on a store that has only just come
        back, and refuse it if that read fails, under either store policy.
        """
        self.changes += 1
        self.unknown.clear()
        self.reading.clear()  # reads in flight may predate the change: the next lookup reads anew
        if key_id is None:
            for digest, (record, _) in self.known.items():
                self.known[digest] = (record, -math.inf)
        elif digest := self.ids.pop(key_id, ""):
            self.known.pop(digest, None)

    def read(self, digest: str, store: Store) -> asyncio.Task:
        """The store read of this digest in flight, started if there is none."""
        task = self.reading.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(digest, store))
            self.reading[digest] = task
            task.add_done_callback(lambda done: self._finished(digest, done))
        return task

    async def _read(self, digest: str, store: Store) -> KeyRecord | None:
        changes = self.changes
        record = await store.get_key(digest)
        if changes == self.changes:  # no key changed meanwhile: the answer is still true
            self._keep(digest, record)
        return record

    def _keep(self, digest: str, record: KeyRecord | None) -> None:
        now = time.monotonic()
        if record is not None:
            self.known[digest] = (record, now)
            self.ids[record.id] = digest
            return
        if digest in self.known:
            self.ids.pop(self.known.pop(digest)[0].id, None)
        self.unknown[digest] = now
        self.unknown.move_to_end(digest)
        if len(self.unknown) > self.unknown_kept:
            self.unknown.popitem(last=False)

    def _finished(self, digest: str, task: asyncio.Task) -> None:
        if self.reading.get(digest) is task:
            del self.reading[digest]
        if not task.cancelled():
            task.exception()  # a refresh's failure is nobody's to raise: mark it seen


class KeyRing:
    def __init__(self, config: Config, store: Store, cache: KeyCache | None = None) -> None:
        self.declared = config.keys
        self.store = store
        self.cache = KeyCache() if cache is None else cache
        self.known, self.unknown = self.cache.known, self.cache.unknown  # the fast path's reads

    def forget(self, key_id: str | None) -> None:
        self.cache.forget(key_id)

    async def lookup(self, digest: str) -> KeyRecord | None:
        """The key with this digest, or None. StoreUnavailable if it cannot be known now."""
        record = self.declared.get(digest)
        if record is not None:
            return record
        known = self.known.get(digest)
        now = time.monotonic()
        if known is not None:
            record, read_at = known
            if now - read_at >= TRUSTED_FOR and digest not in self.cache.reading:
                self.cache.read(digest, self.store)  # serve it, and read it again meanwhile
            return record
        seen = self.unknown.get(digest)
        if seen is not None and now - seen < UNKNOWN_FOR:
            return None
        # Shielded: a waiter that gives up (its client left) does not cancel the others' read.
        return await asyncio.shield(self.cache.read(digest, self.store))
