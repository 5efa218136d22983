"""Trace the Python heap of a gateway started by any bench script, without changing the gateway.

    HEAP_TRACE_DIR=/tmp/heap PYTHONPATH=bench/heaptrace .venv/bin/python bench/soak.py --minutes 20

Python imports `sitecustomize` at start-up from the path, so every Python process
started with that environment reads this file; only `python -m gateway serve`
acts on it. After `HEAP_TRACE_DELAY` seconds (default 60: start-up and warm-up
are not what we look for) it starts tracemalloc, then every `HEAP_TRACE_EVERY`
seconds (default 120) appends to `$HEAP_TRACE_DIR/heap.txt`: RSS, the traced
heap, the collector's counts, and the allocation sites and object types that
grew most since the first snapshot. A heap that keeps growing shows up there
with the line that allocates it; one that goes up and down with the faults
does not. Tracing slows the gateway several times and adds its own memory to
RSS; compare the traced figures, not RSS, within one traced run.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import threading
import time
import tracemalloc

FRAMES = 12  # enough to reach from the allocation up to the gateway's own frames
TOP = 12


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def object_types() -> collections.Counter:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def trace(out: str, delay: float, every: float) -> None:
    time.sleep(delay)
    tracemalloc.start(FRAMES)
    first: tracemalloc.Snapshot | None = None
    first_types: collections.Counter = collections.Counter()
    started = time.monotonic()
    while True:
        time.sleep(every)
        types = object_types()  # before the snapshot, whose own tuples would count otherwise
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)])
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"=== {time.monotonic() - started:.0f}s traced rss={rss_mb():.1f}MB "
                 f"traced={current / 1e6:.2f}MB peak={peak / 1e6:.2f}MB "
                 f"gc_count={gc.get_count()} collections={[g['collections'] for g in gc.get_stats()]} "
                 f"objects={sum(types.values())}"]
        if first is None:
            first, first_types = snapshot, types
        else:
            for stat in snapshot.compare_to(first, "traceback")[:TOP]:
                lines.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks "
                             f"(now {stat.size / 1024:.1f} KiB)")
                lines.extend("    " + line for line in stat.traceback.format())
            grown = sorted(((n - first_types[t], t) for t, n in types.items()), reverse=True)
            lines.append("types grown: " + ", ".join(f"{t} {d:+d}" for d, t in grown[:20]))
        with open(os.path.join(out, "heap.txt"), "a") as log:
            log.write("\n".join(lines) + "\n")


if os.environ.get("HEAP_TRACE_DIR") and sys.argv[:2] == ["-m", "serve"]:
    threading.Thread(target=trace, daemon=True, args=(
        os.environ["HEAP_TRACE_DIR"], float(os.environ.get("HEAP_TRACE_DELAY", "60")),
        float(os.environ.get("HEAP_TRACE_EVERY", "120")))).start()
