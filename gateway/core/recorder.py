"""Settle: turn a finished request's reservation into real usage, off the client's path.

Settlements queue here and a background task writes them to the store in one
pipelined call per batch (while a write is under way, the next batch
gathers). If the store is away they stay queued and are written when it is
back, so no usage record of a completed request is lost while the process
lives; each carries this process's running number, so one whose write
succeeded but whose reply was lost is not counted twice when retried.
The same task renews the in-flight leases of requests still running, so a
lease expires only when its replica is gone, and gives back the leases of
admissions whose answer was lost (Redis may have applied them all the same):
otherwise a key with an in-flight limit would stay locked out until they expired.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque

from gateway import metrics
from gateway.core.limits import LEASE_TTL
from gateway.logs import log
from gateway.store.base import Settlement, Store, StoreUnavailable

BATCH = 256
MAX_QUEUED = 200_000  # beyond this, the oldest records are dropped (and counted)
RENEW_EVERY = LEASE_TTL / 3


class Recorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue: deque[Settlement] = deque()
        self.leases: dict[str, list[tuple[str, str, str]]] = {}  # request id -> its leases
        self.doubtful: list[tuple[str, str, str]] = []  # leases to give back
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._numbers = itertools.count(1)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._renew())]

    async def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to `timeout` seconds), then stop."""
        deadline = time.monotonic() + timeout
        while (self.queue or self.doubtful) and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.queue:
            log.error("usage records not written at shutdown",
                      extra={"fields": {"records": len(self.queue)}})

    def hold(self, request_id: str, leases: list[tuple[str, str, str]]) -> None:
        if leases:
            self.leases[request_id] = leases

    def release(self, leases: list[tuple[str, str, str]]) -> None:
        """Give back these leases (key id, scope, request id) once the store answers."""
        if len(self.doubtful) < MAX_QUEUED:
            self.doubtful.extend(leases)
            self._wake.set()

    def number(self) -> int:
        """The next settlement's running number (this process's own)."""
        return next(self._numbers)

    def record(self, settlement: Settlement) -> None:
        self.leases.pop(settlement.request_id, None)
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            metrics.USAGE_DROPPED.inc()
        self.queue.append(settlement)
        self._wake.set()

    async def _write(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue or self.doubtful:
                operation = "release" if self.doubtful else "settle"
                try:
                    await (self._release() if self.doubtful else self._record())
                except StoreUnavailable:
                    metrics.child(metrics.STORE_ERRORS, operation).inc()
                    await asyncio.sleep(backoff)  # keep them; try again
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05

    async def _release(self) -> None:
        leases = self.doubtful[:BATCH]
        await self.store.release(leases)
        del self.doubtful[:len(leases)]

    async def _record(self) -> None:
        batch = [self.queue[i] for i in range(min(BATCH, len(self.queue)))]
        started = time.perf_counter()
        await self.store.record(batch, time.time())
        metrics.child(metrics.STORE_DURATION, "settle").observe(time.perf_counter() - started)
        for _ in batch:
            self.queue.popleft()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            held = [lease for leases in list(self.leases.values()) for lease in leases]
            if held:
                try:
                    await self.store.renew(held, LEASE_TTL, time.time())
                except StoreUnavailable:
                    metrics.child(metrics.STORE_ERRORS, "renew").inc()
