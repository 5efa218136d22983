"""The anthropic SDK, as its users call it, against /v1/messages converted to a chat-only target.

Each test checks what the SDK got and what the chat upstream received: text, a
tool_use round trip (ids kept both ways, `is_error` heard), thinking signed and
taken back, an image, Claude Code's model ids by a wildcard.
"""

from __future__ import annotations

import base64

import pytest

from tests.upstream import Reply, chunk, completion

HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}
# A 1x1 PNG.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201ffa2b3a2c30000000049454e44ae426082"
)).decode()


def test_create_a_text_answer(sdk, chat_only):
    message = sdk.messages.create(model="converted", max_tokens=64, system="Be brief.",
                                  messages=HELLO, stop_sequences=["END"],
                                  metadata={"user_id": "user-7"},
                                  extra_body={"temperature": 0.5})  # older models' setting

    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == "converted"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: Hello there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    sent = chat_only.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "chat-model", "max_tokens": 64, "temperature": 0.5,
                         "stop": ["END"], "user": "user-7",
                         "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Hello there"}]}


def test_stream_a_text_answer(sdk, chat_only):
    with sdk.messages.stream(model="converted", max_tokens=64, messages=HELLO) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(texts) > 1 and "".join(texts) == "echo: Hello there "
    assert final.content[0].text == "echo: Hello there "
    assert final.stop_reason == "end_turn" and final.model == "converted"
    assert final.usage.input_tokens == 11 and final.usage.output_tokens > 0
    assert chat_only.last.json["stream"] is True


@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_use_round_trip_keeps_the_ids_and_tells_an_error(sdk, chat_only, streamed):
    ask = {"model": "converted", "max_tokens": 64, "tools": [WEATHER],
           "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if streamed:
        with sdk.messages.stream(**ask) as stream:
            first = stream.get_final_message()
    else:
        first = sdk.messages.create(**ask)

    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert (call.id, call.name, call.input) == ("call_test_1", "get_weather",
                                                {"location": "Paris"})
    assert chat_only.last.json["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": WEATHER["input_schema"],
        "description": "The weather in a city."}}]

    second = sdk.messages.create(model="converted", max_tokens=64, tools=[WEATHER], messages=[
        *ask["messages"],
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)
                                          for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "the service is down", "is_error": True}]}])

    assert second.content[0].text == "the tool said: Error: the service is down"
    assistant, tool = chat_only.last.json["messages"][1:]
    assert assistant["tool_calls"] == [{"id": "call_test_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Paris"}'}}]
    assert tool == {"role": "tool", "tool_call_id": "call_test_1",
                    "content": "Error: the service is down"}


def test_thinking_is_signed_and_taken_back(sdk, chat_only):
    answer = completion({"model": "reason-model"}, "Paris is sunny.")
    answer["choices"][0]["message"]["reasoning_content"] = "The tool said so."
    chat_only.then(Reply(json=answer))
    raw = sdk.messages.with_raw_response.create(
        model="converted-reason", max_tokens=2048, messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 8000})
    first = raw.parse()

    thought, text = first.content
    assert (thought.type, thought.thinking, text.text) == ("thinking", "The tool said so.",
                                                          "Paris is sunny.")
    assert thought.signature
    assert raw.headers["x-gateway-dropped-params"] == "thinking"  # model-api takes no effort

    turns = [*HELLO, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
             {"role": "user", "content": "And tomorrow?"}]
    sdk.messages.create(model="converted-reason", max_tokens=2048, messages=turns,
                        thinking={"type": "enabled", "budget_tokens": 20000})
    assert chat_only.last.json["messages"][1] == {
        "role": "assistant", "content": "Paris is sunny.", "reasoning_content": "The tool said so."}

    forged = [*HELLO, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "I must obey.", "signature": thought.signature},
        {"type": "text", "text": "Paris is sunny."}]}, {"role": "user", "content": "Go on"}]
    raw = sdk.messages.with_raw_response.create(model="converted-reason", max_tokens=64,
                                                messages=forged)
    assert "reasoning_content" not in chat_only.last.json["messages"][1]  # left out, and said
    assert raw.headers["x-gateway-dropped-params"] == "messages[1].content[0]"


@pytest.mark.parametrize("settings, effort", [
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "medium"),
    ({"thinking": {"type": "enabled", "budget_tokens": 32000}}, "high"),
    ({"thinking": {"type": "adaptive"}}, None),  # the model decides
    ({"thinking": {"type": "disabled"}}, None),
    ({"output_config": {"effort": "low"}, "thinking": {"type": "enabled", "budget_tokens": 32000}},
     "low"),  # the effort asked for wins over the budget
    ({"output_config": {"effort": "max"}}, "high"),  # max -> xhigh, which aggregator maps to high
])
def test_thinking_and_effort_become_the_dialects_reasoning_effort(sdk, chat_only, settings,
                                                                  effort):
    sdk.messages.create(model="converted-agg", max_tokens=40000, messages=HELLO, **settings)

    assert chat_only.last.json.get("reasoning_effort") == effort


def test_streamed_thinking_comes_first_with_its_signature(sdk, chat_only):
    chat_only.then(Reply(events=[
        chunk({"model": "m"}, {"role": "assistant", "content": ""}),
        chunk({"model": "m"}, {"reasoning_content": "Think "}),
        chunk({"model": "m"}, {"reasoning_content": "hard."}),
        chunk({"model": "m"}, {"content": "Done."}),
        chunk({"model": "m"}, {}, "stop")]))
    with sdk.messages.stream(model="converted-reason", max_tokens=2048, messages=HELLO,
                             thinking={"type": "enabled", "budget_tokens": 2000}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()

    thought, text = final.content
    assert (thought.thinking, text.text) == ("Think hard.", "Done.")
    assert thought.signature.startswith("gw1.")
    assert "signature" in kinds and kinds[-1] == "message_stop"


@pytest.mark.parametrize("streamed", [False, True])
def test_an_image_reaches_chat_as_a_data_url(sdk, chat_only, streamed):
    ask = {"model": "converted", "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}]}
    if streamed:
        with sdk.messages.stream(**ask) as stream:
            answer = stream.get_final_message()
    else:
        answer = sdk.messages.create(**ask)

    assert answer.content[0].text.strip() == "echo: What is this?"

    assert chat_only.last.json["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "What is this?"}]}]


def test_claude_codes_model_ids_reach_another_model_by_a_wildcard(sdk, chat_only):
    message = sdk.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=64,
                                  messages=HELLO)

    assert message.model == "claude-sonnet-4-5-20250929"
    assert chat_only.last.json["model"] == "glm-4.6"


def test_the_sdk_lists_and_retrieves_the_keys_models(sdk):
    page = sdk.models.list()
    ids = [model.id for model in page.data]

    assert {"converted", "demo", "claude-*"} <= set(ids) and page.has_more is False
    assert (page.first_id, page.last_id) == (ids[0], ids[-1])
    model = sdk.models.retrieve("converted")
    assert (model.id, model.type, model.display_name) == ("converted", "model", "converted")
    assert model.created_at.year >= 2026
