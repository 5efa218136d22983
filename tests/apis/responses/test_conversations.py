"""Conversations the gateway keeps, through the openai SDK as its users write them: turns chained
by `previous_response_id` on a native target and on a converted one, a stream continued at once,
a fallback mid-conversation, stored responses retrieved, listed and deleted, one key's
conversation out of another's reach. (Two replicas sharing them in Redis, and their TTL:
test_stored_endpoints.py and test_state.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.apis.responses.conftest import KEY, new_key
from tests.upstream import Reply


@pytest.fixture
def sdk(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0,
                       timeout=20) as client:
        yield client


def said(body: dict) -> list[str]:
    """The texts of what an upstream was sent, in order, whichever API it speaks."""
    turns = body.get("messages") if "messages" in body else body["input"]
    out = []
    for turn in turns:
        content = turn.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text") or "" for part in content)
        if content:
            out.append(content.strip())
    return out


@pytest.mark.parametrize("model", ["native", "converted"])
def test_three_turns_chained_by_previous_response_id(sdk, native, chat_only, model):
    upstream = native if model == "native" else chat_only
    first = sdk.responses.create(model=model, input="Hi, I am Ada.")
    second = sdk.responses.create(model=model, input="My name?", previous_response_id=first.id)
    third = sdk.responses.create(model=model, input="Thanks", previous_response_id=second.id)

    assert len({first.id, second.id, third.id}) == 3 and third.model == model
    assert (first.previous_response_id, second.previous_response_id,
            third.previous_response_id) == (None, first.id, second.id)
    assert said(upstream.requests[-1].json) == [
        "Hi, I am Ada.", "echo: Hi, I am Ada.", "My name?", "echo: My name?", "Thanks"]
    assert all("previous_response_id" not in r.json for r in upstream.requests)
    if model == "native":
        assert all(r.json["store"] is False for r in upstream.requests)  # the gateway keeps it


def test_a_streamed_turn_on_a_native_target_names_the_turn_it_continues(sdk, native):
    first = sdk.responses.create(model="native", input="Hi")
    with sdk.responses.stream(model="native", input="again",
                              previous_response_id=first.id) as stream:
        events = list(stream)
        final = stream.get_final_response()

    assert final.previous_response_id == first.id
    assert events[0].type == "response.created"
    assert events[0].response.previous_response_id == first.id
    assert "previous_response_id" not in native.last.json


def test_a_stream_is_continued_the_moment_it_ends(sdk, chat_only):
    with sdk.responses.stream(model="converted", input="one two") as stream:
        for _ in stream:
            pass
        streamed = stream.get_final_response()
    after = sdk.responses.create(model="converted", input="and three",
                                 previous_response_id=streamed.id)

    assert after.output_text == "echo: and three" and after.previous_response_id == streamed.id
    assert said(chat_only.last.json) == ["one two", "echo: one two", "and three"]


def test_a_conversation_falls_back_to_another_target_midway(sdk, native, chat_only):
    first = sdk.responses.create(model="native-then-chat", input="Hi, I am Ada.")
    assert len(native.requests) == 1 and not chat_only.requests

    native.then(Reply(status=503, json={"error": {"message": "busy"}}))
    second = sdk.responses.create(model="native-then-chat", input="My name?",
                                  previous_response_id=first.id)

    assert second.output_text == "echo: My name?"
    assert said(chat_only.last.json) == ["Hi, I am Ada.", "echo: Hi, I am Ada.", "My name?"]


def test_a_stored_response_is_retrieved_listed_and_deleted(sdk):
    first = sdk.responses.create(model="converted", input="Hi")
    second = sdk.responses.create(model="converted", input=[
        {"role": "user", "content": "and"}, {"role": "user", "content": "more"}],
        previous_response_id=first.id)

    assert sdk.responses.retrieve(second.id).output_text == second.output_text
    items = list(sdk.responses.input_items.list(second.id, order="asc"))
    assert [i.content[0].text for i in items] == ["Hi", "echo: Hi", "and", "more"]
    assert sdk.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="converted", input="x", previous_response_id=second.id)


def test_store_false_keeps_nothing(sdk):
    answer = sdk.responses.create(model="converted", input="Hi", store=False)

    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)


def test_another_keys_conversation_is_not_found(sdk, gateway, chat_only):
    mine = sdk.responses.create(model="converted", input="a secret")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=new_key(gateway, "other-team"),
                       max_retries=0, timeout=20) as other:
        with pytest.raises(openai.NotFoundError) as continued:
            other.responses.create(model="converted", input="what was it?",
                                   previous_response_id=mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)

    assert continued.value.body["code"] == "response_not_found"
    assert len(chat_only.requests) == 1  # the other key's turns never reached the upstream
    assert sdk.responses.retrieve(mine.id).id == mine.id  # still there for its owner
