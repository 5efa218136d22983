"""The shipped profiles, and a target for any of them, for tests that translate without a server."""

from __future__ import annotations

from gateway.config.compiled import Dialect, Provider, Target, Timeouts
from gateway.config.load import data_dir, load_profiles

PROFILES = load_profiles([data_dir() / "providers"], {})


def target(profile_name: str, unsupported: str = "drop") -> Target:
    profile = PROFILES[profile_name]
    provider = Provider(name="p", profile=profile, base_url="http://x", urls={"chat": "http://x/c"},
                        timeouts=Timeouts(1, 1, 1, 1), max_connections=1, keepalive_seconds=1,
                        max_response_bytes=1, headers={})
    return Target(provider, "upstream-model", Dialect(profile, "p", profile.rules, unsupported))
