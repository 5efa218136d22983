"""The gateway's memory under constant load: RSS sampled over a long run.

    python3 bench/memory.py [--minutes 20] [--warmup 2] [--every 30] [--connections 64]

The same setup as run.py (nginx mock on CPU 1, the gateway pinned to CPU 0).
wrk sends JSON and streamed requests without pause, alternating 30-second
rounds. The gateway's RSS is sampled every `--every` seconds. After the warm-up,
every sample must stay within ±10% of the first one. Prints the curve and the
verdict; writes the samples as JSON with `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the mock, wrk and process helpers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2, help="minutes before the baseline")
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    run.ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="gateway-memory-"))
    work.chmod(0o755)
    mock_port, port = run.free_port(), run.free_port()
    (work / "completion.json").write_text(json.dumps(run.COMPLETION))
    (work / "stream.txt").write_text(run.sse_stream())
    (work / "long.txt").write_text(run.sse_stream(500))
    (work / "nginx.conf").write_text(run.NGINX.format(dir=work, port=mock_port))
    (work / "routes.yaml").write_text(run.CONFIG.format(port=mock_port))
    nginx = run.shutil.which("nginx") or "/usr/sbin/nginx"
    processes = [run.start([nginx, "-c", str(work / "nginx.conf")], 1, work / "nginx.log")]
    gateway = run.start([sys.executable, "-m", "gateway", "serve", "--config",
                         str(work / "routes.yaml"), "--port", str(port), "--log-level", "warning"],
                        0, work / "gateway.log")
    processes.append(gateway)
    samples: list[tuple[float, float]] = []
    total = errors = 0
    try:
        run.wait_ready(f"http://127.0.0.1:{port}/readyz")
        scripts = []
        for stream, model in ((False, "bench"), (True, "bench-stream")):
            body = json.dumps({"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": "Hello"}]})
            lua = work / f"{model}.lua"
            lua.write_text(run.WRK_LUA.format(body=body, expect="[DONE]" if stream else '"choices"'))
            scripts.append(lua)
        started = time.monotonic()
        end = started + args.minutes * 60
        next_sample = started
        round_no = 0
        while time.monotonic() < end:
            lua = scripts[round_no % 2]
            round_no += 1
            seconds = int(min(args.every, max(1, end - time.monotonic())))
            result = run.wrk(f"http://127.0.0.1:{port}/v1/chat/completions", lua,
                             args.connections, seconds)
            total += result["requests"]
            errors += result["errors"]
            if time.monotonic() >= next_sample:
                minute = (time.monotonic() - started) / 60
                samples.append((round(minute, 2), round(run.rss_mb(gateway.pid), 1)))
                print(f"{minute:6.1f} min  RSS {samples[-1][1]:6.1f} MB  "
                      f"({total} requests, {errors} errors)", flush=True)
                next_sample += args.every
        after = [rss for minute, rss in samples if minute >= args.warmup]
        base = after[0] if after else None
        spread = max(abs(r - base) / base for r in after) if after else None
        print(f"\n{total} requests, {errors} errors; RSS after {args.warmup:g} min warm-up: "
              f"{base} MB, then {min(after)}–{max(after)} MB, at most {spread:.1%} from the "
              f"first sample: {'within' if spread <= 0.10 else 'OUTSIDE'} ±10%")
        if args.out:
            args.out.write_text(json.dumps({"samples": samples, "requests": total,
                                            "errors": errors}, indent=1))
    finally:
        run.stop_all(processes)


if __name__ == "__main__":
    main()
