"""Settle: after the client has its answer, record what happened.

Metrics and the request's log line, and the usage that replaces the request's
reservation (written by recorder.py, off the request path). A request without
usage from its upstream is charged what can be known: a stream that ended early
(the client left, the upstream broke off) pays for the prompt and the text it
was sent, counted on the way (gateway/core/tally.py); a request no upstream answered
pays nothing.

A request's usage goes to the recorder in its own task, before the key's next request
can be admitted (the in-flight lease goes back with it). Its metrics and its log line
are written once the event loop's turn that ended it is over, together with those of
the other requests it ended: the same work in a row for each, rather than interleaved
with everything else the loop does, costs less, and the lines go out in one write.
Shutdown writes what is left (`drain`).
"""

from __future__ import annotations

import asyncio
import time

from gateway import metrics
from gateway.core.exchange import Exchange
from gateway.core.limits import _calendar
from gateway.core.tally import charged
from gateway.logs import REQUEST_ID, log, log_request
from gateway.store.base import Settlement

# Settled, not reported yet: the exchange, its prompt and completion tokens, and, for a
# request admitted (and so charged), its reasoning tokens.
_queue: list[tuple[Exchange, int | None, int | None, int | None]] = []
_due_on: asyncio.AbstractEventLoop | None = None  # the loop the report is due on


async def settle(runtime, ex: Exchange) -> None:
    """In the request's task, what the key's next request depends on: its usage goes to the
    recorder (and with it the in-flight lease back). Its metrics and log line are written
    once the loop's turn is over, with those of the other requests it ended."""
    ex.ended = time.perf_counter()
    usage = ex.usage or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    reasoning = None
    if ex.admitted is not None:  # the line shows what was charged
        prompt, completion, reasoning = await _record_usage(runtime, ex, usage)
    _queue.append((ex, prompt, completion, reasoning))
    global _due_on
    loop = asyncio.get_running_loop()
    if _due_on is not loop:
        _due_on = loop
        loop.call_soon(_report_queued)


def _report_queued() -> None:
    global _due_on
    _due_on = None
    batch = _queue[:]
    _queue.clear()
    for ex, prompt, completion, reasoning in batch:
        token = REQUEST_ID.set(ex.request_id)
        try:
            _report(ex, prompt, completion, reasoning)
        except Exception:
            log.exception("reporting a request failed")
        finally:
            REQUEST_ID.reset(token)


def drain() -> None:
    """Report what has been settled and not reported yet: at shutdown."""
    if _queue:
        _report_queued()


def _report(ex: Exchange, prompt: int | None, completion: int | None,
            reasoning: int | None) -> None:
    seconds = ex.ended - ex.started
    metrics.request_done(ex.surface.name, ex.alias, ex.target_key, ex.key_name, ex.status, seconds,
                         ex.ttft if ex.stream else None)
    if ex.in_flight:
        metrics.child(metrics.IN_FLIGHT, ex.alias).dec()
    if reasoning is not None:  # charged: counted in the token metrics too
        metrics.count_tokens(ex.surface.name, ex.alias, ex.key_name, prompt or 0, completion or 0,
                             reasoning)
    fields = {
        "api": ex.surface.name, "key": ex.key_name, "model": ex.alias, "target": ex.target,
        "stream": ex.stream,
        "status": ex.status, "attempts": ex.attempts,
        "prompt_tokens": prompt, "completion_tokens": completion,
        "latency_ms": round(seconds * 1000, 1),
        "ttft_ms": round(ex.ttft * 1000, 1) if ex.ttft is not None else None,
    }
    if ex.failures:
        fields["failures"] = ex.failures
    if ex.error:
        fields["error"] = ex.error
    if ex.messages is not None:  # server.log_prompts: debugging only
        fields["messages"] = ex.messages
    log_request(fields)


async def _record_usage(runtime, ex: Exchange, usage: dict) -> tuple[int, int, int]:
    """Record what the request is charged; (prompt, completion, reasoning) tokens."""
    admitted = ex.admitted
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int:
        if ex.tallies:  # a stream the client was sent part of
            prompt, completion = charged(ex.tallies, admitted.prompt_estimate)
        elif ex.committed or ex.status == 499:  # answered in part, or the client left
            prompt, completion = admitted.prompt_estimate, 0
        else:  # no upstream answered: nothing was used
            prompt = completion = 0
    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if type(details) is dict else None
    price = ex.route.price if ex.route is not None else None
    now = time.time()
    fields = {
        "key_id": admitted.key_id, "request_id": ex.request_id,
        "model": ex.alias or "(unrouted)", "day": _calendar(now)[0],
        "prompt_tokens": prompt, "completion_tokens": completion,
        "reasoning_tokens": reasoning if type(reasoning) is int else 0,
        "cost": price.cost(prompt, completion) if price else 0.0,
        "error": ex.status >= 400, "retention": runtime.config.store.retention}
    if admitted.local:  # admitted by this process alone: its reservation is settled here,
        await runtime.fallback.record([Settlement(reserved=admitted.checks, **fields)], now)
        reserved = ()  # and its usage goes to the store
    else:
        reserved = admitted.checks
    runtime.recorder.record(Settlement(reserved=reserved, number=runtime.recorder.number(),
                                       **fields))
    return prompt, completion, fields["reasoning_tokens"]
