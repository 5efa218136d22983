"""The shape of routes.yaml and of a provider profile, as pydantic models.

These describe the files only. Cross-references (a target's provider, a
provider's profile) are checked when the config is compiled, in compile.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gateway.config.compiled import ResponsesSettings

_STORED = ResponsesSettings()  # the defaults

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def _parse_size(value: object) -> object:
    """Accept `33554432`, `"32MiB"`, `"500 KB"`; leave anything else for pydantic to refuse."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
        raise ValueError("expected a size such as 33554432, '32MiB' or '500KB'")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_IN_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: object) -> object:
    """Accept `2592000` (seconds), `"30d"`, `"12h"`, `"90m"`, `"2w"`; leave anything else
    for pydantic to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _IN_SECONDS[match.group(2)]
        raise ValueError("expected a duration such as 30d, 12h, 90m, 45s or a number of seconds")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token: a header's name


def _header_name(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError("not a header name (letters, digits and !#$%&'*+-.^_`|~ only)")
    return name


def _header_value(value: str) -> str:
    # A line break would end the header and start another: refused here, not at send.
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value cannot hold a line break or NUL")
    return value


# Headers sent upstream as written. A value must be a string: quote dates and numbers
# (`"2023-06-01"`), which YAML would read as something else.
Headers = dict[Annotated[str, AfterValidator(_header_name)],
               Annotated[str, AfterValidator(_header_value)]]

ByteSize = Annotated[int, BeforeValidator(_parse_size), Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]
Duration = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a routing file must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsSpec(Strict):
    connect: Seconds | None = None
    first_byte: Seconds | None = None
    idle: Seconds | None = None
    total: Seconds | None = None


class PoolSpec(Strict):
    max_connections: Annotated[int, Field(gt=0)] | None = None
    keepalive_seconds: Seconds | None = None


class UpstreamSpec(Strict):
    """Defaults for every provider; a provider may override any field."""

    timeouts: TimeoutsSpec = TimeoutsSpec()
    pool: PoolSpec = PoolSpec()
    max_response_bytes: ByteSize | None = None


class ParamRule(Strict):
    """How one request parameter reaches an upstream.

    Applied in order: map, values, range, count, rename.
    """

    map: dict[Any, Any] | None = None  # value table (an object's `type` for objects); null drops it
    values: list[Any] | None = None  # what the upstream accepts, after `map`
    on_value: Literal["drop", "reject"] = "drop"
    min: float | None = None
    max: float | None = None
    on_range: Literal["clamp", "drop", "reject", "fanout"] = "clamp"  # fanout: `n` only
    max_items: Annotated[int, Field(ge=0)] | None = None  # a string counts as one item
    on_count: Literal["clamp", "drop", "reject"] = "clamp"  # clamp keeps the first items
    rename: Annotated[str, Field(min_length=1)] | None = None  # dotted for a nested field
    note: str = ""  # shown in the parameter table


# `true`: passed as it is; `false`: not supported (dropped or rejected by policy).
ParamSpec = bool | ParamRule
Params = dict[str, ParamSpec]
Unsupported = Literal["drop", "reject"]
ReasoningField = Literal["reasoning_content", "reasoning", "both"]


class ServerSpec(Strict):
    max_body_bytes: ByteSize = 32 * 2**20
    # Seconds a client has to send its whole request body (a slow sender holds a connection).
    body_timeout: Seconds = 30.0
    # Seconds a connection has to send a request's headers, from when it opens or its last
    # answer ended; then it is closed (idle and slow connections would hold descriptors).
    header_timeout: Seconds = 10.0
    # Where clients find reasoning text, whichever field the upstream used.
    reasoning_field: ReasoningField = "reasoning_content"
    # What to do with an OpenAI parameter the target's profile does not support.
    unsupported_params: Unsupported = "drop"
    # Seconds between checks of the config files for changes (then reloaded); 0: never.
    watch_config: Annotated[float, Field(ge=0)] = 2.0
    # Debugging only: put each request's messages in its log line (prompts are private).
    log_prompts: bool = False
    # After SIGTERM: seconds of serving while /readyz says 503 (so load balancers stop
    # sending), then seconds that requests and streams in flight have to finish.
    drain_seconds: Annotated[float, Field(ge=0)] = 5.0
    shutdown_grace: Annotated[float, Field(ge=0)] = 60.0
    # Seconds a console sign-in lasts (then the browser asks for the master key again).
    console_session_ttl: Annotated[int, Field(ge=1, le=30 * 86400)] = 8 * 3600
    # When set, GET /metrics needs it (or the master key) as a bearer token: key and model
    # names are visible there. Empty ("${VAR:-}" unset) means not set.
    metrics_key: Annotated[Annotated[str, Field(min_length=16)] | None,
                           BeforeValidator(lambda v: v or None)] = None


class RetrySpec(Strict):
    """How hard one request tries. Fallback to another target is not a repeat; trying one again is."""

    attempts: Annotated[int, Field(ge=1, le=20)] | None = None  # default: each target once
    backoff: Seconds = 0.2  # before an attempt on a target already tried, doubling each time
    max_backoff: Seconds = 2.0


class BreakerSpec(Strict):
    """A target failing `failures` times within `window` seconds is left alone for `cooldown`."""

    failures: Annotated[int, Field(ge=1)] = 5
    window: Seconds = 30.0
    cooldown: Seconds = 30.0


class RoutingSpec(Strict):
    retry: RetrySpec = RetrySpec()
    breaker: BreakerSpec = BreakerSpec()


class ProbeSpec(Strict):
    """An active health check: GET `path` (relative to base_url; `/x` is from the host's root)."""

    path: str | None = None  # default: the profile's probe path
    interval: Seconds = 10.0
    timeout: Seconds = 2.0
    # Failed probes in a row that take the provider out: one late answer (a busy server,
    # a paused host) must not empty a pool whose every member it delayed at once.
    unhealthy_after: Annotated[int, Field(ge=1, le=100)] = 2


class ProviderSpec(Strict):
    profile: str
    base_url: str | None = None
    api_key: Annotated[str, Field(min_length=1)] | None = None
    headers: Headers = {}  # sent on every request; over the profile's own headers
    timeouts: TimeoutsSpec = TimeoutsSpec()
    pool: PoolSpec = PoolSpec()
    max_response_bytes: ByteSize | None = None
    params: Params = {}  # overrides the profile's rules, rule by rule
    unsupported_params: Unsupported | None = None
    probe: ProbeSpec | bool = False
    metrics_interval: Seconds = 2.0  # for the vllm-load strategy: how often /metrics is read


class TargetSpec(Strict):
    """A provider and its model name, or a local backend (backends/NAME.yaml): all its replicas."""

    provider: str | None = None
    model: Annotated[str, Field(min_length=1)] | None = None
    backend: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if self.backend is not None:
            if self.provider is not None or self.model is not None:
                raise ValueError("give either 'backend' or 'provider' and 'model'")
        elif self.provider is None or self.model is None:
            missing = "'provider'" if self.provider is None else "'model'"
            raise ValueError(f"{missing} is missing (a target names a provider and its model, "
                             "or a backend)")
        return self
    weight: Annotated[float, Field(gt=0)] = 1.0
    context_window: Annotated[int, Field(gt=0)] | None = None
    params: Params = {}  # overrides the provider's and the model's rules for this target


Strategy = Literal["weighted", "least-busy", "latency", "vllm-load"]


class AffinitySpec(Strict):
    """Session affinity: the same `user`, or the same long prompt prefix, goes to the same
    target while it is available and not much busier than the least busy one (vLLM's
    prefix cache then holds the conversation)."""

    by: Literal["user", "prefix", "user-or-prefix"] = "user-or-prefix"
    prefix_chars: Annotated[int, Field(ge=64)] = 2048  # the prefix that is compared
    min_prefix_chars: Annotated[int, Field(ge=1)] = 1024  # shorter prompts are balanced freely
    max_extra_load: Annotated[float, Field(ge=0)] = 4.0  # above the least busy: then rebalance


class GroupSpec(Strict):
    strategy: Strategy = "weighted"
    targets: Annotated[list[TargetSpec], Field(min_length=1)]
    affinity: AffinitySpec | None = None


class ModelSpec(Strict):
    """An alias: `targets` (an ordered fallback chain) or `groups` (load-balanced tiers)."""

    description: str = ""
    targets: Annotated[list[TargetSpec], Field(min_length=1)] | None = None
    groups: Annotated[list[GroupSpec], Field(min_length=1)] | None = None
    retry: RetrySpec | None = None
    price: PriceSpec | None = None
    params: Params = {}  # overrides the providers' rules for this model
    unsupported_params: Unsupported | None = None
    reasoning_field: ReasoningField | None = None


# At most 2**53: limits and counters meet in Redis' Lua, whose numbers are doubles.
Count = Annotated[int, Field(gt=0, le=2**53)]


class LimitValues(Strict):
    """Limits of a key (or of one model within a key). Unset: no such limit."""

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    in_flight: Count | None = None
    tokens_per_day: Count | None = None
    tokens_per_month: Count | None = None
    budget_per_month: Annotated[float, Field(gt=0)] | None = None  # dollars, from model prices


class LimitsSpec(LimitValues):
    models: dict[str, LimitValues] = {}  # per-model limits within the key, by alias


class DefaultLimitsSpec(LimitsSpec):
    """Limits of every key that does not set its own (field by field)."""

    # Tokens reserved for the answer when a request sets no max_tokens.
    completion_estimate: Count = 1024


class StoreSpec(Strict):
    url: str | None = None  # redis://, rediss:// (TLS); default $GATEWAY_REDIS_URL, else memory
    cluster: bool = False
    prefix: str = "gw"
    timeout: Seconds = 0.5  # per Redis command
    pool_size: Annotated[int, Field(gt=0, le=10_000)] = 50  # connections for all but the request path
    on_failure: Literal["fail-closed", "fail-open"] = "fail-closed"
    retention_days: Annotated[int, Field(gt=0)] = 90


class ResponsesSpec(Strict):
    """The Responses API's stored responses (`store: true`, OpenAI's default): what a later
    request's `previous_response_id` continues, kept in the store above."""

    ttl: Duration = _STORED.ttl  # 30 days, as OpenAI keeps them
    # A response whose record (its whole context, its input and its output) is larger is
    # answered but not stored (compiled.py says why 4 MiB).
    max_bytes: ByteSize = _STORED.max_bytes
    # The memory store (no store.url) keeps at most this much of them, the oldest going first
    # (read at start, as the store's settings are; ttl and max_bytes apply at a reload).
    memory_bytes: ByteSize = _STORED.memory_bytes


class MessagesSpec(Strict):
    """Anthropic's Messages API converted to chat: a `thinking` budget becomes the chat
    `reasoning_effort` whose floor it reaches (below the lowest floor: low). The profile's
    `reasoning_effort` rule then maps the effort to what the provider takes."""

    thinking_efforts: dict[Literal["medium", "high", "xhigh"],
                           Annotated[int, Field(ge=1024)]] = {"medium": 4096, "high": 16384}

    @model_validator(mode="after")
    def _rising(self) -> MessagesSpec:
        floors = [self.thinking_efforts[e] for e in ("medium", "high", "xhigh")
                  if e in self.thinking_efforts]
        if floors != sorted(set(floors)):
            raise ValueError("each effort's floor must be above the one before it "
                             "(medium < high < xhigh)")
        return self


class PriceSpec(Strict):
    """Dollars per million tokens."""

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]


class KeySpec(Strict):
    """A gateway key declared in the file: its secret from the environment, or only its hash."""

    key: Annotated[str, Field(min_length=8)] | None = None
    key_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    models: list[str] = ["*"]
    limits: LimitsSpec = LimitsSpec()


class ConfigSpec(Strict):
    server: ServerSpec = ServerSpec()
    store: StoreSpec = StoreSpec()
    limits: DefaultLimitsSpec = DefaultLimitsSpec()
    responses: ResponsesSpec = ResponsesSpec()
    messages: MessagesSpec = MessagesSpec()
    upstream: UpstreamSpec = UpstreamSpec()
    routing: RoutingSpec = RoutingSpec()
    providers: dict[str, ProviderSpec] = {}
    models: dict[str, ModelSpec] = {}
    keys: dict[str, KeySpec] = {}


class AuthSpec(Strict):
    """How the provider wants its key: `header: value` where value is `scheme key` or `key`."""

    header: str = "Authorization"
    scheme: str | None = "Bearer"


class ReasoningSpec(Strict):
    field: str = "reasoning_content"  # where the upstream puts reasoning text in its answers
    in_messages: str = "reasoning_content"  # the name it takes in assistant messages; `drop` removes it


ApiName = Literal["chat", "completions", "embeddings", "responses", "messages"]
# What a profile's `apis` may list: the client APIs, and Anthropic's count_tokens beside
# `messages` (no client API of its own: ruled by api_params.messages).
ApiPath = ApiName | Literal["messages_count_tokens"]


class ErrorsSpec(Strict):
    """How the upstream writes a refusal. Its error object is `{"error": {...}}`, `{"error":
    "text"}` or the body itself; `message_keys` are where its message is, the first found."""

    message_keys: Annotated[list[str], Field(min_length=1)] = ["message"]
    # How it says a prompt does not fit its context window: an error code, or words in the
    # message (regular expressions, case ignored). Then a target with more context is tried.
    context_overflow_codes: list[str] = []
    context_overflow: list[str] = []


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


PromName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
# A Prometheus series, or the names it has had in different versions: the first present counts.
Series = Annotated[list[PromName], BeforeValidator(_listed), Field(min_length=1)]
Weight = Annotated[float, Field(ge=0)]


class LoadWeightsSpec(Strict):
    """What each reading weighs in a server's load score; the least loaded server wins."""

    running: Weight  # each request in progress, and each one sent since the reading
    waiting: Weight  # each queued request
    kv_cache: Weight  # a full KV cache (use is 0..1)


class LoadMetricsSpec(Strict):
    """The series of the server's `metrics_path` that say how busy it is (vllm-load)."""

    running: Series
    waiting: Series
    kv_cache: Series | None = None  # 0..1; unset: not counted
    # The label naming a series' model: a server serving several counts only the target's.
    model_label: PromName | None = None
    weights: LoadWeightsSpec


class ProfileSpec(Strict):
    description: str = ""
    base: str | None = None  # start from another profile; this one's keys win, `params` rule by rule
    transport: Literal["http", "demo"] = "http"
    # The client APIs the upstream speaks natively, each at its path (relative to base_url).
    # A profile lists all of its own (a base's list is not merged); the others are reached
    # by conversion to chat, where the API has one.
    apis: Annotated[dict[ApiPath, Annotated[str, Field(min_length=1)]], Field(min_length=1)] = {
        "chat": "/chat/completions"}
    probe_path: str = "models"  # the health check `probe: true` uses (relative to base_url)
    metrics_path: str | None = None  # Prometheus metrics of the server's load (vLLM: /metrics)
    load_metrics: LoadMetricsSpec | None = None  # what to read there; needed with metrics_path
    auth: AuthSpec = AuthSpec()
    # Fixed headers the upstream wants on every request (an API version); a provider's own
    # `headers` win over these. The key goes in `auth`, not here.
    headers: Headers = {}
    # Usage in streams: sent only when asked with stream_options.include_usage, always, or never.
    stream_usage: Literal["on_request", "always", "never"] = "on_request"
    reasoning: ReasoningSpec = ReasoningSpec()
    extras: Literal["pass", "drop"] = "drop"  # parameters that are not OpenAI's and not listed
    finish_reasons: dict[str, str] = {}  # upstream finish reasons to OpenAI's
    errors: ErrorsSpec = ErrorsSpec()
    params: Params = {}  # chat's: OpenAI parameters not listed are not supported
    # The rules of the other APIs in `apis`, the same way (an API not here takes its
    # parameters as they are, but for the policy on unknown ones).
    api_params: dict[ApiName, Params] = {}


class VllmArgsSpec(Strict):
    """`vllm serve` arguments; anything else goes in `extra_args`, passed as written."""

    max_model_len: Annotated[int, Field(gt=0)] | None = None
    tensor_parallel_size: Annotated[int, Field(gt=0)] | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    max_num_seqs: Annotated[int, Field(gt=0)] | None = None
    dtype: str | None = None
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = None
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    enable_auto_tool_choice: bool | None = None
    chat_template: str | None = None  # a file, relative to the backend's file
    extra_args: list[str] = []


class ReplicaSpec(Strict):
    """An existing server (`url`), or one the gateway launches (`port`, `device`)."""

    url: str | None = None
    port: Annotated[int, Field(gt=0, lt=65536)] | None = None
    host: str = "127.0.0.1"
    device: str | None = None  # GPUs for CUDA_VISIBLE_DEVICES ("0", "2,3"), or "cpu"
    # CPUs its processes may run on ("0-3,8"); with device cpu, also vLLM's thread binding.
    cpus: str | int | None = None
    env: dict[str, str] = {}


class RestartSpec(Strict):
    """A launched replica that dies is restarted after `backoff`, doubling up to `max_backoff`."""

    backoff: Seconds = 1.0
    max_backoff: Seconds = 60.0
    max_restarts: Annotated[int, Field(ge=0)] | None = None  # in a row; None: no end


class BackendSpec(Strict):
    """backends/NAME.yaml: one local model deployment on vLLM."""

    description: str = ""
    model: Annotated[str, Field(min_length=1)]  # a local path or a model id
    served_model_name: Annotated[str, Field(min_length=1)] | None = None  # default: `model`
    alias: Annotated[str, Field(min_length=1)] | None = None  # the model id clients ask for
    profile: str = "vllm"
    vllm: VllmArgsSpec = VllmArgsSpec()
    command: Annotated[list[str], Field(min_length=1)] | None = None  # default: python -m vllm...
    env: dict[str, str] = {}
    api_key: Annotated[str, Field(min_length=1)] | None = None  # vllm --api-key; sent upstream
    replicas: Annotated[list[ReplicaSpec], Field(min_length=1)]
    strategy: Strategy = "vllm-load"
    affinity: AffinitySpec | None = None
    restart: RestartSpec | bool = True
    startup_timeout: Seconds = 900.0
    probe_interval: Seconds = 2.0
    metrics_interval: Seconds = 1.0
    timeouts: TimeoutsSpec = TimeoutsSpec()
    params: Params = {}  # overrides the profile's rules for this backend
