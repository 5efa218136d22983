"""What every store provides: gateway keys, admission against limits, settlement, usage.

The in-memory store (one process) and the Redis store (shared by replicas)
implement this one interface and pass one test suite, so the embedded default
cannot drift from production.

Admission is one call: it checks the key is still valid and every limit of
the request (per-minute rates as GCRA, day and month token counters and the
month's budget as reserved counters, in-flight slots as expiring leases) and
reserves them all, or none. Settlement replaces the reservation with what the
answer really used and writes the usage record.

Stored responses (the Responses API's conversation state) are records the store
does not read: a value, its owner's key id, a TTL. The owner is part of where the
record is kept, so another key cannot even find it; each call is one round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

# What a stored response's id may be: the owner's key id follows it where it is kept, so
# no separator may hide in it.
RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class StoreUnavailable(Exception):
    """The store did not answer (Redis down or unreachable)."""


class KeyConflict(Exception):
    """A key with that name exists already."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A gateway key as stored: never the secret, only its SHA-256 (hex) and a short prefix."""

    id: str
    name: str
    digest: str
    prefix: str
    models: tuple[str, ...] = ("*",)
    limits: dict = field(default_factory=dict)  # LimitsSpec fields, as set on this key
    expires_at: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None
    source: str = "admin"  # admin (the API) or config (routes.yaml)
    metadata: dict = field(default_factory=dict)

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


# A request's own records (its checks, admission, verdict, settlement) are made anew for each
# request and never changed, but not frozen: a frozen dataclass's __init__ sets each field
# through object.__setattr__, 3.6x the cost of a plain one (2.6 us against 0.7 for a Check,
# measured), and a request with limits makes about ten of them.
@dataclass(slots=True)
class Check:
    """One limit to check and reserve at admission.

    kinds: `rate` (GCRA: `limit` per `period` seconds, `cost` units), `counter` (a
    calendar counter named by `bucket`, `cost` reserved against `limit`, kept `ttl`
    seconds), `lease` (at most `limit` requests in flight).
    """

    name: str  # requests, tokens, tokens_per_day, tokens_per_month, budget, in_flight
    kind: str
    limit: float
    cost: float = 1
    period: float = 60.0
    bucket: str = ""
    ttl: float = 0.0
    scope: str = ""  # "" for the key, else the model alias the limit is for


@dataclass(slots=True)  # per request: not frozen (see Check)
class Admission:
    key_id: str
    request_id: str
    checks: tuple[Check, ...]
    lease_ttl: float = 60.0


@dataclass(slots=True)  # per request: not frozen (see Check)
class Outcome:
    """One check's state after admission, for the x-ratelimit-* headers."""

    name: str
    scope: str
    limit: float
    remaining: float
    reset: float  # seconds until the limit is fully available again


@dataclass(slots=True)  # per request: not frozen (see Check)
class Verdict:
    allowed: bool
    outcomes: tuple[Outcome, ...] = ()
    denied: Check | None = None  # the first check that refused
    retry_after: float = 0.0
    key_invalid: bool = False  # revoked or expired since the caller's cache saw it


@dataclass(slots=True)  # per request: not frozen (see Check)
class Settlement:
    """What a finished request used, replacing what its admission reserved."""

    key_id: str
    request_id: str
    model: str
    day: str  # UTC, YYYY-MM-DD
    reserved: tuple[Check, ...]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0  # dollars
    error: bool = False
    retention: float = 90 * 86400.0
    number: int = 0  # this process's running number: a retried settlement is applied once


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_id: str
    model: str
    day: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    errors: int = 0


class Store(Protocol):
    kind: str

    async def ping(self) -> bool:
        """True when the store answers; /readyz reports it."""

    async def close(self) -> None: ...

    async def risks(self) -> list[str]:
        """Settings of the store that put usage or limits at risk, for a warning at start."""

    async def get_key(self, digest: str) -> KeyRecord | None:
        """The key whose secret hashes to `digest` (hex), revoked or not."""

    async def find_key(self, id_or_name: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def key_names(self) -> dict[str, str]:
        """Every key's name by its id, in one read: usage by key labels 10,000 keys."""

    async def key_page(self, after: str, limit: int, revoked: bool) -> tuple[list[KeyRecord], bool]:
        """Up to `limit` keys named after `after`, by name (revoked ones only if `revoked`),
        and whether more follow: the console's list of 10,000 keys reads one page."""

    async def last_used(self, key_ids: list[str]) -> dict[str, float]:
        """When each key's last request settled (Unix s), for those that have one. Written
        by `record` (the settle batch), never on admission."""

    async def create_key(self, record: KeyRecord) -> None:
        """KeyConflict if the name is taken."""

    async def update_key(self, record: KeyRecord) -> None:
        """Replace a key's record (same id and digest); other replicas learn of it at once."""

    async def admit(self, admission: Admission, now: float) -> Verdict: ...

    async def record(self, settlements: list[Settlement], now: float) -> None:
        """Record finished requests (one round trip for the lot)."""

    async def renew(self, leases: list[tuple[str, str, str]], ttl: float, now: float) -> None:
        """Extend the in-flight leases (key id, scope, request id) of requests still running."""

    async def release(self, leases: list[tuple[str, str, str]]) -> None:
        """Drop in-flight leases (key id, scope, request id): those an admission may have taken
        although its answer was lost. Dropping one that was never taken does nothing."""

    async def usage(self, since: str, until: str,
                    key_ids: list[str] | None = None) -> list[UsageRow]:
        """Usage rows of every key and model for the UTC days since..until, inclusive (of
        the keys `key_ids` only, when given). Reads every key's rows: bounded by keys x days."""

    async def model_totals(self, since: str, until: str) -> list[UsageRow]:
        """Every key's usage summed per (day, model) over since..until (key id empty), by
        day then model. Kept per (day, model) as it is recorded, so this reads a row a day
        and model, not a key; a day from before the store kept them is summed from its rows."""

    async def key_totals(self, since: str, until: str) -> list[UsageRow]:
        """Each key's usage summed over since..until (model and day empty), by key id. Kept
        per (day, key) and per (month, key) as it is recorded, so a year reads 12 month sums
        and the days around them, not every key's rows; days from before the store kept
        them are summed from the rows."""

    async def totals(self, since: str, until: str) -> UsageRow:
        """Every key's usage summed over the days since..until (key id and model empty):
        kept per day as it is recorded, so this reads a row per day, not per key; a range
        that starts before the store kept them is summed as model_totals sums it."""

    def on_key_change(self, callback) -> None:
        """Call `callback(key_id)` when any replica changes a key."""

    async def save_response(self, key_id: str, response_id: str, record: bytes, ttl: float,
                            max_bytes: int) -> bool:
        """Keep `record` (UTF-8 text, JSON as the caller writes it) for `ttl` seconds, for the
        key `key_id` only. False, and nothing written, when it is over `max_bytes`.
        `response_id` has no ':' (RESPONSE_ID); ValueError otherwise."""

    async def read_response(self, key_id: str, response_id: str) -> bytes | None:
        """The record, unless it is missing, expired or another key's: then None, whichever."""

    async def delete_response(self, key_id: str, response_id: str) -> bool:
        """Drop the record; False when there was none for this key (missing, expired or not its)."""
