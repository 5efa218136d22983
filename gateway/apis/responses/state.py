"""The conversation state the gateway owns for the Responses API: stored responses.

A response made with `store` (true unless the request says false, as OpenAI's
default is) is kept in the store, for the key that made it, `responses.ttl`
long. Its record holds all that the next turn needs, so that continuing it is
one read:

    {"v": 1,
     "context": [every input item that led to this response, expanded: the
                 earlier turns' inputs and outputs, then this request's own],
     "own": how many of the context's last items were this request's own,
     "response": the response object the client was sent}

`recall` turns a request's `previous_response_id` into the whole `input`
(context + the response's output + the new items), before admission, so the
history counts toward the prompt estimate and the limits, and every target
(any provider, a fallback included) sees a full conversation and never the id.
`keep` writes the record once the answer is whole, before its last byte is
sent (see gateway/core/attempt.py). Every item is given an id (`msg_...`) the
way OpenAI's input_items list shows them; a record is a few items more than
the last one, so storing whole contexts trades store memory (each turn holds
the conversation so far, up to `responses.max_bytes`) for one read a turn.

The Responses surface plugs these in as a `Stateful` one (gateway/apis/base.py):
`stateful = True`, `recall = staticmethod(state.recall)`, `keep =
staticmethod(state.keep)`; its answers set `final`. The recalled items carry
their ids and statuses, which chat conversion ignores; a passthrough to a target
that keeps nothing itself (`store: false`) may need to leave the ids out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from gateway import metrics
from gateway.apis.responses import objects
from gateway.core.echo import echo
from gateway.core.errors import InvalidRequest, NotFound, ServiceUnavailable
from gateway.logs import log
from gateway.store.base import StoreUnavailable

if TYPE_CHECKING:
    from gateway.core.auth import Principal
    from gateway.runtime import Runtime

VERSION = 1
NOT_FOUND = "response_not_found"
# An item's id as OpenAI writes them, by its type.
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
              "reasoning": "rs"}


def new_id(kind: str | None) -> str:
    return objects.new_id(_ID_PREFIX.get(kind or "", "item") + "_")


def as_items(value: object) -> list[dict]:
    """A request's `input` as a list of items: a string is one user message."""
    if value is None:
        return []
    if type(value) is str:
        return [{"type": "message", "role": "user", "content": value}]
    if type(value) is list:
        return value
    raise InvalidRequest("'input' must be a string or a list of items.", param="input")


def listed(item: dict) -> dict:
    """An input item as OpenAI's input_items list shows it: with its type, an id, a status,
    and text as content parts."""
    item = dict(item)
    if "type" not in item and "role" in item:
        item["type"] = "message"
    kind = item.get("type")
    if kind == "message":
        content = item.get("content")
        if type(content) is str:
            item["content"] = [{"type": "output_text", "text": content, "annotations": []}
                               if item.get("role") == "assistant"
                               else {"type": "input_text", "text": content}]
        item.setdefault("status", "completed")
    elif kind == "function_call_output":
        item.setdefault("status", "completed")
    if "id" not in item:
        item = {"id": new_id(kind), **item}
    return item


def encode(context: list[dict], own: int, response: dict) -> bytes:
    return orjson.dumps({"v": VERSION, "context": context, "own": own, "response": response})


async def stored(runtime: Runtime, principal: Principal, response_id: str, *,
                 param: str | None = None, what: str = "Response") -> dict:
    """The record of `response_id` for this key; a 404 when it is missing, expired or another
    key's, which the message does not tell apart."""
    started = time.perf_counter()
    try:
        data = await runtime.store.read_response(principal.key_id, response_id)
    except StoreUnavailable:
        metrics.child(metrics.STORE_ERRORS, "read_response").inc()
        raise _unavailable() from None
    metrics.child(metrics.STORE_DURATION, "read_response").observe(time.perf_counter() - started)
    try:
        record = orjson.loads(data) if data is not None else None
    except orjson.JSONDecodeError:
        record = None  # not a record this gateway wrote
    if type(record) is not dict or record.get("v") != VERSION:
        raise not_found(response_id, param=param, what=what)
    return record


def not_found(response_id: str, *, param: str | None = None, what: str = "Response") -> NotFound:
    return NotFound(f"{what} with id '{echo(response_id)}' not found.", param=param,
                    code=NOT_FOUND)


async def forget(runtime: Runtime, principal: Principal, response_id: str) -> bool:
    """Delete the key's stored response; False when it has none by that id."""
    try:
        return await runtime.store.delete_response(principal.key_id, response_id)
    except StoreUnavailable:
        metrics.child(metrics.STORE_ERRORS, "delete_response").inc()
        raise _unavailable() from None


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The gateway cannot reach stored responses right now; try "
                              "again shortly.", code="store_unavailable",
                              headers={"retry-after": "1"})


async def recall(runtime: Runtime, principal: Principal, payload: dict) -> dict:
    """The request with `previous_response_id` expanded into its `input`: the stored context,
    the stored response's output, then the request's own items. Without one, as it is."""
    previous = payload.get("previous_response_id")
    if previous is None:
        return payload
    if type(previous) is not str:
        raise InvalidRequest("'previous_response_id' must be a string.",
                             param="previous_response_id")
    record = await stored(runtime, principal, previous, param="previous_response_id",
                          what="Previous response")
    output = record["response"].get("output") or []
    # The id stays, for the answer to repeat; no codec sends it upstream (the history is in
    # `input`, and a native target is told `store: false`).
    return {**payload, "input": record["context"] + output + as_items(payload.get("input"))}


async def keep(runtime: Runtime, principal: Principal, asked: dict, sent: dict,
               final: dict | None) -> None:
    """Store the answered response unless the request said `store: false`: `asked` is the
    request as the client sent it, `sent` as `recall` expanded it, `final` the response
    object the client is sent. A record that cannot be written is logged, never raised:
    the client has its answer either way."""
    if asked.get("store") is False or type(final) is not dict:
        return
    response_id = final.get("id")
    try:
        own = [listed(item) for item in as_items(asked.get("input"))]
        history: list[dict] = []
        if asked.get("previous_response_id") is not None:
            expanded = sent["input"]
            history = [i if "id" in i else listed(i)
                       for i in expanded[:len(expanded) - len(own)]]
        data = encode(history + own, len(own), final)
    except Exception:  # whatever the input held, the client has its answer
        log.exception("response not stored: its record could not be written",
                      extra={"fields": {"response_id": echo(str(response_id))}})
        return
    settings = runtime.config.responses
    fields = {"response_id": echo(str(response_id)), "bytes": len(data)}
    started = time.perf_counter()
    try:
        if type(response_id) is not str:
            raise ValueError("no id")
        saved = await runtime.store.save_response(principal.key_id, response_id, data,
                                                  settings.ttl, settings.max_bytes)
    except StoreUnavailable as exc:
        metrics.child(metrics.STORE_ERRORS, "save_response").inc()
        log.warning("response not stored: the store is unavailable",
                    extra={"fields": fields | {"reason": str(exc)}})
        return
    except ValueError:
        log.warning("response not stored: its id cannot be a stored response's",
                    extra={"fields": fields})
        return
    metrics.child(metrics.STORE_DURATION, "save_response").observe(time.perf_counter() - started)
    if not saved:
        log.warning("response not stored: its record is over responses.max_bytes",
                    extra={"fields": fields | {"max_bytes": settings.max_bytes}})
