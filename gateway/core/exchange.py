"""One client request as it moves through the pipeline: what later stages and the log need to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Exchange:
    request_id: str
    started: float
    surface: Any  # the client API (apis.base.Surface): its errors, its stream's end
    ended: float = 0.0  # perf_counter() when the pipeline was done with it: settled after
    key_name: str | None = None
    alias: str | None = None  # set once the alias is known to be routable: safe as a metric label
    stream: bool = False
    status: int = 0
    target: str | None = None  # the target that answered, as `provider/model`
    target_key: str | None = None  # its key in the config (a wildcard's template): a label
    in_flight: bool = False  # counted in gateway_requests_in_flight
    attempts: int = 0
    committed: bool = False  # the response has started: no fallback, errors go in-band
    ttft: float | None = None
    usage: dict | None = None
    error: str | None = None
    failures: list[str] = field(default_factory=list)
    route: Any = None  # the Route, once resolved
    admitted: Any = None  # limits.Admitted, once the request is admitted
    limit_headers: dict = field(default_factory=dict)  # x-ratelimit-*, on every answer
    tallies: list = field(default_factory=list)  # tally.Tally of each stream the client got
    # The started stream's own way to end with an error (its adapter's: a Responses stream
    # numbers its events on); None, or a None from it: the surface's stream_error.
    stream_error: Any = None
    messages: Any = None  # the prompt, kept only when server.log_prompts asks for it
    # A stateful surface's: awaited with the final object once the answer is whole, before
    # its last byte is sent (so the next turn finds it, on any replica).
    keep: Any = None
