"""Validate an embeddings request, naming the field that is wrong, in OpenAI's words.

The body is parsed and checked in one pass against `schema.EmbeddingsRequest`
(gateway/apis/validation.py words pydantic's errors). `input` is a union of
four shapes, and pydantic would answer a wrong one with each shape's
complaint; only when it is wrong, `input` is walked here to say in one
sentence what is wrong with it and where.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.embeddings.schema import EMBEDDINGS_REQUEST, MAX_INPUTS, MAX_TOKEN_ID
from gateway.apis.validation import empty_array, invalid_type, parse_request, short
from gateway.core.errors import InvalidRequest

_SHAPES = ("a string, an array of strings, an array of integers (token ids) or an array of "
           "arrays of integers")
_ITEMS = {str: "a string", int: "an integer", list: "an array"}


def validate_embeddings(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed embeddings request; else InvalidRequest."""
    return parse_request(EMBEDDINGS_REQUEST, body, "a JSON object with 'model' and 'input'",
                         fields={"input": input_problem})


def input_problem(value: Any) -> InvalidRequest | None:
    """What is wrong with `input`, or None if nothing is (then the generic words apply)."""
    if type(value) is str:
        return None if value else _empty_text("input")
    if type(value) is not list:
        return invalid_type("input", _SHAPES, value)
    if not value:
        return empty_array("input")
    kind = _kind(value[0])
    if kind is None:
        return invalid_type("input[0]", "a string, an integer or an array", value[0])
    if kind is not int and len(value) > MAX_INPUTS:
        return InvalidRequest(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(value)} instead.",
            param="input", code="array_above_max_length")
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if _kind(item) is not kind:
            return invalid_type(param, f"{_ITEMS[kind]}, as input[0] is", item)
        problem = (_empty_text(param) if kind is str and not item else
                   _token_problem(param, item) if kind is int else
                   _tokens_problem(param, item) if kind is list else None)
        if problem is not None:
            return problem
    return None


def _kind(item: Any) -> type | None:
    """What an item of `input` is: a text, a token id, an array of token ids; None: none of them."""
    if type(item) is float and item.is_integer():
        return int
    return type(item) if type(item) in _ITEMS else None


def _tokens_problem(param: str, tokens: list) -> InvalidRequest | None:
    if not tokens:
        return empty_array(param)
    for i, token in enumerate(tokens):
        if _kind(token) is not int:
            return invalid_type(f"{param}[{i}]", "an integer (a token id)", token)
        problem = _token_problem(f"{param}[{i}]", token)
        if problem is not None:
            return problem
    return None


def _token_problem(param: str, token: int | float) -> InvalidRequest | None:
    if 0 <= token <= MAX_TOKEN_ID:
        return None
    return InvalidRequest(f"Invalid value for '{param}': a token id is an integer from 0 to "
                          f"{MAX_TOKEN_ID}, but got {short(token)} instead.", param=param,
                          code="invalid_value")


def _empty_text(param: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': empty string. Each input must have "
                          "text to embed.", param=param, code="invalid_value")
