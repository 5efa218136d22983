"""The pipeline's seams for a stateful client API (the Responses API's stored conversations).

A stateful surface's `recall` runs before admission (the history counts toward the
prompt estimate and the limits, and the upstream is sent all of it) and its `keep` once
the answer is whole and before its last byte is sent: a client that sends the next turn
the moment it has the last byte, to any replica, finds the record.

The surface here is a small Responses-shaped API on chat (`input` items in, a response
object with `output` out) built on the real state functions, served by the real app
in-process, so the test sees each ASGI message as it is sent; the upstream is the real
loopback test server and the stores are the memory store and a real Redis.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import textwrap
from collections.abc import Iterator

import orjson
import pytest

from gateway.apis.chat.surface import CODEC, ChatSurface
from gateway.apis.responses import state
from gateway.app import create_app
from gateway.config import load_config
from gateway.core.pipeline import Pipeline
from gateway.runtime import start_runtime, stop_runtime
from tests.redis_server import RedisServer, redis_fixture  # noqa: F401 (the `redis` fixture)
from tests.upstream import Upstream

TEAM_KEY = "sk-test-seams-team-0123456789"
SMALL_KEY = "sk-test-seams-small-0123456789"
CONFIG = """
    {store}
    responses: {{max_bytes: {max_bytes}}}
    providers:
      up: {{profile: vllm, base_url: "{upstream}"}}
    models:
      m: {{targets: [{{provider: up, model: um}}]}}
    keys:
      team: {{key: "{team}"}}
      small: {{key: "{small}", limits: {{tokens_per_minute: 60}}}}
"""
PATH = "/toy/responses"


def text_of(item: dict) -> str:
    content = item.get("content")
    return content if type(content) is str else "".join(p.get("text", "") for p in content)


def response_object(text: str) -> dict:
    return {"id": "resp_" + secrets.token_hex(12), "object": "response", "output": [
        {"id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": text, "annotations": []}]}]}


class ToyStream:
    """Chat's stream adapter, with the text it relays gathered into `final` at the end."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.text: list[str] = []
        self.final: dict | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # done, finished, truncated, usage, tally...

    def _gather(self, out: bytes) -> bytes:
        for line in out.split(b"\n"):
            if line.startswith(b"data: {"):
                for choice in orjson.loads(line[6:]).get("choices") or ():
                    self.text.append(choice["delta"].get("content") or "")
        return out

    def feed(self, chunk: bytes) -> bytes:
        return self._gather(self.inner.feed(chunk))

    def finish(self) -> bytes:
        tail = self._gather(self.inner.finish())
        self.final = response_object("".join(self.text))
        return tail


class ToyAnswer:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.alias = inner.alias
        self.final: dict | None = None
        self.adapter: ToyStream | None = None

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        body, usage, model = self.inner.completion(data)
        self.final = response_object(orjson.loads(body)["choices"][0]["message"]["content"])
        return orjson.dumps(self.final), usage, model

    def stream(self, show_usage: bool, max_event: int) -> ToyStream:
        self.adapter = ToyStream(self.inner.stream(show_usage, max_event))
        return self.adapter

    @property
    def sent(self) -> dict | None:
        """The response object the client is sent, whole or streamed."""
        return self.final if self.adapter is None else self.adapter.final


class ToyCodec:
    api = "chat"
    fan_out = None

    def __init__(self, toy: ToySurface) -> None:
        self.toy = toy

    def translate(self, payload: dict, target, stream: bool):
        chat = {"model": payload["model"], "messages": [
            {"role": i["role"], "content": text_of(i)} for i in state.as_items(payload["input"])]}
        return CODEC.translate(chat, target, stream)

    def answer(self, route, target, payload: dict, prompt_estimate: int) -> ToyAnswer:
        made = ToyAnswer(CODEC.answer(route, target, payload, prompt_estimate))
        self.toy.answers.append(made)
        return made


class ToySurface(ChatSurface):
    """Responses-shaped requests (`input`, `previous_response_id`, `store`) on chat targets."""

    paths = (PATH,)
    stateful = True

    def __init__(self) -> None:
        self.estimates: list[int] = []  # what admission was told each request's prompt is
        self.answers: list[ToyAnswer] = []  # each attempt's, in order

    def parse(self, body: bytes) -> dict:
        return orjson.loads(body)

    def prompt_tokens(self, payload: dict) -> int:
        estimate = sum(len(text_of(i)) for i in state.as_items(payload["input"])) // 4
        self.estimates.append(estimate)
        return estimate

    def completion_tokens(self, payload: dict, default: int) -> int:
        return 1

    def session(self, affinity, payload: dict) -> None:
        return None

    def codec(self, target) -> ToyCodec:
        return ToyCodec(self)

    recall = staticmethod(state.recall)
    keep = staticmethod(state.keep)


class Answered:
    """One request to the app in-process: its status, its bytes, and what the store held for
    it when its last byte was sent."""

    def __init__(self, status: int, content: bytes, final: dict | None,
                 stored_at_last_byte: bytes | None) -> None:
        self.status, self.content, self.final = status, content, final
        self.stored_at_last_byte = stored_at_last_byte

    @property
    def id(self) -> str:
        assert self.final is not None
        return self.final["id"]


async def call(app, toy: ToySurface, body: dict, key: str = TEAM_KEY, look: bool = True
               ) -> Answered:
    store = app.state.runtime.store
    key_id = "cfg-team" if key == TEAM_KEY else "cfg-small"
    headers = [(b"content-type", b"application/json"),
               (b"authorization", f"Bearer {key}".encode())]
    delivered, answered = False, asyncio.Event()
    status, chunks, seen = 0, [], {}
    answers_before = len(toy.answers)

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):  # the last byte: the client may ask again at once
            mine = toy.answers[answers_before:]
            final = mine[-1].sent if mine else None
            seen["final"] = final
            if final is not None and look:
                seen["stored"] = await store.read_response(key_id, final["id"])
            answered.set()

    scope = {"type": "http", "method": "POST", "path": PATH, "headers": headers}
    await app(scope, receive, send)
    return Answered(status, b"".join(chunks), seen.get("final"), seen.get("stored"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def serve(request, upstream, tmp_path):
    """`serve(scenario)` runs `await scenario(ask, toy)` on the app, with the toy surface
    at PATH; `ask(body, key)` sends one request."""
    upstream.reset()

    def run(scenario, max_bytes: str = "4MiB", store_url: str | None = None):
        if request.param == "redis" and store_url is None:
            server = request.getfixturevalue("redis")
            server.flush()
            store_url = server.url
        store = f'store: {{url: "{store_url}", timeout: 0.3}}' if store_url else ""
        path = tmp_path / "routes.yaml"
        path.write_text(textwrap.dedent(CONFIG.format(
            store=store, max_bytes=max_bytes, upstream=upstream.url, team=TEAM_KEY,
            small=SMALL_KEY)))
        app = create_app(load_config(path, {}))
        toy = ToySurface()
        app.pipelines[PATH] = Pipeline(app.state, toy)

        async def main():
            app.state.runtime = start_runtime(app.config)
            try:
                return await scenario(lambda body, key=TEAM_KEY: call(app, toy, body, key), toy)
            finally:
                await stop_runtime(app.state.runtime)

        return asyncio.run(main())

    return run


@pytest.mark.parametrize("stream", [False, True])
def test_the_answer_is_stored_before_its_last_byte_is_sent(serve, stream):
    async def scenario(ask, toy):
        first = await ask({"model": "m", "input": "Hi, I am Ada.", "stream": stream})
        assert first.status == 200, first.content
        assert first.stored_at_last_byte is not None  # readable by the time the client has it
        record = orjson.loads(first.stored_at_last_byte)
        assert record["response"] == first.final
        if not stream:
            assert orjson.loads(first.content) == first.final  # the object the client got
        else:
            assert first.content.endswith(b"data: [DONE]\n\n")
            assert text_of(first.final["output"][0]) == "echo: Hi, I am Ada. "
        second = await ask({"model": "m", "input": "What is my name?", "stream": stream,
                            "previous_response_id": first.id})
        assert second.status == 200 and second.stored_at_last_byte is not None
        return first

    first = serve(scenario)
    assert first.final is not None


def test_the_history_is_recalled_before_admission(serve, upstream):
    async def scenario(ask, toy):
        first = await ask({"model": "m", "input": "Hi, I am Ada."})
        second = await ask({"model": "m", "input": [{"role": "user", "content": "My name?"}],
                            "previous_response_id": first.id})
        assert second.status == 200
        sent = upstream.last.json["messages"]
        assert sent == [{"role": "user", "content": "Hi, I am Ada."},
                        {"role": "assistant", "content": "echo: Hi, I am Ada."},
                        {"role": "user", "content": "My name?"}]
        assert "previous_response_id" not in upstream.last.json
        # admission estimated the whole conversation, not the request's own text
        assert toy.estimates == [len("Hi, I am Ada.") // 4, len(
            "Hi, I am Ada.echo: Hi, I am Ada.My name?") // 4]
        # and a key's limits see it: one turn fits in its minute, the history does not
        long = "x" * 200
        fits = await ask({"model": "m", "input": long}, key=SMALL_KEY)
        assert fits.status == 200
        over = await ask({"model": "m", "input": "ok", "previous_response_id": fits.id},
                         key=SMALL_KEY)
        assert over.status == 429, over.content
        assert orjson.loads(over.content)["error"]["code"] == "request_too_large"
        assert len(upstream.requests) == 3  # the refused one never reached it

    serve(scenario)


def test_a_continuation_of_another_keys_response_is_a_404_before_admission(serve, upstream):
    async def scenario(ask, toy):
        first = await ask({"model": "m", "input": "mine"})
        theirs = await ask({"model": "m", "input": "x", "previous_response_id": first.id},
                           key=SMALL_KEY)
        missing = await ask({"model": "m", "input": "x", "previous_response_id": "resp_none"})
        for answer in (theirs, missing):
            error = orjson.loads(answer.content)["error"]
            assert (answer.status, error["code"], error["param"]) == (
                404, "response_not_found", "previous_response_id")
        assert len(toy.estimates) == 1  # neither was admitted
        assert len(upstream.requests) == 1

    serve(scenario)


def test_store_false_is_answered_and_not_kept(serve):
    async def scenario(ask, toy):
        answer = await ask({"model": "m", "input": "forget me", "store": False})
        assert answer.status == 200 and answer.final is not None
        assert answer.stored_at_last_byte is None

    serve(scenario)


def test_an_answer_too_large_to_keep_is_still_answered(serve, caplog):
    async def scenario(ask, toy):
        answer = await ask({"model": "m", "input": "y" * 2000})
        assert answer.status == 200
        assert orjson.loads(answer.content)["output"][0]["content"][0]["text"].endswith("y")
        assert answer.stored_at_last_byte is None

    with caplog.at_level(logging.WARNING, logger="gateway"):
        serve(scenario, max_bytes="1KiB")
    assert "response not stored: its record is over responses.max_bytes" in caplog.text


def test_a_store_that_cannot_keep_leaves_the_answer_whole(upstream, tmp_path, caplog):
    """A key without limits needs no store to be admitted; its answer's keep then fails,
    is logged, and the client gets the whole answer all the same."""
    server = RedisServer("redis").start()
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(
        store=f'store: {{url: "{server.url}", timeout: 0.3}}', max_bytes="4MiB",
        upstream=upstream.url, team=TEAM_KEY, small=SMALL_KEY)))
    app = create_app(load_config(path, {}))
    toy = ToySurface()
    app.pipelines[PATH] = Pipeline(app.state, toy)

    async def scenario():
        app.state.runtime = start_runtime(app.config)
        server.kill()
        try:
            for stream in (False, True):
                answer = await call(app, toy, {"model": "m", "input": "hello", "stream": stream},
                                    look=False)
                assert answer.status == 200 and answer.final is not None
                assert answer.content.endswith(b"[DONE]\n\n" if stream else b"}")
        finally:
            await stop_runtime(app.state.runtime)

    try:
        with caplog.at_level(logging.WARNING, logger="gateway"):
            asyncio.run(scenario())
    finally:
        server.stop()
    assert caplog.text.count("response not stored: the store is unavailable") == 2

