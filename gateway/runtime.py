"""The live state a request needs: the compiled config, one open transport per provider,
the store and what sits in front of it (key ring, limiter, recorder), and what the
gateway knows of each target's health.

A reload builds a new Runtime beside the old one and swaps one reference;
requests in flight keep the one they started with. Transports of providers
whose connection settings did not change are carried over (their pools stay
warm), and so are the store, the recorder, the key cache and every target's
health. Store settings take effect at the next restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.apis.messages import thinking
from gateway.config import Config
from gateway.core.health import Health
from gateway.core.keys import KeyCache, KeyRing
from gateway.core.limits import Limiter
from gateway.core.recorder import Recorder
from gateway.logs import log
from gateway.store import MemoryStore, Store, open_store
from gateway.upstream import Transport, open_transport


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    transports: Mapping[str, Transport]
    store: Store
    health: Health
    keyring: KeyRing
    limiter: Limiter
    recorder: Recorder
    fallback: Store  # this process's own counters, while the store is away (fail-open)


def start_runtime(config: Config, previous: Runtime | None = None) -> Runtime:
    """Open what `config` needs; call inside the event loop (its transports and tasks bind to it)."""
    thinking.use_master_key(config.master_digest)  # thinking blocks signed alike by every replica
    transports = {}
    for name, provider in config.providers.items():
        old = previous.config.providers.get(name) if previous else None
        if previous is not None and old is not None and old.connection == provider.connection:
            transports[name] = previous.transports[name]
        else:
            transports[name] = open_transport(provider)
    fallback: Store
    if previous is None:
        store = open_store(config.store, config.responses.memory_bytes)
        recorder, fallback, health, cache = Recorder(store), MemoryStore(), Health(), KeyCache()
        recorder.start()
    else:
        store, recorder, fallback, health = (previous.store, previous.recorder, previous.fallback,
                                             previous.health)
        cache = previous.keyring.cache
        if previous.config.store != config.store:
            log.warning("store settings changed: they take effect at the next restart")
    keyring = KeyRing(config, store, cache)
    if previous is None:
        store.on_key_change(keyring.forget)  # the cache is shared by later key rings
    limiter = Limiter(config, store, fallback, keyring, recorder)
    return Runtime(config, transports, store, health, keyring, limiter, recorder, fallback)


def retire(old: Runtime, new: Runtime, grace: float) -> None:
    """Close the transports the new runtime no longer uses, once requests in flight are done."""
    unused = [t for name, t in old.transports.items() if new.transports.get(name) is not t]
    if unused:
        asyncio.get_running_loop().call_later(
            grace, lambda: [asyncio.ensure_future(t.aclose()) for t in unused])


async def stop_runtime(runtime: Runtime) -> None:
    from gateway.core.account import drain  # account's stages import the runtime's parts

    drain()  # the metrics and log lines of the last requests
    await runtime.recorder.stop()
    for transport in runtime.transports.values():
        await transport.aclose()
    await runtime.store.close()
