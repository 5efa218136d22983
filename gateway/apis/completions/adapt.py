"""Completions' answers, adapted for the client: passed through, or converted from chat.

A target that speaks completions answers in the client's shape already, and
chat's adaptation (gateway/apis/chat/adapt.py: the alias as `model`, finish
reasons, usage shown or hidden, keys scrubbed, the stream's tally) applies as
it is, reading `choices[].text`.

A chat-only target answers a chat completion: it becomes a `text_completion`
(each choice's message content as its `text`), and its stream becomes
`text_completion` chunks, event by event as they come. Events that carry no
text for a completions client (the role, reasoning) are left out.
"""

from __future__ import annotations

import re

import orjson

from gateway.apis.chat import adapt
from gateway.apis.chat.chunks import ChunkStream

# A choice's `text`, for the tally. As tally.py's patterns, from its rarest letters: no other
# key of a text_completion chunk ends in `xt`.
TEXT = re.compile(rb'xt": ?"([^"\\]*(?:\\.[^"\\]*)*)"')


class TextAnswer(adapt.Answer):
    """A text completion from an upstream that speaks completions."""

    __slots__ = ()
    KIND = "a text completion"
    CHUNK = {"id": "cmpl-gateway", "object": "text_completion"}
    TEXT = TEXT

    def _choices(self, choices: list, texts: bool) -> list[str]:
        produced = []
        for choice in choices:
            if type(choice) is dict:
                choice["finish_reason"] = self.finish_reason(choice.get("finish_reason"))
                if texts:
                    produced.append(str(choice.get("text") or ""))
        return produced


class ConvertedAnswer(adapt.Answer):
    """A chat completion, adapted as chat's are, then written as a text completion."""

    __slots__ = ()
    CHUNK = TextAnswer.CHUNK

    def normalized(self, data: bytes) -> tuple[dict, dict, str | None]:
        answer, usage, upstream_model = super().normalized(data)
        choices = [{"index": choice.get("index", i), "text": _text(choice.get("message")),
                    "logprobs": None, "finish_reason": choice.get("finish_reason")}
                   for i, choice in enumerate(answer["choices"]) if type(choice) is dict]
        return ({**_envelope(answer), "choices": choices, "usage": usage}, usage,
                upstream_model)

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> ConvertedStream:
        return ConvertedStream(self, show_usage, max_event)


class ConvertedStream(ChunkStream):
    """Chat's stream, each chunk written as a text_completion chunk."""

    __slots__ = ()

    def convert(self, chunk: dict) -> bytes:
        converted = _chunk(chunk)
        return b"" if converted is None else b"data: " + orjson.dumps(converted) + b"\n\n"

    def other(self, event: bytes) -> bytes:
        return event + b"\n\n"  # a comment or another field: kept as it is


def _chunk(data: dict) -> dict | None:
    """One chat chunk as a text_completion chunk; None if it holds nothing for the client."""
    choices = data.get("choices")
    if type(choices) is not list:
        return data  # not a chunk (an upstream's error event): passed on as it is
    converted = []
    for i, choice in enumerate(choices):
        if type(choice) is not dict:
            continue
        text = _text(choice.get("delta"))
        reason = choice.get("finish_reason")
        if text or reason is not None:
            converted.append({"index": choice.get("index", i), "text": text, "logprobs": None,
                              "finish_reason": reason})
    usage = data.get("usage")
    if not converted and usage is None:
        return None  # the role, reasoning, a keep-alive: nothing a completions client reads
    chunk = {**_envelope(data), "choices": converted}
    if "usage" in data:
        chunk["usage"] = usage
    return chunk


def _envelope(chat: dict) -> dict:
    """A chat completion's or chunk's id, time and model, in a text completion's envelope."""
    return {key: chat[key] for key in _ENVELOPE if key in chat} | {"object": "text_completion"}


_ENVELOPE = ("id", "object", "created", "model", "system_fingerprint")


def _text(message: object) -> str:
    content = message.get("content") if type(message) is dict else None
    return content if type(content) is str else ""
