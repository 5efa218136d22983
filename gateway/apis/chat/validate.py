"""Validate a chat-completions request, naming the field that is wrong, in OpenAI's words.

The body is parsed and checked in one pass against `schema.ChatRequest`;
pydantic's errors become OpenAI-shaped 400s (gateway/apis/validation.py), and
the one error kind of chat's own, a field only assistant messages may carry,
is worded here.
"""

from __future__ import annotations

from pydantic_core import ErrorDetails

from gateway.apis.chat.schema import CHAT_REQUEST
from gateway.apis.validation import parse_request
from gateway.core.errors import InvalidRequest


def _assistant_only(param: str, err: ErrorDetails) -> InvalidRequest:
    field = err["ctx"]["field"]
    return InvalidRequest(f"Invalid parameter '{param}.{field}': only assistant messages "
                          f"may have '{field}'.", param=f"{param}.{field}", code="invalid_value")


_SPECIAL = {"assistant_only": _assistant_only}


def validate_chat(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed chat-completions request; else InvalidRequest."""
    return parse_request(CHAT_REQUEST, body, "a JSON object with 'model' and 'messages'", _SPECIAL)
