"""Adapt: put the upstream's answer back into the shape the client expects.

The client sees the alias it asked for as `model`. Streams are handled on
bytes: one regex pass per upstream read rewrites `model` in every event, and
JSON is parsed only for the event that carries `usage`.
"""

from __future__ import annotations

import re

import orjson

from gateway.errors import UpstreamError

# `"model": "..."`: only a key can match, as quotes inside a string are escaped and a
# string value is never followed by `:`. Starting with a literal lets the regex engine
# skip ahead fast (a lookbehind made this 13x slower).
_MODEL = re.compile(rb'"model"\s*:\s*"[^"\\]*(?:\\.[^"\\]*)*"')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
DONE_EVENT = b"data: [DONE]\n\n"


def adapt_completion(data: bytes, alias: str) -> tuple[bytes, dict | None]:
    """The completion with `model` set to the alias, and its usage. UpstreamError if it is not one."""
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("The upstream answered with a body that is not JSON.") from None
    if type(answer) is not dict or type(answer.get("choices")) is not list:
        error = answer.get("error") if type(answer) is dict else None
        if error is not None:
            detail = error.get("message") if type(error) is dict else error
            raise UpstreamError(f"The upstream answered 200 with an error: {str(detail)[:500]}")
        raise UpstreamError("The upstream answered with JSON that is not a chat completion.")
    answer["model"] = alias
    usage = answer.get("usage")
    return orjson.dumps(answer), usage if type(usage) is dict else None


def _has_done(events: bytes) -> bool:
    """Whether a `data: [DONE]` line is among `events`."""
    at = events.find(b"[DONE]")
    while at >= 0:
        line = events.rfind(b"\n", 0, at) + 1
        if events[line:at].rstrip() == b"data:":
            return True
        at = events.find(b"[DONE]", at + 6)
    return False


class StreamAdapter:
    """Splits an upstream SSE byte stream into whole events and rewrites them for the client."""

    __slots__ = ("_model", "_rest", "done", "truncated", "usage")

    def __init__(self, alias: str) -> None:
        # A regex replacement template: backslashes doubled so the alias is taken literally.
        self._model = (b'"model":' + orjson.dumps(alias)).replace(b"\\", b"\\\\")
        self._rest = b""
        self.done = False
        self.truncated = False  # the upstream stopped in the middle of an event
        self.usage: dict | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Whole events completed by `chunk`, rewritten; a partial event waits for the next chunk."""
        data = self._rest + chunk if self._rest else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
            if data.endswith(b"\r"):  # maybe half of a \r\n
                self._rest = data
                return b""
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data
            return b""
        self._rest = data[end + 2:]
        return self._rewrite(data[:end + 2])

    def finish(self) -> bytes:
        """The last event if the upstream ended without its blank line; a cut-off one is dropped.

        `[DONE]` is not added here: the relay adds it, or an error event if `truncated`.
        """
        rest, self._rest = self._rest.strip(), b""
        if not rest:
            return b""
        if _has_done(rest):
            self.done = True
            return DONE_EVENT
        if rest.startswith(b"data:"):
            try:
                orjson.loads(rest[5:])
            except orjson.JSONDecodeError:
                pass
            else:
                return self._rewrite(rest + b"\n\n")
        self.truncated = True
        return b""

    def _rewrite(self, events: bytes) -> bytes:
        events = _MODEL.sub(self._model, events)
        # find() and a check at the hit: a regex search over the whole chunk costs 10x more.
        at = events.find(b'"usage"')
        while at >= 0:
            if _USAGE.match(events, at):
                self._read_usage(events, at)
            at = events.find(b'"usage"', at + 7)
        if not self.done:
            self.done = _has_done(events)
        return events

    def _read_usage(self, events: bytes, at: int) -> None:
        start = events.rfind(b"\n\n", 0, at)
        start = 0 if start < 0 else start + 2
        end = events.find(b"\n\n", at)
        for line in events[start:end].split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    usage = orjson.loads(line[5:]).get("usage")
                except (orjson.JSONDecodeError, AttributeError):
                    return
                if type(usage) is dict:
                    self.usage = usage
