"""Plan (gateway/core/route.py): which target a request tries next, when it waits and when it stops.

In process, with the real health state the relay keeps; the same through a real gateway
and real upstreams: tests/core/test_routing.py.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from gateway.config import Breaker, Config, Route
from gateway.core.health import Health
from gateway.core.route import Plan

PROVIDERS = """
    providers:
      a: {profile: demo}
      b: {profile: demo}
      c: {profile: demo}
      d: {profile: demo}
"""


def tiered(retry: str = "{}") -> str:
    """`chat` in two groups: a and b balanced, then c as the fallback."""
    return PROVIDERS + f"""
    models:
      chat:
        retry: {retry}
        groups:
          - targets: [{{provider: a, model: m}}, {{provider: b, model: m}}]
          - targets: [{{provider: c, model: m}}]
"""


@pytest.fixture
def tiers(compile_routes) -> Config:
    return compile_routes(tiered())


def chat(config: Config) -> Route:
    return config.routes["chat"]


def names(plan: Plan) -> list[str]:
    """Every target the plan hands out, in order, until it has none."""
    out = []
    while (target := plan.next()) is not None:
        out.append(target.provider.name)
    return out


def take_out(health: Health, *keys: str) -> None:
    """Open these targets' breakers for 30 s, as failures the relay saw would."""
    for key in keys:
        health.state(key).probe_failed(Breaker(failures=5, window=30, cooldown=30),
                                       time.monotonic())


def alone(retry: str) -> str:
    """`chat` served by a alone."""
    return PROVIDERS + f"""
    models:
      chat:
        retry: {retry}
        targets: [{{provider: a, model: m}}]
"""


def test_groups_are_tried_in_order_each_target_once(tiers):
    plan = Plan(chat(tiers), Health())

    first, second = plan.next(), plan.next()
    assert {first.provider.name, second.provider.name} == {"a", "b"} and plan.group == 0
    assert plan.next().provider.name == "c" and plan.group == 1
    assert plan.next() is None  # every target tried: 3 attempts, the default for 3 targets
    assert plan.attempts == chat(tiers).retry.attempts == 3


def test_the_next_group_is_the_fallback_when_a_groups_targets_are_unavailable(tiers):
    health = Health()
    take_out(health, "a/m", "b/m")

    plan = Plan(chat(tiers), health)

    assert names(plan) == ["c"] and plan.group == 1


def test_a_target_resting_after_a_429_is_skipped(tiers):
    health = Health()
    health.state("a/m").rest(5.0, time.monotonic())

    assert names(Plan(chat(tiers), health)) == ["b", "c"]


def test_retry_attempts_bounds_the_attempts_of_a_request(compile_routes):
    route = chat(compile_routes(tiered("{attempts: 2}")))
    plan = Plan(route, Health())

    assert len(names(plan)) == 2  # the fallback group is never reached
    assert plan.group == 0
    assert plan.backoff() is None  # no attempts left: the request stops


def test_backoff_doubles_up_to_max_backoff_between_rounds(compile_routes):
    route = chat(compile_routes(alone("{attempts: 6, backoff: 0.1, max_backoff: 0.5}")))
    plan = Plan(route, Health())

    waits = []
    while True:
        assert plan.next().provider.name == "a"
        assert plan.next() is None  # tried in this round
        wait = plan.backoff()
        if wait is None:
            break
        waits.append(wait)

    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]  # then the sixth attempt was the last
    assert plan.attempts == 6


def test_backoff_is_none_when_no_target_is_available(compile_routes):
    health = Health()
    plan = Plan(chat(compile_routes(alone("{attempts: 3}"))), health)
    assert plan.next().provider.name == "a"
    take_out(health, "a/m")  # the attempt failed and opened the breaker

    assert plan.next() is None
    assert plan.backoff() is None  # waiting would not help: nothing to try after it


def test_a_request_that_finds_every_target_out_does_not_wait(compile_routes):
    health = Health()
    take_out(health, "a/m")
    plan = Plan(chat(compile_routes(alone("{attempts: 3}"))), health)

    assert plan.next() is None and plan.backoff() is None


def test_after_a_context_overflow_only_targets_declaring_a_larger_context_remain(compile_routes):
    route = chat(compile_routes(PROVIDERS + """
    models:
      chat:
        targets:
          - {provider: a, model: m, context_window: 8000}
          - {provider: b, model: m}
          - {provider: c, model: m, context_window: 8000}
          - {provider: d, model: m, context_window: 32000}
"""))
    plan = Plan(route, Health())
    small = plan.next()
    assert small.provider.name == "a"

    assert plan.context_overflow(small)  # d declares more than a's 8000
    largest = plan.next()
    assert largest.provider.name == "d"  # b declares nothing, c no more than a

    assert not plan.context_overflow(largest)  # none larger: the upstream's error is relayed
    assert plan.next() is None


def test_ready_in_is_the_soonest_a_target_may_be_tried_again(tiers):
    health = Health()
    plan = Plan(chat(tiers), health)
    assert plan.ready_in() == 0.0

    take_out(health, "a/m", "b/m", "c/m")
    assert 29 < plan.ready_in() <= 30  # the breakers' cooldown
    health.state("c/m").rest(5.0, time.monotonic())
    assert 29 < plan.ready_in() <= 30  # resting does not shorten a cooldown
    health.state("b/m").probe_passed()  # half-open: a trial request may go now
    assert plan.ready_in() == 0.0


def test_the_groups_strategy_chooses_among_the_candidates(compile_routes):
    route = chat(compile_routes(PROVIDERS + """
    models:
      chat:
        groups:
          - strategy: weighted
            targets: [{provider: a, model: m, weight: 3}, {provider: b, model: m, weight: 1}]
"""))
    health = Health()  # shared by every request, as in the gateway

    first = Counter(Plan(route, health).next().provider.name for _ in range(8))

    assert first == {"a": 6, "b": 2}  # an exact split by weight


def test_only_available_targets_are_candidates_of_the_strategy(compile_routes):
    route = chat(compile_routes(PROVIDERS + """
    models:
      chat:
        groups:
          - strategy: least-busy
            targets: [{provider: a, model: m}, {provider: b, model: m}, {provider: c, model: m}]
"""))
    health = Health()
    health.state("a/m").begin()  # a has a request in flight
    take_out(health, "b/m")  # b is idle, but out

    assert [Plan(route, health).next().provider.name for _ in range(3)] == ["c"] * 3
