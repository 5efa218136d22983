"""POST /v1/responses: OpenAI's Responses API, passed through or converted to chat.

A target whose profile lists `responses` (openai, vllm) gets the request as it
is, ruled by the profile's `api_params.responses`, with `store: false` (the
gateway keeps conversations, not the target). Built-in tools reach it only if
the profile's `tools` rule lists their types. Any other target gets the request
converted to chat completions (gateway/apis/responses/to_chat.py) and its answer
written back as a response object (adapt.py). A refusal of either moves the
request to the next target, as any refusal of a target's dialect does, so a
route can fall back between a native target and a converted one.

Errors are OpenAI's error body; a stream that breaks after its first byte ends
with `response.failed` (a Responses stream has no `[DONE]`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.apis.base import OpenAIErrors, PassedOrConverted, allowed_tools
from gateway.apis.chat.surface import IMAGE_TOKENS, translate_converted
from gateway.apis.responses import state
from gateway.apis.responses.adapt import ConvertedAnswer
from gateway.apis.responses.events import Writer
from gateway.apis.responses.native import NativeAnswer
from gateway.apis.responses.objects import echoed
from gateway.apis.responses.schema import CORE_PARAMS, KNOWN_PARAMS, RESPONSES_REQUEST
from gateway.apis.responses.to_chat import CLIENT_NAMES, chat_request
from gateway.apis.validation import empty_array, parse_request
from gateway.core.balance import session_key
from gateway.core.errors import GatewayError, InvalidRequest
from gateway.core.tokens import of_chars
from gateway.core.translate import Translation, client_json, translate

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity

API = "responses"


# Refused on every target: the gateway keeps conversations itself (state.py: previous_response_id
# is expanded before admission), and answers at once.
REFUSED = {
    "conversation": "is not supported: a conversation stored at OpenAI is not reached "
                    "through the gateway; send the whole conversation in 'input'",
    "background": "is not supported: the gateway answers every request at once, so there is "
                  "no response to poll; send the request without it",
}


# `input` is a string or items: of an empty array, say that, not that it is not a string.
_FIELDS = {"input": lambda value: empty_array("input") if value == [] else None}


def parse(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed Responses request; else InvalidRequest."""
    payload = parse_request(RESPONSES_REQUEST, body, "a JSON object with 'model' and 'input'",
                            fields=_FIELDS)
    for name, why in REFUSED.items():
        if payload.get(name) not in (None, False):
            raise InvalidRequest(f"Parameter '{name}' {why}.", param=name,
                                 code="unsupported_parameter")
    return payload


def input_texts(payload: dict) -> Iterator[str]:
    """The instructions and the text of every input item, in order."""
    if payload.get("instructions"):
        yield payload["instructions"]
    items = payload["input"]
    if type(items) is str:
        yield items
        return
    for item in items:
        kind = item.get("type", "message")  # as the schema: only a missing type is a message
        if kind == "message":
            yield from _part_texts(item.get("content"))
        elif kind == "function_call":
            yield from _part_texts(item.get("arguments"))
        elif kind == "function_call_output":
            yield from _part_texts(item.get("output"))
        elif kind == "reasoning":
            yield from _part_texts(item.get("summary"))


def _part_texts(content: object) -> Iterator[str]:
    if type(content) is str:
        yield content
    elif type(content) is list:
        for part in content:
            text = part.get("text") if type(part) is dict else None
            if type(text) is str:
                yield text


def estimate_prompt(payload: dict) -> int:
    """Prompt tokens, roughly, as chat's are: its text, a fixed count an image, 4 an item."""
    chars = sum(map(len, input_texts(payload)))
    items = payload["input"]
    images = 0
    if type(items) is list:
        images = sum(1 for item in items if type(item.get("content")) is list
                     for part in item["content"]
                     if type(part) is dict and part.get("type") == "input_image")
    if payload.get("tools"):
        chars += len(client_json(payload["tools"]))
    count = (len(items) if type(items) is list else 1) + bool(payload.get("instructions"))
    return of_chars(chars) + images * IMAGE_TOKENS + 4 * count


def _tool_type(tool: dict) -> str:
    return tool["type"]


class ResponsesCodec:
    """Responses requests to a target that speaks them: its dialect's rules apply."""

    api = API
    fan_out = None

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        dialect = target.dialect_for(API)
        out = {"model": target.model, "input": payload["input"]}
        if payload.get("tools"):
            out["tools"] = allowed_tools(payload["tools"], dialect, "function", _tool_type)
        if payload.get("prompt") is not None:
            out["prompt"] = payload["prompt"]
        # Not chat's stream: a Responses stream always ends with its usage, and takes no
        # stream_options.include_usage.
        translation = translate(payload, dialect, out, False, CORE_PARAMS, KNOWN_PARAMS)
        out["store"] = False
        if stream:
            out["stream"] = True
            if payload.get("stream_options"):
                out["stream_options"] = payload["stream_options"]
        return translation

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> NativeAnswer:
        return NativeAnswer(payload["model"], target.provider.secrets, prompt_estimate,
                            payload.get("store") is not False,
                            payload.get("previous_response_id"))


class ToChatCodec:
    """Responses requests to a chat-only target: converted, the answer written back."""

    api = "chat"
    fan_out = None

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        chat, dropped = chat_request(payload, target.dialect)
        return translate_converted(chat, dropped, target, stream, CLIENT_NAMES)

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> ConvertedAnswer:
        return ConvertedAnswer(route, target.dialect, prompt_estimate, payload["model"],
                               target.provider.secrets, echoed(payload))


PASSTHROUGH = ResponsesCodec()
TO_CHAT = ToChatCodec()


class ResponsesSurface(PassedOrConverted, OpenAIErrors):
    name = API
    paths = ("/v1/responses", "/responses")
    passthrough = PASSTHROUGH
    to_chat = TO_CHAT
    stream_end = b""  # the last event (response.completed...) ends it; there is no [DONE]
    stateful = True  # previous_response_id and store: the gateway keeps the conversation
    recall = staticmethod(state.recall)
    keep = staticmethod(state.keep)

    parse = staticmethod(parse)
    prompt_tokens = staticmethod(estimate_prompt)

    def completion_tokens(self, payload: dict, default: int) -> int:
        return payload.get("max_output_tokens") or default

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        return session_key(affinity, payload.get("user"), input_texts(payload))

    def stream_error(self, error: GatewayError) -> bytes:
        """`response.failed`, for a stream whose adapter did not write its own."""
        return Writer("", {}).fail(error.code, error.message)

    def messages(self, payload: dict) -> object:
        return payload["input"]


RESPONSES = ResponsesSurface()
