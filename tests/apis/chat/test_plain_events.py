"""The C helper that rewrites a chat stream's plain events in one pass (`_events.c`): whatever
the upstream sends, and however its reads are cut, the client gets the same bytes, and the
gateway keeps the same account, as without it."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.apis.chat import _events, adapt
from gateway.apis.chat.adapt import Answer, StreamAdapter
from tests.apis.chat.test_adapt import answer

SECRET = "sk-upstream-secret-0123"
MODEL = "upstream/m-7b"


def _with(made: Answer) -> Answer:
    """`made`, with the provider's key it must never relay."""
    made.secrets = (SECRET.encode(),)
    return made


def chunk(delta: dict, finish: str | None = None, model: str = MODEL, **extra) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


TEXTS = st.sampled_from(["tok", " a", "", 'say "model": "x"', "é ✓", "line\nbreak", SECRET,
                         '"finish_reason": "stop"', "model", "\\", "[DONE]", "usage",
                         "finish_reason"])
USAGE = {"prompt_tokens": 3, "completion_tokens": 5}
EVENTS = st.one_of(
    TEXTS.map(lambda text: chunk({"content": text})),
    TEXTS.map(lambda text: chunk({"reasoning_content": text})),
    TEXTS.map(lambda text: chunk({"reasoning": text})),
    st.sampled_from(["stop", "length", "eos", "tool_calls"]).map(lambda why: chunk({}, why)),
    st.just(chunk({}, model="another/model")),
    st.just(chunk({"content": "x"}, model=f"echo/{SECRET}")),  # an upstream that echoes its key
    st.just({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "no model"}}]}),
    TEXTS.map(lambda text: {"model": MODEL, "choices": [{"delta": {"content": text}}]}),
    st.just({**chunk({}), "choices": [], "usage": USAGE}),
    st.just({**chunk({"content": "x"}, "stop"), "usage": USAGE}),  # with a choice: kept, less usage
    st.just({**chunk({}), "choices": [], "usage": {
        "prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 1}}}),  # no completion count
    st.just(chunk({"content": "x"}, usage={"completion_tokens": 1}, nested={"usage": 2})),
    st.just({**chunk({}), "usage": 7}),
    st.just(chunk({"content": "x"}, usage=None)),
    st.just({"model": MODEL, "choices": [], "nested": {"model": "inner"}}),
)
WRITERS = {"spaced": lambda e: json.dumps(e).encode(), "compact": orjson.dumps,
           "lines": lambda e: json.dumps(e, indent=1).replace("\n", "\ndata: ").encode()}
EXTRAS = st.sampled_from([b"", b": keep-alive\n\n", b"data: [DONE]\n\n", b"event: x\ndata: {}\n\n",
                          b"data: not json\n\n"])


def relayed(stream: bytes, cuts: list[int], made: Answer, show_usage: bool, helper) -> tuple:
    """What the client gets of `stream` read in pieces cut at `cuts`, and what the gateway
    counted; with the C helper or (helper None) without it."""
    adapt._events = helper
    try:
        adapter = StreamAdapter(made, show_usage=show_usage)
        out = []
        at = 0
        try:
            for cut in [*sorted(cuts), len(stream)]:
                out.append(adapter.feed(stream[at:cut]))
                at = cut
            out.append(adapter.finish())
        except Exception as error:  # the same failure either way
            return type(error).__name__, str(error)
        return (b"".join(out), adapter.usage, adapter.finished, adapter.done, adapter.truncated,
                adapter.upstream_model, adapter.tally.completion_tokens())
    finally:
        adapt._events = _events


def both_ways(stream: bytes, cuts: list[int], made: Answer, show_usage: bool = True) -> tuple:
    fast = relayed(stream, cuts, made, show_usage, _events)
    assert fast == relayed(stream, cuts, made, show_usage, None)
    return fast


@settings(max_examples=400, deadline=None)
@given(events=st.lists(EVENTS, max_size=12), writer=st.sampled_from(sorted(WRITERS)),
       extra=EXTRAS, data=st.data(), show_usage=st.booleans(),
       reasoning=st.sampled_from(["reasoning_content", "reasoning", "both"]),
       secret=st.sampled_from([SECRET, "sk-0123456", "sk-01234", "sk-01", "sk"]))
def test_any_stream_comes_out_the_same_with_and_without_the_helper(events, writer, extra, data,
                                                                   show_usage, reasoning, secret):
    written = [b"data: " + WRITERS[writer](e) + b"\n\n" for e in events]
    at = data.draw(st.integers(0, len(events)))
    stream = b"".join(written[:at]) + extra + b"".join(written[at:])
    if data.draw(st.booleans()):
        stream = stream.replace(b"\n", b"\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=4))
    made = answer(client_reasoning=reasoning)
    made.secrets = (secret.encode(),)  # keys of every length the helper compares differently
    both_ways(stream.replace(SECRET.encode(), secret.encode()), cuts, made, show_usage)


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


SEEN, LITERAL = b'"model": "upstream/m-7b"', b'"model":"my-alias"'


def rewrite(events: bytes, markers: tuple[bytes, ...] = (), seen: bytes = SEEN,
            keep_usage: bool = True) -> tuple:
    return _events.rewrite(events, seen, LITERAL, markers, keep_usage)


def test_a_whole_stream_is_rewritten_in_one_call():
    """Text events, the finish reason, the usage event and `[DONE]`: the helper takes them
    all, and says what it saw."""
    text = b"".join(event(chunk({"content": t})) for t in ["a", "b", "c"])
    last = event(chunk({}, "stop"))
    usage = event({**chunk({}), "choices": [], "usage": USAGE})

    out, stop, flags, where, learned = rewrite(text + last + usage + b"data: [DONE]\n\n")

    assert out == (text + last + usage).replace(SEEN, LITERAL)
    assert stop == len(text + last + usage) + 14
    assert flags == 3  # finished, and the upstream's [DONE] left out
    assert where == (len(text + last), len(text + last + usage),
                     len(out) - len(usage.replace(SEEN, LITERAL)))
    assert learned is None  # the model's key was known


def test_the_model_key_is_learned_from_the_first_event_that_has_one():
    events = event({"choices": []}) + event(chunk({"content": "a"})) + event(chunk({}, "stop"))

    out, stop, _, _, learned = rewrite(events, seen=b"")

    assert (out, stop) == (events.replace(SEEN, LITERAL), len(events))
    start, end, name_start, name_end = learned
    assert (events[start:end], events[name_start:name_end]) == (SEEN, b"upstream/m-7b")


@pytest.mark.parametrize("model", [f"echo/{SECRET}", 'say \\"hi\\"'])
def test_a_model_name_with_a_key_or_an_escape_is_learned_the_long_way(model):
    events = event(chunk({"content": "a"}, model=model))
    assert rewrite(events, (SECRET.encode(),), seen=b"") == (b"", 0, 0, None, None)


def test_the_usage_event_is_left_out_unless_the_client_asked_for_it():
    text = event(chunk({"content": "a"}))
    usage = event({**chunk({}), "choices": [], "usage": USAGE})

    out, stop, _, where, _ = rewrite(usage + text, keep_usage=False)

    assert (out, stop) == (text.replace(SEEN, LITERAL), len(usage + text))
    assert where == (0, len(usage), 0)  # read by the adapter, which decides what is sent


def test_plain_events_are_rewritten_in_one_call_up_to_the_first_other():
    plain = b"".join(event(chunk({"content": t})) for t in ["a", "b", "c"])
    last = event(chunk({}, "eos"))  # the upstream's own word, which the long way maps

    out, stop, flags, usage, _ = rewrite(plain + last + plain)

    assert stop == len(plain)  # the finish reason's event and all after it: the long way
    assert out == plain.replace(SEEN, LITERAL)
    assert (flags, usage) == (0, None)


@pytest.mark.parametrize("events, why", [
    (b'data: {"model": "other"}\n\n', "another model"),
    (b'data: {"a": 1}\ndata: {"b": 2}\n\n', "two lines"),
    (b'data:{"model": "upstream/m-7b"}\n\n', "no space after the colon"),
    (b'data: {"model": "upstream/m-7b"}\n', "no blank line yet"),
    (b'data: [DONE]\n', "not an object"),
    (b'data: {"x": "' + SECRET.encode() + b'"}\n\n', "a provider key"),
    (b'data: {"finish_reason": "eos"}\n\n', "a finish reason to map"),
    (b'data: {"finish_reason": "stopped"}\n\n', "a longer word"),
    (b'data: {"x": "finish_reason"}\n\n', "a key's name as a value"),
    (b'data: {"usage": 5}\n\n', "a usage that is not an object"),
])
def test_an_event_that_is_not_plain_stops_the_helper(events, why):
    assert rewrite(events, (SECRET.encode(),)) == (b"", 0, 0, None, None), why


def test_a_second_usage_event_stops_the_helper():
    usage = event({"choices": [], "usage": USAGE})
    assert rewrite(usage + usage) == (usage, len(usage), 0, (0, len(usage), 0), None)


def test_a_stream_the_helper_takes_counts_what_it_relayed():
    """The bulk of a stream goes through the helper: its text is still the client's charge
    when no usage comes."""
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": " tok"})] * 300
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    out, usage, finished, done, truncated, model, completion = both_ways(
        stream, [len(stream) // 3], _with(answer()))
    assert out.count(b'"model":"my-alias"') == 302  # and the usage event the gateway adds
    assert SECRET.encode() not in out
    assert usage == {"prompt_tokens": 100, "completion_tokens": 300, "total_tokens": 400,
                     "estimated": True}
    assert (finished, done, truncated, model, completion) == (False, False, False, MODEL, 300)


def test_a_key_in_the_upstreams_model_name_is_masked_in_the_name_the_gateway_reports():
    """The model and key forms are learned from a stream's first events, which alone are
    masked for it: the key never reaches the client, in the events or in the name."""
    first = chunk({"role": "assistant", "content": ""}, model=f"echo/{SECRET}")
    events = [first] + [chunk({"content": " tok"}, model=f"echo/{SECRET}")] * 50
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    out, _, _, _, _, model, _ = both_ways(stream, [], _with(answer()))
    assert model == "echo/***"
    assert SECRET.encode() not in out and out.count(b'"model":"my-alias"') == 52


def test_a_provider_with_more_keys_than_the_helper_takes_is_rewritten_the_long_way():
    made = answer()
    made.secrets = tuple(f"{first}k-key-{i}".encode() for i, first in enumerate("abcdefghijklmnopq"))
    stream = b"".join(b"data: " + json.dumps(chunk({"content": t})).encode() + b"\n\n"
                      for t in ["a", made.secrets[-1].decode()])
    out = both_ways(stream, [], made)[0]
    assert b"***" in out and made.secrets[-1] not in out
