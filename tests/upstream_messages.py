"""Anthropic's Messages API in the test upstream: POST /v1/messages and /v1/messages/count_tokens.

As strict as Anthropic's own API, so that a test passing through the gateway
proves the gateway wrote a request Anthropic would take: it refuses, with
Anthropic's error shape and a 400, a missing `model`, `messages` or
`max_tokens`, any top-level field Anthropic does not document (OpenAI's names
sent by mistake among them), turns that do not alternate from the user's, a
`tool_result` that answers no `tool_use` of the turn before (and a `tool_use`
left unanswered), content blocks it does not know (OpenAI's `image_url`),
empty text, OpenAI-shaped tools and tool choices, and a thinking block whose
signature it did not write. With nothing scripted it answers like a model
would: an echo of the last user text, a `tool_use` of the first tool offered,
then an answer from the `tool_result`; a thinking block first when thinking is
on; cut at a stop sequence or at `max_tokens` (a word a token). Streamed, the
same message comes as Anthropic's events.

Stricter than Anthropic in one place: its API now joins consecutive turns of one role
into one, where this one refuses them (as Anthropic's first versions did), so that a
converter which writes them is caught rather than relied on.

`Upstream(apis=(..., "messages"))` serves it (tests/upstream.py), through that
server's recording, scripted `_answer`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.upstream import _text, response_event

# Anthropic's documented request fields for POST /v1/messages (the beta ones too:
# container, context_management, mcp_servers; Anthropic wants their beta header, this
# upstream does not). Anything else is "Extra inputs are not permitted", as there.
REQUEST_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "context_management", "mcp_servers", "output_config", "inference_geo",
    "cache_control"})
# POST /v1/messages/count_tokens takes the prompt's fields only: no max_tokens, no sampling.
COUNT_FIELDS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "context_management",
    "mcp_servers", "output_config", "cache_control"})

# The content block types a message may hold (Anthropic's ContentBlockParam union).
BLOCK_TYPES = frozenset({
    "text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
    "redacted_thinking", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "tool_search_tool_result", "mcp_tool_use",
    "mcp_tool_result", "container_upload"})
# What each kind of block must carry.
BLOCK_FIELDS = {"text": ("text",), "image": ("source",), "document": ("source",),
                "tool_use": ("id", "name", "input"), "tool_result": ("tool_use_id",),
                "thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
THINKING_TYPES = frozenset({"enabled", "disabled", "adaptive"})
SERVER_TOOL = re.compile(r"^[a-z_]+_\d{8}$")  # web_search_20250305, bash_20250124...

TOOL_ID = "toolu_test_1"
TOOL_INPUT = {"location": "Paris"}


class Refusal(Exception):
    """What Anthropic would answer with a 400: `message` says where and why."""


def refusal(payload: dict) -> web.Response | None:
    """Anthropic's 400 for a /v1/messages request it would refuse, else None."""
    return _refused(_check_create, payload)


def count_refusal(payload: dict) -> web.Response | None:
    """Anthropic's 400 for a /v1/messages/count_tokens request it would refuse, else None."""
    return _refused(_check_count, payload)


def error_body(message: str, kind: str = "invalid_request_error") -> dict:
    """Anthropic's error object: `{"type": "error", "error": {"type", "message"}}`."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def _refused(check: Callable[[dict], None], payload: dict) -> web.Response | None:
    try:
        check(payload)
    except Refusal as refused:
        return web.json_response(error_body(str(refused)), status=400)
    return None


def _check_create(payload: dict) -> None:
    _check_fields(payload, REQUEST_FIELDS, ("model", "messages", "max_tokens"))
    max_tokens = payload["max_tokens"]
    if type(max_tokens) is not int:
        raise Refusal("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise Refusal("max_tokens: Input should be greater than or equal to 1")
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (type(value) not in (int, float) or not 0 <= value <= 1):
            raise Refusal(f"{name}: Input should be a number between 0 and 1")
    top_k = payload.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 0):
        raise Refusal("top_k: Input should be an integer greater than or equal to 0")
    stops = payload.get("stop_sequences")
    if stops is not None and (type(stops) is not list or not all(type(s) is str for s in stops)):
        raise Refusal("stop_sequences: Input should be a valid list of strings")
    metadata = payload.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        raise Refusal("metadata: Input should be a valid dictionary or object")
    if set(metadata or {}) - {"user_id"}:
        extra = sorted(set(payload["metadata"]) - {"user_id"})[0]
        raise Refusal(f"metadata.{extra}: Extra inputs are not permitted")
    if payload.get("service_tier") not in (None, "auto", "standard_only"):
        raise Refusal("service_tier: Input should be 'auto' or 'standard_only'")
    _check_prompt(payload)
    budget = (payload.get("thinking") or {}).get("budget_tokens")
    if type(budget) is int and budget >= max_tokens:
        raise Refusal("`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_count(payload: dict) -> None:
    _check_fields(payload, COUNT_FIELDS, ("model", "messages"))
    _check_prompt(payload)


def _check_fields(payload: dict, allowed: frozenset[str], required: tuple[str, ...]) -> None:
    for name in required:
        if name not in payload:
            raise Refusal(f"{name}: Field required")
    extra = [name for name in payload if name not in allowed]
    if extra:
        raise Refusal(f"{extra[0]}: Extra inputs are not permitted")
    if type(payload["model"]) is not str or not payload["model"]:
        raise Refusal("model: Input should be a valid string")


def _check_prompt(payload: dict) -> None:
    """What /v1/messages and count_tokens both check: system, messages, tools, thinking."""
    _check_system(payload.get("system"))
    _check_messages(payload["messages"])
    _check_tools(payload.get("tools"))
    choice = payload.get("tool_choice")
    if choice is not None:
        if type(choice) is not dict:
            raise Refusal("tool_choice: Input should be a valid dictionary or object")
        if choice.get("type") not in TOOL_CHOICES:
            raise Refusal(f"tool_choice: Input tag {choice.get('type')!r} found using 'type' "
                          "does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
        if choice["type"] == "tool" and type(choice.get("name")) is not str:
            raise Refusal("tool_choice.tool.name: Field required")
    thinking = payload.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if type(thinking) is dict else None
    if kind not in THINKING_TYPES:
        raise Refusal(f"thinking: Input tag {kind!r} found using 'type' does not match any of "
                      "the expected tags: 'enabled', 'disabled', 'adaptive'")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and (type(budget) is not int or budget < 1024):
        raise Refusal("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if kind != "enabled" and "budget_tokens" in thinking:
        raise Refusal(f"thinking.{kind}.budget_tokens: Extra inputs are not permitted")
    if kind != "disabled" and (choice or {}).get("type") in ("any", "tool"):
        raise Refusal("Thinking may not be enabled when tool_choice forces tool use.")


def _check_system(system: Any) -> None:
    if system is None or type(system) is str:
        return
    if type(system) is not list:
        raise Refusal("system: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if type(block) is not dict or block.get("type") != "text":
            kind = block.get("type") if type(block) is dict else None
            raise Refusal(f"system.{i}.type: Input should be 'text', got {kind!r}")
        _check_block(block, f"system.{i}")


def _check_messages(messages: Any) -> None:
    if type(messages) is not list:
        raise Refusal("messages: Input should be a valid list")
    if not messages:
        raise Refusal("messages: at least one message is required")
    unanswered: set[str] = set()  # the ids of the tool_use blocks of the turn before
    turn = 0  # the user and assistant turns so far: a system turn is neither
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if type(message) is dict else None
        if role == "system" and i > 0:  # instructions mid-conversation, as Claude Code sends
            if any(b["type"] != "text" for b in _blocks(message.get("content"), where, False)):
                raise Refusal(f"{where}.content: a system turn holds text blocks only")
            continue
        if role not in ("user", "assistant"):
            raise Refusal(f"{where}.role: Input should be 'user' or 'assistant'")
        expected = "user" if turn % 2 == 0 else "assistant"
        turn += 1
        if role != expected:
            if i == 0:
                raise Refusal('messages: first message must use the "user" role')
            raise Refusal('messages: roles must alternate between "user" and "assistant", but '
                          f'found multiple "{role}" roles in a row')
        blocks = _blocks(message.get("content"), where, last=i == len(messages) - 1)
        answered = {str(b["tool_use_id"]) for b in blocks if b["type"] == "tool_result"}
        if answered - unanswered:
            raise Refusal(f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                          f"{sorted(answered - unanswered)[0]}. Each `tool_result` block must "
                          "have a corresponding `tool_use` block in the previous message.")
        if unanswered - answered:
            raise Refusal(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` "
                          f"blocks immediately after: {sorted(unanswered - answered)[0]}. Each "
                          "`tool_use` block must have a corresponding `tool_result` block in "
                          "the next message.")
        unanswered = {str(b["id"]) for b in blocks if b["type"] == "tool_use"}


def _blocks(content: Any, where: str, last: bool) -> list[dict]:
    """A message's content as checked blocks (a string is one text block)."""
    if type(content) is str:
        if not content and not last:
            raise Refusal(f"{where}: all messages must have non-empty content except for the "
                          "optional final assistant message")
        return [{"type": "text", "text": content}] if content else []
    if type(content) is not list:
        raise Refusal(f"{where}.content: Input should be a valid string or list")
    for j, block in enumerate(content):
        _check_block(block, f"{where}.content.{j}")
    return content


def _check_block(block: Any, where: str) -> None:
    kind = block.get("type") if type(block) is dict else None
    if kind not in BLOCK_TYPES:
        raise Refusal(f"{where}: Input tag {kind!r} found using 'type' does not match any of "
                      "the expected tags")
    for name in BLOCK_FIELDS.get(kind, ()):
        if name not in block:
            raise Refusal(f"{where}.{kind}.{name}: Field required")
    if kind == "text" and not block["text"]:
        raise Refusal("messages: text content blocks must be non-empty")
    if kind == "thinking" and block["signature"] != signature(str(block["thinking"])):
        raise Refusal(f"{where}: Invalid `signature` in `thinking` block")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if type(tools) is not list:
        raise Refusal("tools: Input should be a valid list")
    names = []
    for i, tool in enumerate(tools):
        kind = tool.get("type", "custom") if type(tool) is dict else None
        if kind == "custom":
            for name in ("name", "input_schema"):
                if name not in tool:
                    raise Refusal(f"tools.{i}.custom.{name}: Field required")
        elif type(kind) is not str or not SERVER_TOOL.match(kind):
            raise Refusal(f"tools.{i}: Input tag {kind!r} found using 'type' does not match any "
                          "of the expected tags")
        names.append(tool.get("name"))
    if len(set(names)) < len(names):
        raise Refusal("tools: Tool names must be unique.")


def signature(thinking: str) -> str:
    """The signature this upstream gives a thinking block, and the only one it takes back."""
    return base64.b64encode(hashlib.sha256(b"test-upstream:" + thinking.encode()).digest()).decode()


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def tool_use_block(name: str, arguments: dict | None = None, block_id: str = TOOL_ID) -> dict:
    return {"type": "tool_use", "id": block_id, "name": name,
            "input": dict(TOOL_INPUT) if arguments is None else arguments}


def thinking_block(thinking: str, signed: str | None = None) -> dict:
    """A thinking block, signed as this upstream signs (else with `signed`)."""
    return {"type": "thinking", "thinking": thinking,
            "signature": signature(thinking) if signed is None else signed}


def input_tokens(request: dict) -> int:
    """The prompt's tokens, as this upstream counts them: a token four characters of its
    system, messages and tools, as JSON. count_tokens and the usage of an answer agree."""
    prompt = [request.get("system"), request.get("messages"), request.get("tools")]
    return max(1, len(json.dumps(prompt)) // 4)


def output_tokens(content: list[dict]) -> int:
    """A word a token for text and thinking; a tool call's input four characters a token."""
    count = 0
    for block in content:
        if block["type"] == "text":
            count += len(block["text"].split())
        elif block["type"] == "thinking":
            count += len(block["thinking"].split())
        elif block["type"] == "tool_use":
            count += max(1, len(json.dumps(block["input"])) // 4)
    return count


def counts(input_count: int, output_count: int) -> dict:
    """An answer's usage, as Anthropic writes it (this upstream caches nothing)."""
    return {"input_tokens": input_count, "output_tokens": output_count,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def message_object(request: dict, content: list[dict], *, stop_reason: str | None = None,
                   stop_sequence: str | None = None, usage: dict | None = None,
                   message_id: str = "msg_test") -> dict:
    """A Message, as Anthropic's /v1/messages answers. `stop_reason` defaults to tool_use
    when the content calls a tool, else end_turn; `usage` to the counts above."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {"id": message_id, "type": "message", "role": "assistant",
            "model": request.get("model"), "content": content, "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage or counts(input_tokens(request), output_tokens(content))}


def _last_user(request: dict) -> dict:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            return message
    return {}


def _tool_results(message: dict) -> list[dict]:
    content = message.get("content")
    return [b for b in content if b.get("type") == "tool_result"] if type(content) is list else []


def _tool_to_call(request: dict) -> str | None:
    """The tool a model would call now: the one tool_choice names, else the first custom
    tool offered; none when tool_choice is none or the last user turn answers a call."""
    tools = [t for t in request.get("tools") or [] if t.get("type", "custom") == "custom"]
    choice = request.get("tool_choice") or {}
    if not tools or choice.get("type") == "none" or _tool_results(_last_user(request)):
        return None
    return choice["name"] if choice.get("type") == "tool" else tools[0]["name"]


def natural_message(request: dict) -> dict:
    """What a model behind /v1/messages would say (the module's docstring says how)."""
    last = _last_user(request)
    said = _text(last.get("content", ""))
    content: list[dict] = []
    if (request.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        content.append(thinking_block(f"thinking about: {said}"))
    tool = _tool_to_call(request)
    if tool is not None:
        return message_object(request, [*content, tool_use_block(tool)])
    results = _tool_results(last)
    if results:
        text = " ".join(("the tool failed: " if r.get("is_error") else "the tool said: ")
                        + _text(r.get("content", "")) for r in results)
    else:
        text = f"echo: {said}"
    text, stop_reason, stop_sequence = _cut(text, request)
    if text:
        content.append(text_block(text))
    return message_object(request, content, stop_reason=stop_reason, stop_sequence=stop_sequence)


def _cut(text: str, request: dict) -> tuple[str, str, str | None]:
    """The text up to the first stop sequence in it, then to `max_tokens` words."""
    found = [(text.find(s), s) for s in request.get("stop_sequences") or [] if s and s in text]
    if found:
        at, sequence = min(found)
        return text[:at], "stop_sequence", sequence
    words = text.split(" ")
    if len(words) > request.get("max_tokens", len(words)):
        return " ".join(words[:request["max_tokens"]]), "max_tokens", None
    return text, "end_turn", None


def message_event(event: dict) -> bytes:
    """One event of a Messages stream: `event: TYPE` then `data: JSON`, framed as the
    Responses API frames its own."""
    return response_event(event)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


def message_stream(request: dict, message: dict | None = None) -> list[dict]:
    """`message` (else the natural one) as Anthropic streams it: message_start, each block
    (text a word a delta, thinking a word a delta then its signature, a tool call's input
    five characters a delta), a ping after the first block's start, message_delta with the
    stop reason and output tokens, message_stop."""
    message = message or natural_message(request)
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events: list[dict] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""},
                 "tool_use": {"input": {}}}.get(kind, {})
        events.append({"type": "content_block_start", "index": index,
                       "content_block": {**block, **empty}})
        if index == 0:
            events.append({"type": "ping"})
        deltas: list[dict] = []
        if kind == "text":
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": piece}
                      for piece in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            arguments = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": arguments[i:i + 5]}
                      for i in range(0, len(arguments), 5)]
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message["stop_reason"],
                             "stop_sequence": message["stop_sequence"]},
                   "usage": {"output_tokens": message["usage"]["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events


def count_tokens(request: dict) -> dict:
    return {"input_tokens": input_tokens(request)}


Answer = Callable[..., Awaitable[web.StreamResponse]]


def serve(app: web.Application, answer: Answer) -> None:
    """Add the Messages routes to a test upstream's `app`. `answer` is that upstream's
    `_answer`: it records each request and plays what the test scripted."""

    async def messages(request: web.Request) -> web.StreamResponse:
        return await answer(request, message_stream, natural_message, check=refusal,
                            sse=message_event, end=b"")

    async def counted(request: web.Request) -> web.StreamResponse:
        return await answer(request, None, count_tokens, check=count_refusal)

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", counted)
