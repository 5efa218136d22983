"""/metrics after real requests: a success, a fallback, a 429, a stream; and the log lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_process import GatewayProcess, demo_config, serving, wait_for
from tests.upstream import Reply

KEY = "sk-metrics-tests-0123456789"
CHAT = "/v1/chat/completions"
CONFIG = """
routing: {{breaker: {{failures: 2, window: 60, cooldown: 60}}}}
providers:
  a: {{profile: vllm, base_url: "{a}"}}
  b: {{profile: vllm, base_url: "{b}"}}
  reconnect-eu: {{profile: vllm, base_url: "{a}"}}
models:
  chat: {{targets: [{{provider: a, model: m}}, {{provider: b, model: m}}]}}
  via-reconnect: {{targets: [{{provider: reconnect-eu, model: m}}, {{provider: b, model: m}}]}}
  fragile: {{targets: [{{provider: a, model: fragile}}]}}
keys:
  team-x:
    key: "{key}"
    limits: {{models: {{fragile: {{requests_per_minute: 3}}}}}}
"""


def samples(gateway: GatewayProcess) -> dict[tuple, float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    text = httpx.get(gateway.url + "/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(snapshot: dict, name: str, **labels) -> float:
    """The sum of `name`'s samples that have these labels (and any others)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in snapshot.items() if n == name and wanted <= set(have))


@pytest.fixture(scope="module")
def gateway(primary, backup, tmp_path_factory) -> Iterator[GatewayProcess]:
    path = tmp_path_factory.mktemp("metrics") / "routes.yaml"
    path.write_text(CONFIG.format(a=primary.url, b=backup.url, key=KEY))
    with GatewayProcess(path, env={"GATEWAY_MASTER_KEY": "sk-metrics-master-01234"}) as process:
        yield process


def ask(gateway, model: str = "chat", **extra) -> httpx.Response:
    return httpx.post(gateway.url + CHAT, headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                            **extra})


def test_a_success(gateway):
    before = samples(gateway)
    assert ask(gateway).status_code == 200
    after = samples(gateway)

    labels = {"model": "chat", "target": "a/m", "key": "team-x", "status": "2xx"}
    assert value(after, "gateway_requests_total", **labels) == \
        value(before, "gateway_requests_total", **labels) + 1
    for kind, used in (("prompt", 11), ("completion", 7)):  # the upstream's own usage
        assert value(after, "gateway_tokens_total", model="chat", key="team-x", kind=kind) == \
            value(before, "gateway_tokens_total", model="chat", key="team-x", kind=kind) + used
    assert value(after, "gateway_request_duration_seconds_count", model="chat") == \
        value(before, "gateway_request_duration_seconds_count", model="chat") + 1
    assert value(after, "gateway_upstream_requests_total", target="a/m", outcome="ok") == \
        value(before, "gateway_upstream_requests_total", target="a/m", outcome="ok") + 1
    assert value(after, "gateway_requests_in_flight", model="chat") == 0


def test_an_upstream_error_with_fallback(gateway, primary):
    primary.then(Reply(status=503))
    before = samples(gateway)
    assert ask(gateway).status_code == 200
    after = samples(gateway)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("gateway_upstream_requests_total", target="a/m", outcome="http_5xx") == 1
    assert grew("gateway_upstream_requests_total", target="b/m", outcome="ok") == 1
    assert grew("gateway_retries_total", model="chat", reason="http_5xx") == 1
    assert grew("gateway_fallbacks_total", model="chat", reason="http_5xx") == 1
    assert grew("gateway_requests_total", model="chat", target="b/m", key="team-x",
                status="2xx") == 1


def test_a_failure_is_a_connect_failure_only_when_no_connection_was_made(gateway, primary):
    """A provider whose name holds the word (reconnect-eu) answering nonsense is 'broken':
    a 'connect' failure would take a local replica out of rotation at once."""
    primary.then(Reply(raw=b"this is not JSON"))
    before = samples(gateway)
    assert ask(gateway, "via-reconnect").status_code == 200
    after = samples(gateway)

    def grew(outcome: str) -> float:
        return (value(after, "gateway_upstream_requests_total", target="reconnect-eu/m",
                      outcome=outcome)
                - value(before, "gateway_upstream_requests_total", target="reconnect-eu/m",
                        outcome=outcome))

    assert (grew("broken"), grew("connect")) == (1, 0)


def test_a_429(gateway):
    before = samples(gateway)
    statuses = [ask(gateway, "fragile").status_code for _ in range(4)]
    after = samples(gateway)

    assert statuses == [200, 200, 200, 429]
    assert value(after, "gateway_rate_limited_total", model="fragile", key="team-x",
                 limit="requests") - value(before, "gateway_rate_limited_total",
                                           model="fragile", key="team-x", limit="requests") == 1
    assert value(after, "gateway_requests_total", model="fragile", target="(none)",
                 key="team-x", status="4xx") == 1


def test_a_stream(gateway):
    before = samples(gateway)
    response = ask(gateway, stream=True)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    after = samples(gateway)

    assert value(after, "gateway_time_to_first_token_seconds_count", model="chat") == \
        value(before, "gateway_time_to_first_token_seconds_count", model="chat") + 1


def test_breaker_state_and_config(gateway, primary):
    primary.then(Reply(status=500), Reply(status=500))
    for _ in range(2):
        assert ask(gateway).status_code == 200  # a fails, b answers
    after = samples(gateway)

    assert value(after, "gateway_target_breaker_state", target="a/m") == 2  # open
    assert value(after, "gateway_target_breaker_state", target="b/m") == 0
    hashes = [dict(labels) for (name, labels) in after if name == "gateway_config_info"]
    assert len(hashes) == 1 and len(hashes[0]["hash"]) == 12


def test_reloads_are_counted(gateway):
    before = samples(gateway)
    answer = httpx.post(gateway.url + "/admin/reload",
                        headers={"Authorization": "Bearer sk-metrics-master-01234"})
    assert answer.status_code == 200
    after = samples(gateway)
    assert value(after, "gateway_config_reloads_total", result="ok") == \
        value(before, "gateway_config_reloads_total", result="ok") + 1


def test_event_loop_lag_is_sampled_twice_a_second(gateway):
    first = wait_for(lambda: value(s := samples(gateway),
                                   "gateway_event_loop_lag_seconds_count") >= 1 and s,
                     5, "a first lag sample")
    count = value(first, "gateway_event_loop_lag_seconds_count")
    wait_for(lambda: value(samples(gateway), "gateway_event_loop_lag_seconds_count") >= count + 2,
             5, "two more lag samples")
    # an idle loop is on time: every sample so far under 100 ms
    assert value(first, "gateway_event_loop_lag_seconds_bucket", le="0.1") == count


def test_log_line_of_a_request(gateway):
    response = httpx.post(gateway.url + CHAT, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}", "x-request-id": "log-me-1"},
                          json={"model": "chat", "stream": True,
                                "messages": [{"role": "user", "content": "secret prompt"}]})
    assert response.status_code == 200
    line = wait_for(lambda: gateway.request_log("log-me-1"), 5, "the request's log line")

    assert line["key"] == "team-x" and line["model"] == "chat" and line["status"] == 200
    assert line["target"] and line["attempts"] >= 1
    assert line["prompt_tokens"] == 11 and line["completion_tokens"] >= 1
    assert line["latency_ms"] > 0 and line["ttft_ms"] > 0
    text = gateway.log()
    assert KEY not in text and "secret prompt" not in text


def test_prompts_are_logged_only_when_asked(primary, tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(f"""
server: {{log_prompts: true}}
providers: {{a: {{profile: vllm, base_url: "{primary.url}"}}}}
models: {{chat: {{targets: [{{provider: a, model: m}}]}}}}
keys: {{t: {{key: "{KEY}"}}}}
""")
    with GatewayProcess(path) as gateway:
        httpx.post(gateway.url + CHAT, headers={"Authorization": f"Bearer {KEY}",
                                                "x-request-id": "debug-1"},
                   json={"model": "chat", "messages": [{"role": "user", "content": "show me"}]})
        line = wait_for(lambda: gateway.request_log("debug-1"), 5, "the log line")
    assert line["messages"] == [{"role": "user", "content": "show me"}]


def test_workers_share_one_set_of_metrics(primary, tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(f"""
providers: {{a: {{profile: vllm, base_url: "{primary.url}"}}}}
models: {{chat: {{targets: [{{provider: a, model: m}}]}}}}
keys: {{t: {{key: "{KEY}"}}}}
""")
    with GatewayProcess(path, args=["--workers", "2"]) as gateway:
        for _ in range(20):
            assert ask(gateway).status_code == 200
        messages = [json.loads(line).get("msg") for line in gateway.log().splitlines()
                    if line.startswith("{")]
        assert messages.count("gateway ready") == 2  # two worker processes
        # whichever worker answers the scrape, it counts the requests of both
        for _ in range(4):
            counted = value(samples(gateway), "gateway_requests_total", model="chat",
                            target="a/m", key="t", status="2xx")
            assert counted == 20


def test_metrics_key_guards_the_metrics_endpoint(tmp_path):
    """With server.metrics_key set, /metrics answers only that key or the master key, as
    Prometheus sends it (`authorization: {credentials: ...}`): key names are visible there."""
    scrape_key = "sk-metrics-scrape-0123456789"
    master = "sk-metrics-master-0123456789"
    config = demo_config(KEY, server='metrics_key: "${SCRAPE_KEY}"')
    env = {"SCRAPE_KEY": scrape_key, "GATEWAY_MASTER_KEY": master}
    with serving(tmp_path, config, env) as gateway:
        def scrape(key: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.get(gateway.url + "/metrics", headers=headers)

        for refused in (scrape(None), scrape(scrape_key + "x"), scrape(KEY)):
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "metrics_key_required"
            assert "gateway_requests_in_flight" not in refused.text
        for key in (scrape_key, master):
            allowed = scrape(key)
            assert allowed.status_code == 200 and "gateway_requests_in_flight" in allowed.text


def test_a_short_metrics_key_is_refused_at_start(tmp_path):
    config = tmp_path / "routes.yaml"
    config.write_text('server: {metrics_key: "short"}\n')
    result = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "server.metrics_key: string should have at least 16 characters" in result.stderr


def test_an_empty_metrics_key_leaves_metrics_open(tmp_path):
    """`"${GATEWAY_METRICS_KEY:-}"` with the variable unset: not set, not an error."""
    config = tmp_path / "routes.yaml"
    config.write_text('server: {metrics_key: "${NO_SUCH_METRICS_KEY:-}"}\n')
    result = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
