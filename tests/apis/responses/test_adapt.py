"""The Responses answer adapters in process: what the client is sent, and the `final` response
object each keeps for the conversation store, however the upstream's bytes are cut.
"""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.apis.responses.surface import PASSTHROUGH, TO_CHAT, parse
from gateway.config import Route, Target
from gateway.core.errors import UpstreamError
from tests.profiles import NOWHERE, targets_on
from tests.upstream import (
    chunk,
    completion,
    message_output,
    response_event,
    response_object,
    response_stream,
)

SECRET = "sk-adapt-provider-secret-0123"


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict[str, Target]:
    return targets_on(tmp_path_factory.mktemp("adapt"), {
        "vllm": f"{{profile: vllm, {NOWHERE}, api_key: {SECRET}}}",
        "generalcompute": f"{{profile: generalcompute, {NOWHERE}, api_key: {SECRET}}}"})


def answer_for(targets, name: str, **fields):
    """How an attempt on the target of that name adapts its answer to a request of `alias`."""
    payload = parse(orjson.dumps({"model": "alias", "input": "hi", **fields}))
    codec = PASSTHROUGH if name == "vllm" else TO_CHAT
    route = Route(alias="alias", description="", groups=())
    return codec.answer(route, targets[name], payload, 7)


def sse(events: list[dict]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def parsed(out: bytes) -> list[dict]:
    return [json.loads(block.split("data: ", 1)[1]) for block in out.decode().split("\n\n")
            if block]


def test_a_converted_answer_keeps_its_response_object(targets):
    answer = answer_for(targets, "generalcompute", metadata={"k": "v"})
    body, usage, upstream_model = answer.completion(orjson.dumps(
        completion({"model": "chat-up"}, f"leaked {SECRET}")))

    sent = orjson.loads(body)
    assert answer.final == sent and sent["model"] == "alias" and sent["metadata"] == {"k": "v"}
    assert sent["output"][0]["content"][0]["text"] == "leaked ***"
    assert (usage["prompt_tokens"], upstream_model) == (11, "chat-up")


def test_a_converted_stream_cut_anywhere_gives_the_same_events(targets):
    request = {"model": "chat-up"}
    upstream = sse([chunk(request, {"role": "assistant", "content": ""}),
                    chunk(request, {"refusal": "No."}), chunk(request, {"content": "Yes\n"}),
                    chunk(request, {"tool_calls": [{"index": 0, "id": "c1", "function": {
                        "name": "f", "arguments": "{}"}}]}),
                    chunk(request, {}, "content_filter"),
                    {**chunk(request, {}), "choices": [],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 4}}])
    whole = None
    for cut in (1, 7, 64, len(upstream)):
        adapter = answer_for(targets, "generalcompute").stream(False, 2**20)
        out = b"".join(adapter.feed(upstream[i:i + cut]) for i in range(0, len(upstream), cut))
        assert adapter.final is None  # not before the upstream's stream ends
        out += adapter.finish()
        events = parsed(out)
        whole = whole or events
        assert [e["type"] for e in events] == [e["type"] for e in whole]
    assert [e["sequence_number"] for e in whole] == list(range(len(whole)))
    final = adapter.final
    assert events[-1] == {"type": "response.incomplete", "sequence_number": len(whole) - 1,
                          "response": final}
    assert final["incomplete_details"] == {"reason": "content_filter"}
    refusal, message, call = final["output"]
    assert refusal["content"] == [{"type": "refusal", "refusal": "No."}]
    assert message["content"][0]["text"] == "Yes\n" and message["status"] == "completed"
    assert call["status"] == "incomplete" and call["call_id"] == "c1"
    assert final["usage"]["input_tokens"] == 3 and adapter.usage["completion_tokens"] == 4
    assert "response.refusal.delta" in [e["type"] for e in whole]


def test_an_upstream_error_event_is_named_in_the_response_failed(targets):
    adapter = answer_for(targets, "generalcompute").stream(False, 2**20)
    out = adapter.feed(b'data: {"error": {"message": "overloaded"}}\n\n')
    out += adapter.finish()
    assert not adapter.finished and adapter.final is None
    failed = parsed(adapter.stream_error(UpstreamError("The stream ended early.")))[-1]
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 2
    assert failed["response"]["error"] == {
        "code": "bad_gateway", "message": "The stream ended early. The upstream said: overloaded"}
    assert adapter.final == failed["response"]


def test_a_native_answer_and_stream_keep_the_upstreams_object_as_the_clients(targets):
    answer = answer_for(targets, "vllm", store=True)
    body, usage, upstream_model = answer.completion(orjson.dumps(response_object(
        {"model": "vllm-up", "store": False}, [])))
    assert answer.final == orjson.loads(body)
    assert (answer.final["model"], answer.final["store"], upstream_model) == ("alias", True,
                                                                             "vllm-up")
    assert usage == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14,
                     "prompt_tokens_details": {"cached_tokens": 2},
                     "completion_tokens_details": {"reasoning_tokens": 1}}

    events = response_stream({"model": "vllm-up", "input": f"say {SECRET}"})
    upstream = b"".join(map(response_event, events)).replace(b"\n", b"\r\n")
    for cut in (1, 5, len(upstream)):
        adapter = answer.stream(True, 2**20)
        out = b"".join(adapter.feed(upstream[i:i + cut]) for i in range(0, len(upstream), cut))
        out += adapter.finish()
        assert SECRET not in out.decode() and adapter.finished
        sent = parsed(out)
        assert [e["sequence_number"] for e in sent] == list(range(len(events)))
        assert adapter.final == sent[-1]["response"] and adapter.final["model"] == "alias"
        assert adapter.upstream_model == "vllm-up" and adapter.usage["completion_tokens"] == 5
        assert out.startswith(b"event: response.created\ndata: ")


def test_a_native_streams_last_event_waits_for_finish(targets):
    """The pipeline stores the response between the adapter's last feed and its finish: the
    client must not see `response.completed` before then, or its next turn could come first."""
    adapter = answer_for(targets, "vllm", store=True).stream(True, 2**20)
    events = response_stream({"model": "vllm-up", "input": "hi"})

    fed = adapter.feed(b"".join(map(response_event, events)))

    assert adapter.finished and adapter.final is not None
    assert b"response.completed" not in fed
    assert [e["type"] for e in parsed(adapter.finish())] == ["response.completed"]


def test_a_native_stream_that_breaks_off_is_failed_after_its_last_numbered_event(targets):
    events = response_stream({"model": "vllm-up", "input": "a b"})[:4]
    adapter = answer_for(targets, "vllm").stream(True, 2**20)
    out = adapter.feed(b"".join(map(response_event, events))
                       + b'event: error\ndata: {"type": "error", "message": "overloaded"}\n\n')
    out += adapter.finish()

    assert not adapter.finished and adapter.final is None
    failed = parsed(adapter.stream_error(UpstreamError("The stream ended early.")))[0]
    assert failed["sequence_number"] == 4  # after the upstream's 0..3; its error had none
    assert failed["response"]["id"] == "resp_test" and adapter.final == failed["response"]
    assert parsed(out)[-1] == {"type": "error", "message": "overloaded"}  # relayed as it came


def test_a_native_answer_without_usage_is_charged_an_estimate(targets):
    answer = answer_for(targets, "vllm")
    upstream = response_object({"model": "vllm-up"}, [message_output("one two three four")])
    del upstream["usage"]
    body, usage, _ = answer.completion(orjson.dumps(upstream))

    assert usage["estimated"] is True and usage["prompt_tokens"] == 7  # admission's estimate
    assert usage["completion_tokens"] >= 4
    assert orjson.loads(body)["usage"]["output_tokens"] == usage["completion_tokens"]
