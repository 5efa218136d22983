"""deploy/: the compose file, the Kubernetes manifests and the config they share agree.

The gateway's backend file names the vLLM replicas; the compose services and
the StatefulSet's pods must answer to exactly those names, and every file a
manifest mounts must exist. (Full schema checks of the manifests: issue 8.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


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
        assert (DEPLOY / volume.split(":")[0]).exists(), volume
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
