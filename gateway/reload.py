"""Hot reload: read routes.yaml, providers/ and backends/ again, and swap them in or keep the old.

The new config is loaded and validated beside the one in force; only a good
one replaces it, by swapping one reference, so requests in flight finish on
the table they started with; then `on_swap` is told of the new runtime (the
app passes its health monitor's `follow`). Three things trigger it: SIGHUP,
POST /admin/reload, and a change to the config files (each worker process
polls their modification times, which is how every worker of `--workers N`
learns of an edit, and how a Kubernetes ConfigMap update arrives).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from gateway import heap, metrics
from gateway.config import Config, ConfigError, load_config
from gateway.config.errors import format_path
from gateway.logs import log
from gateway.runtime import Runtime, retire, start_runtime


class Reloader:
    def __init__(self, state, path: Path, on_swap: Callable[[Runtime], Awaitable[None]]) -> None:
        self.state = state  # app state: `.runtime` is swapped
        self.path = path
        self.on_swap = on_swap
        self._lock = asyncio.Lock()
        self._stamp = self._files_stamp()
        self.loaded_at = time.time()  # when the config in force was loaded
        self.text = _read(path)  # its main file as it was then: what /admin/config shows
        self.last: dict | None = None  # the last reload: when, whether it took, why not

    async def reload(self, reason: str) -> Config:
        """Load, validate and swap in the config; ConfigError (old one kept) if it is bad."""
        async with self._lock:
            self._stamp = self._files_stamp()
            try:
                config = load_config(self.path)
            except ConfigError as error:
                self.last = refusal(error, reason)
                metrics.child(metrics.RELOADS, "refused").inc()
                log.error("config reload refused; the old config stays in force",
                          extra={"fields": {"reason": reason, "problems": str(error)}})
                raise
            old = self.state.runtime
            # A model that was served before keeps its `created`: clients cache model lists.
            config = replace(config, created={alias: old.config.created.get(alias, when)
                                              for alias, when in config.created.items()})
            metrics.child(metrics.RELOADS, "ok").inc()
            metrics.config_loaded(config.digest, old.config.digest)
            new = start_runtime(config, previous=old)
            self.state.runtime = new
            self.loaded_at = time.time()
            self.text = _read(self.path)
            self.last = {"at": self.loaded_at, "ok": True, "reason": None, "trigger": reason}
            await self.on_swap(new)
            grace = max((p.timeouts.total for p in old.config.providers.values()), default=0)
            retire(old, new, grace)
            asyncio.get_running_loop().call_later(grace + 1, heap.freeze)  # old config gone by then
            log.info("config reloaded", extra={"fields": {
                "reason": reason, "config_hash": config.digest, "models": len(config.routes)}})
            return config

    async def watch(self, interval: float) -> None:
        """Reload when a config file changes (by modification time)."""
        while True:
            await asyncio.sleep(interval)
            if self._files_stamp() != self._stamp:
                try:
                    await self.reload("config file changed")
                except ConfigError:
                    pass  # logged; keep serving the old config

    def _files_stamp(self) -> tuple:
        files = [self.path, *sorted((self.path.parent / "providers").glob("*.yaml")),
                 *sorted((self.path.parent / "backends").glob("*.yaml"))]
        stamp: list[tuple[str, int | None, int | None]] = []
        for file in files:
            try:
                info = os.stat(file)
                stamp.append((str(file), info.st_mtime_ns, info.st_size))
            except OSError:
                stamp.append((str(file), None, None))
        return tuple(stamp)


def refusal(error: ConfigError, trigger: str) -> dict:
    """A refused reload as the overview shows it: the first problem's file, path and reason,
    and every problem."""
    problems = [{"file": error.file, "path": format_path(p.path), "line": p.line,
                 "reason": p.reason} for p in error.problems]
    first = problems[0] if problems else {"file": error.file, "path": "", "line": None,
                                          "reason": str(error)}
    return {"at": time.time(), "ok": False, "trigger": trigger} | first | {"problems": problems}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"# {path} could not be read: {error.strerror}"
