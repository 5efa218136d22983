"""`gateway serve` options beyond the defaults."""

from __future__ import annotations

import httpx

from tests.conftest import REPO
from tests.gateway_process import GatewayProcess, wait_for


def test_two_workers_serve_and_log(tmp_path):
    config = tmp_path / "routes.yaml"
    config.write_text((REPO / "routes.yaml").read_text())
    with GatewayProcess(config, args=["--workers", "2"]) as gateway:
        for i in range(6):
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": "Bearer sk-gateway-demo", "x-request-id": f"w-{i}"},
                json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200

        assert wait_for(lambda: gateway.log().count('"msg":"gateway ready"') == 2, 10,
                        "both workers to log that they are ready")
        entries = [wait_for(lambda i=i: gateway.request_log(f"w-{i}"), 5, "a request's log line")
                   for i in range(6)]
        assert {e["status"] for e in entries} == {200}
