"""Fan out: `n` completions from an upstream that makes one at a time, merged into one answer.

Used when a route's rule for `n` says `on_range: fanout`. The n requests go out
at once, each with n=1 (and, when the client gave a seed, seed + i, or they
would all say the same). Choices are numbered 0..n-1 in the merged answer and
usage is summed: that is what the upstream billed. If any request fails
before the client has a byte, the whole attempt fails and the relay may
move to the next target.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from gateway.apis.chat.adapt import Answer
from gateway.config import Target
from gateway.core.attempt import Failure, open_upstream, response_headers, send_completion
from gateway.core.deadline import Deadline
from gateway.core.errors import UpstreamClientError, UpstreamError
from gateway.core.exchange import Exchange
from gateway.core.sse import DONE_EVENT, SSE_HEADERS, end_stream
from gateway.core.translate import Translation
from gateway.upstream import Transport

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


async def fan_out(ex: Exchange, target: Target, api: str, translation: Translation,
                  answer: Answer, transport: Transport, send) -> float | None:
    """Send the n requests and relay their merged answer; the time to the first byte of one."""
    started = time.perf_counter()
    bodies = []
    seed = translation.body.get("seed")
    for i in range(translation.fanout):
        body = dict(translation.body)
        if seed is not None:
            body["seed"] = seed + i
        bodies.append(orjson.dumps(body))
    try:
        if ex.stream:
            first = await _streams(ex, target, api, translation, answer, transport, bodies, send)
        else:
            first = await _completions(ex, target, api, translation, answer, transport, bodies,
                                       send)
        return first - started
    except BaseExceptionGroup as group:
        error = _first(group)
        if isinstance(error, Failure | UpstreamClientError):
            raise error from None
        if ex.committed:
            await end_stream(ex, send, UpstreamError(f"A fanned-out stream failed: {error}"))
            return None
        raise Failure(target, str(error) or type(error).__name__,
                      timeout=isinstance(error, TimeoutError)) from None


def _first(group: BaseExceptionGroup) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _completions(ex: Exchange, target: Target, api: str, translation: Translation,
                       answer: Answer, transport: Transport, bodies: list[bytes], send) -> float:
    """The merged answer, sent; when the first of the answers began to arrive."""
    limits = target.provider.timeouts
    answered: list[float] = []

    async def one(body: bytes) -> tuple[dict, dict, str | None]:
        async with asyncio.timeout(min(limits.first_byte, limits.total)):
            response = await open_upstream(transport, target, api, body, ex.request_id)
            answered.append(time.perf_counter())
            try:
                data = await response.read(target.provider.max_response_bytes)
            finally:
                response.close()
        try:
            return answer.normalized(data)
        except UpstreamError as exc:
            raise Failure(target, exc.message) from None

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(body)) for body in bodies]
    results = [task.result() for task in tasks]
    first, _, upstream_model = results[0]
    merged = {**first, "choices": []}
    for i, (result, _, _) in enumerate(results):
        for choice in result["choices"]:
            merged["choices"].append({**choice, "index": i})
    merged["usage"] = ex.usage = _summed(usage for _, usage, _ in results)
    await send_completion(ex, target, translation, upstream_model, orjson.dumps(merged), send)
    return min(answered)


async def _streams(ex: Exchange, target: Target, api: str, translation: Translation,
                   answer: Answer, transport: Transport, bodies: list[bytes], send) -> float:
    """The merged stream, relayed; when its first event was sent."""
    limits = target.provider.timeouts
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    usages: list[dict] = []
    adapters = [answer.stream(show_usage=True, max_event=target.provider.max_response_bytes)
                for _ in bodies]
    first = 0.0

    async def pump(index: int, body: bytes) -> None:
        adapter = adapters[index]
        deadline = Deadline(min(limits.first_byte, limits.total), limits.idle, limits.total)
        async with deadline:
            response = await open_upstream(transport, target, api, body, ex.request_id)
            try:
                async for chunk in response.chunks():
                    deadline.touch()
                    for event in adapter.feed(chunk).split(b"\n\n"):
                        await _renumbered(event, index, queue)
                for event in adapter.finish().split(b"\n\n"):
                    await _renumbered(event, index, queue)
            finally:
                response.close()
        if adapter.truncated:
            raise UpstreamError("The upstream stream ended in the middle of an event.")
        usages.append(adapter.usage or {})
        await queue.put(None)

    async with asyncio.TaskGroup() as group:
        for i, body in enumerate(bodies):
            group.create_task(pump(i, body))
        remaining = len(bodies)
        while remaining:
            event = await queue.get()
            if event is None:
                remaining -= 1
                continue
            if not ex.committed:
                ex.target, ex.status, ex.committed = target.name, 200, True
                ex.tallies.extend(adapter.tally for adapter in adapters)
                await send({"type": "http.response.start", "status": 200, "headers":
                            response_headers(SSE_HEADERS, ex, target, translation, None)})
                first = time.perf_counter()
                ex.ttft = first - ex.started
            await send({"type": "http.response.body", "body": event, "more_body": True})
    ex.usage = _summed(usages)
    tail = b"" if translation.hide_usage else answer.usage_event(ex.usage)
    if not ex.committed:
        raise Failure(target, "the fanned-out streams sent nothing")
    await send({"type": "http.response.body", "body": tail + DONE_EVENT, "more_body": False})
    return first


async def _renumbered(event: bytes, index: int, queue: asyncio.Queue) -> None:
    """One event of stream `index`, its choices numbered `index`; usage-only events are kept back."""
    if not event.startswith(b"data:"):
        return
    data = orjson.loads(event[5:])
    choices = data.get("choices") if type(data) is dict else None
    if not choices:
        return
    for choice in choices:
        choice["index"] = index
    data.pop("usage", None)
    await queue.put(b"data: " + orjson.dumps(data) + b"\n\n")


def _summed(usages) -> dict:
    total = {key: 0 for key in _USAGE_KEYS}
    for usage in usages:
        for key in _USAGE_KEYS:
            value = usage.get(key) if type(usage) is dict else None
            if type(value) is int:
                total[key] += value
    return total

