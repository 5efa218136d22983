"""Load, validate and compile routes.yaml and providers/ into immutable objects."""

from gateway.config.compiled import (
    Breaker,
    Config,
    Group,
    Price,
    Profile,
    Provider,
    Retry,
    Route,
    Target,
    Timeouts,
)
from gateway.config.errors import ConfigError
from gateway.config.load import default_config_path, digest_key, load_config

__all__ = [
    "Breaker", "Config", "ConfigError", "Group", "Price", "Profile", "Provider", "Retry", "Route",
    "Target", "Timeouts",
    "default_config_path", "digest_key", "load_config",
]
