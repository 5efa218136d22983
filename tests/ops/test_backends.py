"""Local vLLM backends: backends/*.yaml, `gateway backends up|status|down`, affinity, discovery.

The replicas here are vLLM stand-ins (tests/vllm_standin.py, or tests/upstream.py
in-process) that speak vLLM's endpoints on loopback; tests/vllm/ runs the same
paths against a real vLLM server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.apis.chat.surface import CHAT as CHAT_API
from gateway.backends import launch
from gateway.config import ConfigError, load_config
from gateway.core.balance import pick
from gateway.core.health import Health, Load
from tests.gateway_process import GatewayProcess, free_port, wait_for
from tests.upstream import Upstream

TESTS = Path(__file__).resolve().parents[1]
KEY = "sk-backends-tests-0123456789"
CHAT = "/v1/chat/completions"
STANDIN = [sys.executable, str(TESTS / "vllm_standin.py")]


def write(directory: Path, routes: str, **backends: str) -> Path:
    (directory / "backends").mkdir(parents=True, exist_ok=True)
    for name, text in backends.items():
        (directory / "backends" / f"{name}.yaml").write_text(textwrap.dedent(text))
    path = directory / "routes.yaml"
    path.write_text(textwrap.dedent(routes))
    return path


def refused(directory: Path, routes: str, **backends: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(directory, routes, **backends), {})
    return str(caught.value)


QWEN = """
    model: /models/qwen3-8b
    served_model_name: qwen3-8b
    alias: qwen
    api_key: sk-local-vllm-secret
    vllm:
      max_model_len: 8192
      gpu_memory_utilization: 0.85
      enable_prefix_caching: true
      reasoning_parser: qwen3
      tool_call_parser: hermes
      enable_auto_tool_choice: true
      extra_args: ["--swap-space", "4"]
    replicas:
      - {port: 8001, device: "0"}
      - {port: 8002, device: "1"}
      - {url: "http://10.0.0.7:8000/v1"}
"""


# --- the files ---------------------------------------------------------------------------

def test_a_backend_serves_its_alias_over_its_replicas(tmp_path):
    config = load_config(write(tmp_path, "models: {}", qwen=QWEN), {})
    route = config.routes["qwen"]
    (group,) = route.groups
    assert group.strategy == "vllm-load"
    assert [t.name for t in group.targets] == ["qwen#0/qwen3-8b", "qwen#1/qwen3-8b",
                                               "qwen#2/qwen3-8b"]
    assert [t.provider.base_url for t in group.targets] == [
        "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1", "http://10.0.0.7:8000/v1"]
    replica = group.targets[0].provider
    assert replica.backend == "qwen" and replica.served_model == "qwen3-8b"
    assert replica.probe.url == "http://127.0.0.1:8001/v1/models"
    assert replica.metrics_url == "http://127.0.0.1:8001/metrics"
    assert replica.headers["authorization"] == "Bearer sk-local-vllm-secret"
    assert "sk-local-vllm-secret" not in repr(config.backends["qwen"])


def test_routes_refer_to_a_backend_by_name_in_a_fallback_chain(tmp_path):
    config = load_config(write(tmp_path, """
        providers:
          cloud: {profile: openai, base_url: "https://api.example.com/v1", api_key: sk-x}
        models:
          assistant:
            targets: [{backend: qwen}, {provider: cloud, model: gpt-5-mini}]
    """, qwen=QWEN), {})
    first, fallback = config.routes["assistant"].groups
    assert len(first.targets) == 3 and first.strategy == "vllm-load"
    assert [t.name for t in fallback.targets] == ["cloud/gpt-5-mini"]


def test_the_vllm_command_line(tmp_path):
    backend = load_config(write(tmp_path, "models: {}", qwen=QWEN), {}).backends["qwen"]
    first, second, external = backend.replicas
    assert not external.launched
    argv = launch.command(backend, first, {launch.PYTHON_ENV: "/opt/vllm/bin/python"})
    assert argv == [
        "/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/models/qwen3-8b", "--host", "127.0.0.1", "--port", "8001",
        "--served-model-name", "qwen3-8b", "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.85", "--enable-prefix-caching",
        "--reasoning-parser", "qwen3", "--tool-call-parser", "hermes",
        "--enable-auto-tool-choice", "--swap-space", "4", "--api-key", "sk-local-vllm-secret"]
    assert "sk-local-vllm-secret" not in launch.redacted(argv)
    assert launch.environment(backend, second, {})["CUDA_VISIBLE_DEVICES"] == "1"


def test_a_cpu_replica_confined_to_its_cores(tmp_path):
    """`cpus` runs the whole replica on those CPUs (set before exec, so every process
    and thread vLLM starts inherits it) and, on the CPU, binds vLLM's threads to them."""
    backend = load_config(write(tmp_path, "models: {}", tiny="""
        model: /models/tiny
        replicas:
          - {port: 8001, device: cpu, cpus: "0-3, 8"}
          - {port: 8002, device: cpu, cpus: 4, env: {VLLM_CPU_OMP_THREADS_BIND: "4-5"}}
    """), {}).backends["tiny"]
    first, second = backend.replicas
    argv = launch.command(backend, first, {launch.PYTHON_ENV: "/opt/vllm/bin/python"})
    assert argv[:6] == [sys.executable, "-m", "gateway.backends.pin", "0-3,8", "--",
                        "/opt/vllm/bin/python"]
    assert launch.environment(backend, first, {})["VLLM_CPU_OMP_THREADS_BIND"] == "0-3,8"
    assert launch.environment(backend, second, {})["VLLM_CPU_OMP_THREADS_BIND"] == "4-5"


@pytest.mark.parametrize("routes, backend, expected", [
    ("models: {chat: {targets: [{backend: qwne}]}}", QWEN,
     "routes.yaml:1: models.chat.targets[0].backend: unknown backend 'qwne'; known backends: qwen"),
    ("models: {qwen: {targets: [{backend: qwen}]}}", QWEN,
     "routes.yaml:1: models.qwen: also served by backend 'qwen' (backends/qwen.yaml, alias)"),
    ("models: {}", "model: m\nreplicas: [{url: 'http://h:8000', port: 8001}]",
     "qwen.yaml:2: replicas[0]: give 'url' (a running server) or 'port' (launched here)"),
    ("models: {}", "model: m\nreplicas: [{port: 8001}]\nvllm: {gpu_memory_utilization: 1.5}",
     "qwen.yaml:3: vllm.gpu_memory_utilization: input should be less than or equal to 1"),
    ("models: {}", "model: m\nreplicas: [{port: 8001}]\nvllm: {chat_template: none.jinja}",
     "qwen.yaml:3: vllm.chat_template: no such file"),
    ("models: {}", "model: m\nreplicas: []", "qwen.yaml:2: replicas: list should have at least 1"),
    ("models: {chat: {targets: [{backend: qwen, model: x}]}}", QWEN,
     "models.chat.targets[0]: give either 'backend' or 'provider' and 'model'"),
    ("models: {}", "model: m\nreplicas: [{port: 8001, cpus: '0-3,x'}]",
     "qwen.yaml:2: replicas[0].cpus: 'x' is not a CPU number or range (like 0-3,8)"),
    ("models: {}", "model: m\nreplicas: [{port: 8001, cpus: '0-99999999'}]",
     "qwen.yaml:2: replicas[0].cpus: CPU 99999999 is past 8191"),
    ("models: {}", "model: m\nreplicas: [{url: 'http://h:8000', cpus: 0}]",
     "qwen.yaml:2: replicas[0]: 'device', 'cpus' and 'env' are for replicas launched here"),
])
def test_bad_backends_are_refused_with_the_file_and_place(tmp_path, routes, backend, expected):
    assert expected in refused(tmp_path, routes, qwen=backend)


def test_two_backends_on_one_port_are_refused(tmp_path):
    error = refused(tmp_path, "models: {}", a="model: a\nreplicas: [{port: 8001}]",
                    b="model: b\nreplicas: [{port: 8001}]")
    assert "b.yaml:2: replicas[0].port: port 8001 is also used by backend 'a'" in error


# --- session affinity --------------------------------------------------------------------

def affinity_group(tmp_path: Path, affinity: str):
    qwen = textwrap.dedent(QWEN) + f"affinity: {affinity}\n"
    config = load_config(write(tmp_path, "models: {}", qwen=qwen), {})
    return config.routes["qwen"].groups[0]


def session(payload: dict):
    """A chat request's session key, as the relay hands it to the balancer."""
    return lambda affinity: CHAT_API.session(affinity, payload)


def test_the_same_user_goes_to_the_same_replica(tmp_path):
    group = affinity_group(tmp_path, "{by: user}")
    health = Health()
    homes = {user: {pick(group, "g", list(group.targets), health, session({"user": user})).key
                    for _ in range(5)} for user in (f"user-{i}" for i in range(30))}
    assert all(len(home) == 1 for home in homes.values())  # each user always to one replica
    assert len(set().union(*homes.values())) == 3  # and the users spread over all three


def test_affinity_yields_when_the_home_replica_is_much_busier(tmp_path):
    group = affinity_group(tmp_path, "{by: user, max_extra_load: 4}")
    health = Health()
    home = pick(group, "g", list(group.targets), health, session({"user": "alice"}))
    health.state(home.key).load = Load(running=6, waiting=2, kv_cache=0.1, read_at=0)
    elsewhere = pick(group, "g", list(group.targets), health, session({"user": "alice"}))
    assert elsewhere.key != home.key
    health.state(home.key).load = Load(running=2, waiting=0, kv_cache=0.1, read_at=0)
    assert pick(group, "g", list(group.targets), health, session({"user": "alice"})).key == home.key


def test_a_long_shared_prefix_goes_to_the_same_replica(tmp_path):
    group = affinity_group(tmp_path, "{by: prefix, min_prefix_chars: 1000}")
    health = Health()
    system = "You are a support agent for ACME. " * 60  # 2,000 characters shared

    def ask(question: str) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return pick(group, "g", list(group.targets), health, session({"messages": messages})).key

    assert len({ask(f"question {i}") for i in range(10)}) == 1
    short = [{"role": "user", "content": "hi"}]  # too short to be worth pinning: balanced
    assert len({pick(group, "g", list(group.targets), health, session({"messages": short})).key
                for _ in range(6)}) == 3


# --- gateway backends up / status / down, with stand-ins that speak vLLM's endpoints ----

def cli(config: Path, *args: str, timeout: float = 60, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "gateway", "backends", *args, "--config",
                           str(config)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def replicas_state(config: Path, name: str) -> list[dict]:
    try:
        text = (config.parent / ".gateway" / "backends" / f"{name}.json").read_text()
        return json.loads(text)["replicas"]
    except (OSError, ValueError):
        return []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture
def launched(tmp_path) -> Iterator[Path]:
    ports = [free_port(), free_port()]
    config = write(tmp_path, f"""
        keys:
          team: {{key: "{KEY}"}}
    """, tiny=f"""
        model: /models/tiny
        served_model_name: tiny
        alias: tiny-chat
        command: {json.dumps(STANDIN)}
        vllm: {{max_model_len: 2048, enforce_eager: true}}
        replicas: [{{port: {ports[0]}, cpus: "0"}}, {{port: {ports[1]}}}]
        restart: {{backoff: 0.2}}
        probe_interval: 0.2
        metrics_interval: 0.2
    """)
    yield config
    cli(config, "down", "tiny")


def test_up_launches_the_replicas_and_the_gateway_serves_them(launched):
    up = cli(launched, "up", "tiny")
    assert up.returncode == 0, up.stderr
    assert "2 replica(s) healthy" in up.stdout
    status = json.loads(cli(launched, "status", "--json").stdout)
    assert [(r["process"], r["healthy"], r["served"]) for r in status] == [
        ("healthy", True, ["tiny"])] * 2
    # replica 0 declares cpus: "0"; replica 1 may run anywhere this process may
    assert [os.sched_getaffinity(r["pid"]) for r in status] == [{0}, os.sched_getaffinity(0)]

    with GatewayProcess(launched) as gateway, httpx.Client(base_url=gateway.url) as http:
        targets = [http.post(CHAT, headers={"authorization": f"Bearer {KEY}"}, json={
            "model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}]})
            for _ in range(6)]
        assert [r.status_code for r in targets] == [200] * 6
        assert {r.json()["model"] for r in targets} == {"tiny-chat"}
        assert {r.headers["x-gateway-target"] for r in targets} == {"tiny#0/tiny", "tiny#1/tiny"}

    down = cli(launched, "down", "tiny")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not any(alive(r["pid"]) for r in status if r["pid"])
    assert cli(launched, "status", "--json").returncode == 1  # nothing healthy any more


def test_a_replica_that_dies_is_out_at_once_and_restarted(launched):
    assert cli(launched, "up", "tiny").returncode == 0
    with GatewayProcess(launched) as gateway, httpx.Client(base_url=gateway.url) as http:
        def ask() -> httpx.Response:
            return http.post(CHAT, headers={"authorization": f"Bearer {KEY}"}, json={
                "model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}]})

        first = replicas_state(launched, "tiny")[0]
        os.kill(first["pid"], signal.SIGKILL)
        answers = [ask() for _ in range(6)]  # no client sees the dead replica
        assert [r.status_code for r in answers] == [200] * 6
        assert {r.headers["x-gateway-target"] for r in answers} == {"tiny#1/tiny"}

        restarted = wait_for(lambda: next((r for r in replicas_state(launched, "tiny")
                                           if r["index"] == 0 and r["state"] == "healthy"
                                           and r["restarts"] == 1), None),
                             20, "the supervisor to restart replica 0")
        assert restarted["pid"] != first["pid"]
        wait_for(lambda: "tiny#0/tiny" in {ask().headers["x-gateway-target"] for _ in range(4)},
                 10, "the gateway to route to the restarted replica again")


def test_a_replica_that_cannot_start_fails_up_with_its_log(tmp_path):
    config = write(tmp_path, "models: {}", broken=f"""
        model: m
        command: {json.dumps(STANDIN)}
        replicas: [{{port: {free_port()}, env: {{STANDIN_FAIL: "1"}}}}]
        restart: false
    """)
    up = cli(config, "up", "broken")
    assert up.returncode == 1
    assert "broken#0 exited with code 3 while starting" in up.stderr
    assert "failing on purpose" in up.stderr  # the replica's own last words


def test_a_replica_on_cpus_the_machine_lacks_fails_up_and_says_so(tmp_path):
    config = write(tmp_path, "models: {}", pinned=f"""
        model: m
        command: {json.dumps(STANDIN)}
        replicas: [{{port: {free_port()}, cpus: "8191"}}]
        restart: false
    """)
    up = cli(config, "up", "pinned")
    assert up.returncode == 1
    assert "pinned#0 exited with code 2 while starting" in up.stderr
    assert "cannot run on CPUs 8191" in up.stderr


@pytest.fixture
def wrong_and_right() -> Iterator[tuple[Upstream, Upstream]]:
    wrong = Upstream(served=["llama-3-8b"]).start()
    right = Upstream(served=["qwen3-8b"]).start()
    yield wrong, right
    wrong.stop()
    right.stop()


def test_a_url_replica_serving_another_model_is_refused(tmp_path, wrong_and_right):
    wrong, right = wrong_and_right
    config = write(tmp_path, f"""
        keys:
          team: {{key: "{KEY}"}}
    """, qwen=f"""
        model: Qwen/Qwen3-8B
        served_model_name: qwen3-8b
        alias: qwen
        replicas: [{{url: "{wrong.url}"}}, {{url: "{right.url}"}}]
        probe_interval: 0.2
    """)
    up = cli(config, "up", "qwen")
    assert up.returncode == 2
    assert f"replica 0 at http://127.0.0.1:{wrong.port} serves llama-3-8b, not 'qwen3-8b'" in up.stderr

    with GatewayProcess(config) as gateway, httpx.Client(base_url=gateway.url) as http:
        wait_for(lambda: http.get("/readyz").json()["targets"]["qwen#0/qwen3-8b"]["state"]
                 == "open", 10, "the probe to keep the misdeclared replica out")
        answers = [http.post(CHAT, headers={"authorization": f"Bearer {KEY}"}, json={
            "model": "qwen", "messages": [{"role": "user", "content": "hi"}]}) for _ in range(4)]
        assert {r.headers["x-gateway-target"] for r in answers} == {"qwen#1/qwen3-8b"}
        assert not wrong.requests  # never sent a request for a model it does not have
        assert "serves 'llama-3-8b', not 'qwen3-8b'" in gateway.log()


def test_the_example_backend_file_is_valid(tmp_path):
    example = (TESTS.parent / "backends" / "qwen3-8b.yaml.example").read_text()
    config = load_config(write(tmp_path, "models: {}", **{"qwen3-8b": example}), {})
    backend = config.backends["qwen3-8b"]
    assert [r.launched for r in backend.replicas] == [True, True, False]
    assert config.routes["qwen3-8b"].groups[0].affinity.by == "user-or-prefix"
