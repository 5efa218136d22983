"""OpenAI's legacy completions request (POST /v1/completions), as a pydantic schema.

As for chat (gateway/apis/chat/schema.py): the body is parsed and checked in
one pass, only the shape is checked here, and ranges belong to each provider's
profile (`api_params: {completions: ...}`). `KNOWN_PARAMS` are OpenAI's
parameters: a profile that does not list one does not support it.

A prompt is text or token ids, one or several: a string, an array of strings,
an array of token ids, or an array of such arrays. Which of these an array is
is read from its first item, so an error names the item that breaks it.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter
from typing_extensions import TypedDict

from gateway.apis.chat.schema import OPEN, Int64, Positive, StreamOptions, _integral

DEFAULT_MAX_TOKENS = 16  # OpenAI's (and vLLM's) answer length when max_tokens is not set

Token = Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(_integral)]
Tokens = Annotated[list[Token], Field(min_length=1)]


def _prompt_kind(prompt: Any) -> str | None:
    if type(prompt) is str:
        return "text"
    if type(prompt) is not list:
        return None  # neither text nor an array: the error says what a prompt may be
    first = prompt[0] if prompt else None
    if type(first) is list:
        return "token_lists"
    if type(first) in (int, float):
        return "tokens"
    return "texts"


Prompt = Annotated[
    Annotated[str, Tag("text")]
    | Annotated[Annotated[list[str], Field(min_length=1)], Tag("texts")]
    | Annotated[Tokens, Tag("tokens")]
    | Annotated[Annotated[list[Tokens], Field(min_length=1)], Tag("token_lists")],
    Discriminator(_prompt_kind, custom_error_type="prompt_type",
                  custom_error_message="expected a string, an array of strings, an array of "
                                       "token ids or an array of arrays of token ids"),
]


class CompletionRequest(TypedDict):
    """POST /v1/completions. Every optional parameter also accepts null, meaning "not set"."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    model: Annotated[str, Field(min_length=1)]
    prompt: Prompt
    suffix: NotRequired[str | None]
    echo: NotRequired[bool | None]
    # Not chat's boolean: how many of the likeliest tokens to list at each position.
    logprobs: NotRequired[Annotated[int, Field(ge=0, le=2**31), BeforeValidator(_integral)] | None]
    best_of: NotRequired[Positive | None]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=0, le=2**63 - 1), BeforeValidator(_integral)] | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    n: NotRequired[Positive | None]
    stop: NotRequired[str | list[str] | None]
    presence_penalty: NotRequired[float | None]
    frequency_penalty: NotRequired[float | None]
    logit_bias: NotRequired[dict[str, float] | None]
    seed: NotRequired[Int64 | None]
    user: NotRequired[str | None]


COMPLETION_REQUEST: TypeAdapter[CompletionRequest] = TypeAdapter(CompletionRequest)

# Parameters the request path itself owns; profiles do not rule on them.
CORE_PARAMS = frozenset({"model", "prompt", "stream", "stream_options"})
# OpenAI's parameters: a profile that does not list one does not support it.
KNOWN_PARAMS = frozenset(CompletionRequest.__annotations__) - CORE_PARAMS
