"""Translate: the canonical (OpenAI-shaped) request becomes the body and headers one target expects.

The client's payload is never changed in place: a fallback to another target
translates the original again.
"""

from __future__ import annotations

import orjson

from gateway.config import Target


def upstream_body(payload: dict, target: Target) -> bytes:
    return orjson.dumps(payload | {"model": target.model})


def upstream_headers(target: Target, request_id: str) -> dict[str, str]:
    headers = dict(target.provider.headers)
    headers["x-request-id"] = request_id
    return headers
