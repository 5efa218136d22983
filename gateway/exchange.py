"""One client request as it moves through the pipeline: what later stages and the log need to know."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Exchange:
    request_id: str
    started: float
    key_name: str | None = None
    alias: str | None = None  # set once the alias is known to be routable: safe as a metric label
    stream: bool = False
    status: int = 0
    target: str | None = None
    attempts: int = 0
    committed: bool = False  # the response has started: no fallback, errors go in-band
    ttft: float | None = None
    usage: dict | None = None
    error: str | None = None
    failures: list[str] = field(default_factory=list)
