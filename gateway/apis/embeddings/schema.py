"""The OpenAI embeddings request, as a pydantic schema.

`input` is one text, an array of texts, one array of token ids, or an array
of them. Following OpenAI's documentation, no text may be empty and no array
either, and one request embeds at most `MAX_INPUTS` (2,048) inputs. A token id
is an integer from 0 to 2**31 - 1. How long one input may be is the model's
context, which only the upstream knows; the body cap (`server.max_body_bytes`)
bounds the whole.

Only the shape is checked here; what each provider takes is its profile's
`api_params.embeddings`.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BeforeValidator, Field, TypeAdapter
from typing_extensions import TypedDict

from gateway.apis.chat.schema import OPEN, Positive, _integral

MAX_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1

Text = Annotated[str, Field(min_length=1)]
TokenId = Annotated[int, Field(ge=0, le=MAX_TOKEN_ID), BeforeValidator(_integral)]
Tokens = Annotated[list[TokenId], Field(min_length=1)]
Input = (Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)] | Tokens
         | Annotated[list[Tokens], Field(min_length=1, max_length=MAX_INPUTS)])


class EmbeddingsRequest(TypedDict):
    """POST /v1/embeddings. Every optional parameter also accepts null, meaning "not set"."""

    __pydantic_config__ = OPEN  # type: ignore[misc]
    model: Annotated[str, Field(min_length=1)]
    input: Input
    encoding_format: NotRequired[Literal["float", "base64"] | None]
    dimensions: NotRequired[Positive | None]
    user: NotRequired[str | None]
    stream: NotRequired[Literal[False] | None]  # embeddings never stream


EMBEDDINGS_REQUEST: TypeAdapter[EmbeddingsRequest] = TypeAdapter(EmbeddingsRequest)

# Parameters the request path itself owns; profiles do not rule on them.
CORE_PARAMS = frozenset({"model", "input", "stream"})
# OpenAI's parameters: a profile that does not list one does not support it.
KNOWN_PARAMS = frozenset(EmbeddingsRequest.__annotations__) - CORE_PARAMS
