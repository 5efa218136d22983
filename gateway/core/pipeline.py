"""POST to a client API: the request pipeline, stage by stage, the same for every API.

accept -> authenticate -> plan -> admit -> relay (translate, attempt, adapt) -> settle
(its metrics and log line once the loop's turn is over: account.py).
The surface (gateway/apis/) is what differs: it parses the body, says what the
request will cost and writes its errors. It is a plain ASGI app, not a
Starlette endpoint: this is the hot path, and it needs the raw `receive` to
notice a client that disconnects.
"""

from __future__ import annotations

import functools
import time
from typing import cast

from gateway import metrics
from gateway.apis.base import Stateful, Surface
from gateway.core.accept import read_body, read_headers
from gateway.core.account import settle
from gateway.core.asgi import send_error
from gateway.core.auth import authenticate
from gateway.core.disconnect import until_disconnect
from gateway.core.errors import ClientDisconnected, GatewayError
from gateway.core.exchange import Exchange
from gateway.core.relay import relay
from gateway.core.route import resolve
from gateway.logs import REQUEST_ID, log


class Pipeline:
    def __init__(self, state, surface: Surface) -> None:
        self.state = state  # holds `.runtime`, swapped whole on reload
        self.surface = surface
        self.stateful = cast(Stateful, surface) if surface.stateful else None

    async def __call__(self, scope, receive, send) -> None:
        runtime = self.state.runtime
        config = runtime.config
        surface = self.surface
        incoming = read_headers(scope)
        ex = Exchange(incoming.request_id, time.perf_counter(), surface)
        token = REQUEST_ID.set(ex.request_id)
        try:
            principal = await authenticate(config.master_digest, runtime.keyring, incoming.key)
            ex.key_name = principal.name
            body = await read_body(receive, incoming, config.max_body_bytes, config.body_timeout)
            payload = surface.parse(body)
            if config.log_prompts:
                ex.messages = surface.messages(payload)
            route = ex.route = resolve(config, payload["model"], principal)
            ex.alias = route.alias
            metrics.child(metrics.IN_FLIGHT, route.alias).inc()
            ex.in_flight = True
            ex.stream = payload.get("stream") is True
            if self.stateful is not None:  # what it continues counts toward the limits
                asked = payload
                payload = await self.stateful.recall(runtime, principal, payload)
                ex.keep = functools.partial(self.stateful.keep, runtime, principal, asked,
                                            payload)
            admitted = ex.admitted = await runtime.limiter.admit(principal, route, surface,
                                                                 payload, ex.request_id)
            ex.limit_headers = admitted.headers
            runtime.recorder.hold(ex.request_id, [(admitted.key_id, c.scope, ex.request_id)
                                                  for c in admitted.checks if c.kind == "lease"])
            await until_disconnect(scope, receive, relay(ex, surface, route, payload, runtime, send))
        except GatewayError as error:
            ex.status, ex.error = surface.error_status(error), error.message
            if not ex.committed:
                extra = {**ex.limit_headers, **surface.error_headers(ex.request_id)}
                if ex.attempts:
                    extra["x-gateway-attempts"] = str(ex.attempts)
                await send_error(send, error, surface.render_error(error), ex.request_id, extra,
                                 surface.error_status(error))
        except ClientDisconnected:
            ex.status, ex.error = 499, "client disconnected"
        except Exception:
            log.exception("unexpected error in the request pipeline")
            ex.status, ex.error = 500, "internal error"
            if not ex.committed:
                failed = GatewayError("The gateway failed unexpectedly.")
                await send_error(send, failed, surface.render_error(failed), ex.request_id,
                                 surface.error_headers(ex.request_id))
        finally:
            await settle(runtime, ex)
            REQUEST_ID.reset(token)

