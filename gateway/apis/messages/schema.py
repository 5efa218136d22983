"""Anthropic's Messages request (POST /v1/messages), as a pydantic schema.

As for chat and Responses: parsed and checked in one pass, extra fields pass
the schema (a native Messages upstream takes more than is written here, and the
conversion to chat names what it drops), ranges belong to each provider's
profile (`api_params: {messages: ...}`).

A content block is picked by its `type`. Blocks of other types (document,
search_result, server tool results...) pass the schema as they are: a native
target may take them, and the conversion to chat refuses them by name
(gateway/apis/messages/to_chat.py). A tool without a `type` (or `custom`) is a
client tool; any other type is one of Anthropic's server tools.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter
from typing_extensions import TypedDict

from gateway.apis.chat.schema import OPEN, Positive, _integral
from gateway.apis.responses.schema import _by_type


class CacheControl(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


class TextBlock(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["text"]
    text: str
    cache_control: NotRequired[CacheControl | None]


class Base64Source(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["url"]
    url: str


class OtherSource(TypedDict):
    """A file uploaded to Anthropic (`file`), or another kind: a native target's business."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


ImageSource = Annotated[
    Annotated[Base64Source, Tag("base64")] | Annotated[UrlSource, Tag("url")]
    | Annotated[OtherSource, Tag("other")],
    _by_type(("base64", "url")),
]


class ImageBlock(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["image"]
    source: ImageSource


class OtherBlock(TypedDict):
    """document, search_result, server tool use and results...: passed to a native target."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str


ResultPart = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[ImageBlock, Tag("image")]
    | Annotated[OtherBlock, Tag("other")],
    _by_type(("text", "image")),
]


class ToolUseBlock(TypedDict):
    """A tool call of an earlier answer, sent back so its result can follow."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[str | list[ResultPart] | None]
    is_error: NotRequired[bool | None]


class ThinkingBlock(TypedDict):
    """An earlier answer's thinking, sent back with the signature it came with."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["thinking"]
    thinking: str
    signature: NotRequired[str | None]


class RedactedThinkingBlock(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["redacted_thinking"]
    data: str


BLOCK_TYPES = ("text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking")

Block = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[ImageBlock, Tag("image")]
    | Annotated[ToolUseBlock, Tag("tool_use")] | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[OtherBlock, Tag("other")],
    _by_type(BLOCK_TYPES),
]


class Message(TypedDict):
    """A turn. `system` turns in `messages` are what Claude Code sends for its current models
    (instructions that arrive mid-conversation: the date, the environment)."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class CustomTool(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: NotRequired[Literal["custom"] | None]
    name: Annotated[str, Field(min_length=1)]
    description: NotRequired[str | None]
    input_schema: dict[str, Any]
    cache_control: NotRequired[CacheControl | None]


class ServerTool(TypedDict):
    """web_search_20250305, bash_20250124, text_editor_..., code_execution_...: run by Anthropic."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: str
    name: NotRequired[str | None]


def _tool_kind(tool: Any) -> str:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return "custom" if kind in (None, "custom") else "server"


Tool = Annotated[
    Annotated[CustomTool, Tag("custom")] | Annotated[ServerTool, Tag("server")],
    Discriminator(_tool_kind),
]


class ToolChoice(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["auto", "any", "tool", "none"]
    name: NotRequired[str | None]
    disable_parallel_tool_use: NotRequired[bool | None]


class ThinkingEnabled(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Field(ge=1024, le=2**63 - 1), BeforeValidator(_integral)]


class ThinkingMode(TypedDict):
    """disabled; adaptive (the model decides how much), between_tools: no budget to map."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["disabled", "adaptive", "between_tools"]


Thinking = Annotated[
    Annotated[ThinkingEnabled, Tag("enabled")] | Annotated[ThinkingMode, Tag("mode")],
    Discriminator(lambda value: "enabled" if isinstance(value, dict)
                  and value.get("type") == "enabled" else "mode"),
]


class OutputFormat(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(TypedDict):
    """How hard the model works (`effort`), and the JSON schema its answer follows."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    effort: NotRequired[Literal["low", "medium", "high", "xhigh", "max"] | None]
    format: NotRequired[OutputFormat | None]


class Metadata(TypedDict):
    __pydantic_config__ = OPEN  # type: ignore[misc]
    user_id: NotRequired[str | None]


class CountTokensRequest(TypedDict):
    """POST /v1/messages/count_tokens: a Messages request without the answer's settings."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    system: NotRequired[str | list[TextBlock] | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    thinking: NotRequired[Thinking | None]
    output_config: NotRequired[OutputConfig | None]


class MessagesRequest(CountTokensRequest):
    """POST /v1/messages. Every optional parameter also accepts null, meaning "not set"."""

    max_tokens: Positive
    stream: NotRequired[bool | None]
    stop_sequences: NotRequired[list[str] | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    top_k: NotRequired[Positive | None]
    metadata: NotRequired[Metadata | None]
    service_tier: NotRequired[str | None]


MESSAGES_REQUEST: TypeAdapter[MessagesRequest] = TypeAdapter(MessagesRequest)
COUNT_TOKENS_REQUEST: TypeAdapter[CountTokensRequest] = TypeAdapter(CountTokensRequest)

# What the codecs write themselves; profiles do not rule on them.
CORE_PARAMS = frozenset({"model", "messages", "stream", "tools"})
# Anthropic's parameters: a profile that does not list one does not support it.
KNOWN_PARAMS = (MessagesRequest.__required_keys__ | MessagesRequest.__optional_keys__) - CORE_PARAMS
