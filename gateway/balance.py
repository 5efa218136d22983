"""Load balancing within a group: which of the available targets takes the next attempt.

- weighted: smooth weighted round robin (nginx's), an exact split by weight rather
  than a random one, and never the same target twice in a row when others weigh as much.
- least-busy: the fewest requests in flight from this gateway.
- latency: the lowest moving average of time to first byte; a target never
  measured goes first, so every target gets measured.
- vllm-load: the lowest load read from the server's /metrics (running, waiting,
  KV-cache use), plus what this gateway sent since that reading, so requests do
  not all pile onto one replica between readings.

Ties go to the smooth round robin, so equal targets share the work.
"""

from __future__ import annotations

from gateway.config import Group, Target
from gateway.health import Health


def pick(group: Group, group_key: str, candidates: list[Target], health: Health) -> Target:
    """`group_key` names the group across reloads (route alias and position)."""
    if len(candidates) == 1:
        return candidates[0]
    strategy = group.strategy
    if strategy == "least-busy":
        candidates = _lowest(candidates, lambda t: health.state(t.key).in_flight)
    elif strategy == "latency":
        candidates = _lowest(candidates, lambda t: _ttfb(health, t))
    elif strategy == "vllm-load":
        candidates = _lowest(candidates, lambda t: _load(health, t))
    return _round_robin(group_key, candidates, health.round_robin)


def _lowest(candidates: list[Target], score) -> list[Target]:
    scores = [score(t) for t in candidates]
    best = min(scores)
    return [t for t, s in zip(candidates, scores, strict=True) if s == best]


def _ttfb(health: Health, target: Target) -> float:
    ewma = health.state(target.key).ewma_ttfb
    return -1.0 if ewma is None else ewma


def _load(health: Health, target: Target) -> float:
    state = health.state(target.key)
    if state.load is None:  # no reading yet: judge by what this gateway has in flight
        return float(state.in_flight)
    return state.load.score(state.sent_since_load)


def _round_robin(group_key: str, candidates: list[Target], current: dict) -> Target:
    """Smooth weighted round robin over the candidates; `current` holds the running weights."""
    if len(candidates) == 1:
        return candidates[0]
    total = 0.0
    best: Target | None = None
    best_weight = 0.0
    for target in candidates:
        key = (group_key, target.key)
        weight = current.get(key, 0.0) + target.weight
        current[key] = weight
        total += target.weight
        if best is None or weight > best_weight:
            best, best_weight = target, weight
    current[(group_key, best.key)] -= total
    return best
