"""Load routes.yaml and the provider profiles, validate them, compile them.

Every problem is reported with the file, the path in it and the line, and the
process refuses to start: a gateway that guesses at a broken routing file
sends traffic somewhere nobody intended.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import urljoin

from gateway.config import schema
from gateway.config.backends import backend_targets, compile_affinity, load_backends, tier
from gateway.config.compiled import (
    AS_IS,
    UNSUPPORTED,
    Backend,
    Breaker,
    Config,
    Dialect,
    Group,
    LoadMetrics,
    LoadWeights,
    Price,
    Probe,
    Profile,
    Provider,
    ResponsesSettings,
    Retry,
    Route,
    Rule,
    StoreSettings,
    Target,
    Timeouts,
)
from gateway.config.errors import ConfigError, Problem
from gateway.config.validation import validate
from gateway.config.yamlfile import Lines, line_of, load_yaml
from gateway.store.base import KeyRecord

DEFAULT_TIMEOUTS = Timeouts(connect=5.0, first_byte=300.0, idle=120.0, total=900.0)
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_KEEPALIVE_SECONDS = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
MASTER_KEY_ENV = "GATEWAY_MASTER_KEY"
REDIS_URL_ENV = "GATEWAY_REDIS_URL"


def data_dir() -> Path:
    """Where the shipped profiles and routes.yaml are: in a wheel, or the source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_data"
    return packaged if packaged.is_dir() else package.parent


def default_config_path() -> Path:
    return data_dir() / "routes.yaml"


def digest_key(secret: str) -> str:
    """The SHA-256 of a key's secret, in hex: the only form in which keys are kept."""
    return hashlib.sha256(secret.encode()).hexdigest()


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and compile `path` and the profiles it uses. Raises ConfigError."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    profiles = load_profiles([data_dir() / "providers", path.parent / "providers"], environ)
    raw, lines = load_yaml(path)
    spec = validate(schema.ConfigSpec, raw if raw is not None else {}, path, lines, environ)
    backends = load_backends(path.parent / "backends", environ)
    return _compile(spec, path, lines, profiles, environ, backends)


def load_profiles(dirs: list[Path], environ: Mapping[str, str]) -> dict[str, Profile]:
    """Profiles by name (the file's stem); a later directory overrides an earlier one."""
    files: dict[str, Path] = {}
    seen: set[Path] = set()
    for directory in dirs:
        directory = directory.resolve()
        if directory in seen or not directory.is_dir():
            continue
        seen.add(directory)
        for file in sorted(directory.glob("*.yaml")):
            files[file.stem] = file
    raw = {name: load_yaml(file) for name, file in files.items()}
    return {name: _profile(name, files, raw, environ) for name in files}


_MERGED_SECTIONS = ("auth", "headers", "reasoning", "load_metrics", "finish_reasons", "errors",
                    "params", "api_params")
# Headers the gateway writes itself on every upstream request: a profile cannot set them.
GATEWAY_HEADERS = frozenset({"content-type", "content-length", "accept-encoding", "host",
                             "transfer-encoding", "connection", "x-request-id"})
# What the request path itself writes, in any client API (the model, the stream, the
# messages, prompt or input): no profile or override rules on these.
OWNED_PARAMS = frozenset({"model", "stream", "stream_options", "messages", "prompt", "input"})


def _resolved(name: str, files: dict[str, Path], raw: dict, chain: tuple = ()) -> dict:
    """A profile's raw data with its `base` chain applied: its own keys win, sections merge."""
    data, lines = raw[name]
    data = dict(data or {})
    base = data.pop("base", None)
    if base is None:
        return data
    if base not in files or base in chain + (name,):
        reason = (f"unknown base profile '{base}'" if base not in files
                  else f"base profiles form a cycle: {' -> '.join(chain + (name, base))}")
        raise ConfigError(files[name], [Problem(("base",), reason, line_of(lines, ("base",)))])
    merged = _resolved(base, files, raw, chain + (name,))
    for key, value in data.items():
        if key in _MERGED_SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _profile(name: str, files: dict[str, Path], raw: dict, environ: Mapping[str, str]) -> Profile:
    file, (_, lines) = files[name], raw[name]
    spec = validate(schema.ProfileSpec, _resolved(name, files, raw), file, lines, environ)
    problems: list[Problem] = []
    rules = _rules(spec.params, ("params",), lines, problems)
    # A base's rules for an API this profile does not speak are not this profile's.
    api_rules = {api: _rules(params, ("api_params", api), lines, problems)
                 for api, params in spec.api_params.items() if api in spec.apis}
    for api in (raw[name][0] or {}).get("api_params") or {}:
        if api not in spec.apis:
            problems.append(Problem(("api_params", api), f"'{api}' is not in this profile's "
                                    f"apis ({', '.join(spec.apis)})",
                                    line_of(lines, ("api_params", api))))
    if "messages_count_tokens" in spec.apis and "messages" not in spec.apis:
        problems.append(Problem(("apis", "messages_count_tokens"), "needs `messages` in apis "
                                "too: a count is ruled by api_params.messages",
                                line_of(lines, ("apis", "messages_count_tokens"))))
    overflow = None
    if spec.errors.context_overflow:
        try:
            overflow = re.compile("|".join(f"(?:{p})" for p in spec.errors.context_overflow),
                                  re.IGNORECASE)
        except re.error as exc:
            problems.append(Problem(("errors", "context_overflow"), f"not a regular expression: "
                                    f"{exc}", line_of(lines, ("errors", "context_overflow"))))
    for header in spec.headers:
        place = ("headers", header)
        if header.lower() in GATEWAY_HEADERS:
            problems.append(Problem(place, "the gateway writes this header itself",
                                    line_of(lines, place)))
        elif header.lower() == spec.auth.header.lower():
            problems.append(Problem(place, "the provider's key goes in this header: set it "
                                    "with `auth` and the provider's api_key",
                                    line_of(lines, place)))
    if spec.metrics_path is not None and spec.load_metrics is None:
        problems.append(Problem(("load_metrics",), "required with metrics_path: which series "
                                "there say how busy the server is", line_of(lines, ("metrics_path",))))
    if problems:
        raise ConfigError(file, problems)
    in_messages = spec.reasoning.in_messages
    return Profile(
        name=name, description=spec.description, transport=spec.transport,
        apis=dict(spec.apis), auth_header=spec.auth.header, auth_scheme=spec.auth.scheme,
        headers={name.lower(): value for name, value in spec.headers.items()},
        probe_path=spec.probe_path, metrics_path=spec.metrics_path,
        load_metrics=_load_metrics(spec.load_metrics) if spec.load_metrics else None,
        stream_usage=spec.stream_usage, reasoning_field=spec.reasoning.field,
        reasoning_in_messages=None if in_messages == "drop" else in_messages,
        extras=spec.extras, finish_reasons=dict(spec.finish_reasons),
        error_message_keys=tuple(spec.errors.message_keys),
        context_overflow_codes=frozenset(spec.errors.context_overflow_codes),
        context_overflow_phrases=tuple(spec.errors.context_overflow),
        context_overflow=overflow, rules=rules, api_rules=api_rules,
    )


def _load_metrics(spec: schema.LoadMetricsSpec) -> LoadMetrics:
    weights = spec.weights
    return LoadMetrics(tuple(spec.running), tuple(spec.waiting), tuple(spec.kv_cache or ()),
                       spec.model_label,
                       LoadWeights(weights.running, weights.waiting, weights.kv_cache))


def _rules(params: dict, where: tuple, lines: Lines, problems: list[Problem]) -> dict[str, Rule]:
    """Compile a `params:` section; problems are collected with their place."""
    rules = {}
    for name, spec in params.items():
        place = where + (name,)

        def fail(reason: str, place: tuple = place) -> None:
            problems.append(Problem(place, reason, line_of(lines, place)))

        if name in OWNED_PARAMS:
            fail("the gateway handles this parameter itself; profiles cannot rule on it")
            continue
        if spec is True or spec is False:
            rules[name] = AS_IS if spec else UNSUPPORTED
            continue
        if spec.min is not None and spec.max is not None and spec.min > spec.max:
            fail("min is above max")
        if spec.on_range == "fanout" and name != "n":
            fail("on_range: fanout is only for 'n'")
        rename = tuple(spec.rename.split(".")) if spec.rename else None
        if rename and (rename[0] in OWNED_PARAMS or "" in rename):
            fail(f"cannot rename to '{spec.rename}'")
        try:
            values = frozenset(spec.values) if spec.values is not None else None
        except TypeError:
            fail("values must be plain values (strings, numbers, booleans)")
            continue
        rules[name] = Rule(
            table=dict(spec.map) if spec.map is not None else None, values=values,
            on_value=spec.on_value, low=spec.min, high=spec.max, on_range=spec.on_range,
            max_items=spec.max_items, on_count=spec.on_count, rename=rename, note=spec.note)
    return rules


def _compile(spec: schema.ConfigSpec, path: Path, lines: Lines,
             profiles: dict[str, Profile], environ: Mapping[str, str],
             backends: dict[str, tuple] | None = None) -> Config:
    backends = backends or {}
    problems: list[Problem] = []

    def fail(where: tuple, reason: str) -> None:
        problems.append(Problem(where, reason, line_of(lines, where)))

    providers: dict[str, Provider] = {}
    for name, p in spec.providers.items():
        profile = profiles.get(p.profile)
        if profile is None:
            fail(("providers", name, "profile"),
                 f"unknown profile '{p.profile}'; known profiles: {', '.join(sorted(profiles))}")
            continue
        if profile.transport == "http" and not p.base_url:
            fail(("providers", name, "base_url"), f"required for profile '{p.profile}'")
            continue
        if p.base_url and not p.base_url.startswith(("http://", "https://")):
            fail(("providers", name, "base_url"), "must start with http:// or https://")
            continue
        providers[name] = _provider(name, p, profile, spec.upstream)
    provider_rules = {name: _rules(p.params, ("providers", name, "params"), lines, problems)
                      for name, p in spec.providers.items()}
    provider_specs = dict(spec.providers)
    models = dict(spec.models)
    for name, (backend, bspec, blines) in backends.items():
        _add_backend(backend, bspec, blines, profiles, spec.upstream, providers, provider_specs,
                     provider_rules)
        if backend.alias is None:
            continue
        if backend.alias in models:
            fail(("models", backend.alias), f"also served by backend '{name}' "
                 f"({backend.file.parent.name}/{backend.file.name}, alias); remove one")
            continue
        models[backend.alias] = schema.ModelSpec(
            description=bspec.description or f"local vLLM backend '{name}'",
            groups=[schema.GroupSpec(strategy=bspec.strategy, affinity=bspec.affinity,
                                     targets=[schema.TargetSpec(backend=name)])])

    routes: dict[str, Route] = {}
    for alias, m in models.items():
        if (m.targets is None) == (m.groups is None):
            fail(("models", alias), "give either 'targets' (a fallback chain) or 'groups'")
            continue
        if "*" in alias and (not alias.endswith("*") or alias.count("*") > 1):
            fail(("models", alias), "a wildcard alias has one '*', at the end (like 'openai/*')")
            continue
        model_rules = _rules(m.params, ("models", alias, "params"), lines, problems)
        # Flat `targets:` are an ordered fallback chain: each target its own group
        # (a backend's replicas one group, balanced as its file says).
        tiers = ([tier(t, ("targets", i), backends) for i, t in enumerate(m.targets)]
                 if m.targets is not None else
                 [(g.strategy, g.targets, ("groups", gi, "targets"), g.affinity)
                  for gi, g in enumerate(m.groups or ())])  # one of the two is set: checked above
        groups = []
        count = 0
        for strategy, specs, where, affinity in tiers:
            targets = []
            for i, t in enumerate(specs):
                place = ("models", alias, *where) + ((i,) if m.groups is not None else ())
                if t.backend is not None:
                    expanded, affinity = backend_targets(t, place, backends, affinity, fail)
                else:
                    expanded = [t]
                for one in expanded:
                    target = _target(one, place, providers, provider_rules, model_rules, m,
                                     spec, provider_specs, fail, lines, problems)
                    if target is None:
                        continue
                    if strategy == "vllm-load" and target.provider.metrics_url is None:
                        fail(place + ("provider",), "the vllm-load strategy needs a provider "
                             "whose profile has a metrics_path (vllm's /metrics)")
                    if "*" in target.model and "*" not in alias:
                        fail(place + ("model",), "'*' in a target's model needs a wildcard alias")
                    targets.append(target)
            count += len(targets)
            if targets:
                groups.append(Group(tuple(targets), strategy, compile_affinity(affinity)))
        retry = m.retry or spec.routing.retry
        routes[alias] = Route(
            alias, m.description, tuple(groups),
            reasoning_field=m.reasoning_field or spec.server.reasoning_field,
            retry=Retry(retry.attempts or max(count, 1), retry.backoff, retry.max_backoff),
            wildcard=alias.endswith("*"),
            price=Price(m.price.input / 1e6, m.price.output / 1e6) if m.price else None)

    keys: dict[str, KeyRecord] = {}
    for name, k in spec.keys.items():
        if k.key is not None and k.key_hash is None:
            digest = digest_key(k.key)
        elif k.key_hash is not None and k.key is None:
            digest = k.key_hash.split(":", 1)[1]
        else:
            fail(("keys", name), "give exactly one of 'key' (the secret, from ${ENV}) or 'key_hash'")
            continue
        if digest in keys:
            fail(("keys", name), f"same secret as key '{keys[digest].name}'")
            continue
        for i, pattern in enumerate(k.models):
            served = pattern in models or any(
                a.endswith("*") and pattern.startswith(a[:-1]) for a in models)
            if pattern != "*" and not pattern.endswith("*") and not served:
                fail(("keys", name, "models", i), f"unknown model '{pattern}'")
        keys[digest] = KeyRecord(
            id=f"cfg-{name}", name=name, digest=digest, prefix="(routes.yaml)",
            models=tuple(k.models), limits=k.limits.model_dump(exclude_none=True),
            source="config")

    if problems:
        raise ConfigError(path, problems)

    master = environ.get(MASTER_KEY_ENV) or None
    store = spec.store
    return Config(
        source=path,
        digest=_digest_files(path),
        created=dict.fromkeys(routes, int(time.time())),
        max_body_bytes=spec.server.max_body_bytes,
        body_timeout=spec.server.body_timeout,
        header_timeout=spec.server.header_timeout,
        providers=providers,
        routes=routes,
        keys=keys,
        master_digest=digest_key(master) if master else None,
        metrics_digest=digest_key(spec.server.metrics_key) if spec.server.metrics_key else None,
        store=StoreSettings(
            url=store.url or environ.get(REDIS_URL_ENV) or None, cluster=store.cluster,
            prefix=store.prefix, timeout=store.timeout, pool_size=store.pool_size,
            on_failure=store.on_failure,
            retention=store.retention_days * 86400.0),
        responses=ResponsesSettings(spec.responses.ttl, spec.responses.max_bytes,
                                    spec.responses.memory_bytes),
        limits=spec.limits.model_dump(exclude_none=True),
        wildcards=tuple(sorted((r for r in routes.values() if r.wildcard),
                               key=lambda r: len(r.alias), reverse=True)),
        breaker=Breaker(spec.routing.breaker.failures, spec.routing.breaker.window,
                        spec.routing.breaker.cooldown),
        watch_config=spec.server.watch_config,
        log_prompts=spec.server.log_prompts,
        drain_seconds=spec.server.drain_seconds,
        shutdown_grace=spec.server.shutdown_grace,
        console_session_ttl=spec.server.console_session_ttl,
        backends={name: entry[0] for name, entry in backends.items()},
    )


def _add_backend(backend: Backend, spec: schema.BackendSpec, lines: Lines,
                 profiles: dict[str, Profile], defaults: schema.UpstreamSpec,
                 providers: dict, provider_specs: dict, provider_rules: dict) -> None:
    """A provider for each replica, checked against the backend's own file."""
    problems: list[Problem] = []
    profile = profiles.get(spec.profile)
    if profile is None:
        problems.append(Problem(("profile",), f"unknown profile '{spec.profile}'; known profiles: "
                                f"{', '.join(sorted(profiles))}", line_of(lines, ("profile",))))
    rules = _rules(spec.params, ("params",), lines, problems)
    if problems:
        raise ConfigError(backend.file, problems)
    assert profile is not None  # else a problem was raised above
    for replica in backend.replicas:
        name = backend.provider_name(replica)
        pspec = schema.ProviderSpec(
            profile=spec.profile, base_url=replica.url + "/v1", api_key=spec.api_key,
            timeouts=spec.timeouts, params=spec.params,
            probe=schema.ProbeSpec(path="/v1/models", interval=spec.probe_interval),
            metrics_interval=spec.metrics_interval)
        providers[name] = replace(_provider(name, pspec, profile, defaults),
                                  backend=backend.name, served_model=backend.served_model)
        provider_specs[name] = pspec
        provider_rules[name] = rules


def _target(t: schema.TargetSpec, place: tuple, providers: dict[str, Provider],
            provider_rules: dict, model_rules: dict, m: schema.ModelSpec,
            spec: schema.ConfigSpec, provider_specs: dict, fail, lines: Lines,
            problems: list) -> Target | None:
    if t.provider is None or t.model is None:
        fail(place, "give 'provider' and 'model', or 'backend'")
        return None
    provider = providers.get(t.provider)
    if provider is None:
        if t.provider not in provider_specs:
            known = ", ".join(sorted(spec.providers)) or "none are declared"
            fail(place + ("provider",), f"unknown provider '{t.provider}'; known providers: {known}")
        return None
    target_rules = _rules(t.params, place + ("params",), lines, problems)
    profile = provider.profile
    unsupported = (m.unsupported_params or provider_specs[t.provider].unsupported_params
                   or spec.server.unsupported_params)
    efforts = thinking_efforts(spec.messages)
    dialect = Dialect(
        profile=profile,
        provider=provider.name,
        rules={**profile.rules, **provider_rules[t.provider], **model_rules, **target_rules},
        unsupported=unsupported,
        thinking_efforts=efforts,
    )
    # routes.yaml's `params:` overrides are chat's; the other APIs take the profile's rules.
    dialects = {api: dialect if api == "chat" else Dialect(
        profile, provider.name, profile.api_rules.get(api, {}), unsupported, efforts)
        for api in profile.apis}
    return Target(provider, t.model, dialect, t.weight, t.context_window,
                  key=f"{provider.name}/{t.model}", dialects=dialects)


def thinking_efforts(spec: schema.MessagesSpec) -> tuple[tuple[int, str], ...]:
    """(floor, effort), highest floor first, ending with low from 0."""
    floors = sorted(((floor, effort) for effort, floor in spec.thinking_efforts.items()),
                    reverse=True)
    return (*floors, (0, "low"))


def _provider(name: str, p: schema.ProviderSpec, profile: Profile,
              defaults: schema.UpstreamSpec) -> Provider:
    def pick(field: str, own: object, default: object, builtin: object):
        value = getattr(own, field)
        if value is None:
            value = getattr(default, field)
        return builtin if value is None else value

    timeouts = Timeouts(**{
        f: pick(f, p.timeouts, defaults.timeouts, getattr(DEFAULT_TIMEOUTS, f))
        for f in ("connect", "first_byte", "idle", "total")
    })
    base_url = (p.base_url or f"builtin:{profile.name}").rstrip("/")
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if p.api_key:
        scheme = profile.auth_scheme
        headers[profile.auth_header.lower()] = f"{scheme} {p.api_key}" if scheme else p.api_key
    headers.update(profile.headers)
    headers.update({k.lower(): v for k, v in p.headers.items()})  # the provider's own win
    return Provider(
        name=name,
        profile=profile,
        base_url=base_url,
        urls={api: base_url + path for api, path in profile.apis.items()},
        timeouts=timeouts,
        max_connections=pick("max_connections", p.pool, defaults.pool, DEFAULT_MAX_CONNECTIONS),
        keepalive_seconds=pick("keepalive_seconds", p.pool, defaults.pool, DEFAULT_KEEPALIVE_SECONDS),
        max_response_bytes=p.max_response_bytes or defaults.max_response_bytes
        or DEFAULT_MAX_RESPONSE_BYTES,
        headers=headers,
        secrets=(p.api_key,) if p.api_key else (),
        probe=_probe(p.probe, base_url, profile) if profile.transport == "http" else None,
        metrics_url=(urljoin(base_url + "/", profile.metrics_path)
                     if profile.metrics_path and profile.transport == "http" else None),
        metrics_interval=p.metrics_interval,
    )


def _probe(spec: schema.ProbeSpec | bool, base_url: str, profile: Profile) -> Probe | None:
    if spec is False:
        return None
    spec = schema.ProbeSpec() if spec is True else spec
    return Probe(urljoin(base_url + "/", spec.path or profile.probe_path), spec.interval,
                 spec.timeout, spec.unhealthy_after)


def _digest_files(path: Path) -> str:
    """routes.yaml's hash, with the backend files it relies on."""
    digest = hashlib.sha256()
    try:
        digest.update(path.read_bytes())
        for file in sorted((path.parent / "backends").glob("*.yaml")):
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    except OSError:
        return "unknown"
    return digest.hexdigest()[:12]
