"""A native Messages target's answer, passed through: the alias as `model`, keys masked.

The upstream's message is the client's with `model` the alias and a `msg_` id;
its usage is
read for settle in chat's words (input, cache reads and writes -> prompt_tokens;
output_tokens -> completion_tokens).

A stream is relayed event by event. Only `message_start` (the message, whose
model becomes the alias, and the input usage) and `message_delta` (the stop
reason and the output usage) are parsed; the deltas pass as bytes, their text
tallied for the charge of a client that leaves. `message_stop` ends it. An
`error` event the upstream sends is relayed as it is, and ends the stream.
"""

from __future__ import annotations

import re

import orjson

from gateway.apis.framing import Framed, event_json
from gateway.apis.messages import objects
from gateway.apis.relayed import encoded, load_answer, scrub
from gateway.core.errors import GatewayError
from gateway.core.tally import Tally
from gateway.core.tokens import text_tokens

# The text a delta carries (text, thinking, partial_json): its tally. Only a key is followed
# by `:` (see gateway/apis/chat/adapt.py).
_DELTA = re.compile(rb'(?:text|thinking|partial_json)": ?"([^"\\]*(?:\\.[^"\\]*)*)"')


def own(message: dict, alias: str) -> None:
    """The upstream's message as the client's: the alias as `model`, and an id in Anthropic's
    form (vLLM writes `chatcmpl-...`)."""
    message["model"] = alias
    message_id = message.get("id")
    if type(message_id) is str and not message_id.startswith("msg_"):
        message["id"] = "msg_" + message_id


class NativeAnswer:
    """How a native target's answer reaches the client."""

    __slots__ = ("alias", "prompt_estimate", "secrets")

    def __init__(self, alias: str, secrets: tuple[str, ...], prompt_estimate: int) -> None:
        self.alias = alias
        self.secrets = encoded(secrets)
        self.prompt_estimate = prompt_estimate

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        answer = load_answer(data, self.secrets, "content", "a message")
        upstream_model = answer.get("model")
        own(answer, self.alias)
        usage = answer.get("usage")
        if type(usage) is dict and type(usage.get("output_tokens")) is int:
            chat_usage = objects.to_chat_usage(usage)
        else:  # estimated as chat's are: the prompt at admission, the text of the content
            texts = "".join(str(b.get("text") or b.get("thinking") or "")
                            for b in answer["content"] if type(b) is dict)
            completion = max(1, round(text_tokens(texts.encode(errors="replace"))))
            chat_usage = {"prompt_tokens": self.prompt_estimate, "completion_tokens": completion,
                          "total_tokens": self.prompt_estimate + completion, "estimated": True}
            answer["usage"] = objects.from_chat_usage(chat_usage)
        return (orjson.dumps(answer), chat_usage,
                upstream_model if type(upstream_model) is str else None)

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> NativeStream:
        return NativeStream(self, max_event)


class NativeStream(Framed):
    """Splits a Messages event stream into whole events and passes them on, rewritten."""

    __slots__ = ("_answer", "_input", "_upstream_error", "done", "finished", "tally",
                 "upstream_model", "usage")

    def __init__(self, answer: NativeAnswer, max_event: int) -> None:
        super().__init__(max_event)
        self._answer = answer
        self._input: dict = {}  # message_start's usage: the input counts
        self._upstream_error = False
        self.done = self.finished = False
        self.tally = Tally(_DELTA)
        self.usage: dict | None = None
        self.upstream_model: str | None = None

    def finish(self) -> bytes:
        """The last event if it lacked its blank line; one cut off is dropped (`truncated`)."""
        return self._last()

    def stream_error(self, error: GatewayError) -> bytes | None:
        """Nothing more after the upstream's own error event; else the surface's."""
        return b"" if self._upstream_error else None

    def _relayed(self, events: bytes) -> bytes:
        events = scrub(events, self._answer.secrets)
        return b"".join(self._event(event) for event in events.split(b"\n\n")[:-1])

    def _event(self, event: bytes) -> bytes:
        head = event[:40]
        if b"content_block_delta" in head:
            self.tally.add(event)
            return event + b"\n\n"
        if b"message_start" not in head and b"message_delta" not in head:
            if b"message_stop" in head:
                self.done = True
            elif b"event: error" in head:
                self._upstream_error = True
            return event + b"\n\n"
        data = event_json(event)
        if type(data) is not dict:
            return event + b"\n\n"
        if data.get("type") == "message_start" and type(data.get("message")) is dict:
            message = data["message"]
            if self.upstream_model is None and type(message.get("model")) is str:
                self.upstream_model = message["model"]
            own(message, self._answer.alias)
            if type(message.get("usage")) is dict:
                self._input = message["usage"]
            return b"event: message_start\ndata: " + orjson.dumps(data) + b"\n\n"
        if data.get("type") == "message_delta":
            delta = data.get("delta")
            if type(delta) is dict and delta.get("stop_reason") is not None:
                self.finished = True
            usage = data.get("usage")
            if type(usage) is dict and type(usage.get("output_tokens")) is int:
                self.usage = objects.to_chat_usage({**self._input, **usage})
                self.tally.usage_seen(self.usage)
        return event + b"\n\n"
