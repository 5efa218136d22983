"""The /admin views the console reads, after real traffic, on the memory store and on Redis.

One gateway per store in front of loopback upstreams: one that answers, one that fails
(its breaker opens after two failures), one that reports vLLM load. Keys make requests;
their last use, the usage (JSON and CSV), the overview's counts and the routes' health
must show them.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.admin_views import MASK, mask
from tests.gateway_process import GatewayProcess, admin, new_key, usage_of, wait_for
from tests.redis_server import RedisServer
from tests.upstream import Reply, Upstream

MASTER = "sk-console-master-0123456789"
CONFIG_KEY = "sk-declared-in-the-file-0123456789"
LITERAL_UPSTREAM_KEY = "sk-literal-upstream-abcdef0123456789"
CONFIG = """
server: {{watch_config: 0}}
{store}
routing: {{breaker: {{failures: 2, window: 60, cooldown: 600}}}}
providers:
  up: {{profile: openai, base_url: "{up}", api_key: "${{UP_KEY}}"}}
  bad: {{profile: openai, base_url: "{bad}", api_key: "{literal}"}}
  local: {{profile: vllm, base_url: "{local}", metrics_interval: 0.1}}
models:
  good: {{targets: [{{provider: up, model: m}}]}}
  failing: {{targets: [{{provider: bad, model: m}}]}}
  served:
    groups: [{{strategy: vllm-load, targets: [{{provider: local, model: upstream-model}}]}}]
keys:
  declared:
    key: "{config_key}"
    models: ["*"]
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    servers = {name: Upstream().start() for name in ("up", "bad", "local")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(request, upstreams, tmp_path_factory) -> Iterator[GatewayProcess]:
    redis = RedisServer("redis").start() if request.param == "redis" else None
    path = tmp_path_factory.mktemp(request.param) / "routes.yaml"
    path.write_text(CONFIG.format(
        store=f'store: {{url: "{redis.url}"}}' if redis else "", literal=LITERAL_UPSTREAM_KEY,
        config_key=CONFIG_KEY, **{name: u.url for name, u in upstreams.items()}))
    try:
        with GatewayProcess(path, {"GATEWAY_MASTER_KEY": MASTER, "UP_KEY": "sk-up-env"}) as process:
            process.redis = redis  # type: ignore[attr-defined]
            yield process
    finally:
        if redis is not None:
            redis.stop()


def chat(gateway: GatewayProcess, key: str, model: str = "good") -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def get(gateway: GatewayProcess, path: str) -> httpx.Response:
    response = admin(gateway, "GET", path)
    assert response.status_code == 200, response.text
    return response


def all_keys(gateway: GatewayProcess, limit: int, extra: str = "") -> list[dict]:
    """Every key, page after page."""
    keys: list[dict] = []
    after = ""
    while True:
        page = get(gateway, f"/admin/keys?limit={limit}&after={after}{extra}").json()
        assert len(page["data"]) <= limit
        keys += page["data"]
        if not page["has_more"]:
            assert page["next_after"] is None
            return keys
        assert page["next_after"] == page["data"][-1]["name"]
        after = page["next_after"]


def test_a_keys_requests_show_as_its_last_use_usage_and_the_overview(gateway):
    before = get(gateway, "/admin/overview").json()
    key = new_key(gateway, "console-user")
    fresh = next(k for k in all_keys(gateway, 1000) if k["name"] == "console-user")
    assert fresh["last_used_at"] is None
    started = time.time()
    for _ in range(3):
        assert chat(gateway, key).status_code == 200
    usage = usage_of(gateway, "console-user", 3)
    assert usage["requests"] == 3 and usage["prompt_tokens"] > 0

    listed = next(k for k in all_keys(gateway, 1000) if k["name"] == "console-user")
    assert started - 1 <= listed["last_used_at"] <= time.time() + 1
    shown = get(gateway, "/admin/keys/console-user").json()
    assert shown["last_used_at"] == listed["last_used_at"]

    after = get(gateway, "/admin/overview").json()
    for span in ("today", "month"):
        assert after[span]["requests"] - before[span]["requests"] == 3
        assert after[span]["prompt_tokens"] - before[span]["prompt_tokens"] == \
            usage["prompt_tokens"]
        assert after[span]["completion_tokens"] - before[span]["completion_tokens"] == \
            usage["completion_tokens"]
    assert after["month"]["requests"] >= after["today"]["requests"]
    assert after["in_flight"] == 0
    assert after["config"]["hash"] == httpx.get(gateway.url + "/readyz").json()["config"]
    assert after["config"]["path"].endswith("routes.yaml")
    assert after["config"]["loaded_at"] <= time.time()


def test_failures_open_the_breaker_and_count_as_errors(gateway, upstreams):
    key = new_key(gateway, "console-failing")
    before = get(gateway, "/admin/overview").json()["today"]
    upstreams["bad"].then(Reply(status=500), Reply(status=500))
    assert chat(gateway, key, "failing").status_code >= 500
    routes = {r["alias"]: r for r in get(gateway, "/admin/routes").json()}
    target = routes["failing"]["groups"][0]["targets"][0]
    assert target["breaker"] == "closed" and target["errors"] == 1  # one failure of two
    assert chat(gateway, key, "failing").status_code >= 500
    assert chat(gateway, key, "good").status_code == 200

    routes = {r["alias"]: r for r in get(gateway, "/admin/routes").json()}
    assert sorted(routes) == ["failing", "good", "served"]
    failing = routes["failing"]["groups"][0]
    assert failing["strategy"] == "weighted"
    target = failing["targets"][0]
    assert target["breaker"] == "open" and target["retry_in_s"] > 500
    assert target | {"in_flight": 0, "provider": "bad", "model": "m",
                     "name": "bad/m"} == target
    assert "chat" in target["apis"] and "embeddings" in target["apis"]
    good = routes["good"]["groups"][0]["targets"][0]
    assert good["breaker"] == "closed" and good["latency_ms"] > 0 and good["load"] is None

    usage_of(gateway, "console-failing", 3)
    today = get(gateway, "/admin/overview").json()["today"]
    assert today["errors"] - before["errors"] == 2
    assert today["requests"] - before["requests"] == 3


def test_routes_show_a_vllm_servers_load(gateway, upstreams):
    upstreams["local"].load = {"running": 3.0, "waiting": 2.0, "kv_cache": 0.25}

    def load() -> dict | None:
        routes = {r["alias"]: r for r in get(gateway, "/admin/routes").json()}
        found = routes["served"]["groups"][0]["targets"][0]["load"]
        return found if found and found["running"] == 3 else None

    found = wait_for(load, 10, "the vLLM load reading in /admin/routes")
    assert found["waiting"] == 2 and found["kv_cache"] == 0.25
    routes = {r["alias"]: r for r in get(gateway, "/admin/routes").json()}
    assert routes["served"]["groups"][0]["strategy"] == "vllm-load"


def test_keys_come_in_pages_by_name(gateway):
    names = [f"page-{n:03d}" for n in range(23)]
    for name in reversed(names):  # made in the opposite order: pages go by name
        new_key(gateway, name)
    assert admin(gateway, "DELETE", "/admin/keys/page-005").status_code == 200
    if gateway.redis is not None:  # keys made before the name index: it is built again
        gateway.redis.command("DEL", "gw:key-names")

    every = all_keys(gateway, 1000)
    listed = all_keys(gateway, 4)
    assert [k["name"] for k in listed] == sorted(k["name"] for k in every)
    assert [k["name"] for k in listed if k["name"].startswith("page-")] == \
        [n for n in names if n != "page-005"]
    assert "declared" in [k["name"] for k in listed]  # routes.yaml's, merged in by name
    with_revoked = all_keys(gateway, 5, "&revoked=1")
    assert "page-005" in [k["name"] for k in with_revoked]

    page = get(gateway, "/admin/keys?limit=3&after=page-010").json()
    assert [k["name"] for k in page["data"]] == ["page-011", "page-012", "page-013"]
    assert page["has_more"] and page["next_after"] == "page-013"
    assert len(get(gateway, "/admin/keys").json()["data"]) <= 100
    for wrong in ("0", "1001", "ten", "-1"):
        response = admin(gateway, "GET", f"/admin/keys?limit={wrong}")
        assert response.status_code == 400, wrong
        assert response.json()["error"]["param"] == "limit"


def test_usage_by_day_and_model_is_every_keys_rows_summed(gateway):
    """Without a key, /admin/usage answers from the store's per-(day, model) sums: after
    traffic of several keys on two models, they equal the keys' rows summed."""
    for name in ("sum-a", "sum-b"):
        key = new_key(gateway, name)
        assert chat(gateway, key).status_code == 200
        assert chat(gateway, key, "served").status_code == 200
        usage_of(gateway, name, 2)
    fields = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "errors")
    since = "&since=2020-01-01"

    def summed(by: str) -> dict:
        groups: dict = {}
        for row in get(gateway, f"/admin/usage?by=day,key,model{since}").json()["data"]:
            group = groups.setdefault(tuple(row[b] for b in by.split(",")),
                                      dict.fromkeys(fields, 0) | {"cost": 0.0})
            for name in fields:
                group[name] += row[name]
            group["cost"] = round(group["cost"] + row["cost"], 6)
        return groups

    every = get(gateway, f"/admin/usage?by=day,key,model{since}").json()
    for by in ("day,model", "model", "day"):
        answer = get(gateway, f"/admin/usage?by={by}{since}").json()
        assert {tuple(r[b] for b in by.split(",")): {k: r[k] for k in (*fields, "cost")}
                for r in answer["data"]} == summed(by), by
        assert answer["totals"] == every["totals"], by
    served = get(gateway, f"/admin/usage?by=model&model=served{since}").json()["data"]
    assert [(r["model"], r["requests"] >= 2) for r in served] == [("served", True)]


def test_usage_by_key_comes_largest_first_a_page_at_a_time(gateway):
    """By key alone, /admin/usage reads the store's per-key sums: they equal the keys' rows
    summed; `sort` puts the largest first, `limit` and `offset` take a page, and `totals`
    and `total_groups` stay those of every key, in JSON as in the CSV."""
    for name, requests in (("top-a", 3), ("top-b", 1), ("top-c", 2)):
        key = new_key(gateway, name)
        for _ in range(requests):
            assert chat(gateway, key).status_code == 200
        usage_of(gateway, name, requests)
    since = "&since=2020-01-01"
    rows = get(gateway, f"/admin/usage?by=day,key,model{since}").json()
    summed: dict = {}
    for row in rows["data"]:
        summed[row["key"]] = summed.get(row["key"], 0) + row["requests"]
    whole = get(gateway, f"/admin/usage?by=key{since}").json()
    assert {r["key"]: r["requests"] for r in whole["data"]} == summed
    assert [r["key"] for r in whole["data"]] == sorted(summed)  # by label without a sort
    assert whole["totals"] == rows["totals"] and whole["has_more"] is False
    ranked = sorted(summed, key=lambda k: (-summed[k], k))
    first = get(gateway, f"/admin/usage?by=key&sort=requests&limit=2{since}").json()
    assert [r["key"] for r in first["data"]] == ranked[:2]
    assert first["has_more"] is True and first["total_groups"] == len(summed)
    assert first["totals"] == whole["totals"]
    rest = get(gateway, f"/admin/usage?by=key&sort=requests&limit=2&offset=2{since}").json()
    assert [r["key"] for r in rest["data"]] == ranked[2:4]
    assert rest["has_more"] is (len(ranked) > 4)
    listed = list(csv.reader(io.StringIO(
        get(gateway, f"/admin/usage?by=key&sort=requests&format=csv{since}").text)))
    assert [line[0] for line in listed[1:]] == ranked
    one = get(gateway, f"/admin/usage?by=key&key=top-c{since}").json()["data"]
    assert [(r["key"], r["requests"]) for r in one] == [("top-c", 2)]
    for wrong, param in (("sort=name", "sort"), ("limit=0", "limit"), ("limit=10001", "limit"),
                         ("offset=-1", "offset"), ("limit=x", "limit")):
        response = admin(gateway, "GET", f"/admin/usage?by=key&{wrong}")
        assert response.status_code == 400, wrong
        assert response.json()["error"]["param"] == param, wrong


def test_usage_as_csv(gateway):
    key = new_key(gateway, "@csv-user")  # a name a spreadsheet would run as a formula
    assert chat(gateway, key).status_code == 200
    usage = usage_of(gateway, "@csv-user", 1)
    response = get(gateway, "/admin/usage?format=csv&by=key,model&key=@csv-user")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["key", "model", "requests", "prompt_tokens", "completion_tokens",
                       "reasoning_tokens", "cost", "errors"]
    assert rows[1:] == [["'@csv-user", "good", "1", str(usage["prompt_tokens"]),
                         str(usage["completion_tokens"]), "0", str(usage["cost"]), "0"]]
    by_day = list(csv.reader(io.StringIO(get(gateway, "/admin/usage?format=csv&by=day").text)))
    assert by_day[0][0] == "day" and len(by_day) >= 2
    wrong = admin(gateway, "GET", "/admin/usage?format=xml")
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "format"


def test_config_is_the_file_in_force_with_secrets_masked(gateway):
    answer = get(gateway, "/admin/config").json()
    assert answer["hash"] == httpx.get(gateway.url + "/readyz").json()["config"]
    assert answer["path"] == str(gateway.config)
    text = answer["text"]
    assert LITERAL_UPSTREAM_KEY not in text and CONFIG_KEY not in text
    assert text.count(MASK) == 2
    assert 'api_key: "${UP_KEY}"' in text  # a reference is no secret
    assert "breaker: {failures: 2" in text


def test_a_refused_reload_says_the_file_the_path_and_the_reason(gateway):
    path: Path = gateway.config
    good = path.read_text()
    path.write_text(good.replace("provider: bad,", "provider: missing,"))
    try:
        response = admin(gateway, "POST", "/admin/reload")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_config"
        assert str(path) in error["message"] and "models.failing" in error["message"]
        last = get(gateway, "/admin/overview").json()["config"]["last_reload"]
        assert last["ok"] is False and last["file"] == str(path)
        assert last["path"].startswith("models.failing") and "missing" in last["reason"]
        assert last["trigger"] == "POST /admin/reload"
    finally:
        path.write_text(good)
    assert admin(gateway, "POST", "/admin/reload").status_code == 200
    last = get(gateway, "/admin/overview").json()["config"]["last_reload"]
    assert last["ok"] is True and last["reason"] is None


def test_masking_literals_but_not_references():
    text = mask('api_key: "${OPENAI_KEY}"\n  token: abcdefgh # why\npassword: \'hunter22\'\n'
                'note: a sk-proj-0123456789abcdef here\nheaders: {Authorization: "Bearer abc.def-123456"}\n'
                "max_tokens: 5\n")
    assert "${OPENAI_KEY}" in text and "abcdefgh" not in text and "# why" in text
    assert "hunter22" not in text and "0123456789abcdef" not in text and "abc.def" not in text
    assert "max_tokens: 5" in text  # a name ending in "tokens" with a number is no secret
