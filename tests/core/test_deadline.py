"""The attempt watchdog: first-byte, idle and total limits, and cancellation left alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.core.deadline import Deadline


def run(coro):
    return asyncio.run(coro)


def test_first_byte_limit():
    async def attempt():
        async with Deadline(first_byte=0.05, idle=10, total=10) as deadline:
            await asyncio.sleep(5)
        return deadline

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run(attempt())
    assert time.monotonic() - started < 1


def test_touches_keep_a_stream_alive_past_the_idle_limit():
    idle = 0.2

    async def attempt():
        async with Deadline(first_byte=idle, idle=idle, total=10) as deadline:
            started = time.monotonic()
            while time.monotonic() - started < 4 * idle:  # data every 20 ms, 4 idle limits long
                await asyncio.sleep(0.02)
                deadline.touch()
        return deadline, time.monotonic() - started

    deadline, lived = run(attempt())
    assert not deadline.expired and lived >= 4 * idle


def test_idle_limit_after_data_stopped():
    phases = []

    async def attempt():
        deadline = Deadline(first_byte=5, idle=0.05, total=10)
        try:
            async with deadline:
                deadline.touch()
                await asyncio.sleep(5)
        finally:
            phases.append(deadline.phase)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run(attempt())
    assert phases == ["idle"]
    assert time.monotonic() - started < 1  # the idle limit, not the longer first-byte one


def test_total_limit_even_with_data_flowing():
    async def attempt():
        deadline = Deadline(first_byte=5, idle=5, total=0.2)
        try:
            async with deadline:
                while True:
                    await asyncio.sleep(0.02)
                    deadline.touch()
        except TimeoutError:
            return deadline.total_reached

    assert run(attempt()) is True


def test_a_cancel_from_outside_stays_a_cancel():
    async def main():
        async def attempt():
            async with Deadline(first_byte=5, idle=5, total=5):
                await asyncio.sleep(5)

        task = asyncio.create_task(attempt())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
