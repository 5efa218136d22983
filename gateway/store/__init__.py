"""Shared state (keys, limits, usage) behind one interface, in memory or in Redis.

The in-memory store is the embedded default: `gateway serve` needs no other
server. The Redis store (shared across replicas) implements the same interface.
"""

from gateway.store.base import Store
from gateway.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store"]
