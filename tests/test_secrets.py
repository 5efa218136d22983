"""No key leaks: every error path is driven, then every answer and the whole log are scanned.

The secrets: the client keys, the master key, a key made through /admin (its
secret is in the answer that creates it, and nowhere after), and the upstream
provider's key, which a misbehaving upstream echoes back in its errors.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess, free_port, serving
from tests.upstream import (
    Reply,
    Upstream,
    chunk,
    completion,
    message_output,
    response_event,
    response_object,
    response_stream,
    text_chunk,
    text_completion,
)
from tests.upstream_messages import error_body, message_event, message_object, message_stream

CLIENT = "sk-secrets-client-0123456789"
LIMITED = "sk-secrets-limited-0123456789"
MASTER = "sk-secrets-master-0123456789"
PROVIDER = "sk-provider-secret-abcdef987654"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
COUNT = "/v1/messages/count_tokens"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream(apis=("chat", "completions", "embeddings", "responses", "messages"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("secrets"), f"""
        server: {{max_body_bytes: 4KiB}}
        routing: {{breaker: {{failures: 1000000}}}}
        providers:
          up: {{profile: openai, base_url: "{upstream.url}", api_key: "{PROVIDER}"}}
          gone: {{profile: openai, base_url: "http://127.0.0.1:{free_port()}/v1",
                  api_key: "{PROVIDER}"}}
          chat-only: {{profile: aggregator, base_url: "{upstream.url}", api_key: "{PROVIDER}"}}
          anth: {{profile: anthropic, base_url: "{upstream.url}", api_key: "{PROVIDER}"}}
        models:
          m: {{targets: [{{provider: up, model: m}}]}}
          claude: {{targets: [{{provider: anth, model: claude-up}}]}}
          converted: {{targets: [{{provider: chat-only, model: m}}]}}
          unreachable: {{targets: [{{provider: gone, model: m}}]}}
        keys:
          client: {{key: "{CLIENT}"}}
          limited: {{key: "{LIMITED}", limits: {{requests_per_minute: 1}}}}
    """, {"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


def body(model: str = "m", stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def vectors(model: str = "m") -> dict:
    return {"model": model, "input": ["hi", "there"], "encoding_format": "base64"}


def test_no_secret_in_any_answer_or_in_the_log(gateway, upstream):
    answers: list[httpx.Response] = []
    bearer = {"Authorization": f"Bearer {CLIENT}"}
    master = {"Authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        def send(method: str, path: str, **kwargs) -> httpx.Response:
            answers.append(http.request(method, path, **kwargs))
            return answers[-1]

        def echoed(path: str, asked: dict, cases: tuple, refusals: tuple) -> None:
            """Each model's refusals, whole answer and stream, every one echoing the key."""
            for model, whole, events in cases:
                for reply in (*refusals, Reply(json=whole), Reply(events=events, done=False)):
                    upstream.then(reply)
                    send("POST", path, json={**asked, "model": model,
                                             "stream": reply.events is not None},
                         headers=bearer)

        # Keys that are wrong, missing, or not allowed there.
        send("POST", CHAT, json=body())
        send("POST", CHAT, json=body(), headers={"Authorization": f"Bearer {CLIENT}x"})
        send("POST", CHAT, json=body(), headers={"x-api-key": MASTER[:-1]})
        send("GET", "/admin/keys", headers=bearer)
        send("POST", "/admin/reload", headers={"Authorization": f"Bearer {MASTER}0"})
        # Requests that are wrong.
        send("POST", CHAT, json=body("nope"), headers=bearer)
        send("POST", CHAT, content=b"{not json", headers=bearer)
        send("POST", CHAT, content=b"x" * 10_000, headers=bearer)
        send("POST", CHAT, content=b"\x1f\x8b", headers={**bearer, "Content-Encoding": "gzip"})
        # Upstreams that echo the provider key back, in every way they can.
        leak = f"invalid api key: Bearer {PROVIDER}"
        leaks = (Reply(status=400, json={"error": {"message": leak, "code": PROVIDER}}),
                 Reply(status=401, json={"error": {"message": leak}}),
                 Reply(status=500, json={"error": {"message": leak}}),
                 Reply(status=503, raw=leak.encode()),
                 Reply(status=200, json={"error": {"message": leak}}))
        for reply in leaks:
            upstream.then(reply)
            send("POST", CHAT, json=body(), headers=bearer)
        # Embeddings: keys that are wrong, bodies that are wrong, and the same echoing upstreams.
        send("POST", EMBEDDINGS, json=vectors())
        send("POST", EMBEDDINGS, json=vectors(), headers={"Authorization": f"Bearer {CLIENT}x"})
        send("POST", EMBEDDINGS, json={"model": "m", "input": ["ok", ""]}, headers=bearer)
        send("POST", EMBEDDINGS, json=vectors("nope"), headers=bearer)
        for reply in (*leaks, Reply(json={"object": "list", "model": PROVIDER, "note": leak,
                                          "data": [{"index": 0, "embedding": [0.5]}]})):
            upstream.then(reply)
            send("POST", EMBEDDINGS, json=vectors(), headers=bearer)
        send("POST", EMBEDDINGS, json=vectors("unreachable"), headers=bearer)
        send("POST", EMBEDDINGS, json=vectors(), headers={"Authorization": f"Bearer {LIMITED}"})
        upstream.then(Reply(events=[chunk({"model": "m"}, {"content": "a"}),
                                    {"error": {"message": leak}}]))
        send("POST", CHAT, json=body(stream=True), headers=bearer)
        send("POST", CHAT, json=body("unreachable"), headers=bearer)
        # The completions API, passed through (m) and converted to chat (converted).
        prompt = {"model": "m", "prompt": "hi"}
        send("POST", COMPLETIONS, json=prompt)
        send("POST", COMPLETIONS, json=prompt, headers={"x-api-key": CLIENT[:-1]})
        send("POST", COMPLETIONS, content=b"{not json", headers=bearer)
        send("POST", COMPLETIONS, json={**prompt, "model": "unreachable"}, headers=bearer)
        for model, whole, event in (
                ("m", text_completion({}, leak), text_chunk({}, leak)),
                ("converted", completion({}, leak), chunk({}, {"content": leak}))):
            for reply in (Reply(status=400, json={"error": {"message": leak, "code": PROVIDER}}),
                          Reply(status=500, json={"error": {"message": leak}}),
                          Reply(status=200, json={"error": {"message": leak}}),
                          Reply(json=whole), Reply(events=[event, {"error": {"message": leak}}])):
                upstream.then(reply)
                send("POST", COMPLETIONS, json={**prompt, "model": model,
                                                "stream": reply.events is not None},
                     headers=bearer)
        send("POST", COMPLETIONS, json={**prompt, "echo": True, "model": "converted"},
             headers=bearer)
        # The Responses API, passed through (m) and converted to chat (converted).
        asked = {"model": "m", "input": "hi"}
        send("POST", RESPONSES, json=asked)
        send("POST", RESPONSES, json=asked, headers={"Authorization": f"Bearer {PROVIDER}"})
        send("POST", RESPONSES, content=b"{not json", headers=bearer)
        send("POST", RESPONSES, json={**asked, "model": "unreachable"}, headers=bearer)
        send("POST", RESPONSES, json={**asked, "previous_response_id": CLIENT}, headers=bearer)
        native_stream = [response_event(e) for e in response_stream({"model": "m", "input": leak})]
        echoed(RESPONSES, asked, (
            ("m", response_object({}, [message_output(leak)]),
             [*native_stream[:5], response_event({"type": "error", "message": leak})]),
            ("converted", completion({}, leak), [chunk({}, {"content": leak}),
                                                 {"error": {"message": leak}}])),
            (Reply(status=400, json={"error": {"message": leak, "code": PROVIDER}}),
             Reply(status=500, json={"error": {"message": leak}}),
             Reply(status=200, json={"error": {"message": leak}})))
        send("POST", RESPONSES, json={**asked, "model": "converted",
                                      "tools": [{"type": "web_search", "key": PROVIDER}]},
             headers=bearer)
        # Anthropic's Messages API, passed through (claude) and converted to chat (converted),
        # and its count_tokens, answered by the upstream or estimated.
        said = {"model": "claude", "max_tokens": 16, "messages": [{"role": "user",
                                                                   "content": "hi"}]}
        count = {name: value for name, value in said.items() if name != "max_tokens"}
        for path, asked_here in ((MESSAGES, said), (COUNT, count)):
            send("POST", path, json=asked_here)
            send("POST", path, json=asked_here, headers={"x-api-key": CLIENT[:-1]})
            send("POST", path, json=asked_here, headers={"x-api-key": PROVIDER})
            send("POST", path, content=b"{not json", headers=bearer)
            send("POST", path, json={**asked_here, "model": "unreachable"}, headers=bearer)
            send("POST", path, json={**asked_here, "model": PROVIDER}, headers=bearer)
        echoed(MESSAGES, said, (
            ("claude", message_object(said, [{"type": "text", "text": leak}]),
             [*map(message_event, message_stream(said)[:4]),
              message_event({"type": "error", "error": {"type": "api_error", "message": leak}})]),
            ("converted", completion({}, leak), [chunk({}, {"content": leak}),
                                                 {"error": {"message": leak}}])),
            (Reply(status=400, json=error_body(leak)),
             Reply(status=401, json=error_body(leak, "authentication_error")),
             Reply(status=529, json=error_body(leak, "overloaded_error")),
             Reply(status=200, json={"error": {"message": leak}})))
        for reply in (Reply(status=400, json=error_body(leak)), Reply(status=500, raw=leak.encode()),
                      Reply(json={"input_tokens": 3, "note": leak}), Reply(raw=leak.encode())):
            upstream.then(reply)
            send("POST", COUNT, json=count, headers=bearer)
        send("POST", MESSAGES, json={**said, "model": "converted", "tools": [
            {"type": "web_search_20250305", "name": "web_search", "key": PROVIDER}]},
             headers=bearer)
        # A limit.
        for _ in range(2):
            send("POST", CHAT, json=body(), headers={"Authorization": f"Bearer {LIMITED}"})
        send("POST", COMPLETIONS, json=prompt, headers={"Authorization": f"Bearer {LIMITED}"})
        send("POST", RESPONSES, json=asked, headers={"Authorization": f"Bearer {LIMITED}"})
        send("POST", MESSAGES, json=said, headers={"x-api-key": LIMITED})
        # Admin: a new key's secret is in the answer that creates it, and nowhere else.
        created = http.post("/admin/keys", headers=master, json={"name": "made"})
        assert created.status_code == 201, created.text
        made = created.json()["key"]
        send("GET", "/admin/keys", headers=master)
        send("GET", "/admin/keys/made", headers=master)
        send("POST", CHAT, json=body(), headers={"Authorization": f"Bearer {made}"})
        send("DELETE", "/admin/keys/made", headers=master)
        send("POST", CHAT, json=body(), headers={"Authorization": f"Bearer {made}"})
        send("GET", "/admin/usage", headers=master)
        send("GET", "/v1/models", headers=bearer)
        send("GET", "/metrics")
        # Stored responses: ids shaped like keys, and keys that are wrong.
        send("GET", f"/v1/responses/{CLIENT}", headers=bearer)
        send("GET", "/v1/responses/resp_1", headers={"Authorization": f"Bearer {CLIENT}x"})
        send("DELETE", f"/v1/responses/{MASTER}", headers=bearer)
        send("GET", f"/v1/responses/{PROVIDER}/input_items", params={"after": PROVIDER},
             headers=master)

    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200, 400, 401, 403, 404, 413, 415, 429, 502], statuses
    log = gateway.log()
    for secret in (CLIENT, LIMITED, MASTER, PROVIDER, made):
        for answer in answers:
            assert secret not in answer.text, (answer.request.url, answer.text)
            assert secret not in str(answer.headers), answer.request.url
        assert secret not in log
