"""OpenAI's Responses request (POST /v1/responses), as a pydantic schema.

As for chat (gateway/apis/chat/schema.py): the body is parsed and checked in
one pass, extra fields pass (a native Responses upstream takes more than is
written here), and ranges belong to each provider's profile
(`api_params: {responses: ...}`). `KNOWN_PARAMS` are OpenAI's parameters: a
profile that does not list one does not support it.

`input` is a string or a list of items. An item is picked by its `type`; the
SDKs send a message without one (`{"role": "user", "content": "..."}`), so an
item with a `role` and no `type` is a message. Items, parts, tools and formats
of other types pass the schema as they are: a native target may know them, and
the conversion to chat refuses them by name (gateway/apis/responses/to_chat.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter
from typing_extensions import TypedDict

from gateway.apis.chat.schema import OPEN, Positive, _integral


def _by_type(known: tuple[str, ...]):
    """A discriminator: an object's `type` if it is one of `known`, else "other"."""
    def kind(value: Any) -> str:
        found = value.get("type") if isinstance(value, dict) else None
        return found if found in known else "other"
    return Discriminator(kind)


class InputText(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["input_text"]
    text: str


class OutputText(TypedDict):
    """An earlier answer's text, sent back in an assistant message."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["output_text"]
    text: str


class InputImage(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["input_image"]
    image_url: NotRequired[str | None]
    file_id: NotRequired[str | None]
    detail: NotRequired[str | None]


class OtherPart(TypedDict):
    """input_file, input_audio, refusal...: passed on to a native target as they are."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


Part = Annotated[
    Annotated[InputText, Tag("input_text")] | Annotated[OutputText, Tag("output_text")]
    | Annotated[InputImage, Tag("input_image")] | Annotated[OtherPart, Tag("other")],
    _by_type(("input_text", "output_text", "input_image")),
]


class Message(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: NotRequired[Literal["message"]]
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[Part]


class FunctionCall(TypedDict):
    """A function call of an earlier answer, sent back so its output can follow."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutput(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Part]


class SummaryText(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["summary_text"]
    text: str


class Reasoning(TypedDict):
    """An earlier answer's reasoning, sent back: its summary is the reasoning text."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["reasoning"]
    summary: list[SummaryText]


class OtherItem(TypedDict):
    """item_reference, built-in tool calls...: passed on to a native target as they are."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")


def _item_kind(item: Any) -> str:
    if not isinstance(item, dict):
        return "message"  # the error then says an item is an object
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    return kind if kind in ITEM_TYPES else "other"


Item = Annotated[
    Annotated[Message, Tag("message")] | Annotated[FunctionCall, Tag("function_call")]
    | Annotated[FunctionCallOutput, Tag("function_call_output")]
    | Annotated[Reasoning, Tag("reasoning")] | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_kind),
]


class FunctionTool(TypedDict):
    """Responses' function tool: flat, not chat's `{"type", "function": {...}}`."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["function"]
    name: str
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


class OtherTool(TypedDict):
    """A built-in tool (web_search, file_search, code_interpreter...): its `type` names it."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    _by_type(("function",)),
]


class FunctionChoice(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["function"]
    name: str


ToolChoice = (Literal["none", "auto", "required"]
              | Annotated[Annotated[FunctionChoice, Tag("function")]
                          | Annotated[OtherTool, Tag("other")], _by_type(("function",))])


class PlainFormat(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["text", "json_object"]


class SchemaFormat(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["json_schema"]
    name: str
    schema: dict[str, Any]
    description: NotRequired[str | None]
    strict: NotRequired[bool | None]


class UnknownFormat(TypedDict):
    """Matches no format: only here to word an unknown `type` as OpenAI does."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["text", "json_object", "json_schema"]


_FORMATS = {"text": "plain", "json_object": "plain", "json_schema": "schema"}


def _format_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else None
    return _FORMATS.get(kind, "unknown") if type(kind) is str else "unknown"


TextFormat = Annotated[
    Annotated[PlainFormat, Tag("plain")] | Annotated[SchemaFormat, Tag("schema")]
    | Annotated[UnknownFormat, Tag("unknown")],
    Discriminator(_format_kind),
]


class Text(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    format: NotRequired[TextFormat | None]
    verbosity: NotRequired[str | None]


class ReasoningOptions(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    effort: NotRequired[str | None]
    summary: NotRequired[str | None]


class StreamOptions(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    include_obfuscation: NotRequired[bool | None]


class ResponsesRequest(TypedDict):
    """POST /v1/responses. Every optional parameter also accepts null, meaning "not set"."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    model: Annotated[str, Field(min_length=1)]
    input: str | Annotated[list[Item], Field(min_length=1)]
    instructions: NotRequired[str | None]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    text: NotRequired[Text | None]
    reasoning: NotRequired[ReasoningOptions | None]
    max_output_tokens: NotRequired[Positive | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=20), BeforeValidator(_integral)]
                              | None]
    user: NotRequired[str | None]
    metadata: NotRequired[dict[str, str] | None]
    store: NotRequired[bool | None]
    previous_response_id: NotRequired[str | None]
    include: NotRequired[list[str] | None]
    truncation: NotRequired[Literal["auto", "disabled"] | None]
    max_tool_calls: NotRequired[Positive | None]
    background: NotRequired[bool | None]
    service_tier: NotRequired[str | None]
    prompt_cache_key: NotRequired[str | None]
    safety_identifier: NotRequired[str | None]
    prompt: NotRequired[dict[str, Any] | None]
    conversation: NotRequired[str | dict[str, Any] | None]


RESPONSES_REQUEST: TypeAdapter[ResponsesRequest] = TypeAdapter(ResponsesRequest)

# Parameters the request path itself owns; profiles do not rule on them. The codecs write
# `tools` (a profile's `tools` rule lists the tool types a native target takes) and
# `prompt` (a stored prompt template: part of the input, as `input` is).
CORE_PARAMS = frozenset({"model", "input", "stream", "stream_options", "store",
                         "previous_response_id", "tools", "prompt"})
# OpenAI's parameters: a profile that does not list one does not support it.
KNOWN_PARAMS = frozenset(ResponsesRequest.__annotations__) - CORE_PARAMS
