"""A compiled config from a few lines of routes.yaml, as `gateway serve` would load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from gateway.config import Config, load_config


@pytest.fixture
def compile_routes(tmp_path) -> Callable[[str], Config]:
    def compile_(text: str) -> Config:
        path = tmp_path / "routes.yaml"
        path.write_text(textwrap.dedent(text))
        return load_config(path, {})  # no environment: no master key, no Redis URL

    return compile_
