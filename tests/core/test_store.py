"""One test suite for every store: in memory, Redis 6.2, Valkey 8, and a Redis Cluster
(real servers started here, no fakes). So the embedded default behaves exactly like production.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from gateway.store import MemoryStore
from gateway.store.base import (
    Admission,
    Check,
    KeyConflict,
    KeyRecord,
    Settlement,
    StoreUnavailable,
)
from gateway.store.redis import RedisStore
from tests.delay_proxy import LoadingProxy
from tests.redis_server import RedisServer


def run(coroutine):
    return asyncio.run(coroutine)


def key(name="team-a", key_id="k1", **extra) -> KeyRecord:
    return KeyRecord(id=key_id, name=name, digest="d-" + key_id, prefix="sk-gw-abc",
                     created_at=time.time(), **extra)


def admit(store, *checks, request_id="r1", key_id="k1", lease_ttl=60.0):
    return store.admit(Admission(key_id, request_id, tuple(checks), lease_ttl), time.time())


REQUESTS = Check("requests", "rate", limit=5, cost=1, period=60)


def test_keys_round_trip(make_store):
    async def scenario():
        store = make_store()
        await store.create_key(key())
        await store.create_key(key("team-b", "k2"))
        with pytest.raises(KeyConflict):
            await store.create_key(key("team-a", "k3"))
        assert (await store.get_key("d-k1")).name == "team-a"
        assert (await store.find_key("k2")).name == "team-b"
        assert (await store.find_key("team-b")).id == "k2"
        assert await store.find_key("nobody") is None
        assert [k.id for k in await store.list_keys()] == ["k1", "k2"]

        await store.update_key(replace(key(), name="team-renamed", models=("gpt-x",)))
        renamed = await store.find_key("team-renamed")
        assert renamed.models == ("gpt-x",) and await store.find_key("team-a") is None
        with pytest.raises(KeyConflict):
            await store.update_key(replace(key(), name="team-b"))
        await store.close()

    run(scenario())


def test_requests_per_minute_has_no_burst_at_the_edge(make_store):
    async def scenario():
        store = make_store()
        verdicts = [await admit(store, REQUESTS, request_id=f"r{i}") for i in range(6)]
        assert [v.allowed for v in verdicts] == [True] * 5 + [False]
        assert [v.outcomes[0].remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
        denied = verdicts[5]
        assert denied.denied.name == "requests"
        assert 11 < denied.retry_after <= 12  # one slot frees every 12 s: no reset at a minute edge
        await store.close()

    run(scenario())


def test_token_reservation_is_reconciled_with_real_usage(make_store):
    tokens = Check("tokens", "rate", limit=100, cost=60, period=60)

    async def scenario():
        store = make_store()
        assert (await admit(store, tokens, request_id="a")).allowed
        assert not (await admit(store, tokens, request_id="b")).allowed
        await store.record([Settlement("k1", "a", "m", "2026-11-23", (tokens,),
                                       prompt_tokens=10, completion_tokens=10)], time.time())
        after = await admit(store, tokens, request_id="c")  # 20 used: 80 left for 60 more
        assert after.allowed and after.outcomes[0].remaining == 20
        await store.close()

    run(scenario())


def test_day_counter_and_dollar_budget(make_store):
    day = Check("tokens_per_day", "counter", limit=1000, cost=600, bucket="2026-11-23", ttl=3600)
    budget = Check("budget", "counter", limit=1.0, cost=0.4, bucket="2026-11", ttl=3600)

    async def scenario():
        store = make_store()
        assert (await admit(store, day, budget, request_id="a")).allowed
        refused = await admit(store, day, budget, request_id="b")
        assert not refused.allowed and refused.denied.name == "tokens_per_day"
        await store.record([Settlement("k1", "a", "m", "2026-11-23", (day, budget),
                                       prompt_tokens=50, completion_tokens=50, cost=0.1)],
                           time.time())
        again = await admit(store, replace(day, cost=800), budget, request_id="c")
        assert again.allowed
        assert again.outcomes[0].remaining == 100  # 100 used + 800 reserved
        assert again.outcomes[1].remaining == pytest.approx(0.5)  # 0.1 spent + 0.4 reserved
        await store.close()

    run(scenario())


def test_in_flight_leases_are_released_and_expire(make_store):
    lease = Check("in_flight", "lease", limit=2)

    async def scenario():
        store = make_store()
        assert (await admit(store, lease, request_id="a")).allowed
        assert (await admit(store, lease, request_id="b", lease_ttl=0.3)).allowed
        assert not (await admit(store, lease, request_id="c")).allowed
        await store.record([Settlement("k1", "a", "m", "2026-11-23", (lease,))], time.time())
        assert (await admit(store, lease, request_id="d")).allowed  # a released
        assert not (await admit(store, lease, request_id="e")).allowed
        # b was never released (its replica died): its lease runs out by itself
        deadline = time.monotonic() + 5
        while not (await admit(store, lease, request_id="f")).allowed:
            assert time.monotonic() < deadline, "an expired lease still holds its slot"
            await asyncio.sleep(0.05)
        await store.close()

    run(scenario())


def test_leases_of_running_requests_can_be_renewed(make_store):
    lease = Check("in_flight", "lease", limit=1)

    async def scenario():
        store = make_store()
        ttl = 0.5
        assert (await admit(store, lease, request_id="long", lease_ttl=ttl)).allowed
        admitted = time.monotonic()
        # Renewed every 50 ms until it has lived 2.5 times its TTL: the slot stays taken
        # throughout, which only the renewals can explain.
        while time.monotonic() - admitted < 2.5 * ttl:
            await store.renew([("k1", "", "long")], ttl, time.time())
            assert not (await admit(store, lease, request_id="other")).allowed
            await asyncio.sleep(0.05)
        assert time.monotonic() - admitted >= 2.5 * ttl
        await store.close()

    run(scenario())


def test_a_lease_whose_admission_answer_was_lost_can_be_given_back(make_store):
    lease = Check("in_flight", "lease", limit=1)

    async def scenario():
        store = make_store()
        assert (await admit(store, lease, request_id="lost")).allowed
        await store.release([("k1", "", "never-admitted"), ("k1", "", "lost")])
        assert (await admit(store, lease, request_id="next")).allowed
        await store.release([("k1", "", "lost")])  # again: nothing changes
        assert not (await admit(store, lease, request_id="other")).allowed
        await store.close()

    run(scenario())


def test_admission_is_all_or_nothing(make_store):
    lease = Check("in_flight", "lease", limit=1)

    async def scenario():
        store = make_store()
        assert (await admit(store, REQUESTS, lease, request_id="a")).allowed
        refused = await admit(store, REQUESTS, lease, request_id="b")
        assert not refused.allowed and refused.denied.name == "in_flight"
        # the refused request took no request slot: 3 remain after the next, not 2
        ok = await admit(store, REQUESTS, request_id="c")
        assert ok.outcomes[0].remaining == 3
        await store.close()

    run(scenario())


def test_revoked_and_expired_keys_are_refused_by_admission(make_store):
    async def scenario():
        store = make_store()
        await store.create_key(key())
        assert (await admit(store, REQUESTS)).allowed
        await store.update_key(replace(key(), revoked_at=time.time()))
        assert (await admit(store, REQUESTS)).key_invalid
        await store.create_key(key("old", "k9", expires_at=time.time() - 1))
        assert (await admit(store, REQUESTS, key_id="k9")).key_invalid
        await store.close()

    run(scenario())


def test_usage_is_recorded_per_key_day_and_model(make_store):
    async def scenario():
        store = make_store()
        day, other = "2026-11-23", "2026-11-24"
        # Numbered as the recorder numbers them: a client-side retry of a settlement whose
        # reply was late (a busy machine) is then applied once.
        await store.record([
            Settlement("k1", "a", "gpt", day, (), prompt_tokens=10, completion_tokens=5,
                       reasoning_tokens=2, cost=0.000125, number=1),
            Settlement("k1", "b", "gpt", day, (), prompt_tokens=1, completion_tokens=1, error=True,
                       number=2),
            Settlement("k1", "c", "llama", other, (), prompt_tokens=7, completion_tokens=3,
                       number=3),
            Settlement("k2", "d", "gpt", day, (), prompt_tokens=4, completion_tokens=4, number=4),
        ], time.time())
        rows = {(r.key_id, r.day, r.model): r for r in await store.usage(day, other)}
        gpt = rows[("k1", day, "gpt")]
        assert (gpt.requests, gpt.prompt_tokens, gpt.completion_tokens, gpt.reasoning_tokens,
                gpt.errors) == (2, 11, 6, 2, 1)
        assert gpt.cost == pytest.approx(0.000125)
        assert rows[("k1", other, "llama")].requests == 1 and rows[("k2", day, "gpt")].requests == 1
        assert [r.day for r in await store.usage(other, other)] == [other]
        await store.close()

    run(scenario())


def test_every_usage_record_of_a_batch_expires_after_its_retention(servers):
    """The settle script sets each usage hash's expiry once a batch: every hash of the batch
    gets one, and the usage index of each key too."""
    servers["redis"].flush()
    day, hour = "2026-11-23", 3600.0

    async def scenario():
        store = RedisStore(servers["redis"].url)
        await store.record([Settlement(key_id, f"r{i}", model, day, (), prompt_tokens=1,
                                       number=i, retention=hour)
                            for i, (key_id, model) in enumerate(
                                [("k1", "gpt"), ("k1", "gpt"), ("k1", "llama"), ("k2", "gpt")],
                                start=1)], time.time())
        for key_id, model in [("k1", "gpt"), ("k1", "llama"), ("k2", "gpt")]:
            for place in (store._k(key_id, "u", day, model), store._k(key_id, "ud")):
                assert 0 < await store.redis.pttl(place) <= hour * 1000, place
        rows = {(r.key_id, r.model): r.requests for r in await store.usage(day, day)}
        assert rows == {("k1", "gpt"): 2, ("k1", "llama"): 1, ("k2", "gpt"): 1}
        await store.close()

    run(scenario())


def test_a_retried_settlement_counts_once(make_store):
    """A batch whose write succeeded but whose reply was lost is sent again: same numbers."""
    lease = Check("in_flight", "lease", limit=5)

    async def scenario():
        store = make_store()
        await admit(store, lease, request_id="a")
        batch = [Settlement("k1", "a", "m", "2026-11-23", (lease,), prompt_tokens=3, number=1),
                 Settlement("k1", "b", "m", "2026-11-23", (), prompt_tokens=4, number=2)]
        await store.record(batch, time.time())
        await store.record(batch + [Settlement("k1", "c", "m", "2026-11-23", (), prompt_tokens=5,
                                               number=3)], time.time())
        [row] = await store.usage("2026-11-23", "2026-11-23")
        assert (row.requests, row.prompt_tokens) == (3, 12)
        await store.close()

    run(scenario())


def test_other_replicas_hear_of_key_changes(make_store):
    async def scenario():
        writer, reader = make_store(), make_store()
        heard = []
        reader.on_key_change(heard.append)
        deadline = time.monotonic() + 5
        while "listening?" not in heard:  # the subscription is live once it hears something
            assert time.monotonic() < deadline, "the key-change subscription never started"
            await writer.redis.publish(f"{writer.prefix}:events", "listening?")
            await asyncio.sleep(0.02)
        await writer.create_key(key())
        await writer.update_key(replace(key(), revoked_at=time.time()))
        deadline = time.monotonic() + 1
        while "k1" not in heard:
            assert time.monotonic() < deadline, "a key change took over a second to arrive"
            await asyncio.sleep(0.01)
        await writer.close()
        await reader.close()

    if isinstance(make_store(), MemoryStore):
        pytest.skip("one process: the memory store has no other replicas")
    run(scenario())


def test_a_dead_redis_is_reported_not_hung(servers):
    server = RedisServer("redis").start()
    store = RedisStore(server.url, timeout=0.3)
    server.kill()

    async def scenario():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await admit(store, REQUESTS)
        for call in (store.read_response("k1", "resp_1"), store.delete_response("k1", "resp_1"),
                     store.save_response("k1", "resp_1", RECORD, 60, 1024)):
            with pytest.raises(StoreUnavailable):
                await call
        assert time.monotonic() - started < 2
        assert not await store.ping()
        await store.close()

    try:
        run(scenario())
    finally:
        server.stop()


def test_a_batch_of_one_keys_settlements_is_applied_whole(make_store):
    """The recorder sends settlements in batches with rising numbers; on a cluster client
    (several connections) they must still arrive in order, or some would be skipped."""
    async def scenario():
        store = make_store()
        day = "2026-11-23"
        await store.record([Settlement("k1", f"r{i}", "m", day, (), prompt_tokens=1, number=i)
                            for i in range(1, 51)], time.time())
        (row,) = await store.usage(day, day)
        assert (row.requests, row.prompt_tokens) == (50, 50)
        await store.close()

    run(scenario())


def test_a_refused_batch_is_applied_whole_when_sent_again(servers):
    """Redis that is loading (or full) refuses the batch's call; the recorder sends the
    whole batch again, and not one settlement may then be taken for already applied."""
    servers["redis"].flush()
    proxy = LoadingProxy(servers["redis"].port).start()
    day = "2026-11-23"

    async def scenario():
        store = RedisStore(proxy.url)
        await store.record([Settlement("k0", "r0", "m", day, (), number=1)], time.time())
        batch = [Settlement("k1", f"r{i}", "m", day, (), prompt_tokens=1, number=i + 1)
                 for i in range(1, 5)]
        proxy.refuse_scripts = 1
        with pytest.raises(StoreUnavailable):
            await store.record(batch, time.time())
        assert proxy.refuse_scripts == 0
        await store.record(batch, time.time())  # as the recorder does, until it goes through
        rows = {row.key_id: row for row in await store.usage(day, day)}
        assert (rows["k1"].requests, rows["k1"].prompt_tokens) == (4, 4)
        await store.close()

    try:
        run(scenario())
    finally:
        proxy.stop()


@pytest.mark.parametrize("kind", ["redis", "cluster"])
def test_calls_beyond_the_pool_wait_for_a_connection(servers, kind):
    """More concurrent calls than `pool_size` connections: they wait their turn (within the
    store timeout) instead of failing at once, as redis-py's own pools make them."""
    servers[kind].flush()

    async def scenario():
        store = RedisStore(servers[kind].url, cluster=kind == "cluster", pool_size=2)
        await store.create_key(key())
        found = await asyncio.gather(*(store.find_key("team-a") for _ in range(200)),
                                     return_exceptions=True)
        await store.close()
        return found

    found = run(scenario())
    assert [getattr(f, "id", f) for f in found] == ["k1"] * 200


# Stored responses (the Responses API's conversation state): opaque records, owner-only.

RECORD = '{"response": {"id": "resp_1", "output": "h\u00e9llo \u2713"}}'.encode()


def test_a_stored_response_is_read_and_deleted_by_its_owner_only(make_store):
    async def scenario():
        store = make_store()
        assert await store.save_response("k1", "resp_1", RECORD, 60, 1024)
        assert await store.read_response("k1", "resp_1") == RECORD
        assert await store.read_response("k2", "resp_1") is None  # another key: nothing
        assert await store.read_response("k1", "resp_2") is None
        assert not await store.delete_response("k2", "resp_1")
        assert await store.read_response("k1", "resp_1") == RECORD  # untouched by k2
        assert await store.delete_response("k1", "resp_1")
        assert await store.read_response("k1", "resp_1") is None
        assert not await store.delete_response("k1", "resp_1")
        await store.close()

    run(scenario())


def test_a_response_id_cannot_reach_into_another_keys_records(make_store):
    """The owner follows the id where a record is kept: an id with the separator in it would
    name another key's record (`resp_1` of key `b:a` is where `resp_1:b` of key `a` would be)."""
    async def scenario():
        store = make_store()
        assert await store.save_response("b:a", "resp_1", RECORD, 60, 1024)
        assert await store.read_response("a", "resp_1:b") is None
        assert not await store.delete_response("a", "resp_1:b")
        assert await store.read_response("b:a", "resp_1") == RECORD
        with pytest.raises(ValueError):
            await store.save_response("a", "resp_1:b", RECORD, 60, 1024)
        await store.close()

    run(scenario())


def test_a_stored_response_expires_after_its_ttl(make_store):
    async def scenario():
        store = make_store()
        if isinstance(store, MemoryStore):  # its clock is the test's
            clock = [1000.0]
            store = MemoryStore(clock=lambda: clock[0])
            assert await store.save_response("k1", "resp_1", RECORD, 30 * 86400, 1024)
            clock[0] += 30 * 86400 - 1
            assert await store.read_response("k1", "resp_1") == RECORD
            clock[0] += 1
            assert await store.read_response("k1", "resp_1") is None
            assert not await store.delete_response("k1", "resp_1")
            return
        assert await store.save_response("k1", "resp_1", RECORD, 1.0, 1024)
        assert await store.save_response("k1", "resp_2", RECORD, 60, 1024)
        started = time.monotonic()
        assert await store.read_response("k1", "resp_1") == RECORD
        while await store.read_response("k1", "resp_1") is not None:
            assert time.monotonic() - started < 5, "a record with a 1 s TTL outlived it"
            await asyncio.sleep(0.05)
        assert time.monotonic() - started > 0.5  # gone because it expired, not at once
        assert await store.read_response("k1", "resp_2") == RECORD
        await store.close()

    run(scenario())


def test_a_response_over_the_size_cap_is_not_stored(make_store):
    async def scenario():
        store = make_store()
        assert await store.save_response("k1", "resp_1", RECORD, 60, len(RECORD))
        assert not await store.save_response("k1", "resp_2", RECORD, 60, len(RECORD) - 1)
        assert await store.read_response("k1", "resp_2") is None
        assert await store.read_response("k1", "resp_1") == RECORD
        await store.close()

    run(scenario())


def test_the_memory_store_keeps_its_newest_responses_within_its_room():
    async def scenario():
        store = MemoryStore(response_bytes=3 * len(RECORD))
        for i in range(5):
            assert await store.save_response("k1", f"resp_{i}", RECORD, 60, 1024)
        kept = [i for i in range(5) if await store.read_response("k1", f"resp_{i}")]
        assert kept == [2, 3, 4]
        assert store.response_bytes == 3 * len(RECORD)
        assert not await store.save_response("k1", "big", RECORD * 4, 60, 1024)  # no room ever

    run(scenario())


def test_the_memory_store_lets_expired_responses_go():
    async def scenario():
        clock = [0.0]
        store = MemoryStore(clock=lambda: clock[0])
        for i in range(3):
            await store.save_response("k1", f"resp_{i}", RECORD, 10, 1024)
            clock[0] += 4
        assert len(store.responses) == 3
        await store.save_response("k1", "resp_3", RECORD, 10, 1024)  # at 12: resp_0 expired
        assert [r for _, r in store.responses] == ["resp_1", "resp_2", "resp_3"]
        assert store.response_bytes == 3 * len(RECORD)

    run(scenario())


def test_the_memory_store_keeps_a_record_in_the_room_it_takes():
    """orjson writes a record into a buffer several times its size, and a bytes object keeps
    its buffer: kept as it came, a stored response of 1 KiB held about 8 KiB for its TTL."""
    import tracemalloc

    import orjson

    async def save_many(store: MemoryStore) -> None:
        for i in range(200):
            record = orjson.dumps({"context": [{"text": "x" * 1000}], "n": i})
            await store.save_response("k", f"resp_{i}", record, 3600, 2**20)

    store = MemoryStore()
    tracemalloc.start()
    try:
        asyncio.run(save_many(store))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held / 200 < 2 * 1030, held / 200  # the record, its key and its place in the store


def test_keys_come_in_pages_by_name(make_store):
    async def scenario():
        store = make_store()
        for n in (5, 1, 4, 2, 3):
            await store.create_key(key(f"team-{n}", f"k{n}",
                                       revoked_at=time.time() if n == 4 else None))
        page, more = await store.key_page("", 2, revoked=False)
        assert [k.name for k in page] == ["team-1", "team-2"] and more
        page, more = await store.key_page("team-2", 2, revoked=False)
        assert [k.name for k in page] == ["team-3", "team-5"] and not more
        page, more = await store.key_page("team-2", 2, revoked=True)
        assert [k.name for k in page] == ["team-3", "team-4"] and more
        renamed = replace(page[0], name="team-9")
        await store.update_key(renamed)
        page, _ = await store.key_page("team-4", 10, revoked=True)
        assert [k.name for k in page] == ["team-5", "team-9"]
        await store.close()

    run(scenario())


def test_key_names_are_read_in_one_go_and_follow_renames(make_store):
    """Usage by key labels every key: the names come from one index, rebuilt once from the
    records where keys were made before it."""
    async def scenario():
        store = make_store()
        for n in (1, 2, 3):
            await store.create_key(key(f"team-{n}", f"k{n}"))
        await store.update_key(replace(await store.find_key("k2"), name="renamed"))
        assert await store.key_names() == {"k1": "team-1", "k2": "renamed", "k3": "team-3"}
        if isinstance(store, RedisStore):  # as an earlier version left it: no index
            await store.redis.delete("gw:names")
            assert await store.key_names() == {"k1": "team-1", "k2": "renamed", "k3": "team-3"}
            assert await store.redis.hlen("gw:names") == 3
        await store.close()

    run(scenario())
