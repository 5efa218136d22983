"""Run a command on given CPUs: `python -m gateway.backends.pin 0-3,8 -- vllm ...`.

A replica's `cpus` is applied here, before exec, so that the API server, the
engine and every process and thread they start inherit it. A mask set from
outside once the replica runs would miss the threads already started.

Why a replica may want it: on a small host a CPU vLLM that generates flat out
can leave the processes sharing its cores (the gateway among them) waiting for
tens of seconds, whatever their priority (docs/faults.md). Confined to its own
cores, it leaves the others alone.
"""

from __future__ import annotations

import os
import sys

MAX_CPU = 8191  # Linux's largest CONFIG_NR_CPUS is 8192


def parse_cpus(text: str) -> list[int]:
    """'0-3,8' -> [0, 1, 2, 3, 8]; ValueError with the reason if it is not such a list."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"'{part.strip()}' is not a CPU number or range (like 0-3,8)")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"'{part.strip()}' is a range that runs backwards")
        if high > MAX_CPU:
            raise ValueError(f"CPU {high} is past {MAX_CPU}, the most Linux numbers")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m gateway.backends.pin CPUS -- COMMAND...", file=sys.stderr)
        return 2
    try:
        os.sched_setaffinity(0, parse_cpus(argv[0]))
    except (ValueError, OSError) as error:
        have = ",".join(map(str, sorted(os.sched_getaffinity(0))))
        print(f"gateway: cannot run on CPUs {argv[0]} ({error}); this machine lets us use {have}",
              file=sys.stderr)
        return 2
    os.execvp(argv[2], argv[2:])  # does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
