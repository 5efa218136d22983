"""A native Responses target's answer, passed through: the alias as `model`, keys scrubbed.

The upstream's response object is the client's, with `model` the alias,
`store` what the client asked (the upstream was sent `store: false`: the
gateway keeps the conversation, not the target), the `previous_response_id`
the client sent, and a reasoning item's `reasoning_text` as its summary too. Its usage is read for settle
in chat's words (input_tokens -> prompt_tokens, output_tokens ->
completion_tokens).

A stream is relayed event by event. Only the events that carry the response
object (`response.created`, `.in_progress`, `.completed`, `.incomplete`,
`.failed`...) are parsed, to rewrite it and read the usage; the others pass as
bytes, and the text of their deltas is tallied for the charge of a client that
leaves. A stream that breaks off ends with the gateway's `response.failed`,
numbered after the upstream's last event, on the upstream's response id.
"""

from __future__ import annotations

import re

import orjson

from gateway.apis.framing import Framed, event_data, event_json
from gateway.apis.relayed import encoded, load_answer, scrub
from gateway.apis.responses import objects
from gateway.core.errors import GatewayError
from gateway.core.tally import Tally
from gateway.core.tokens import text_tokens

# The text a delta event carries (output text, reasoning, arguments): its tally. Only a
# key is followed by `:` (see gateway/apis/chat/adapt.py).
_DELTA = re.compile(rb'elta": ?"([^"\\]*(?:\\.[^"\\]*)*)"')
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class NativeAnswer:
    """How a native target's answer reaches the client."""

    __slots__ = ("alias", "final", "previous", "prompt_estimate", "secrets", "store")

    def __init__(self, alias: str, secrets: tuple[str, ...], prompt_estimate: int,
                 store: bool, previous: str | None = None) -> None:
        self.alias = alias
        self.previous = previous  # the client's previous_response_id: the upstream saw none
        self.secrets = encoded(secrets)
        self.prompt_estimate = prompt_estimate
        self.store = store  # what the client asked; the upstream was sent false
        self.final: dict | None = None

    def own(self, response: dict) -> object:
        """The upstream's response object as the client's; the upstream's model name."""
        upstream_model = response.get("model")
        response["model"] = self.alias
        response["store"] = self.store
        response["previous_response_id"] = self.previous
        output = response.get("output")
        for item in output if type(output) is list else ():
            if type(item) is dict and item.get("type") == "reasoning" and not item.get("summary"):
                _summarized(item)
        return upstream_model

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        answer = load_answer(data, self.secrets, "output", "a response object")
        upstream_model = self.own(answer)
        usage = answer.get("usage")
        if type(usage) is dict and type(usage.get("output_tokens")) is int:
            chat_usage = objects.to_chat_usage(usage)
        else:  # estimated as chat's are: the prompt at admission, the output's text
            completion = max(1, round(text_tokens(_texts(answer["output"]))))
            chat_usage = {"prompt_tokens": self.prompt_estimate, "completion_tokens": completion,
                          "total_tokens": self.prompt_estimate + completion, "estimated": True}
            answer["usage"] = objects.from_chat_usage(chat_usage)
        self.final = answer
        return (orjson.dumps(answer), chat_usage,
                upstream_model if type(upstream_model) is str else None)

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> NativeStream:
        return NativeStream(self, max_event)


def _summarized(item: dict) -> None:
    """A reasoning item written as open-weight models' are (vLLM: its text as `reasoning_text`
    content, no summary) gets that text as its summary too, as a converted answer has it."""
    content = item.get("content")
    texts = [part["text"] for part in content if type(part) is dict
             and part.get("type") == "reasoning_text" and type(part.get("text")) is str
             ] if type(content) is list else []
    if texts:
        item["summary"] = [objects.summary_text("".join(texts))]


def _texts(output: list) -> bytes:
    """The text of a response's output items, for an estimate."""
    found = []
    for item in output:
        if type(item) is not dict:
            continue
        found.append(str(item.get("arguments") or ""))
        for part in (item.get("content") or ()) if type(item.get("content")) is list else ():
            if type(part) is dict:
                found.append(str(part.get("text") or ""))
    return "".join(found).encode(errors="replace")


class NativeStream(Framed):
    """Splits a Responses event stream into whole events and passes them on, rewritten."""

    __slots__ = ("_answer", "_held", "_response_id", "_sequence", "done", "final", "finished",
                 "tally", "upstream_model", "usage")

    def __init__(self, answer: NativeAnswer, max_event: int) -> None:
        super().__init__(max_event)
        self._answer = answer
        self._held = b""  # the last event (completed...), sent by finish(): after the keep
        self._sequence = -1  # the upstream's last sequence_number
        self._response_id: str | None = None
        self.done = self.finished = False
        self.tally = Tally(_DELTA)
        self.usage: dict | None = None
        self.upstream_model: str | None = None
        self.final: dict | None = None

    def finish(self) -> bytes:
        """The held last event, and the last event if it lacked its blank line; one cut off
        is dropped (`truncated`). The pipeline stores the response before it sends this, so
        a client that continues the conversation the moment it ends finds it stored."""
        tail = self._last()
        held, self._held = self._held, b""
        return held + tail

    def stream_error(self, error: GatewayError) -> bytes:
        """`response.failed`, numbered on from the upstream's events."""
        self._sequence += 1
        self.final = objects.response(
            self._response_id or objects.new_id("resp_"), objects.now(), self._answer.alias, {},
            "failed", [], error=objects.failed(error.code, error.message))
        data = {"type": "response.failed", "sequence_number": self._sequence,
                "response": self.final}
        return b"event: response.failed\ndata: " + orjson.dumps(data) + b"\n\n"

    def _relayed(self, events: bytes) -> bytes:
        """Whole events (each ending with a blank line), rewritten where they must be."""
        events = scrub(events, self._answer.secrets)
        out = [self._event(event) for event in events.split(b"\n\n")[:-1]]
        at = events.rfind(b'"sequence_number"')
        last = _SEQUENCE.match(events, at) if at >= 0 else None
        if last is not None:
            self._sequence = int(last.group(1))
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        if b".delta" in event[:100]:  # its type, on the `event:` line or first in the data
            self.tally.add(event)
            return event + b"\n\n"
        if b'"response"' not in event:  # only the response object has that key or value
            if b"[DONE]" in event and event_data(event) == b"[DONE]":
                return b""  # some servers end so; a Responses client expects no [DONE]
            return event + b"\n\n"
        data = event_json(event)
        if type(data) is not dict:
            return event + b"\n\n"
        response = data.get("response")
        if type(response) is not dict:
            return event + b"\n\n"
        upstream_model = self._answer.own(response)
        if self.upstream_model is None and type(upstream_model) is str:
            self.upstream_model = upstream_model
        if type(response.get("id")) is str:
            self._response_id = response["id"]
        kind = data.get("type")
        if kind in _FINAL:
            self.finished = self.done = True
            self.final = response
            usage = response.get("usage")
            if type(usage) is dict and type(usage.get("output_tokens")) is int:
                self.usage = objects.to_chat_usage(usage)
                self.tally.usage_seen(self.usage)
        head = b"event: " + kind.encode() + b"\n" if type(kind) is str else b""
        if kind in _FINAL:
            self._held += head + b"data: " + orjson.dumps(data) + b"\n\n"
            return b""
        return head + b"data: " + orjson.dumps(data) + b"\n\n"
