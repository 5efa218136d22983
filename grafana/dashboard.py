"""Writes grafana/dashboards/gateway.json, the gateway's Grafana dashboard.

    python grafana/dashboard.py

The panels are defined here, a few lines each, so they can be read and
reviewed; the JSON is what Grafana imports (and what the provisioning files
point at). A test checks that the committed JSON is this script's output and
that every query names metrics the gateway exports.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "gateway.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'model=~"$model", key=~"$key"'  # the template variables, on metrics that have both
MODEL = 'model=~"$model"'
RATE = "$__rate_interval"


class Layout:
    """Places panels left to right in rows of 24 columns."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = self.y = self.row_height = 0

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["id"] = len(self.panels) + 1
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        self.panels.append({"type": "row", "title": title, "collapsed": False,
                            "id": len(self.panels) + 1, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.y += 1


def targets(*queries: tuple[str, str]) -> list[dict]:
    return [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
             "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(queries)]


def timeseries(title: str, *queries: tuple[str, str], unit: str = "short",
               description: str = "", stack: bool = False) -> dict:
    custom = {"lineWidth": 1, "fillOpacity": 25 if stack else 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets(*queries),
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, query: str, unit: str = "short", description: str = "",
         thresholds: list | None = None) -> dict:
    steps = thresholds or [{"color": "green", "value": None}]
    return {"type": "stat", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets((query, "")),
            "fieldConfig": {"defaults": {"unit": unit,
                                         "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


def quantiles(metric: str, by: str, selector: str) -> list[tuple[str, str]]:
    return [(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}"
             f"[{RATE}])))", f"p{int(q * 100)} {{{{{by}}}}}") for q in (0.5, 0.95, 0.99)]


def variable(name: str, label: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": f"label_values(gateway_requests_total, {name})",
                      "refId": f"{name}-values"},
            "definition": f"label_values(gateway_requests_total, {name})",
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1}


def build() -> dict:
    grid = Layout()
    grid.row("Traffic")
    grid.add(stat("Requests / s", f"sum(rate(gateway_requests_total{{{SEL}}}[{RATE}]))",
                  "reqps"), 4, 4)
    grid.add(stat("Errors (5xx)", f"(sum(rate(gateway_requests_total{{{SEL}, status=\"5xx\"}}"
                  f"[{RATE}])) or vector(0)) / sum(rate(gateway_requests_total{{{SEL}}}[{RATE}]))",
                  "percentunit", "Share of answers that were gateway or upstream failures.",
                  [{"color": "green", "value": None}, {"color": "orange", "value": 0.01},
                   {"color": "red", "value": 0.05}]), 4, 4)
    grid.add(stat("p95 latency", f"histogram_quantile(0.95, sum by (le) (rate("
                  f"gateway_request_duration_seconds_bucket{{{MODEL}}}[{RATE}])))", "s"), 4, 4)
    grid.add(stat("p95 time to first token", f"histogram_quantile(0.95, sum by (le) (rate("
                  f"gateway_time_to_first_token_seconds_bucket{{{MODEL}}}[{RATE}])))", "s"), 4, 4)
    grid.add(stat("Tokens / s", f"sum(rate(gateway_tokens_total{{{SEL}}}[{RATE}]))", "short"),
             4, 4)
    grid.add(stat("In flight", f"sum(gateway_requests_in_flight{{{MODEL}}})", "short"), 4, 4)
    grid.add(timeseries("Requests / s by model",
                        (f"sum by (model) (rate(gateway_requests_total{{{SEL}}}[{RATE}]))",
                         "{{model}}"), unit="reqps"), 12, 8)
    grid.add(timeseries("Requests / s by client API",
                        (f"sum by (api) (rate(gateway_requests_total{{{SEL}}}[{RATE}]))",
                         "{{api}}"), unit="reqps", stack=True), 12, 8)
    grid.add(timeseries("Answers by status class",
                        (f"sum by (status) (rate(gateway_requests_total{{{SEL}}}[{RATE}]))",
                         "{{status}}"), unit="reqps", stack=True), 12, 8)
    grid.add(timeseries(
        "Error rate by model",
        # `or ... * 0`: a model with no 5xx at all shows 0%, not "no data"
        (f"(sum by (model) (rate(gateway_requests_total{{{SEL}, status=\"5xx\"}}[{RATE}])) or "
         f"sum by (model) (rate(gateway_requests_total{{{SEL}}}[{RATE}])) * 0) / "
         f"sum by (model) (rate(gateway_requests_total{{{SEL}}}[{RATE}]))", "{{model}}"),
        unit="percentunit"), 12, 8)
    grid.add(timeseries("Requests in flight",
                        (f"sum by (model) (gateway_requests_in_flight{{{MODEL}}})", "{{model}}"),
                        unit="short"), 12, 8)

    grid.row("Latency")
    grid.add(timeseries("Request latency by model (p50, p95, p99)",
                        *quantiles("gateway_request_duration_seconds", "model", MODEL),
                        unit="s"), 12, 9)
    grid.add(timeseries("Time to first token by model (p50, p95, p99)",
                        *quantiles("gateway_time_to_first_token_seconds", "model", MODEL),
                        unit="s", description="Streams: from the request to the first event "
                                              "sent to the client."), 12, 9)

    grid.row("Tokens and keys")
    grid.add(timeseries("Tokens / s by kind",
                        (f"sum by (kind) (rate(gateway_tokens_total{{{SEL}}}[{RATE}]))",
                         "{{kind}}"), unit="short", stack=True), 12, 8)
    grid.add(timeseries("Top keys by tokens / s",
                        (f"topk(10, sum by (key) (rate(gateway_tokens_total{{{SEL}}}[{RATE}])))",
                         "{{key}}"), unit="short"), 12, 8)
    grid.add(timeseries("Tokens / s by model",
                        (f"sum by (model) (rate(gateway_tokens_total{{{SEL}}}[{RATE}]))",
                         "{{model}}"), unit="short"), 12, 8)
    grid.add(timeseries("Rate-limited requests by limit",
                        (f"sum by (limit) (rate(gateway_rate_limited_total{{{SEL}}}[{RATE}]))",
                         "{{limit}}"), unit="reqps", stack=True), 12, 8)

    grid.row("Upstreams")
    grid.add(timeseries("Attempts by target and outcome",
                        (f"sum by (target, outcome) (rate(gateway_upstream_requests_total"
                         f"[{RATE}]))", "{{target}} {{outcome}}"), unit="reqps"), 12, 9)
    grid.add(timeseries("Upstream latency by target (p95)",
                        (f"histogram_quantile(0.95, sum by (le, target) (rate("
                         f"gateway_upstream_duration_seconds_bucket[{RATE}])))", "{{target}}"),
                        unit="s"), 12, 9)
    grid.add(timeseries("Retries and fallbacks by reason",
                        (f"sum by (reason) (rate(gateway_retries_total{{{MODEL}}}[{RATE}]))",
                         "retry: {{reason}}"),
                        (f"sum by (reason) (rate(gateway_fallbacks_total{{{MODEL}}}[{RATE}]))",
                         "fallback: {{reason}}"), unit="reqps"), 12, 8)
    breaker = timeseries("Circuit breakers (0 closed, 1 half open, 2 open)",
                         ("max by (target) (gateway_target_breaker_state)", "{{target}}"),
                         unit="short")
    breaker["fieldConfig"]["defaults"].update({"min": 0, "max": 2, "thresholds": {
        "mode": "absolute", "steps": [{"color": "green", "value": None},
                                      {"color": "orange", "value": 1},
                                      {"color": "red", "value": 2}]}})
    breaker["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "area"}
    grid.add(breaker, 12, 8)
    grid.add(timeseries("Attempts in flight by target",
                        ("sum by (target) (gateway_target_in_flight)", "{{target}}"),
                        unit="short"), 24, 7)

    grid.row("Store and config")
    grid.add(timeseries("Store (Redis) latency (p99) and errors",
                        (f"histogram_quantile(0.99, sum by (le, operation) (rate("
                         f"gateway_store_duration_seconds_bucket[{RATE}])))", "p99 {{operation}}"),
                        (f"sum by (operation) (rate(gateway_store_errors_total[{RATE}]))",
                         "errors/s {{operation}}"), unit="s"), 12, 8)
    grid.add(timeseries("Config reloads",
                        ("sum by (result) (increase(gateway_config_reloads_total[$__interval]))",
                         "{{result}}"), unit="short"), 6, 8)
    config = stat("Config in force (hash)", "max by (hash) (gateway_config_info)")
    config["targets"][0]["legendFormat"] = "{{hash}}"
    config["options"]["textMode"] = "name"
    grid.add(config, 6, 8)

    grid.row("Process")
    grid.add(timeseries("Event-loop lag: how late a timer fires (CPU-bound or blocked)",
                        (f"histogram_quantile(0.99, sum by (le) (rate("
                         f"gateway_event_loop_lag_seconds_bucket[{RATE}])))", "p99"),
                        (f"sum(rate(gateway_event_loop_lag_seconds_sum[{RATE}])) / "
                         f"sum(rate(gateway_event_loop_lag_seconds_count[{RATE}]))", "mean"),
                        unit="s"), 24, 7)

    return {
        "uid": "llm-gateway", "title": "LLM gateway", "tags": ["llm", "gateway"],
        "description": "Traffic, errors, latency, tokens, keys, upstreams and limits of the "
                       "gateway, from its /metrics.",
        "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s",
        "timepicker": {}, "timezone": "", "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "refresh": 1, "current": {}},
            variable("model", "Model"), variable("key", "Key")]},
        "panels": grid.panels,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
