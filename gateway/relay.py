"""Relay: try the route's targets in order until one answers, and pass its answer on.

A target that cannot answer (unreachable, timed out, 429, 5xx, refused our
credentials) moves the request to the next one, translated again. A refusal
that is the client's fault (400, 422...) is relayed as is: another target
would refuse it too. A stream can move on only until its first byte reaches
the client; after that a failure ends it with an error event and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

import orjson

from gateway.adapt import DONE_EVENT, StreamAdapter, adapt_completion
from gateway.config import Route, Target
from gateway.errors import (
    GatewayError,
    RateLimited,
    UpstreamClientError,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.exchange import Exchange
from gateway.translate import upstream_body, upstream_headers
from gateway.upstream import (
    ConnectFailed,
    ConnectTimeout,
    Transport,
    TransportError,
    UpstreamResponse,
)

# Statuses that say "this target cannot answer now", not "this request is wrong".
_TARGET_FAILURES = frozenset({401, 403, 404, 408, 409, 425, 429})
_ERROR_BODY_LIMIT = 64 * 1024

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Failure(Exception):
    """One target could not answer; the request may move to the next."""

    def __init__(self, target: Target, reason: str, *, status: int | None = None,
                 timeout: bool = False, retry_after: float | None = None) -> None:
        super().__init__(f"{target.name}: {reason}")
        self.status = status
        self.timeout = timeout
        self.retry_after = retry_after


async def relay(ex: Exchange, route: Route, payload: dict, transports: Mapping[str, Transport],
                send) -> None:
    failures: list[Failure] = []
    for target in route.attempts():
        ex.attempts += 1
        try:
            await _attempt(ex, target, payload, transports[target.provider.name], send)
            return
        except Failure as failure:
            failures.append(failure)
            ex.failures.append(str(failure))
    raise _give_up(route.alias, failures)


async def _attempt(ex: Exchange, target: Target, payload: dict, transport: Transport, send) -> None:
    provider = target.provider
    limits = provider.timeouts
    loop = asyncio.get_running_loop()
    end = loop.time() + limits.total
    response: UpstreamResponse | None = None
    phase = "first_byte"
    try:
        async with asyncio.timeout_at(min(loop.time() + limits.first_byte, end)) as clock:
            try:
                response = await transport.send(
                    provider.chat_url, upstream_headers(target, ex.request_id),
                    upstream_body(payload, target))
            except ConnectFailed as exc:
                raise Failure(target, str(exc), timeout=isinstance(exc, ConnectTimeout)) from None
            if response.status >= 400:
                raise await _refusal(target, response)
            if ex.stream:
                chunks = response.chunks()
                first = await anext(chunks, b"")
                if not first:
                    raise Failure(target, "closed the stream before sending anything")
                phase = "idle"
                clock.reschedule(min(loop.time() + limits.idle, end))
                await _stream(ex, target, first, chunks, clock, end, send)
            else:
                data = await response.read(provider.max_response_bytes)
                try:
                    body, ex.usage = adapt_completion(data, ex.alias)
                except UpstreamError as exc:
                    raise Failure(target, exc.message) from None
                ex.target, ex.status, ex.committed = target.name, 200, True
                await send({"type": "http.response.start", "status": 200,
                            "headers": JSON_HEADERS + [(b"x-request-id", ex.request_id.encode())]})
                ex.ttft = time.perf_counter() - ex.started
                await send({"type": "http.response.body", "body": body})
    except TimeoutError:
        seconds = {"first_byte": min(limits.first_byte, limits.total), "idle": limits.idle}[phase]
        if loop.time() >= end - 0.001:
            reason = f"did not finish within the total timeout of {limits.total:g}s"
        elif phase == "first_byte":
            reason = f"sent no answer within {seconds:g}s"
        else:
            reason = f"stream stalled: no data for {seconds:g}s"
        if not ex.committed:
            raise Failure(target, reason, timeout=True) from None
        await _end_stream(ex, send, UpstreamTimeout(f"The upstream {reason}."))
    except TransportError as exc:
        if not ex.committed:
            raise Failure(target, str(exc)) from None
        await _end_stream(ex, send, UpstreamError(f"The upstream stream broke: {exc}."))
    finally:
        if response is not None:
            response.close()


async def _stream(ex: Exchange, target: Target, first: bytes, chunks: AsyncIterator[bytes],
                  clock: asyncio.Timeout, end: float, send) -> None:
    """Relay a stream event by event; no fallback once this starts."""
    loop = asyncio.get_running_loop()
    idle = target.provider.timeouts.idle
    adapter = StreamAdapter(ex.alias)
    ex.target, ex.status, ex.committed = target.name, 200, True
    await send({"type": "http.response.start", "status": 200,
                "headers": SSE_HEADERS + [(b"x-request-id", ex.request_id.encode())]})
    out = adapter.feed(first)
    if out:
        ex.ttft = time.perf_counter() - ex.started
        await send({"type": "http.response.body", "body": out, "more_body": True})
    async for chunk in chunks:
        out = adapter.feed(chunk)
        if out:
            if ex.ttft is None:
                ex.ttft = time.perf_counter() - ex.started
            await send({"type": "http.response.body", "body": out, "more_body": True})
        clock.reschedule(min(loop.time() + idle, end))
    tail = adapter.finish()
    ex.usage = adapter.usage
    if adapter.truncated:
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await _end_stream(ex, send, UpstreamError(
            "The upstream stream ended in the middle of an event."))
        return
    if not adapter.done:
        tail += DONE_EVENT
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _end_stream(ex: Exchange, send, error: GatewayError) -> None:
    """End a started stream with an OpenAI-shaped error event, so the client does not hang."""
    ex.error = error.message
    event = b"data: " + error.render() + b"\n\n" + DONE_EVENT
    await send({"type": "http.response.body", "body": event, "more_body": False})


async def _refusal(target: Target, response: UpstreamResponse) -> Exception:
    """A non-2xx answer: a Failure to move on from, or the client's own error to relay."""
    status = response.status
    try:
        body = await response.read(_ERROR_BODY_LIMIT)
    except (TransportError, TimeoutError):
        body = b""
    message, kind, param, code = _error_fields(body, status)
    for secret in target.provider.secrets:
        message = message.replace(secret, "***")
    if status in _TARGET_FAILURES or status >= 500:
        if status in (401, 403):
            message = "rejected the gateway's credentials for this provider"
        retry_after = _seconds(response.headers.get("retry-after")) if status == 429 else None
        return Failure(target, f"HTTP {status}: {message}", status=status, retry_after=retry_after)
    return UpstreamClientError(status, message, type=kind, param=param, code=code)


def _error_fields(body: bytes, status: int) -> tuple[str, str | None, str | None, str | None]:
    """message, type, param, code from whatever error shape the upstream used."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if type(data) is dict:
        error = data.get("error")
        if type(error) is dict:
            data = error
        elif type(error) is str:
            data = {"message": error}
        message = data.get("message") or data.get("detail")
        if message:
            return (str(message)[:2000], _str(data.get("type")), _str(data.get("param")),
                    _str(data.get("code")))
    return f"the upstream answered HTTP {status} without an error message", None, None, None


def _str(value: object) -> str | None:
    return value if type(value) is str else None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _give_up(alias: str, failures: list[Failure]) -> GatewayError:
    detail = "; ".join(str(f) for f in failures)
    message = f"No upstream could answer for model '{alias}': {detail}"
    if failures and all(f.status == 429 for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        headers = {"retry-after": str(int(min(waits) + 0.999))} if waits else None
        return RateLimited(message, code="upstream_rate_limited", headers=headers)
    if failures and all(f.timeout for f in failures):
        return UpstreamTimeout(message)
    return UpstreamError(message)
