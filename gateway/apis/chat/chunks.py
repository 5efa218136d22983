"""A chat stream read chunk by chunk, for client APIs that are answered from chat.

Chat's own streams are rewritten on bytes and never parsed (adapt.py). An API
converted from chat (legacy completions, Responses) must read every chunk to
write its own events, so its stream parses each event once, here, and does
from the parsed chunk what chat's rewrite does from the bytes: the upstream's
model (the alias in its place), its usage (kept from the client unless asked for), finish reasons in
OpenAI's set, `[DONE]`, the tally of what was sent, the provider's keys masked.
A subclass then writes each chunk in its client's shape (`convert`).

One parse a chunk, not a rewrite and then a parse: a converted stream's cost
over chat's is its own events and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

import orjson

from gateway.apis.chat import adapt
from gateway.apis.chat.adapt import _events
from gateway.apis.relayed import scrub
from gateway.upstream.base import MalformedStream


class ChunkStream(adapt.StreamAdapter):
    """Chat's stream adapter for a converted API: `convert` writes each parsed chunk.

    A subclass whose `convert` writes a text-only delta as one `"text"` piece of its writer
    (Responses, Messages) passes that writer as `pieces`. The bulk of a stream, a chunk of one
    choice whose delta is its text alone, then goes straight to `pieces.piece("text", ...)`,
    not through `convert` and `write_delta`, which write the same bytes at three times the
    cost of the parse. After the first such chunk, an event that is its bytes around another
    JSON string is such a chunk too: only that string is parsed (1.6 -> 1.2 us an event).
    """

    __slots__ = ("_envelope", "pieces")

    def __init__(self, answer: adapt.Answer, show_usage: bool = True,
                 max_event: int = 64 * 2**20, pieces: PieceWriter | None = None) -> None:
        super().__init__(answer, show_usage, max_event)
        self.pieces = pieces  # the writer of text pieces, if `convert` writes them so
        # The bytes around the text of the stream's first text-only event: an event that is
        # those bytes around another JSON string is text-only too, and only its string is
        # parsed (an upstream writes the same envelope on every delta, but for the text).
        self._envelope: tuple[bytes, bytes] | None = None

    def convert(self, chunk: dict) -> bytes:
        """One chat chunk (finish reasons already OpenAI's) as the client's events."""
        raise NotImplementedError

    def other(self, event: bytes) -> bytes:
        """An event with no data (a comment, a keep-alive): dropped unless a subclass keeps it."""
        return b""

    def end(self) -> bytes:
        """The events that end a whole answer, after the upstream's last: a client API whose
        stream ends with its own events (Responses, Messages) writes them here."""
        return b""

    def finish(self) -> bytes:
        tail = super().finish()
        if self.truncated or not (self.finished or self.done):
            return tail  # the relay ends the stream with stream_error
        return tail + self.end()

    def whole_usage(self) -> dict:
        """The upstream's usage; if none came, the gateway's estimate of what was sent."""
        if self.usage is None:
            self._estimated_usage()
        assert self.usage is not None
        return self.usage

    def _rewrite(self, events: bytes) -> bytes:
        answer = self._answer
        events = scrub(events, answer.secrets)
        out = []
        counted = 0  # where the text an upstream count does not cover starts
        position = 0  # where the next event starts
        size = len(events)
        pieces = self.pieces
        envelope = self._envelope
        while position < size:
            # Events one at a time from where the last ended: a read split whole would cost
            # more than the few events (the first, the last) that are read here.
            start = position
            end = events.find(b"\n\n", start)
            end = size if end < 0 else end
            event = events[start:end]
            position = end + 2
            if not event:
                continue
            if envelope is not None and pieces is not None and event.startswith(envelope[0]) \
                    and event.endswith(envelope[1]):
                run = pieces.text_run() if _events is not None else None
                if run is not None:  # this event and the like after it, in one call
                    written, taken, after, number, texts = _events.deltas(
                        events, start, envelope[0], envelope[1], run[0], run[1], run[2])
                    if taken:
                        out.append(written)
                        pieces.ran(texts, number)
                        position = after
                        continue
                text = _string(event[len(envelope[0]):len(event) - len(envelope[1])])
                if text is not None:
                    if text:
                        out.append(pieces.piece("text", text))
                    continue
            if event.startswith(b"data:") and b"\n" not in event:
                data = event[5:]
            else:  # several lines: the data lines, joined, as SSE says
                lines = event.split(b"\n")
                if not any(line.startswith(b"data:") for line in lines):
                    out.append(self.other(event))
                    continue
                data = b"\n".join(line[5:] for line in lines if line.startswith(b"data:"))
            if len(data) < 16 and data.strip() == b"[DONE]":  # not JSON: no parse to fail
                self.done = True
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise MalformedStream("upstream sent an event that is not JSON: "
                                      + data[:80].decode(errors="replace")) from None
            if type(chunk) is not dict:
                continue  # JSON, but no chunk: nothing a client could read
            if pieces is not None and self.upstream_model is not None:
                text = _text_alone(chunk)
                if text is not None:  # what convert would write, written directly
                    if text:
                        out.append(pieces.piece("text", text))
                    if envelope is None:
                        self._envelope = envelope = _envelope_of(event, text)
                    continue
            if "model" in chunk:
                if self.upstream_model is None and type(chunk["model"]) is str:
                    self.upstream_model = chunk["model"]
                chunk["model"] = answer.alias
            usage = chunk.get("usage")
            if type(usage) is dict:
                self.usage = usage
                if self.tally.usage_seen(usage):  # its count covers this event and those before
                    counted = position
                if not self._show_usage:
                    del chunk["usage"]
                    if not chunk.get("choices"):
                        continue  # the usage-only event the client did not ask for
            choices = chunk.get("choices")
            for choice in choices if type(choices) is list else ():
                if type(choice) is dict and choice.get("finish_reason") is not None:
                    reason = choice["finish_reason"]
                    if type(reason) is str:
                        self.finished = True
                        choice["finish_reason"] = answer.finish_reason(reason)
                    else:
                        choice["finish_reason"] = None
            out.append(self.convert(chunk))
        self.tally.add(events[counted:] if counted else events)
        return b"".join(out)


_CONTENT = re.compile(rb'"content"\s*:\s*("(?:[^"\\]|\\.)*")')


def _envelope_of(event: bytes, text: str) -> tuple[bytes, bytes] | None:
    """What is around `text`'s JSON string in `event`, a text-only one; None if that is not
    plain to see (several lines, or more than one `"content"` in it)."""
    if b"\n" in event or event.count(b'"content"') != 1:
        return None
    match = _CONTENT.search(event)
    if match is None or _string(match.group(1)) != text:
        return None
    return event[:match.start(1)], event[match.end(1):]


def _string(data: bytes) -> str | None:
    """`data` as a JSON string; None if it is anything else."""
    if data[:1] != b'"':
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is str else None


def _text_alone(chunk: dict) -> str | None:
    """The text of a chunk of one choice, unfinished, whose delta is that text alone and that
    holds no usage; None for any other chunk."""
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1 or chunk.get("usage") is not None:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or len(delta) != 1:
        return None
    text = delta.get("content")
    return text if type(text) is str else None


def string(holder: dict, key: str) -> str:
    value = holder.get(key)
    return value if type(value) is str else ""


def reasoning_text(holder: dict) -> str:
    """A message's or delta's reasoning, under whichever name the route gave it (`both`: the
    same text)."""
    return string(holder, "reasoning_content") or string(holder, "reasoning")


class PieceWriter(Protocol):
    """What a converted API writes a chat delta's pieces with (its event writer)."""

    def piece(self, kind: str, text: str) -> bytes: ...

    def text_run(self) -> tuple[bytes, bytes, int] | None:
        """How the open text item's delta events are written, for the C helper to write many
        at once: the bytes before the text's JSON string, those after, and the next event's
        number (-1: not numbered); None unless a text item is open."""

    def ran(self, text: str, number: int) -> None:
        """The helper wrote `text` in the open text item; `number` is the next event's."""

    def call(self, index: object, call_id: str, name: str, arguments: str) -> bytes: ...


def write_delta(delta: dict, writer: PieceWriter, kinds: Mapping[str, str]) -> bytes:
    """One chat delta's pieces, in the order a turn's parts come: reasoning, a refusal, text,
    then tool calls. `kinds` names reasoning, refusal and text as the writer's kinds."""
    content = delta.get("content")
    if len(delta) == 1 and type(content) is str:  # the bulk of a stream: text alone
        return writer.piece(kinds["text"], content) if content else b""
    out = []
    for kind, text in (("reasoning", reasoning_text(delta)), ("refusal", string(delta, "refusal")),
                       ("text", string(delta, "content"))):
        if text:
            out.append(writer.piece(kinds[kind], text))
    calls = delta.get("tool_calls")
    for call in calls if type(calls) is list else ():
        if type(call) is dict:
            function = call.get("function")
            function = function if type(function) is dict else {}
            out.append(writer.call(call.get("index", 0), string(call, "id"),
                                   string(function, "name"), string(function, "arguments")))
    return b"".join(out)
