"""Tally: what a stream relayed, counted as it passes, for when the upstream's usage never comes.

A client that leaves a stream, or a stream that breaks, ends before the upstream's
usage event; so does an upstream that sends none. The client is then charged what
it was sent: the text of `content`, `reasoning_content` / `reasoning` and tool-call
`arguments`, in tokens, and the prompt's real count if any usage in the stream gave
one (else the estimate made at admission). If the upstream sent a usage with
`completion_tokens` on the way (vLLM's `continuous_usage_stats`), that count stands
for everything up to its event and only the text after it is estimated.

Text to tokens, per stream: the larger of
- the events that carried text: exact for upstreams that send a token an event
  (vLLM, OpenAI), and
- the text's characters weighted by class (`WEIGHTS`: a letter ~0.23 of a token, a
  digit ~0.75, a CJK character ~0.74, ...): for upstreams that send several tokens
  an event.
bench/stream_tokens.py fits the weights and measures the error against real
tokenizers; docs/accounting.md has the figures.

On the hot path a read's events are only kept, as the bytes objects they came in
(no copy): they are searched (one regex pass for `content` and `reasoning_content`,
substring tests for the rarer keys) 128 KB at a time, or when a count is asked
for, which a stream that ends with its usage never does. A stream shorter than
that (a 500-token answer is ~90 KB of events) is never searched: a search costs
~1.5 us per KB, more than the rest of what the relay does to the same events.
"""

from __future__ import annotations

import re

import orjson

from gateway.core.tokens import text_tokens

# A JSON string value of the key, written compact or with Python's `": "`. Only a key is
# followed by `:` (see adapt.py).
_VALUE = rb'": ?"([^"\\]*(?:\\.[^"\\]*)*)"'
# Each starts from a letter rare in a chunk's envelope: the regex engine skips ahead to
# it, and a `c` (chatcmpl, chat.completion.chunk, created, choices) would cost three times
# the search.
TEXT = re.compile(rb'ntent' + _VALUE)  # `content` and `reasoning_content`, in one pass
_ARGUMENTS = re.compile(rb'guments' + _VALUE)
_REASONING_CONTENT = re.compile(rb'soning_content' + _VALUE)
_REASONING = re.compile(rb'soning' + _VALUE)
HOLD = 128 * 1024  # bytes of events held before their text is counted: the memory a stream holds

def _unescaped(raw: bytes) -> bytes:
    """JSON string bodies, joined, as the UTF-8 text they stand for (`\\n`, `\\u4e2d`: one
    character each)."""
    if b"\\" not in raw:
        return raw
    try:
        return orjson.loads(b'"' + raw + b'"').encode(errors="replace")
    except orjson.JSONDecodeError:
        return raw


class Tally:
    """What one stream relayed to its client: text events, their text, any usage on the way."""

    __slots__ = ("_held", "_size", "_text", "events", "prompt_tokens", "reported", "weighed")

    def __init__(self, text: re.Pattern = TEXT) -> None:
        self._text = text  # where the text is: chat's `content`, or another API's field
        self._held: list[bytes] = []  # events not counted yet, as the upstream wrote them
        self._size = 0  # their bytes
        self.events = 0  # values that carried text since `reported`, counted so far
        self.weighed = 0.0  # their tokens by WEIGHTS
        self.reported = 0  # completion tokens an upstream usage gave on the way
        self.prompt_tokens: int | None = None  # the prompt, if an upstream usage said

    def add(self, events: bytes) -> None:
        """Take whole SSE events, as the upstream wrote them; they are counted in blocks."""
        self._held.append(events)
        self._size += len(events)
        if self._size > HOLD:
            self._count()

    def _count(self) -> None:
        if not self._held:
            return
        held = b"".join(self._held)
        found = self._text.findall(held)
        if b'"reasoning"' in held:
            found += _plain_reasoning(held)
        if b'"arguments"' in held:
            found += _ARGUMENTS.findall(held)
        if found:
            self.events += len(found) - found.count(b"")  # an empty one carried no text
            self.weighed += text_tokens(_unescaped(b"".join(found)))
        self._forget()

    def _forget(self) -> None:
        self._held.clear()
        self._size = 0

    def usage_seen(self, usage: dict) -> bool:
        """Take an upstream usage from the stream; True if its completion count now stands
        for all the text so far (the caller then adds only what follows its event)."""
        prompt = usage.get("prompt_tokens")
        if type(prompt) is int:
            self.prompt_tokens = prompt
        completion = usage.get("completion_tokens")
        if type(completion) is not int:
            return False
        self.reported = completion
        self.events, self.weighed = 0, 0.0
        self._forget()
        return True

    def completion_tokens(self) -> int:
        """Completion tokens relayed: the upstream's count so far, plus the text since."""
        self._count()
        return self.reported + max(self.events, round(self.weighed))


def _plain_reasoning(events: bytes) -> list[bytes]:
    """`reasoning` values, unless these events write the text under `reasoning_content` too
    (vLLM writes both names), which TEXT has counted."""
    if _REASONING_CONTENT.search(events) is not None:
        return []
    return _REASONING.findall(events)


def charged(tallies: list[Tally], prompt_estimate: int) -> tuple[int, int]:
    """(prompt, completion) tokens for streams that ended without a whole usage: each stream's
    real prompt count where one was seen, else the estimate."""
    prompt = sum(t.prompt_tokens if t.prompt_tokens is not None else prompt_estimate
                 for t in tallies)
    return prompt, sum(t.completion_tokens() for t in tallies)
