"""Relay: try the route's targets in order until one answers, and pass its answer on.

Each attempt translates the client's request again for its target. A target
that cannot answer (unreachable, timed out, 429, 5xx, refused our credentials,
or whose dialect refuses a parameter) moves the request to the next one. A
refusal that is the client's fault (400, 422...) is relayed as is: another
target would refuse it too. A stream can move on only until its first byte
reaches the client; after that a failure ends it with an error event and
`[DONE]`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections.abc import AsyncIterator

import orjson

from gateway import metrics
from gateway.adapt import DONE_EVENT, Answer, StreamAdapter, encoded, scrub
from gateway.config import Route, Target
from gateway.deadline import Deadline
from gateway.echo import echo
from gateway.errors import (
    GatewayError,
    NoHealthyTarget,
    RateLimited,
    UpstreamClientError,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.exchange import Exchange
from gateway.route import Plan
from gateway.runtime import Runtime
from gateway.translate import Rejected, Translation, translate, upstream_headers
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
_HEADER_SAFE = re.compile(r"^[A-Za-z0-9_.\-/:@+#]{1,128}$")

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


# How upstreams say a prompt does not fit their context window.
_CONTEXT_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|"
    r"input is too long|reduce the length|exceeds? the (max|maximum)", re.IGNORECASE)


class Failure(Exception):
    """One target could not answer; the request may move to the next."""

    def __init__(self, target: Target, reason: str, *, status: int | None = None,
                 timeout: bool = False, retry_after: float | None = None,
                 rejection: Rejected | None = None) -> None:
        for secret in target.provider.secrets:  # an upstream may echo the key it was sent
            reason = reason.replace(secret, "***")
        super().__init__(f"{target.name}: {reason}")
        self.status = status
        self.timeout = timeout
        self.retry_after = retry_after
        self.rejection = rejection

    @property
    def reason(self) -> str:
        """What went wrong, as a metric label from a fixed set."""
        if self.rejection is not None:
            return "refused"
        if self.timeout:
            return "timeout"
        if self.status is None:
            return "connect" if "connect" in str(self) else "broken"
        if self.status == 429:
            return "http_429"
        return "http_5xx" if self.status >= 500 else "http_4xx"

    @property
    def counts_against_target(self) -> bool:
        """For the breaker: the target misbehaved (not a 429, not a refusal of the request)."""
        return self.rejection is None and self.status != 429


async def relay(ex: Exchange, route: Route, payload: dict, runtime: Runtime, send,
                prompt_estimate: int) -> None:
    """Answer the request from the route's targets; raise the OpenAI error if none can."""
    route = route.for_model(payload["model"])
    plan = Plan(route, runtime.health, payload)
    breaker = runtime.config.breaker
    failures: list[Failure] = []
    why = None  # why the last attempt failed: the reason of the next one
    group = 0
    while True:
        target = plan.next()
        if target is None:
            wait = plan.backoff()
            if wait is None:
                break
            await asyncio.sleep(wait)
            continue
        if why is not None:
            metrics.child(metrics.RETRIES, route.alias, why).inc()
            if plan.group > group:
                metrics.child(metrics.FALLBACKS, route.alias, why).inc()
        group = plan.group
        ex.attempts += 1
        state = runtime.health.state(target.key)
        attempt = state.begin()
        started = time.perf_counter()
        outcome = "ok"
        try:
            ttfb = await _try(ex, route, target, payload, runtime, send, prompt_estimate)
            if ex.error is not None:
                outcome = "broken"  # after its first byte
        except asyncio.CancelledError:
            outcome = "abandoned"  # the client left
            raise
        except Failure as failure:
            now = time.monotonic()
            if failure.retry_after is not None:  # a 429 that said how long to wait
                state.rest(failure.retry_after, now)
            elif failure.reason == "connect" and target.provider.backend is not None:
                state.probe_failed(breaker, now)  # a local replica that is gone: out at once
            elif failure.counts_against_target:
                state.failed(breaker, now)
            failures.append(failure)
            ex.failures.append(str(failure))
            outcome = why = failure.reason
            continue
        except UpstreamClientError as error:
            if error.context_overflow and plan.context_overflow(target):
                ex.failures.append(f"{target.name}: prompt too long for its context")
                outcome = why = "context"
                continue
            outcome = "http_4xx"
            raise
        finally:
            state.end(attempt)
            metrics.child(metrics.UPSTREAM, target.key, outcome).inc()
            metrics.child(metrics.UPSTREAM_DURATION, target.key).observe(
                time.perf_counter() - started)
        ex.target_key = target.key
        if ex.error is None:
            state.succeeded(ttfb)
        else:  # the stream broke after its first byte
            state.failed(breaker, time.monotonic())
        return
    if not failures:
        wait = plan.ready_in()
        raise NoHealthyTarget(
            f"No target of model '{echo(payload['model'])}' is available now: each has "
            "failed recently or asked to be left alone; try again shortly.",
            headers={"retry-after": str(max(1, math.ceil(wait)))})
    raise _give_up(payload["model"], failures)


async def _try(ex: Exchange, route: Route, target: Target, payload: dict, runtime: Runtime,
               send, prompt_estimate: int) -> float | None:
    """One attempt on one target, translated for it; its time to first byte."""
    try:
        translation = translate(payload, target, ex.stream)
    except Rejected as rejection:
        raise Failure(target, rejection.message, rejection=rejection) from None
    answer = Answer(route, target.dialect, prompt_estimate, payload["model"],
                    target.provider.secrets)
    transport = runtime.transports[target.provider.name]
    if translation.fanout > 1:
        from gateway.fanout import fan_out

        await fan_out(ex, target, translation, answer, transport, send)
        return None  # several answers: no single time to first byte
    return await _attempt(ex, target, translation, answer, transport, send)


async def _attempt(ex: Exchange, target: Target, translation: Translation, answer: Answer,
                   transport: Transport, send) -> float | None:
    """One request to the upstream, relayed to the client; its time to first byte."""
    limits = target.provider.timeouts
    response: UpstreamResponse | None = None
    deadline = Deadline(min(limits.first_byte, limits.total), limits.idle, limits.total)
    started = time.perf_counter()
    ttfb = None
    try:
        async with deadline:
            response = await open_upstream(transport, target, translation.encode(), ex.request_id)
            if ex.stream:
                chunks = response.chunks()
                first = await anext(chunks, b"")
                if not first:
                    raise Failure(target, "closed the stream before sending anything")
                ttfb = time.perf_counter() - started
                deadline.touch()
                await _stream(ex, target, translation, answer, first, chunks, deadline, send)
            else:
                data = await response.read(target.provider.max_response_bytes)
                ttfb = time.perf_counter() - started
                try:
                    body, ex.usage, upstream_model = answer.completion(data)
                except UpstreamError as exc:
                    raise Failure(target, exc.message) from None
                await send_completion(ex, target, translation, upstream_model, body, send)
    except TimeoutError:
        if deadline.total_reached:
            reason = f"did not finish within the total timeout of {limits.total:g}s"
        elif deadline.phase == "first_byte":
            reason = f"sent no answer within {min(limits.first_byte, limits.total):g}s"
        else:
            reason = f"stream stalled: no data for {limits.idle:g}s"
        if not ex.committed:
            raise Failure(target, reason, timeout=True) from None
        await end_stream(ex, send, UpstreamTimeout(f"The upstream {reason}."))
    except TransportError as exc:
        if not ex.committed:
            raise Failure(target, str(exc)) from None
        await end_stream(ex, send, UpstreamError(f"The upstream stream broke: {exc}."))
    finally:
        if response is not None:
            response.close()
    return ttfb


async def open_upstream(transport: Transport, target: Target, body: bytes,
                        request_id: str) -> UpstreamResponse:
    """Send the request; the response once its status says the upstream is answering."""
    provider = target.provider
    try:
        response = await transport.send(provider.chat_url, upstream_headers(target, request_id), body)
    except ConnectFailed as exc:
        raise Failure(target, str(exc), timeout=isinstance(exc, ConnectTimeout)) from None
    if response.status >= 400:
        try:
            raise await _refusal(target, response)
        finally:
            response.close()
    return response


def response_headers(base: list, ex: Exchange, target: Target, translation: Translation,
                     upstream_model: str | None) -> list:
    headers = [*base, (b"x-request-id", ex.request_id.encode()),
               (b"x-gateway-target", _header_name(target.name)),
               (b"x-gateway-attempts", str(ex.attempts).encode()),
               (b"x-gateway-upstream-model", _header_name(upstream_model or target.model))]
    if translation.dropped:
        headers.append((b"x-gateway-dropped-params", _header_value(translation.dropped)))
    if translation.adjusted:
        headers.append((b"x-gateway-adjusted-params", _header_value(translation.adjusted)))
    for name, value in ex.limit_headers.items():
        headers.append((name.encode(), value.encode()))
    return headers


@functools.lru_cache(maxsize=4096)
def _header_name(name: str) -> bytes:
    """One name as a header value: the same few names on every request, so computed once."""
    return _header_value([name])


def _header_value(names: list[str]) -> bytes:
    """Names as a header value; anything unfit for a header (they come from clients) is masked."""
    safe = list(dict.fromkeys(n if _HEADER_SAFE.match(n) else "(unprintable)" for n in names))
    if len(safe) > 20:
        safe = safe[:20] + [f"(+{len(safe) - 20} more)"]
    return ", ".join(safe).encode()


async def send_completion(ex: Exchange, target: Target, translation: Translation,
                          upstream_model: str | None, body: bytes, send) -> None:
    ex.target, ex.status, ex.committed = target.name, 200, True
    await send({"type": "http.response.start", "status": 200,
                "headers": response_headers(JSON_HEADERS, ex, target, translation, upstream_model)})
    ex.ttft = time.perf_counter() - ex.started
    await send({"type": "http.response.body", "body": body})


async def _stream(ex: Exchange, target: Target, translation: Translation, answer: Answer,
                  first: bytes, chunks: AsyncIterator[bytes], deadline: Deadline, send) -> None:
    """Relay a stream event by event; no fallback once this starts."""
    adapter = StreamAdapter(answer, show_usage=not translation.hide_usage,
                            max_event=target.provider.max_response_bytes)
    out = adapter.feed(first)
    while not out:  # nothing is committed until a whole event is ready: until then, fall back
        chunk = await anext(chunks, None)
        if chunk is None:
            break
        deadline.touch()
        out = adapter.feed(chunk)
    ex.target, ex.status, ex.committed = target.name, 200, True
    ex.tallies.append(adapter.tally)  # from here on the client is sent text: charged if it leaves
    await send({"type": "http.response.start", "status": 200, "headers": response_headers(
        SSE_HEADERS, ex, target, translation, adapter.upstream_model)})
    if out:
        ex.ttft = time.perf_counter() - ex.started
        await send({"type": "http.response.body", "body": out, "more_body": True})
    async for chunk in chunks:
        deadline.touch()
        out = adapter.feed(chunk)
        if out:
            if ex.ttft is None:
                ex.ttft = time.perf_counter() - ex.started
            await send({"type": "http.response.body", "body": out, "more_body": True})
    tail = adapter.finish()
    if adapter.truncated:  # no ex.usage: a usage seen on the way may not cover what followed
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await end_stream(ex, send, UpstreamError(
            "The upstream stream ended in the middle of an event."))
        return
    if not adapter.done and not adapter.finished:  # no [DONE], no finish_reason: cut short
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await end_stream(ex, send, UpstreamError(
            "The upstream stream ended before the answer did (no finish_reason, no [DONE])."))
        return
    ex.usage = adapter.usage
    await send({"type": "http.response.body", "body": tail + DONE_EVENT, "more_body": False})


async def end_stream(ex: Exchange, send, error: GatewayError) -> None:
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
    message, kind, param, code = _error_fields(scrub(body, encoded(target.provider.secrets)),
                                               status)
    if status in _TARGET_FAILURES or status >= 500:
        if status in (401, 403):
            message = "rejected the gateway's credentials for this provider"
        retry_after = _seconds(response.headers.get("retry-after")) if status == 429 else None
        return Failure(target, f"HTTP {status}: {message}", status=status, retry_after=retry_after)
    error = UpstreamClientError(status, message, type=kind, param=param, code=code)
    error.context_overflow = code == "context_length_exceeded" or bool(
        _CONTEXT_OVERFLOW.search(message))
    return error


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


def _give_up(model: str, failures: list[Failure]) -> GatewayError:
    rejections = [f.rejection for f in failures if f.rejection is not None]
    if failures and len(rejections) == len(failures):
        return rejections[0]  # every target refuses the request as written: the client's to fix
    detail = "; ".join(str(f) for f in failures)
    message = f"No upstream could answer for model '{echo(model)}': {detail}"
    if failures and all(f.status == 429 for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        headers = {"retry-after": str(int(min(waits) + 0.999))} if waits else None
        return RateLimited(message, code="upstream_rate_limited", headers=headers)
    if failures and all(f.timeout for f in failures):
        return UpstreamTimeout(message)
    return UpstreamError(message)
