"""Validate a client API's request body against its pydantic schema, in OpenAI's words.

Every OpenAI-style API parses and checks its body in one pass (`validate_json`)
and turns pydantic's errors into an OpenAI-shaped 400 naming the field that is
wrong (`Invalid type for 'messages[0].content': expected a string or an array,
but got an integer instead.`). A schema can word its own error kinds
(`special`: a custom error's type to its message) and its own fields
(`fields`: for a union whose alternatives pydantic would list one by one, such
as embeddings' `input`); everything else is worded here, the same for every API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, from_json

from gateway.core.accept import SEND_JSON
from gateway.core.errors import InvalidRequest

# A custom error kind's message: given the parameter's name and pydantic's error.
Special = Callable[[str, ErrorDetails], InvalidRequest]
# A field's own wording: given its value as sent; None to leave it to the generic words.
FieldCheck = Callable[[Any], InvalidRequest | None]

_EXPECTED = {
    "string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
    "float_type": "a decimal", "bool_type": "a boolean", "list_type": "an array",
    "dict_type": "an object", "typed_dict_type": "an object", "model_type": "an object",
}


def parse_request(adapter: TypeAdapter, body: bytes, empty: str,
                  special: Mapping[str, Special] | None = None,
                  fields: Mapping[str, FieldCheck] | None = None) -> dict:
    """The parsed request if `body` is valid for `adapter`; else InvalidRequest.

    `empty` says what was expected, for an empty body."""
    if not body.strip():
        raise InvalidRequest(f"The request body is empty; expected {empty}.", code="invalid_json")
    try:
        # A TypedDict is a plain dict at run time, with every extra parameter kept.
        return cast(dict, adapter.validate_json(body))
    except ValidationError as exc:
        raise explain(exc, body, special or {}, fields or {}) from None


def explain(exc: ValidationError, body: bytes, special: Mapping[str, Special],
            fields: Mapping[str, FieldCheck]) -> InvalidRequest:
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        detail = errors[0]["ctx"].get("error", "") if errors[0].get("ctx") else ""
        return InvalidRequest(f"The request body is not valid JSON: {detail}. {SEND_JSON}",
                              code="invalid_json")
    document = _document(body)
    located = [(_path(document, err), err) for err in errors]
    # The deepest error is the most specific; others at the same place are union alternatives.
    deepest = max(len(path) for path, _ in located)
    here = [(path, err) for path, err in located if len(path) == deepest]
    path, err = here[0]
    param = _format(path)
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")
    if not path:
        return InvalidRequest(
            f"The request body must be a JSON object, but got {kind_of(value)} instead.",
            code="invalid_type")
    own = fields.get(path[0]) if isinstance(document, dict) and path[0] in document else None
    worded = own(document[path[0]]) if own is not None else None
    if worded is not None:
        return worded
    if kind in special:
        return special[kind](param, err)
    if kind == "literal_error":
        expected = err["ctx"]["expected"]
        return InvalidRequest(
            f"Invalid value for '{param}': {short(value)}. Supported values are: {expected}.",
            param=param, code="invalid_value")
    if kind == "too_short":
        return empty_array(param)
    if kind == "finite_number":
        return InvalidRequest(f"Invalid value for '{param}': expected a finite number.",
                              param=param, code="invalid_value")
    if kind in ("greater_than_equal", "less_than_equal", "string_too_short"):
        return InvalidRequest(f"Invalid value for '{param}': {err['msg'].lower()}, "
                              f"but got {short(value)} instead.", param=param, code="invalid_value")
    expected = [_EXPECTED[e["type"]] for _, e in here if e["type"] in _EXPECTED]
    if expected:
        wanted = " or ".join(dict.fromkeys(expected))
        return invalid_type(param, wanted, value)
    return InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param,
                          code="invalid_value")


def empty_array(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.", param=param, code="empty_array")


def invalid_type(param: str, wanted: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {wanted}, but got {kind_of(value)} instead.",
        param=param, code="invalid_type")


def _document(body: bytes) -> Any:
    """The body as Python, leniently (NaN, huge numbers): only to locate an error in it."""
    try:
        return from_json(body, allow_inf_nan=True)
    except ValueError:
        return None


def _path(document: Any, err: ErrorDetails) -> tuple:
    """The error's location in the request, without pydantic's union-member tags."""
    loc = err["loc"]
    last = len(loc) - 1 if err["type"] == "missing" else len(loc)
    path: list = []
    node = document
    for i, part in enumerate(loc):
        if i == last:
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        # anything else is the name of a union member, not a place in the request
    return tuple(path)


def _format(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
