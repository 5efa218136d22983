"""POST /v1/messages/count_tokens: how many input tokens a Messages request would be.

Authenticated as /v1/messages is, and the model resolved the same way (a key
that may not use the model gets the 404 of one that does not exist). When the
route's first target speaks count_tokens itself (its profile lists
`messages_count_tokens`: vllm, anthropic) and is available, the request is
passed to it: ruled by the profile's api_params.messages as a Messages request
is, with the provider's key and headers as an attempt sends them, and its
answer relayed, keys masked. Otherwise, and when that upstream fails (no
connection, too slow, any error status, an answer without `input_tokens`), the
answer is the gateway's own estimate, the one admission reserves for
/v1/messages (surface.estimate_prompt), marked `x-gateway-estimated: true`;
why is in the request's log line (`failures`). An answer is only ever a count,
so a failing upstream never fails the client, and no other target is tried.

It answers no text, so no limit counts it: no request is counted, no tokens
are reserved or charged, no usage is recorded, and the store is not asked
(Anthropic limits count_tokens apart from Messages as well). Metrics count it
under the api `messages_count_tokens`; its health checks and breakers are the
Messages requests' business, so a failed count does not touch them.

A plain ASGI app, as the pipeline is; errors in Anthropic's shape with a `request-id`.
"""

from __future__ import annotations

import time

import orjson

from gateway import metrics
from gateway.apis.messages.schema import CountTokensRequest, MessagesRequest
from gateway.apis.messages.surface import MESSAGES, PASSTHROUGH, estimate_prompt, parse_count
from gateway.apis.relayed import encoded, scrub
from gateway.config import Route, Target
from gateway.core.accept import read_body, read_headers
from gateway.core.asgi import send_error, send_json
from gateway.core.attempt import Failure, open_upstream
from gateway.core.auth import authenticate
from gateway.core.deadline import Deadline
from gateway.core.errors import ClientDisconnected, GatewayError, UpstreamError
from gateway.core.route import resolve
from gateway.logs import REQUEST_ID, log, log_request
from gateway.runtime import Runtime
from gateway.upstream import TransportError

API = "messages_count_tokens"  # the profiles' `apis` name, and the metrics' api label
PATHS = ("/v1/messages/count_tokens", "/messages/count_tokens")
# What only /v1/messages takes (max_tokens, sampling, stream...): count_tokens refuses them.
_ANSWER_ONLY = (MessagesRequest.__required_keys__ | MessagesRequest.__optional_keys__) - (
    CountTokensRequest.__required_keys__ | CountTokensRequest.__optional_keys__)
_ANSWER_LIMIT = 64 * 1024  # `{"input_tokens": N}`, and what else an upstream adds


class CountTokens:
    """The ASGI app of PATHS."""

    def __init__(self, state) -> None:
        self.state = state  # holds `.runtime`, swapped whole on reload

    async def __call__(self, scope, receive, send) -> None:
        runtime = self.state.runtime
        config = runtime.config
        incoming = read_headers(scope)
        request_id = incoming.request_id
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        line: dict = {"api": API, "key": None, "model": None, "target": None, "status": 0}
        target_key = None
        try:
            principal = await authenticate(config.master_digest, runtime.keyring, incoming.key)
            line["key"] = principal.name
            body = await read_body(receive, incoming, config.max_body_bytes, config.body_timeout)
            payload = parse_count(body)
            route = resolve(config, payload["model"], principal)
            line["model"] = route.alias
            estimate = estimate_prompt(payload)  # also finds what cannot be written as JSON
            target = _speaking(runtime, route.for_model(payload["model"]), line)
            answer = None if target is None else await _passed(runtime, target, payload,
                                                                 request_id, line)
            if target is None or answer is None:
                headers = {"x-gateway-estimated": "true"}
                answer = orjson.dumps({"input_tokens": estimate})
                line["input_tokens"] = estimate
            else:
                headers = {"x-gateway-target": target.name}
                line["target"], target_key = target.name, target.key
            line["status"] = 200
            await send_json(send, 200, answer, request_id, headers)
        except GatewayError as error:
            line["status"], line["error"] = MESSAGES.error_status(error), error.message
            await send_error(send, error, MESSAGES.render_error(error), request_id,
                             MESSAGES.error_headers(request_id), line["status"])
        except ClientDisconnected:
            line["status"], line["error"] = 499, "client disconnected"
        except Exception:
            log.exception("unexpected error in count_tokens")
            failed = GatewayError("The gateway failed unexpectedly.")
            line["status"], line["error"] = 500, "internal error"
            await send_error(send, failed, MESSAGES.render_error(failed), request_id,
                             MESSAGES.error_headers(request_id))
        finally:
            seconds = time.perf_counter() - started
            metrics.request_done(API, line["model"], target_key, line["key"], line["status"],
                                 seconds, None)
            line["latency_ms"] = round(seconds * 1000, 1)
            log_request(line)
            REQUEST_ID.reset(token)


def _speaking(runtime: Runtime, route: Route, line: dict) -> Target | None:
    """The route's first target, if it counts tokens itself and may be asked now."""
    target = next(route.attempts(), None)
    if target is None or API not in target.provider.profile.apis:
        return None
    if not runtime.health.state(target.key).available(time.monotonic()):
        line["failures"] = [f"{target.name}: resting or its breaker is open"]
        return None
    return target


async def _passed(runtime: Runtime, target: Target, payload: dict, request_id: str,
                  line: dict) -> bytes | None:
    """The target's answer, keys masked; None (and why, in `line`) if it gave none."""
    provider = target.provider
    limits = provider.timeouts
    try:
        asked = {name: value for name, value in payload.items() if name not in _ANSWER_ONLY}
        body = PASSTHROUGH.translate(asked, target, False).encode()
        async with Deadline(min(limits.first_byte, limits.total), limits.idle, limits.total):
            response = await open_upstream(runtime.transports[provider.name], target, API, body,
                                           request_id)
            try:
                data = await response.read(_ANSWER_LIMIT)
            finally:
                response.close()
        data = scrub(data, encoded(provider.secrets))
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            answer = None
        count = answer.get("input_tokens") if type(answer) is dict else None
        if type(count) is not int or count < 0:
            raise UpstreamError("answered without a count of input_tokens")
    except Failure as failure:
        line["failures"] = [str(failure)]
    except GatewayError as error:  # the dialect refused the request, or the upstream did
        line["failures"] = [f"{target.name}: {error.message}"]
    except TimeoutError:
        line["failures"] = [f"{target.name}: sent no count in time"]
    except TransportError as exc:
        line["failures"] = [f"{target.name}: {exc}"]
    else:
        line["input_tokens"] = count
        return data
    return None
