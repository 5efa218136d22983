"""A Messages event stream, written block by block from what a chat stream says.

Anthropic's sequence: `message_start` (the message, empty), then per content
block `content_block_start`, its `content_block_delta`s (`thinking_delta`, then
the block's `signature_delta`; `text_delta`; `input_json_delta`) and
`content_block_stop`; a `ping` after the first block opens; last
`message_delta` (the stop reason, the usage) and `message_stop`.

A block is opened by the first piece of its kind and closed by a piece of
another kind or by the end, so blocks come out in the order the upstream wrote
them. Each tool call is a block of its own, in the order the calls began.
"""

from __future__ import annotations

import orjson

from gateway.apis.messages import objects


def _event(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_DELTA_TYPES = {"text": (b"text_delta", b"text"), "thinking": (b"thinking_delta", b"thinking"),
                "tool_use": (b"input_json_delta", b"partial_json")}


class _Block:
    __slots__ = ("head", "index", "kind", "pieces")

    def __init__(self, kind: str, index: int) -> None:
        self.kind, self.index = kind, index
        self.pieces: list[str] = []  # a thinking block's text, signed when it closes
        delta_type, field = _DELTA_TYPES[kind]
        # The stream's bulk: its delta events written from bytes made once.
        self.head = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                     + str(index).encode() + b',"delta":{"type":"' + delta_type + b'","'
                     + field + b'":')

    def delta(self, text: str) -> bytes:
        if self.kind == "thinking":
            self.pieces.append(text)
        return self.head + orjson.dumps(text) + b"}}\n\n"


class Writer:
    """One message's events."""

    __slots__ = ("_blocks", "_calls", "_open", "alias", "message_id", "prompt_estimate",
                 "started")

    def __init__(self, alias: str, prompt_estimate: int) -> None:
        self.alias = alias
        self.prompt_estimate = prompt_estimate  # message_start's input_tokens, till the usage
        self.message_id = objects.new_id()
        self.started = False
        self._blocks = 0  # blocks opened so far
        self._open: _Block | None = None
        self._calls: dict[object, _Block] = {}  # a chat tool call's index -> its block

    def start(self) -> bytes:
        """`message_start`, once, before anything else."""
        if self.started:
            return b""
        self.started = True
        usage = {"input_tokens": self.prompt_estimate, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": 0}
        return _event("message_start", {"type": "message_start", "message": objects.message(
            self.message_id, self.alias, [], None, None, usage)})

    def piece(self, kind: str, text: str) -> bytes:
        """A piece of text of `kind` (text, thinking), in a block of that kind."""
        current = self._open
        if current is not None and current.kind == kind:
            return current.delta(text)
        block = {"type": "text", "text": ""} if kind == "text" else {
            "type": "thinking", "thinking": "", "signature": ""}
        out = self._begin(kind, block)
        assert self._open is not None
        return out + self._open.delta(text)

    def text_run(self) -> tuple[bytes, bytes, int] | None:
        current = self._open
        if current is None or current.kind != "text":
            return None
        return current.head, b"}}\n\n", -1

    def ran(self, text: str, number: int) -> None:
        """A text block keeps no pieces (a thinking block's are signed)."""

    def call(self, index: object, call_id: str, name: str, arguments: str) -> bytes:
        """A piece of a tool call: the chat tool call at `index`, its id and name first."""
        current = self._calls.get(index)
        out = b""
        if current is None:
            out = self._begin("tool_use", {"type": "tool_use", "id": call_id or objects.new_id(
                "toolu_"), "name": name, "input": {}})
            current = self._calls[index] = self._open  # type: ignore[assignment]
        if not arguments or current is None:
            return out
        return out + current.delta(arguments)

    def _begin(self, kind: str, block: dict) -> bytes:
        out = self.close()
        self._open = _Block(kind, self._blocks)
        self._blocks += 1
        out += _event("content_block_start", {"type": "content_block_start",
                                              "index": self._open.index, "content_block": block})
        if self._open.index == 0:
            out += _event("ping", {"type": "ping"})
        return out

    def close(self) -> bytes:
        """The open block's end; a thinking block's signature first."""
        block, self._open = self._open, None
        if block is None:
            return b""
        out = b""
        if block.kind == "thinking":
            signature = objects.thinking_block("".join(block.pieces))["signature"]
            out = _event("content_block_delta", {
                "type": "content_block_delta", "index": block.index,
                "delta": {"type": "signature_delta", "signature": signature}})
        return out + _event("content_block_stop", {"type": "content_block_stop",
                                                   "index": block.index})

    def end(self, reason: str, sequence: str | None, usage: dict) -> bytes:
        """The last events: the open block closed, the stop reason and the whole usage."""
        return (self.close()
                + _event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": reason,
                                                     "stop_sequence": sequence},
                                           "usage": usage})
                + _event("message_stop", {"type": "message_stop"}))
