"""The Grafana dashboard: valid PromQL, only metrics the gateway exports, provisioning in place."""

from __future__ import annotations

import importlib.util
import json
import re

import httpx
import promql_parser
import yaml

from tests.conftest import REPO

DASHBOARD = REPO / "grafana" / "dashboards" / "gateway.json"
METRIC = re.compile(r"\b(gateway_[a-z_]+|vllm:[a-z_:]+)")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(board: dict) -> list[str]:
    found = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    found += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return found


def exported(metrics_text: str) -> set[str]:
    """Every series name /metrics can show: counters with _total, histograms with their parts."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.MULTILINE):
        if kind == "counter":
            names.add(name if name.endswith("_total") else name + "_total")
        elif kind == "histogram":
            names |= {name + "_bucket", name + "_count", name + "_sum"}
        else:
            names.add(name)
    return names


def test_the_committed_json_is_the_builders_output():
    spec = importlib.util.spec_from_file_location("dashboard", REPO / "grafana" / "dashboard.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert dashboard() == builder.build(), "run `python grafana/dashboard.py`"


def test_every_query_is_promql_and_names_exported_metrics(gateway):
    names = exported(httpx.get(gateway.url + "/metrics").text)
    board = dashboard()
    assert len(queries(board)) > 30
    for query in queries(board):
        if query.startswith("label_values("):
            metric = query[len("label_values("):].split(",")[0]
            assert metric in names, query
            continue
        concrete = (query.replace("$__rate_interval", "1m").replace("$__interval", "1m")
                    .replace("$model", ".*").replace("$key", ".*"))
        promql_parser.parse(concrete)  # raises on a syntax error
        for metric in METRIC.findall(query):
            assert metric in names, f"{metric} in {query!r} is not exported"


def test_panels_and_variables():
    board = dashboard()
    assert board["uid"] == "llm-gateway" and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert [t["refId"] for t in panel["targets"]] == [
                chr(ord("A") + i) for i in range(len(panel["targets"]))]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["model"]["includeAll"] and variables["key"]["multi"]
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("requests / s", "error", "latency", "time to first token", "tokens",
                  "top keys", "fallbacks", "breaker", "in flight"):
        assert topic in titles, topic


def test_provisioning_and_scrape_config():
    sources = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((REPO / "grafana/provisioning/dashboards/gateway.yaml").read_text())
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["llm-gateway"]["metrics_path"] == "/metrics" and "vllm" in jobs
