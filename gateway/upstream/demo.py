"""The built-in demo model: an offline transport that answers like an OpenAI-compatible server.

It exists so a fresh install answers requests with no network and no GPU.
Replies are deterministic; token counts are real counts from a simple
word-and-punctuation tokenizer, the same for prompt and completion. It
honours `stream`, `stream_options.include_usage`, `n`, `max_tokens`,
`max_completion_tokens`, tools and JSON mode, so a client's code paths can be
tried against it. It is not a language model and says so. It also answers
embeddings (gateway/upstream/demo_vectors.py).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.config import Provider
from gateway.upstream import demo_vectors
from gateway.upstream.base import ResponseTooLarge

_TOKEN = re.compile(r"\w+|[^\w\s]")
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream"}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _truncate(text: str, limit: int | None) -> tuple[str, bool]:
    """`text` cut after `limit` tokens, and whether it was cut."""
    if limit is None:
        return text, False
    for i, match in enumerate(_TOKEN.finditer(text)):
        if i == limit:
            return text[:match.start()].rstrip(), True
    return text, False


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict)
                        and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _images_in(content: Any) -> int:
    if isinstance(content, list):
        return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return 0


def _prompt_tokens(messages: list[dict]) -> int:
    total = 3
    for m in messages:
        total += 3 + count_tokens(_text_of(m.get("content")))
        for call in m.get("tool_calls") or ():
            total += count_tokens(str(call.get("function", {}).get("arguments", "")))
    return total


_SAMPLES: dict[str, Any] = {"string": "demo", "integer": 1, "number": 1.0, "boolean": True,
                            "array": [], "object": {}}


def _example_arguments(schema: Any) -> dict:
    """Arguments that satisfy a function's JSON schema: its required properties, filled in."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    return {name: _example(props.get(name))
            for name in schema.get("required") or () if isinstance(name, str)}


def _example(prop: Any) -> Any:
    """A value for one property. Its `type` may be a list (`["string", "null"]`, as OpenAI's
    strict mode writes an optional one), and a schema may be a boolean (`true`: anything)."""
    kind = prop.get("type") if isinstance(prop, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return _SAMPLES.get(kind, "demo") if isinstance(kind, str) else "demo"


def _choose_tool(request: dict) -> dict | None:
    tools = [t.get("function") for t in request.get("tools") or () if t.get("type") == "function"]
    choice = request.get("tool_choice", "auto")
    last = request["messages"][-1]
    if not tools or choice == "none" or last.get("role") != "user":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == wanted), None)
    return tools[0]


def answer(request: dict) -> dict:
    """The reply to `request`: text or a tool call, and its usage."""
    messages = request["messages"]
    last = messages[-1]
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    tool = _choose_tool(request)
    if tool is not None:
        arguments = orjson.dumps(_example_arguments(tool.get("parameters"))).decode()
        call_id = "call_" + hashlib.sha1(arguments.encode() + tool["name"].encode()).hexdigest()[:16]
        return {"tool_call": {"id": call_id, "type": "function",
                              "function": {"name": tool["name"], "arguments": arguments}},
                "content": None, "finish_reason": "tool_calls",
                "completion_tokens": count_tokens(tool["name"]) + count_tokens(arguments)}
    if last.get("role") == "tool":
        text = f"The tool answered: {_text_of(last.get('content'))[:200]}"
    else:
        said = _text_of(last.get("content")).strip()[:200]
        text = (f'Hello from the gateway\'s demo model. You said: "{said}". '
                "This is a built-in demo, not a language model: it answers the same way "
                "every time, with no network and no GPU.")
        images = _images_in(last.get("content"))
        if images:
            text += f" It received {images} image(s) and does not look at them."
    if (request.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
        text = orjson.dumps({"model": "demo", "reply": text}).decode()
        limit = None  # a cut JSON document is not JSON
    text, cut = _truncate(text, limit)
    return {"tool_call": None, "content": text, "finish_reason": "length" if cut else "stop",
            "completion_tokens": count_tokens(text)}


class DemoResponse:
    def __init__(self, status: int, headers: Mapping[str, str], events: list[bytes]) -> None:
        self.status = status
        self.headers = headers
        self._events = events
        self._yielded = 0  # events chunks() has yielded

    async def read(self, limit: int) -> bytes:
        body = b"".join(self._events)
        if len(body) > limit:
            raise ResponseTooLarge(f"demo answer is over the {limit}-byte limit")
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        for event in self._events:
            self._yielded += 1
            yield event

    def exhausted(self) -> bool:
        return self._yielded == len(self._events)

    def close(self) -> None:
        self._events = []


class DemoTransport:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> DemoResponse:
        if url.endswith("/embeddings"):
            return _embeddings(body)
        try:
            request = orjson.loads(body)
            messages = request["messages"]
            assert isinstance(messages, list) and messages
        except Exception:
            error = {"error": {"message": "the demo model needs a JSON body with messages",
                               "type": "invalid_request_error", "param": None, "code": None}}
            return DemoResponse(400, _JSON, [orjson.dumps(error)])
        reply = answer(request)
        n = request.get("n") or 1
        prompt = _prompt_tokens(messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": reply["completion_tokens"] * n,
                 "total_tokens": prompt + reply["completion_tokens"] * n}
        head = {"id": "chatcmpl-demo-" + hashlib.sha1(body).hexdigest()[:24],
                "created": int(time.time()), "model": request.get("model", "demo"),
                "system_fingerprint": "demo"}
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            return DemoResponse(200, _SSE, _stream(head, reply, n, usage if include_usage else None))
        message: dict[str, Any] = {"role": "assistant", "content": reply["content"]}
        if reply["tool_call"]:
            message["tool_calls"] = [reply["tool_call"]]
        choices = [{"index": i, "message": message, "logprobs": None,
                    "finish_reason": reply["finish_reason"]} for i in range(n)]
        completion = head | {"object": "chat.completion", "choices": choices, "usage": usage}
        return DemoResponse(200, _JSON, [orjson.dumps(completion)])

    async def get(self, url: str, timeout: float, limit: int = 4 * 2**20) -> tuple[int, bytes]:
        return 200, b'{"status": "ok"}'

    async def aclose(self) -> None:
        pass


def _embeddings(body: bytes) -> DemoResponse:
    try:
        request = orjson.loads(body)
        data, used = demo_vectors.embeddings(request, _TOKEN.findall)
    except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
        error = {"error": {"message": f"the demo model could not embed this: {exc}",
                           "type": "invalid_request_error", "param": None, "code": None}}
        return DemoResponse(400, _JSON, [orjson.dumps(error)])
    answer = {"object": "list", "data": data, "model": request.get("model", "demo"),
              "usage": {"prompt_tokens": used, "total_tokens": used}}
    return DemoResponse(200, _JSON, [orjson.dumps(answer)])


def _stream(head: dict, reply: dict, n: int, usage: dict | None) -> list[bytes]:
    head = head | {"object": "chat.completion.chunk"}

    def event(choices: list, **extra: Any) -> bytes:
        return b"data: " + orjson.dumps(head | {"choices": choices} | extra) + b"\n\n"

    def each(delta: dict, finish: str | None = None) -> list:
        return [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
                for i in range(n)]

    events = [event(each({"role": "assistant", "content": ""}))]
    call = reply["tool_call"]
    if call:
        fn = call["function"]
        events.append(event(each({"tool_calls": [
            {"index": 0, "id": call["id"], "type": "function",
             "function": {"name": fn["name"], "arguments": ""}}]})))
        args = fn["arguments"]
        for start in range(0, len(args), 8):
            piece = {"index": 0, "function": {"arguments": args[start:start + 8]}}
            events.append(event(each({"tool_calls": [piece]})))
    else:
        text = reply["content"]
        pieces = re.findall(r"\s*\S+", text)
        for piece in pieces:
            events.append(event(each({"content": piece})))
    events.append(event(each({}, reply["finish_reason"])))
    if usage is not None:
        events.append(event([], usage=usage))
    events.append(b"data: [DONE]\n\n")
    return events
