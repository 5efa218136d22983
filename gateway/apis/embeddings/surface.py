"""POST /v1/embeddings: what the stages need from an embeddings request, and how it reaches a target.

Passthrough only: there is no conversion of embeddings to chat, so a target
serves them only if its profile lists `embeddings` in `apis`; its
`api_params.embeddings` rules the parameters. Admission reserves the input's
tokens and nothing for an answer, which has no completion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.apis.base import OpenAIErrors, Unspoken
from gateway.apis.embeddings.adapt import Answer
from gateway.apis.embeddings.schema import CORE_PARAMS, KNOWN_PARAMS
from gateway.apis.embeddings.validate import validate_embeddings
from gateway.core.balance import session_key
from gateway.core.tokens import text_tokens
from gateway.core.translate import Translation, translate

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity

API = "embeddings"


def estimate_input(payload: dict) -> int:
    """The input's tokens: counted for token ids, estimated from the characters for texts
    (all texts at once: 2,048 short ones cost 0.1 ms so, 4 ms one by one), at least one
    a text."""
    value = payload["input"]
    if type(value) is str:
        return max(1, round(text_tokens(value.encode(errors="replace"))))
    first = value[0]
    if type(first) is str:
        return max(len(value), round(text_tokens("".join(value).encode(errors="replace"))))
    if type(first) is list:
        return sum(len(tokens) for tokens in value)
    return len(value)  # one array of token ids


def _texts(payload: dict) -> Iterator[str]:
    value = payload.get("input")
    if type(value) is str:
        yield value
    elif type(value) is list:
        yield from (text for text in value if type(text) is str)


class EmbeddingsCodec:
    """Embeddings to a target that speaks them: its dialect's rules, the answer's model renamed."""

    api = API
    fan_out = None

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        out = {"model": target.model, "input": payload["input"]}
        translation = translate(payload, target.dialect_for(API), out, False, CORE_PARAMS,
                                KNOWN_PARAMS)
        translation.body.pop("stream", None)  # `stream: false`: embeddings have no such field
        return translation

    def answer(self, route: Route, target: Target, payload: dict, prompt_estimate: int) -> Answer:
        return Answer(route, prompt_estimate, payload["model"], target.provider.secrets)


CODEC = EmbeddingsCodec()


class EmbeddingsSurface(OpenAIErrors):
    name = API
    paths = ("/v1/embeddings", "/embeddings")
    stateful = False  # each request stands alone

    parse = staticmethod(validate_embeddings)
    prompt_tokens = staticmethod(estimate_input)

    def completion_tokens(self, payload: dict, default: int) -> int:
        return 0  # an embedding is not generated text

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        return session_key(affinity, payload.get("user"), _texts(payload))

    def served_by(self, target: Target) -> bool:
        return API in target.provider.profile.apis

    def codec(self, target: Target) -> EmbeddingsCodec:
        if API not in target.provider.profile.apis:
            raise Unspoken.of(target, API)
        return CODEC

    def messages(self, payload: dict) -> object:
        return payload["input"]


EMBEDDINGS = EmbeddingsSurface()
