"""The stream adapter works on bytes: events split anywhere, rewritten without touching content."""

from __future__ import annotations

import json

import pytest

from gateway.adapt import StreamAdapter, adapt_completion
from gateway.errors import UpstreamError


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


STREAM = (
    event({"id": "1", "model": "upstream/m-7b", "choices": [{"delta": {"content": 'say "model": "x"'}}]})
    + event({"id": "1", "model": "upstream/m-7b", "choices": [], "usage": {"prompt_tokens": 3,
                                                                        "completion_tokens": 5}})
    + b"data: [DONE]\n\n"
)


def run(adapter: StreamAdapter, pieces: list[bytes]) -> bytes:
    return b"".join(adapter.feed(p) for p in pieces) + adapter.finish()


def parsed(out: bytes) -> list:
    return [json.loads(e[6:]) if e != b"data: [DONE]" else "DONE"
            for e in out.split(b"\n\n") if e]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_split_anywhere_come_out_whole_and_rewritten(size):
    adapter = StreamAdapter("my-alias")
    out = run(adapter, [STREAM[i:i + size] for i in range(0, len(STREAM), size)])

    events = parsed(out)
    assert [e["model"] for e in events[:2]] == ["my-alias", "my-alias"]
    assert events[0]["choices"][0]["delta"]["content"] == 'say "model": "x"'  # content untouched
    assert events[2] == "DONE"
    assert adapter.usage == {"prompt_tokens": 3, "completion_tokens": 5}
    assert adapter.done and not adapter.truncated


def test_crlf_events():
    adapter = StreamAdapter("a")
    crlf = STREAM.replace(b"\n", b"\r\n")
    out = run(adapter, [crlf[i:i + 5] for i in range(0, len(crlf), 5)])
    assert [e if e == "DONE" else e["model"] for e in parsed(out)] == ["a", "a", "DONE"]


def test_alias_with_characters_that_need_escaping():
    alias = 'we\\ird "alias"'
    out = run(StreamAdapter(alias), [STREAM])
    assert parsed(out)[0]["model"] == alias


def test_usage_null_is_not_usage():
    adapter = StreamAdapter("a")
    run(adapter, [event({"model": "m", "choices": [], "usage": None})])
    assert adapter.usage is None


def test_cut_off_last_event_is_dropped_and_noted():
    adapter = StreamAdapter("a")
    out = run(adapter, [event({"model": "m", "choices": []}) + b'data: {"mod'])
    assert len(parsed(out)) == 1
    assert adapter.truncated and not adapter.done


def test_completion_gets_the_alias_and_yields_usage():
    body, usage = adapt_completion(json.dumps({
        "model": "upstream", "choices": [], "usage": {"total_tokens": 9}}).encode(), "alias")
    assert json.loads(body)["model"] == "alias"
    assert usage == {"total_tokens": 9}


@pytest.mark.parametrize("data", [b"<html>", b"[]", b'{"object": "list"}', b'{"error": "x"}'])
def test_what_is_not_a_completion_is_an_upstream_error(data):
    with pytest.raises(UpstreamError):
        adapt_completion(data, "alias")


def test_done_inside_content_is_not_the_end():
    adapter = StreamAdapter("a")
    out = run(adapter, [event({"model": "m", "choices": [{"delta": {"content": "data: [DONE]"}}]})])
    assert not adapter.done
    assert out.endswith(b"\n\n") and parsed(out)[0]["choices"][0]["delta"]["content"] == "data: [DONE]"


def test_usage_after_null_usages():
    adapter = StreamAdapter("a")
    run(adapter, [event({"model": "m", "choices": [], "usage": None}) * 3
                  + event({"model": "m", "choices": [], "usage": {"total_tokens": 4}})])
    assert adapter.usage == {"total_tokens": 4}
