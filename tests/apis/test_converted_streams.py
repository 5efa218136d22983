"""Streams converted from chat (Responses, Messages) in process: a chunk whose delta is its text
alone goes a quick way to the writer, and must come out as the long way writes it.
"""

from __future__ import annotations

import re

import orjson
import pytest

from gateway.apis.chat import chunks
from gateway.apis.messages import surface as messages
from gateway.apis.responses import surface as responses
from gateway.config import Route
from tests.profiles import NOWHERE, targets_on
from tests.upstream import chunk

SURFACES = {"responses": (responses, {"input": "hi"}),
            "messages": (messages, {"max_tokens": 64, "messages": [
                {"role": "user", "content": "hi"}]})}
# What differs from one stream to the next however it was written: ids and clocks.
_RANDOM = re.compile(rb'(_[0-9a-f]{24,}|"created_at":\d+|"signature":"[^"]*")')


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return targets_on(tmp_path_factory.mktemp("converted"), {
        "chat": f"{{profile: generalcompute, {NOWHERE}}}"})["chat"]


def stream_of(target, api: str, upstream: list[dict], monkeypatch) -> tuple[bytes, int]:
    """The client's stream, less its ids and clocks; how many chunks went through `convert`."""
    module, fields = SURFACES[api]
    payload = module.parse(orjson.dumps({"model": "alias", **fields}))
    answer = module.TO_CHAT.answer(Route(alias="alias", description="", groups=()), target,
                                   payload, 7)
    adapter = answer.stream(False, 2**20)
    converted: list[dict] = []
    convert = type(adapter).convert
    monkeypatch.setattr(type(adapter), "convert",
                        lambda self, chunk: converted.append(chunk) or convert(self, chunk))
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in upstream)
    out = b"".join(adapter.feed(body[i:i + 100]) for i in range(0, len(body), 100))
    return _RANDOM.sub(b"_", out + adapter.finish()), len(converted)


@pytest.mark.parametrize("api", SURFACES)
def test_a_text_chunk_is_written_the_same_whichever_way_it_goes(target, api, monkeypatch):
    request = {"model": "chat-up"}
    texts = ["Hello", "", " wor", 'ld "quoted"\n', "é ✓"]
    usage = {**chunk(request, {}), "choices": [],
             "usage": {"prompt_tokens": 3, "completion_tokens": 5}}

    def upstream(delta_extra: dict) -> list[dict]:
        """The text chunks, each with `delta_extra` beside its text: a field the quick way does
        not take, which sends every chunk the long way (through `convert`)."""
        return ([chunk(request, {"role": "assistant", "content": ""}),
                 chunk(request, {"reasoning_content": "Let me see."})]
                + [chunk(request, {"content": text, **delta_extra}) for text in texts]
                + [chunk(request, {}, "stop"), usage])

    quick = stream_of(target, api, upstream({}), monkeypatch)
    long_way = stream_of(target, api, upstream({"tool_calls": None}), monkeypatch)
    assert quick[0] == long_way[0]
    assert (quick[1], long_way[1]) == (3, 3 + len(texts))  # the role, the reasoning, the stop
    quick = quick[0]
    assert quick.count(b'"Hello"') == 1 and b'" wor"' in quick  # each text's delta
    assert b'ld \\"quoted\\"\\n' in quick and "é ✓".encode() in quick
    if api == "responses":  # the whole text: output_text.done, the part, the item, the response
        assert quick.count(orjson.dumps("".join(texts))) == 4


@pytest.mark.parametrize("api", SURFACES)
def test_an_event_in_the_first_texts_envelope_is_read_from_its_string_alone(target, api,
                                                                           monkeypatch):
    """After the first text-only chunk, an event that is its bytes around another JSON string
    is read from that string alone, and comes out as the long way writes it; one whose middle
    is anything else (here, a refusal beside the text) goes the long way."""
    def event(delta: dict, finish: str | None = None) -> bytes:
        written = {**chunk({"model": "up"}, delta, finish), "created": 1}  # the same each time
        return b"data: " + orjson.dumps(written) + b"\n\n"

    head, tail = event({"content": "\x00"}).split(b'"\\u0000"')
    texts = [" wor", 'ld "quoted"\n', "é ✓", '", "refusal": "x', "\\u00e9", "", "\x01",
             "😀\u2028\x7f"]
    body = (event({"role": "assistant", "content": ""}) + event({"content": "Hello"})
            + b"".join(event({"content": text}) for text in texts)
            + head + b'"a", "refusal": "no"' + tail
            + event({}, "stop")
            + b"data: [DONE]\n\n")
    read = []
    string = chunks._string
    monkeypatch.setattr(chunks, "_string", lambda data: read.append(data) or string(data))

    def relayed() -> bytes:
        module, fields = SURFACES[api]
        payload = module.parse(orjson.dumps({"model": "alias", **fields}))
        answer = module.TO_CHAT.answer(Route(alias="alias", description="", groups=()), target,
                                       payload, 7)
        adapter = answer.stream(False, 2**20)
        out = b"".join(adapter.feed(body[i:i + 150]) for i in range(0, len(body), 150))
        return _RANDOM.sub(b"_", out + adapter.finish())

    quick = relayed()  # the plain strings written by the C helper, in runs
    assert len(read) == 1 + 4 + 1  # learning the envelope; each text with an escape; the refusal's
    monkeypatch.setattr(chunks, "_events", None)
    read.clear()
    assert quick == relayed()
    assert len(read) == 1 + len(texts) + 1  # without the helper: each text
    monkeypatch.setattr(chunks, "_envelope_of", lambda event, text: None)
    assert quick == relayed()
    assert b'ld \\"quoted\\"\\n' in quick and b'"no"' in quick
