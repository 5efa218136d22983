"""Timeouts for one upstream attempt: first byte, idle between chunks, and total.

`asyncio.timeout` arms a timer per block and re-arms it on every
`reschedule`; even one timer per attempt (a heap push and a cancel) was the
largest single cost of a relayed request. Timeouts here are seconds long, so
precision to a few tens of milliseconds is enough: one ticker per event loop
checks every open deadline each `TICK`, and a deadline costs a set insert on
entry and a removal on exit. A chunk only records the time (`touch`). When
time is really up the ticker cancels the attempt's task, and leaving the
block turns that cancellation into `TimeoutError`, as `asyncio.timeout` does.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

TICK = 0.025  # how late a timeout may fire, at most


class _Due(Protocol):
    """What the ticker checks: a Deadline here, a request head in serve_protocol.py."""

    def _when(self) -> float: ...

    def _expire(self) -> None: ...


class _Ticker:
    """Checks the open deadlines of one loop; runs only while there are some.

    A deadline is any object with `_when()` (the loop time it is due) and
    `_expire()`: attempts here, and request heads in serve_protocol.py."""

    __slots__ = ("armed", "deadlines", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadlines: set[_Due] = set()
        self.armed = False

    def add(self, deadline: _Due) -> None:
        self.deadlines.add(deadline)
        if not self.armed:
            self.armed = True
            self.loop.call_later(TICK, self.tick)

    def tick(self) -> None:
        now = self.loop.time()
        for deadline in [d for d in self.deadlines if now >= d._when()]:
            self.deadlines.discard(deadline)
            deadline._expire()
        if self.deadlines:
            self.loop.call_later(TICK, self.tick)
        else:
            self.armed = False


_ticker: _Ticker | None = None


def ticker_of(loop: asyncio.AbstractEventLoop) -> _Ticker:
    global _ticker
    if _ticker is None or _ticker.loop is not loop:  # a new loop: tests, or a restart
        _ticker = _Ticker(loop)
    return _ticker


class Deadline:
    __slots__ = ("_end", "_idle", "_last", "_loop", "_task", "_ticker", "expired", "phase")

    def __init__(self, first_byte: float, idle: float, total: float) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._end = now + total
        self._idle = idle
        self._last = now + first_byte - idle  # until the first byte, the first-byte limit holds
        self._task: asyncio.Task  # the task in the block, from entry on
        self._ticker = ticker_of(self._loop)
        self.expired = False
        self.phase = "first_byte"

    def touch(self) -> None:
        """Data arrived: the idle limit counts from now."""
        self._last = self._loop.time()
        self.phase = "idle"

    @property
    def total_reached(self) -> bool:
        return self._loop.time() >= self._end - 0.001

    def _when(self) -> float:
        return min(self._last + self._idle, self._end)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        assert task is not None  # `async with` runs in a task
        self._task = task
        self._ticker.add(self)
        return self

    async def __aexit__(self, kind, error, traceback) -> Literal[False]:
        self._ticker.deadlines.discard(self)
        if self.expired and kind is asyncio.CancelledError and self._task.uncancel() == 0:
            raise TimeoutError from error
        return False
