"""What the pipeline needs from a client API, and what an attempt needs to speak to a target.

The stages (accept, authenticate, plan, admit, relay, settle) are written once
and read no API's JSON. A `Surface` is one client API (chat completions,
embeddings, legacy completions...): it validates its requests, says what they
are expected to cost, keys sessions for affinity, and writes its errors. For
each target it picks a `Codec`: the same API passed through (the dialect's
rules still apply), or a conversion to an API the target speaks.

An `Answer` adapts one attempt's response: a whole one (`completion`) or a
stream (`stream()` gives a `StreamAdapter`, fed the upstream's bytes).

A `Stateful` surface keeps conversations (the Responses API's stored
responses): the pipeline has it `recall` what a request continues before
admission, so the history is counted and every target sees all of it, and
`keep` the answer before its last byte goes out. Its answers and stream
adapters then hold `final`, the object the client is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import orjson

from gateway.core.errors import GatewayError, InvalidRequest
from gateway.core.sse import DONE_EVENT, data_event
from gateway.core.translate import Rejected

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity, Dialect
    from gateway.core.auth import Principal
    from gateway.core.tally import Tally
    from gateway.core.translate import Translation
    from gateway.runtime import Runtime


class StreamAdapter(Protocol):
    done: bool  # the upstream said the stream is over ([DONE])
    finished: bool  # the answer is whole (a finish reason came)
    truncated: bool  # the upstream stopped in the middle of an event
    usage: dict | None
    upstream_model: str | None
    tally: Tally  # what the client was sent: its charge if no usage comes

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def stream_error(self, error: GatewayError) -> bytes | None:
        """The events that end this stream with `error`, once it has started; None: the
        surface's (`Surface.stream_error`). A stream whose events are numbered (Responses)
        writes its own, numbered on."""


class Answer(Protocol):
    alias: str

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        """The whole answer for the client, its usage, and the upstream's model name."""

    def stream(self, show_usage: bool, max_event: int) -> StreamAdapter: ...


FanOut = Callable[..., Awaitable[float | None]]


class Codec(Protocol):
    """How requests of one surface reach targets that speak `api`."""

    @property
    def api(self) -> str:
        """The upstream API: a key of the profile's `apis`."""

    @property
    def fan_out(self) -> FanOut | None:
        """How to send a translation with fanout > 1, if this API can."""

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation: ...

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> Answer: ...


class Surface(Protocol):
    @property
    def name(self) -> str:
        """chat, embeddings, completions: the `api` of metrics and of profiles' `apis`."""

    @property
    def paths(self) -> tuple[str, ...]:
        """The POST paths it answers."""

    @property
    def stateful(self) -> bool:
        """Whether this API keeps conversations: then it is a `Stateful` surface."""

    @property
    def stream_end(self) -> bytes:
        """What ends a stream that went well (`data: [DONE]`)."""

    def parse(self, body: bytes) -> dict:
        """The validated request; InvalidRequest naming the field that is wrong."""

    def prompt_tokens(self, payload: dict) -> int:
        """The request's prompt, in tokens, estimated: reserved at admission, and charged when
        no upstream usage says otherwise."""

    def completion_tokens(self, payload: dict, default: int) -> int:
        """The most the answer may use (`default`: the config's completion_estimate, for a
        request that sets no limit): reserved at admission for a key with token limits."""

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        """What identifies the request's session, for affinity; None: balance it freely."""

    def served_by(self, target: Target) -> bool:
        """Whether requests of this API can reach `target`, natively or converted: for the
        APIs /v1/models lists for each model."""

    def codec(self, target: Target) -> Codec:
        """How to reach `target`; Unspoken if it speaks no API this surface can use."""

    def render_error(self, error: GatewayError) -> bytes: ...

    def error_status(self, error: GatewayError) -> int:
        """The status `error` is answered with (an API may have its own: Anthropic's 529)."""

    def error_headers(self, request_id: str) -> dict[str, str]:
        """Headers every error answer of this API carries, beside the gateway's own."""

    def stream_error(self, error: GatewayError) -> bytes:
        """The events that end a started stream with `error`."""

    def messages(self, payload: dict) -> object:
        """The prompt, for `server.log_prompts`."""


class Stateful(Surface, Protocol):
    """A surface whose requests may continue stored conversations, and whose answers are
    stored: the pipeline awaits `recall` before admission and `keep` (via the Exchange)
    once the answer is whole and before its last byte is sent.

    Its Answer sets `final` in `completion()`; its StreamAdapter sets `final` in `finish()`
    and returns from there the event that ends the stream (the one with the whole object),
    so that event reaches the client after the answer is stored. Saving before the last
    byte, not after it in settle, is what lets a client send the next turn the moment it
    has this one, to any replica: a pending save known only to this process would not
    help a replica behind the same load balancer. It costs the last event one store
    write's latency (a Redis round trip), and nothing before it."""

    async def recall(self, runtime: Runtime, principal: Principal, payload: dict) -> dict:
        """The request with what it continues written in: what codecs, limits and the prompt
        estimate see. InvalidRequest or NotFound for what cannot be continued."""

    async def keep(self, runtime: Runtime, principal: Principal, asked: dict, sent: dict,
                   final: dict | None) -> None:
        """Store the answer (`final`: what the client is sent, or None when the answer had
        none) of the request the client `asked` and `recall` expanded into `sent`. Never
        raises: the client is answered whether it is stored or not."""


class Unspoken(InvalidRequest):
    """The target speaks none of the APIs this request could be sent in.

    `detail` says what the target does speak: when no target of a model speaks the
    request's API, the relay answers one 400 naming the model and each detail."""

    code = "unsupported_api"

    def __init__(self, message: str, *, detail: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.detail = detail or message

    @classmethod
    def of(cls, target: Target, api: str) -> Unspoken:
        provider = target.provider
        speaks = ", ".join(provider.profile.apis)
        return cls(f"Provider '{provider.name}' does not speak {api} (it speaks {speaks}).",
                   detail=f"provider '{provider.name}' speaks {speaks}")


class PassedOrConverted:
    """What a surface does whose requests pass through to a target that speaks its API, and
    are converted to chat completions for a target that speaks only chat."""

    name: str  # the API, as profiles' `apis` name it
    passthrough: Codec
    to_chat: Codec

    def codec(self, target: Target) -> Codec:
        apis = target.provider.profile.apis
        if self.name in apis:
            return self.passthrough
        if "chat" in apis:
            return self.to_chat
        raise Unspoken(f"Provider '{target.provider.name}' speaks neither {self.name} nor "
                       "chat completions.")

    def served_by(self, target: Target) -> bool:
        """Whether `target` can answer this API: natively, or converted to chat."""
        apis = target.provider.profile.apis
        return self.name in apis or "chat" in apis


def unconvertible(dialect: Dialect, what: str, why: str, *, param: str | None) -> Rejected:
    """`what` (a parameter, a tool, an item) has no equivalent in chat completions, and the
    answer would change without it: the chat-only target refuses the request, naming it."""
    return Rejected(f"{what} cannot be sent to provider '{dialect.provider}' (profile "
                    f"'{dialect.profile.name}'), which speaks chat completions only: {why}.",
                    param=param)


def allowed_tools(tools: list, dialect: Dialect, own: str,
                  kind: Callable[[dict], str]) -> list:
    """The tools, if a native target takes every built-in (server) tool among them: its
    profile's `tools` rule lists the types it takes (`true`: any); the client's own tools
    (`own`: function, custom) go everywhere. `kind` reads a tool's type."""
    rule = dialect.rules.get("tools")
    if rule is None or not rule.supported:
        allowed = {own}
    elif rule.values is None:
        return tools  # `tools: true`: every type
    else:
        allowed = {own, *rule.values}
    for i, tool in enumerate(tools):
        if kind(tool) not in allowed:
            raise Rejected(f"Tool '{kind(tool)}' (tools[{i}]) is not available on provider "
                           f"'{dialect.provider}' (profile '{dialect.profile.name}'), which "
                           f"takes {', '.join(sorted(allowed))} tools.", param=f"tools[{i}]")
    return tools


def openai_error(error: GatewayError) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}`: OpenAI's shape, which its APIs share."""
    return orjson.dumps({"error": {"message": error.message, "type": error.type,
                                   "param": error.param, "code": error.code}})


class OpenAIErrors:
    """What OpenAI's APIs share in a surface: the error body, and how a stream ends."""

    stream_end = DONE_EVENT

    def render_error(self, error: GatewayError) -> bytes:
        return openai_error(error)

    def error_status(self, error: GatewayError) -> int:
        return error.status

    def error_headers(self, request_id: str) -> dict[str, str]:
        return {}

    def stream_error(self, error: GatewayError) -> bytes:
        """An error event, then `[DONE]`."""
        return data_event(openai_error(error)) + DONE_EVENT
