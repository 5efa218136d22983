"""GET / DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items on real gateways.

Two gateway replicas share one real Redis. The records are written through the store as
the Responses surface's `keep` writes them (gateway/apis/responses/state.py), then read
over HTTP, with the openai SDK and plain HTTP: owner-only, on either replica, until their
TTL runs out. Last, a conversation posted to each replica in turn, as a load balancer
would send it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import openai
import pytest

from gateway.apis.responses import state
from gateway.config.compiled import ResponsesSettings
from gateway.core.auth import Principal
from gateway.store.base import KeyRecord
from gateway.store.redis import RedisStore
from tests.conftest import assert_openai_error
from tests.gateway_process import GatewayProcess, wait_for
from tests.redis_server import RedisServer, redis_fixture  # noqa: F401 (the `redis` fixture)

TEAM_KEY = "sk-test-stored-team-0123456789"
OTHER_KEY = "sk-test-stored-other-0123456789"
MASTER_KEY = "sk-test-stored-master-0123456789"
CONFIG = """
store: {{url: "{redis}"}}
providers:
  demo: {{profile: demo}}
models:
  demo: {{targets: [{{provider: demo, model: demo}}]}}
keys:
  team: {{key: "{team}"}}
  other: {{key: "{other}"}}
"""
# Config keys' ids are `cfg-` and their name: the owner the gateway finds for each key.
TEAM = Principal("team", KeyRecord(id="cfg-team", name="team", digest="", prefix=""))
MASTER = Principal("master", None)


@pytest.fixture(scope="module")
def replicas(redis, tmp_path_factory) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    path = tmp_path_factory.mktemp("stored") / "routes.yaml"
    path.write_text(CONFIG.format(redis=redis.url, team=TEAM_KEY, other=OTHER_KEY))
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY}
    with GatewayProcess(path, env) as one, GatewayProcess(path, env) as two:
        yield one, two


def auth(key: str = TEAM_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def response(n: int, text: str = "Hello Ada") -> dict:
    return {"id": f"resp_{n}", "object": "response", "created_at": 1700000000, "model": "demo",
            "status": "completed", "output": [
                {"id": f"msg_out{n}", "type": "message", "role": "assistant",
                 "status": "completed",
                 "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}


def keep(redis: RedisServer, payload: dict, final: dict, principal: Principal = TEAM,
         ttl: float = 3600) -> None:
    """Store a response as the pipeline's keep does: recall, then keep, on a store of its own."""
    async def write() -> None:
        runtime = SimpleNamespace(store=RedisStore(redis.url),
                                  config=SimpleNamespace(responses=ResponsesSettings(ttl=ttl)))
        sent = await state.recall(runtime, principal, payload)
        await state.keep(runtime, principal, payload, sent, final)
        await runtime.store.close()

    asyncio.run(write())


def sdk(gateway: GatewayProcess, key: str = TEAM_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture(autouse=True)
def _empty(redis) -> None:
    redis.flush()


def test_a_stored_response_is_retrieved_from_either_replica(replicas, redis):
    keep(redis, {"model": "demo", "input": "Hi, I am Ada."}, response(1))
    for gateway in replicas:
        got = httpx.get(f"{gateway.url}/v1/responses/resp_1", headers=auth())
        assert got.status_code == 200, got.text
        assert got.json() == response(1)
        assert got.headers.get("x-request-id")
        with sdk(gateway) as client:
            retrieved = client.responses.retrieve("resp_1")
        assert (retrieved.id, retrieved.output_text, retrieved.usage.total_tokens) == (
            "resp_1", "Hello Ada", 7)


def test_another_key_gets_a_404_as_for_a_missing_response(replicas, redis):
    keep(redis, {"model": "demo", "input": "secret"}, response(1))
    one, two = replicas
    messages = set()
    for gateway, key, response_id in ((one, OTHER_KEY, "resp_1"), (two, OTHER_KEY, "resp_1"),
                                      (one, TEAM_KEY, "resp_2"), (one, MASTER_KEY, "resp_1")):
        for method, path in (("GET", ""), ("GET", "/input_items"), ("DELETE", "")):
            answer = httpx.request(method, f"{gateway.url}/v1/responses/{response_id}{path}",
                                   headers=auth(key))
            error = assert_openai_error(answer, 404, code="response_not_found")
            messages.add(error["message"].replace(response_id, "ID"))
    assert messages == {"Response with id 'ID' not found."}  # never says whose or why
    assert httpx.get(f"{one.url}/v1/responses/resp_1", headers=auth()).status_code == 200
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/resp_1"), 401)
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/resp_1",
                                  headers=auth("sk-nobody-0123456789")), 401)


def test_the_master_keys_own_responses_are_its_own(replicas, redis):
    keep(redis, {"model": "demo", "input": "from the admin"}, response(1), principal=MASTER)
    one, _ = replicas
    assert httpx.get(f"{one.url}/v1/responses/resp_1", headers=auth(MASTER_KEY)).status_code == 200
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/resp_1", headers=auth()), 404)


def test_a_response_deleted_on_one_replica_is_gone_from_the_other(replicas, redis):
    keep(redis, {"model": "demo", "input": "Hi"}, response(1))
    keep(redis, {"model": "demo", "input": "Hi"}, response(2))
    one, two = replicas
    deleted = httpx.delete(f"{one.url}/v1/responses/resp_1", headers=auth())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": "resp_1", "object": "response.deleted", "deleted": True}
    assert_openai_error(httpx.get(f"{two.url}/v1/responses/resp_1", headers=auth()), 404,
                        code="response_not_found")
    assert_openai_error(httpx.delete(f"{two.url}/v1/responses/resp_1", headers=auth()), 404)
    with sdk(two) as client:
        client.responses.delete("resp_2")  # the SDK's own call, as apps make it
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_2")


def conversation(redis: RedisServer) -> list[str]:
    """Three turns; the third's input items, oldest first, by their text."""
    keep(redis, {"model": "demo", "input": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hi, I am Ada."}]}, response(1, "Hello Ada"))
    keep(redis, {"model": "demo", "previous_response_id": "resp_1", "input": "My name?"},
         response(2, "Ada"))
    keep(redis, {"model": "demo", "previous_response_id": "resp_2", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And?"}]},
        {"role": "user", "content": "Thanks"}]}, response(3, "Welcome"))
    return ["Be brief.", "Hi, I am Ada.", "Hello Ada", "My name?", "Ada", "And?", "Thanks"]


def text_of(item: dict) -> str:
    return item["content"][0]["text"]


def test_input_items_list_the_whole_conversation_newest_first(replicas, redis):
    oldest_first = conversation(redis)
    one, two = replicas
    listed = httpx.get(f"{two.url}/v1/responses/resp_3/input_items", headers=auth()).json()
    assert [text_of(i) for i in listed["data"]] == oldest_first[::-1]
    assert listed["object"] == "list" and listed["has_more"] is False
    assert (listed["first_id"], listed["last_id"]) == (listed["data"][0]["id"],
                                                       listed["data"][-1]["id"])
    assert listed["data"][2]["id"] == "msg_out2"  # the earlier answer, as it was sent
    assert all(i["id"].startswith("msg_") for i in listed["data"])
    with sdk(one) as client:  # the SDK pages on `after` and `has_more`, two items a page
        pages = client.responses.input_items.list("resp_3", order="asc", limit=2)
        assert [text_of(i.model_dump()) for i in pages] == oldest_first
        assert len(list(pages.iter_pages())) == 4
        first = client.responses.input_items.list("resp_1", order="asc")
        assert [(i.role, text_of(i.model_dump())) for i in first.data] == [
            ("developer", "Be brief."), ("user", "Hi, I am Ada.")]


def test_input_items_pages_on_after_and_limit(replicas, redis):
    oldest_first = conversation(redis)
    one, _ = replicas
    url = f"{one.url}/v1/responses/resp_3/input_items"
    first = httpx.get(url, params={"order": "asc", "limit": 3}, headers=auth()).json()
    assert [text_of(i) for i in first["data"]] == oldest_first[:3]
    assert first["has_more"] is True
    rest = httpx.get(url, params={"order": "asc", "limit": 100, "after": first["last_id"]},
                     headers=auth()).json()
    assert [text_of(i) for i in rest["data"]] == oldest_first[3:]
    assert rest["has_more"] is False
    last = httpx.get(url, params={"after": first["data"][0]["id"]}, headers=auth()).json()
    assert last["data"] == [] and last["has_more"] is False  # nothing older than the oldest
    assert (last["first_id"], last["last_id"]) == (None, None)
    for params, param in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                          ({"limit": "ten"}, "limit"), ({"order": "up"}, "order"),
                          ({"after": "msg_nothing"}, "after")):
        assert_openai_error(httpx.get(url, params=params, headers=auth()), 400, param=param)


def test_a_stored_response_expires_with_its_ttl(replicas, redis):
    keep(redis, {"model": "demo", "input": "short-lived"}, response(1), ttl=1.0)
    keep(redis, {"model": "demo", "input": "long-lived"}, response(2))
    one, two = replicas
    assert httpx.get(f"{one.url}/v1/responses/resp_1", headers=auth()).status_code == 200
    wait_for(lambda: httpx.get(f"{two.url}/v1/responses/resp_1", headers=auth()).status_code
             == 404, 5, "a response with a 1 s TTL to expire")
    assert httpx.get(f"{two.url}/v1/responses/resp_2", headers=auth()).status_code == 200


def test_what_cannot_be_answered_is_an_openai_error(replicas, redis):
    keep(redis, {"model": "demo", "input": "Hi"}, response(1))
    one, _ = replicas
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/resp_1", params={"stream": "true"},
                                  headers=auth()), 400, param="stream")
    assert_openai_error(httpx.put(f"{one.url}/v1/responses/resp_1", headers=auth()), 405)
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/a:b", headers=auth()), 404,
                        code="response_not_found")
    assert_openai_error(httpx.get(f"{one.url}/v1/responses/{'x' * 5000}", headers=auth()), 404)


def test_a_store_that_is_away_is_a_503(tmp_path):
    server = RedisServer("redis").start()
    path = tmp_path / "routes.yaml"
    path.write_text(CONFIG.format(redis=server.url, team=TEAM_KEY, other=OTHER_KEY))
    try:
        with GatewayProcess(path) as gateway:
            server.kill()
            for method in ("GET", "DELETE"):
                answer = httpx.request(method, f"{gateway.url}/v1/responses/resp_1",
                                       headers=auth())
                assert_openai_error(answer, 503, code="store_unavailable")
                assert answer.headers["retry-after"] == "1"
    finally:
        server.stop()


def test_a_conversation_goes_on_across_replicas(replicas):
    """Turns posted to one replica and then the other, as a load balancer sends them: each
    continues from the Redis both share, streamed turns included."""
    one, two = replicas
    sdks = [openai.OpenAI(base_url=g.url + "/v1", api_key=TEAM_KEY, max_retries=0, timeout=20)
            for g in (one, two)]
    try:
        first = sdks[0].responses.create(model="demo", input="Hi, I am Ada.")
        with sdks[1].responses.stream(model="demo", input="My name?",
                                      previous_response_id=first.id) as stream:
            for _ in stream:
                pass
            second = stream.get_final_response()
        third = sdks[0].responses.create(model="demo", input="Thanks",
                                         previous_response_id=second.id)

        texts = [item.content[0].text for item in
                 sdks[1].responses.input_items.list(third.id, order="asc")]
        assert texts == ["Hi, I am Ada.", first.output_text, "My name?", second.output_text,
                         "Thanks"]
        assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens
        assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    finally:
        for sdk in sdks:
            sdk.close()
