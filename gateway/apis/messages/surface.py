"""POST /v1/messages: Anthropic's Messages API, passed through or converted to chat.

A target whose profile lists `messages` (vllm, anthropic) gets the request as
it is, ruled by the profile's `api_params.messages`. Any other target gets it
converted to chat completions (to_chat.py) and its answer written back as a
message (adapt.py). A refusal of either moves the request to the next target.

Errors are Anthropic's (errors.py), each with a `request-id` header, as
Anthropic's API sends; a stream that breaks after its first byte ends with an
`error` event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.apis.base import PassedOrConverted, allowed_tools
from gateway.apis.chat.surface import IMAGE_TOKENS, translate_converted
from gateway.apis.messages import errors
from gateway.apis.messages.adapt import ConvertedAnswer
from gateway.apis.messages.native import NativeAnswer
from gateway.apis.messages.schema import (
    CORE_PARAMS,
    COUNT_TOKENS_REQUEST,
    KNOWN_PARAMS,
    MESSAGES_REQUEST,
)
from gateway.apis.messages.to_chat import chat_request
from gateway.apis.validation import parse_request
from gateway.core.balance import session_key
from gateway.core.errors import GatewayError, InvalidRequest
from gateway.core.tokens import of_chars
from gateway.core.translate import Translation, client_json, translate

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity

API = "messages"
# chat's names for what the conversion writes: errors and headers name what the client sent.
CLIENT_NAMES = {"stop": "stop_sequences", "user": "metadata.user_id",
                "reasoning_effort": "thinking", "max_completion_tokens": "max_tokens",
                "response_format": "output_config.format",
                "parallel_tool_calls": "tool_choice.disable_parallel_tool_use"}


def parse(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed Messages request; else InvalidRequest."""
    return _checked(parse_request(MESSAGES_REQUEST, body,
                                  "a JSON object with 'model', 'max_tokens' and 'messages'"))


def parse_count(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed count_tokens request; else InvalidRequest."""
    return _checked(parse_request(COUNT_TOKENS_REQUEST, body,
                                  "a JSON object with 'model' and 'messages'"))


def _checked(payload: dict) -> dict:
    """What the schema cannot say: a named tool_choice names its tool."""
    choice = payload.get("tool_choice")
    if choice is not None and choice["type"] == "tool" and not choice.get("name"):
        raise InvalidRequest("tool_choice.name: Field required when tool_choice.type is "
                             "'tool'.", param="tool_choice.name")
    return payload


def texts(payload: dict) -> Iterator[str]:
    """The system prompt and the text of every block, in order."""
    system = payload.get("system")
    if type(system) is str:
        yield system
    elif system:
        yield from (block["text"] for block in system)
    for message in payload["messages"]:
        content = message["content"]
        if type(content) is str:
            yield content
            continue
        for block in content:
            kind = block["type"]
            if kind == "text":
                yield block["text"]
            elif kind == "thinking":
                yield block["thinking"]
            elif kind == "tool_use":
                yield client_json(block["input"]).decode()
            elif kind == "tool_result":
                result = block.get("content")
                if type(result) is str:
                    yield result
                elif result:
                    yield from (part["text"] for part in result if part["type"] == "text")


def estimate_prompt(payload: dict) -> int:
    """Prompt tokens, roughly, as chat's are: the text, a fixed count an image, 4 a message."""
    chars = sum(map(len, texts(payload)))
    images = sum(1 for message in payload["messages"] if type(message["content"]) is list
                 for block in message["content"] if block["type"] == "image")
    if payload.get("tools"):
        chars += len(client_json(payload["tools"]))
    return of_chars(chars) + images * IMAGE_TOKENS + 4 * (len(payload["messages"]) + 1)


def tool_type(tool: dict) -> str:
    """`custom` for the client's own tools (no type), else the server tool's type."""
    return "custom" if tool.get("type") in (None, "custom") else tool["type"]


class MessagesCodec:
    """Messages requests to a target that speaks them: its dialect's rules apply."""

    api = API
    fan_out = None

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        dialect = target.dialect_for(API)
        out = {"model": target.model, "messages": payload["messages"]}
        if payload.get("tools"):
            out["tools"] = allowed_tools(payload["tools"], dialect, "custom", tool_type)
        translation = translate(payload, dialect, out, False, CORE_PARAMS, KNOWN_PARAMS)
        if stream:
            out["stream"] = True
        return translation

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> NativeAnswer:
        return NativeAnswer(payload["model"], target.provider.secrets, prompt_estimate)


class ToChatCodec:
    """Messages requests to a chat-only target: converted, the answer written back."""

    api = "chat"
    fan_out = None

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        chat, dropped = chat_request(payload, target.dialect)
        return translate_converted(chat, dropped, target, stream, CLIENT_NAMES)

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> ConvertedAnswer:
        return ConvertedAnswer(route, target.dialect, prompt_estimate, payload["model"],
                               target.provider.secrets, payload.get("stop_sequences"))


PASSTHROUGH = MessagesCodec()
TO_CHAT = ToChatCodec()


class MessagesSurface(PassedOrConverted):
    name = API
    paths = ("/v1/messages", "/messages")
    passthrough = PASSTHROUGH
    to_chat = TO_CHAT
    stream_end = b""  # message_stop (or an error event) ends it; there is no [DONE]
    stateful = False

    parse = staticmethod(parse)
    prompt_tokens = staticmethod(estimate_prompt)

    def completion_tokens(self, payload: dict, default: int) -> int:
        return payload["max_tokens"]

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        return session_key(affinity, (payload.get("metadata") or {}).get("user_id"),
                           texts(payload))

    def render_error(self, error: GatewayError) -> bytes:
        return errors.body(error)

    def error_status(self, error: GatewayError) -> int:
        return errors.status_of(error)

    def error_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def stream_error(self, error: GatewayError) -> bytes:
        return errors.event(error)

    def messages(self, payload: dict) -> object:
        return payload["messages"]


MESSAGES = MessagesSurface()
