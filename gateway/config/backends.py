"""Load backends/*.yaml: local vLLM deployments, one file each.

A backend is compiled into what the rest of the gateway already knows: one
provider per replica (named `NAME#i`, profile `vllm`), and, when it declares
an `alias`, a model whose only group balances over its replicas. Routes refer
to it as `{backend: NAME}`. Problems are reported with the backend's own file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.backends.pin import parse_cpus
from gateway.config import schema
from gateway.config.compiled import Affinity, Backend, Replica, RestartPolicy
from gateway.config.errors import ConfigError, Problem
from gateway.config.validation import validate
from gateway.config.yamlfile import Lines, line_of, load_yaml

# `vllm serve` flags from the typed fields, in the order they are written.
_FLAGS = ("max_model_len", "tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs",
          "dtype", "enable_prefix_caching", "enforce_eager", "reasoning_parser",
          "tool_call_parser", "enable_auto_tool_choice", "chat_template")


def load_backends(directory: Path, environ: Mapping[str, str]) -> dict[str, tuple]:
    """{name: (Backend, spec, lines)} for every backends/*.yaml; the spec and lines let the
    routes compiler report problems in the backend's file."""
    found: dict[str, tuple] = {}
    if not directory.is_dir():
        return found
    ports: dict[tuple[str, int], str] = {}
    for file in sorted(directory.glob("*.yaml")):
        raw, lines = load_yaml(file)
        spec = validate(schema.BackendSpec, raw if raw is not None else {}, file, lines, environ)
        backend = compile_backend(file.stem, spec, file, lines)
        for replica in backend.replicas:
            if replica.port is None:
                continue
            where = (replica.host, replica.port)
            if where in ports:
                _refuse(file, lines, ("replicas", replica.index, "port"),
                        f"port {replica.port} is also used by backend '{ports[where]}'")
            ports[where] = backend.name
        found[backend.name] = (backend, spec, lines)
    return found


def compile_backend(name: str, spec: schema.BackendSpec, file: Path, lines: Lines) -> Backend:
    problems: list[Problem] = []

    def fail(where: tuple, reason: str) -> None:
        problems.append(Problem(where, reason, line_of(lines, where)))

    replicas = []
    for i, r in enumerate(spec.replicas):
        place = ("replicas", i)
        if (r.url is None) == (r.port is None):
            fail(place, "give 'url' (a running server) or 'port' (launched here), not both")
            continue
        if r.url is not None:
            if not r.url.startswith(("http://", "https://")):
                fail(place + ("url",), "must start with http:// or https://")
                continue
            if r.device is not None or r.env or r.cpus is not None:
                fail(place, "'device', 'cpus' and 'env' are for replicas launched here "
                     "(with 'port')")
            url = r.url.rstrip("/")
            url = url[:-3] if url.endswith("/v1") else url
            replicas.append(Replica(i, url))
        else:
            cpus = None
            if r.cpus is not None:
                try:
                    parse_cpus(str(r.cpus))
                    cpus = str(r.cpus).replace(" ", "")
                except ValueError as error:
                    fail(place + ("cpus",), str(error))
            replicas.append(Replica(i, f"http://{r.host}:{r.port}", r.port, r.host, r.device,
                                    dict(r.env), cpus))
    args = list(_args(spec.vllm, file.parent, fail))
    if problems:
        raise ConfigError(file, problems)
    restart = spec.restart
    policy = None
    if restart is not False:
        restart = schema.RestartSpec() if restart is True else restart
        policy = RestartPolicy(restart.backoff, restart.max_backoff, restart.max_restarts)
    served = spec.served_model_name or spec.model
    return Backend(
        name=name, file=file, model=spec.model, served_model=served, alias=spec.alias,
        replicas=tuple(replicas), args=("--served-model-name", served, *args),
        command=tuple(spec.command) if spec.command else None, env=dict(spec.env),
        api_key=spec.api_key, restart=policy, startup_timeout=spec.startup_timeout,
        description=spec.description)


def tier(t: schema.TargetSpec, where: tuple, backends: dict) -> tuple:
    """One link of a fallback chain: a target alone, or a backend's replicas balanced."""
    entry = backends.get(t.backend) if t.backend is not None else None
    if entry is None:
        return ("weighted", [t], where, None)
    return (entry[1].strategy, [t], where, entry[1].affinity)


def backend_targets(t: schema.TargetSpec, place: tuple, backends: dict,
                     affinity: schema.AffinitySpec | None, fail) -> tuple[list, object]:
    """`{backend: NAME}`: a target on each replica, serving the backend's model name."""
    if t.provider is not None or t.model is not None:
        fail(place, "give either 'backend' or 'provider' and 'model'")
        return [], affinity
    entry = backends.get(t.backend)
    if entry is None:
        known = ", ".join(sorted(backends)) or "none are declared in backends/"
        fail(place + ("backend",), f"unknown backend '{t.backend}'; known backends: {known}")
        return [], affinity
    backend: Backend = entry[0]
    targets = [schema.TargetSpec(provider=backend.provider_name(r), model=backend.served_model,
                                 weight=t.weight, context_window=t.context_window,
                                 params=t.params) for r in backend.replicas]
    return targets, affinity if affinity is not None else entry[1].affinity


def compile_affinity(spec: schema.AffinitySpec | None) -> Affinity | None:
    if spec is None:
        return None
    return Affinity(spec.by, spec.prefix_chars, spec.min_prefix_chars, spec.max_extra_load)


def _args(vllm: schema.VllmArgsSpec, here: Path, fail):
    for field in _FLAGS:
        value = getattr(vllm, field)
        if value is None:
            continue
        flag = "--" + field.replace("_", "-")
        if value is True:
            yield flag
        elif value is False:
            if field == "enable_prefix_caching":
                yield "--no-enable-prefix-caching"
        elif field == "chat_template":
            template = (here / value).resolve()
            if not template.is_file():
                fail(("vllm", "chat_template"), f"no such file: {template}")
            yield from (flag, str(template))
        else:
            yield from (flag, str(value))
    yield from vllm.extra_args


def _refuse(file: Path, lines: Lines, where: tuple, reason: str) -> None:
    raise ConfigError(file, [Problem(where, reason, line_of(lines, where))])
