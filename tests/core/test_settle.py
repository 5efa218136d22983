"""Settle: a request's usage is recorded in its own task, before the key's next request can
be admitted; its metrics and log line once the loop's turn that ended it is over, with the
other requests it ended, each under its own request id."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import httpx
import pytest

from gateway.core import account
from gateway.core.exchange import Exchange
from gateway.logs import REQUEST_ID, log
from tests.gateway_process import demo_config, serving

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


def test_requests_ended_in_one_turn_are_reported_after_it_each_with_its_own_id(lines):
    async def scenario():
        token = REQUEST_ID.set("the-handler's-own")
        for n in range(3):
            await account.settle(None, ended(f"req-{n}", time.perf_counter()))
        assert lines.lines == []  # nothing yet: the turn is not over
        REQUEST_ID.reset(token)
        await asyncio.sleep(0)  # one turn: the report, scheduled first, runs before we resume
        assert len(lines.lines) == 3

    asyncio.run(scenario())

    assert [request_id for request_id, _ in lines.lines] == ["req-0", "req-1", "req-2"]
    assert all(fields["status"] == 200 and fields["key"] == "team" for _, fields in lines.lines)


def test_latency_is_counted_to_the_settle_not_to_the_report(lines, monkeypatch):
    monkeypatch.setattr(account, "time", clock(10.0))  # the settle's; the report reads none

    async def scenario():
        await account.settle(None, ended("req-late", started=9.5))
        account.drain()

    asyncio.run(scenario())

    assert lines.lines[0][1]["latency_ms"] == 500.0


def test_shutdown_writes_what_is_not_reported_yet(lines):
    async def scenario():
        for n in range(50):
            await account.settle(None, ended(f"req-{n}", time.perf_counter()))
        account.drain()
        return len(lines.lines)

    assert asyncio.run(scenario()) == 50


def test_a_report_due_on_a_loop_that_closed_does_not_hold_back_the_next_loops(lines,
                                                                               monkeypatch):
    closed = asyncio.new_event_loop()
    closed.close()  # a test's loop, or one before a restart, closed before its turn was over
    monkeypatch.setattr(account, "_due_on", closed)

    async def scenario():
        await account.settle(None, ended("req-new-loop", time.perf_counter()))
        await asyncio.sleep(0)

    asyncio.run(scenario())

    assert [request_id for request_id, _ in lines.lines] == ["req-new-loop"]


def test_a_report_that_fails_is_logged_and_the_others_are_still_written(lines):
    broken = ended("req-broken", 0.0)
    broken.surface = None  # has no name: its report raises

    async def scenario():
        for ex in (ended("req-a", 0.0), broken, ended("req-b", 0.0)):
            await account.settle(None, ex)
        account.drain()

    asyncio.run(scenario())

    assert [request_id for request_id, _ in lines.lines] == ["req-a", "req-b"]
    assert lines.errors == ["reporting a request failed"]


def test_a_key_with_one_request_in_flight_can_send_the_next_as_soon_as_it_has_an_answer(tmp_path):
    """The in-flight lease goes back with the usage, in the request's own task, not with the
    report after the turn: a client's back-to-back requests, with a key limited to one in
    flight, are never refused."""
    key = "sk-settle-one-in-flight-0123"
    config = demo_config(key).replace(f'{{key: "{key}"}}',
                                      f'{{key: "{key}", limits: {{in_flight: 1}}}}')
    with serving(tmp_path, config) as gateway, httpx.Client(base_url=gateway.url) as http:
        statuses = [http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": "demo", "stream": n % 2 == 1,
                                    "messages": [{"role": "user", "content": "hi"}]}).status_code
                    for n in range(200)]
    assert statuses == [200] * 200
