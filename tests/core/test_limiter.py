"""Admit (gateway/core/limits.py): which limits a request is checked against, what it reserves,
and how a refusal reads. In process, on the embedded store; the same against a real Redis
and through a real gateway: tests/core/test_limits.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from gateway.apis.chat.surface import CHAT
from gateway.config import Config, digest_key
from gateway.core.auth import MASTER, Principal
from gateway.core.errors import RateLimited, ServiceUnavailable, Unauthorized
from gateway.core.keys import KeyRing
from gateway.core.limits import Admitted, Limiter
from gateway.core.recorder import Recorder
from gateway.store import MemoryStore
from gateway.store.base import KeyRecord
from gateway.store.redis import RedisStore
from tests.gateway_process import free_port

# 400 characters are 100 tokens, and each message counts 4 more.
PROMPT_TOKENS = 104
ROUTES = """
    providers:
      demo: {profile: demo}
    models:
      chat: {targets: [{provider: demo, model: demo}]}
      other: {targets: [{provider: demo, model: demo}]}
      priced:
        price: {input: 2.0, output: 10.0}  # dollars per million tokens
        targets: [{provider: demo, model: demo}]
"""


def request(model: str = "chat", **fields) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "x" * 400}], **fields}


def team(config: Config) -> Principal:
    """The key routes.yaml declares as `team`."""
    record = config.keys[digest_key("sk-team-secret-0001")]
    return Principal(record.name, record)


def with_team(limits: str, defaults: str = "{}", store: str = "{}") -> str:
    return ROUTES + f"""
    store: {store}
    limits: {defaults}
    keys:
      team: {{key: sk-team-secret-0001, limits: {limits}}}
"""


def admit(limiter: Limiter, who: Principal, payload: dict, request_id: str = "r1") -> Admitted:
    route = limiter.config.routes[payload["model"]]
    return asyncio.run(limiter.admit(who, route, CHAT, payload, request_id))


def limiter_on(config: Config, store=None, recorder=None) -> Limiter:
    return Limiter(config, store or MemoryStore(), MemoryStore(), recorder=recorder)


def unreachable_store() -> RedisStore:
    """A real Redis client pointed at a port nobody listens on: every call fails, quickly."""
    return RedisStore(f"redis://127.0.0.1:{free_port()}", timeout=0.2)


def limits_checked(admitted: Admitted) -> dict[tuple[str, str], float]:
    return {(c.scope, c.name): c.limit for c in admitted.checks}


def test_the_master_key_has_no_limits(compile_routes):
    store = MemoryStore()
    limiter = limiter_on(compile_routes(with_team("{}", defaults="{requests_per_minute: 1}")),
                         store)

    for number in range(3):
        admitted = admit(limiter, MASTER, request(), f"r{number}")
        assert (admitted.key_id, admitted.checks, admitted.headers) == ("master", (), {})

    assert store.tats == {}  # nothing reserved: the store was never asked


def test_a_key_with_no_limits_reserves_nothing_and_needs_no_store(compile_routes):
    config = compile_routes(with_team("{}", store="{on_failure: fail-closed}"))

    admitted = admit(limiter_on(config, unreachable_store()), team(config), request())

    assert admitted.key_id == "cfg-team"
    assert admitted.checks == () and admitted.headers == {}
    assert admitted.prompt_estimate == PROMPT_TOKENS


def test_a_keys_limits_replace_the_defaults_field_by_field(compile_routes):
    config = compile_routes(with_team(
        "{tokens_per_minute: 5000}",
        defaults="{requests_per_minute: 600, tokens_per_minute: 200000, in_flight: 20}"))

    admitted = admit(limiter_on(config), team(config), request())

    assert limits_checked(admitted) == {("", "requests"): 600, ("", "tokens"): 5000,
                                        ("", "in_flight"): 20}


def test_default_per_model_limits_apply_to_every_key_field_by_field(compile_routes):
    config = compile_routes(with_team("{models: {chat: {in_flight: 2}}}",
                                      defaults="{models: {chat: {requests_per_minute: 5}}}"))

    admitted = admit(limiter_on(config), team(config), request("chat"))

    assert limits_checked(admitted) == {("chat", "requests"): 5, ("chat", "in_flight"): 2}


def test_a_keys_changed_limits_apply_at_its_next_request(compile_routes):
    config = compile_routes(with_team("{requests_per_minute: 10}"))
    limiter = limiter_on(config)
    before = team(config)
    assert limits_checked(admit(limiter, before, request(), "r1")) == {("", "requests"): 10}

    # An update through the admin API makes a new record for the same key id.
    after = Principal(before.name, replace(before.key, limits={"requests_per_minute": 20}))

    assert limits_checked(admit(limiter, after, request(), "r2")) == {("", "requests"): 20}


def test_per_model_limits_within_a_key_count_that_model_alone(compile_routes):
    config = compile_routes(with_team("{requests_per_minute: 100, "
                                      "models: {chat: {requests_per_minute: 1}}}"))
    limiter = limiter_on(config)

    first = admit(limiter, team(config), request("chat"), "r1")
    assert limits_checked(first) == {("", "requests"): 100, ("chat", "requests"): 1}

    with pytest.raises(RateLimited) as refused:
        admit(limiter, team(config), request("chat"), "r2")
    assert "requests per minute for model 'chat'" in refused.value.message

    other = admit(limiter, team(config), request("other"), "r3")  # the key's own limit has room
    assert limits_checked(other) == {("", "requests"): 100}


@pytest.mark.parametrize(("fields", "completion"), [
    ({"max_completion_tokens": 200, "max_tokens": 50}, 200),
    ({"max_tokens": 50}, 50),
    ({}, 300),  # limits.completion_estimate
    ({"max_tokens": 50, "n": 3}, 150),  # each of the n answers may be that long
])
def test_a_request_reserves_its_prompt_and_the_longest_answer_it_allows(compile_routes, fields,
                                                                      completion):
    config = compile_routes(with_team("{tokens_per_minute: 100000}",
                                      defaults="{completion_estimate: 300}"))

    admitted = admit(limiter_on(config), team(config), request(**fields))

    (tokens,) = admitted.checks
    assert tokens.name == "tokens" and tokens.cost == PROMPT_TOKENS + completion


def test_a_request_larger_than_a_tokens_limit_is_refused_before_the_store_is_asked(
        compile_routes):
    # The store is unreachable and fail-closed, yet the answer is the 429, not a 503.
    config = compile_routes(with_team("{tokens_per_day: 1000}"))

    with pytest.raises(RateLimited) as refused:
        admit(limiter_on(config, unreachable_store()), team(config), request(max_tokens=5000))

    assert refused.value.status == 429 and refused.value.code == "request_too_large"
    assert refused.value.message.startswith(
        f"Request too large for tokens per day: limit 1000, requested {PROMPT_TOKENS + 5000}.")


def test_a_refusal_is_a_429_with_retry_after_and_the_rate_limit_headers(compile_routes):
    config = compile_routes(with_team("{requests_per_minute: 2, tokens_per_minute: 100000}"))
    limiter = limiter_on(config)
    admit(limiter, team(config), request(max_tokens=100), "r1")
    second = admit(limiter, team(config), request(max_tokens=100), "r2")
    assert second.headers["x-ratelimit-remaining-requests"] == "0"

    with pytest.raises(RateLimited) as refused:
        admit(limiter, team(config), request(max_tokens=100), "r3")

    error = refused.value
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.message.startswith("Rate limit reached for requests per minute: limit 2.")
    assert 1 <= int(error.headers["retry-after"]) <= 30  # the next of 2 a minute: in 30 s
    assert error.headers["x-ratelimit-limit-requests"] == "2"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"


def test_rate_limit_headers_are_only_for_the_keys_own_per_minute_limits(compile_routes):
    config = compile_routes(with_team(
        "{requests_per_minute: 10, tokens_per_minute: 100000, tokens_per_day: 100000, "
        "in_flight: 5, models: {chat: {requests_per_minute: 3}}}"))

    admitted = admit(limiter_on(config), team(config), request(max_tokens=100))

    # Not the per-model limit, the day's tokens or the in-flight slots: OpenAI has no such headers.
    assert sorted(admitted.headers) == [
        "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
    assert admitted.headers["x-ratelimit-limit-requests"] == "10"  # the key's, not the model's 3
    assert admitted.headers["x-ratelimit-remaining-requests"] == "9"
    assert admitted.headers["x-ratelimit-reset-requests"] == "6s"
    assert admitted.headers["x-ratelimit-limit-tokens"] == "100000"


def test_an_unreachable_store_fails_closed_with_a_503(compile_routes):
    config = compile_routes(with_team("{requests_per_minute: 10}", store="{on_failure: fail-closed}"))

    async def scenario():
        store = unreachable_store()
        try:
            return await limiter_on(config, store).admit(team(config), config.routes["chat"],
                                                         CHAT, request(), "r1")
        finally:
            await store.close()

    with pytest.raises(ServiceUnavailable) as refused:
        asyncio.run(scenario())
    assert refused.value.status == 503 and refused.value.code == "store_unavailable"
    assert refused.value.headers == {"retry-after": "1"}


def test_an_unreachable_store_fails_open_onto_this_processes_own_counters(compile_routes):
    config = compile_routes(with_team("{requests_per_minute: 1, in_flight: 5}",
                                      store="{on_failure: fail-open}"))

    async def scenario():
        store = unreachable_store()
        recorder = Recorder(store)
        limiter = limiter_on(config, store, recorder)
        try:
            first = await limiter.admit(team(config), config.routes["chat"], CHAT, request(), "r1")
            with pytest.raises(RateLimited):  # the local counters still hold the limit
                await limiter.admit(team(config), config.routes["chat"], CHAT, request(), "r2")
        finally:
            await store.close()
        return first, recorder

    first, recorder = asyncio.run(scenario())

    assert first.local and first.headers["x-ratelimit-remaining-requests"] == "0"
    # The store may have taken the in-flight slots before its answer was lost: given back.
    assert recorder.doubtful == [("cfg-team", "", "r1"), ("cfg-team", "", "r2")]


def test_a_key_revoked_in_the_store_is_a_401_and_forgotten_by_the_key_ring(compile_routes):
    config = compile_routes(ROUTES)
    store = MemoryStore()
    key = KeyRecord(id="key_1", name="made-by-admin", digest=digest_key("sk-gw-made-by-admin"),
                    prefix="sk-gw-made", limits={"requests_per_minute": 10})
    keyring = KeyRing(config, store)

    async def scenario():
        await store.create_key(key)
        cached = await keyring.lookup(key.digest)
        # Revoked on another replica whose message this process has not heard yet:
        await store.update_key(replace(key, revoked_at=time.time()))
        limiter = Limiter(config, store, MemoryStore(), keyring)
        await limiter.admit(Principal(cached.name, cached), config.routes["chat"],
                            CHAT, request(), "r1")

    with pytest.raises(Unauthorized) as refused:
        asyncio.run(scenario())

    assert refused.value.status == 401 and refused.value.code == "revoked_api_key"
    assert key.digest not in keyring.known  # the next request reads the key again


def test_the_monthly_budget_is_reserved_at_the_models_price(compile_routes):
    config = compile_routes(with_team("{budget_per_month: 0.01}"))
    limiter = limiter_on(config)

    (budget,) = admit(limiter, team(config), request("priced", max_tokens=500)).checks
    assert budget.name == "budget"
    assert budget.cost == pytest.approx((PROMPT_TOKENS * 2.0 + 500 * 10.0) / 1e6)

    (unpriced,) = admit(limiter, team(config), request("chat", max_tokens=500), "r2").checks
    assert unpriced.cost == 0.0  # a model without a price costs nothing against it

    with pytest.raises(RateLimited) as refused:
        admit(limiter, team(config), request("priced", max_tokens=2000), "r3")
    assert refused.value.code == "request_too_large"
    assert "budget per month (dollars): limit 0.01, requested 0.02" in refused.value.message
