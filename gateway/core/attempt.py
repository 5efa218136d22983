"""One attempt: a request to one target in its dialect, and its answer relayed to the client.

The codec (the client API's, for this target) translates the request and adapts
the answer; this module does what every attempt does alike: send it, wait for
the status within the deadlines, read a whole answer or relay a stream event by
event, and say why a target could not answer (a `Failure`, which moves the
request to the next target) or that the request itself is wrong (the
upstream's 4xx, relayed). A stream can move on only until its first byte
reaches the client; after that a failure ends it with an error event.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Callable

import orjson

from gateway.apis.base import Answer, Codec
from gateway.apis.relayed import encoded, scrub
from gateway.config import Route, Target
from gateway.core.deadline import Deadline
from gateway.core.errors import InvalidRequest, UpstreamClientError, UpstreamError, UpstreamTimeout
from gateway.core.exchange import Exchange
from gateway.core.sse import SSE_HEADERS, end_stream
from gateway.core.translate import Rejected, Translation
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
_HEADER_SAFE = re.compile(r"^[A-Za-z0-9_.\-/:@+#\[\]]{1,128}\Z")  # names and paths (`input[0].type`)

JSON_HEADERS = [(b"content-type", b"application/json")]


class Failure(Exception):
    """One target could not answer; the request may move to the next."""

    def __init__(self, target: Target, reason: str, *, status: int | None = None,
                 timeout: bool = False, connect: bool = False, retry_after: float | None = None,
                 rejection: InvalidRequest | None = None) -> None:
        for secret in target.provider.secrets:  # an upstream may echo the key it was sent
            reason = reason.replace(secret, "***")
        super().__init__(f"{target.name}: {reason}")
        self.status = status
        self.timeout = timeout
        self.connect = connect  # no connection could be made: nothing reached the upstream
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
            return "connect" if self.connect else "broken"
        if self.status == 429:
            return "http_429"
        return "http_5xx" if self.status >= 500 else "http_4xx"

    @property
    def counts_against_target(self) -> bool:
        """For the breaker: the target misbehaved (not a 429, not a refusal of the request)."""
        return self.rejection is None and self.status != 429


async def attempt(ex: Exchange, route: Route, target: Target, codec: Codec, payload: dict,
                  transport: Transport, send) -> float | None:
    """One attempt on one target, translated for it by `codec`; its time to first byte."""
    try:
        translation = codec.translate(payload, target, ex.stream)
    except Rejected as rejection:
        raise Failure(target, rejection.message, rejection=rejection) from None
    answer = codec.answer(route, target, payload, ex.admitted.prompt_estimate)
    api = codec.api
    if translation.fanout > 1 and codec.fan_out is not None:
        return await codec.fan_out(ex, target, api, translation, answer, transport, send)
    limits = target.provider.timeouts
    response: UpstreamResponse | None = None
    deadline = Deadline(min(limits.first_byte, limits.total), limits.idle, limits.total)
    started = time.perf_counter()
    ttfb = None
    try:
        async with deadline:
            response = await open_upstream(transport, target, api, translation.encode(),
                                           ex.request_id)
            if ex.stream:
                chunks = response.chunks()
                first = await anext(chunks, b"")
                if not first:
                    raise Failure(target, "closed the stream before sending anything")
                ttfb = time.perf_counter() - started
                deadline.touch()
                await _stream(ex, target, translation, answer, first, chunks, response.exhausted,
                              deadline, send)
            else:
                data = await response.read(target.provider.max_response_bytes)
                ttfb = time.perf_counter() - started
                try:
                    body, ex.usage, upstream_model = answer.completion(data)
                except UpstreamError as exc:
                    raise Failure(target, exc.message) from None
                if ex.keep is not None:
                    await ex.keep(getattr(answer, "final", None))
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


async def open_upstream(transport: Transport, target: Target, api: str, body: bytes,
                        request_id: str) -> UpstreamResponse:
    """Send the request to the target's `api`; the response once its status says the upstream
    is answering."""
    provider = target.provider
    try:
        response = await transport.send(provider.urls[api], upstream_headers(target, request_id),
                                        body)
    except ConnectFailed as exc:
        raise Failure(target, str(exc), timeout=isinstance(exc, ConnectTimeout),
                      connect=True) from None
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
        headers.append((b"x-gateway-dropped-params", _header_names(tuple(translation.dropped))))
    if translation.adjusted:
        headers.append((b"x-gateway-adjusted-params", _header_names(tuple(translation.adjusted))))
    for name, value in ex.limit_headers.items():
        headers.append((name.encode(), value.encode()))
    return headers


@functools.lru_cache(maxsize=4096)
def _header_name(name: str) -> bytes:
    """One name as a header value: the same few names on every request, so computed once."""
    return _header_value((name,))


@functools.lru_cache(maxsize=4096)
def _header_names(names: tuple[str, ...]) -> bytes:
    """Parameter names as a header value: the same few on most requests of a route."""
    return _header_value(names)


def _header_value(names: tuple[str, ...]) -> bytes:
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
                  first: bytes, chunks: AsyncIterator[bytes], exhausted: Callable[[], bool],
                  deadline: Deadline, send) -> None:
    """Relay a stream event by event; no fallback once this starts."""
    adapter = answer.stream(show_usage=not translation.hide_usage,
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
    ex.stream_error = adapter.stream_error
    await send({"type": "http.response.start", "status": 200, "headers": response_headers(
        SSE_HEADERS, ex, target, translation, adapter.upstream_model)})
    if out:
        ex.ttft = time.perf_counter() - ex.started
    while True:
        # Events go out as they come; but when the upstream has ended its stream and its body
        # has all been read, what is left goes out with the stream's end: one write to the
        # client, not two. Nothing is held back while waiting for the upstream.
        if out and not (adapter.done and exhausted()):
            await send({"type": "http.response.body", "body": out, "more_body": True})
            out = b""
        chunk = await anext(chunks, None)
        if chunk is None:
            break
        deadline.touch()
        out = adapter.feed(chunk)
        if out and ex.ttft is None:
            ex.ttft = time.perf_counter() - ex.started
    tail = adapter.finish()
    if adapter.truncated or not (adapter.done or adapter.finished):
        tail = out + tail
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
    if ex.keep is not None:  # stored before the last byte: the next turn may come at once
        await ex.keep(getattr(adapter, "final", None))
    # One copy of what is left, however long: its last read, the adapter's end, the stream's.
    await send({"type": "http.response.body", "body": b"".join((out, tail, ex.surface.stream_end)),
                "more_body": False})


async def _refusal(target: Target, response: UpstreamResponse) -> Exception:
    """A non-2xx answer: a Failure to move on from, or the client's own error to relay."""
    status = response.status
    try:
        body = await response.read(_ERROR_BODY_LIMIT)
    except (TransportError, TimeoutError):
        body = b""
    profile = target.provider.profile
    message, kind, param, code = _error_fields(scrub(body, encoded(target.provider.secrets)),
                                               status, profile.error_message_keys)
    if status in _TARGET_FAILURES or status >= 500:
        if status in (401, 403):
            message = "rejected the gateway's credentials for this provider"
        retry_after = _seconds(response.headers.get("retry-after")) if status == 429 else None
        return Failure(target, f"HTTP {status}: {message}", status=status, retry_after=retry_after)
    error = UpstreamClientError(status, message, type=kind, param=param, code=code)
    error.context_overflow = code in profile.context_overflow_codes or bool(
        profile.context_overflow is not None and profile.context_overflow.search(message))
    return error


def _error_fields(body: bytes, status: int, message_keys: tuple[str, ...]
                  ) -> tuple[str, str | None, str | None, str | None]:
    """message, type, param, code from the upstream's error (its profile says where the
    message is)."""
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
        message = next((data[k] for k in message_keys if data.get(k)), None)
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


def upstream_headers(target: Target, request_id: str) -> dict[str, str]:
    headers = dict(target.provider.headers)
    headers["x-request-id"] = request_id
    return headers
