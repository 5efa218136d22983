"""Routing that keeps answering, with two real upstreams (a and b) behind one gateway.

Strategies, failover within a group and across groups, the breaker, vLLM load
routing from /metrics, context-window fallback, wildcards, and hot reload
under load.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config.compiled import LoadMetrics, LoadWeights
from gateway.monitor import parse_load
from tests.conftest import assert_openai_error
from tests.gateway_process import GatewayProcess, free_port, wait_for
from tests.profiles import PROFILES
from tests.upstream import Gate, Reply, Upstream, chunk

KEY = "sk-routing-tests-0123456789"
MASTER = "sk-routing-master-0123456789"
CHAT = "/v1/chat/completions"

CONFIG = """
server: {{watch_config: 0.2}}
routing:
  breaker: {{failures: 2, window: 30, cooldown: 1}}
providers:
  a: {{profile: vllm, base_url: "{a}", metrics_interval: 0.1}}
  b: {{profile: vllm, base_url: "{b}", metrics_interval: 0.1}}
  a-hasty: {{profile: vllm, base_url: "{a}", timeouts: {{first_byte: 0.5}}}}
  dead: {{profile: vllm, base_url: "http://127.0.0.1:{closed}/v1", timeouts: {{connect: 1}}}}
  a-cf: {{profile: cache-first, base_url: "{a}", metrics_interval: 0.1}}
  b-cf: {{profile: cache-first, base_url: "{b}", metrics_interval: 0.1}}
  a-terse: {{profile: terse, base_url: "{a}"}}
models:
  weighted:
    groups:
      - strategy: weighted
        targets: [{{provider: a, model: w, weight: 3}}, {{provider: b, model: w, weight: 1}}]
  least-busy:
    groups:
      - strategy: least-busy
        targets: [{{provider: a, model: lb}}, {{provider: b, model: lb}}]
  latency:
    groups:
      - strategy: latency
        targets: [{{provider: a, model: lat}}, {{provider: b, model: lat}}]
  by-load:
    groups:
      - strategy: vllm-load
        targets: [{{provider: a, model: vl}}, {{provider: b, model: vl}}]
  by-cache:
    groups:
      - strategy: vllm-load
        targets: [{{provider: a-cf, model: cf}}, {{provider: b-cf, model: cf}}]
  same-group-first:
    groups:
      - targets: [{{provider: dead, model: x}}, {{provider: b, model: sg}}]
      - targets: [{{provider: a, model: sg}}]
  chain:
    targets: [{{provider: a, model: ch}}, {{provider: b, model: ch}}]
  chain-0:
    targets: [{{provider: a, model: ch0}}, {{provider: b, model: ch0}}]
  chain-1:
    targets: [{{provider: a, model: ch1}}, {{provider: b, model: ch1}}]
  chain-2:
    targets: [{{provider: a, model: ch2}}, {{provider: b, model: ch2}}]
  hasty-chain:
    targets: [{{provider: a-hasty, model: hc}}, {{provider: b, model: hc}}]
  breaker:
    targets: [{{provider: a, model: brk}}, {{provider: b, model: brk}}]
  breaker-trial:
    targets: [{{provider: a, model: trial}}, {{provider: b, model: trial}}]
  lonely:
    targets: [{{provider: a, model: lonely}}]
  again:
    retry: {{attempts: 3, backoff: 0.05}}
    targets: [{{provider: a, model: again}}]
  long-context:
    targets:
      - {{provider: a, model: small, context_window: 8192}}
      - {{provider: b, model: large, context_window: 131072}}
  long-context-terse:
    targets:
      - {{provider: a-terse, model: small, context_window: 8192}}
      - {{provider: b, model: large, context_window: 131072}}
  "openai/*":
    targets: [{{provider: a, model: "*"}}]
  openai/special:
    targets: [{{provider: b, model: special}}]
keys:
  tester: {{key: "{key}"}}
"""

# vLLM's series, weighed otherwise: only KV-cache use counts (the section merges with the base's).
CACHE_FIRST = """
base: vllm
load_metrics:
  weights: {running: 0, waiting: 0, kv_cache: 1}
"""
# A server with its own way of refusing: the message under `reason`, a prompt too long
# said as "no room".
TERSE = """
base: vllm
errors: {message_keys: [reason], context_overflow: ["no room"]}
"""


@pytest.fixture(scope="module")
def upstreams(primary, backup):
    return primary, backup


@pytest.fixture(scope="module")
def config_path(upstreams, tmp_path_factory) -> Path:
    a, b = upstreams
    path = tmp_path_factory.mktemp("routing") / "routes.yaml"
    path.write_text(CONFIG.format(a=a.url, b=b.url, closed=free_port(), key=KEY))
    (path.parent / "providers").mkdir()
    (path.parent / "providers" / "cache-first.yaml").write_text(CACHE_FIRST)
    (path.parent / "providers" / "terse.yaml").write_text(TERSE)
    return path


@pytest.fixture(scope="module")
def gateway(config_path) -> Iterator[GatewayProcess]:
    with GatewayProcess(config_path, env={"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as client:
        yield client


@pytest.fixture
def a(upstreams):
    return upstreams[0]


@pytest.fixture
def b(upstreams):
    return upstreams[1]


@pytest.fixture(autouse=True)
def _fresh(upstreams):
    for upstream in upstreams:
        upstream.reset()


def ask(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def target_state(http, key: str) -> dict:
    return http.get("/readyz").json()["targets"][key]


def test_weighted_split_over_2000_requests(http, a, b):
    for _ in range(2000):
        assert http.post(CHAT, json=ask("weighted")).status_code == 200

    share = a.models_asked("w") / 2000
    assert abs(share - 0.75) <= 0.05, share
    assert a.models_asked("w") + b.models_asked("w") == 2000


def test_least_busy_prefers_the_idle_backend(gateway, http, a, b):
    gate = Gate()
    a.then(Reply(events=[chunk({"model": "lb"}, {"content": "held"}), gate]))
    held = threading.Thread(target=lambda: httpx.post(
        gateway.url + CHAT, json=ask("least-busy", stream=True), timeout=30,
        headers={"Authorization": f"Bearer {KEY}"}))
    held.start()
    try:
        wait_for(lambda: a.models_asked("lb") == 1, 10, "the first request to be held by a")
        for _ in range(10):
            response = http.post(CHAT, json=ask("least-busy"))
            assert response.headers["x-gateway-target"] == "b/lb"
    finally:
        gate.open()
        held.join(10)
    assert b.models_asked("lb") == 10 and a.models_asked("lb") == 1


def test_latency_prefers_the_faster_backend(http, a, b):
    a.then(Reply(delay=0.3))
    targets = [http.post(CHAT, json=ask("latency")).headers["x-gateway-target"] for _ in range(7)]

    assert targets[:2] == ["a/lat", "b/lat"]  # each measured once
    assert targets[2:] == ["b/lat"] * 5


def test_vllm_load_follows_the_backends_metrics(http, a, b):
    a.load = {"running": 5, "waiting": 10, "kv_cache": 0.9}
    wait_for(lambda: target_state(http, "a/vl").get("load", {}).get("waiting") == 10, 10,
             "the gateway to read a's /metrics")
    assert [http.post(CHAT, json=ask("by-load")).headers["x-gateway-target"]
            for _ in range(5)] == ["b/vl"] * 5

    a.load = {"running": 0, "waiting": 0, "kv_cache": 0.0}
    b.load = {"running": 8, "waiting": 12, "kv_cache": 0.95}
    wait_for(lambda: target_state(http, "b/vl").get("load", {}).get("waiting") == 12, 10,
             "the gateway to read b's new /metrics")
    assert [http.post(CHAT, json=ask("by-load")).headers["x-gateway-target"]
            for _ in range(5)] == ["a/vl"] * 5


def test_vllm_load_weighs_the_readings_as_the_profile_says(http, a, b):
    """a's KV cache is nearly full, b has a long queue: vllm's weights send the requests to
    a (9 against 33), the cache-first profile's to b."""
    a.load = {"running": 0, "waiting": 0, "kv_cache": 0.9}
    b.load = {"running": 8, "waiting": 12, "kv_cache": 0.1}
    for key, field, value in (("a/vl", "kv_cache", 0.9), ("b/vl", "waiting", 12),
                              ("a-cf/cf", "kv_cache", 0.9), ("b-cf/cf", "waiting", 12)):
        wait_for(lambda k=key, f=field, v=value: target_state(http, k).get("load", {}).get(f) == v,
                 10, f"the gateway to read the load of {key}")

    assert [http.post(CHAT, json=ask("by-load")).headers["x-gateway-target"]
            for _ in range(5)] == ["a/vl"] * 5
    assert [http.post(CHAT, json=ask("by-cache")).headers["x-gateway-target"]
            for _ in range(5)] == ["b-cf/cf"] * 5


def test_load_is_read_by_the_profiles_series_names():
    """Which series make the load is the profile's data: a server that names its gauges
    otherwise (SGLang's names here) is read as well, each target counting its own model."""
    sglang = LoadMetrics(running=("sglang:num_running_reqs",), waiting=("sglang:num_queue_reqs",),
                         kv_cache=("sglang:token_usage",), model_label="model_name",
                         weights=LoadWeights(running=1, waiting=2, kv_cache=10))
    text = ('sglang:num_running_reqs{model_name="m"} 3\n'
            'sglang:num_running_reqs{model_name="other"} 7\n'
            'sglang:num_queue_reqs{model_name="m"} 4\n'
            'sglang:token_usage{model_name="m"} 0.28\n'
            'vllm:num_requests_running{model_name="m"} 50\n')

    load = parse_load(text, sglang, "m")

    assert load is not None and (load.running, load.waiting, load.kv_cache) == (3, 4, 0.28)
    assert parse_load(text, sglang, "absent").running == 10  # no series of its own: the totals
    vllm = PROFILES["vllm"].load_metrics
    assert vllm is not None and parse_load(text, vllm, "m").running == 50


def test_failover_within_the_group_before_the_next_group(http, a, b):
    response = http.post(CHAT, json=ask("same-group-first"))

    assert response.status_code == 200
    assert response.headers["x-gateway-target"] == "b/sg"
    assert response.headers["x-gateway-attempts"] == "2"
    assert a.models_asked("sg") == 0


@pytest.mark.parametrize("case, failure", list(enumerate([
    Reply(status=500, json={"error": {"message": "boom"}}),
    Reply(status=429, json={"error": {"message": "slow down"}}, headers={"retry-after": "1"}),
    Reply(raw=b"", status=503),
])))
def test_failover_on_upstream_errors(http, a, b, case, failure):
    a.then(failure)  # each case its own chain: a 429's rest or a breaker count stays with it

    response = http.post(CHAT, json=ask(f"chain-{case}"))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-target"] == f"b/ch{case}"
    assert response.headers["x-gateway-attempts"] == "2"


def test_failover_on_timeout(http, a, b):
    a.then(Reply(delay=2))

    response = http.post(CHAT, json=ask("hasty-chain"))

    assert response.status_code == 200
    assert response.headers["x-gateway-target"] == "b/hc"


def test_retry_after_is_honoured(http, a, b):
    a.then(Reply(status=429, json={"error": {"message": "wait"}}, headers={"retry-after": "30"}))
    http.post(CHAT, json=ask("chain"))
    assert a.models_asked("ch") == 1

    for _ in range(3):  # a asked for 30 s of rest: it gets them
        assert http.post(CHAT, json=ask("chain")).headers["x-gateway-target"] == "b/ch"
    assert a.models_asked("ch") == 1
    assert target_state(http, "a/ch")["resting_s"] > 25


def test_the_same_target_is_tried_again_after_a_backoff(http, a):
    a.then(Reply(status=503))  # one failure: under the breaker's threshold of two

    response = http.post(CHAT, json=ask("again"))

    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "2"
    assert a.models_asked("again") == 2


def test_breaker_opens_then_lets_one_trial_through(gateway, http, a, b):
    a.then(Reply(status=500), Reply(status=500))
    for _ in range(2):
        assert http.post(CHAT, json=ask("breaker")).headers["x-gateway-target"] == "b/brk"
    assert target_state(http, "a/brk")["state"] == "open"

    assert http.post(CHAT, json=ask("breaker")).headers["x-gateway-target"] == "b/brk"
    assert a.models_asked("brk") == 2  # open: a is not asked

    wait_for(lambda: target_state(http, "a/brk")["state"] == "half_open", 5, "the cooldown")
    gate = Gate()
    a.then(Reply(events=[chunk({"model": "brk"}, {"content": "trial"}), gate]))
    trial = threading.Thread(target=lambda: httpx.post(
        gateway.url + CHAT, json=ask("breaker", stream=True), timeout=30,
        headers={"Authorization": f"Bearer {KEY}"}))
    trial.start()
    try:
        wait_for(lambda: a.models_asked("brk") == 3, 10, "the trial request to reach a")
        # one trial at a time: meanwhile the others go to b
        assert http.post(CHAT, json=ask("breaker")).headers["x-gateway-target"] == "b/brk"
    finally:
        gate.open()
        trial.join(10)
    assert target_state(http, "a/brk")["state"] == "closed"
    assert http.post(CHAT, json=ask("breaker")).headers["x-gateway-target"] == "a/brk"


def test_a_trial_that_neither_passes_nor_fails_frees_the_slot(http, a, b):
    """A soak found a target half-open and unused for good: its trial got a 4xx."""
    a.then(Reply(status=500), Reply(status=500))
    for _ in range(2):
        assert http.post(CHAT, json=ask("breaker-trial")).headers["x-gateway-target"] == "b/trial"
    wait_for(lambda: target_state(http, "a/trial")["state"] == "half_open", 5, "the cooldown")
    a.then(Reply(status=400, json={"error": {"message": "no such option"}}))

    assert_openai_error(http.post(CHAT, json=ask("breaker-trial")), 400)  # the client's own error

    response = http.post(CHAT, json=ask("breaker-trial"))  # the next one is the trial
    assert response.headers["x-gateway-target"] == "a/trial"
    assert target_state(http, "a/trial")["state"] == "closed"
    assert a.models_asked("trial") == 4


def test_no_healthy_target_is_503_with_retry_after(http, a):
    a.then(Reply(status=500), Reply(status=500))
    for _ in range(2):
        assert_openai_error(http.post(CHAT, json=ask("lonely")), 502)

    response = http.post(CHAT, json=ask("lonely"))

    error = assert_openai_error(response, 503, code="no_healthy_target")
    assert "lonely" in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 2
    assert a.models_asked("lonely") == 2


def test_context_window_fallback(http, a, b):
    a.then(Reply(status=400, json={"error": {
        "message": "This model's maximum context length is 8192 tokens, you requested 9000",
        "type": "invalid_request_error", "code": "context_length_exceeded"}}))

    response = http.post(CHAT, json=ask("long-context"))

    assert response.status_code == 200
    assert response.headers["x-gateway-target"] == "b/large"


def test_context_overflow_with_no_larger_target_is_relayed(http, a, b):
    a.then(Reply(status=400, json={"error": {"message": "maximum context length is 8192"}}))
    b.then(Reply(status=400, json={"error": {"message": "prompt is too long: 200000 tokens"}}))

    response = http.post(CHAT, json=ask("long-context"))

    error = assert_openai_error(response, 400)
    assert error["message"] == "prompt is too long: 200000 tokens"  # the largest target's word
    assert a.models_asked("small") == 1 and b.models_asked("large") == 1


def test_how_an_upstream_words_a_context_overflow_is_its_profiles_data(http, a, b):
    a.then(Reply(status=400, json={"reason": "no room for 9000 tokens"}))

    response = http.post(CHAT, json=ask("long-context-terse"))

    assert response.status_code == 200 and response.headers["x-gateway-target"] == "b/large"
    a.then(Reply(status=400, json={"reason": "temperature is out of range"}))
    refused = assert_openai_error(http.post(CHAT, json=ask("long-context-terse")), 400)
    assert refused["message"] == "temperature is out of range"  # found under `reason`
    assert b.models_asked("large") == 1  # not an overflow: the client's to fix, not retried


def test_wildcard_routes_and_exact_aliases_win(http, a, b):
    response = http.post(CHAT, json=ask("openai/gpt-4o-mini"))
    assert response.status_code == 200
    assert response.json()["model"] == "openai/gpt-4o-mini"
    assert a.last.json["model"] == "gpt-4o-mini"

    assert http.post(CHAT, json=ask("openai/special")).headers["x-gateway-target"] == "b/special"
    assert_openai_error(http.post(CHAT, json=ask("openai/")), 404)


def test_readyz_reports_each_target(http):
    targets = http.get("/readyz").json()["targets"]
    assert {"a/w", "b/w", "dead/x", "a/*"} <= set(targets)
    assert targets["b/w"]["state"] in ("closed", "half_open")


def test_reload_needs_the_master_key(http, gateway):
    assert_openai_error(http.post("/admin/reload"), 403, code="master_key_required")
    assert_openai_error(httpx.post(gateway.url + "/admin/reload"), 401)


def test_bad_config_is_refused_and_the_old_one_stays(http, gateway, config_path):
    good = config_path.read_text()
    try:
        config_path.write_text(good.replace("strategy: least-busy", "strategy: fastest"))
        response = http.post("/admin/reload", headers={"Authorization": f"Bearer {MASTER}"})
        error = assert_openai_error(response, 400, code="invalid_config")
        assert "models.least-busy.groups[0].strategy" in error["message"]
        assert http.post(CHAT, json=ask("least-busy")).status_code == 200
    finally:
        config_path.write_text(good)


def test_reload_under_load_loses_no_request(gateway, config_path, a, b):
    good = config_path.read_text()
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"},
                          timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.post(CHAT, json=ask("weighted")).status_code)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        master = {"Authorization": f"Bearer {MASTER}"}
        for i in range(6):
            weight = "weight: 1" if i % 2 else "weight: 3"
            config_path.write_text(good.replace("weight: 3", weight))
            response = httpx.post(gateway.url + "/admin/reload", headers=master, timeout=30)
            assert response.status_code == 200, response.text
            count = len(statuses)
            wait_for(lambda c=count: len(statuses) >= c + 20, 10, "requests after the reload")
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
        config_path.write_text(good)
    assert len(statuses) > 100
    assert set(statuses) == {200}


def test_a_file_change_is_noticed_without_a_signal(http, config_path):
    good = config_path.read_text()
    extra = "  added-by-edit:\n    targets: [{provider: b, model: new}]\n"
    try:
        config_path.write_text(good.replace('  "openai/*":', extra + '  "openai/*":'))
        wait_for(lambda: http.post(CHAT, json=ask("added-by-edit")).status_code == 200, 10,
                 "the file watch to notice the new model")
    finally:
        config_path.write_text(good)
    wait_for(lambda: http.post(CHAT, json=ask("added-by-edit")).status_code == 404, 10,
             "the file watch to notice the model is gone again")


def test_sighup_reloads_with_the_file_watch_off(tmp_path, upstreams):
    """Only the signal can reload here (`watch_config: 0`). A model served before the reload
    keeps its `created` in /v1/models."""
    a, _ = upstreams
    config = tmp_path / "routes.yaml"
    before = f"""
server: {{watch_config: 0}}
providers:
  a: {{profile: vllm, base_url: "{a.url}"}}
models:
  kept: {{targets: [{{provider: a, model: k}}]}}
keys:
  tester: {{key: "{KEY}"}}
"""
    config.write_text(before)
    with GatewayProcess(config) as gateway, httpx.Client(
            base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        listed = {m["id"]: m["created"] for m in http.get("/v1/models").json()["data"]}
        config.write_text(before.replace(
            "keys:", "  added-by-sighup: {targets: [{provider: a, model: n}]}\nkeys:"))
        assert http.post(CHAT, json=ask("added-by-sighup")).status_code == 404
        # `created` is in whole seconds: reload in a later one, or a fresh stamp looks kept.
        wait_for(lambda: time.time() >= listed["kept"] + 1, 2, "the next second")
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(lambda: http.post(CHAT, json=ask("added-by-sighup")).status_code == 200, 10,
                 "the new model after SIGHUP")
        after = {m["id"]: m["created"] for m in http.get("/v1/models").json()["data"]}
        assert after["kept"] == listed["kept"]
        assert after["added-by-sighup"] > after["kept"]  # a new model is stamped when it appears
        assert http.get("/v1/models/kept").json()["created"] == listed["kept"]


def probed_config(tmp_path, upstream) -> Path:
    """Model `probed` on one provider whose /health is checked every 0.1 s."""
    config = tmp_path / "routes.yaml"
    config.write_text(f"""
providers:
  watched: {{profile: vllm, base_url: "{upstream.url}", probe: {{interval: 0.1, timeout: 1}}}}
models:
  probed: {{targets: [{{provider: watched, model: p}}]}}
keys:
  tester: {{key: "{KEY}"}}
""")
    return config


def test_probes_and_load_readings_follow_a_reload(tmp_path):
    """The monitor moves to each new config: a provider a reload adds is probed and its load
    read; the one it removes is left alone."""
    old, new = Upstream().start(), Upstream().start()
    config = tmp_path / "routes.yaml"
    text = """
server: {{watch_config: 0}}
providers:
  {name}: {{profile: vllm, base_url: "{url}", metrics_interval: 0.1,
           probe: {{interval: 0.1, timeout: 1}}}}
models:
  m: {{groups: [{{strategy: vllm-load, targets: [{{provider: {name}, model: m}}]}}]}}
"""
    config.write_text(text.format(name="old", url=old.url))
    try:
        with GatewayProcess(config, env={"GATEWAY_MASTER_KEY": MASTER}) as gateway:
            wait_for(lambda: old.health_checks >= 2 and old.metrics_reads >= 2, 10,
                     "the first probes and load readings")
            assert new.health_checks == new.metrics_reads == 0
            config.write_text(text.format(name="new", url=new.url))
            response = httpx.post(gateway.url + "/admin/reload", timeout=30,
                                  headers={"Authorization": f"Bearer {MASTER}"})
            assert response.status_code == 200, response.text
            checks, reads = old.health_checks, old.metrics_reads
            wait_for(lambda: new.health_checks >= 5 and new.metrics_reads >= 5, 10,
                     "probes and load readings of the provider the reload added")
            # Stopped before the reload answered; one may have been on its way.
            assert old.health_checks <= checks + 1 and old.metrics_reads <= reads + 1
    finally:
        old.stop()
        new.stop()


def test_one_missed_probe_leaves_the_target_in_two_in_a_row_take_it_out(tmp_path, upstreams):
    """A single late or failed health check (a busy server, a host that paused) is not
    enough to take a provider out of rotation: `unhealthy_after` (default 2) in a row are."""
    a, _ = upstreams
    config = probed_config(tmp_path, a)
    with GatewayProcess(config) as gateway, httpx.Client(base_url=gateway.url) as http:
        wait_for(lambda: a.health_checks >= 1, 10, "the first probe")
        a.health_misses = 1
        checked = a.health_checks
        wait_for(lambda: a.health_checks >= checked + 3, 10, "a miss and two good probes")
        assert target_state(http, "watched/p")["state"] == "closed"
        assert '"provider probe missed"' in gateway.log()
        assert '"provider probe failed"' not in gateway.log()

        a.health_misses = 2  # open, then half-open (no request yet) when the next one passes
        wait_for(lambda: '"provider probe failed"' in gateway.log(), 10, "two misses")
        assert target_state(http, "watched/p")["state"] in ("open", "half_open")


def test_active_probe_opens_and_recloses_the_breaker(tmp_path, upstreams):
    a, _ = upstreams
    config = probed_config(tmp_path, a)
    with GatewayProcess(config) as gateway, httpx.Client(base_url=gateway.url) as http:
        a.health_status = 503  # /health fails: no request needed to learn it
        wait_for(lambda: target_state(http, "watched/p")["state"] == "open", 10, "the probe")
        response = http.post(CHAT, json=ask("probed"), headers={"Authorization": f"Bearer {KEY}"})
        assert_openai_error(response, 503, code="no_healthy_target")
        assert a.models_asked("p") == 0

        a.health_status = 200
        wait_for(lambda: target_state(http, "watched/p")["state"] != "open", 10, "recovery")
        response = http.post(CHAT, json=ask("probed"), headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200
        assert target_state(http, "watched/p")["state"] == "closed"
