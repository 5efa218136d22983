"""Load, validate and compile routes.yaml, providers/ and backends/ into immutable objects."""

from gateway.config.compiled import (
    Affinity,
    Backend,
    Breaker,
    Config,
    Group,
    Price,
    Profile,
    Provider,
    Replica,
    Retry,
    Route,
    Target,
    Timeouts,
)
from gateway.config.errors import ConfigError
from gateway.config.load import default_config_path, digest_key, load_config

__all__ = [
    "Affinity", "Backend", "Breaker", "Config", "ConfigError", "Group", "Price", "Profile",
    "Provider", "Replica", "Retry", "Route", "Target", "Timeouts",
    "default_config_path", "digest_key", "load_config",
]
