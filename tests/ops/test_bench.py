"""bench/run.py's fixtures: the mock upstream's nginx config and the gateway config it benches.

The benchmark needs nginx and wrk, so no test runs it; these checks catch what
would stop it before its first figure: a block left open, a scenario's model
or path that its configs do not have.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from gateway.config import load_config
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
stages_spec = importlib.util.spec_from_file_location("bench_stages", REPO / "bench" / "stages.py")
assert stages_spec is not None and stages_spec.loader is not None
stages = importlib.util.module_from_spec(stages_spec)
stages_spec.loader.exec_module(stages)


def nginx_locations(text: str) -> list[str]:
    """Each `location` block's path, checking that every block closes before the next opens."""
    depth, paths = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        found = re.match(r"\s*location = (\S+) \{", line)
        if found:
            assert depth == 2, f"nginx.conf:{number}: a location inside another block"
            paths.append(found.group(1))
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"nginx.conf:{number}: '}}' without its block"
    assert depth == 0, "nginx.conf: a block is never closed"
    return paths


def test_the_mock_upstreams_blocks_are_balanced_and_distinct():
    paths = nginx_locations(bench.nginx_conf("/tmp/bench", 8000))

    assert len(paths) == len(set(paths)) >= 7


@pytest.mark.parametrize("scenario", list(bench.SCENARIOS))
def test_each_scenario_has_its_models_and_its_upstream_paths(tmp_path, scenario):
    json_model, stream_model, baselines, api, spoken = bench.SCENARIOS[scenario]
    path = tmp_path / "routes.yaml"
    full = bench.FULL.format(redis="redis://127.0.0.1:6379/0") if scenario == "full" else ""
    path.write_text(bench.CONFIG.format(port=8000) + full)
    config = load_config(path, {})  # what `gateway serve` would refuse, this refuses

    locations = nginx_locations(bench.nginx_conf("/tmp/bench", 8000))
    for model in (json_model, stream_model):
        assert model is None or model in config.routes
        # Passed through where the scenario says so, converted where it does not.
        for target in config.routes[model].attempts() if model else ():
            apis = target.provider.profile.apis
            assert spoken in apis and (api in apis) == (api == spoken), (model, target)
    for base in baselines:
        assert base is None or base + bench.APIS[spoken][0] in locations


@pytest.mark.parametrize("mode", ["json", "stream"])
def test_the_stage_timer_sees_every_stage_of_a_request(mode):
    """bench/stages.py wraps the request path's functions by name: a stage that was renamed
    fails it, and one that is no longer called on the path would read 0."""
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "stages.py"), "--requests", "200", "--warmup", "20",
         "--mode", mode], capture_output=True, text=True, timeout=60, check=True)
    rows = {line[:52].rstrip(): float(line[52:]) for line in result.stdout.splitlines()[1:]}
    # A whole answer and a stream take different stages at the end.
    whole = ["    adapt: the answer checked and rewritten", "    answer: headers and body to the client"]
    streamed = ["    stream: relayed to the client",
                "      adapt: a stream's reads checked and rewritten", "      adapt: a stream's end"]
    for _, _, label in stages.STAGES:
        if label in (streamed if mode == "json" else whole):
            assert rows[label] == 0, label
        else:
            assert rows[label] > 0, label
