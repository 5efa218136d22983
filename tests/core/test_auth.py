"""Keys: three ways to send one, the master key, 401s, and no key ever in the log."""

from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import DEMO_KEY, MASTER_KEY, TEAM_KEY, assert_openai_error

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {TEAM_KEY}"},
    {"Authorization": f"bearer {TEAM_KEY}"},
    {"Authorization": f"Api-Key {TEAM_KEY}"},
    {"x-api-key": TEAM_KEY},
])
def test_each_way_of_sending_a_key(http, headers):
    response = http.post(CHAT, headers=headers, json=BODY)
    assert response.status_code == 200, response.text


def test_master_key_is_accepted_on_v1(http):
    response = http.post(CHAT, headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=BODY)
    assert response.status_code == 200, response.text


def test_missing_key(http, primary):
    error = assert_openai_error(http.post(CHAT, json=BODY), 401, code="missing_api_key")
    assert "Bearer" in error["message"]
    assert primary.requests == []


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer sk-wrong-key"},
    {"Authorization": f"Bearer {TEAM_KEY}x"},
    {"x-api-key": TEAM_KEY[:-1]},
])
def test_wrong_key(http, headers):
    error = assert_openai_error(http.post(CHAT, headers=headers, json=BODY), 401,
                                code="invalid_api_key")
    assert TEAM_KEY[:12] not in error["message"]


def test_unsupported_scheme_is_no_key(http):
    response = http.post(CHAT, headers={"Authorization": f"Basic {TEAM_KEY}"}, json=BODY)
    assert_openai_error(response, 401, code="missing_api_key")


def test_sdk_sees_an_authentication_error(gateway):
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-nope", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(**BODY)


def test_models_are_listed_per_key(http):
    team = http.get("/v1/models", headers={"x-api-key": TEAM_KEY}).json()
    demo = http.get("/v1/models", headers={"x-api-key": DEMO_KEY}).json()
    master = http.get("/v1/models", headers={"x-api-key": MASTER_KEY}).json()

    assert team["object"] == "list"
    assert {m["id"] for m in team["data"]} == {
        "gpt-test", "gpt-converted", "with-fallback", "dead-first", "only-dead", "impatient",
        "rate-limited"}
    assert [m["id"] for m in demo["data"]] == ["demo"]
    assert {m["id"] for m in master["data"]} == {m["id"] for m in team["data"]} | {"demo"}
    assert all(m["object"] == "model" and m["owned_by"] for m in team["data"])


def test_model_by_id(http):
    found = http.get("/v1/models/gpt-test", headers={"x-api-key": TEAM_KEY})
    hidden = http.get("/v1/models/demo", headers={"x-api-key": TEAM_KEY})

    model = found.json()
    assert model == {"id": "gpt-test", "object": "model", "created": model["created"],
                     "owned_by": "gateway",  # OpenAI's fields, and Anthropic's:
                     "type": "model", "display_name": "gpt-test", "created_at": time.strftime(
                         "%Y-%m-%dT%H:%M:%SZ", time.gmtime(model["created"]))}
    assert_openai_error(hidden, 404, code="model_not_found")
    assert_openai_error(http.get("/v1/models"), 401)


def test_sdk_lists_models(client):
    assert "gpt-test" in [m.id for m in client.models.list()]
    assert client.models.retrieve("gpt-test").id == "gpt-test"


def test_keys_never_reach_the_log(http, gateway):
    http.post(CHAT, headers={"Authorization": f"Bearer {TEAM_KEY}"}, json=BODY)
    http.post(CHAT, headers={"Authorization": "Bearer sk-wrong-key-in-log"}, json=BODY)
    http.post(CHAT, headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=BODY)

    log = gateway.log()
    assert '"key":"team-a"' in log  # the key's name is logged...
    for secret in (TEAM_KEY, MASTER_KEY, "sk-wrong-key-in-log", "sk-upstream-primary-secret"):
        assert secret not in log  # ...never a key


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_a_key_declared_in_routes_yaml_is_changed_there_not_through_the_admin_api(http, method):
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"json": {"models": ["demo"]}} if method == "PATCH" else {}
    response = http.request(method, "/admin/keys/team-a", headers=master, **body)

    error = assert_openai_error(response, 409, code="key_in_config")
    assert "declared in routes.yaml" in error["message"]
    still = http.post(CHAT, headers={"Authorization": f"Bearer {TEAM_KEY}"}, json=BODY)
    assert still.status_code == 200, still.text


def test_the_openapi_document_says_when_a_key_change_is_a_conflict(http):
    operations = http.get("/openapi.json").json()["paths"]["/admin/keys/{key}"]
    for method in ("patch", "delete"):
        assert "routes.yaml" in operations[method]["responses"]["409"]["description"]
