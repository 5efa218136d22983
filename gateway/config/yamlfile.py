"""Read a YAML file once, keeping the line of every key so errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.config.errors import ConfigError, Problem

Lines = dict[tuple[str | int, ...], int]


def load_yaml(path: Path) -> tuple[Any, Lines]:
    """Return the document and a map from each path in it to its line number.

    Refuses duplicate keys: YAML would silently keep the last one, which in a
    routing file means a model or key that quietly disappears.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [Problem((), f"cannot read file: {exc.strerror or exc}")]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise ConfigError(path, [Problem((), reason, line)]) from None
    finally:
        loader.dispose()
    lines: Lines = {}
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, problems)
    if problems:
        raise ConfigError(path, problems)
    return data, lines


def _walk(node: yaml.Node, path: tuple, lines: Lines, problems: list[Problem]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue
            if key in seen:
                reason = f"duplicate key '{key}' (first at line {seen[key]})"
                problems.append(Problem(path + (key,), reason, line))
                continue
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, problems)


def line_of(lines: Lines, path: tuple[str | int, ...]) -> int | None:
    """The line of `path`, or of its nearest ancestor present in the file."""
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]
