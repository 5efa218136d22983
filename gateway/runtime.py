"""The live state a request needs: the compiled config, one open transport per provider, the store.

A reload builds a new Runtime and swaps one reference; requests in flight
keep the one they started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import Config
from gateway.store import MemoryStore, Store
from gateway.upstream import Transport, open_transport


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    transports: Mapping[str, Transport]
    store: Store


def start_runtime(config: Config) -> Runtime:
    """Open the transports; call inside the event loop (aiohttp sessions bind to it)."""
    transports = {name: open_transport(p) for name, p in config.providers.items()}
    return Runtime(config, transports, MemoryStore())


async def stop_runtime(runtime: Runtime) -> None:
    for transport in runtime.transports.values():
        await transport.aclose()
    await runtime.store.close()
