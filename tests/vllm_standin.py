"""A stand-in for `vllm serve` that the backend supervisor can launch in tests.

    python tests/vllm_standin.py --model M --host 127.0.0.1 --port P --served-model-name NAME ...

It takes vLLM's command line (ignoring what it does not need) and serves
vLLM's endpoints with tests/upstream.py: /health, /v1/models listing the
served name, /metrics with the `vllm:` names, and chat completions. Set
STANDIN_FAIL=1 in its environment to make it exit at once, as a replica
that cannot start would.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upstream import Upstream  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default=None)
    args, _ = parser.parse_known_args()
    if os.environ.get("STANDIN_FAIL"):
        print("stand-in: failing on purpose", flush=True)
        sys.exit(3)
    upstream = Upstream(port=args.port, served=[args.served_model_name or args.model]).start()
    print(f"stand-in: serving {upstream.served[0]} on {args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    upstream.stop()


if __name__ == "__main__":
    main()
