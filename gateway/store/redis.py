"""The Redis store: keys, limits and usage shared by every gateway replica.

Works with Redis 6.2+ and Valkey; TLS and password come with the URL
(`rediss://:password@host:6379/0`); `cluster: true` uses Redis Cluster. Every
key of one gateway key carries the hash tag `{key id}`, so the admission and
settlement scripts (redis_scripts.py) each touch one slot.

Layout (prefix `gw` by default):
    gw:key:<sha256>            the key's record (JSON), found by the secret's hash
    gw:keyid:<id>              -> sha256
    gw:keyname:<name>          -> id
    gw:keys                    set of key ids
    gw:{<id>}:valid            hash: revoked, expires (ms): read by admission itself
    gw:{<id>}:r:<scope>:<name> a rate's theoretical arrival time (ms)
    gw:{<id>}:c:<scope>:<name>:<bucket>  a day or month counter
    gw:{<id>}:l:<scope>        in-flight leases (sorted set, expiry as score)
    gw:{<id>}:u:<day>:<model>  usage (hash), kept `retention`
    gw:{<id>}:ud               index of that key's usage hashes
    gw:{<id>}:n:<replica>      the last settlement of that replica applied (retries are exact)
    gw:usage-keys              set of the ids of keys with usage
    gw:day, gw:dm, gw:dk, gw:mk  usage summed per day, model and key (redis_usage.py)
    gw:last-used               sorted set: key id, scored by when its last request settled
    gw:key-names               sorted set (all scores 0): key names, for pages in name order
    gw:names                   hash: key id -> name, for usage by key (10,000 in one read)
    gw:resp:<response id>:<key id>  a stored response's record, kept its TTL: its owner is
                               in its name, so another key's read finds nothing. (No hash
                               tag: each call is one key, and one key's records spread
                               over a Cluster's nodes.)
    gw:events                  pub/sub: the id of a key that changed
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from dataclasses import asdict
from typing import TYPE_CHECKING

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.logs import log
from gateway.store.base import (
    RESPONSE_ID,
    Admission,
    Check,
    KeyConflict,
    KeyRecord,
    Outcome,
    Settlement,
    StoreUnavailable,
    Verdict,
)
from gateway.store.link import LinkError, Packed, RedisLink, pack
from gateway.store.redis_scripts import ADMIT, RENEW, SETTLE, SUMS
from gateway.store.redis_usage import MICRO, RedisUsage

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster
    from redis.typing import EncodableT, FieldT

class RedisStore(RedisUsage):
    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "gw", timeout: float = 0.5,
                 cluster: bool = False, pool_size: int = 50) -> None:
        # A stale pooled connection (Redis restarted) fails once: retry on a fresh one.
        options = {"decode_responses": True, "socket_timeout": timeout,
                   "socket_connect_timeout": timeout,
                   "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                   "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
        self.redis: aioredis.Redis | RedisCluster
        self._events: aioredis.Redis
        # At most pool_size commands at a time; more wait for a connection, up to the
        # store timeout (redis-py's own pools refuse the one beyond at once).
        self._connections: asyncio.Semaphore | None = None  # a Cluster's: see _call
        if cluster:
            from redis.asyncio.cluster import RedisCluster

            # Its pools cannot wait (a node's full pool raises): this semaphore waits instead.
            self.redis = RedisCluster.from_url(url, max_connections=pool_size, **options)
            self._connections = asyncio.Semaphore(pool_size)
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=pool_size, timeout=timeout, health_check_interval=10,
                **options)
            self.redis = aioredis.Redis.from_pool(pool)
        # Key changes are heard on a connection of their own, outside the pool. (The async
        # Cluster client has no pub/sub; a Cluster delivers PUBLISH to every node, so a
        # plain connection to the configured node hears every change.)
        self._events = aioredis.from_url(url, health_check_interval=10,
                                         **options | {"socket_timeout": None})
        self.timeout = timeout
        self.prefix = prefix
        self.cluster = cluster
        self.replica = secrets.token_hex(8)  # this process: settlement numbers are its own
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self._renew = self.redis.register_script(RENEW)
        self._sums = self.redis.register_script(SUMS)
        # The request path's calls go through one pipelined connection (link.py) where it
        # can: redis-py's client costs twice the CPU per call. Cluster mode keeps redis-py.
        self.link = None if cluster else RedisLink(url, timeout)
        # The admit call's packed head (script, keys) by key and checks (their kinds, scopes,
        # names, buckets): the request path packs only its id and costs.
        self._admit_heads: dict[tuple, Packed] = {}
        self._listeners: list = []
        self._sums_marked = False  # whether gw:dm-since and gw:dk-since are known to be set
        self._subscriber: asyncio.Task | None = None

    # naming

    def _k(self, key_id: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + key_id + "}", *parts))

    def _place(self, key_id: str, check: Check) -> str:
        if check.kind == "rate":
            return self._k(key_id, "r", check.scope, check.name)
        if check.kind == "counter":
            return self._k(key_id, "c", check.scope, check.name, check.bucket)
        return self._k(key_id, "l", check.scope)

    async def _call(self, coroutine):
        """One redis-py call (a command, a script, a pipeline); its failure as StoreUnavailable."""
        try:
            if self._connections is None:
                return await coroutine
            try:
                async with asyncio.timeout(self.timeout):
                    await self._connections.acquire()
            except TimeoutError:
                coroutine.close()
                raise StoreUnavailable(f"redis: no connection free within {self.timeout:g}s"
                                       ) from None
            try:
                return await coroutine
            finally:
                self._connections.release()
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None

    async def _script(self, script, text: str, keys: list, args: list):
        """Run a script by SHA; on the link when there is one (loading it if Redis lost it)."""
        if self.link is None:
            return await self._call(script(keys=keys, args=args))
        return await self._evalsha(text, pack(["EVALSHA", script.sha, len(keys), *keys, *args]))

    async def _evalsha(self, text: str, command: bytes):
        """A script's EVALSHA on the link, packed (`text`: the script, if Redis lost it)."""
        assert self.link is not None
        try:
            reply = await self.link.send(command)
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                await self.link.call("SCRIPT", "LOAD", text)
                reply = await self.link.send(command)
        except LinkError as exc:
            raise StoreUnavailable(f"redis: {exc}") from None
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"redis refused the script: {reply}")
        return _text(reply)

    async def _command(self, *args):
        if self.link is None:
            return await self._call(self.redis.execute_command(*args))
        try:
            return _text(await self.link.call(*args))
        except LinkError as exc:
            raise StoreUnavailable(f"redis: {exc}") from None

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (TimeoutError, RedisError, OSError):
            return False

    async def risks(self) -> list[str]:
        """An eviction policy lets a full Redis drop usage records and limit counters
        (they all have TTLs, so the volatile-* policies too): only noeviction is safe."""
        info = await self._call(self.redis.info("memory"))
        nodes = [info] if "maxmemory_policy" in info else [
            i for i in info.values() if isinstance(i, dict)]  # a Cluster: node by node
        policies = sorted({n.get("maxmemory_policy", "noeviction") for n in nodes}
                          - {"noeviction"})
        return [f"redis maxmemory-policy is {p}: when Redis is full it drops keys, usage "
                "records and limit counters among them; set it to noeviction" for p in policies]

    async def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            await asyncio.gather(self._subscriber, return_exceptions=True)
        await self.redis.aclose()
        await self._events.aclose()
        if self.link is not None:
            await self.link.close()

    # keys

    async def get_key(self, digest: str) -> KeyRecord | None:
        # On the link where there is one: this is the request path's read, and the link
        # pipelines any number of concurrent ones on one connection.
        data = await self._command("GET", f"{self.prefix}:key:{digest}")
        if isinstance(data, hiredis.ReplyError):
            raise StoreUnavailable(f"redis refused the read: {data}")
        return _record(data) if data else None

    async def find_key(self, id_or_name: str) -> KeyRecord | None:
        digest = await self._call(self.redis.get(f"{self.prefix}:keyid:{id_or_name}"))
        if digest is None:
            key_id = await self._call(self.redis.get(f"{self.prefix}:keyname:{id_or_name}"))
            if key_id is None:
                return None
            digest = await self._call(self.redis.get(f"{self.prefix}:keyid:{key_id}"))
            if digest is None:
                return None
        return await self.get_key(digest)

    async def list_keys(self) -> list[KeyRecord]:
        # Two pipelined reads for the lot (ids to digests, digests to records), not two
        # round trips a key: /admin/usage by key names 10,000 keys.
        ids = await self._call(self.redis.smembers(f"{self.prefix}:keys"))
        digests = await self._gets([("get", f"{self.prefix}:keyid:{k}") for k in ids])
        data = await self._gets([("get", f"{self.prefix}:key:{d}") for d in digests if d])
        return sorted((_record(d) for d in data if d), key=lambda r: r.created_at)

    async def key_names(self) -> dict[str, str]:
        names = await self._call(self.redis.hgetall(f"{self.prefix}:names"))
        if len(names) < await self._call(self.redis.scard(f"{self.prefix}:keys")):
            names = {r.id: r.name for r in await self.list_keys()}  # keys from before the
            await self._call(self.redis.hset(f"{self.prefix}:names", mapping=names))  # index
        return names

    async def key_page(self, after: str, limit: int, revoked: bool) -> tuple[list[KeyRecord], bool]:
        names_key = f"{self.prefix}:key-names"
        counts = await self._gets([("zcard", names_key), ("scard", f"{self.prefix}:keys")])
        if counts[0] < counts[1]:  # keys made before the name index: index them once
            records = await self.list_keys()
            await self._call(self.redis.zadd(names_key, {r.name: 0 for r in records}))
        page: list[KeyRecord] = []
        start = "(" + after if after else "-"
        chunk = max(limit + 1, 100)
        while True:
            names = await self._call(self.redis.zrangebylex(names_key, start, "+", 0, chunk))
            if not names:
                return page, False
            start = "(" + names[-1]
            ids = await self._gets([("get", f"{self.prefix}:keyname:{n}") for n in names])
            digests = await self._gets([("get", f"{self.prefix}:keyid:{i}") for i in ids if i])
            data = await self._gets([("get", f"{self.prefix}:key:{d}") for d in digests if d])
            for record in sorted((_record(d) for d in data if d), key=lambda r: r.name):
                if revoked or record.revoked_at is None:
                    if len(page) == limit:
                        return page, True
                    page.append(record)
            if len(names) < chunk:
                return page, False

    async def _gets(self, calls: list[tuple[str, str]]) -> list:
        """Many one-key reads in one round trip (a Cluster's pipeline splits them by slot)."""
        if not calls:
            return []

        async def read() -> list:
            async with self.redis.pipeline(transaction=False) as pipe:
                for command, key in calls:
                    getattr(pipe, command)(key)
                return await pipe.execute()

        return await self._call(read())

    async def last_used(self, key_ids: list[str]) -> dict[str, float]:
        if not key_ids:
            return {}
        scores = await self._call(self.redis.zmscore(f"{self.prefix}:last-used", key_ids))
        return {k: float(v) for k, v in zip(key_ids, scores, strict=True) if v is not None}

    async def create_key(self, record: KeyRecord) -> None:
        name = f"{self.prefix}:keyname:{record.name}"
        if not await self._call(self.redis.set(name, record.id, nx=True)):
            raise KeyConflict(record.name)
        await self._write(record)

    async def update_key(self, record: KeyRecord) -> None:
        old = await self.find_key(record.id)
        if old is not None and old.name != record.name:
            if not await self._call(self.redis.set(f"{self.prefix}:keyname:{record.name}",
                                                   record.id, nx=True)):
                raise KeyConflict(record.name)
            await self._call(self.redis.delete(f"{self.prefix}:keyname:{old.name}"))
            await self._call(self.redis.zrem(f"{self.prefix}:key-names", old.name))
        await self._write(record)

    async def _write(self, record: KeyRecord) -> None:
        valid: dict[FieldT, EncodableT] = {"revoked": "1" if record.revoked_at is not None else "0"}
        if record.expires_at is not None:
            valid["expires"] = str(int(record.expires_at * 1000))

        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:  # Cluster splits it by slot
                pipe.set(f"{self.prefix}:key:{record.digest}", json.dumps(asdict(record)))
                pipe.set(f"{self.prefix}:keyid:{record.id}", record.digest)
                pipe.sadd(f"{self.prefix}:keys", record.id)
                pipe.zadd(f"{self.prefix}:key-names", {record.name: 0})
                pipe.hset(f"{self.prefix}:names", record.id, record.name)
                pipe.delete(self._k(record.id, "valid"))
                pipe.hset(self._k(record.id, "valid"), mapping=valid)
                await pipe.execute()
            # after the write (and not in a pipeline: Redis Cluster refuses that)
            await self.redis.publish(f"{self.prefix}:events", record.id)

        await self._call(write())

    def on_key_change(self, callback) -> None:
        self._listeners.append(callback)
        if self._subscriber is None:
            self._subscriber = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        """Follow other replicas' key changes; reconnect for as long as it takes.

        After a reconnection every cached key is dropped: changes may have been missed
        meanwhile. While Redis is away, cached keys stay in use (nobody can change a key then).
        """
        reconnected = False
        while True:
            try:
                pubsub = self._events.pubsub()
                await pubsub.subscribe(f"{self.prefix}:events")
                if reconnected:
                    for callback in self._listeners:
                        callback(None)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        for callback in self._listeners:
                            callback(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: wait and subscribe again
                if not reconnected:
                    log.warning("redis key-change subscription lost; retrying",
                                extra={"fields": {"reason": str(exc)}})
                reconnected = True
                await asyncio.sleep(1.0)

    # admission

    async def admit(self, admission: Admission, now: float) -> Verdict:
        specs = [(check.kind, _units(check, check.limit), _units(check, check.cost),
                  int(check.period * 1000), int(check.ttl * 1000)) for check in admission.checks]
        args = [admission.request_id, int(admission.lease_ttl * 1000), orjson.dumps(specs)]
        if self.link is None:
            reply = await self._script(self._admit, ADMIT, self._admit_keys(admission), args)
        else:
            reply = await self._evalsha(ADMIT, self._admit_head(admission).command(*args))
        if reply[0] == "invalid":
            return Verdict(False, key_invalid=True)
        if reply[0] == "denied":
            index = int(reply[1]) - 1
            check = admission.checks[index]
            outcome = Outcome(check.name, check.scope, check.limit,
                              _from_units(check, float(reply[3])), float(reply[4]) / 1000)
            return Verdict(False, (outcome,), check, float(reply[2]) / 1000)
        outcomes = tuple(
            Outcome(c.name, c.scope, c.limit, _from_units(c, float(reply[1 + 2 * i])),
                    float(reply[2 + 2 * i]) / 1000)
            for i, c in enumerate(admission.checks))
        return Verdict(True, outcomes)

    def _admit_head(self, admission: Admission) -> Packed:
        """The admit call's script and keys, packed once for the key and its checks."""
        shape = (admission.key_id,
                 *[(c.kind, c.scope, c.name, c.bucket) for c in admission.checks])
        head = self._admit_heads.get(shape)
        if head is None:
            if len(self._admit_heads) > 10_000:  # old days' buckets, revoked keys
                self._admit_heads.clear()
            keys = self._admit_keys(admission)
            head = self._admit_heads[shape] = Packed(["EVALSHA", self._admit.sha, len(keys), *keys])
        return head

    def _admit_keys(self, admission: Admission) -> list[str]:
        return [self._k(admission.key_id, "valid"),
                *(self._place(admission.key_id, check) for check in admission.checks)]

    async def record(self, settlements: list[Settlement], now: float) -> None:
        if not settlements:
            return
        if not self._sums_marked:
            await self._mark_sums(min(s.day for s in settlements), now)
        # One script call settles the batch on one node; a Cluster takes a call per key (its
        # keys share one slot), all sent together: one key's settlements stay in one call, in
        # order, so a higher running number cannot land before a lower one.
        if self.cluster:
            by_key: dict[str, list[Settlement]] = {}
            for s in settlements:
                by_key.setdefault(s.key_id, []).append(s)
            groups = list(by_key.values())
        else:
            groups = [settlements]
        key_ids = {s.key_id for s in settlements}  # every key with usage (config and master too)
        *replies, added = await asyncio.gather(
            *(self._script(self._settle, SETTLE, *self._settle_call(group)) for group in groups),
            self._command("SADD", f"{self.prefix}:usage-keys", *key_ids), return_exceptions=True)
        # The sums of what was applied are added even when another call failed: retried,
        # those settlements are recognised as applied and would not be summed again.
        applied = [s for group, reply in zip(groups, replies, strict=True)
                   if not isinstance(reply, BaseException)
                   for s, result in zip(group, reply, strict=True) if result == 1]
        if applied:
            await self._add_sums(applied, now)
        for failure in (*replies, added):
            if isinstance(failure, BaseException):
                raise failure

    def _settle_call(self, settlements: list[Settlement]) -> tuple[list, list]:
        """The settle script's keys and argument for these settlements, in their order."""
        keys: list[str] = []
        specs = []
        for s in settlements:
            tokens = s.prompt_tokens + s.completion_tokens
            changes = []
            for check in s.reserved:
                keys.append(self._place(s.key_id, check))
                actual = s.cost if check.name == "budget" else tokens
                if check.kind == "rate" and check.name != "requests":
                    delta = (actual - check.cost) * check.period / check.limit * 1000
                elif check.kind == "counter":
                    delta = _units(check, actual) - _units(check, check.cost)
                else:
                    delta = 0
                changes.append((check.kind, delta))
            keys += [self._k(s.key_id, "u", s.day, s.model), self._k(s.key_id, "ud"),
                     self._k(s.key_id, "n", self.replica)]
            specs.append((s.request_id, s.number, changes, s.prompt_tokens, s.completion_tokens,
                          s.reasoning_tokens, round(s.cost * MICRO), 1 if s.error else 0,
                          int(s.retention * 1000), f"{s.day}|{s.model}"))
        return keys, [orjson.dumps(specs)]

    async def renew(self, leases: list[tuple[str, str, str]], ttl: float, now: float) -> None:
        by_key: dict[str, list[tuple[str, str]]] = {}
        for key_id, scope, request_id in leases:
            by_key.setdefault(key_id, []).append((scope, request_id))

        calls = [([self._k(key_id, "l", scope) for scope, _ in held],
                  [int(ttl * 1000), *(r for _, r in held)]) for key_id, held in by_key.items()]

        # one script per key (one slot each), sent together
        await asyncio.gather(*(self._script(self._renew, RENEW, k, a) for k, a in calls))

    async def release(self, leases: list[tuple[str, str, str]]) -> None:
        # ZREM needs no script: one command per lease, sent together
        await asyncio.gather(*(self._command("ZREM", self._k(key_id, "l", scope), request_id)
                               for key_id, scope, request_id in leases))

    # stored responses

    def _response(self, key_id: str, response_id: str) -> str | None:
        """Where a response is kept; None for an id that cannot be one (nothing is there)."""
        if not RESPONSE_ID.match(response_id):
            return None
        return f"{self.prefix}:resp:{response_id}:{key_id}"

    async def _raw(self, *args):
        """One command's reply as Redis sent it (a value stays bytes); a refusal is
        StoreUnavailable. On the link where there is one, as admission's calls are."""
        if self.link is None:
            return await self._call(self.redis.execute_command(*args))  # decoded: text
        try:
            reply = await self.link.call(*args)
        except LinkError as exc:
            raise StoreUnavailable(f"redis: {exc}") from None
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"redis refused {args[0]}: {reply}")
        return reply

    async def save_response(self, key_id: str, response_id: str, record: bytes, ttl: float,
                            max_bytes: int) -> bool:
        place = self._response(key_id, response_id)
        if place is None:
            raise ValueError(f"not a response id: {response_id!r}")
        if len(record) > max_bytes:
            return False
        await self._raw("SET", place, record, "PX", max(1, int(ttl * 1000)))
        return True

    async def read_response(self, key_id: str, response_id: str) -> bytes | None:
        place = self._response(key_id, response_id)
        if place is None:
            return None
        reply = await self._raw("GET", place)
        return reply.encode() if type(reply) is str else reply

    async def delete_response(self, key_id: str, response_id: str) -> bool:
        place = self._response(key_id, response_id)
        return place is not None and await self._raw("DEL", place) == 1


def _text(reply):
    """hiredis answers bytes; the scripts' answers are read as text."""
    if type(reply) is bytes:
        return reply.decode()
    if type(reply) is list:
        return [_text(r) for r in reply]
    return reply


def _units(check: Check, value: float) -> int | float:
    """Counters hold integers: the budget in micro-dollars, tokens as they are."""
    if check.name == "budget":
        return round(value * MICRO)
    return math.ceil(value) if check.kind == "counter" else value


def _from_units(check: Check, value: float) -> float:
    return value / MICRO if check.name == "budget" else value


def _record(data: str) -> KeyRecord:
    fields = json.loads(data)
    fields["models"] = tuple(fields.get("models") or ("*",))
    return KeyRecord(**fields)
