"""The OpenAI chat-completions request, as a pydantic schema.

Validation parses and checks the body in one pass (`validate_json`), as fast
as a hand-written check after orjson. The schema also names every parameter the
gateway knows as OpenAI's (`KNOWN_PARAMS`): a profile that does not support one
of them drops or rejects it by policy, never silently, while unknown extras
follow the profile's `extras` setting.

Only the shape is checked here, the same for every upstream. Ranges and
support differ by provider and belong to the provider's profile.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

# Extra fields pass (providers take extras); types are strict at every level (no "yes" for true).
OPEN = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


def _integral(value: Any) -> Any:
    """2.0 is the integer 2 to JSON (and to JSON Schema); 2.5 stays a decimal, refused."""
    return int(value) if type(value) is float and value.is_integer() else value


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1), BeforeValidator(_integral)]
Positive = Annotated[int, Field(ge=1, le=2**63 - 1), BeforeValidator(_integral)]


class TextPart(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["text"]
    text: str


class ImageURL(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    url: str
    detail: NotRequired[str]


class ImagePart(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["image_url"]
    image_url: ImageURL


class OtherPart(TypedDict):
    """input_audio, file, refusal... passed on as they are."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


def _part_kind(part: Any) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    return kind if kind in ("text", "image_url") else "other"


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")] | Annotated[ImagePart, Tag("image_url")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_part_kind),
]


class FunctionCall(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    name: NotRequired[str]
    arguments: NotRequired[str]


class ToolCall(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    id: NotRequired[str]
    type: NotRequired[str]
    function: NotRequired[FunctionCall]


ROLES = ("system", "developer", "user", "assistant", "tool", "function")
Content = str | list[ContentPart]


class ContentMessage(TypedDict):
    """system, developer and user messages: content is required."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    role: Literal["system", "developer", "user"]
    content: Content
    name: NotRequired[str | None]


class ToolMessage(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class AssistantMessage(TypedDict):
    """Content may be null when the message carries tool calls; reasoning under either name."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    role: Literal["assistant", "function"]
    content: NotRequired[Content | None]
    name: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCall] | None]
    reasoning_content: NotRequired[str | None]
    reasoning: NotRequired[str | None]


class UnknownRoleMessage(TypedDict):
    """Matches no valid message: only here to report a missing or unknown role clearly."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    role: Literal[ROLES]  # type: ignore[valid-type]


# What only an assistant's turn can carry: the gateway reads some of these (the tool calls'
# arguments for the token estimate, the reasoning to rename it) and must find them checked.
ASSISTANT_ONLY = ("tool_calls", "function_call", "reasoning_content", "reasoning")


def _no_assistant_fields(message: dict) -> dict:
    """A system, user or tool message with tool calls or reasoning is refused, naming the
    field; null or an empty list (what some clients send for every field) is nothing."""
    for field in ASSISTANT_ONLY:
        value = message.get(field)
        if value is not None and value != []:
            raise PydanticCustomError("assistant_only", "only assistant messages may have '{field}'",
                                      {"field": field})
    return message


def _message_kind(message: Any) -> str:
    role = message.get("role") if isinstance(message, dict) else None
    if role in ("system", "developer", "user"):
        return "system_or_user"
    if role in ("assistant", "function"):
        return "assistant"
    return "tool" if role == "tool" else "unknown"


Message = Annotated[
    Annotated[ContentMessage, AfterValidator(_no_assistant_fields), Tag("system_or_user")]
    | Annotated[ToolMessage, AfterValidator(_no_assistant_fields), Tag("tool")]
    | Annotated[AssistantMessage, Tag("assistant")] | Annotated[UnknownRoleMessage, Tag("unknown")],
    Discriminator(_message_kind),
]


class Function(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    name: str
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]


class FunctionTool(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["function"]
    function: Function


class OtherTool(TypedDict):
    """Tool types other than functions (custom, web search...), passed on as they are."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    Discriminator(lambda t: "function" if isinstance(t, dict) and t.get("type") == "function"
                  else "other"),
]


class ToolChoiceFunction(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    name: str


class ToolChoice(TypedDict):
    """{"type": "function", "function": {"name": ...}}, or another type passed on as it is."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str
    function: NotRequired[ToolChoiceFunction]


class ResponseFormat(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


class StreamOptions(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    include_usage: NotRequired[bool | None]


class ChatRequest(TypedDict):
    """POST /v1/chat/completions. Every optional parameter also accepts null, meaning "not set"."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    n: NotRequired[Positive | None]
    stop: NotRequired[str | list[str] | None]
    max_tokens: NotRequired[Positive | None]
    max_completion_tokens: NotRequired[Positive | None]
    presence_penalty: NotRequired[float | None]
    frequency_penalty: NotRequired[float | None]
    logit_bias: NotRequired[dict[str, float] | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=2**31), BeforeValidator(_integral)] | None]
    user: NotRequired[str | None]
    seed: NotRequired[Int64 | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[str | ToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[ResponseFormat | None]
    reasoning_effort: NotRequired[str | None]
    verbosity: NotRequired[str | None]
    modalities: NotRequired[list[str] | None]
    audio: NotRequired[dict[str, Any] | None]
    prediction: NotRequired[dict[str, Any] | None]
    metadata: NotRequired[dict[str, str] | None]
    store: NotRequired[bool | None]
    service_tier: NotRequired[str | None]
    web_search_options: NotRequired[dict[str, Any] | None]
    prompt_cache_key: NotRequired[str | None]
    safety_identifier: NotRequired[str | None]
    functions: NotRequired[list[dict[str, Any]] | None]
    function_call: NotRequired[str | dict[str, Any] | None]


CHAT_REQUEST: TypeAdapter[ChatRequest] = TypeAdapter(ChatRequest)

# Parameters the request path itself owns; profiles do not rule on them.
CORE_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})
# OpenAI's parameters: a profile that does not list one does not support it.
KNOWN_PARAMS = frozenset(ChatRequest.__annotations__) - CORE_PARAMS
