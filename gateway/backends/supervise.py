"""Keep a backend's launched replicas running: start them, watch them, restart the dead.

One supervisor process per backend (`gateway backends up` starts it in the
background; `--foreground` runs it in place, for systemd or a container). It
knows at once when a replica dies, because it is the parent, writes that to
the state file that `status` reads, and restarts it with backoff when the
backend's file allows. SIGTERM stops every replica (SIGTERM, then SIGKILL
after a grace period) and removes the state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from gateway.backends import launch
from gateway.config import Backend, Replica
from gateway.logs import log
from gateway.upstream import TransportError
from gateway.upstream.http import HttpTransport

STOP_GRACE = 30.0  # seconds a replica has to exit after SIGTERM
STABLE_AFTER = 60.0  # a replica healthy this long starts its restart backoff from scratch


def state_file(state_dir: Path, name: str) -> Path:
    return state_dir / "backends" / f"{name}.json"


def log_file(state_dir: Path, name: str, index: int | str) -> Path:
    return state_dir / "backends" / f"{name}.{index}.log"


def read_state(state_dir: Path, name: str) -> dict | None:
    """The supervisor's last report, or None if no supervisor of `name` is alive."""
    try:
        state = json.loads(state_file(state_dir, name).read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


class Supervisor:
    def __init__(self, backend: Backend, state_dir: Path) -> None:
        self.backend = backend
        self.state_dir = state_dir
        self.replicas = [r for r in backend.replicas if r.launched]
        self.report: dict[int, dict[str, Any]]  # by replica index: the state file's replicas
        self.report = {r.index: {"index": r.index, "url": r.url, "state": "starting", "pid": None,
                                 "restarts": 0, "exit_code": None, "since": time.time()}
                       for r in self.replicas}
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        (self.state_dir / "backends").mkdir(parents=True, exist_ok=True)
        self._write()
        http = HttpTransport(connect_timeout=2.0)
        try:
            keepers = [asyncio.create_task(self._keep(r, http)) for r in self.replicas]
            await self.stopping.wait()
            await self._stop_all()
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            await http.aclose()
        with contextlib.suppress(OSError):
            state_file(self.state_dir, self.backend.name).unlink()

    async def _keep(self, replica: Replica, http: HttpTransport) -> None:
        """Run one replica until stopped; restart it when it dies, if the file says so."""
        policy = self.backend.restart
        failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await self._start(replica)
            watcher = asyncio.create_task(self._watch_health(replica, http))
            code = await process.wait()
            watcher.cancel()
            if self.stopping.is_set():
                return
            self._set(replica, "down", pid=None, exit_code=code)
            log.error("backend replica exited", extra={"fields": {
                "backend": self.backend.name, "replica": replica.index, "exit_code": code}})
            if policy is None:
                return
            failures = 1 if time.monotonic() - started > STABLE_AFTER else failures + 1
            if policy.max_restarts is not None and failures > policy.max_restarts:
                self._set(replica, "failed")
                return
            delay = min(policy.backoff * 2 ** (failures - 1), policy.max_backoff)
            self._set(replica, "restarting", restart_in=round(delay, 1))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            self.report[replica.index]["restarts"] += 1

    async def _start(self, replica: Replica) -> asyncio.subprocess.Process:
        argv = launch.command(self.backend, replica)
        out = open(log_file(self.state_dir, self.backend.name, replica.index), "ab")  # noqa: SIM115
        try:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {launch.redacted(argv)}\n"
                      .encode())
            out.flush()
            process = await asyncio.create_subprocess_exec(
                *argv, env=launch.environment(self.backend, replica), stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        self.processes[replica.index] = process
        self._set(replica, "starting", pid=process.pid, exit_code=None)
        return process

    async def _watch_health(self, replica: Replica, http: HttpTransport) -> None:
        """`starting` until /health answers, then `healthy`/`unhealthy` as it goes."""
        started = time.monotonic()
        while True:
            try:
                status, _ = await http.get(replica.url + "/health", 2.0)
                ok = status == 200
            except TransportError:
                ok = False
            state = self.report[replica.index]["state"]
            if ok and state != "healthy":
                self._set(replica, "healthy")
                log.info("backend replica healthy", extra={"fields": {
                    "backend": self.backend.name, "replica": replica.index,
                    "seconds": round(time.monotonic() - started, 1)}})
            elif not ok and state == "healthy":
                self._set(replica, "unhealthy")
            await asyncio.sleep(0.5 if state == "starting" else 2.0)

    async def _stop_all(self) -> None:
        async def stop(index: int, process: asyncio.subprocess.Process) -> None:
            if process.returncode is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

        await asyncio.gather(*(stop(i, p) for i, p in self.processes.items()))
        for replica in self.replicas:
            self._set(replica, "stopped", pid=None)

    def _set(self, replica: Replica, state: str, **fields) -> None:
        entry = self.report[replica.index]
        entry.update(fields, state=state, since=time.time())
        if state != "restarting":
            entry.pop("restart_in", None)
        self._write()

    def _write(self) -> None:
        """Atomically: `status` may read it at any moment."""
        path = state_file(self.state_dir, self.backend.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"backend": self.backend.name, "pid": os.getpid(),
                                   "replicas": list(self.report.values())}, indent=1))
        tmp.replace(path)
