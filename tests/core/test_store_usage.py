"""The store's usage: the rows each settlement lands in, and the sums the admin pages read
instead of every key's rows (per day, per day and model, per day and month and key), on
every backend. A retried batch counts once; days from before the sums are read from rows."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.store.base import Settlement
from gateway.store.redis import RedisStore


def run(coroutine):
    return asyncio.run(coroutine)


def test_day_totals_and_last_use_come_from_the_settle_batch(make_store):
    """The console's overview reads each day's sum of every key, and its key list each
    key's last use: both written with the settlements, a retried one counted once."""
    async def scenario():
        store = make_store()
        day, other = "2026-11-23", "2026-11-24"
        batch = [Settlement("k1", "a", "gpt", day, (), prompt_tokens=10, completion_tokens=5,
                            cost=0.25, number=1),
                 Settlement("k2", "b", "gpt", day, (), prompt_tokens=1, error=True, number=1),
                 Settlement("k1", "c", "llama", other, (), completion_tokens=3, number=2)]
        await store.record(batch, 1_000_000.0)
        await store.record(batch, 1_000_500.0)  # the same batch again: its reply was lost (a
        # retry: its last use stays that of the first write)
        both = await store.totals(day, other)
        assert (both.requests, both.prompt_tokens, both.completion_tokens, both.errors) == \
            (3, 11, 8, 1)
        assert both.cost == pytest.approx(0.25)
        assert (await store.totals(other, other)).requests == 1
        assert (await store.totals("2026-11-25", "2026-12-31")).requests == 0
        assert await store.last_used(["k1", "k2", "k3"]) == {"k1": 1_000_000.0,
                                                             "k2": 1_000_000.0}
        await store.record([replace(batch[0], number=3)], 999.0)  # earlier: no step back
        assert (await store.last_used(["k1"]))["k1"] == 1_000_000.0
        await store.close()

    run(scenario())


def _summed(rows, label) -> dict:
    """The rows' amounts summed per label(row): what a sum the store keeps must equal."""
    sums: dict = {}
    for r in rows:
        total = sums.setdefault(label(r), [0, 0, 0, 0, 0, 0.0])
        for i, value in enumerate((r.requests, r.prompt_tokens, r.completion_tokens,
                                   r.reasoning_tokens, r.errors, r.cost)):
            total[i] += value
    return {k: v[:5] + [round(v[5], 6)] for k, v in sums.items()}


def _by_day_model(rows) -> dict:
    return _summed(rows, lambda r: (r.day, r.model))


def test_model_totals_are_the_keys_rows_summed_and_a_retry_counts_once(make_store):
    """/admin/usage by day and model reads the store's per-(day, model) sums, written in the
    settle batch: they equal the keys' rows summed, and a retried batch is counted once."""
    async def scenario():
        store = make_store()
        day, other = "2026-11-23", "2026-11-24"
        batch = [Settlement(f"k{n % 3}", f"r{n}", ("gpt", "llama|x")[n % 2], (day, other)[n % 4 == 0],
                            (), prompt_tokens=n, completion_tokens=2 * n, reasoning_tokens=n % 5,
                            cost=0.0000125 * n, error=n % 7 == 0, number=n + 1)
                 for n in range(40)]
        await store.record(batch[:25], time.time())
        await store.record(batch, time.time())  # the first 25 again: their reply was lost
        rows = await store.model_totals(day, other)
        assert [(r.day, r.model) for r in rows] == sorted((r.day, r.model) for r in rows)
        assert all(r.key_id == "" for r in rows)
        assert _by_day_model(rows) == _by_day_model(await store.usage(day, other))
        assert sum(r.requests for r in rows) == 40
        assert [(r.day, r.model) for r in await store.model_totals(other, other)] == [(other, "gpt")]
        assert await store.model_totals("2026-11-25", "2026-12-31") == []
        await store.close()

    run(scenario())


async def _left_by_an_earlier_version(make_store, stale) -> tuple:
    """A store with a row of k1 two days ago and one of k2 yesterday, as a version that kept
    no sums left it (on Redis, the sums `stale(old, first)` names are deleted; the memory
    store is one process: its sums began with its usage), and the three days' dates."""
    today = datetime.now(UTC).date()
    old, first, later = (str(today - timedelta(days=n)) for n in (2, 1, 0))
    earlier = make_store()
    await earlier.record([Settlement("k1", "a", "gpt", old, (), prompt_tokens=3, number=1),
                          Settlement("k2", "b", "gpt", first, (), prompt_tokens=4, number=1)],
                         time.time())
    if not isinstance(earlier, RedisStore):
        return earlier, (old, first, later)
    await earlier.close()
    store = make_store()
    await store.redis.delete(*stale(old, first))
    return store, (old, first, later)


def test_days_before_the_model_totals_are_summed_from_the_rows(make_store):
    """A Redis written by an earlier version has rows but no per-(day, model) sums: those
    days, and the day a process of this version first records (begun before it), are summed
    from the keys' rows; later days from the sums."""
    async def scenario():
        store, (old, first, later) = await _left_by_an_earlier_version(
            make_store, lambda old, first: [f"gw:{kind}:{d}" for kind in ("dm", "day")
                                            for d in (old, first)] + ["gw:dm-since"])
        await store.record([Settlement("k1", "c", "gpt", first, (), prompt_tokens=5, number=2),
                            Settlement("k1", "d", "gpt", later, (), prompt_tokens=6, number=3)],
                           time.time())
        rows = await store.model_totals(old, later)
        assert [(r.day, r.requests, r.prompt_tokens) for r in rows] == \
            [(old, 1, 3), (first, 2, 9), (later, 1, 6)]
        total = await store.totals(old, later)  # the overview's: the same days, summed
        assert (total.requests, total.prompt_tokens) == (4, 18)
        assert _by_day_model(rows) == _by_day_model(await store.usage(old, later))
        if isinstance(store, RedisStore):  # the sums are read from the day after
            assert await store.redis.get("gw:dm-since") == first
            await store.redis.delete(f"gw:dm:{later}")
            assert [r.day for r in await store.model_totals(old, later)] == [old, first]
        await store.close()

    run(scenario())


def test_usage_of_some_keys_reads_only_theirs(make_store):
    async def scenario():
        store = make_store()
        day = "2026-11-23"
        await store.record([Settlement(k, k, "gpt", day, (), prompt_tokens=1, number=1)
                            for k in ("k1", "k2", "k3")], time.time())
        assert [r.key_id for r in await store.usage(day, day, ["k3", "k1", "k1"])] == ["k1", "k3"]
        assert [r.key_id for r in await store.usage(day, day, ["nobody"])] == []
        await store.close()

    run(scenario())


def _by_key(rows) -> dict:
    return _summed(rows, lambda r: r.key_id)


def test_key_totals_are_the_keys_rows_summed_over_days_and_whole_months(make_store):
    """Usage by key reads a sum a key and month for the months a range takes whole (a year
    reads 12) and a sum a key and day around them: each range equals the rows summed per
    key, and a retried batch is counted once."""
    async def scenario():
        store = make_store()
        days = ["2026-10-31", "2026-11-01", "2026-11-15", "2026-11-30", "2026-12-01"]
        batch = [Settlement(f"k{n % 4}", f"r{n}", ("gpt", "llama|x")[n % 2], days[n % 5], (),
                            prompt_tokens=n, completion_tokens=3 * n, reasoning_tokens=n % 3,
                            cost=0.0000125 * n, error=n % 6 == 0, number=n + 1)
                 for n in range(60)]
        await store.record(batch[:30], time.time())
        await store.record(batch, time.time())  # the first 30 again: their reply was lost
        for since, until in [(days[0], days[-1]),  # a day, November whole, a day
                             ("2026-11-01", "2026-11-30"),  # November alone
                             ("2026-11-02", "2026-11-30"),  # days only
                             ("2026-10-01", "2026-12-31"),  # three whole months
                             (days[1], days[1]), ("2027-01-01", "2027-03-31")]:
            rows = await store.key_totals(since, until)
            assert [r.key_id for r in rows] == sorted(r.key_id for r in rows)
            assert all(r.day == "" and r.model == "" for r in rows)
            assert _by_key(rows) == _by_key(await store.usage(since, until)), (since, until)
        assert sum(r.requests for r in await store.key_totals(days[0], days[-1])) == 60
        if isinstance(store, RedisStore):  # a month's sums are kept until retention after it
            left = await store.redis.pttl("gw:mk:2026-11")
            end = datetime(2026, 12, 1, tzinfo=UTC).timestamp() + batch[0].retention
            assert abs(time.time() + left / 1000 - end) < 60
        await store.close()

    run(scenario())


def test_days_before_the_key_totals_are_summed_from_the_rows(make_store):
    """A Redis written by an earlier version has rows but no per-key sums: those days, and
    the day a process of this version first records, are summed from the rows; later days
    and months from the sums."""
    async def scenario():
        store, (old, first, later) = await _left_by_an_earlier_version(
            make_store, lambda old, first: [f"gw:{kind}:{d}" for kind in ("dk", "mk")
                                            for d in (old, first, old[:7], first[:7])]
            + ["gw:dk-since"])
        await store.record([Settlement("k1", "c", "gpt", first, (), prompt_tokens=5, number=2),
                            Settlement("k2", "d", "gpt", later, (), prompt_tokens=6, number=2)],
                           time.time())
        rows = await store.key_totals(old, later)
        assert [(r.key_id, r.requests, r.prompt_tokens) for r in rows] == \
            [("k1", 2, 8), ("k2", 2, 10)]
        if isinstance(store, RedisStore):  # the sums are read from the day after
            assert await store.redis.get("gw:dk-since") == first
            await store.redis.delete(f"gw:dk:{later}")
            assert [(r.key_id, r.requests) for r in await store.key_totals(later, later)] == []
        await store.close()

    run(scenario())


def test_sums_keep_large_amounts_exact(make_store):
    """The sums' script gets its amounts as text: cjson would read 2^53 + 1 as a double and
    add 2^53."""
    async def scenario():
        store = make_store()
        day, big = "2026-11-23", 2**53 + 1
        await store.record([Settlement("k1", "a", "gpt", day, (), prompt_tokens=big,
                                       cost=98_765.432101, number=1)], time.time())
        for rows in (await store.key_totals(day, day), await store.model_totals(day, day),
                     [await store.totals(day, day)]):
            assert [(r.prompt_tokens, r.cost) for r in rows] == [(big, 98_765.432101)]
        await store.close()

    run(scenario())
