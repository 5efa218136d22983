"""The Claude Code request corpus is what it says it is: whole, valid Messages bodies covering what issue 21
asks for, so the conversion tests that run over it test those shapes and not broken ones."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib

import pytest

from tests.apis.messages import corpus
from tests.apis.messages.corpus import blocks

BODIES = corpus.load()
TOOL_ID = re.compile(r"toolu_01[A-Za-z0-9]{22}")


def of_type(body: dict, kind: str) -> list[dict]:
    return [block for message in body["messages"] for block in blocks(message) if block["type"] == kind]


def by_name(name: str) -> dict:
    return dict(BODIES)[name]


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_each_body_has_the_required_fields_and_no_comment_keys(name, body):
    assert isinstance(body["model"], str) and body["model"].startswith("claude-")
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert body["messages"] and all(blocks(message) for message in body["messages"])
    assert not [key for key in body if key.startswith("_")]
    assert isinstance(body.get("system", ""), (str, list))


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_roles_alternate_starting_with_user(name, body):
    roles = [message["role"] for message in body["messages"]]
    assert roles == ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    assert roles[-1] == "user"


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_every_tool_result_answers_a_tool_use_of_the_turn_before(name, body):
    messages = body["messages"]
    for i, message in enumerate(messages):
        results = [block for block in blocks(message) if block["type"] == "tool_result"]
        asked = [block["id"] for block in blocks(messages[i - 1]) if block["type"] == "tool_use"] if i else []
        assert [block["tool_use_id"] for block in results] == asked[:len(results)]
        if message["role"] == "user" and asked:
            assert len(results) == len(asked), "every tool_use is answered in the next turn"
            assert blocks(message)[:len(results)] == results, "tool_result blocks come first"


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_tool_uses_have_unique_ids_and_name_a_declared_tool(name, body):
    uses = of_type(body, "tool_use")
    declared = {tool["name"] for tool in body.get("tools", [])}
    assert all(TOOL_ID.fullmatch(use["id"]) for use in uses)
    assert len({use["id"] for use in uses}) == len(uses)
    assert {use["name"] for use in uses} <= declared
    assert all(isinstance(use["input"], dict) for use in uses)


@pytest.mark.parametrize("shared", ["tools-2.0.json", "tools-2.1.json"])
def test_shared_tool_sets_are_ten_or_more_tools_with_json_schemas(shared):
    tools = json.loads((corpus.CORPUS / shared).read_text())["tools"]
    assert len(tools) >= 10
    assert len({tool["name"] for tool in tools}) == len(tools)
    for tool in tools:
        schema = tool["input_schema"]
        assert tool["description"] and schema["type"] == "object" and isinstance(schema["properties"], dict)
        assert "additionalProperties" in schema
        assert schema["$schema"].startswith(("http://json-schema.org/draft-07/",
                                             "https://json-schema.org/draft/2020-12/"))
        assert set(schema.get("required", [])) <= set(schema["properties"])


def test_every_shared_file_is_used_and_references_are_spliced():
    raw = {path.name: path.read_text() for path in corpus.CORPUS.glob("*.json")}
    shared = set(raw) - set(corpus.names())
    assert shared == {"tools-2.0.json", "tools-2.1.json", "system-2.0.json", "system-2.1.json"}
    assert all(any(f'"@{name}"' in text for text in raw.values()) for name in shared)
    built_in = json.loads(raw["tools-2.1.json"])["tools"]
    tools = by_name("06-adaptive-thinking-output-config-context-management.json")["tools"]
    assert tools[:-1] == built_in and tools[-1]["name"].startswith("mcp__")
    assert all(not isinstance(body.get(key), str) or not body[key].startswith("@")
               for _, body in BODIES for key in ("system", "tools"))


def test_each_file_says_what_it_shows_and_where_its_shape_comes_from():
    for name in corpus.names():
        raw = json.loads((corpus.CORPUS / name).read_text())
        assert raw["_about"] and raw["_source"]
        assert all(url.startswith("https://") for url in raw["_source"])
        assert corpus.headers()[name]["anthropic-version"] == "2023-06-01"


def test_loaded_bodies_are_fresh_copies():
    first = corpus.load()[0][1]
    first["tools"].clear()
    first["system"][0]["text"] = "changed"
    again = corpus.load()[0][1]
    assert len(again["tools"]) >= 10 and again["system"][0]["text"] != "changed"


def media(body: dict) -> list[dict]:
    """Image and document blocks, in user turns and inside tool_result content."""
    found = []
    for block in (block for message in body["messages"] for block in blocks(message)):
        nested = block["type"] == "tool_result" and isinstance(block["content"], list)
        parts = block["content"] if nested else [block]
        found += [part for part in parts if part["type"] in ("image", "document")]
    return found


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG whose signature and every chunk CRC are right."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, payload = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + payload)
        kinds.append(kind)
        at += 12 + length
    return kinds


def test_image_and_document_blocks_carry_valid_base64_files():
    sources = [block["source"] for _, body in BODIES for block in media(body)]
    assert {source["media_type"] for source in sources} == {"image/png", "application/pdf"}
    for source in sources:
        data = base64.b64decode(source["data"], validate=True)
        assert source["type"] == "base64"
        if source["media_type"] == "image/png":
            kinds = png_chunks(data)
            assert kinds[0] == b"IHDR" and b"IDAT" in kinds and kinds[-1] == b"IEND"
        else:
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            xref = int(data.rsplit(b"startxref", 1)[1].split()[0])
            assert data[xref:xref + 4] == b"xref"


def test_thinking_history_is_signed_and_within_budget():
    for _, body in BODIES:
        for block in of_type(body, "thinking"):
            assert block["thinking"].strip() and base64.b64decode(block["signature"], validate=True)
        for block in of_type(body, "redacted_thinking"):
            assert base64.b64decode(block["data"], validate=True)
        thinking = body.get("thinking", {})
        if thinking.get("type") == "enabled":
            assert 1024 <= thinking["budget_tokens"] < body["max_tokens"]


COVERAGE = {
    "system_cache_control", "system_string", "cache_control_ttl", "last_user_cache_control", "ten_tools",
    "tool_use", "parallel_tool_use", "tool_result_string", "tool_result_blocks", "tool_result_error",
    "thinking_enabled", "thinking_disabled", "thinking", "redacted_thinking", "metadata_user_id",
    "unknown_field:context_management", "unknown_field:output_config", "image", "image_in_tool_result",
    "document", "server_tool", "tool_choice_auto", "tool_choice_any", "tool_choice_tool", "tool_choice_none",
    "disable_parallel_tool_use", "stop_sequences", "temperature", "top_p", "top_k", "stream", "not_streamed",
    "string_content",
}


def test_the_corpus_covers_every_shape_issue_21_names():
    seen = set().union(*(corpus.features(body) for _, body in BODIES))
    assert COVERAGE - seen == set()
    assert sum("stream" in corpus.features(body) for _, body in BODIES) > len(BODIES) / 2
