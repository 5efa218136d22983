"""The key ring's cache under bursts and floods: one store read per digest however many
lookups wait on it, a bounded memory of unknown digests, and real keys that stay cached
whatever clients send. (End to end, on a gateway: test_key_bursts.py.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest

from gateway.config import load_config
from gateway.core.keys import UNKNOWN_KEPT, KeyRing
from gateway.store import MemoryStore
from gateway.store.base import KeyRecord, StoreUnavailable
from gateway.store.redis import RedisStore
from tests.redis_server import RedisServer


class CountingStore(MemoryStore):
    """The in-memory store, counting its key reads; `held` keeps each read's answer back
    until it is set, `failing` makes the reads fail as an unreachable store's would."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.held: asyncio.Event | None = None
        self.failing = False

    async def get_key(self, digest: str) -> KeyRecord | None:
        self.reads += 1
        answer = await super().get_key(digest)
        if self.held is not None:
            await self.held.wait()
        if self.failing:
            raise StoreUnavailable("the store is away")
        return answer


@pytest.fixture
def config(tmp_path):
    (tmp_path / "routes.yaml").write_text("models: {}\n")
    return load_config(tmp_path / "routes.yaml", {})


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("redis").start()
    yield server
    server.stop()


def record(key_id: str = "key_real") -> KeyRecord:
    return KeyRecord(id=key_id, name=key_id, digest=secrets.token_hex(32), prefix="sk-gw-real",
                     created_at=time.time())


def made_up() -> str:
    return secrets.token_hex(32)


async def gets(store: RedisStore) -> int:
    """GET commands Redis has run so far."""
    return (await store.redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)


def test_concurrent_lookups_of_one_digest_are_one_redis_read(config, redis):
    real = record()

    async def scenario():
        store = RedisStore(redis.url)
        await store.create_key(real)
        ring = KeyRing(config, store)
        before = await gets(store)
        found = await asyncio.gather(*(ring.lookup(real.digest) for _ in range(1000)))
        unknown = await asyncio.gather(*(ring.lookup(made_up()) for _ in range(3)))
        after = await gets(store)
        await store.close()
        return found, unknown, after - before

    found, unknown, reads = asyncio.run(scenario())
    assert {f.id for f in found} == {"key_real"}
    assert unknown == [None] * 3
    assert reads == 1 + 3


def test_waiters_on_a_failed_read_all_get_its_failure(config):
    async def scenario():
        store = CountingStore()
        store.failing = True
        ring = KeyRing(config, store)
        return store, await asyncio.gather(*(ring.lookup("d") for _ in range(100)),
                                           return_exceptions=True)

    store, outcomes = asyncio.run(scenario())
    assert store.reads == 1
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)


def test_a_flood_of_made_up_keys_neither_grows_memory_nor_evicts_a_real_key(config):
    """11 x UNKNOWN_KEPT made-up digests: more than the 100,000 entries at which the old
    cache was cleared whole, real keys with it."""
    real = record()

    async def scenario():
        store = CountingStore()
        await store.create_key(real)
        ring = KeyRing(config, store)
        assert (await ring.lookup(real.digest)).id == "key_real"
        for _ in range(11 * UNKNOWN_KEPT // 1000):
            found = await asyncio.gather(*(ring.lookup(made_up()) for _ in range(1000)))
            assert found == [None] * 1000
        reads = store.reads
        assert (await ring.lookup(real.digest)).id == "key_real"
        return ring, store.reads - reads

    ring, reads_after_flood = asyncio.run(scenario())
    assert reads_after_flood == 0  # still cached: no store read
    assert len(ring.cache.unknown) == UNKNOWN_KEPT


def test_an_unknown_digest_is_remembered_until_a_key_changes(config):
    real = record()

    async def scenario():
        store = CountingStore()
        ring = KeyRing(config, store)
        store.on_key_change(ring.forget)
        assert await ring.lookup(real.digest) is None
        assert await ring.lookup(real.digest) is None
        assert store.reads == 1  # remembered as unknown
        await store.create_key(real)  # announced: this process's unknown digests are dropped
        return await ring.lookup(real.digest)

    assert asyncio.run(scenario()).id == "key_real"


def test_a_read_that_overlaps_a_key_change_is_not_remembered(config):
    """A read sent before the key was made, answered after: its 'unknown' is stale and must
    not be kept for a second."""
    real = record()

    async def scenario():
        store = CountingStore()
        ring = KeyRing(config, store)
        store.on_key_change(ring.forget)
        store.held = asyncio.Event()
        early = asyncio.ensure_future(ring.lookup(real.digest))
        while store.reads == 0:
            await asyncio.sleep(0)
        await store.create_key(real)  # made while the read is on its way back
        store.held.set()
        assert await early is None  # true when it was read
        return await ring.lookup(real.digest)

    assert asyncio.run(scenario()).id == "key_real"
