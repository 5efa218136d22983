"""GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: stored responses.

Authenticated with the gateway key as /v1/* is; a response is its key's only, so
another key's is a 404 worded as a missing one (gateway/apis/responses/state.py
holds the records).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.apis.responses import state
from gateway.core.echo import echo
from gateway.core.errors import GatewayError, InvalidRequest
from gateway.endpoints import error_response, json_response, principal_of

DEFAULT_LIMIT = 20  # input_items, as OpenAI's
MAX_LIMIT = 100


async def retrieve(request: Request) -> Response:
    """The response object, as its client was sent it."""
    try:
        if request.query_params.get("stream") in ("true", "1"):
            raise InvalidRequest("Replaying a stored response as a stream is not supported: "
                                 "retrieve it without 'stream'.", param="stream")
        record = await _record(request)
    except GatewayError as error:
        return error_response(error)
    return json_response(record["response"])


async def delete(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    try:
        runtime = request.app.state.runtime
        principal = await principal_of(request)
        if not await state.forget(runtime, principal, response_id):
            raise state.not_found(response_id)
    except GatewayError as error:
        return error_response(error)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def input_items(request: Request) -> Response:
    """The items that led to the response (the whole conversation up to it), newest first
    unless `order=asc`; a page of `limit` items after the item `after`."""
    query = request.query_params
    try:
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' is asc or desc.", param="order")
        limit = _limit(query.get("limit"))
        record = await _record(request)
        items = record["context"] if order == "asc" else record["context"][::-1]
        after = query.get("after")
        start = 0
        if after:
            start = next((i + 1 for i, item in enumerate(items) if item.get("id") == after), -1)
            if start < 0:
                raise InvalidRequest(f"No input item with id '{echo(after)}' in this "
                                     "response.", param="after")
    except GatewayError as error:
        return error_response(error)
    page = items[start:start + limit]
    return json_response({"object": "list", "data": page,
                          "first_id": page[0].get("id") if page else None,
                          "last_id": page[-1].get("id") if page else None,
                          "has_more": start + limit < len(items)})


async def _record(request: Request) -> dict:
    principal = await principal_of(request)
    return await state.stored(request.app.state.runtime, principal,
                              request.path_params["response_id"])


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"'limit' is a whole number from 1 to {MAX_LIMIT}.", param="limit")
    return limit
