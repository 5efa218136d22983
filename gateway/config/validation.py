"""Turn a parsed YAML document into a pydantic spec, or into problems an admin can act on.

Every pydantic error becomes a Problem with the path and the line, worded for
a person and never echoing the value (it may be a secret).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.config import schema
from gateway.config.env import expand_env
from gateway.config.errors import ConfigError, Problem
from gateway.config.yamlfile import Lines, line_of


def validate(model: type[BaseModel], raw: object, file: Path, lines: Lines,
              environ: Mapping[str, str]):
    problems: list[Problem] = []
    expanded = expand_env(raw, environ, problems)
    if problems:
        raise ConfigError(file, [Problem(p.path, p.reason, line_of(lines, p.path)) for p in problems])
    try:
        return model.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(file, [_explain(err, lines) for err in exc.errors(include_url=False)]) from None


def _known_keys() -> set[str]:
    names: set[str] = set()
    for cls in vars(schema).values():
        if isinstance(cls, type) and issubclass(cls, schema.Strict):
            names.update(cls.model_fields)
    return names


def _explain(err: ErrorDetails, lines: Lines) -> Problem:
    """Turn one pydantic error into words an admin reads; never echo the value (it may be a secret)."""
    loc = tuple(err["loc"])
    if loc[-1:] == ("[key]",):  # a mapping's key is wrong: the place is that key
        loc = loc[:-1]
    kind = err["type"]
    if kind == "extra_forbidden":
        reason = f"unknown key '{loc[-1]}'"
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1)
        if close:
            reason += f" (did you mean '{close[0]}'?)"
    elif kind == "missing":
        reason = "required key is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        reason = msg[0].lower() + msg[1:]
        if kind.endswith("_type") or kind.endswith("_parsing"):
            reason += f", got {_type_name(err.get('input'))}"
    return Problem(loc, reason, line_of(lines, loc))


def _type_name(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)
