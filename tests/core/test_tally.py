"""The tally of a stream: text counted on the bytes as the adapter relays them."""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.apis.chat.adapt import StreamAdapter
from gateway.core.tally import HOLD, Tally
from gateway.core.tokens import text_tokens
from tests.apis.chat.test_adapt import answer


def event(delta: dict, dumps=orjson.dumps, **extra) -> bytes:
    return b"data: " + dumps({"model": "m", "choices": [{"delta": delta}], **extra}) + b"\n\n"


def relayed(stream: bytes, size: int | None = None, count: bool = True) -> Tally:
    """The tally of `stream` fed in reads of `size`; counted, unless `count` is False."""
    adapter = StreamAdapter(answer(), show_usage=False)
    size = size or len(stream)
    for at in range(0, len(stream), size):
        adapter.feed(stream[at:at + size])
    adapter.finish()
    if count:
        adapter.tally.completion_tokens()
    return adapter.tally


MIXED = (event({"role": "assistant", "content": ""})
         + event({"reasoning_content": "let me think"}) * 3
         + event({"content": 'say "hi"\n'}) * 4
         + event({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}) * 5
         + event({}, usage=None))


@pytest.mark.parametrize("size", [1, 7, 100, len(MIXED)])
def test_reads_split_anywhere_count_the_same(size):
    tally = relayed(MIXED, size)
    assert tally.events == 12  # the empty role content is no text
    assert tally.completion_tokens() == relayed(MIXED).completion_tokens()


def test_reasoning_under_both_names_is_counted_once():
    one = relayed(event({"reasoning_content": "hmm"}) * 4)
    both = relayed(event({"reasoning": "hmm", "reasoning_content": "hmm"}) * 4)
    plain = relayed(event({"reasoning": "hmm", "reasoning_content": None}) * 4)
    assert one.events == both.events == plain.events == 4


def test_escapes_are_the_characters_they_stand_for():
    text = "中文的回答，还有一些说明。\n\tand \"quotes\""
    raw = relayed(event({"content": text}))  # orjson: raw UTF-8
    escaped = relayed(event({"content": text}, dumps=lambda d: json.dumps(d).encode()))
    assert raw.completion_tokens() == escaped.completion_tokens()
    assert raw.completion_tokens() == round(text_tokens(text.encode()))


def test_text_after_the_upstreams_own_count_is_added_to_it():
    stream = (b"".join(event({"content": "x"}, usage={"prompt_tokens": 9, "completion_tokens": n})
                       for n in range(1, 6))
              + event({"content": "one"}) + event({"content": "two"}))
    for size in (len(stream), 50):
        tally = relayed(stream, size)
        assert (tally.prompt_tokens, tally.reported, tally.events) == (9, 5, 2)
        assert tally.completion_tokens() == 7


def test_a_long_stream_is_counted_as_it_goes_to_the_same_count():
    stream = event({"content": "word " * 40}) * 1600  # 400 KB of events: counted as they pass
    tally = relayed(stream, 4096, count=False)
    assert 0 < tally.events < 1600 and tally._size < HOLD + 4096  # the rest held
    assert tally.completion_tokens() == round(text_tokens(b"word " * 40 * 1600))


def test_a_stream_under_the_hold_is_kept_as_its_reads_without_a_copy():
    reads = [event({"content": "word"}) * 10 for _ in range(3)]
    tally = Tally()
    for read in reads:
        tally.add(read)
    assert tally.events == 0 and all(a is b for a, b in zip(tally._held, reads, strict=True))
    assert tally.completion_tokens() == 30
