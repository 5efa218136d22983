"""A chat read's SSE events as bytes: find, check and change the few events that matter
in a read without splitting or parsing the rest (adapt.py's rewrite).

Events are found by position (the blank lines around a match), `[DONE]` by a
find and a look at its line, and the shape of a block of `data: {...}` events
by two counts; only an event that must change is parsed.
"""

from __future__ import annotations

import re

import orjson

from gateway.upstream.base import MalformedStream


def matches(pattern: re.Pattern, events: bytes, at: int = 0):
    """Where `pattern` matches in `events` from `at`: spans for `each_event`."""
    return ((m.start(), m.end()) for m in pattern.finditer(events, at))


def each_match(events: bytes, found, change) -> bytes:
    """`events` with each match in `found` replaced by `change(match)`: re.sub, from where
    the matches start (a search from the start of a long read would cost a pass over it)."""
    out: list[bytes] = []
    position = 0
    for match in found:
        out += (events[position:match.start()], change(match))
        position = match.end()
    if not out:
        return events
    out.append(events[position:])
    return b"".join(out)


def done_lines(events: bytes):
    """Where `data: [DONE]` lines are: find() and a look at the line's start (a multiline
    regex has no literal to skip ahead by and costs ten times more)."""
    at = events.find(b"[DONE]")
    while at >= 0:
        line = events.rfind(b"\n", 0, at) + 1
        if events[line:at].rstrip() == b"data:":
            yield line, at + 6
        at = events.find(b"[DONE]", at + 6)


def each_event(events: bytes, spans, change) -> bytes:
    """Apply `change` to each event holding one of `spans`; only those events are parsed.

    Events are found by position (the blank lines around a span), so a chunk of many
    events costs a search, not a split. `change` gets the event's JSON (None for
    `[DONE]`) and returns None to keep the event, a dict to replace it, `{}` to drop it.
    """
    out = []
    position = 0
    for span_start, span_end in spans:
        start = events.rfind(b"\n\n", 0, span_start) + 2
        start = 0 if start == 1 else start
        if start < position:
            continue  # the same event as the previous span
        end = events.find(b"\n\n", span_end)
        end = len(events) if end < 0 else end + 2
        event = events[start:end]
        data = None
        if event.startswith(b"data:") and not event[5:].lstrip().startswith(b"[DONE]"):
            try:
                data = orjson.loads(event[5:])
            except orjson.JSONDecodeError:
                pass
        changed = change(data if type(data) is dict else None)
        out.append(events[position:start])
        if changed is None:
            out.append(event)
        elif changed:
            out.append(b"data: " + orjson.dumps(changed) + b"\n\n")
        position = end
    if not out:
        return events
    out.append(events[position:])
    return b"".join(out)


def check_json(events: bytes) -> bool:
    """Raise MalformedStream unless every event's data is JSON (or `[DONE]`); True when
    the events have the usual shape (below), where a `[DONE]` can only be the last.

    The usual block, `data: {...}` events and nothing else, is checked by shape
    only: each event's data opens and closes an object. Parsing every event
    would cost ~6 us per KB of stream; a cut-off or non-JSON event breaks the
    shape, and only then, or for other lines (comments, fields), is each event
    parsed. An event with its braces intact and broken JSON inside passes."""
    block = events[:-14] if events.endswith(b"data: [DONE]\n\n") else events
    if not block or (block.startswith(b"data: {") and block.endswith(b"}\n\n")
                     and block.count(b"\n\ndata: ") == block.count(b"}\n\ndata: {")):
        return True
    for event in events.split(b"\n\n"):
        data = b"\n".join(line[5:] for line in event.split(b"\n") if line.startswith(b"data:"))
        if data.strip() and data.strip() != b"[DONE]" and not is_json(data):
            raise MalformedStream("upstream sent an event that is not JSON: "
                                  + data[:80].decode(errors="replace"))
    return False


def has_done(events: bytes) -> bool:
    """Whether a `data: [DONE]` line is among `events`."""
    return next(done_lines(events), None) is not None


def is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True
