"""`gateway backends list|up|down|status [NAME]`: local vLLM deployments from backends/*.yaml."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.backends import probe
from gateway.backends.supervise import Supervisor, log_file, read_state
from gateway.cli_admin import table
from gateway.config import Backend, Config
from gateway.logs import setup_logging

STATE_DIR_ENV = "GATEWAY_STATE_DIR"


def add_commands(commands) -> None:
    backends = commands.add_parser("backends", help="local vLLM backends: list, up, down, status")
    actions = backends.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("list", "the declared backends"),
                       ("up", "launch the replicas and wait until they are healthy"),
                       ("down", "stop the launched replicas"),
                       ("status", "each replica's health, load and served model")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", nargs="?", help="one backend (default: all)")
        action.add_argument("--config", type=Path, default=None,
                            help="routes.yaml; backends/ is beside it (default: as for serve)")
        action.add_argument("--state-dir", type=Path, default=None,
                            help=f"supervisor state and replica logs (default ${STATE_DIR_ENV}, "
                                 "else .gateway/ beside the config)")
        if name == "up":
            action.add_argument("--foreground", action="store_true",
                                help="supervise in this process until SIGTERM (systemd, containers)")
            action.add_argument("--timeout", type=float, default=None,
                                help="seconds to wait for health (default: the file's startup_timeout)")
        if name == "status":
            action.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, config: Config) -> int:
    chosen = list(config.backends.values())
    if args.name is not None:
        if args.name not in config.backends:
            known = ", ".join(config.backends) or "none (backends/ is empty)"
            print(f"gateway: no backend '{args.name}'; declared: {known}", file=sys.stderr)
            return 2
        chosen = [config.backends[args.name]]
    state_dir = args.state_dir or Path(os.environ.get(STATE_DIR_ENV)
                                       or config.source.parent / ".gateway")
    if args.action == "list":
        print(table(["backend", "alias", "model", "replicas", "file"], [
            [b.name, b.alias or "-", b.served_model, _replicas_text(b),
             f"backends/{b.file.name}"] for b in chosen]))
        return 0
    if args.action == "status":
        return _status(chosen, config, state_dir, args.json)
    if args.action == "down":
        return max((_down(b, state_dir) for b in chosen), default=0)
    if args.foreground:
        if len(chosen) != 1:
            print("gateway: --foreground supervises one backend; name it", file=sys.stderr)
            return 2
        setup_logging()
        asyncio.run(Supervisor(chosen[0], state_dir).run())
        return 0
    return max((_up(b, state_dir, args) for b in chosen), default=0)


def _up(backend: Backend, state_dir: Path, args: argparse.Namespace) -> int:
    """Check the URL replicas, start a supervisor for the launched ones, wait for health."""
    for replica in backend.replicas:
        if replica.launched:
            continue
        try:
            served = probe.served_models(replica.url, api_key=backend.api_key)
        except OSError as exc:
            print(f"{backend.name}#{replica.index} {replica.url}: not reachable ({exc}); the "
                  "gateway routes to it once it answers")
            continue
        if backend.served_model not in served:
            print(f"gateway: backend '{backend.name}' (backends/{backend.file.name}) replica "
                  f"{replica.index} at {replica.url} serves {', '.join(served) or 'nothing'}, "
                  f"not '{backend.served_model}'", file=sys.stderr)
            return 2
        print(f"{backend.name}#{replica.index} {replica.url}: serves {backend.served_model}")
    launched = [r for r in backend.replicas if r.launched]
    if not launched:
        return 0
    state_dir.mkdir(parents=True, exist_ok=True)
    if read_state(state_dir, backend.name) is None:
        argv = [sys.executable, "-m", "gateway", "backends", "up", backend.name, "--foreground",
                "--config", str(args.config_path), "--state-dir", str(state_dir)]
        (state_dir / "backends").mkdir(exist_ok=True)
        with open(log_file(state_dir, backend.name, "supervisor"), "ab") as out:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + (args.timeout or backend.startup_timeout)
    started = time.monotonic()
    print(f"{backend.name}: starting {len(launched)} replica(s); logs in "
          f"{state_dir / 'backends'}", flush=True)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        state = read_state(state_dir, backend.name)
        if state is None and time.monotonic() - started > 10:
            print(f"gateway: the supervisor of '{backend.name}' exited; see "
                  f"{log_file(state_dir, backend.name, 'supervisor')}", file=sys.stderr)
            return 1
        replicas = (state or {}).get("replicas", [])
        states = [r["state"] for r in replicas]
        if states and all(s == "healthy" for s in states):
            print(f"{backend.name}: {len(states)} replica(s) healthy in "
                  f"{time.monotonic() - started:.1f} s; serving '{backend.served_model}'"
                  + (f" as '{backend.alias}'" if backend.alias else ""))
            return 0
        if any(s in ("down", "failed", "restarting") for s in states):
            failed = next(r for r in replicas if r["state"] in ("down", "failed", "restarting"))
            print(f"gateway: {backend.name}#{failed['index']} exited with code "
                  f"{failed['exit_code']} while starting; last lines of its log:\n"
                  + _tail(log_file(state_dir, backend.name, failed["index"])), file=sys.stderr)
            _down(backend, state_dir)
            return 1
    print(f"gateway: {backend.name} not healthy after {args.timeout or backend.startup_timeout:.0f}"
          " s; stopping it", file=sys.stderr)
    _down(backend, state_dir)
    return 1


def _down(backend: Backend, state_dir: Path) -> int:
    state = read_state(state_dir, backend.name)
    if state is None:
        print(f"{backend.name}: not running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and read_state(state_dir, backend.name) is not None:
        time.sleep(0.2)
    if read_state(state_dir, backend.name) is not None:
        print(f"gateway: {backend.name}: the supervisor did not stop", file=sys.stderr)
        return 1
    print(f"{backend.name}: stopped")
    return 0


def _status(chosen: list[Backend], config: Config, state_dir: Path, as_json: bool) -> int:
    rows = []
    for backend in chosen:
        state = read_state(state_dir, backend.name) or {}
        supervised = {r["index"]: r for r in state.get("replicas", [])}
        for replica in backend.replicas:
            report = probe.inspect(replica.url, config.providers[backend.provider_name(replica)],
                                   backend.served_model, api_key=backend.api_key)
            entry = supervised.get(replica.index, {})
            rows.append({
                "backend": backend.name, "replica": replica.index, "url": replica.url,
                "launched": replica.launched,
                "process": entry.get("state", "not running" if replica.launched else "external"),
                "pid": entry.get("pid"), "restarts": entry.get("restarts", 0),
                "healthy": report.healthy, "served": report.served,
                "serves_declared": (report.served is not None
                                    and backend.served_model in report.served),
                "running": report.running, "waiting": report.waiting,
                "kv_cache": report.kv_cache, "error": report.error,
            })
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(
            ["replica", "url", "process", "health", "model", "running", "waiting", "kv cache"],
            [[f"{r['backend']}#{r['replica']}", r["url"],
              r["process"] + (f" (pid {r['pid']})" if r["pid"] else ""),
              "healthy" if r["healthy"] else f"down: {r['error']}",
              ", ".join(r["served"]) if r["served"] else "-",
              _num(r["running"]), _num(r["waiting"]),
              "-" if r["kv_cache"] is None else f"{r['kv_cache']:.0%}"] for r in rows]))
    return 0 if all(r["healthy"] and r["serves_declared"] for r in rows) else 1


def _replicas_text(backend: Backend) -> str:
    return ", ".join(f"{r.host}:{r.port}" + (f" [{r.device}]" if r.device else "")
                     if r.launched else r.url for r in backend.replicas)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
