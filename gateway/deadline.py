"""Timeouts for one upstream attempt: first byte, idle between chunks, and total.

`asyncio.timeout` re-arms its timer on every `reschedule`, a heap push and a
cancelled handle per chunk; a 500-event stream pays that 500 times. This
watchdog is lazy instead: a chunk only records the time (`touch`), and the
single timer, when it fires, checks whether data came meanwhile and re-arms
itself for the rest. When time is really up it cancels the task, and leaving
the block turns that cancellation into `TimeoutError`, as `asyncio.timeout` does.
"""

from __future__ import annotations

import asyncio


class Deadline:
    __slots__ = ("_armed", "_end", "_handle", "_idle", "_last", "_loop", "_task", "expired",
                 "phase")

    def __init__(self, first_byte: float, idle: float, total: float) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._end = now + total
        self._idle = idle
        self._last = now + first_byte - idle  # until the first byte, the first-byte limit holds
        self._task: asyncio.Task | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0
        self.expired = False
        self.phase = "first_byte"

    def touch(self) -> None:
        """Data arrived: the idle limit counts from now."""
        self._last = self._loop.time()
        if self.phase == "first_byte":
            self.phase = "idle"
            if self._when() < self._armed:  # the idle limit ends before the first-byte one did
                self._handle.cancel()
                self._arm()

    @property
    def total_reached(self) -> bool:
        return self._loop.time() >= self._end - 0.001

    def _when(self) -> float:
        return min(self._last + self._idle, self._end)

    def _arm(self) -> None:
        self._armed = self._when()
        self._handle = self._loop.call_at(self._armed, self._fire)

    def _fire(self) -> None:
        if self._loop.time() < self._when():
            self._arm()  # data came since this was set: wait for the rest
            return
        self.expired = True
        self._task.cancel()

    async def __aenter__(self) -> Deadline:
        self._task = asyncio.current_task()
        self._arm()
        return self

    async def __aexit__(self, kind, error, traceback) -> bool:
        self._handle.cancel()
        if self.expired and kind is asyncio.CancelledError and self._task.uncancel() == 0:
            raise TimeoutError from error
        return False
