"""The circuit breaker's half-open trial, on one target's state."""

from __future__ import annotations

from gateway.config import Breaker
from gateway.core.health import CLOSED, HALF_OPEN, TargetState

BREAKER = Breaker(failures=1, window=30, cooldown=5)


def half_open() -> TargetState:
    state = TargetState("p/m")
    state.end(state.begin())
    state.failed(BREAKER, now=100)
    assert not state.available(now=101)  # open
    assert state.available(now=106) and state.state == HALF_OPEN
    return state


def test_one_trial_at_a_time():
    state = half_open()
    trial = state.begin()
    assert not state.available(now=106)

    state.end(trial)
    state.succeeded(ttfb=0.1)

    assert state.state == CLOSED and state.available(now=106)


def test_a_trial_that_ends_without_a_verdict_frees_the_slot():
    """The client left, or the target answered 429 or a 4xx: the next request is the trial."""
    state = half_open()

    state.end(state.begin())

    assert state.state == HALF_OPEN and state.available(now=107)


def test_an_older_attempt_ending_does_not_free_the_trial():
    state = TargetState("p/m")
    older = state.begin()  # sent while the breaker was closed
    state.failed(BREAKER, now=100)
    assert state.available(now=106)
    trial = state.begin()

    state.end(older)

    assert not state.available(now=106)
    state.end(trial)
    assert state.available(now=106)
