"""Benchmark the gateway's request path against a mock upstream that is not the bottleneck.

    python3 bench/run.py [--duration 10] [--connections 1,64]

Needs nginx and wrk (installed with apt-get when missing and running as root).
nginx serves a canned chat completion and a canned SSE stream (20 content events,
a usage event, [DONE]); wrk drives the load and checks every response body. The
gateway runs pinned to CPU 0, nginx and wrk share CPU 1, and the same load is
also sent straight to nginx, so each figure has its baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
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
    # Static files answer POSTs through the 405 -> 200 redirect.
    location = /v1/chat/completions {{
      default_type application/json;
      alias {dir}/completion.json;
      error_page 405 =200 $uri;
    }}
    location = /stream/v1/chat/completions {{
      default_type text/event-stream;
      alias {dir}/stream.txt;
      error_page 405 =200 $uri;
    }}
  }}
}}
"""

WRK_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-key-0123456789"
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
providers:
  mock: {{profile: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: "sk-upstream"}}
  mock-stream: {{profile: openai, base_url: "http://127.0.0.1:{port}/stream/v1", api_key: "sk-upstream"}}
models:
  bench: {{targets: [{{provider: mock, model: mock}}]}}
  bench-stream: {{targets: [{{provider: mock-stream, model: mock}}]}}
keys:
  bench: {{key: "sk-bench-key-0123456789"}}
"""


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,64")
    parser.add_argument("--redis", metavar="URL",
                        help="keep keys, limits and usage in this Redis, with limits on the key "
                             "high enough never to refuse: every request pays for admission and "
                             "settlement")
    args = parser.parse_args()
    ensure_tools()
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    work.chmod(0o755)  # nginx's workers run as another user
    mock_port, gateway_port = free_port(), free_port()
    (work / "completion.json").write_text(json.dumps(COMPLETION))
    (work / "stream.txt").write_text(sse_stream())
    (work / "nginx.conf").write_text(NGINX.format(dir=work, port=mock_port))
    config = CONFIG.format(port=mock_port)
    if args.redis:
        config += (f'store: {{url: "{args.redis}"}}\n'
                   "limits: {requests_per_minute: 1000000000, tokens_per_minute: 1000000000000,"
                   " in_flight: 100000}\n")
    (work / "routes.yaml").write_text(config)
    processes = [subprocess.Popen(["taskset", "-c", "1", nginx_bin, "-c", str(work / "nginx.conf")])]
    gateway = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "gateway", "serve", "--config",
         str(work / "routes.yaml"), "--port", str(gateway_port), "--log-level", "warning"],
        stderr=open(work / "gateway.log", "wb"))
    processes.append(gateway)
    try:
        wait_ready(f"http://127.0.0.1:{gateway_port}/readyz")
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/chat/completions")
        rows = []
        for stream in (False, True):
            model = "bench-stream" if stream else "bench"
            body = json.dumps({"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": "Hello"}]})
            lua = work / f"{model}.lua"
            lua.write_text(WRK_LUA.format(body=body, expect="[DONE]" if stream else '"choices"'))
            direct = f"http://127.0.0.1:{mock_port}{'/stream' if stream else ''}/v1/chat/completions"
            via = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
            for c in map(int, args.connections.split(",")):
                wrk(via, lua, c, 2)  # warm up
                for target, url, pid in (("mock direct", direct, None),
                                         ("gateway", via, gateway.pid)):
                    rows.append({"mode": "stream" if stream else "json", "connections": c,
                                 "target": target, **wrk(url, lua, c, args.duration, pid)})
        print(f"{'mode':<7}{'conns':>6}  {'target':<12}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}"
              f"{'p99 ms':>9}{'errors':>8}{'CPU us/req':>12}")
        for r in rows:
            cpu = f"{r['cpu_us']:>12.0f}" if r["cpu_us"] is not None else f"{'':>12}"
            print(f"{r['mode']:<7}{r['connections']:>6}  {r['target']:<12}{r['rps']:>10.0f}"
                  f"{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}{cpu}")
        (work / "results.json").write_text(json.dumps(rows, indent=2))
        print(f"\nresults: {work / 'results.json'}")
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


if __name__ == "__main__":
    main()
