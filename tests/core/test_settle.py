"""Settle runs after the loop's turn that ended a request, with the other requests it ended:
each keeps its own request id and latency, and shutdown waits for all of them."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

from gateway.core import account
from gateway.core.exchange import Exchange
from gateway.logs import REQUEST_ID, log

SURFACE = SimpleNamespace(name="chat")


class Lines(logging.Handler):
    """The request lines, each with the request id in force as it was written; the errors."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str | None, dict]] = []
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "request":
            self.lines.append((REQUEST_ID.get(), record.fields))  # type: ignore[attr-defined]
        elif record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())


@pytest.fixture
def lines(monkeypatch):
    handler = Lines()
    monkeypatch.setattr("gateway.logs._json_fd", None)  # through the logging handlers
    monkeypatch.setattr(log, "handlers", [handler])
    monkeypatch.setattr(log, "propagate", False)
    level = log.level
    log.setLevel(logging.INFO)
    yield handler
    log.setLevel(level)


def clock(*readings: float) -> SimpleNamespace:
    """account.py's clock, reading these in turn."""
    values = iter(readings)
    return SimpleNamespace(perf_counter=lambda: next(values), time=time.time)


def ended(request_id: str, started: float) -> Exchange:
    return Exchange(request_id, started, SURFACE, key_name="team", alias="m", status=200)


def test_requests_ended_in_one_turn_are_settled_after_it_each_with_its_own_id(lines):
    async def scenario():
        token = REQUEST_ID.set("the-handler's-own")
        for n in range(3):
            account.settle_soon(None, ended(f"req-{n}", time.perf_counter()))
        assert lines.lines == []  # nothing yet: the turn is not over
        REQUEST_ID.reset(token)
        await asyncio.sleep(0)  # one turn: the settling task's first step comes before ours
        assert len(lines.lines) == 3

    asyncio.run(scenario())

    assert [request_id for request_id, _ in lines.lines] == ["req-0", "req-1", "req-2"]
    assert all(fields["status"] == 200 and fields["key"] == "team" for _, fields in lines.lines)


def test_latency_is_counted_to_the_end_of_the_pipeline_not_to_the_settle(lines, monkeypatch):
    monkeypatch.setattr(account, "time", clock(10.0, 99.0))  # the pipeline's end; the settle's

    async def scenario():
        account.settle_soon(None, ended("req-late", started=9.5))
        await account.drain()

    asyncio.run(scenario())

    assert lines.lines[0][1]["latency_ms"] == 500.0


def test_shutdown_waits_for_what_has_ended_and_is_not_settled(lines):
    """drain() before the recorder stops: a request that ended just before shutdown still
    has its line (and its usage: the recorder is stopped after)."""

    async def scenario():
        for n in range(50):
            account.settle_soon(None, ended(f"req-{n}", time.perf_counter()))
        await account.drain()
        return len(lines.lines)

    assert asyncio.run(scenario()) == 50


def test_a_settle_that_fails_is_logged_and_the_others_are_still_settled(lines, monkeypatch):
    broken = ended("req-broken", 0.0)
    broken.surface = None  # has no name: settle() raises

    async def scenario():
        account.settle_soon(None, ended("req-a", 0.0))
        account.settle_soon(None, broken)
        account.settle_soon(None, ended("req-b", 0.0))
        await account.drain()

    asyncio.run(scenario())

    assert [request_id for request_id, _ in lines.lines] == ["req-a", "req-b"]
    assert lines.errors == ["settling a request failed"]
