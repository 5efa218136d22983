"""The answer adapter: events split anywhere come out whole, rewritten without touching content."""

from __future__ import annotations

import json

import pytest

from gateway.apis.chat.adapt import Answer, StreamAdapter
from gateway.config.compiled import Dialect, Profile, Route
from gateway.core.errors import UpstreamError


def answer(alias: str = "my-alias", *, client_reasoning: str = "reasoning_content",
           upstream_reasoning: str = "reasoning_content", finish_reasons: dict | None = None,
           prompt_estimate: int = 100) -> Answer:
    profile = Profile(name="p", description="", transport="http", apis={"chat": "/chat/completions"},
                      auth_header="authorization", auth_scheme="Bearer",
                      reasoning_field=upstream_reasoning, finish_reasons=finish_reasons or {})
    route = Route(alias, "", (), reasoning_field=client_reasoning)
    return Answer(route, Dialect(profile, "prov", {}, "drop"), prompt_estimate)


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


STREAM = (
    event({"id": "1", "model": "upstream/m-7b", "choices": [{"delta": {"content": 'say "model": "x"'},
                                                             "finish_reason": None}]})
    + event({"id": "1", "model": "upstream/m-7b", "choices": [], "usage": {"prompt_tokens": 3,
                                                                        "completion_tokens": 5}})
    + b"data: [DONE]\n\n"
)


def run(adapter: StreamAdapter, pieces: list[bytes]) -> bytes:
    return b"".join(adapter.feed(p) for p in pieces) + adapter.finish()


def parsed(out: bytes) -> list:
    return [json.loads(e[6:]) for e in out.split(b"\n\n") if e]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_split_anywhere_come_out_whole_and_rewritten(size):
    adapter = StreamAdapter(answer())
    out = run(adapter, [STREAM[i:i + size] for i in range(0, len(STREAM), size)])

    events = parsed(out)
    assert [e["model"] for e in events] == ["my-alias", "my-alias"]
    assert events[0]["choices"][0]["delta"]["content"] == 'say "model": "x"'  # content untouched
    assert adapter.usage == {"prompt_tokens": 3, "completion_tokens": 5}
    assert adapter.upstream_model == "upstream/m-7b"
    assert adapter.done and not adapter.truncated
    assert b"[DONE]" not in out  # the relay ends every stream with its own


def test_crlf_events():
    adapter = StreamAdapter(answer("a"))
    crlf = STREAM.replace(b"\n", b"\r\n")
    out = run(adapter, [crlf[i:i + 5] for i in range(0, len(crlf), 5)])
    assert [e["model"] for e in parsed(out)] == ["a", "a"]
    assert adapter.done


def test_alias_with_characters_that_need_escaping():
    alias = 'we\\ird "alias"'
    out = run(StreamAdapter(answer(alias)), [STREAM])
    assert parsed(out)[0]["model"] == alias


def test_usage_event_hidden_from_a_client_that_did_not_ask():
    adapter = StreamAdapter(answer(), show_usage=False)
    out = run(adapter, [STREAM])
    assert len(parsed(out)) == 1 and "usage" not in parsed(out)[0]
    assert adapter.usage == {"prompt_tokens": 3, "completion_tokens": 5}  # still counted


def test_usage_on_a_content_event_is_stripped_not_dropped():
    adapter = StreamAdapter(answer(), show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {"content": "hi"}}],
                               "usage": {"total_tokens": 2}})])
    assert parsed(out) == [{"model": "my-alias", "choices": [{"delta": {"content": "hi"}}]}]
    assert adapter.usage == {"total_tokens": 2}


def test_missing_usage_is_estimated_for_a_client_that_asked():
    adapter = StreamAdapter(answer(prompt_estimate=100), show_usage=True)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {"content": "w"}}]})] * 5)
    usage = parsed(out)[-1]["usage"]
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 5  # a token an event
    assert usage["estimated"] is True


def test_usage_null_is_not_usage():
    adapter = StreamAdapter(answer(), show_usage=False)
    run(adapter, [event({"model": "m", "choices": [], "usage": None})])
    assert adapter.usage is None


def test_usage_after_null_usages():
    adapter = StreamAdapter(answer())
    run(adapter, [event({"model": "m", "choices": [], "usage": None}) * 3
                  + event({"model": "m", "choices": [], "usage": {"total_tokens": 4}})])
    assert adapter.usage == {"total_tokens": 4}


def test_cut_off_last_event_is_dropped_and_noted():
    adapter = StreamAdapter(answer())
    out = run(adapter, [event({"model": "m", "choices": []}) + b'data: {"mod'])
    assert len(parsed(out)) == 1
    assert adapter.truncated and not adapter.done


def test_done_inside_content_is_not_the_end():
    adapter = StreamAdapter(answer(), show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {"content": "data: [DONE]"}}]})])
    assert not adapter.done
    assert parsed(out)[0]["choices"][0]["delta"]["content"] == "data: [DONE]"


@pytest.mark.parametrize("client, expected", [
    ("reasoning_content", {"reasoning_content": "hmm"}),
    ("reasoning", {"reasoning": "hmm"}),
    ("both", {"reasoning_content": "hmm", "reasoning": "hmm"}),
])
def test_reasoning_deltas_use_the_field_the_route_chose(client, expected):
    adapter = StreamAdapter(answer(client_reasoning=client, upstream_reasoning="reasoning"),
                            show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {"reasoning": "hmm"}}]})])
    assert parsed(out)[0]["choices"][0]["delta"] == expected


def test_reasoning_under_both_names_from_the_upstream_is_not_duplicated():
    adapter = StreamAdapter(answer(upstream_reasoning="reasoning"), show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {
        "reasoning": "hmm", "reasoning_content": "hmm"}}]})])
    assert parsed(out)[0]["choices"][0]["delta"] == {"reasoning_content": "hmm"}


def test_finish_reasons_are_kept_to_openais_set():
    adapter = StreamAdapter(answer(finish_reasons={"abort": "length"}), show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {}, "finish_reason": r}]})
                        for r in ("eos", "abort", "weird", "tool_calls", None)])
    assert [e["choices"][0]["finish_reason"] for e in parsed(out)] == [
        "stop", "length", "stop", "tool_calls", None]


def test_finish_reasons_and_usage_far_into_one_long_read_are_rewritten():
    """Reasons and usage are looked for from their first occurrence in a read: those after
    hundreds of content events are found, every one of them."""
    adapter = StreamAdapter(answer(finish_reasons={"abort": "length"}), show_usage=True)
    content = event({"model": "m", "choices": [{"delta": {"content": "a"}, "finish_reason": None}],
                     "usage": None})
    read = (content * 300
            + event({"model": "m", "choices": [{"delta": {}, "finish_reason": "eos"}]})
            + content
            + event({"model": "m", "choices": [{"delta": {}, "finish_reason": "abort"}]})
            + event({"model": "m", "choices": [], "usage": {"prompt_tokens": 2,
                                                           "completion_tokens": 301}})
            + b"data: [DONE]\n\n")
    events = parsed(run(adapter, [read]))
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-3:] == [
        "stop", None, "length"]
    assert adapter.usage == {"prompt_tokens": 2, "completion_tokens": 301}
    assert events[-1]["usage"] == adapter.usage and adapter.done
    assert {e["model"] for e in events} == {"my-alias"}


def test_completion_gets_the_alias_reasoning_field_and_finish_reason():
    body, usage, upstream_model = answer(upstream_reasoning="reasoning").completion(json.dumps({
        "model": "upstream", "usage": {"total_tokens": 9},
        "choices": [{"index": 0, "finish_reason": "eos",
                     "message": {"role": "assistant", "content": "4", "reasoning": "2+2"}}],
    }).encode())
    data = json.loads(body)
    assert data["model"] == "my-alias"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "4",
                                             "reasoning_content": "2+2"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert usage == {"total_tokens": 9} and upstream_model == "upstream"


def test_completion_without_usage_gets_an_estimate():
    body, usage, _ = answer(prompt_estimate=10).completion(json.dumps({
        "choices": [{"message": {"role": "assistant", "content": "x" * 40}}]}).encode())
    assert usage == {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19,
                     "estimated": True}  # 40 letters, 0.23 a token (gateway/core/tally.py)
    assert json.loads(body)["usage"] == usage


@pytest.mark.parametrize("data", [b"<html>", b"[]", b'{"object": "list"}', b'{"error": "x"}'])
def test_what_is_not_a_completion_is_an_upstream_error(data):
    with pytest.raises(UpstreamError):
        answer().completion(data)


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_the_keys_are_found_as_the_upstream_writes_them_read_after_read(separators):
    """The adapter learns from the first finish_reason key whether the upstream puts a space
    after its colons, then looks for `"finish_reason":"` and `"usage":{` in that form only:
    a reason and a usage in later reads are found either way."""
    def write(data: dict) -> bytes:
        return b"data: " + json.dumps(data, separators=separators).encode() + b"\n\n"

    adapter = StreamAdapter(answer(finish_reasons={"eos": "stop"}))
    reads = [write({"model": "m", "choices": [{"delta": {"content": "a"}, "finish_reason": None}],
                    "usage": None}) * 2,
             write({"model": "m", "choices": [{"delta": {}, "finish_reason": "abort"}],
                    "usage": None}),
             write({"model": "m", "choices": [], "usage": {"prompt_tokens": 2,
                                                           "completion_tokens": 3}}),
             b"data: [DONE]\n\n"]
    out = run(adapter, reads)
    events = parsed(out)
    assert [e["choices"][0]["finish_reason"] for e in events[:3]] == [None, None, "stop"]
    assert adapter.finished and adapter.done and b"[DONE]" not in out
    assert adapter.usage == {"prompt_tokens": 2, "completion_tokens": 3}
    assert {e["model"] for e in events} == {"my-alias"}


def test_done_after_a_comment_line_is_still_the_end():
    """Events of another shape (a comment, an `id:` field) are read one by one: a `[DONE]`
    among them still ends the stream."""
    adapter = StreamAdapter(answer(), show_usage=False)
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {}, "finish_reason": "stop"}]})
                        + b": keep-alive\n\nid: 7\ndata: [DONE]\n\n"])
    assert adapter.done and b"[DONE]" not in out
