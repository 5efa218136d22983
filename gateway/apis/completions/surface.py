"""POST /v1/completions: OpenAI's legacy completions, passed through or converted to chat.

A target whose profile lists `completions` gets the request as it is, ruled by
the profile's `api_params.completions`. A chat-only target gets it converted:
the prompt becomes one user message and the chat dialect's rules apply
(max_tokens renamed where the profile says so). What chat cannot say is
handled there:

- refused with a 400 naming it, whatever the unsupported_params policy, because
  dropping it would answer another question: `echo: true` (the answer would
  lack the prompt), a `suffix` (an insertion, not a continuation), a prompt of
  token ids, and more than one prompt;
- ruled by the policy, as chat's own unsupported parameters are (`drop`: not
  sent, named in `x-gateway-dropped-params`; `reject`: a 400 naming it):
  `logprobs` (the answer comes without them), and `best_of`, which goes on to
  the chat dialect as any other parameter that profile may or may not take.

A request the conversion refuses moves on to the next target, as any
refusal of a target's dialect does, so a route can fall back from a chat-only
target to one that speaks completions, and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.apis.base import OpenAIErrors, PassedOrConverted, unconvertible
from gateway.apis.chat import fanout
from gateway.apis.chat import schema as chat_schema
from gateway.apis.completions.adapt import ConvertedAnswer, TextAnswer
from gateway.apis.completions.schema import (
    COMPLETION_REQUEST,
    CORE_PARAMS,
    DEFAULT_MAX_TOKENS,
    KNOWN_PARAMS,
)
from gateway.apis.validation import parse_request
from gateway.core.balance import session_key
from gateway.core.translate import Rejected, Translation, translate

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity, Dialect


def parse(body: bytes) -> dict:
    """The parsed request if `body` is a well-formed completions request; else InvalidRequest."""
    return parse_request(COMPLETION_REQUEST, body, "a JSON object with 'model' and 'prompt'")


def estimate_prompt(payload: dict) -> int:
    """Prompt tokens, roughly: 4 characters a token, or the token ids' count."""
    prompt = payload["prompt"]
    if type(prompt) is str:
        chars, tokens = len(prompt), 0
    elif type(prompt[0]) is str:
        chars, tokens = sum(map(len, prompt)), 0
    elif type(prompt[0]) is list:
        chars, tokens = 0, sum(map(len, prompt))
    else:
        chars, tokens = 0, len(prompt)
    return (chars + len(payload.get("suffix") or "")) // 4 + tokens


def prompt_texts(payload: dict) -> Iterator[str]:
    """The prompt's text, for affinity; token ids have none to compare."""
    prompt = payload["prompt"]
    if type(prompt) is str:
        yield prompt
    else:
        yield from (p for p in prompt if type(p) is str)


class CompletionsCodec:
    """Completions requests to a target that speaks completions: its dialect's rules apply."""

    api = "completions"
    fan_out = staticmethod(fanout.fan_out)

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        out = {"model": target.model, "prompt": payload["prompt"]}
        return translate(payload, target.dialect_for("completions"), out, stream, CORE_PARAMS,
                         KNOWN_PARAMS)

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> TextAnswer:
        return TextAnswer(route, target.dialect_for("completions"), prompt_estimate,
                          payload["model"], target.provider.secrets)


# Completions' parameters that chat has no word for, taken out before the chat dialect rules.
_NOT_IN_CHAT = frozenset({"prompt", "echo", "suffix", "logprobs"})


class ToChatCodec:
    """Completions requests to a chat-only target: one user message, the answer written back."""

    api = "chat"
    fan_out = staticmethod(fanout.fan_out)

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        dialect = target.dialect
        text = _one_text(payload, dialect)
        dropped = []
        if payload.get("logprobs") is not None:
            if dialect.unsupported == "reject":
                raise _unconvertible(dialect, "logprobs", "chat's logprobs are not converted")
            dropped.append("logprobs")
        chat = {k: v for k, v in payload.items() if k not in _NOT_IN_CHAT}
        if chat.get("max_tokens") is None:  # completions' default is short; chat's is not
            chat["max_tokens"] = DEFAULT_MAX_TOKENS
        out = {"model": target.model, "messages": [{"role": "user", "content": text}]}
        translation = translate(chat, dialect, out, stream, chat_schema.CORE_PARAMS,
                                chat_schema.KNOWN_PARAMS)
        translation.dropped += dropped
        return translation

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> ConvertedAnswer:
        return ConvertedAnswer(route, target.dialect, prompt_estimate, payload["model"],
                               target.provider.secrets)


def _one_text(payload: dict, dialect: Dialect) -> str:
    """The prompt as one user message's text; Rejected for what would change its meaning."""
    if payload.get("echo"):
        raise _unconvertible(dialect, "echo", "the answer would not begin with the prompt")
    if payload.get("suffix"):
        raise _unconvertible(dialect, "suffix", "chat continues a prompt, it does not insert "
                             "text")
    prompt = payload["prompt"]
    if type(prompt) is list:
        if type(prompt[0]) is not str:
            raise _unconvertible(dialect, "prompt", "token ids cannot be sent there; send the "
                                 "prompt as text")
        if len(prompt) > 1:
            raise _unconvertible(dialect, "prompt", f"it holds {len(prompt)} prompts; send one "
                                 "a request")
        prompt = prompt[0]
    return prompt


def _unconvertible(dialect: Dialect, name: str, why: str) -> Rejected:
    return unconvertible(dialect, f"Parameter '{name}'", why, param=name)


PASSTHROUGH = CompletionsCodec()
TO_CHAT = ToChatCodec()


class CompletionsSurface(PassedOrConverted, OpenAIErrors):
    name = "completions"
    paths = ("/v1/completions", "/completions")
    passthrough = PASSTHROUGH
    to_chat = TO_CHAT
    stateful = False  # each request stands alone

    parse = staticmethod(parse)
    prompt_tokens = staticmethod(estimate_prompt)

    def completion_tokens(self, payload: dict, default: int) -> int:
        """`default` is for APIs without one of their own: this one has OpenAI's 16 tokens."""
        limit = payload.get("max_tokens")
        return ((DEFAULT_MAX_TOKENS if limit is None else limit)
                * max(payload.get("n") or 1, payload.get("best_of") or 1))

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        return session_key(affinity, payload.get("user"), prompt_texts(payload))

    def messages(self, payload: dict) -> object:
        return payload["prompt"]


COMPLETIONS = CompletionsSurface()
