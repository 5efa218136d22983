"""A local run that fills the dashboard with real data, then draws it.

    python grafana/demo.py --minutes 6 --out grafana/screenshot.png

Starts Prometheus (the `prometheus` binary: Debian's package, or any on PATH)
scraping a gateway every 2 s; the gateway serves the built-in demo model and
two flaky upstreams this script runs (random latency, some 503s, streams, a
vLLM /metrics); three keys send traffic (one over its limit), and midway one
upstream fails hard for a while, so breakers and fallbacks show. Then
grafana/render.py draws every panel from Prometheus. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import render  # noqa: E402

CONFIG = """
providers:
  demo: {{profile: demo}}
  cloud-a: {{profile: vllm, base_url: "http://127.0.0.1:{a}/v1", metrics_interval: 2}}
  cloud-b: {{profile: vllm, base_url: "http://127.0.0.1:{b}/v1", metrics_interval: 2}}
routing:
  breaker: {{failures: 4, window: 20, cooldown: 15}}
models:
  demo: {{targets: [{{provider: demo, model: demo}}]}}
  assistant:
    price: {{input: 0.5, output: 1.5}}
    groups:
      - strategy: least-busy
        targets: [{{provider: cloud-a, model: qwen3-32b}}, {{provider: cloud-b, model: qwen3-32b}}]
      - targets: [{{provider: demo, model: demo}}]
  fast-chat:
    targets: [{{provider: cloud-b, model: llama-8b}}, {{provider: cloud-a, model: llama-8b}}]
keys:
  search-team: {{key: "sk-demo-search-0000000000", limits: {{requests_per_minute: 600}}}}
  support-bot: {{key: "sk-demo-support-000000000", limits: {{requests_per_minute: 40}}}}
  batch-jobs: {{key: "sk-demo-batch-00000000000"}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Flaky:
    """An OpenAI-compatible upstream that is sometimes slow and sometimes fails."""

    def __init__(self, error_rate: float, latency: float) -> None:
        self.error_rate = error_rate
        self.latency = latency
        self.down = False
        self.running = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.running += 1
        try:
            await asyncio.sleep(random.expovariate(1 / self.latency))
            if self.down or random.random() < self.error_rate:
                return web.json_response({"error": {"message": "overloaded"}}, status=503)
            words = random.randint(20, 120)
            head = {"id": "x", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": body["model"]}
            if not body.get("stream"):
                return web.json_response({**head, "object": "chat.completion", "choices": [{
                    "index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "word " * words}}],
                    "usage": {"prompt_tokens": 40, "completion_tokens": words,
                              "total_tokens": 40 + words}})
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for _ in range(words):
                await asyncio.sleep(0.01)
                await response.write(b"data: " + json.dumps({**head, "choices": [{
                    "index": 0, "delta": {"content": "word "}, "finish_reason": None}]}).encode()
                    + b"\n\n")
            await response.write(b"data: " + json.dumps({**head, "choices": [], "usage": {
                "prompt_tokens": 40, "completion_tokens": words, "total_tokens": 40 + words}}
            ).encode() + b"\n\ndata: [DONE]\n\n")
            return response
        finally:
            self.running -= 1

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=f"vllm:num_requests_running {self.running}\n"
                                 f"vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.2\n")


def serve(upstream: Flaky, port: int) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", upstream.chat)
        app.router.add_get("/metrics", upstream.metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()


def wait(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"demo: {url} did not answer")


def traffic(gateway: str, key: str, model: str, per_second: float, stop: threading.Event,
            stream_share: float = 0.3) -> None:
    while not stop.is_set():
        body = json.dumps({"model": model, "stream": random.random() < stream_share,
                           "max_tokens": 200,
                           "messages": [{"role": "user", "content": "hello " * 20}]}).encode()
        request = urllib.request.Request(gateway + "/v1/chat/completions", data=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=30).read()
        except OSError:
            pass
        stop.wait(random.expovariate(per_second))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6)
    parser.add_argument("--out", default=str(HERE / "screenshot.png"))
    args = parser.parse_args()
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    work = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    a, b = Flaky(0.02, 0.25), Flaky(0.06, 0.15)
    ports = {"a": free_port(), "b": free_port(), "gateway": free_port(), "prom": free_port()}
    serve(a, ports["a"])
    serve(b, ports["b"])
    (work / "routes.yaml").write_text(CONFIG.format(a=ports["a"], b=ports["b"]))
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 2s}\nscrape_configs:\n  - job_name: llm-gateway\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{ports['gateway']}']}}]\n")
    processes = [
        subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config",
                          str(work / "routes.yaml"), "--port", str(ports["gateway"]),
                          "--log-level", "warning"], stderr=subprocess.DEVNULL),
        subprocess.Popen([prometheus, f"--config.file={work / 'prometheus.yml'}",
                          f"--storage.tsdb.path={work / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{ports['prom']}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    try:
        wait(gateway + "/readyz")
        wait(f"http://127.0.0.1:{ports['prom']}/-/ready")
        stop = threading.Event()
        senders = [("sk-demo-search-0000000000", "assistant", 6),
                   ("sk-demo-search-0000000000", "fast-chat", 3),
                   ("sk-demo-support-000000000", "fast-chat", 1.5),
                   ("sk-demo-batch-00000000000", "demo", 4),
                   ("sk-demo-batch-00000000000", "assistant", 2)]
        threads = [threading.Thread(target=traffic, args=(gateway, *s, stop), daemon=True)
                   for s in senders for _ in range(2)]
        for thread in threads:
            thread.start()
        seconds = args.minutes * 60
        print(f"demo: {len(threads)} senders for {args.minutes:g} minutes; "
              f"gateway {gateway}, prometheus http://127.0.0.1:{ports['prom']}")
        time.sleep(seconds * 0.45)
        b.down = True  # an outage: breakers open, requests fall back
        time.sleep(40)
        b.down = False
        time.sleep(max(0.0, seconds * 0.55 - 40))
        stop.set()
        render.render(f"http://127.0.0.1:{ports['prom']}", args.minutes + 0.5, Path(args.out))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
