"""CPU cost of the gateway's own code per request, without sockets, uvicorn or aiohttp.

    python bench/inproc.py [--requests 20000] [--events 20] [--reads whole|event]
                           [--api chat|responses|responses-converted|messages|messages-converted]

Drives the ASGI app in-process with an upstream transport that answers from
memory, and reports CPU microseconds per request for a JSON and a streamed
answer (20 content events, a finish and a usage event by default), read from
the upstream in one piece or, with `--reads event`, an event a read, as from
an upstream that writes each token as it makes it. Network benchmarks on a shared VM are noisy; this one is
steady enough to compare two commits of the request path: it runs 10 rounds
and reports the quickest, as timeit does, to leave out time other work took.
`--api` picks the client API: chat (the default), responses (passed through to a
target that speaks it: bench/run.py's canned response and its stream of as many
text deltas), responses-converted (to a chat-only target: the same chat answer
as `chat`'s, converted, so the two compare what a conversion costs), messages
(Anthropic's Messages API, its key in `x-api-key`, passed through to a target of
the vllm profile: bench/run.py's canned message and its stream of as many text
deltas) or messages-converted (to a chat-only target, as responses-converted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the canned answers of the network benchmark)

from gateway.app import create_app  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.core.disconnect import EXTENSION, Watch  # noqa: E402

CONFIG = """
providers:
  mock: {profile: openai, base_url: "http://mock/v1", api_key: "sk-upstream"}
  chat: {profile: aggregator, base_url: "http://mock/v1", api_key: "sk-upstream"}
  native: {profile: vllm, base_url: "http://mock/v1", api_key: "sk-upstream"}
models:
  bench: {targets: [{provider: mock, model: mock}]}
  bench-converted: {targets: [{provider: chat, model: mock}]}
  bench-native: {targets: [{provider: native, model: mock}]}
keys:
  bench: {key: "sk-bench-key-0123456789"}
"""
HEADERS = [(b"host", b"gateway"), (b"content-type", b"application/json")]
BEARER = [*HEADERS, (b"authorization", b"Bearer sk-bench-key-0123456789")]
X_API_KEY = [*HEADERS, (b"x-api-key", b"sk-bench-key-0123456789")]  # as Anthropic's SDKs send it


class Canned:
    """An upstream response from memory."""

    def __init__(self, body: bytes, stream: bool, per_event: bool = False) -> None:
        self.status = 200
        self.headers = {"content-type": "text/event-stream" if stream else "application/json"}
        self._body = body
        self._per_event = per_event
        self._left = -1  # parts chunks() has not yielded yet; -1 before it starts

    async def read(self, limit: int) -> bytes:
        return self._body

    async def chunks(self):
        if not self._per_event:
            self._left = 0
            yield self._body
            return
        events = self._body.split(b"\n\n")[:-1]
        self._left = len(events)
        for event in events:
            self._left -= 1
            yield event + b"\n\n"

    def exhausted(self) -> bool:
        return self._left == 0

    def close(self) -> None:
        pass


class CannedTransport:
    def __init__(self, events: int = 20, per_event: bool = False) -> None:
        self.json = json.dumps(run.COMPLETION).encode()
        self.sse = run.sse_stream(events).encode()
        self.response = json.dumps(run.RESPONSE).encode()
        self.response_sse = run.response_stream(events).encode()
        self.message = json.dumps(run.MESSAGE).encode()
        self.message_sse = run.message_stream(events).encode()
        self.per_event = per_event

    async def send(self, url, headers, body):
        stream = b'"stream":true' in body
        if url.endswith("/responses"):
            return Canned(self.response_sse if stream else self.response, stream, self.per_event)
        if url.endswith("/messages"):
            return Canned(self.message_sse if stream else self.message, stream, self.per_event)
        return Canned(self.sse if stream else self.json, stream, self.per_event)

    async def aclose(self) -> None:
        pass


# --api: the path, the model, the request (less the stream flag) and its headers.
HELLO = [{"role": "user", "content": "Hello"}]
APIS = {"chat": ("/v1/chat/completions", "bench", {"messages": HELLO}, BEARER),
        "responses": ("/v1/responses", "bench", {"input": "Hello"}, BEARER),
        "responses-converted": ("/v1/responses", "bench-converted", {"input": "Hello"}, BEARER),
        "messages": ("/v1/messages", "bench-native", {"max_tokens": 64, "messages": HELLO},
                     X_API_KEY),
        "messages-converted": ("/v1/messages", "bench-converted",
                               {"max_tokens": 64, "messages": HELLO}, X_API_KEY)}


# BENCH_WATCHER=1: a disconnect watcher task per request, as under an ASGI server other
# than `gateway serve`'s.
WATCHED = os.environ.get("BENCH_WATCHER") != "1"


async def one(app, body: bytes, path: str = "/v1/chat/completions",
              headers: list[tuple[bytes, bytes]] = BEARER) -> int:
    """One request, with uvicorn's receive: the body, then `http.disconnect` once answered."""
    sent = 0
    delivered = False
    answered = asyncio.Event()

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal sent
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        sent += len(message.get("body", b""))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    if WATCHED:  # as `gateway serve`'s protocol hands it (serve_protocol.py): no watcher task
        scope["extensions"] = {EXTENSION: Watch(SimpleNamespace(response_complete=False))}
    await app(scope, receive, send)
    # An upstream from memory never suspends the request: let the loop run what it scheduled
    # (a disconnect watcher's end, under BENCH_WATCHER=1), as a server's loop does between
    # reads, or 20,000 watcher tasks wait in its queue and the collector walks them all.
    await asyncio.sleep(0)
    return sent


async def measure(requests: int, rounds: int = 10, modes: tuple = ("json", "stream"),
                  redis: str | None = None, transport: CannedTransport | None = None,
                  warmup: int = 500, api: str = "chat", concurrency: int = 1) -> dict:
    config = CONFIG
    if redis:  # limits that never refuse: every request is admitted and settled through Redis
        config += (f'store: {{url: "{redis}"}}\n'
                   "limits: {requests_per_minute: 1000000000, tokens_per_minute: 1000000000000,"
                   " in_flight: 100000}\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routes.yaml"
        path.write_text(config)
        app = create_app(load_config(path))
    import os
    from dataclasses import replace

    from gateway.logs import setup_logging
    from gateway.runtime import start_runtime

    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    setup_logging("info", "json")  # a request line each, as in production, to nowhere
    sys.stderr = stderr
    transport = transport or CannedTransport()
    app.state.runtime = replace(start_runtime(app.config),
                                transports={"mock": transport, "chat": transport,
                                            "native": transport})
    results = {}
    path, model, fields, headers = APIS[api]
    for mode in modes:
        stream = mode == "stream"
        body = json.dumps({"model": model, "stream": stream, **fields}).encode()
        for _ in range(warmup):
            await one(app, body, path, headers)
        best = float("inf")
        for _ in range(rounds):  # the quickest round: the least disturbed by other work
            start = time.process_time()
            waves = requests // rounds // concurrency
            for _ in range(waves):
                if concurrency == 1:
                    await one(app, body, path, headers)
                else:  # in waves: the store's calls of a wave share batches, as under load
                    await asyncio.gather(*(one(app, body, path, headers)
                                           for _ in range(concurrency)))
            best = min(best, (time.process_time() - start) / (waves * concurrency))
        results[mode] = best * 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000, help="in 10 rounds; the best counts")
    parser.add_argument("--mode", choices=["json", "stream", "both"], default="both")
    parser.add_argument("--redis", metavar="URL", help="admit and settle through this Redis")
    parser.add_argument("--events", type=int, default=20, help="content events in a stream")
    parser.add_argument("--reads", choices=["whole", "event"], default="whole",
                        help="the stream in one upstream read, or an event a read")
    parser.add_argument("--warmup", type=int, default=500, help="requests before measuring")
    parser.add_argument("--api", choices=sorted(APIS), default="chat", help="the client API")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests at a time, in waves")
    args = parser.parse_args()
    modes = ("json", "stream") if args.mode == "both" else (args.mode,)
    transport = CannedTransport(args.events, args.reads == "event")
    parser_loop = os.environ.get("BENCH_LOOP", "uvloop")
    try:  # the loop the gateway serves on
        if parser_loop != "uvloop":
            raise ImportError
        import uvloop

        results = uvloop.run(measure(args.requests, modes=modes, redis=args.redis,
                                     transport=transport, warmup=args.warmup, api=args.api,
                                     concurrency=args.concurrency))
    except ImportError:
        results = asyncio.run(measure(args.requests, modes=modes, redis=args.redis,
                                      transport=transport, warmup=args.warmup, api=args.api,
                                     concurrency=args.concurrency))
    for mode, micros in results.items():
        print(f"{mode:<7} {micros:7.1f} us CPU per request (gateway code only)")


if __name__ == "__main__":
    main()
