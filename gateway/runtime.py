"""The live state a request needs: the compiled config, one open transport per provider,
the store, and what the gateway knows of each target's health.

A reload builds a new Runtime beside the old one and swaps one reference;
requests in flight keep the one they started with. Transports of providers
whose connection settings did not change are carried over (their pools stay
warm), and so is the health of every target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config import Config
from gateway.health import Health
from gateway.store import MemoryStore, Store
from gateway.upstream import Transport, open_transport


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    transports: Mapping[str, Transport]
    store: Store
    health: Health = field(default_factory=Health)


def start_runtime(config: Config, previous: Runtime | None = None) -> Runtime:
    """Open what `config` needs; call inside the event loop (aiohttp sessions bind to it)."""
    transports = {}
    for name, provider in config.providers.items():
        old = previous.config.providers.get(name) if previous else None
        if old is not None and old.connection == provider.connection:
            transports[name] = previous.transports[name]
        else:
            transports[name] = open_transport(provider)
    store = previous.store if previous else MemoryStore()
    health = previous.health if previous else Health()
    return Runtime(config, transports, store, health)


def retire(old: Runtime, new: Runtime, grace: float) -> None:
    """Close the transports the new runtime no longer uses, once requests in flight are done."""
    unused = [t for name, t in old.transports.items() if new.transports.get(name) is not t]
    if unused:
        asyncio.get_running_loop().call_later(
            grace, lambda: [asyncio.ensure_future(t.aclose()) for t in unused])


async def stop_runtime(runtime: Runtime) -> None:
    for transport in runtime.transports.values():
        await transport.aclose()
    await runtime.store.close()
