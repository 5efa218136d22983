"""The Redis store's usage: the sums the settle batch keeps, and the reads of /admin/usage.

Every settlement lands in its key's row (gw:{<id>}:u:<day>:<model>, written by the settle
script). The batch then adds what the scripts applied to sums that the admin pages read
instead of every key's rows:

    gw:day:<day>     every key's usage of that day (hash: `<field>`): the overview
    gw:dm:<day>      ... per model (hash: `<model>|<field>`): usage by day or model
    gw:dk:<day>      ... per key (hash: `<key id>|<field>`): usage by key
    gw:mk:<month>    the same per key for a month (YYYY-MM): a year by key reads 12 hashes
    gw:dm-since, gw:dk-since   the last day without complete gw:dm / gw:dk and gw:mk sums
                     (usage recorded by an earlier version): it and earlier days are summed
                     from the keys' rows; 0000-00-00 when the sums began with the usage

Day sums are kept `retention` after their last write; a month's until `retention` after
its last day, so a range that takes a whole month may count days whose rows have expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from gateway.store.base import Settlement, UsageRow
from gateway.store.redis_scripts import SUMS

MICRO = 1_000_000  # cost is stored in micro-dollars (integers)
TOTALS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost", "errors")
_NAMES = orjson.dumps(TOTALS)


class RedisUsage:
    """The part of RedisStore that keeps and reads usage (a base class, for its size)."""

    prefix: str
    redis: Any
    _sums_marked: bool

    if TYPE_CHECKING:  # RedisStore's
        link: Any
        _sums: Any

        async def _script(self, script, text: str, keys: list, args: list) -> Any: ...
        async def _gets(self, calls: list[tuple[str, str]]) -> list: ...
        async def _command(self, *args) -> Any: ...
        async def _call(self, coroutine) -> Any: ...
        def _k(self, key_id: str, *parts: str) -> str: ...

    async def _mark_sums(self, first_day: str, now: float) -> None:
        """Before this process's first settlement: the day from which each kind of sum is
        complete, if no replica has said yet. A store with no usage yet has them all
        (0000-00-00); one with usage from an earlier version has them from tomorrow (this
        day, begun before, is summed from the rows). Once a process, off the request path."""
        today = datetime.fromtimestamp(now, UTC).date().isoformat()
        used = None
        for place in (f"{self.prefix}:dm-since", f"{self.prefix}:dk-since"):
            if await self._command("GET", place) is None:
                if used is None:
                    used = await self._command("SCARD", f"{self.prefix}:usage-keys")
                await self._command("SET", place,
                                    min(first_day, today) if used else "0000-00-00", "NX")
        self._sums_marked = True

    async def _add_sums(self, applied: list[Settlement], now: float) -> None:
        """Sum the settlements the scripts applied (not the retries they skipped) per day,
        per (day, model), per (day, key) and per (month, key), and mark their keys' last
        use: one more pipelined round trip a batch, off the request path."""
        days: dict[str, list[int]] = {}
        models: dict[tuple[str, str], list[int]] = {}  # (day, model) -> amounts
        keys: dict[tuple[str, str], list[int]] = {}  # (day, key id) -> amounts
        keep: dict[str, int] = {}
        for s in applied:
            values = (1, s.prompt_tokens, s.completion_tokens, s.reasoning_tokens,
                      round(s.cost * MICRO), 1 if s.error else 0)
            for total in (days.setdefault(s.day, [0] * 6),
                          models.setdefault((s.day, s.model), [0] * 6),
                          keys.setdefault((s.day, s.key_id), [0] * 6)):
                for i, value in enumerate(values):
                    total[i] += value
            keep[s.day] = max(keep.get(s.day, 0), int(s.retention * 1000))
        prefix = self.prefix
        adds: list[tuple[tuple[str, ...], str, list[int]]] = [  # (hashes, field prefix, amounts)
            ((f"{prefix}:day:{day}",), "", total) for day, total in days.items()]
        adds += [((f"{prefix}:dm:{day}",), model + "|", total)
                 for (day, model), total in models.items()]
        adds += [((f"{prefix}:dk:{day}", f"{prefix}:mk:{day[:7]}"), key_id + "|", total)
                 for (day, key_id), total in keys.items()]  # its month takes the same amounts
        keeps = [(f"{prefix}:{kind}:{day}", ms, False)
                 for day, ms in keep.items() for kind in ("day", "dm", "dk")]
        for month in {day[:7] for day in keep}:
            ms = max(ms for day, ms in keep.items() if day.startswith(month))
            keeps.append((f"{prefix}:mk:{month}", _month_end_ms(month) + ms, True))
        last_use: list = ["ZADD", f"{prefix}:last-used", "GT"]
        for key_id in {s.key_id for s in applied}:
            last_use += [now, key_id]
        await asyncio.gather(self._write_sums(adds, keeps), self._command(*last_use))

    async def _write_sums(self, adds: list[tuple[tuple[str, ...], str, list[int]]],
                          keeps: list[tuple[str, int, bool]]) -> None:
        """One script call on one node (a batch of 1,000 keys' settlements adds some 9,000
        fields: a command each cost the gateway more than the settlements themselves); a
        Cluster's sums lie in many slots, so there a command each, sent together."""
        if self.link is None:
            await asyncio.gather(
                *(self._command("HINCRBY", place, prefix + name, value)
                  for places, prefix, total in adds for place in places
                  for name, value in zip(TOTALS, total, strict=True) if value),
                *(self._command("PEXPIREAT" if at else "PEXPIRE", place, ms)
                  for place, ms, at in keeps))
            return
        index: dict[str, int] = {}
        for places, *_ in adds:
            for place in places:
                index.setdefault(place, len(index) + 1)
        for place, *_ in keeps:
            index.setdefault(place, len(index) + 1)
        await self._script(self._sums, SUMS, list(index), [
            orjson.dumps([([index[p] for p in places], prefix, *map(str, total))
                          for places, prefix, total in adds]),
            orjson.dumps([(index[p], str(ms), 1 if at else 0) for p, ms, at in keeps]),
            _NAMES])

    async def usage(self, since: str, until: str,
                    key_ids: list[str] | None = None) -> list[UsageRow]:
        if key_ids is None:
            key_ids = list(await self._call(self.redis.smembers(f"{self.prefix}:usage-keys")))
        key_ids = sorted(set(key_ids))
        indexes = await self._gets([("smembers", self._k(k, "ud")) for k in key_ids])
        wanted = [(key_id, *entry.partition("|")[::2])
                  for key_id, entries in zip(key_ids, indexes, strict=True)
                  for entry in sorted(entries) if since <= entry.partition("|")[0] <= until]
        found = await self._gets([("hgetall", self._k(k, "u", day, model))
                                  for k, day, model in wanted])
        return [usage_row(key_id, model, day, data)
                for (key_id, day, model), data in zip(wanted, found, strict=True) if data]

    async def model_totals(self, since: str, until: str) -> list[UsageRow]:
        days = days_between(since, until)
        first, *found = await self._gets([("get", f"{self.prefix}:dm-since")]
                                         + [("hgetall", f"{self.prefix}:dm:{d}") for d in days])
        totals: dict[tuple[str, str], dict] = {}
        for day, data in zip(days, found, strict=True):
            if first is not None and day > first:
                for place, value in data.items():
                    model, _, field = place.rpartition("|")  # a model's name can hold '|'
                    totals.setdefault((day, model), dict.fromkeys(TOTALS, 0))[field] = int(value)
        if first is None or since <= first:  # begun before the sums were kept: from the rows
            for row in await self.usage(since, until if first is None else min(until, first)):
                _add_row(totals.setdefault((row.day, row.model), dict.fromkeys(TOTALS, 0)), row)
        return [usage_row("", model, day, totals[day, model]) for day, model in sorted(totals)]

    async def key_totals(self, since: str, until: str) -> list[UsageRow]:
        first = await self._command("GET", f"{self.prefix}:dk-since")
        places = [f"{self.prefix}:{kind}:{when}" for kind, when in _spans(since, until, first)]
        totals: dict[str, dict] = {}
        for data in await self._gets([("hgetall", place) for place in places]):
            for place, value in data.items():  # 10,000 keys: no call a field
                key_id, _, field = place.rpartition("|")
                total = totals.get(key_id)
                if total is None:
                    total = totals[key_id] = dict.fromkeys(TOTALS, 0)
                total[field] += int(value)
        if first is None or since <= first:  # begun before the sums were kept: from the rows
            for row in await self.usage(since, until if first is None else min(until, first)):
                _add_row(totals.setdefault(row.key_id, dict.fromkeys(TOTALS, 0)), row)
        return [usage_row(key_id, "", "", totals[key_id]) for key_id in sorted(totals)]

    async def totals(self, since: str, until: str) -> UsageRow:
        total = dict.fromkeys(TOTALS, 0)
        first, *found = await self._gets([("get", f"{self.prefix}:dm-since")] + [
            ("hgetall", f"{self.prefix}:day:{d}") for d in days_between(since, until)])
        if first is None or since <= first:  # begun before the day sums (they came with
            for row in await self.model_totals(since, until):  # gw:dm's): from those
                _add_row(total, row)
            return usage_row("", "", "", total)
        for data in found:
            for name in TOTALS:
                total[name] += int(data.get(name, 0))
        return usage_row("", "", "", total)


def _spans(since: str, until: str, first: str | None) -> Iterable[tuple[str, str]]:
    """The per-key sums that cover since..until: a month's where the range takes the whole
    month and its sums are complete, else each day's that is complete (after `first`)."""
    if first is None:
        return
    day = date.fromisoformat(since) if first < since else \
        date.fromisoformat(first) + timedelta(days=1)
    last = date.fromisoformat(until)
    while day <= last:
        following = _next_month(day)
        if day.day == 1 and following - timedelta(days=1) <= last:
            yield "mk", day.isoformat()[:7]
            day = following
        else:
            yield "dk", day.isoformat()
            day += timedelta(days=1)


def _add_row(total: dict, row: UsageRow) -> None:
    for name in TOTALS:
        total[name] += round(getattr(row, name) * (MICRO if name == "cost" else 1))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _month_end_ms(month: str) -> int:
    start = date.fromisoformat(month + "-01")
    following = _next_month(start)
    return int(datetime(following.year, following.month, 1, tzinfo=UTC).timestamp() * 1000)


def days_between(since: str, until: str) -> list[str]:
    first, last = date.fromisoformat(since), date.fromisoformat(until)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def usage_row(key_id: str, model: str, day: str, data: dict) -> UsageRow:
    return UsageRow(key_id, model, day, int(data.get("requests", 0)),
                    int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0)),
                    int(data.get("reasoning_tokens", 0)),
                    round(int(data.get("cost", 0)) / MICRO, 6), int(data.get("errors", 0)))
