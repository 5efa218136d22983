"""Shared state (keys, limits, usage) behind one interface, in memory or in Redis.

The in-memory store is the embedded default: `gateway serve` needs no other
server. The Redis store (shared across replicas) implements the same interface.
"""

from gateway.store.base import Store
from gateway.store.memory import MemoryStore


def open_store(settings, response_bytes: int | None = None) -> Store:
    """The store routes.yaml asks for: Redis with a URL, else this process's memory (which
    keeps at most `response_bytes` of stored responses)."""
    if settings.url is None:
        return MemoryStore() if response_bytes is None else MemoryStore(
            response_bytes=response_bytes)
    from gateway.store.redis import RedisStore

    return RedisStore(settings.url, prefix=settings.prefix, timeout=settings.timeout,
                      cluster=settings.cluster, pool_size=settings.pool_size)


__all__ = ["MemoryStore", "Store", "open_store"]
