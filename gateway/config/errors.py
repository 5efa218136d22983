"""The one error a config can fail with: which file, where in it, and why."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    path: tuple[str | int, ...]
    reason: str
    line: int | None = None


def format_path(path: tuple[str | int, ...]) -> str:
    """`('models', 'gpt-x', 'targets', 1, 'provider')` -> `models.gpt-x.targets[1].provider`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class ConfigError(Exception):
    """A config that cannot be served. Carries every problem found, each with its place."""

    def __init__(self, file: Path | str, problems: list[Problem]) -> None:
        self.file = str(file)
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = []
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else self.file
            lines.append(f"{where}: {format_path(p.path)}: {p.reason}")
        return "\n".join(lines)


def problem(file: Path | str, path: tuple[str | int, ...], reason: str) -> ConfigError:
    return ConfigError(file, [Problem(path, reason)])
