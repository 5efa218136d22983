"""`${VAR}` and `${VAR:-default}` in config strings, read from the environment.

Secrets stay out of the file: `api_key: "${GENERALCOMPUTE_API_KEY}"`. A variable
that is not set (and has no default) is an error naming the place that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.config.errors import Problem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(
    data: Any, environ: Mapping[str, str], problems: list[Problem], path: tuple = ()
) -> Any:
    """Return `data` with every `${...}` in string values replaced; collect problems."""
    if isinstance(data, str):
        if "${" not in data:
            return data

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = environ.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value is not None:  # set but empty, no default: keep it empty
                return value
            problems.append(Problem(path, f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(substitute, data)
    if isinstance(data, dict):
        return {k: expand_env(v, environ, problems, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, environ, problems, path + (i,)) for i, v in enumerate(data)]
    return data
