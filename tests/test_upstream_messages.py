"""The test upstream's Anthropic Messages endpoint tells the truth: it refuses what Anthropic
refuses, takes what Anthropic takes, and answers so that Anthropic's own SDK reads it.

Every test that passes Messages through the gateway leans on it; a fixture that lies
makes all of them lie. These run it alone, over loopback, with httpx and the anthropic SDK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.gateway_process import wait_for
from tests.upstream import Gate, Reply, Upstream
from tests.upstream_messages import (
    TOOL_ID,
    error_body,
    message_event,
    message_object,
    message_stream,
    signature,
    text_block,
    thinking_block,
    tool_use_block,
)

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}


def asked(text: str = "hello there", **fields) -> dict:
    return {"model": "claude-test", "max_tokens": 64,
            "messages": [{"role": "user", "content": text}], **fields}


def tool_round(result: dict | None = None) -> list[dict]:
    """A conversation in which the model called get_weather and the user answers the call."""
    answer = result or {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "18C and sunny"}
    return [{"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [tool_use_block("get_weather")]},
            {"role": "user", "content": [answer]}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream(apis=("chat", "messages")).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(upstream) -> None:
    upstream.reset()


@pytest.fixture
def http(upstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=10) as client:
        yield client


@pytest.fixture
def sdk(upstream) -> Iterator[anthropic.Anthropic]:
    root = upstream.url.removesuffix("/v1")  # the SDK adds /v1/messages itself
    with anthropic.Anthropic(base_url=root, api_key="sk-ant-test", max_retries=0,
                             timeout=10) as client:
        yield client


def refusal_of(response: httpx.Response) -> str:
    """The message of Anthropic's 400, after checking the whole shape of it."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


def without(field: str) -> dict:
    request = asked()
    del request[field]
    return request


FORGED = thinking_block("I thought it over", signed="c2lnbmVkIGJ5IHNvbWVvbmUgZWxzZQ==")


@pytest.mark.parametrize("request_body, said", [
    (without("max_tokens"), "max_tokens: Field required"),
    (without("messages"), "messages: Field required"),
    (without("model"), "model: Field required"),
    (asked(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    (asked(max_tokens="64"), "max_tokens: Input should be a valid integer"),
    (asked(x_custom=1), "x_custom: Extra inputs are not permitted"),
    # OpenAI's names, sent by mistake
    (asked(max_completion_tokens=9), "max_completion_tokens: Extra inputs are not permitted"),
    (asked(stop=["\n"]), "stop: Extra inputs are not permitted"),
    (asked(n=2), "n: Extra inputs are not permitted"),
    (asked(response_format={"type": "json_object"}), "response_format: Extra inputs"),
    (asked(reasoning_effort="low"), "reasoning_effort: Extra inputs are not permitted"),
    (asked(user="u-1"), "user: Extra inputs are not permitted"),
    (asked(metadata={"user_id": "u", "session": "s"}), "metadata.session: Extra inputs"),
    (asked(temperature=1.5), "temperature: Input should be a number between 0 and 1"),
    (asked(top_k=-1), "top_k: Input should be an integer greater than or equal to 0"),
    (asked(service_tier="priority"), "service_tier: Input should be 'auto' or 'standard_only'"),
    # turns
    (asked(messages=[]), "messages: at least one message is required"),
    (asked(messages=[{"role": "assistant", "content": "hi"}]),
     'first message must use the "user" role'),
    (asked(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
     'roles must alternate between "user" and "assistant", but found multiple "user" roles'),
    (asked(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "b"}]),
     "messages.0.role: Input should be 'user' or 'assistant'"),
    (asked(messages=[{"role": "user", "content": ""}, {"role": "assistant", "content": "b"},
                     {"role": "user", "content": "c"}]),
     "messages.0: all messages must have non-empty content"),
    # tool calls and their results
    (asked(messages=tool_round({"type": "tool_result", "tool_use_id": "call_1", "content": "x"})),
     "messages.2: unexpected `tool_use_id` found in `tool_result` blocks: call_1"),
    (asked(messages=[*tool_round()[:2], {"role": "user", "content": "never mind"}]),
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
     "toolu_test_1"),
    (asked(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                   "content": "x"}]}]),
     "messages.0: unexpected `tool_use_id` found in `tool_result` blocks: t"),
    # content blocks
    (asked(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]),
     "messages.0.content.0: Input tag 'image_url' found using 'type'"),
    (asked(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
     "text content blocks must be non-empty"),
    (asked(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [FORGED]},
                     {"role": "user", "content": "go on"}]),
     "messages.1.content.0: Invalid `signature` in `thinking` block"),
    (asked(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm"}]}, {"role": "user", "content": "go on"}]),
     "messages.1.content.0.thinking.signature: Field required"),
    (asked(system=[{"type": "image", "source": {}}]), "system.0.type: Input should be 'text'"),
    # tools and the choice of them, OpenAI-shaped
    (asked(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
     "tools.0: Input tag 'function' found using 'type'"),
    (asked(tools=[{"name": "f"}]), "tools.0.custom.input_schema: Field required"),
    (asked(tools=[WEATHER, WEATHER]), "tools: Tool names must be unique."),
    (asked(tools=[WEATHER], tool_choice="required"),
     "tool_choice: Input should be a valid dictionary or object"),
    (asked(tools=[WEATHER], tool_choice={"type": "required"}), "tool_choice: Input tag 'required'"),
    (asked(tools=[WEATHER], tool_choice={"type": "tool"}), "tool_choice.tool.name: Field required"),
    # thinking
    (asked(thinking={"type": "enabled", "budget_tokens": 512}),
     "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    (asked(thinking={"type": "enabled", "budget_tokens": 2048}),
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    (asked(thinking={"type": "adaptive", "budget_tokens": 2048}, max_tokens=4096),
     "thinking.adaptive.budget_tokens: Extra inputs are not permitted"),
    (asked(thinking={"type": "on"}), "thinking: Input tag 'on' found using 'type'"),
    (asked(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024}, tools=[WEATHER],
           tool_choice={"type": "any"}), "Thinking may not be enabled when tool_choice forces"),
])
def test_refuses_what_anthropic_refuses(upstream, http, request_body, said):
    response = http.post("/messages", json=request_body)
    assert said in refusal_of(response)
    assert upstream.last.path == "/v1/messages" and upstream.last.json == request_body


def test_takes_every_documented_field_in_a_request_shaped_like_claude_codes(http):
    """Strict, not paranoid: all of Anthropic's fields, system blocks with cache_control,
    an image, a tool round trip with is_error, a thinking block passed back."""
    thought = thinking_block("thinking about: weather in Paris?")
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "weather in Paris?", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]},
        {"role": "assistant", "content": [thought, tool_use_block("get_weather")]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": TOOL_ID,
                                      "is_error": True, "content": [text_block("timed out")]}]},
    ]
    request = {
        "model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": messages,
        "system": [{"type": "text", "text": "You are Claude Code.",
                    "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "user_abc"}, "stop_sequences": ["\n\nHuman:"], "stream": False,
        "temperature": 1, "top_p": 0.9, "top_k": 40,
        "tools": [WEATHER, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "service_tier": "auto",
        "container": None, "context_management": None, "mcp_servers": [],
        "output_config": {"effort": "high"}, "inference_geo": None, "cache_control": None,
    }
    response = http.post("/messages", json=request)

    assert response.status_code == 200, response.text
    assert [b["type"] for b in response.json()["content"]] == ["thinking", "text"]
    assert response.json()["content"][1]["text"] == "the tool failed: timed out"


def test_a_system_turn_mid_conversation_is_taken_as_claude_code_sends_it(http):
    turns = [{"role": "user", "content": "hello"},
             {"role": "system", "content": [{"type": "text", "text": "Today is Tuesday."}]}]
    response = http.post("/messages", json=asked(messages=turns))

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "echo: hello"


def test_a_whole_message(upstream, http):
    response = http.post("/messages", json=asked("hello there"), headers={"x-api-key": "k-1"})

    assert response.status_code == 200
    message = response.json()
    assert message == {
        "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": "echo: hello there"}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": message["usage"]["input_tokens"],
                                         "output_tokens": 3, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 0}}
    assert message["usage"]["input_tokens"] > 0
    assert upstream.last.headers["x-api-key"] == "k-1"


def test_the_anthropic_sdk_reads_its_answer_and_its_stream_as_the_same_message(sdk):
    """The SDK's stream accumulator refuses events out of order: the stream it rebuilds is
    the whole answer, a thinking block and a tool call included."""
    request = {"model": "claude-test", "max_tokens": 2048, "tools": [WEATHER],
               "thinking": {"type": "enabled", "budget_tokens": 1024},
               "messages": [{"role": "user", "content": "weather in Paris?"}]}
    whole = sdk.messages.create(**request)
    with sdk.messages.stream(**request) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()

    assert [b.type for b in whole.content] == ["thinking", "tool_use"]
    assert whole.content[0].signature == signature("thinking about: weather in Paris?")
    assert whole.content[1].input == {"location": "Paris"} and whole.stop_reason == "tool_use"
    assert streamed.model_dump() == whole.model_dump()
    # The SDK's own events, which it makes from the deltas it understood.
    assert {"thinking", "signature", "input_json"} <= set(kinds)
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-2:] == ["message_delta", "message_stop"]


def test_a_streamed_text_is_anthropics_event_sequence(http):
    with http.stream("POST", "/messages", json=asked("one two three", stream=True)) as response:
        raw = response.read().decode()

    assert response.headers["content-type"] == "text/event-stream"
    frames = [frame.split("\n") for frame in raw.strip("\n").split("\n\n")]
    assert all(len(f) == 2 and f[0].startswith("event: ") and f[1].startswith("data: ")
               for f in frames)
    assert "[DONE]" not in raw
    names = [f[0].removeprefix("event: ") for f in frames]
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 4,
                     "content_block_stop", "message_delta", "message_stop"]
    events = message_stream(asked("one two three"))
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") \
        == "echo: one two three"
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"] == {"output_tokens": 4}


def test_a_tool_round_trip(sdk):
    called = sdk.messages.create(**asked("weather in Paris?", tools=[WEATHER]))
    assert called.stop_reason == "tool_use"
    call = called.content[0]
    assert (call.type, call.id, call.name) == ("tool_use", TOOL_ID, "get_weather")

    answered = sdk.messages.create(**asked(tools=[WEATHER], messages=tool_round()))
    assert [b.text for b in answered.content] == ["the tool said: 18C and sunny"]
    assert answered.stop_reason == "end_turn"
    failed = sdk.messages.create(**asked(tools=[WEATHER], messages=tool_round(
        {"type": "tool_result", "tool_use_id": TOOL_ID, "is_error": True,
         "content": [{"type": "text", "text": "no such city"}]})))
    assert failed.content[0].text == "the tool failed: no such city"
    named = sdk.messages.create(**asked(tools=[{**WEATHER, "name": "a"}, WEATHER],
                                        tool_choice={"type": "tool", "name": "get_weather"}))
    assert named.content[0].name == "get_weather"
    none = sdk.messages.create(**asked(tools=[WEATHER], tool_choice={"type": "none"}))
    assert none.content[0].type == "text"


def test_its_thinking_signature_is_taken_back(http):
    """Passed back unchanged, the upstream's own thinking block is accepted (a forged one
    is refused: above)."""
    first = http.post("/messages", json=asked(
        max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})).json()
    history = [{"role": "user", "content": "hello there"},
               {"role": "assistant", "content": first["content"]},
               {"role": "user", "content": "and then?"}]
    again = http.post("/messages", json=asked(max_tokens=2048, messages=history,
                                              thinking={"type": "enabled", "budget_tokens": 1024}))
    assert again.status_code == 200, again.text
    assert [b["type"] for b in again.json()["content"]] == ["thinking", "text"]


@pytest.mark.parametrize("fields, text, stop_reason, stop_sequence", [
    ({"max_tokens": 2}, "echo: one", "max_tokens", None),
    ({"stop_sequences": ["three", "two"]}, "echo: one ", "stop_sequence", "two"),
    ({"max_tokens": 5}, "echo: one two three", "end_turn", None),
])
def test_it_stops_where_a_model_would(sdk, fields, text, stop_reason, stop_sequence):
    message = sdk.messages.create(**{**asked("one two three"), **fields})
    assert (message.content[0].text, message.stop_reason, message.stop_sequence) == (
        text, stop_reason, stop_sequence)


def test_count_tokens_agrees_with_the_answers_usage(upstream, sdk, http):
    prompt = {"model": "claude-test", "system": "be brief", "tools": [WEATHER],
              "messages": [{"role": "user", "content": "hello there"}]}
    counted = sdk.messages.count_tokens(**prompt)
    answered = sdk.messages.create(**prompt, max_tokens=64)

    assert counted.input_tokens == answered.usage.input_tokens > 0
    assert upstream.requests[0].path == "/v1/messages/count_tokens"
    assert "max_tokens: Extra inputs are not permitted" in refusal_of(
        http.post("/messages/count_tokens", json={**prompt, "max_tokens": 64}))
    assert "messages: Field required" in refusal_of(
        http.post("/messages/count_tokens", json={"model": "claude-test"}))


def test_scripted_answers_and_errors(upstream, sdk, http):
    scripted = message_object(asked(), [text_block("scripted")], usage={
        "input_tokens": 7, "output_tokens": 1, "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 3})
    upstream.then(Reply(json=scripted),
                  Reply(status=529, json=error_body("Overloaded", "overloaded_error")),
                  Reply(status=200, raw=b'{"input_tokens": 99}'))

    assert sdk.messages.create(**asked()).usage.cache_read_input_tokens == 3
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(**asked())
    assert caught.value.status_code == 529
    assert caught.value.body == error_body("Overloaded", "overloaded_error")
    assert sdk.messages.count_tokens(**without("max_tokens")).input_tokens == 99
    assert sdk.messages.create(**asked("after")).content[0].text == "echo: after"  # natural again


def test_scripted_stream_events_in_anthropics_framing(upstream, http):
    events = message_stream(asked(), message_object(asked(), [text_block("a b")]))
    cut = [*map(message_event, events[:4]), b"event: content_block_delta\ndata: {\"ty"]
    upstream.then(Reply(events=events), Reply(events=cut))

    first = http.post("/messages", json=asked()).text  # a stream, though none was asked for
    assert first == b"".join(map(message_event, events)).decode()
    assert first.endswith('event: message_stop\ndata: {"type": "message_stop"}\n\n')
    second = http.post("/messages", json=asked(stream=True)).text
    assert second.endswith('data: {"ty') and "message_stop" not in second


def test_a_gate_holds_a_stream_until_it_is_opened(upstream, http):
    gate = Gate()
    events = message_stream(asked())
    upstream.then(Reply(events=[*events[:2], gate, *events[2:]]))
    got: list[str] = []

    def read() -> None:
        with http.stream("POST", "/messages", json=asked(stream=True)) as response:
            got.extend(response.iter_lines())

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: upstream.events_sent == 2, 5, "the events before the gate")
    assert reader.is_alive() and upstream.events_sent == 2
    gate.open()
    reader.join(5)
    assert upstream.events_sent == len(events)
    assert [line for line in got if line][-2:] == ["event: message_stop",
                                                   'data: {"type": "message_stop"}']


def test_a_hung_answer_notices_the_caller_leaving(upstream, http):
    upstream.then(Reply(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        http.post("/messages", json=asked(), timeout=0.3)
    wait_for(upstream.closed_early.is_set, 5, "the upstream to see the caller hang up")


def test_a_delay_then_the_natural_answer(upstream, http):
    upstream.then(Reply(delay=0.3))
    started = time.monotonic()
    response = http.post("/messages", json=asked())
    assert time.monotonic() - started >= 0.3
    assert response.json()["content"] == [text_block("echo: hello there")]


def test_only_an_upstream_asked_for_it_speaks_messages(http):
    default = Upstream().start()
    try:
        response = httpx.post(default.url + "/messages", json=asked(), timeout=5)
        assert response.status_code == 404
    finally:
        default.stop()


def test_the_builders_share_no_state():
    """A test may change what a builder gave it; the next one gets a fresh block."""
    block = tool_use_block("f")
    block["input"]["location"] = "Rome"
    assert tool_use_block("f")["input"] == {"location": "Paris"}
    assert message_object(asked(), [block])["stop_reason"] == "tool_use"
