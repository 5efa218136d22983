"""The compiled config: immutable objects the request path reads, built once at load.

Nothing here parses or validates; that happened in load.py. A reload builds a
whole new `Config` beside the old one, and requests in flight keep the one
they started with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.store.base import KeyRecord
from gateway.store.memory import RESPONSE_BYTES


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float
    total: float


@dataclass(frozen=True, slots=True)
class Rule:
    """One parameter's compiled rule: the small operations translate.py applies."""

    supported: bool = True
    table: Mapping | None = None  # value map; a value mapped to None is dropped
    values: frozenset | None = None
    on_value: str = "drop"
    low: float | None = None
    high: float | None = None
    on_range: str = "clamp"
    max_items: int | None = None
    on_count: str = "clamp"
    rename: tuple[str, ...] | None = None  # the path upstream
    note: str = ""


UNSUPPORTED = Rule(supported=False)
AS_IS = Rule()


@dataclass(frozen=True, slots=True)
class LoadWeights:
    running: float  # also each request sent since the reading
    waiting: float
    kv_cache: float  # a full cache


@dataclass(frozen=True, slots=True)
class LoadMetrics:
    """Which series of a server's Prometheus metrics say how busy it is, and what each weighs."""

    running: tuple[str, ...]  # the names a series has had: the first present counts
    waiting: tuple[str, ...]
    kv_cache: tuple[str, ...]  # empty: not read
    model_label: str | None  # the label naming a series' model; None: the server's totals
    weights: LoadWeights


@dataclass(frozen=True, slots=True)
class Profile:
    """A dialect: how to talk to one kind of upstream."""

    name: str
    description: str
    transport: str
    apis: Mapping[str, str]  # client API -> its path on the upstream (relative to base_url)
    auth_header: str
    auth_scheme: str | None
    headers: Mapping[str, str] = field(default_factory=dict)  # fixed ones; names in lower case
    probe_path: str = "models"
    metrics_path: str | None = None
    load_metrics: LoadMetrics | None = None  # set when metrics_path is
    stream_usage: str = "on_request"
    reasoning_field: str = "reasoning_content"
    reasoning_in_messages: str | None = "reasoning_content"  # None: dropped from messages
    extras: str = "drop"
    finish_reasons: Mapping[str, str] = field(default_factory=dict)
    error_message_keys: tuple[str, ...] = ("message",)
    context_overflow_codes: frozenset[str] = frozenset()
    context_overflow_phrases: tuple[str, ...] = ()  # regular expressions, as written
    context_overflow: re.Pattern | None = None  # the same, as one pattern
    rules: Mapping[str, Rule] = field(default_factory=dict)  # chat's
    api_rules: Mapping[str, Mapping[str, Rule]] = field(default_factory=dict)  # other APIs'


@dataclass(frozen=True, slots=True)
class Dialect:
    """A profile with the overrides of one provider, model and target applied: what a target speaks."""

    profile: Profile
    provider: str
    rules: Mapping[str, Rule]
    unsupported: str  # drop | reject: for OpenAI parameters the rules do not support
    # Anthropic's thinking budget -> chat's reasoning_effort: (floor, effort), highest first
    # (routes.yaml's messages.thinking_efforts).
    thinking_efforts: tuple[tuple[int, str], ...] = ((16384, "high"), (4096, "medium"),
                                                     (0, "low"))


@dataclass(frozen=True, slots=True)
class Provider:
    """An upstream account: where it is, how to authenticate, how patient to be."""

    name: str
    profile: Profile
    base_url: str
    urls: Mapping[str, str]  # client API -> where the upstream serves it (the profile's `apis`)
    timeouts: Timeouts
    max_connections: int
    keepalive_seconds: float
    max_response_bytes: int
    # Headers sent on every request, the provider's key among them: never repr'd or logged.
    headers: Mapping[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False, default=())
    probe: Probe | None = None
    metrics_url: str | None = None  # its profile's metrics_path, for the vllm-load strategy
    metrics_interval: float = 2.0
    backend: str | None = None  # a replica of this local backend (backends/NAME.yaml)
    served_model: str | None = None  # what its /v1/models must list (checked by the probe)

    def url_for(self, api: str) -> str:
        """Where this provider serves `api`; only asked for an API its profile lists."""
        return self.urls[api]

    @property
    def chat_url(self) -> str | None:
        return self.urls.get("chat")

    @property
    def connection(self) -> tuple:
        """What an open transport depends on: while it is unchanged, a reload keeps the pool."""
        return (self.profile.transport, self.base_url, self.timeouts.connect,
                self.max_connections, self.keepalive_seconds)


@dataclass(frozen=True, slots=True)
class Probe:
    url: str
    interval: float
    timeout: float
    unhealthy_after: int  # failed probes in a row that take the provider out


@dataclass(frozen=True, slots=True)
class Target:
    """One place that can serve an alias: a provider and the model name it knows."""

    provider: Provider
    model: str
    dialect: Dialect  # chat's, with the provider's, model's and target's `params` overrides
    weight: float = 1.0
    context_window: int | None = None
    key: str = ""  # names its health state; a wildcard's targets share their template's
    dialects: Mapping[str, Dialect] = field(default_factory=dict)  # every API it speaks

    @property
    def name(self) -> str:
        return f"{self.provider.name}/{self.model}"

    def dialect_for(self, api: str) -> Dialect:
        """How this target takes requests of `api` (one of its profile's `apis`)."""
        return self.dialects[api]


@dataclass(frozen=True, slots=True)
class Group:
    """Targets balanced by `strategy` as one tier; the next group is the fallback."""

    targets: tuple[Target, ...]
    strategy: str = "weighted"
    affinity: Affinity | None = None


@dataclass(frozen=True, slots=True)
class Affinity:
    """Keep a session (same user, or same long prompt prefix) on one target; see balance.py."""

    by: str  # user | prefix | user-or-prefix
    prefix_chars: int = 2048
    min_prefix_chars: int = 1024
    max_extra_load: float = 4.0


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int  # most upstream attempts for one request
    backoff: float
    max_backoff: float


@dataclass(frozen=True, slots=True)
class Breaker:
    failures: int
    window: float
    cooldown: float


@dataclass(frozen=True, slots=True)
class Route:
    alias: str  # for a wildcard route, its pattern (`openai/*`)
    description: str
    groups: tuple[Group, ...]
    reasoning_field: str = "reasoning_content"  # reasoning_content | reasoning | both
    retry: Retry = Retry(attempts=1, backoff=0.2, max_backoff=2.0)
    wildcard: bool = False
    price: Price | None = None

    def attempts(self) -> Iterator[Target]:
        """Every target in group order (the order a request would try them with no balancing)."""
        for group in self.groups:
            yield from group.targets

    def for_model(self, model: str) -> Route:
        """A wildcard route's targets with `*` in their model replaced by what the client's matched."""
        if not self.wildcard:
            return self
        matched = model[len(self.alias) - 1:]
        groups = tuple(replace(g, targets=tuple(replace(t, model=t.model.replace("*", matched))
                                                for t in g.targets)) for g in self.groups)
        return replace(self, groups=groups)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str | None  # None: in memory
    cluster: bool = False
    prefix: str = "gw"
    timeout: float = 0.5
    pool_size: int = 50
    on_failure: str = "fail-closed"
    retention: float = 90 * 86400.0

    @property
    def connection(self) -> tuple:
        return (self.url, self.cluster, self.prefix, self.timeout, self.pool_size)


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """Stored responses (the Responses API's `store`): how long, how large, and in memory how
    much in all."""

    ttl: float = 30 * 86400.0  # as OpenAI keeps them
    # 4 MiB holds the text of a context of about a million tokens; beyond that it is mostly
    # images as data URLs, which the client holds anyway. Each turn's record is read and
    # written whole on the request path, so its size is latency (and, turn after turn,
    # the store's memory: each record holds the whole conversation so far).
    max_bytes: int = 4 * 2**20
    memory_bytes: int = RESPONSE_BYTES


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # dollars per token
    output: float

    def cost(self, prompt: int, completion: int) -> float:
        return prompt * self.input + completion * self.output


@dataclass(frozen=True, slots=True)
class Replica:
    """One vLLM server of a backend: launched here (`port`), or already running (`url` only)."""

    index: int
    url: str  # the server's root, http://host:port
    port: int | None = None  # set when the gateway launches it
    host: str = "127.0.0.1"
    device: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cpus: str | None = None  # "0-3,8": the CPUs its processes may run on

    @property
    def launched(self) -> bool:
        return self.port is not None


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    backoff: float
    max_backoff: float
    max_restarts: int | None


@dataclass(frozen=True, slots=True)
class Backend:
    """A local model deployment (backends/NAME.yaml): what to launch, where, and how to reach it."""

    name: str
    file: Path
    model: str
    served_model: str
    alias: str | None
    replicas: tuple[Replica, ...]
    args: tuple[str, ...]  # for `vllm serve`, after the model; host and port are per replica
    command: tuple[str, ...] | None  # None: this Python's `-m vllm.entrypoints.openai.api_server`
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold tokens
    api_key: str | None = field(default=None, repr=False)  # passed as --api-key at launch
    restart: RestartPolicy | None = None
    startup_timeout: float = 900.0
    description: str = ""

    def provider_name(self, replica: Replica) -> str:
        return f"{self.name}#{replica.index}"


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    digest: str
    # Per alias, when this process first served it: /v1/models' `created`, kept across reloads.
    created: Mapping[str, int]
    max_body_bytes: int
    body_timeout: float
    header_timeout: float
    providers: Mapping[str, Provider]
    routes: Mapping[str, Route]
    keys: Mapping[str, KeyRecord] = field(repr=False)  # declared in the file, by SHA-256 (hex)
    master_digest: str | None = field(repr=False)
    metrics_digest: str | None = field(default=None, repr=False)  # server.metrics_key's SHA-256
    store: StoreSettings = StoreSettings(url=None)
    responses: ResponsesSettings = ResponsesSettings()
    limits: dict = field(default_factory=dict)  # DefaultLimitsSpec fields: every key's defaults
    wildcards: tuple[Route, ...] = ()  # longest prefix first
    breaker: Breaker = Breaker(failures=5, window=30.0, cooldown=30.0)
    watch_config: float = 2.0
    log_prompts: bool = False
    drain_seconds: float = 5.0
    shutdown_grace: float = 60.0
    console_session_ttl: int = 8 * 3600
    backends: Mapping[str, Backend] = field(default_factory=dict)

    def route_for(self, model: str) -> Route | None:
        """An exact alias wins; else the longest wildcard prefix that matches."""
        route = self.routes.get(model)
        if route is not None and not route.wildcard:
            return route
        for wildcard in self.wildcards:
            if model.startswith(wildcard.alias[:-1]) and len(model) >= len(wildcard.alias):
                return wildcard
        return None
