"""The in-process store: one gateway process, no Redis. State is lost on restart.

The same arithmetic as the Redis store's Lua scripts (redis.py), in Python; the
two pass the same test suite.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway.store.base import (
    RESPONSE_ID,
    Admission,
    Check,
    KeyConflict,
    KeyRecord,
    Outcome,
    Settlement,
    UsageRow,
    Verdict,
)

MICRO = 1_000_000  # cost is kept in micro-dollars (integers), as in the Redis store
USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost",
                "errors")


def gcra(tat: float, now: float, check: Check) -> tuple[bool, float, Outcome, float]:
    """Generic cell rate: at most `limit` units per `period`, with no burst at a window's edge.

    Returns (allowed, the new theoretical arrival time, the outcome, retry after)."""
    interval = check.period / check.limit
    tat = max(tat, now)
    new_tat = tat + check.cost * interval
    allow_at = new_tat - check.period
    if allow_at > now + 1e-9:
        remaining = max(0.0, math.floor((check.period - (tat - now)) / interval + 1e-9))
        return False, tat, Outcome(check.name, check.scope, check.limit, remaining, tat - now), \
            allow_at - now
    remaining = max(0.0, math.floor((check.period - (new_tat - now)) / interval + 1e-9))
    return True, new_tat, Outcome(check.name, check.scope, check.limit, remaining,
                                  new_tat - now), 0.0


# Stored responses this process keeps at most, all together: past it the oldest go first,
# so a busy gateway on the memory store cannot grow without bound during a long TTL.
RESPONSE_BYTES = 256 * 2**20


class MemoryStore:
    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 response_bytes: int = RESPONSE_BYTES) -> None:
        self.keys: dict[str, KeyRecord] = {}  # by id
        self.by_digest: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.tats: dict[tuple, float] = {}
        self.counters: dict[tuple, tuple[float, float]] = {}  # value, expires at
        self.leases: dict[tuple, dict[str, float]] = {}  # request id -> expires at
        self.usage_rows: dict[tuple[str, str, str], dict[str, float]] = {}
        self.day_totals: dict[str, dict[str, float]] = {}  # every key's usage, per day
        self.day_models: dict[tuple[str, str], dict[str, float]] = {}  # ... per (day, model)
        self.last_use: dict[str, float] = {}  # key id -> when its last request settled
        self.applied: dict[str, int] = {}  # the last numbered settlement applied, per key
        self.listeners: list = []
        self.clock = clock  # stored responses' expiry: a test can move it
        # (key id, response id) -> (record, expires at), oldest first (O(1) at either end)
        self.responses: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()
        self.response_bytes = 0
        self.max_response_bytes = response_bytes

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    # keys

    async def get_key(self, digest: str) -> KeyRecord | None:
        key_id = self.by_digest.get(digest)
        return self.keys.get(key_id) if key_id else None

    async def find_key(self, id_or_name: str) -> KeyRecord | None:
        key_id = id_or_name if id_or_name in self.keys else self.by_name.get(id_or_name)
        return self.keys.get(key_id) if key_id else None

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self.keys.values(), key=lambda k: k.created_at)

    async def key_names(self) -> dict[str, str]:
        return {k.id: k.name for k in self.keys.values()}

    async def key_page(self, after: str, limit: int, revoked: bool) -> tuple[list[KeyRecord], bool]:
        names = sorted(n for n in self.by_name if n > after)
        page: list[KeyRecord] = []
        for name in names:
            record = self.keys[self.by_name[name]]
            if revoked or record.revoked_at is None:
                if len(page) == limit:
                    return page, True
                page.append(record)
        return page, False

    async def last_used(self, key_ids: list[str]) -> dict[str, float]:
        return {k: self.last_use[k] for k in key_ids if k in self.last_use}

    async def create_key(self, record: KeyRecord) -> None:
        existing = self.by_name.get(record.name)
        if existing is not None and existing != record.id:
            raise KeyConflict(record.name)
        self.keys[record.id] = record
        self.by_digest[record.digest] = record.id
        self.by_name[record.name] = record.id
        self._changed(record.id)

    async def update_key(self, record: KeyRecord) -> None:
        old = self.keys[record.id]
        if record.name != old.name:
            if record.name in self.by_name:
                raise KeyConflict(record.name)
            del self.by_name[old.name]
            self.by_name[record.name] = record.id
        self.keys[record.id] = record
        self._changed(record.id)

    def on_key_change(self, callback) -> None:
        self.listeners.append(callback)

    def _changed(self, key_id: str) -> None:
        for callback in self.listeners:
            callback(key_id)

    # admission

    async def admit(self, admission: Admission, now: float) -> Verdict:
        record = self.keys.get(admission.key_id)
        if record is not None and not record.usable(now):
            return Verdict(False, key_invalid=True)
        writes: list[tuple[str, tuple, Any]] = []  # the value's type follows the kind
        outcomes: list[Outcome] = []
        for check in admission.checks:
            place = (admission.key_id, check.scope, check.name, check.bucket)
            if check.kind == "rate":
                allowed, tat, outcome, wait = gcra(self.tats.get(place, 0.0), now, check)
                if not allowed:
                    return Verdict(False, tuple(outcomes) + (outcome,), check, wait)
                writes.append(("rate", place, tat))
            elif check.kind == "counter":
                value, expires = self.counters.get(place, (0.0, 0.0))
                value = value if expires > now else 0.0
                if value + check.cost > check.limit:
                    outcome = Outcome(check.name, check.scope, check.limit,
                                      max(0.0, check.limit - value), check.ttl)
                    return Verdict(False, tuple(outcomes) + (outcome,), check, check.ttl)
                writes.append(("counter", place, (value + check.cost, now + check.ttl)))
                outcome = Outcome(check.name, check.scope, check.limit,
                                  check.limit - value - check.cost, check.ttl)
            else:  # lease
                leases = self._leases(place, now)
                if len(leases) >= check.limit:
                    soonest = min(leases.values()) - now if leases else 1.0
                    outcome = Outcome(check.name, check.scope, check.limit, 0, soonest)
                    return Verdict(False, tuple(outcomes) + (outcome,), check, 1.0)
                writes.append(("lease", place, now + admission.lease_ttl))
                outcome = Outcome(check.name, check.scope, check.limit,
                                  check.limit - len(leases) - 1, 0.0)
            outcomes.append(outcome)
        for kind, place, reserved in writes:  # all limits passed: reserve them all
            if kind == "rate":
                self.tats[place] = reserved
            elif kind == "counter":
                self.counters[place] = reserved
            else:
                self.leases.setdefault(place, {})[admission.request_id] = reserved
        return Verdict(True, tuple(outcomes))

    def _leases(self, place: tuple, now: float) -> dict[str, float]:
        leases = self.leases.get(place, {})
        for request_id in [r for r, expires in leases.items() if expires <= now]:
            del leases[request_id]
        return leases

    # settlement

    async def record(self, settlements: list[Settlement], now: float) -> None:
        for s in settlements:
            if s.number:
                if s.number <= self.applied.get(s.key_id, 0):
                    continue  # applied already: a retry
                self.applied[s.key_id] = s.number
            tokens = s.prompt_tokens + s.completion_tokens
            for check in s.reserved:
                place = (s.key_id, check.scope, check.name, check.bucket)
                actual = s.cost if check.name == "budget" else tokens
                if check.kind == "rate" and check.name != "requests":
                    delta = (actual - check.cost) * check.period / check.limit
                    tat = self.tats.get(place, now)
                    self.tats[place] = (max(tat, now) + delta) if delta > 0 else tat + delta
                elif check.kind == "counter":
                    value, expires = self.counters.get(place, (0.0, now + check.ttl))
                    self.counters[place] = (max(0.0, value + actual - check.cost), expires)
                elif check.kind == "lease":
                    self.leases.get(place, {}).pop(s.request_id, None)
            self.last_use[s.key_id] = max(now, self.last_use.get(s.key_id, now))
            cost = round(s.cost * MICRO)  # integers, as Redis keeps them: sums agree
            errors = 1 if s.error else 0
            sums: tuple[tuple[dict[Any, dict[str, float]], Any], ...] = (
                (self.usage_rows, (s.key_id, s.day, s.model)), (self.day_totals, s.day),
                (self.day_models, (s.day, s.model)))
            for table, where in sums:
                row = table.get(where)
                if row is None:  # not setdefault: its default would be built every time
                    row = table[where] = dict.fromkeys(USAGE_FIELDS, 0)
                row["requests"] += 1
                row["prompt_tokens"] += s.prompt_tokens
                row["completion_tokens"] += s.completion_tokens
                row["reasoning_tokens"] += s.reasoning_tokens
                row["cost"] += cost
                row["errors"] += errors

    async def renew(self, leases: list[tuple[str, str, str]], ttl: float, now: float) -> None:
        for key_id, scope, request_id in leases:
            held = self.leases.get((key_id, scope, "in_flight", ""), {})
            if request_id in held:
                held[request_id] = now + ttl

    async def risks(self) -> list[str]:
        return []

    async def release(self, leases: list[tuple[str, str, str]]) -> None:
        for key_id, scope, request_id in leases:
            self.leases.get((key_id, scope, "in_flight", ""), {}).pop(request_id, None)

    async def usage(self, since: str, until: str,
                    key_ids: list[str] | None = None) -> list[UsageRow]:
        return [_row(key_id, model, day, row)
                for (key_id, day, model), row in sorted(self.usage_rows.items())
                if since <= day <= until and (key_ids is None or key_id in key_ids)]

    async def model_totals(self, since: str, until: str) -> list[UsageRow]:
        # The process's whole life is in day_models: no day before it to sum from rows.
        return [_row("", model, day, row) for (day, model), row in sorted(self.day_models.items())
                if since <= day <= until]

    async def key_totals(self, since: str, until: str) -> list[UsageRow]:
        totals: dict[str, dict[str, float]] = {}
        for (key_id, day, _), row in self.usage_rows.items():  # one process: rows suffice
            if since <= day <= until:
                total = totals.setdefault(key_id, dict.fromkeys(USAGE_FIELDS, 0))
                for name in USAGE_FIELDS:
                    total[name] += row[name]
        return [_row(key_id, "", "", totals[key_id]) for key_id in sorted(totals)]

    async def totals(self, since: str, until: str) -> UsageRow:
        total: dict[str, float] = dict.fromkeys(USAGE_FIELDS, 0)  # integers: sums stay exact
        for day, row in self.day_totals.items():
            if since <= day <= until:
                for name in USAGE_FIELDS:
                    total[name] += row[name]
        return _row("", "", "", total)

    # stored responses

    async def save_response(self, key_id: str, response_id: str, record: bytes, ttl: float,
                            max_bytes: int) -> bool:
        if not RESPONSE_ID.match(response_id):
            raise ValueError(f"not a response id: {response_id!r}")
        if len(record) > min(max_bytes, self.max_response_bytes):
            return False
        now = self.clock()
        place = (key_id, response_id)
        self._forget(place)
        # A copy of its own size: orjson's bytes keep the buffer they were written in (8 KiB
        # for a 1 KiB record, measured), and this store keeps them for days.
        self.responses[place] = (bytes(memoryview(record)), now + ttl)
        self.response_bytes += len(record)
        while True:  # the oldest go while they have expired or there is no room
            oldest, (_, expires) = next(iter(self.responses.items()))
            if oldest == place or (expires > now
                                   and self.response_bytes <= self.max_response_bytes):
                return True  # the rest are younger (with one TTL, they expire later)
            self._forget(oldest)

    async def read_response(self, key_id: str, response_id: str) -> bytes | None:
        kept = self.responses.get((key_id, response_id))
        if kept is None or kept[1] <= self.clock():
            return None
        return kept[0]

    async def delete_response(self, key_id: str, response_id: str) -> bool:
        kept = self.responses.get((key_id, response_id))
        self._forget((key_id, response_id))
        return kept is not None and kept[1] > self.clock()

    def _forget(self, place: tuple[str, str]) -> None:
        kept = self.responses.pop(place, None)
        if kept is not None:
            self.response_bytes -= len(kept[0])


def _row(key_id: str, model: str, day: str, row: dict[str, float]) -> UsageRow:
    return UsageRow(key_id, model, day, int(row["requests"]), int(row["prompt_tokens"]),
                    int(row["completion_tokens"]), int(row["reasoning_tokens"]),
                    round(row["cost"] / MICRO, 6), int(row["errors"]))
