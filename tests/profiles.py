"""The shipped profiles, and a target for any of them, for tests that translate without a server."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.config.compiled import Dialect, Provider, Target, Timeouts
from gateway.config.load import data_dir, load_profiles

PROFILES = load_profiles([data_dir() / "providers"], {})


def target(profile_name: str, unsupported: str = "drop") -> Target:
    profile = PROFILES[profile_name]
    provider = Provider(name="p", profile=profile, base_url="http://x", urls={"chat": "http://x/c"},
                        timeouts=Timeouts(1, 1, 1, 1), max_connections=1, keepalive_seconds=1,
                        max_response_bytes=1, headers={})
    return Target(provider, "upstream-model", Dialect(profile, "p", profile.rules, unsupported))


NOWHERE = 'base_url: "http://127.0.0.1:9/v1"'  # for configs that are compiled, never served


def targets_on(directory: Path, providers: dict[str, str]) -> dict[str, Target]:
    """A target on each provider (its routes.yaml entry, `{profile: ..., ...}`), by the
    provider's name, from a config compiled as `gateway serve` loads it."""
    path = directory / "routes.yaml"
    path.write_text("providers:\n" + "".join(f"  {name}: {spec}\n" for name, spec in providers.items())
                    + "models:\n" + "".join(f"  {name}: {{targets: [{{provider: {name}, model: "
                                             f"up-{name}}}]}}\n" for name in providers))
    config = load_config(path, {})
    return {name: next(config.routes[name].attempts()) for name in providers}
