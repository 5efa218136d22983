"""Where a request's CPU goes, stage by stage: bench/inproc.py with a clock around each stage.

    python bench/stages.py [--requests 20000] [--mode json|stream] [--redis URL]

Wraps the request path's stage functions (read the head, authenticate, read the
body, validate, route, admit, translate, attempt, adapt, answer, settle, the
usage record, the log line, the metrics) in a timer, runs bench/inproc.py's
chat requests through them, and prints each stage's microseconds per request,
inclusive of what it calls. The wrappers cost a little themselves (the last
line says how much, per wrapper), so compare stages within one run, not with
inproc.py's totals. The upstream is inproc.py's canned answer from memory.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inproc  # noqa: E402
import uvloop  # noqa: E402

from gateway import metrics  # noqa: E402
from gateway.apis.chat import adapt, surface  # noqa: E402
from gateway.core import account, attempt, limits, pipeline, recorder, relay  # noqa: E402

SPENT: Counter[str] = Counter()

# (where the name is looked up when it is called, the name, what the row says it is)
STAGES = [
    (pipeline, "read_headers", "accept: the head (key, request id)"),
    (pipeline, "authenticate", "authenticate: the key's digest, looked up"),
    (pipeline, "read_body", "accept: the body"),
    (surface.ChatSurface, "parse", "validate: the body parsed and checked"),
    (pipeline, "resolve", "plan: the model's route"),
    (limits.Limiter, "admit", "admit: limits checked, reservation"),
    (recorder.Recorder, "hold", "admit: the lease held for the recorder"),
    (pipeline, "until_disconnect", "relay, inside the disconnect watch"),
    (relay, "attempt", "  attempt (one target)"),
    (surface.ChatCodec, "translate", "    translate: the request for the target"),
    (surface.ChatCodec, "answer", "    the answer's adapter, made"),
    (attempt, "Deadline", "    deadline: made"),
    (attempt, "open_upstream", "    upstream: headers, send (from memory here)"),
    (adapt.Answer, "completion", "    adapt: the answer checked and rewritten"),
    (attempt, "send_completion", "    answer: headers and body to the client"),
    (attempt, "_stream", "    stream: relayed to the client"),
    (adapt.StreamAdapter, "feed", "      adapt: a stream's reads checked and rewritten"),
    (adapt.StreamAdapter, "finish", "      adapt: a stream's end"),
    (pipeline, "settle", "settle"),
    (account, "_report", "  metrics and the log line, after the loop's turn"),
    (metrics, "request_done", "    metrics of the request"),
    (account, "_record_usage", "  usage: the settlement recorded"),
    (account, "log_request", "    the log line"),
]


def timed(owner, name: str, label: str) -> None:
    original = inspect.getattr_static(owner, name)
    static = isinstance(original, staticmethod)
    function = original.__func__ if static else original

    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def wrapper(*args, **kwargs):
            start = time.perf_counter_ns()
            try:
                return await function(*args, **kwargs)
            finally:
                SPENT[label] += time.perf_counter_ns() - start
    else:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter_ns()
            try:
                return function(*args, **kwargs)
            finally:
                SPENT[label] += time.perf_counter_ns() - start
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def wrapper_cost() -> float:
    """Microseconds one wrapper adds: a wrapped no-op, less the bare call."""
    def noop() -> None:
        pass

    class Holder:
        call = staticmethod(noop)
    timed(Holder, "call", "(no-op)")
    calls = 200_000
    start = time.perf_counter()
    for _ in range(calls):
        Holder.call()
    wrapped = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        noop()
    return (wrapped - (time.perf_counter() - start)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--mode", choices=["json", "stream"], default="json")
    parser.add_argument("--redis", metavar="URL", help="admit and settle through this Redis")
    parser.add_argument("--warmup", type=int, default=500, help="requests before measuring")
    args = parser.parse_args()
    for owner, name, label in STAGES:
        timed(owner, name, label)
    total = time.process_time()
    uvloop.run(inproc.measure(args.requests, modes=(args.mode,), redis=args.redis,
                              warmup=args.warmup))
    requests = args.requests + args.warmup  # every request passes the stages, warm-up too
    whole = (time.process_time() - total) / requests * 1e6
    print(f"{'stage (inclusive)':52} us/request")
    for _, _, label in STAGES:
        print(f"{label:52} {SPENT[label] / 1000 / requests:7.1f}")
    print(f"{'whole run, CPU, harness included':52} {whole:7.1f}")
    print(f"{'one wrapper costs':52} {wrapper_cost():7.2f}")


if __name__ == "__main__":
    main()
