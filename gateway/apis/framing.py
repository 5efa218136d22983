"""Whole events out of a native upstream's stream, for the APIs whose streams pass through.

An upstream read ends anywhere, mid-event included: what follows the last blank
line waits for the next read, up to the event size limit. At the end, a last
event that lacks its blank line is taken if its data is whole JSON, and
dropped as cut off (`truncated`) if not.
"""

from __future__ import annotations

import orjson

from gateway.upstream.base import MalformedStream, ResponseTooLarge


class Framed:
    """A stream adapter's framing; a subclass relays the events (`_relayed`)."""

    __slots__ = ("_max_event", "_rest", "truncated")

    def __init__(self, max_event: int) -> None:
        self._max_event = max_event  # a partial event is held in memory: this much at most
        self._rest = b""
        self.truncated = False  # the upstream stopped in the middle of an event

    def _relayed(self, events: bytes) -> bytes:
        """Whole events, each ending with a blank line, as the client gets them."""
        raise NotImplementedError

    def feed(self, chunk: bytes) -> bytes:
        data = self._rest + chunk if self._rest else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        self._rest = data[end + 2:] if end >= 0 else data
        if len(self._rest) > self._max_event:
            raise ResponseTooLarge(f"upstream sent an event over the {self._max_event}-byte limit")
        return self._relayed(data[:end + 2]) if end >= 0 else b""

    def _last(self) -> bytes:
        """What is left at the end, relayed if it is a whole event."""
        rest, self._rest = self._rest.strip(), b""
        if b"data:" not in rest:
            return b""  # nothing, or a comment
        if event_data(rest) is None:
            self.truncated = True
            return b""
        return self._relayed(rest + b"\n\n")


def event_data(event: bytes) -> bytes | None:
    """An event's data, if it is whole: JSON, or `[DONE]`."""
    data = b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
    if data == b"[DONE]":
        return data
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return data


def event_json(event: bytes) -> object:
    """An event's data as JSON; MalformedStream if it is not."""
    data = event_data(event)
    if data is None:
        raise MalformedStream("upstream sent an event that is not JSON: "
                              + event[:80].decode(errors="replace"))
    return orjson.loads(data)
