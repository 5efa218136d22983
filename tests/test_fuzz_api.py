"""schemathesis against the running gateway, from its own /openapi.json.

Every operation, /admin included, with generated valid and invalid requests,
as the master key (so every path is reachable) and with no key at all. Checked
on every answer: no 5xx, the status is one the document lists, the body
matches the documented schema, an error is in its API's shape (`error_shape`), and it
comes back in bounded time.

The examples per operation come from GATEWAY_FUZZ_EXAMPLES (default 30); a
long run is `GATEWAY_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_fuzz_api.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import EXAMPLES, TIMEOUT, fuzzed_gateway
from tests.gateway_process import GatewayProcess

MASTER = "sk-fuzz-master-0123456789"
pytestmark = TIMEOUT


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with fuzzed_gateway(tmp_path_factory.mktemp("fuzz"), "256KiB", """
        providers:
          up: {profile: openai, base_url: "{upstream}", api_key: "sk-upstream-fuzz-secret"}
          demo: {profile: demo}
        models:
          gpt-fuzz: {targets: [{provider: up, model: m}]}
          demo: {targets: [{provider: demo, model: demo}]}
    """, {"GATEWAY_MASTER_KEY": MASTER}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def api(fuzz_gateway: GatewayProcess):
    return schemathesis.openapi.from_url(fuzz_gateway.url + "/openapi.json")


def error_shape(ctx, response, case) -> None:
    """Each API's errors in its own shape, exactly: Anthropic's (with a `request-id` header)
    on the Messages paths, OpenAI's everywhere else. The document's Error schemas are open,
    as the APIs' are, so that an Anthropic body would pass for an OpenAI one."""
    if response.status_code < 400:
        return
    body = response.json()
    if case.operation.path.startswith("/v1/messages"):
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
        assert response.headers["request-id"] == response.headers["x-request-id"]
    else:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body


def fuzz(api, base_url: str, headers: dict[str, str], examples: int) -> list[str]:
    """Run every operation's generated cases; the operations that were exercised.

    Driven through hypothesis directly rather than schemathesis' pytest plugin,
    which does not load under pytest 9."""
    exercised = []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(base_url=base_url, timeout=30, headers=headers,
                                   additional_checks=[error_shape])

        check()
        exercised.append(operation.label)
    return exercised


def test_every_operation_as_the_master_key(api, fuzz_gateway):
    exercised = fuzz(api, fuzz_gateway.url, {"Authorization": f"Bearer {MASTER}"}, EXAMPLES)
    assert "POST /v1/chat/completions" in exercised
    assert "POST /v1/embeddings" in exercised
    assert "PATCH /admin/keys/{key}" in exercised
    assert "POST /v1/completions" in exercised
    assert "POST /v1/responses" in exercised
    assert "GET /v1/responses/{response_id}/input_items" in exercised
    assert "DELETE /v1/responses/{response_id}" in exercised
    assert "POST /v1/messages" in exercised
    assert "POST /v1/messages/count_tokens" in exercised
    assert "POST /console/session" in exercised
    assert {"GET /admin/overview", "GET /admin/routes", "GET /admin/config"} <= set(exercised)
    assert len(exercised) == 29


def test_every_operation_without_a_key(api, fuzz_gateway):
    assert len(fuzz(api, fuzz_gateway.url, {}, max(5, EXAMPLES // 5))) == 29
