"""A Responses event stream, written item by item from what a chat stream says.

OpenAI's sequence, each event numbered by `sequence_number` from 0:
`response.created`, `response.in_progress`, then per output item
`response.output_item.added`, its parts' events, `response.output_item.done`,
and last `response.completed`, `response.incomplete` or `response.failed` with
the whole response object.

- a message's text: `content_part.added`, `output_text.delta`..., `output_text.done`,
  `content_part.done` (a refusal the same, with `refusal.delta`/`.done`);
- reasoning: `reasoning_summary_part.added`, `reasoning_summary_text.delta`...,
  `reasoning_summary_text.done`, `reasoning_summary_part.done`;
- a function call: `function_call_arguments.delta`..., `function_call_arguments.done`.

An item is opened by the first piece of its kind and closed by a piece of
another kind or by the end of the answer, so items come out in the order the
upstream wrote them. What is written is kept (`output`): the closing events
repeat an item whole, and the last event the response.
"""

from __future__ import annotations

import orjson

from gateway.apis.responses import objects

# What each kind of piece opens: the item's id prefix, and the events around its part.
_PART = {"text": ("response.content_part", "content_index", "response.output_text"),
         "refusal": ("response.content_part", "content_index", "response.refusal"),
         "reasoning": ("response.reasoning_summary_part", "summary_index",
                       "response.reasoning_summary_text")}
_PREFIX = {"text": "msg_", "refusal": "msg_", "reasoning": "rs_", "call": "fc_"}
_DELTA = {kind: part[2] + ".delta" for kind, part in _PART.items()} | {
    "call": "response.function_call_arguments.delta"}


class _Open:
    """The item being written: its kind, place, id and the pieces so far."""

    __slots__ = ("call_id", "delta_head", "index", "item_id", "kind", "name", "pieces", "where")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind, self.index = kind, index
        self.pieces: list[str] = []
        self.item_id = objects.new_id(_PREFIX[kind])
        self.call_id, self.name = call_id, name
        where: dict = {"item_id": self.item_id, "output_index": index}
        if kind != "call":
            where[_PART[kind][1]] = 0
        self.where = where  # what every event of its parts says of its place
        # Its delta events are the stream's bulk: written from bytes made once, not from dicts.
        name_ = _DELTA[kind].encode()
        self.delta_head = (b"event: " + name_ + b'\ndata: {"type":"' + name_ + b'",'
                           + orjson.dumps(where)[1:-1]
                           + (b',"logprobs":[]' if kind == "text" else b"") + b',"delta":')

    def delta(self, text: str, sequence: int) -> bytes:
        """The delta event of `text`, numbered `sequence`."""
        self.pieces.append(text)
        return b'%b%b,"sequence_number":%d}\n\n' % (self.delta_head, orjson.dumps(text), sequence)

    def item(self, status: str) -> dict:
        text = "".join(self.pieces)
        if self.kind == "call":
            return objects.function_call_item(self.item_id, self.call_id, self.name, text,
                                              status)
        if self.kind == "reasoning":
            item = objects.reasoning_item(self.item_id, text)
            return item if status != "in_progress" else {**item, "summary": []}
        if status == "in_progress":
            return {**objects.message_item(self.item_id, "", status), "content": []}
        if self.kind == "refusal":
            return objects.message_item(self.item_id, "", status, refusal=text)
        return objects.message_item(self.item_id, text, status)

    def part(self, text: str) -> dict:
        if self.kind == "reasoning":
            return objects.summary_text(text)
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return objects.output_text(text)


class Writer:
    """One response's events; `final` is its response object once the last is written."""

    __slots__ = ("_calls", "_echo", "_open", "alias", "created_at", "final", "output",
                 "response_id", "sequence")

    def __init__(self, alias: str, echo: dict) -> None:
        self.alias, self._echo = alias, echo
        self.response_id = objects.new_id("resp_")
        self.created_at = objects.now()
        self.sequence = -1  # the last event's number; -1: nothing written yet
        self.output: list[dict] = []  # the items written, whole once closed
        self._open: _Open | None = None
        self._calls: dict[object, _Open] = {}  # a chat tool call's index -> its item
        self.final: dict | None = None

    def event(self, kind: str, fields: dict) -> bytes:
        """One event: its type, its number, then `fields` (not empty)."""
        return self._event(kind, orjson.dumps(fields)[1:-1])

    def _response(self, status: str, **fields) -> dict:
        return objects.response(self.response_id, self.created_at, self.alias, self._echo,
                                status, list(self.output), **fields)

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`, once, before anything else."""
        if self.sequence >= 0:
            return b""
        snapshot = b'"response":' + orjson.dumps(self._response("in_progress"))  # once, for both
        return self._event("response.created", snapshot) + self._event("response.in_progress",
                                                                      snapshot)

    def _event(self, kind: str, fields: bytes) -> bytes:
        """As `event` writes it, from its fields written already (an object's members)."""
        self.sequence += 1
        name = kind.encode()
        return b'event: %b\ndata: {"type":"%b","sequence_number":%d,%b}\n\n' % (
            name, name, self.sequence, fields)

    def piece(self, kind: str, text: str) -> bytes:
        """A piece of text of `kind` (text, refusal, reasoning), in an item of that kind."""
        current = self._open
        if current is not None and current.kind == kind:  # the usual: one more piece
            self.sequence += 1
            return current.delta(text, self.sequence)
        current = _Open(kind, len(self.output))
        out = self._begin(current)
        self.sequence += 1
        return out + current.delta(text, self.sequence)

    def text_run(self) -> tuple[bytes, bytes, int] | None:
        current = self._open
        if current is None or current.kind != "text":
            return None
        return current.delta_head, b"}\n\n", self.sequence + 1

    def ran(self, text: str, number: int) -> None:
        assert self._open is not None
        self._open.pieces.append(text)
        self.sequence = number - 1

    def call(self, index: object, call_id: str | None, name: str | None,
             arguments: str) -> bytes:
        """A piece of a function call: the chat tool call at `index`, its id and name first."""
        current = self._calls.get(index)
        out = b""
        if current is None:
            current = _Open("call", len(self.output), call_id or objects.new_id("call_"),
                            name or "")
            self._calls[index] = current
            out = self._begin(current)
        elif name and current.name != name:
            current.name += name  # a name sent in pieces
        if not arguments:
            return out
        self.sequence += 1
        return out + current.delta(arguments, self.sequence)

    def _begin(self, item: _Open) -> bytes:
        out = self.close()
        self._open = item
        added = item.item("in_progress")
        self.output.append(added)
        out += self.event("response.output_item.added", {"output_index": item.index,
                                                         "item": added})
        if item.kind != "call":
            out += self.event(_PART[item.kind][0] + ".added", {**item.where,
                                                               "part": item.part("")})
        return out

    def close(self, status: str = "completed") -> bytes:
        """The open item's closing events; it is then whole in `output`."""
        item, self._open = self._open, None
        if item is None:
            return b""
        text = "".join(item.pieces)
        whole = self.output[item.index] = item.item(status)
        where = item.where
        if item.kind == "call":
            out = self.event("response.function_call_arguments.done",
                             {**where, "name": item.name, "arguments": text})
        else:
            part, _, pieces = _PART[item.kind]
            done: dict = {"text": text} if item.kind != "refusal" else {"refusal": text}
            if item.kind == "text":
                done["logprobs"] = []
            out = (self.event(pieces + ".done", {**where, **done})
                   + self.event(part + ".done", {**where, "part": item.part(text)}))
        return out + self.event("response.output_item.done", {"output_index": item.index,
                                                              "item": whole})

    def end(self, finish_reason: object, usage: dict) -> bytes:
        """The last events of an answer that ended as `finish_reason` says."""
        status, why = objects.status_of(finish_reason)
        out = self.close("completed" if status == "completed" else "incomplete")
        self.final = self._response(status, usage=objects.from_chat_usage(usage), incomplete=why)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self.event(kind, {"response": self.final})

    def fail(self, code: str | None, message: str) -> bytes:
        """`response.failed`: the answer broke off; what was written stays, unfinished."""
        out = self.start()
        current, self._open = self._open, None
        if current is not None:
            self.output[current.index] = current.item("incomplete")
        self.final = self._response("failed", error=objects.failed(code, message))
        return out + self.event("response.failed", {"response": self.final})
