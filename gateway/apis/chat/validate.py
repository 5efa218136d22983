"""Validate a chat-completions request, naming the field that is wrong, in OpenAI's words.

The body is parsed and checked in one pass against `schema.ChatRequest`;
pydantic's errors become OpenAI-shaped 400s (`Invalid type for
'messages[0].content': expected a string or an array, but got an integer
instead.`, gateway/apis/validation.py).
"""

from __future__ import annotations

from gateway.apis.chat.schema import CHAT_REQUEST
from gateway.apis.validation import validate


def validate_chat(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed chat-completions request; else InvalidRequest."""
    return validate(CHAT_REQUEST, body, "'model' and 'messages'")
