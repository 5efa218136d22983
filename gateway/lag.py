"""Event-loop lag: how late a timer fires.

A loop that runs late is CPU-bound, or blocked by something synchronous, and
every request waits that long on top of its own work. One task samples it
twice a second into `gateway_event_loop_lag_seconds`; nothing on the request
path pays for it.
"""

from __future__ import annotations

import asyncio

from gateway import metrics

INTERVAL = 0.5  # seconds between samples


async def watch() -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + INTERVAL
        await asyncio.sleep(INTERVAL)
        metrics.LOOP_LAG.observe(max(0.0, loop.time() - due))
