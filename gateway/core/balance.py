"""Load balancing within a group: which of the available targets takes the next attempt.

- weighted: smooth weighted round robin (nginx's), an exact split by weight rather
  than a random one, and never the same target twice in a row when others weigh as much.
- least-busy: the fewest requests in flight from this gateway.
- latency: the lowest moving average of time to first byte; a target never
  measured goes first, so every target gets measured.
- vllm-load: the lowest load read from the server's /metrics (running, waiting,
  KV-cache use, weighed as its profile's `load_metrics` say), plus what this
  gateway sent since that reading, so requests do not all pile onto one replica
  between readings.

Ties go to the smooth round robin, so equal targets share the work.

A group with `affinity` first looks for the session's own target: requests
with the same `user` (or the same long prompt prefix) hash to the same target
(rendezvous hashing, so every gateway process agrees and a replica that leaves
moves only its own sessions), and go there unless it is more than
`max_extra_load` busier than the least busy candidate. vLLM then finds the
conversation's prefix in its cache instead of computing it again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from hashlib import blake2b

from gateway.config import Affinity, Group, Target
from gateway.core.health import Health

Session = Callable[[Affinity], "bytes | None"]  # a request's session key, for a group's affinity


def pick(group: Group, group_key: str, candidates: list[Target], health: Health,
         session: Session | None = None) -> Target:
    """`group_key` names the group across reloads (route alias and position); `session` gives
    the request's session key for a group with affinity (the surface knows how to find it)."""
    if len(candidates) == 1:
        return candidates[0]
    if group.affinity is not None and session is not None:
        key = session(group.affinity)
        if key is not None:
            home = _home(key, candidates)
            busy = _busy(group.strategy, health)
            if busy(home) - min(busy(t) for t in candidates) <= group.affinity.max_extra_load:
                return home
    strategy = group.strategy
    if strategy == "least-busy":
        candidates = _lowest(candidates, lambda t: health.state(t.key).in_flight)
    elif strategy == "latency":
        candidates = _lowest(candidates, lambda t: _ttfb(health, t))
    elif strategy == "vllm-load":
        candidates = _lowest(candidates, lambda t: _load(health, t))
    return _round_robin(group_key, candidates, health.round_robin)


def session_key(affinity: Affinity, user: object, texts: Iterable[str]) -> bytes | None:
    """What identifies a session: the `user` field, or the prompt's first characters (`texts`,
    in order: the messages, the prompt, the input)."""
    if affinity.by != "prefix":
        if type(user) is str and user:
            return b"u:" + user.encode()
    if affinity.by == "user":
        return None
    parts: list[str] = []
    size = 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size >= affinity.prefix_chars:
            break
    if size < affinity.min_prefix_chars:
        return None
    return b"p:" + "\x00".join(parts)[:affinity.prefix_chars].encode()


def _home(session: bytes, candidates: list[Target]) -> Target:
    """Rendezvous hashing: the candidate with the highest hash of (session, target)."""
    digest = blake2b(session, digest_size=16).digest()
    return max(candidates, key=lambda t: blake2b(t.key.encode(), digest_size=8,
                                                 key=digest).digest())


def _busy(strategy: str, health: Health):
    if strategy == "vllm-load":
        return lambda t: _load(health, t)
    return lambda t: float(health.state(t.key).in_flight)


def _lowest(candidates: list[Target], score) -> list[Target]:
    scores = [score(t) for t in candidates]
    best = min(scores)
    return [t for t, s in zip(candidates, scores, strict=True) if s == best]


def _ttfb(health: Health, target: Target) -> float:
    ewma = health.state(target.key).ewma_ttfb
    return -1.0 if ewma is None else ewma


def _load(health: Health, target: Target) -> float:
    state = health.state(target.key)
    metrics = target.provider.profile.load_metrics
    if state.load is None or metrics is None:  # no reading: judge by what is in flight from here
        return float(state.in_flight)
    return state.load.score(state.sent_since_load, metrics.weights)


def _round_robin(group_key: str, candidates: list[Target], current: dict) -> Target:
    """Smooth weighted round robin over the candidates; `current` holds the running weights."""
    if len(candidates) == 1:
        return candidates[0]
    total = 0.0
    best = candidates[0]
    best_weight = -math.inf
    for target in candidates:
        key = (group_key, target.key)
        weight = current.get(key, 0.0) + target.weight
        current[key] = weight
        total += target.weight
        if weight > best_weight:
            best, best_weight = target, weight
    current[(group_key, best.key)] -= total
    return best
