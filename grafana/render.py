"""Draw the dashboard as a PNG from Prometheus data, without Grafana.

    python grafana/render.py --prometheus http://127.0.0.1:9090 --minutes 10 --out dash.png

Every panel of grafana/dashboards/gateway.json is drawn where the dashboard
places it, from its own queries run against Prometheus's HTTP API: the same
numbers Grafana would show, drawn by matplotlib (pip install matplotlib).
Template variables are taken as "All".
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "gateway.json"
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#37872d",
           "#fade2a", "#8ab8ff", "#ffb357", "#ff7383", "#ca95e5"]
ROW_UNIT = 0.42  # inches of one grid row


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list:
    url = prometheus.rstrip("/") + "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(url, timeout=30) as response:
        answer = json.loads(response.read())
    return answer["data"]["result"] if answer.get("status") == "success" else []


def concrete(expr: str, step: float) -> str:
    rate = f"{max(int(step * 4), 15)}s"
    return (expr.replace("$__rate_interval", rate).replace("$__interval", f"{int(step)}s")
            .replace("$model", ".*").replace("$key", ".*"))


def legend(template: str, labels: dict) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.strip() or ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def formatted(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    suffix = " req/s" if unit == "reqps" else ""
    for limit, letter in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{letter}{suffix}"
    return f"{value:.3g}{suffix}" if value < 10 else f"{value:.1f}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--out", default="dashboard.png")
    args = parser.parse_args()
    render(args.prometheus, args.minutes, Path(args.out))


def render(prometheus: str, minutes: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = json.loads(DASHBOARD.read_text())
    end = time.time()
    start = end - minutes * 60
    step = max(minutes * 60 / 240, 2)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    height = rows * ROW_UNIT + 0.8
    figure = plt.figure(figsize=(20, height), facecolor=BACKGROUND)
    figure.text(0.01, 1 - 0.35 / height, board["title"], color=TEXT, fontsize=16, weight="bold",
                va="center")
    figure.text(0.99, 1 - 0.35 / height,
                f"last {minutes:g} minutes · drawn from Prometheus by grafana/render.py",
                color="#8e8e8e", fontsize=9, ha="right", va="center")
    top = 1 - 0.7 / height
    usable = top - 0.1 / height
    for panel in board["panels"]:
        place = panel["gridPos"]
        left = place["x"] / 24 + 0.004
        width = place["w"] / 24 - 0.008
        bottom = top - (place["y"] + place["h"]) / rows * usable + 0.004
        tall = place["h"] / rows * usable - 0.008
        if panel["type"] == "row":
            figure.text(left, bottom + tall / 2, panel["title"], color=TEXT, fontsize=12,
                        weight="bold", va="center")
            continue
        axes = figure.add_axes((left, bottom, width, tall), facecolor=PANEL)
        axes.set_title(panel["title"], color=TEXT, fontsize=9, loc="left", pad=4)
        for side in axes.spines.values():
            side.set_color(GRID)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        series = []
        for target in panel["targets"]:
            for result in query_range(prometheus, concrete(target["expr"], step), start, end,
                                      step):
                points = [(float(t), float(v)) for t, v in result["values"]]
                series.append((legend(target.get("legendFormat", ""), result["metric"]), points))
        if panel["type"] == "stat":
            draw_stat(axes, panel, series, unit)
        else:
            draw_series(axes, panel, series, unit, start, end)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=72, facecolor=BACKGROUND)
    print(f"wrote {out}")


def draw_stat(axes, panel: dict, series: list, unit: str) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    if not series:
        axes.text(0.5, 0.45, "No data", color="#8e8e8e", ha="center", va="center",
                  transform=axes.transAxes, fontsize=12)
        return
    name, points = series[0]
    last = points[-1][1]
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    color = PALETTE[0]
    for threshold in steps:
        if threshold["value"] is None or last >= threshold["value"]:
            color = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}.get(
                threshold["color"], threshold["color"])
    if panel["options"].get("textMode") == "name":
        text = name
    else:
        text = formatted(last, unit)
    axes.fill_between([p[0] for p in points], [p[1] for p in points], color=color, alpha=0.15)
    axes.plot([p[0] for p in points], [p[1] for p in points], color=color, alpha=0.5, lw=1)
    axes.text(0.5, 0.45, text, color=color, ha="center", va="center", transform=axes.transAxes,
              fontsize=20 if len(text) < 12 else 13, weight="bold")


def draw_series(axes, panel: dict, series: list, unit: str, start: float, end: float) -> None:
    import matplotlib.dates as dates

    custom = panel["fieldConfig"]["defaults"].get("custom", {})
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    axes.tick_params(colors="#8e8e8e", labelsize=7)
    axes.grid(color=GRID, linewidth=0.5)
    axes.set_xlim(_when(start), _when(end))
    axes.xaxis.set_major_formatter(dates.DateFormatter("%H:%M"))
    axes.yaxis.set_major_formatter(lambda value, _: formatted(value, unit))
    if not series:
        axes.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center",
                  transform=axes.transAxes, fontsize=11)
        return
    series = sorted(series, key=lambda s: -max((v for _, v in s[1] if v == v), default=0))[:10]
    if stacked:
        times = sorted({t for _, points in series for t, _ in points})
        layers = [[dict(points).get(t, 0.0) for t in times] for _, points in series]
        axes.stackplot([_when(t) for t in times], layers, colors=PALETTE, alpha=0.7,
                       labels=[name for name, _ in series])
    else:
        for i, (name, points) in enumerate(series):
            axes.plot([_when(t) for t, _ in points], [v for _, v in points], label=name,
                      color=PALETTE[i % len(PALETTE)], lw=1.3)
    axes.legend(loc="upper left", fontsize=6.5, ncol=min(len(series), 4), frameon=False,
                labelcolor=TEXT)
    top = panel["fieldConfig"]["defaults"].get("max")
    if top is not None:
        axes.set_ylim(-0.1, top + 0.2)
    else:
        axes.set_ylim(bottom=0)


def _when(timestamp: float):
    import datetime

    return datetime.datetime.fromtimestamp(timestamp)


if __name__ == "__main__":
    main()
