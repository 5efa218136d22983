"""The shape of routes.yaml and of a provider profile, as pydantic models.

These describe the files only. Cross-references (a target's provider, a
provider's profile) are checked when the config is compiled, in compile.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


ByteSize = Annotated[int, BeforeValidator(_parse_size), Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]


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


class ServerSpec(Strict):
    max_body_bytes: ByteSize = 32 * 2**20


class ProviderSpec(Strict):
    profile: str
    base_url: str | None = None
    api_key: Annotated[str, Field(min_length=1)] | None = None
    headers: dict[str, str] = {}
    timeouts: TimeoutsSpec = TimeoutsSpec()
    pool: PoolSpec = PoolSpec()
    max_response_bytes: ByteSize | None = None


class TargetSpec(Strict):
    provider: str
    model: Annotated[str, Field(min_length=1)]
    weight: Annotated[float, Field(gt=0)] = 1.0
    context_window: Annotated[int, Field(gt=0)] | None = None


class ModelSpec(Strict):
    description: str = ""
    targets: Annotated[list[TargetSpec], Field(min_length=1)]


class KeySpec(Strict):
    """A gateway key declared in the file: its secret from the environment, or only its hash."""

    key: Annotated[str, Field(min_length=8)] | None = None
    key_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    models: list[str] = ["*"]


class ConfigSpec(Strict):
    server: ServerSpec = ServerSpec()
    upstream: UpstreamSpec = UpstreamSpec()
    providers: dict[str, ProviderSpec] = {}
    models: dict[str, ModelSpec] = {}
    keys: dict[str, KeySpec] = {}


class AuthSpec(Strict):
    """How the provider wants its key: `header: value` where value is `scheme key` or `key`."""

    header: str = "Authorization"
    scheme: str | None = "Bearer"


class ProfileSpec(Strict):
    description: str = ""
    transport: Literal["http", "demo"] = "http"
    chat_path: str = "/chat/completions"
    auth: AuthSpec = AuthSpec()
