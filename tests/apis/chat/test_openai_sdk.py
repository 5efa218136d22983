"""The official OpenAI SDK works against the gateway unchanged: plain, streamed, tools, JSON mode, vision."""

from __future__ import annotations

import json

from tests.conftest import UPSTREAM_SECRET


def test_plain_completion(client, primary):
    answer = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hello, gateway"}], max_tokens=50)

    assert answer.choices[0].message.content == "echo: Hello, gateway"
    assert answer.model == "gpt-test"  # the alias the client asked for, not the upstream's name
    assert answer.usage.total_tokens == 18
    sent = primary.last.json
    assert sent["model"] == "upstream-model-a"
    assert sent["messages"] == [{"role": "user", "content": "Hello, gateway"}]
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent  # openai profile


def test_stream(client, primary):
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three "
    assert {c.model for c in chunks} == {"gpt-test"}
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11
    assert primary.last.json["stream"] is True


def test_tool_call(client, primary):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}}]
    answer = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools, tool_choice="auto")

    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    assert primary.last.json["tools"] == tools
    assert primary.last.json["tool_choice"] == "auto"


def test_tool_call_streamed(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Weather?"}], tools=tools,
        stream=True)

    name, arguments, finish = "", "", None
    for c in stream:
        for call in c.choices[0].delta.tool_calls or []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"location": "Paris"}
    assert finish == "tool_calls"


def test_tool_result_round_trip(client, primary):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    client.chat.completions.create(model="gpt-test", messages=messages)

    assert primary.last.json["messages"] == messages


def test_json_mode(client, primary):
    answer = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"})

    assert json.loads(answer.choices[0].message.content) == {"echo": "json please"}
    assert primary.last.json["response_format"] == {"type": "json_object"}


def test_vision_message_reaches_upstream_intact(client, primary):
    image = "data:image/png;base64," + "iVBORw0KGgo" * 2000
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    answer = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": content}])

    assert answer.choices[0].message.content == "echo: What is in this image?"
    assert primary.last.json["messages"][0]["content"] == content


def test_upstream_gets_the_provider_key_never_the_client_key(client, primary):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])

    headers = primary.last.headers
    assert headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert all(client.api_key not in v for v in headers.values())
    assert headers["x-request-id"]


def test_request_id_is_returned_and_forwarded(client, primary):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "trace-abc-123"})

    assert raw.headers["x-request-id"] == "trace-abc-123"
    assert primary.last.headers["x-request-id"] == "trace-abc-123"
