"""Keys, limits and usage across real gateway processes sharing a real Redis.

Keys are made through the admin API (the master key), requests go through
the gateway to the recording upstream, and what Redis holds is read back
through the admin API: what an admin would see.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.apis.chat.surface import estimate_prompt
from tests.conftest import assert_openai_error
from tests.gateway_process import GatewayProcess, wait_for
from tests.redis_server import RedisServer
from tests.upstream import Gate, Reply, chunk, token_stream

MASTER = "sk-limits-master-0123456789"
CHAT = "/v1/chat/completions"

CONFIG = """
store: {{url: "{redis}", on_failure: {policy}}}
limits: {{completion_estimate: 100}}
providers:
  up: {{profile: vllm, base_url: "{upstream}"}}
models:
  m:
    price: {{input: 1.0, output: 2.0}}
    targets: [{{provider: up, model: um}}]
  other:
    targets: [{{provider: up, model: uo}}]
  fanned:      # n > 1 sent as n requests of one answer each
    params: {{n: {{min: 1, max: 1, on_range: fanout}}}}
    targets: [{{provider: up, model: uf}}]
"""


def start_gateway(tmp_path, redis: RedisServer, upstream, policy="fail-closed",
                  name="routes.yaml") -> GatewayProcess:
    path = tmp_path / name
    path.write_text(CONFIG.format(redis=redis.url, policy=policy, upstream=upstream.url))
    return GatewayProcess(path, env={"GATEWAY_MASTER_KEY": MASTER}).start()


def admin(gateway, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, gateway.url + path, json=body, timeout=10,
                         headers={"Authorization": f"Bearer {MASTER}"})


def new_key(gateway, name: str, **limits) -> str:
    response = admin(gateway, "POST", "/admin/keys", {"name": name, "limits": limits})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def ask(gateway, key: str, model: str = "m", timeout: float = 10, **extra) -> httpx.Response:
    return httpx.post(gateway.url + CHAT, timeout=timeout,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                            **extra})


def usage_of(gateway, key_name: str) -> dict:
    return admin(gateway, "GET", f"/admin/usage?key={key_name}&by=key").json()["totals"]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(redis, primary, tmp_path_factory) -> Iterator[GatewayProcess]:
    process = start_gateway(tmp_path_factory.mktemp("limits"), redis, primary)
    yield process
    process.stop()


def test_requests_per_minute_with_openai_headers(gateway):
    key = new_key(gateway, "rpm-team", requests_per_minute=3)

    answers = [ask(gateway, key) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
    assert answers[0].headers["x-ratelimit-reset-requests"] == "20s"  # one slot every 20 s
    refused = answers[3]
    error = assert_openai_error(refused, 429, code="rate_limit_exceeded")
    assert "requests per minute" in error["message"]
    assert 19 <= int(refused.headers["retry-after"]) <= 20


def test_rate_limit_headers_are_sent_for_the_per_minute_limits_a_key_has(gateway):
    """As the README says: each per-minute limit of the key gives its three headers; a key
    with none gets none, and neither does the streamed answer of one without them."""
    def ratelimit_headers(answer: httpx.Response) -> set[str]:
        return {h for h in answer.headers if h.startswith("x-ratelimit-")}

    plain = new_key(gateway, "no-rate-limits", tokens_per_day=100_000)
    requests_only = new_key(gateway, "requests-only", requests_per_minute=100)
    both = new_key(gateway, "both-rates", requests_per_minute=100, tokens_per_minute=100_000)

    assert ratelimit_headers(ask(gateway, plain)) == set()
    assert ratelimit_headers(ask(gateway, plain, stream=True)) == set()
    assert ratelimit_headers(ask(gateway, requests_only)) == {
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"}
    assert ratelimit_headers(ask(gateway, both, stream=True)) == {
        f"x-ratelimit-{what}-{name}" for what in ("limit", "remaining", "reset")
        for name in ("requests", "tokens")}


def test_tokens_per_minute_reserves_then_reconciles(gateway, primary):
    key = new_key(gateway, "tpm-team", tokens_per_minute=6000)

    first = ask(gateway, key, max_tokens=1000)
    assert first.headers["x-ratelimit-limit-tokens"] == "6000"
    reserved = 6000 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert 1000 <= reserved <= 1020  # 1000 for the answer and a few for the prompt

    # the upstream used 18 tokens: once settled, the next request sees about 5982 - its own
    wait_for(lambda: usage_of(gateway, "tpm-team")["requests"] == 1, 5, "the settlement")
    second = ask(gateway, key, max_tokens=1000)
    remaining = int(second.headers["x-ratelimit-remaining-tokens"])
    assert 6000 - 18 - reserved <= remaining <= 6000 - 18 - reserved + 200  # + refill meanwhile

    too_big = ask(gateway, key, max_tokens=7000)
    error = assert_openai_error(too_big, 429, code="request_too_large")
    assert "limit 6000" in error["message"]


@pytest.mark.parametrize("mode", ["plain", "stream"])
def test_day_reservation_is_replaced_by_real_usage(gateway, mode):
    key = new_key(gateway, f"tpd-{mode}", tokens_per_day=5000)
    stream = {"stream": True} if mode == "stream" else {}

    assert ask(gateway, key, max_tokens=3000, **stream).status_code == 200
    wait_for(lambda: usage_of(gateway, f"tpd-{mode}")["requests"] == 1, 5, "the settlement")
    # 3000+ reserved, but about 20 really used: another 3000 fits in 5000
    assert ask(gateway, key, max_tokens=3000, **stream).status_code == 200
    totals = usage_of(gateway, f"tpd-{mode}")
    assert totals["prompt_tokens"] >= 11 and totals["completion_tokens"] >= 1
    assert totals["cost"] > 0  # priced: $1 and $2 per million


TOKENS = json.loads((Path(__file__).parents[1] / "tokens.json").read_text())  # o200k_base's
PROMPT = [{"role": "user", "content": "hi"}]


def stream(gateway, key: str, leave_after: int | None = None, request_id: str = "",
           **extra) -> list[dict]:
    """Stream a completion; leave once `leave_after` events have come (None: read to the end)."""
    body = {"model": "m", "stream": True, "max_tokens": 5000, "messages": PROMPT, **extra}
    headers = {"Authorization": f"Bearer {key}"} | ({"x-request-id": request_id} if request_id
                                                   else {})
    received = []
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        with client.stream("POST", CHAT, headers=headers, json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    received.append(json.loads(line[6:]))
                if len(received) == leave_after:
                    break
    return received


def charge(gateway, name: str) -> dict:
    return wait_for(lambda: (t := usage_of(gateway, name))["requests"] and t, 5, "the charge")


@pytest.mark.parametrize("per_event", [1, 4])
@pytest.mark.parametrize("field", ["content", "reasoning_content", "arguments"])
def test_a_client_that_leaves_a_stream_is_charged_the_tokens_it_was_sent(gateway, primary, field,
                                                                          per_event):
    """The upstream sends 240 known tokens, one or four an event, and waits; the client reads
    them all and leaves before any usage comes. It pays for those tokens (within 10%), not
    the 5000 it reserved, and the prompt at the admission's estimate."""
    name = f"leaver-{field}-{per_event}"
    key = new_key(gateway, name, tokens_per_day=100_000)
    tokens = TOKENS["arguments" if field == "arguments" else "prose"][:240]
    events = token_stream({"model": "um"}, tokens, per_event, field)
    gate = Gate()
    primary.then(Reply(events=[*events, gate]))

    stream(gateway, key, leave_after=len(events))
    gate.open()

    totals = charge(gateway, name)
    assert abs(totals["completion_tokens"] - 240) <= 24, totals
    assert totals["prompt_tokens"] == estimate_prompt({"messages": PROMPT})


def test_a_client_that_leaves_a_fanned_out_stream_is_charged_the_tokens_it_was_sent(gateway,
                                                                                    primary):
    """n=2 on a target that makes one answer at a time: two upstream streams of 120 known
    tokens merged into one. The client reads both and leaves: it pays for the 240."""
    key = new_key(gateway, "fanned-leaver", tokens_per_day=100_000)
    events = token_stream({"model": "uf"}, TOKENS["prose"][:120], 1)
    gates = [Gate(), Gate()]
    primary.then(*(Reply(events=[*events, gate]) for gate in gates))

    received = stream(gateway, key, leave_after=2 * len(events), model="fanned", n=2)
    for gate in gates:
        gate.open()

    assert {choice["index"] for event in received for choice in event["choices"]} == {0, 1}
    totals = charge(gateway, "fanned-leaver")
    assert abs(totals["completion_tokens"] - 240) <= 24, totals


def test_a_stream_that_breaks_off_is_charged_the_tokens_it_relayed(gateway, primary):
    tokens = TOKENS["prose"][:300]
    key = new_key(gateway, "broken-off", tokens_per_day=100_000)
    primary.then(Reply(events=token_stream({"model": "um"}, tokens, 5), done=False))

    received = stream(gateway, key, request_id="broken-off-1")
    assert len(received) == 1 + 60 + 1  # the role, 60 of text, the error event

    charged = charge(gateway, "broken-off")
    assert abs(charged["completion_tokens"] - 300) <= 30
    line = wait_for(lambda: gateway.request_log("broken-off-1"), 5, "the request's log line")
    assert (line["prompt_tokens"], line["completion_tokens"]) == (
        charged["prompt_tokens"], charged["completion_tokens"])  # the line says what was charged


def test_a_usage_on_the_way_does_not_cover_what_came_after_it(gateway, primary):
    """100 tokens with the usage so far on each event, 100 more without, then the stream
    breaks: the charge is the upstream's 100 and the 100 counted after them."""
    key = new_key(gateway, "usage-then-more", tokens_per_day=100_000)
    tokens = TOKENS["prose"][:200]
    events = (token_stream({"model": "um"}, tokens[:100], 4, usage_prompt=50)
              + token_stream({"model": "um"}, tokens[100:], 4)[1:])
    primary.then(Reply(events=events, done=False))

    stream(gateway, key)

    totals = charge(gateway, "usage-then-more")
    assert totals["prompt_tokens"] == 50 and abs(totals["completion_tokens"] - 200) <= 10


def test_usage_a_client_asked_for_counts_what_it_was_sent_as_the_charge_does(gateway, primary):
    """No usage from the upstream: the usage event the gateway adds is the same count."""
    tokens = TOKENS["prose"][:300]
    key = new_key(gateway, "estimated", tokens_per_day=100_000)
    events = token_stream({"model": "um"}, tokens, 6) + [chunk({"model": "um"}, {}, "stop")]
    primary.then(Reply(events=events))

    usage = stream(gateway, key, stream_options={"include_usage": True})[-1]["usage"]

    assert usage["estimated"] is True and abs(usage["completion_tokens"] - 300) <= 30
    totals = charge(gateway, "estimated")
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (
        usage["prompt_tokens"], usage["completion_tokens"])


@pytest.mark.parametrize("usage", ["continuous", "first event"])
def test_a_prompt_count_the_upstream_sent_on_the_way_is_charged(gateway, primary, usage):
    """vLLM's continuous_usage_stats put the usage so far on every event; some upstreams send
    the prompt's count first. A client that leaves pays the real prompt, and with continuous
    usage the upstream's own completion count."""
    name = f"real-prompt-{usage.replace(' ', '-')}"
    key = new_key(gateway, name, tokens_per_day=100_000)
    tokens = TOKENS["prose"][:200]
    request = {"model": "um"}
    if usage == "continuous":
        events = token_stream(request, tokens, 4, usage_prompt=777)
    else:
        events = token_stream(request, tokens, 4)
        events.insert(0, {**chunk(request, {}), "choices": [], "usage": {"prompt_tokens": 777}})
    gate = Gate()
    primary.then(Reply(events=[*events, gate]))

    stream(gateway, key, leave_after=len(events) - (usage == "first event"))  # no usage shown
    gate.open()

    totals = charge(gateway, name)
    assert totals["prompt_tokens"] == 777
    if usage == "continuous":
        assert totals["completion_tokens"] == 200
    else:
        assert abs(totals["completion_tokens"] - 200) <= 20


def test_in_flight_limit_under_concurrency(gateway, primary):
    key = new_key(gateway, "in-flight-team", in_flight=2)
    gates = [Gate(), Gate()]
    primary.then(*[Reply(events=[chunk({"model": "um"}, {"content": "x"}), g]) for g in gates])

    def held_stream() -> int:
        return ask(gateway, key, stream=True, timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(held_stream) for _ in gates]
        wait_for(lambda: len(primary.requests) >= 2, 10, "two streams in flight")
        refused = ask(gateway, key)
        for gate in gates:
            gate.open()
        assert [f.result() for f in held] == [200, 200]

    error = assert_openai_error(refused, 429)
    assert "in flight" in error["message"]
    wait_for(lambda: ask(gateway, key).status_code == 200, 5, "a slot after the streams ended")


def test_two_gateways_share_one_limit(redis, primary, tmp_path):
    """Two replicas, one Redis, 24 clients at once: admitted within 1% of the limit."""
    other = start_gateway(tmp_path, redis, primary, name="replica.yaml")
    first = start_gateway(tmp_path, redis, primary, name="replica-b.yaml")
    try:
        limit = 600
        key = new_key(first, "shared", requests_per_minute=limit)
        results: list[int] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as http:
                for i in range(60):
                    gateway = (first, other)[(n + i) % 2]
                    status = http.post(gateway.url + CHAT, json={
                        "model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code
                    with lock:
                        results.append(status)

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
        admitted = results.count(200)
        refill = elapsed * limit / 60  # GCRA: slots come back steadily, 10 a second here
        print(f"\n2 gateways, 24 clients, {len(results)} requests in {elapsed:.2f}s: "
              f"{admitted} admitted; the limit allows {limit} + {refill:.1f} refilled")
        assert set(results) <= {200, 429}
        assert limit - limit * 0.01 <= admitted <= limit + refill + limit * 0.01
    finally:
        other.stop()
        first.stop()


def test_revoke_is_seen_by_another_replica_within_a_second(gateway, redis, primary, tmp_path):
    replica = start_gateway(tmp_path, redis, primary, name="replica-c.yaml")
    try:
        key = new_key(gateway, "to-revoke")  # no limits: only the key cache can say no
        assert ask(replica, key).status_code == 200
        assert admin(gateway, "DELETE", "/admin/keys/to-revoke").status_code == 200
        revoked_at = time.monotonic()
        wait_for(lambda: ask(replica, key).status_code == 401, 1.0, "the other replica to refuse")
        print(f"\nrevocation reached the other replica in {time.monotonic() - revoked_at:.3f}s")
    finally:
        replica.stop()


@pytest.mark.parametrize("policy", ["fail-closed", "fail-open"])
def test_redis_killed_and_restarted(policy, primary, tmp_path):
    redis = RedisServer("redis", durable=True).start()
    gateway = start_gateway(tmp_path, redis, primary, policy=policy)
    try:
        key = new_key(gateway, "survivor", requests_per_minute=1000)
        assert [ask(gateway, key).status_code for _ in range(5)] == [200] * 5
        redis.kill()

        during = [ask(gateway, key) for _ in range(3)]
        if policy == "fail-closed":
            assert [r.status_code for r in during] == [503] * 3
            assert_openai_error(during[0], 503, code="store_unavailable")
        else:
            assert [r.status_code for r in during] == [200] * 3
        assert gateway.process.poll() is None  # no crash

        redis.start()
        served = 5 + (3 if policy == "fail-open" else 0)
        wait_for(lambda: ask(gateway, key).status_code == 200, 10, "service after the restart")
        # every request that completed is in the usage, the outage's included
        deadline = time.monotonic() + 10
        while (recorded := usage_of(gateway, "survivor")["requests"]) != served + 1:
            assert time.monotonic() < deadline, f"{recorded} usage records, not {served + 1}"
            time.sleep(0.05)
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'gateway_store_errors_total{operation="admit"}' in metrics
    finally:
        gateway.stop()
        redis.stop()


def test_admin_api_needs_the_master_key(gateway):
    key = new_key(gateway, "not-admin")
    response = httpx.get(gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {key}"})
    assert_openai_error(response, 403, code="master_key_required")
    assert_openai_error(httpx.get(gateway.url + "/admin/keys"), 401)
    conflict = admin(gateway, "POST", "/admin/keys", {"name": "not-admin"})
    assert_openai_error(conflict, 409, code="key_exists")
    bad = admin(gateway, "POST", "/admin/keys", {"name": "x", "limits": {"rpm": 5}})
    assert_openai_error(bad, 400)
    form = httpx.post(gateway.url + "/admin/keys", content="name=x",
                      headers={"Authorization": f"Bearer {MASTER}",
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert "'Content-Type: application/json'" in assert_openai_error(
        form, 400, code="invalid_json")["message"]
    multipart = httpx.post(gateway.url + "/admin/keys", content="x",
                           headers={"Authorization": f"Bearer {MASTER}",
                                    "Content-Type": "multipart/form-data; boundary=b"})
    assert_openai_error(multipart, 415, code="unsupported_content_type")


@pytest.mark.parametrize("expiry", [
    {"expires_in": "984979w"},  # found by the 1000-example schemathesis run: was a 500
    {"expires_in": "12345w"},
    {"expires_in": "9" * 400 + "s"},
    {"expires_at": "10000-01-01"},
    {"expires_at": 10**20},
    {"expires_in": "soon"},
])
def test_expiries_beyond_year_9999_or_unreadable_are_a_400(gateway, expiry):
    answer = admin(gateway, "POST", "/admin/keys", {"name": "far-future", **expiry})
    assert_openai_error(answer, 400, param=next(iter(expiry)))


def gateway_cli(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=30,
                          env={"GATEWAY_URL": gateway.url, "GATEWAY_MASTER_KEY": MASTER,
                               "PATH": ""})


def test_cli_and_admin_api_round_trip(gateway):
    created = gateway_cli(gateway, "keys", "create", "cli-team", "--models", "m",
                          "--rpm", "50", "--model-limit", "m:tpm=9000", "--expires", "30d",
                          "--meta", "owner=ops", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["key"]
    assert secret.startswith("sk-gw-")

    listing = gateway_cli(gateway, "keys", "list")
    assert "cli-team" in listing.stdout and "rpm 50" in listing.stdout and secret not in listing.stdout

    assert ask(gateway, secret).status_code == 200
    assert_openai_error(ask(gateway, secret, model="other"), 404)  # only `m` for this key

    updated = gateway_cli(gateway, "keys", "update", "cli-team", "--rpm", "7", "--json")
    assert json.loads(updated.stdout)["limits"]["requests_per_minute"] == 7
    assert ask(gateway, secret).headers["x-ratelimit-limit-requests"] == "7"

    shown = gateway_cli(gateway, "keys", "show", "cli-team")  # --rpm changed only rpm
    assert "owner=ops" in shown.stdout and "m:tpm 9000" in shown.stdout

    cleared = gateway_cli(gateway, "keys", "show", "cli-team", "--json")
    assert json.loads(cleared.stdout)["limits"] == {
        "requests_per_minute": 7, "models": {"m": {"tokens_per_minute": 9000}}}

    wait_for(lambda: usage_of(gateway, "cli-team")["requests"] == 2, 5, "usage")
    table = gateway_cli(gateway, "usage", "--key", "cli-team", "--by", "model")
    assert table.returncode == 0 and "total" in table.stdout
    rows = gateway_cli(gateway, "usage", "--key", "cli-team", "--by", "day,model", "--csv")
    assert rows.stdout.splitlines()[0].startswith("day,model,requests")
    assert ",m,2," in rows.stdout
    top = gateway_cli(gateway, "usage", "--by", "key", "--sort", "requests", "--top", "1", "--json")
    answer = json.loads(top.stdout)
    assert len(answer["data"]) == 1 and answer["total_groups"] >= 1
    assert answer["data"][0]["requests"] == max(r["requests"] for r in json.loads(gateway_cli(
        gateway, "usage", "--by", "key", "--json").stdout)["data"])

    revoked = gateway_cli(gateway, "keys", "revoke", "cli-team")
    assert "revoked" in revoked.stdout
    assert_openai_error(ask(gateway, secret), 401)

    missing = gateway_cli(gateway, "keys", "show", "nobody")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_per_model_limit_within_a_key(gateway):
    response = admin(gateway, "POST", "/admin/keys", {
        "name": "per-model", "limits": {"models": {"m": {"requests_per_minute": 1}}}})
    key = response.json()["key"]

    assert ask(gateway, key).status_code == 200
    refused = ask(gateway, key)
    error = assert_openai_error(refused, 429)
    assert "for model 'm'" in error["message"]
    assert ask(gateway, key, model="other").status_code == 200  # other models are not limited


def test_monthly_budget_from_model_prices(gateway):
    # m costs $1 (input) and $2 (output) per million tokens; a request reserving 1,000 output
    # tokens reserves about $0.002, so a $0.003 budget admits one at a time
    key = new_key(gateway, "budgeted", budget_per_month=0.003)

    assert ask(gateway, key, max_tokens=1000).status_code == 200
    wait_for(lambda: usage_of(gateway, "budgeted")["requests"] == 1, 5, "the first charge")
    assert ask(gateway, key, max_tokens=1000).status_code == 200  # $0.000025 really spent
    too_much = ask(gateway, key, max_tokens=2000)  # $0.004 reserved: over the budget
    error = assert_openai_error(too_much, 429, code="request_too_large")
    assert "budget" in error["message"]
