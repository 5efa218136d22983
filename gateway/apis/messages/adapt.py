"""A chat-only target's answer, written back as a Messages answer.

The chat answer is adapted as chat's are (gateway/apis/chat/adapt.py: finish
reasons, usage, keys masked), then written as a message: the reasoning text as a
`thinking` block (signed: gateway/apis/messages/thinking.py), the content as a
`text` block, each tool call as a `tool_use` block with the tool call's own id
and its arguments parsed into `input`. `stop_reason`: stop -> end_turn (or
stop_sequence, with the sequence, when the upstream says which one matched, as
vLLM does), length -> max_tokens, tool_calls -> tool_use, content_filter ->
refusal.

A stream is read chunk by chunk (gateway/apis/chat/chunks.py) and written as
Anthropic's events (events.py); the last ones wait for the end of the upstream
stream, where the usage is.
"""

from __future__ import annotations

import orjson

from gateway.apis.chat import adapt
from gateway.apis.chat.chunks import ChunkStream, reasoning_text, string, write_delta
from gateway.apis.messages import errors, objects
from gateway.apis.messages.events import Writer
from gateway.config import Route
from gateway.config.compiled import Dialect
from gateway.core.errors import GatewayError

# A chat delta's pieces, as this writer's kinds: a refusal is text to a Messages client.
_KINDS = {"reasoning": "thinking", "refusal": "text", "text": "text"}


class ConvertedAnswer(adapt.Answer):
    """A chat completion, adapted as chat's are, then written as a message."""

    __slots__ = ("stops",)

    def __init__(self, route: Route, dialect: Dialect, prompt_estimate: int, model: str,
                 secrets: tuple[str, ...], stops: list | None) -> None:
        super().__init__(route, dialect, prompt_estimate, model, secrets)
        self.stops = stops  # the request's stop_sequences: which one matched is told back

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        answer, usage, upstream_model = self.normalized(data)
        choice = next((c for c in answer["choices"] if type(c) is dict), {})
        message = choice.get("message")
        message = message if type(message) is dict else {}
        content = []
        reasoning = reasoning_text(message)
        if reasoning:
            content.append(objects.thinking_block(reasoning))
        text = string(message, "content") or string(message, "refusal")
        calls = message.get("tool_calls")
        calls = [c for c in calls if type(c) is dict] if type(calls) is list else []
        if text or not calls:
            content.append(objects.text_block(text))
        for call in calls:
            function = call.get("function")
            function = function if type(function) is dict else {}
            content.append(objects.tool_use_block(
                string(call, "id") or objects.new_id("toolu_"), string(function, "name"),
                string(function, "arguments")))
        reason, sequence = objects.stop_reason(choice.get("finish_reason"),
                                               choice.get("stop_reason"), self.stops)
        final = objects.message(objects.new_id(), self.alias, content, reason, sequence,
                                objects.from_chat_usage(usage))
        return orjson.dumps(final), usage, upstream_model

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> ConvertedStream:
        """`show_usage` is chat's: a Messages stream always ends with the usage."""
        return ConvertedStream(self, max_event)


class ConvertedStream(ChunkStream):
    """Chat's stream, each chunk written as Messages events."""

    __slots__ = ("_matched", "_reason", "_writer")

    def __init__(self, answer: ConvertedAnswer, max_event: int) -> None:
        self._writer = Writer(answer.alias, answer.prompt_estimate)
        super().__init__(answer, show_usage=False, max_event=max_event, pieces=self._writer)
        self._reason: object = None  # the chat finish reason, once it came
        self._matched: object = None  # what stopped it, if the upstream says (vLLM)

    def end(self) -> bytes:
        assert isinstance(self._answer, ConvertedAnswer)
        reason, sequence = objects.stop_reason(self._reason, self._matched, self._answer.stops)
        return self._writer.end(reason, sequence, objects.from_chat_usage(self.whole_usage()))

    def stream_error(self, error: GatewayError) -> bytes:
        return self._writer.start() + errors.event(error)

    def _rewrite(self, events: bytes) -> bytes:
        return self._writer.start() + super()._rewrite(events)

    def convert(self, data: dict) -> bytes:
        choices = data.get("choices")
        if type(choices) is not list or not choices or type(choices[0]) is not dict:
            return b""  # no choice (an upstream's error event): the stream ends unfinished
        choice = choices[0]
        delta = choice.get("delta")
        out = write_delta(delta, self._writer, _KINDS) if type(delta) is dict else b""
        reason = choice.get("finish_reason")
        if reason is not None:
            self._reason = reason
            self._matched = choice.get("stop_reason")
        return out
