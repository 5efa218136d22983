"""deploy/: the compose file, the Kubernetes manifests and the config they share agree.

The gateway's backend file names the vLLM replicas; the compose services and
the StatefulSet's pods must answer to exactly those names, and every file a
manifest mounts must exist. The compose file is checked against the
compose-spec schema and every manifest against Kubernetes' schemas (strict:
an unknown field fails), offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_deploy_config_is_valid_and_names_the_vllm_replicas():
    config = load_config(DEPLOY / "config" / "routes.yaml", {"GATEWAY_MASTER_KEY": "m" * 20})
    backend = config.backends["local"]
    assert [r.url for r in backend.replicas] == ["http://vllm-0.vllm:8000",
                                                 "http://vllm-1.vllm:8000"]
    assert config.routes["assistant"].groups[0].strategy == "vllm-load"


def test_compose_runs_vllm_replicas_under_the_names_the_gateway_uses():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    aliases = {a for s in services.values()
               for a in (s.get("networks") or {}).get("default", {}).get("aliases", [])}
    assert {"vllm-0.vllm", "vllm-1.vllm"} <= aliases
    for name in ("vllm-0", "vllm-1"):
        assert "--served-model-name" in services[name]["command"]
        assert "qwen3-8b" in services[name]["command"]
    for volume in services["gateway"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        assert source in compose["volumes"] or (DEPLOY / source).exists(), volume
    assert (DEPLOY.parent / services["gateway"]["build"]["dockerfile"]).is_file()


def test_kubernetes_runs_a_statefulset_whose_pods_the_backend_file_names():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    manifests = [doc for resource in kustomization["resources"]
                 for doc in documents(DEPLOY / resource)]
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (DEPLOY / entry.split("=")[-1]).is_file(), entry
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests}
    assert {("StatefulSet", "vllm"), ("Service", "vllm"), ("Deployment", "gateway"),
            ("Service", "gateway")} <= kinds
    statefulset = next(d for d in manifests if d["kind"] == "StatefulSet")
    headless = next(d for d in manifests if d["kind"] == "Service" and d["metadata"]["name"] == "vllm")
    assert statefulset["spec"]["serviceName"] == "vllm" and headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["replicas"] == 2  # vllm-0.vllm and vllm-1.vllm
    gateway = next(d for d in manifests if d["kind"] == "Deployment")
    probes = gateway["spec"]["template"]["spec"]["containers"][0]
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_compose_file_matches_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec",
                             str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_gateways_behind_a_balancer_with_the_whole_stack():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert "gateway:8080" in (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert {"lb", "redis", "prometheus", "grafana"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert services["vllm-0"]["profiles"] == ["gpu"]
    for volume in services["grafana"]["volumes"] + services["lb"]["volumes"]:
        assert (DEPLOY / volume.split(":")[0]).exists(), volume


@pytest.mark.parametrize("manifest", sorted(p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")
                                            if p.name != "monitoring.yaml"))
def test_kubernetes_manifests_match_the_kubernetes_schemas(manifest):
    for document in documents(DEPLOY / "kubernetes" / manifest):
        kubernetes_validate.validate(document, "1.32", strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_kustomization_builds_and_validates():
    built = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    kinds = []
    for document in yaml.safe_load_all(built.stdout):
        kubernetes_validate.validate(document, "1.32", strict=True)
        kinds.append(document["kind"])
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler",
                             "PodDisruptionBudget", "Service", "Service", "StatefulSet"]
