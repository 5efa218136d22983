"""Watching upstreams off the request path: active health probes and load readings.

One task per provider and kind, started with each runtime and moved to a
reload's new one by `follow`. `unhealthy_after` failed probes in a row (default 2) open
the breaker of every target of that provider; a good one lets a trial through
at once. One late answer is not enough: a host that pauses for a few seconds
delays every replica's probe at once, and would otherwise empty the pool. A
local backend's replica is probed at /v1/models, which must list the model it
was declared to serve. Load readings from the profile's metrics_path (vLLM's
/metrics: running and waiting requests, KV-cache use, the series its
`load_metrics` name) feed the vllm-load strategy; a request never waits for one.
"""

from __future__ import annotations

import asyncio
import re
import time

import orjson

from gateway.config import Provider
from gateway.config.compiled import LoadMetrics, Probe
from gateway.core.health import Load
from gateway.logs import log
from gateway.runtime import Runtime
from gateway.upstream import TransportError

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.MULTILINE)


def parse_load(text: str, metrics: LoadMetrics, model: str | None = None) -> Load | None:
    """Running, waiting and KV-cache use from a server's Prometheus text, by the profile's
    series names: `model`'s series where they are labelled with it, else the server's totals."""
    load = _parse(text, metrics, model)
    return load if load is not None or model is None else _parse(text, metrics, None)


def _parse(text: str, metrics: LoadMetrics, model: str | None) -> Load | None:
    wanted = {*metrics.running, *metrics.waiting, *metrics.kv_cache}
    label = None
    if model is not None and metrics.model_label is not None:
        label = re.compile(r"(?<![a-zA-Z0-9_])" + re.escape(metrics.model_label) + r'="([^"]*)"')
    values: dict[str, float] = {}
    for name, labels, value in _SAMPLE.findall(text):
        if name not in wanted:
            continue
        if label is not None and labels:
            found = label.search(labels)
            if found is not None and found.group(1) != model:
                continue
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue

    def first(names: tuple[str, ...]) -> float | None:
        return next((values[n] for n in names if n in values), None)

    running, waiting, kv = first(metrics.running), first(metrics.waiting), first(metrics.kv_cache)
    if running is None and waiting is None:
        return None
    return Load(running or 0.0, waiting or 0.0, min(max(kv or 0.0, 0.0), 1.0), time.monotonic())


def check_served(body: bytes, model: str) -> tuple[bool, str]:
    """Does a vLLM server's /v1/models list `model`? A replica serving something else
    is kept out of rotation rather than sent traffic for a model it does not have."""
    try:
        served = [m["id"] for m in orjson.loads(body)["data"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False, "its /v1/models is not a model list"
    if model in served:
        return True, "serves " + model
    return False, f"serves {', '.join(map(repr, served)) or 'nothing'}, not '{model}'"


class Monitor:
    """The probe and load-reading tasks of one runtime at a time; the app's lifespan owns it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        config = self.runtime.config
        load_balanced = {t.provider.name for r in config.routes.values() for g in r.groups
                         if g.strategy == "vllm-load" for t in g.targets}
        for provider in config.providers.values():
            if provider.probe is not None:
                self.tasks.append(asyncio.create_task(self._probe(provider, provider.probe)))
            metrics = provider.profile.load_metrics
            if (provider.metrics_url is not None and metrics is not None
                    and provider.name in load_balanced):
                self.tasks.append(asyncio.create_task(
                    self._read_load(provider, provider.metrics_url, metrics)))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def follow(self, runtime: Runtime) -> None:
        """Watch `runtime` from now on: a reload swapped it in, and its providers may differ."""
        await self.stop()
        self.runtime = runtime
        self.start()

    def _targets(self, provider: Provider):
        seen = set()
        for route in self.runtime.config.routes.values():
            for target in route.attempts():
                if target.provider.name == provider.name and target.key not in seen:
                    seen.add(target.key)
                    yield target

    async def _probe(self, provider: Provider, probe: Probe) -> None:
        transport = self.runtime.transports[provider.name]
        healthy = True
        missed = 0  # failed probes in a row
        while True:
            try:
                status, body = await transport.get(probe.url, probe.timeout)
                ok, why = status < 400, f"HTTP {status}"
                if ok and provider.served_model is not None:
                    ok, why = check_served(body, provider.served_model)
            except TransportError as exc:
                ok, why = False, str(exc)
            missed = 0 if ok else missed + 1
            if ok or missed >= probe.unhealthy_after:
                now = time.monotonic()
                for target in self._targets(provider):
                    state = self.runtime.health.state(target.key)
                    if ok:
                        state.probe_passed()
                    else:
                        state.probe_failed(self.runtime.config.breaker, now)
                if ok != healthy:
                    log.warning("provider probe " + ("recovered" if ok else "failed"),
                                extra={"fields": {"provider": provider.name, "reason": why}})
                    healthy = ok
            else:
                log.info("provider probe missed", extra={"fields": {
                    "provider": provider.name, "reason": why, "in_row": missed,
                    "out_after": probe.unhealthy_after}})
            await asyncio.sleep(probe.interval)

    async def _read_load(self, provider: Provider, url: str, metrics: LoadMetrics) -> None:
        transport = self.runtime.transports[provider.name]
        stale = max(5 * provider.metrics_interval, 5.0)  # a reading older than this is dropped
        while True:
            try:
                status, body = await transport.get(url,
                                                   timeout=max(provider.metrics_interval, 1.0))
                text = body.decode(errors="replace") if status == 200 else ""
            except TransportError:
                text = ""
            now = time.monotonic()
            for target in self._targets(provider):
                load = parse_load(text, metrics, target.model) if text else None
                state = self.runtime.health.state(target.key)
                if load is None and state.load is not None and now - state.load.read_at < stale:
                    continue  # one slow or failed read (a busy server): keep the last reading
                state.load = load  # None when unread: the strategy falls back to in-flight counts
                state.sent_since_load = 0
            await asyncio.sleep(provider.metrics_interval)
