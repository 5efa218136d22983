"""What every client API does to an upstream's whole answer before relaying it.

An upstream may echo the key it was sent (in an error, in a debug field): the
provider's keys are masked in everything relayed. A 200 whose body is not the
answer the API expects (not JSON, another shape, an error object) is the
target's failure, so the request moves on to the next target.
"""

from __future__ import annotations

import functools

import orjson

from gateway.core.errors import UpstreamError


@functools.cache
def encoded(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """A provider's keys as bytes, made once per provider rather than per attempt."""
    return tuple(s.encode() for s in secrets)


def scrub(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """`data` with the provider's keys masked: an upstream may echo the key it was sent."""
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, b"***")
    return data


def load_answer(data: bytes, secrets: tuple[bytes, ...], key: str, what: str) -> dict:
    """The upstream's answer as JSON, keys masked; UpstreamError unless it is an object whose
    `key` is an array (`choices`, `data`). `what` names the answer expected."""
    try:
        answer = orjson.loads(scrub(data, secrets))
    except orjson.JSONDecodeError:
        raise UpstreamError("The upstream answered with a body that is not JSON.") from None
    if type(answer) is not dict or type(answer.get(key)) is not list:
        error = answer.get("error") if type(answer) is dict else None
        if error is not None:
            detail = error.get("message") if type(error) is dict else error
            raise UpstreamError(f"The upstream answered 200 with an error: {str(detail)[:500]}")
        raise UpstreamError(f"The upstream answered with JSON that is not {what}.")
    return answer
