"""The conversation state of the Responses API (gateway/apis/responses/state.py), on real stores:
a request's `previous_response_id` expanded from one read, the answer kept for its key only.

The runtime here is the two things state.py reads of it (the store and the config's
`responses`); the stores are the real ones, in memory and on a Redis server started here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import orjson
import pytest

from gateway.apis.responses import state
from gateway.config.compiled import ResponsesSettings
from gateway.core.auth import Principal
from gateway.core.errors import InvalidRequest, NotFound, ServiceUnavailable
from gateway.store import MemoryStore
from gateway.store.base import KeyRecord
from gateway.store.redis import RedisStore
from tests.redis_server import RedisServer, redis_fixture  # noqa: F401 (the `redis` fixture)

TEAM = Principal("team", KeyRecord(id="k-team", name="team", digest="d1", prefix="sk-gw"))
OTHER = Principal("other", KeyRecord(id="k-other", name="other", digest="d2", prefix="sk-gw"))


@pytest.fixture(params=["memory", "redis"])
def runtime(request, redis):
    if request.param == "memory":
        store = MemoryStore()
    else:
        redis.flush()
        store = RedisStore(redis.url)
    return SimpleNamespace(store=store, config=SimpleNamespace(responses=ResponsesSettings()))


def run(coroutine):
    return asyncio.run(coroutine)


def answer(text: str, n: int) -> dict:
    """A response object as the Responses surface sends it: one assistant message."""
    return {"id": f"resp_{n}", "object": "response", "status": "completed", "output": [
        {"id": f"msg_out{n}", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": text, "annotations": []}]}]}


async def turn(runtime, payload: dict, reply: dict, principal: Principal = TEAM) -> dict:
    """One request through recall and keep, as the pipeline runs them; what the codecs see."""
    sent = await state.recall(runtime, principal, payload)
    await state.keep(runtime, principal, payload, sent, reply)
    return sent


def texts(items: list[dict]) -> list[str]:
    out = []
    for item in items:
        content = item.get("content", item.get("output", item.get("arguments")))
        out.append(content if type(content) is str else content[0]["text"])
    return out


def test_a_chain_of_three_turns_is_expanded_from_one_read_each(runtime):
    async def scenario():
        first = await turn(runtime, {"model": "m", "input": "Hi, I am Ada."}, answer("Hello Ada", 1))
        assert first["input"] == "Hi, I am Ada."  # nothing to continue: as it came
        second = await turn(runtime, {"model": "m", "previous_response_id": "resp_1",
                                      "input": [{"role": "user", "content": "My name?"}]},
                            answer("Ada", 2))
        assert second["previous_response_id"] == "resp_1"  # for the answer; no codec sends it
        assert texts(second["input"]) == ["Hi, I am Ada.", "Hello Ada", "My name?"]
        third = await turn(runtime, {"model": "m", "previous_response_id": "resp_2",
                                     "input": "Thanks", "instructions": "Be brief."},
                           answer("You are welcome", 3))
        assert texts(third["input"]) == ["Hi, I am Ada.", "Hello Ada", "My name?", "Ada",
                                         "Thanks"]
        assert third["input"][-1] == {"type": "message", "role": "user", "content": "Thanks"}
        assert third["instructions"] == "Be brief."  # the request's own, not carried over
        record = await state.stored(runtime, TEAM, "resp_3")
        assert record["own"] == 1 and record["response"] == answer("You are welcome", 3)
        assert texts(record["context"]) == texts(third["input"])
        ids = [item["id"] for item in record["context"]]
        assert len(set(ids)) == 5 and ids[1] == "msg_out1" and ids[3] == "msg_out2"
        assert all(i.startswith("msg_") for i in ids)
        assert record["context"][0] == {  # as OpenAI's input_items list shows it
            "id": ids[0], "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": "Hi, I am Ada."}]}
        # an id, once given, stays: the next turn's record has the same ones
        await turn(runtime, {"model": "m", "previous_response_id": "resp_3", "input": "Bye"},
                   answer("Bye", 4))
        later = [i["id"] for i in (await state.stored(runtime, TEAM, "resp_4"))["context"]]
        assert later[:6] == ids + ["msg_out3"]

    run(scenario())


def test_items_of_every_kind_are_kept_and_given_ids(runtime):
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"role": "assistant", "content": "earlier"},
    ]

    async def scenario():
        await turn(runtime, {"model": "m", "input": items}, answer("ok", 1))
        context = (await state.stored(runtime, TEAM, "resp_1"))["context"]
        assert [i["id"].split("_")[0] for i in context] == ["msg", "fc", "fco", "rs", "msg"]
        assert context[2]["status"] == "completed"  # the SDK's function_call_output item has one
        assert context[4]["type"] == "message"
        assert context[4]["content"] == [{"type": "output_text", "text": "earlier",
                                          "annotations": []}]
        assert [{k: v for k, v in i.items() if k not in ("id", "status")} for i in context[:4]] \
            == items[:4]
        sent = await state.recall(runtime, TEAM, {"model": "m", "previous_response_id": "resp_1",
                                                  "input": []})
        assert len(sent["input"]) == 6  # five items and the answer, nothing new
        await state.keep(runtime, TEAM, {"model": "m", "previous_response_id": "resp_1",
                                         "input": []}, sent, answer("again", 2))
        record = await state.stored(runtime, TEAM, "resp_2")
        assert (len(record["context"]), record["own"]) == (6, 0)

    run(scenario())


def test_another_keys_response_is_a_404_like_a_missing_one(runtime):
    async def scenario():
        await turn(runtime, {"model": "m", "input": "secret plan"}, answer("noted", 1))
        errors = []
        for principal, response_id in ((OTHER, "resp_1"), (TEAM, "resp_404"), (TEAM, "bad:id")):
            with pytest.raises(NotFound) as caught:
                await state.recall(runtime, principal, {"model": "m", "input": "more",
                                                        "previous_response_id": response_id})
            errors.append(caught.value)
        assert {(e.status, e.code, e.param) for e in errors} == {
            (404, "response_not_found", "previous_response_id")}
        messages = [e.message.replace(r, "ID") for e, r in zip(
            errors, ("resp_1", "resp_404", "bad:id"), strict=True)]
        assert len(set(messages)) == 1, messages  # never says which it was
        assert not await state.forget(runtime, OTHER, "resp_1")
        assert await state.stored(runtime, TEAM, "resp_1")  # still there for its owner
        assert await state.forget(runtime, TEAM, "resp_1")
        with pytest.raises(NotFound):
            await state.stored(runtime, TEAM, "resp_1")

    run(scenario())


def test_store_false_keeps_nothing_but_may_continue(runtime):
    async def scenario():
        await turn(runtime, {"model": "m", "input": "a", "store": False}, answer("b", 1))
        with pytest.raises(NotFound):
            await state.stored(runtime, TEAM, "resp_1")
        await turn(runtime, {"model": "m", "input": "a"}, answer("b", 2))
        sent = await turn(runtime, {"model": "m", "input": "c", "store": False,
                                    "previous_response_id": "resp_2"}, answer("d", 3))
        assert texts(sent["input"]) == ["a", "b", "c"]
        with pytest.raises(NotFound):
            await state.stored(runtime, TEAM, "resp_3")

    run(scenario())


def test_an_answer_over_the_cap_is_answered_not_kept_and_the_log_says_why(runtime, caplog):
    runtime.config = SimpleNamespace(responses=ResponsesSettings(max_bytes=600))

    async def scenario():
        await turn(runtime, {"model": "m", "input": "short"}, answer("fits", 1))
        await turn(runtime, {"model": "m", "input": "x" * 600}, answer("too long", 2))
        assert await state.stored(runtime, TEAM, "resp_1")
        with pytest.raises(NotFound):
            await state.stored(runtime, TEAM, "resp_2")

    with caplog.at_level(logging.WARNING, logger="gateway"):
        run(scenario())
    (warning,) = [r for r in caplog.records if r.name == "gateway"]
    assert warning.getMessage() == "response not stored: its record is over responses.max_bytes"
    assert warning.fields["response_id"] == "resp_2" and warning.fields["max_bytes"] == 600
    assert warning.fields["bytes"] > 600


def test_a_kept_response_expires_with_its_ttl():
    clock = [0.0]
    runtime = SimpleNamespace(store=MemoryStore(clock=lambda: clock[0]),
                              config=SimpleNamespace(responses=ResponsesSettings(ttl=3600)))

    async def scenario():
        await turn(runtime, {"model": "m", "input": "a"}, answer("b", 1))
        clock[0] += 3599
        assert await state.recall(runtime, TEAM, {"model": "m", "input": "c",
                                                  "previous_response_id": "resp_1"})
        clock[0] += 1
        with pytest.raises(NotFound):
            await state.recall(runtime, TEAM, {"model": "m", "input": "c",
                                               "previous_response_id": "resp_1"})

    run(scenario())


def test_a_store_that_is_away_is_a_503_to_continue_and_a_log_line_to_keep(caplog):
    server = RedisServer("redis").start()
    runtime = SimpleNamespace(store=RedisStore(server.url, timeout=0.3),
                              config=SimpleNamespace(responses=ResponsesSettings()))
    server.kill()

    async def scenario():
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            await state.recall(runtime, TEAM, {"model": "m", "input": "c",
                                               "previous_response_id": "resp_1"})
        assert caught.value.code == "store_unavailable"
        await state.keep(runtime, TEAM, {"model": "m", "input": "a"}, {}, answer("b", 1))
        assert time.monotonic() - started < 2

    try:
        with caplog.at_level(logging.WARNING, logger="gateway"):
            run(scenario())
    finally:
        server.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "gateway"] == [
        "response not stored: the store is unavailable"]


def test_what_cannot_be_continued_is_refused(runtime):
    async def scenario():
        with pytest.raises(InvalidRequest) as caught:
            await state.recall(runtime, TEAM, {"model": "m", "previous_response_id": 7})
        assert caught.value.param == "previous_response_id"
        await state.keep(runtime, TEAM, {"model": "m", "input": "a"}, {}, None)  # no answer
        await state.keep(runtime, TEAM, {"model": "m", "input": "a"}, {}, {"output": []})
        with pytest.raises(NotFound):
            await state.stored(runtime, TEAM, "None")  # an answer without an id: not kept
        stored = getattr(runtime.store, "responses", None)
        assert stored is None or not stored

    run(scenario())


def test_the_record_is_compact_json():
    record = state.encode([{"id": "msg_1"}], 1, {"id": "resp_1"})
    assert orjson.loads(record) == {"v": 1, "context": [{"id": "msg_1"}], "own": 1,
                                    "response": {"id": "resp_1"}}
    assert b" " not in record
