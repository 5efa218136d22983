"""Graceful shutdown: on SIGTERM, report not-ready first, then stop taking requests.

A load balancer (or Kubernetes, which removes the pod from its Service at
about the time it sends SIGTERM) keeps sending requests for a moment after
the signal. So the first SIGTERM only marks the process draining: /readyz
answers 503 while it goes on serving for `server.drain_seconds`. Then the
server's own handler runs: the socket closes, and requests and streams in
flight get `server.shutdown_grace` seconds to finish (uvicorn's graceful
shutdown) before they are cut. A second SIGTERM skips the wait.

uvicorn installs its handlers with signal.signal before the app starts, in
every worker; this wraps the one for SIGTERM, so it works the same with
`--workers N`.
"""

from __future__ import annotations

import asyncio
import signal

from gateway.logs import log


class Drain:
    def __init__(self) -> None:
        self.draining = False

    def install(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # no server handler to hand over to (not under uvicorn)

        def on_sigterm(sig: int, frame) -> None:
            if self.draining or delay <= 0:
                self.draining = True
                previous(sig, frame)
                return
            self.draining = True
            log.info("draining: not ready, still serving", extra={"fields": {"seconds": delay}})
            loop.call_soon_threadsafe(loop.call_later, delay, previous, sig, None)

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:
            pass  # not the main thread
