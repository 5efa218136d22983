"""A chat-only target's answer, written back as a Responses answer.

The chat answer is first adapted as chat's are (gateway/apis/chat/adapt.py: the
alias as `model`, finish reasons, reasoning under one name, usage, keys
scrubbed), then written as a response object: the reasoning text as a
`reasoning` item's summary, the content as a `message` item with an
`output_text` part (a refusal as a `refusal` part), each tool call as a
`function_call` item whose `call_id` is the tool call's id. A `length` finish is
`incomplete` (`max_output_tokens`), `content_filter` too; anything else is
`completed`.

A stream goes through chat's stream adapter too, so what it counts for the
charge (the tally), the usage it keeps from the client and the finish are
chat's; its chunks, whole events as they come, become Responses events
(gateway/apis/responses/events.py). The last event waits for the end of the
upstream stream, where the usage is.
"""

from __future__ import annotations

import orjson

from gateway.apis.chat import adapt
from gateway.apis.chat.chunks import ChunkStream, reasoning_text, string, write_delta
from gateway.apis.responses import objects
from gateway.apis.responses.events import Writer
from gateway.config import Route
from gateway.config.compiled import Dialect
from gateway.core.errors import GatewayError

# A chat delta's pieces, as this writer's kinds.
_KINDS = {"reasoning": "reasoning", "refusal": "refusal", "text": "text"}


class ConvertedAnswer(adapt.Answer):
    """A chat completion, adapted as chat's are, then written as a response object."""

    __slots__ = ("echo", "final")

    def __init__(self, route: Route, dialect: Dialect, prompt_estimate: int, model: str,
                 secrets: tuple[str, ...], echo: dict) -> None:
        super().__init__(route, dialect, prompt_estimate, model, secrets)
        self.echo = echo  # the request's settings, repeated in the response
        self.final: dict | None = None  # the response object, once written

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        answer, usage, upstream_model = self.normalized(data)
        choice = next((c for c in answer["choices"] if type(c) is dict), {})
        message = choice.get("message")
        message = message if type(message) is dict else {}
        status, why = objects.status_of(choice.get("finish_reason"))
        item_status = "completed" if status == "completed" else "incomplete"
        output = []
        reasoning = reasoning_text(message)
        if reasoning:
            output.append(objects.reasoning_item(objects.new_id("rs_"), reasoning))
        calls = message.get("tool_calls")
        calls = [c for c in calls if type(c) is dict] if type(calls) is list else []
        text, refusal = string(message, "content"), string(message, "refusal")
        if text or refusal or not calls:
            output.append(objects.message_item(objects.new_id("msg_"), text, item_status,
                                               refusal or None))
        for call in calls:
            function = call.get("function")
            function = function if type(function) is dict else {}
            output.append(objects.function_call_item(
                objects.new_id("fc_"), string(call, "id") or objects.new_id("call_"),
                string(function, "name"), string(function, "arguments"), item_status))
        created = answer.get("created")
        self.final = objects.response(
            objects.new_id("resp_"), created if type(created) is int else objects.now(),
            self.alias, self.echo, status, output, objects.from_chat_usage(usage), why)
        return orjson.dumps(self.final), usage, upstream_model

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> ConvertedStream:
        """`show_usage` is chat's: a Responses stream always ends with the usage."""
        return ConvertedStream(self, max_event)


class ConvertedStream(ChunkStream):
    """Chat's stream, each chunk written as Responses events."""

    __slots__ = ("_reason", "_upstream_error", "_writer")

    def __init__(self, answer: ConvertedAnswer, max_event: int) -> None:
        self._writer = Writer(answer.alias, answer.echo)
        super().__init__(answer, show_usage=False, max_event=max_event, pieces=self._writer)
        self._reason: object = None  # the chat finish reason, once it came
        self._upstream_error: str | None = None  # an error event the upstream sent

    @property
    def final(self) -> dict | None:
        """The response object, once the last event (completed, incomplete, failed) is written."""
        return self._writer.final

    def end(self) -> bytes:
        return self._writer.end(self._reason, self.whole_usage())

    def stream_error(self, error: GatewayError) -> bytes:
        message = error.message
        if self._upstream_error:
            message += f" The upstream said: {self._upstream_error}"
        return self._writer.fail(error.code, message)

    def _rewrite(self, events: bytes) -> bytes:
        """The stream's first events come before whatever its first upstream read says."""
        return self._writer.start() + super()._rewrite(events)

    def convert(self, data: dict) -> bytes:
        choices = data.get("choices")
        if type(choices) is not list:
            error = data.get("error")
            if error is not None:  # the stream ends without a finish: the relay fails it
                detail = error.get("message") if type(error) is dict else error
                self._upstream_error = str(detail)[:500]
            return b""
        choice = choices[0] if choices and type(choices[0]) is dict else {}
        delta = choice.get("delta")
        out = write_delta(delta, self._writer, _KINDS) if type(delta) is dict else b""
        reason = choice.get("finish_reason")
        if reason is not None:
            self._reason = reason
            status = objects.status_of(reason)[0]
            out += self._writer.close("completed" if status == "completed" else "incomplete")
        return out
