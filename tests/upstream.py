"""An OpenAI-compatible upstream for tests: a real HTTP server on loopback.

It records every request it receives and answers as a test tells it to:
with a scripted status or body, after a delay, as a stream (optionally held
at a gate until the test opens it), or never. With nothing scripted it
answers like a model would: an echo of the last user message, a tool call
when tools are offered and then an answer from the tool's result, JSON in
JSON mode, streamed when asked to; a text completion of the prompt; known
vectors for embeddings; a response object, or a Responses event stream, for
/v1/responses (which refuses chat's names, an unknown previous_response_id and
chat's stream option, as OpenAI's does); Anthropic's /v1/messages, as strict as
Anthropic's (tests/upstream_messages.py), when asked for. It serves the APIs it
is told (`apis`); the others' paths answer 404, as a chat-only server's would.

It runs aiohttp's server in a thread of its own, so tests stay plain
synchronous code and read like usage.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Gate:
    """A point in a scripted stream where the upstream waits until the test calls `open()`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def open(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


@dataclass
class Reply:
    """What the upstream does with one request. Unset fields mean "answer normally"."""

    status: int = 200
    json: Any = None  # the body as JSON
    raw: bytes | None = None  # the body as bytes, sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # never answer; notice when the caller hangs up
    events: list[Any] | None = None  # a stream: dicts (sent as `data: JSON`), bytes (raw) or Gates
    interval: float = 0.0  # seconds between streamed events
    done: bool = True  # end a stream with `data: [DONE]`


def completion(request: dict, content: str | None = None, *, tool_calls: list | None = None,
               usage: dict | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": request.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chunk(request: dict, delta: dict, finish: str | None = None, **extra: Any) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request.get("model"),
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra}


def token_stream(request: dict, tokens: list[str], per_event: int, field: str = "content",
                 usage_prompt: int | None = None) -> list[dict]:
    """A stream of known tokens (a real tokenizer's, from tests/tokens.json), `per_event` of
    them an event, as `content`, `reasoning_content` or tool-call `arguments`. With
    `usage_prompt`, every event carries its usage so far, as vLLM's `continuous_usage_stats`."""
    events = [chunk(request, {"role": "assistant", "content": ""})]
    if field == "arguments":
        events.append(chunk(request, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                      "function": {"name": "lookup", "arguments": ""}}]}))
    for at in range(0, len(tokens), per_event):
        text = "".join(tokens[at:at + per_event])
        if field == "arguments":
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
        else:
            delta = {field: text}
        extra = {}
        if usage_prompt is not None:
            sent = min(at + per_event, len(tokens))
            extra["usage"] = {"prompt_tokens": usage_prompt, "completion_tokens": sent,
                              "total_tokens": usage_prompt + sent}
        events.append(chunk(request, delta, **extra))
    return events


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def _last_user_text(request: dict) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def natural_answer(request: dict) -> tuple[str | None, list | None]:
    """What a well-behaved model would say: a tool call if offered tools, then an answer from
    the tool's result; JSON in JSON mode; else an echo."""
    tools = request.get("tools") or []
    last = (request.get("messages") or [{}])[-1]
    role = last.get("role") if isinstance(last, dict) else None
    if tools and request.get("tool_choice") != "none" and role == "user":
        name = tools[0]["function"]["name"]
        return None, [{"id": "call_test_1", "type": "function",
                       "function": {"name": name, "arguments": '{"location": "Paris"}'}}]
    if role == "tool":
        return f"the tool said: {_text(last.get('content'))}", None
    if (request.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"echo": _last_user_text(request)}), None
    return f"echo: {_last_user_text(request)}", None


def natural_completion(request: dict) -> dict:
    content, tool_calls = natural_answer(request)
    return completion(request, content, tool_calls=tool_calls)


def natural_stream(request: dict) -> list[dict]:
    content, tool_calls = natural_answer(request)
    events = [chunk(request, {"role": "assistant", "content": ""})]
    if tool_calls:
        call = tool_calls[0]
        events.append(chunk(request, {"tool_calls": [{
            "index": 0, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        arguments = call["function"]["arguments"]
        for i in range(0, len(arguments), 5):
            events.append(chunk(request, {"tool_calls": [
                {"index": 0, "function": {"arguments": arguments[i:i + 5]}}]}))
        events.append(chunk(request, {}, "tool_calls"))
    else:
        for word in content.split(" "):
            events.append(chunk(request, {"content": word + " "}))
        events.append(chunk(request, {}, "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk(request, {}), "choices": [],
                       "usage": {"prompt_tokens": 11, "completion_tokens": len(events),
                                 "total_tokens": 11 + len(events)}})
    return events


def text_completion(request: dict, text: str, usage: dict | None = None) -> dict:
    return {"id": "cmpl-test", "object": "text_completion", "created": int(time.time()),
            "model": request.get("model"),
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def text_chunk(request: dict, text: str, finish: str | None = None, **extra: Any) -> dict:
    return {"id": "cmpl-test", "object": "text_completion", "created": int(time.time()),
            "model": request.get("model"),
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            **extra}


def _prompt_text(request: dict) -> str:
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        return " | ".join(p if isinstance(p, str) else f"<{len(p) if isinstance(p, list) else 1} "
                          "tokens>" for p in prompt)
    return str(prompt)


def natural_text_stream(request: dict) -> list[dict]:
    """A completions stream: the echo a word an event, a finish event, usage when asked."""
    words = f"echo: {_prompt_text(request)}".split(" ")
    events = [text_chunk(request, (" " if i else "") + word) for i, word in enumerate(words)]
    events.append(text_chunk(request, "", "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append({**text_chunk(request, ""), "choices": [],
                       "usage": {"prompt_tokens": 5, "completion_tokens": len(words),
                                 "total_tokens": 5 + len(words)}})
    return events


def embedding(index: int, dimensions: int) -> list[float]:
    """The test upstream's vector for the input at `index`: known numbers, easy to check."""
    return [round(index + 0.125 * (k + 1), 3) for k in range(dimensions)]


def embeddings_answer(request: dict, usage: dict | None = None) -> dict:
    """An embeddings answer to `request`: `embedding(i, dimensions or 8)` for input i, as
    floats or little-endian float32 base64, and a prompt of one token a word (or token id)."""
    inputs = request["input"]
    if isinstance(inputs, str) or isinstance(inputs[0], int):
        inputs = [inputs]
    size = min(request.get("dimensions") or 8, 1024)  # a fuzzer's 10**18 is not built
    data = []
    for i in range(len(inputs)):
        vector = embedding(i, size)
        if request.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    words = sum(len(i.split()) if isinstance(i, str) else len(i) for i in inputs)
    return {"object": "list", "data": data, "model": request.get("model"),
            "usage": usage or {"prompt_tokens": words, "total_tokens": words}}


def _embeddings_or_refusal(payload: dict) -> dict | web.Response:
    """What OpenAI's /v1/embeddings would say: the vectors, or a 400 for what it refuses."""
    inputs = payload.get("input") if isinstance(payload, dict) else None
    if not inputs or payload.get("encoding_format") not in (None, "float", "base64"):
        return web.json_response({"error": {
            "message": "'input' must be non-empty; 'encoding_format' float or base64",
            "type": "invalid_request_error", "param": None, "code": None}}, status=400)
    return embeddings_answer(payload)


def _last_input_text(request: dict) -> str:
    """The text of a Responses request's last user message (`input` itself if a string)."""
    items = request.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict)
                                and p.get("type") == "input_text")
            return str(content)
    return ""


def response_object(request: dict, output: list, usage: dict | None = None,
                    status: str = "completed", response_id: str = "resp_test") -> dict:
    """A Responses API response object, as OpenAI's /v1/responses answers."""
    return {"id": response_id, "object": "response", "created_at": int(time.time()),
            "status": status, "error": None, "incomplete_details": None,
            "model": request.get("model"), "output": output, "store": request.get("store", True),
            "tools": request.get("tools") or [], "tool_choice": request.get("tool_choice", "auto"),
            "parallel_tool_calls": True, "text": request.get("text") or {"format": {"type": "text"}},
            "usage": usage or {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 2},
                               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 1},
                               "total_tokens": 14}}


def message_output(text: str) -> dict:
    return {"id": "msg_test", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def natural_output(request: dict) -> dict:
    """What a model behind /v1/responses would say: a call of the first function tool offered
    if the last item is the user's, then an answer from the tool's result; JSON when
    text.format asks, else an echo."""
    tools = [t for t in request.get("tools") or [] if t.get("type") == "function"]
    items = request.get("input")
    last = items[-1] if isinstance(items, list) and items else {"role": "user"}
    if tools and request.get("tool_choice") != "none" and last.get("role") == "user":
        return {"id": "fc_test", "type": "function_call", "status": "completed",
                "call_id": "call_test_1", "name": tools[0]["name"],
                "arguments": '{"location": "Paris"}'}
    if isinstance(last, dict) and last.get("type") == "function_call_output":
        return message_output(f"the tool said: {last.get('output')}")
    form = ((request.get("text") or {}).get("format") or {}).get("type")
    if form in ("json_object", "json_schema"):
        return message_output(json.dumps({"echo": _last_input_text(request)}))
    return message_output(f"echo: {_last_input_text(request)}")


def _response_id() -> str:
    return f"resp_{uuid.uuid4().hex[:16]}"


def response_event(event: dict) -> bytes:
    """One event of a Responses stream: its type on the `event:` line, then its data."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def response_stream(request: dict, output: dict | None = None, usage: dict | None = None,
                    response_id: str = "resp_test") -> list[dict]:
    """A Responses stream of `output` (else the natural one), numbered from 0: the message's
    text a word an event, a function call's arguments five characters an event."""
    item = output or natural_output(request)
    events: list[dict] = []

    def add(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    add("response.created", response=response_object(request, [], status="in_progress",
                                                     response_id=response_id))
    add("response.in_progress", response=response_object(request, [], status="in_progress",
                                                         response_id=response_id))
    where = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        add("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                 "status": "in_progress"})
        arguments = item["arguments"]
        for i in range(0, len(arguments), 5):
            add("response.function_call_arguments.delta", **where, delta=arguments[i:i + 5])
        add("response.function_call_arguments.done", **where, arguments=arguments)
    else:
        text = item["content"][0]["text"]
        add("response.output_item.added", output_index=0,
            item={**item, "content": [], "status": "in_progress"})
        part = {"type": "output_text", "text": "", "annotations": []}
        add("response.content_part.added", **where, content_index=0, part=part)
        words = text.split(" ")
        for i, word in enumerate(words):
            add("response.output_text.delta", **where, content_index=0, logprobs=[],
                delta=word + (" " if i < len(words) - 1 else ""))
        add("response.output_text.done", **where, content_index=0, logprobs=[], text=text)
        add("response.content_part.done", **where, content_index=0, part={**part, "text": text})
    add("response.output_item.done", output_index=0, item=item)
    add("response.completed", response=response_object(request, [item], usage,
                                                       response_id=response_id))
    return events


def _responses_refusal(payload: dict) -> web.Response | None:
    """OpenAI's 400 for what /v1/responses refuses besides chat's names: an earlier response
    it never stored, and chat's stream option."""
    if payload.get("previous_response_id"):
        return _refused(f"Previous response with id '{payload['previous_response_id']}' not "
                        "found.", "previous_response_id")
    if "include_usage" in (payload.get("stream_options") or {}):
        return _refused("Unknown parameter: 'stream_options.include_usage'.",
                        "stream_options.include_usage")
    return None


def _refused(message: str, param: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                        "param": param, "code": None}}, status=400)


# What OpenAI's /v1/responses refuses: chat's names for what it calls otherwise.
_NOT_RESPONSES = ("messages", "max_tokens", "max_completion_tokens", "response_format",
                  "reasoning_effort")
# What OpenAI's /v1/completions refuses: chat's parameters (it takes max_tokens only).
_NOT_COMPLETIONS = ("messages", "max_completion_tokens", "tools", "response_format")


class Upstream:
    """A scriptable OpenAI-compatible server on 127.0.0.1, on a free port.

    `apis` are the APIs it serves (chat, completions, embeddings, responses, and messages
    where a test names it); any other path answers 404."""

    def __init__(self, port: int = 0, served: list[str] | None = None,
                 apis: tuple[str, ...] = ("chat", "completions", "embeddings", "responses")
                 ) -> None:
        self.apis = apis
        self.requests: list[Recorded] = []
        self.closed_early = threading.Event()  # the gateway hung up before the answer ended
        self.events_sent = 0
        self._plan: deque[Reply] = deque()
        self._lock = threading.Lock()
        # What GET /metrics reports, as a vLLM server would, and what GET /health answers.
        self.load = {"running": 0.0, "waiting": 0.0, "kv_cache": 0.0}
        self.health_status = 200
        self.health_misses = 0  # the next this many GET /health answer 503, then health_status
        self.health_checks = 0
        self.metrics_reads = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.served = served or ["upstream-model"]  # what GET /v1/models lists

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *replies: Reply) -> Upstream:
        """Answer the next requests with these replies, in order; then answer normally again."""
        with self._lock:
            self._plan.extend(replies)
        return self

    def reset(self) -> None:
        with self._lock:
            self._plan.clear()
            self.requests.clear()
            self.events_sent = 0
            self.load = {"running": 0.0, "waiting": 0.0, "kv_cache": 0.0}
            self.health_status = 200
            self.health_misses = 0
        self.closed_early.clear()

    def models_asked(self, model: str) -> int:
        """How many requests named `model` upstream."""
        return sum(1 for r in list(self.requests) if r.json.get("model") == model)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> Upstream:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=256 * 2**20)
            if "chat" in self.apis:
                app.router.add_post("/v1/chat/completions", self._chat)
            if "completions" in self.apis:
                app.router.add_post("/v1/completions", self._completions)
            if "embeddings" in self.apis:
                app.router.add_post("/v1/embeddings", self._embeddings)
            if "responses" in self.apis:
                app.router.add_post("/v1/responses", self._responses)
            if "messages" in self.apis:
                from tests import upstream_messages  # built on this module, so imported here

                upstream_messages.serve(app, self._answer)
            app.router.add_get("/v1/models", self._models)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/health", self._health)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="test-upstream", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("test upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _next(self) -> Reply:
        with self._lock:
            return self._plan.popleft() if self._plan else Reply()

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics_reads += 1
        load = self.load
        text = (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{engine="0",model_name="any"}} {load["running"]}\n'
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{engine="0",model_name="any"}} {load["waiting"]}\n'
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{engine="0",model_name="any"}} {load["kv_cache"]}\n'
            "# TYPE vllm:prompt_tokens_total counter\n"
            'vllm:prompt_tokens_total{engine="0",model_name="any"} 1234.0\n')
        return web.Response(text=text, content_type="text/plain")

    async def _health(self, request: web.Request) -> web.Response:
        self.health_checks += 1
        if self.health_misses > 0:
            self.health_misses -= 1
            return web.Response(status=503)
        return web.Response(status=self.health_status)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "owned_by": "vllm"} for name in self.served]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, natural_stream, natural_completion)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, natural_text_stream, lambda payload: text_completion(
            payload, f"echo: {_prompt_text(payload)}"), refused=_NOT_COMPLETIONS)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, None, _embeddings_or_refusal)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        # A fresh id a response, as a real server's: the gateway keeps conversations by them.
        return await self._answer(
            request, lambda payload: response_stream(payload, response_id=_response_id()),
            lambda payload: response_object(payload, [natural_output(payload)],
                                            response_id=_response_id()),
            refused=_NOT_RESPONSES, check=_responses_refusal, sse=response_event, end=b"")

    async def _answer(self, request: web.Request, stream, whole,
                      refused: tuple[str, ...] = (), check=None, sse=None,
                      end: bytes = b"data: [DONE]\n\n") -> web.StreamResponse:
        """Record the request; answer as scripted, else as `stream` or `whole` make it."""
        body = await request.read()
        with self._lock:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(Recorded(request.method, request.path, headers, body))
        reply = self._next()
        if reply.hang:
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.01)
            self.closed_early.set()
            return web.Response(status=499)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        wrong = [name for name in refused if name in payload]
        if wrong:
            return web.json_response({"error": {
                "message": f"Unrecognized request argument supplied: {wrong[0]}",
                "type": "invalid_request_error", "param": None, "code": None}}, status=400)
        refusal = check(payload) if check is not None and isinstance(payload, dict) else None
        if refusal is not None:
            return refusal
        if reply.raw is not None or reply.json is not None or reply.status != 200:
            data = reply.raw if reply.raw is not None else json.dumps(reply.json or {}).encode()
            headers = {"content-type": "application/json", **reply.headers}
            return web.Response(status=reply.status, body=data, headers=headers)
        if stream is not None and (payload.get("stream") or reply.events is not None):
            events = reply.events if reply.events is not None else stream(payload)
            return await self._stream(request, reply, events, sse, end)
        answer = whole(payload)
        return answer if isinstance(answer, web.Response) else web.json_response(answer)

    async def _stream(self, request: web.Request, reply: Reply, events: list, sse=None,
                      end: bytes = b"data: [DONE]\n\n") -> web.StreamResponse:
        """`sse` writes a dict event (default: `data: JSON`); `end` ends a stream that is done."""
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        try:
            for event in events:
                if isinstance(event, Gate):
                    opened = await asyncio.get_running_loop().run_in_executor(None, event.wait, 30)
                    if not opened:
                        raise RuntimeError("a test gate was never opened")
                    continue
                if isinstance(event, bytes):
                    data = event
                elif sse is not None:
                    data = sse(event)
                else:
                    data = b"data: " + json.dumps(event).encode() + b"\n\n"
                await response.write(data)
                self.events_sent += 1
                if reply.interval:
                    await asyncio.sleep(reply.interval)
            if reply.done and end:
                await response.write(end)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.closed_early.set()
            raise
        return response
