"""Anthropic Messages request bodies shaped like the ones Claude Code sends, for conversion tests.

Each `corpus/NN-what-it-shows.json` is one whole `POST /v1/messages` body. Their shapes come from
requests people captured from Claude Code and posted publicly (a logging proxy's dump of 0.2.x
traffic, the 2.1.x system blocks and tool set that relay projects copy to pass as Claude Code), from
gateway and proxy issues about what new Claude Code releases started sending (LiteLLM #22963
`output_config`, #29282 adaptive thinking, CLIProxyAPI #4784 `context_management`, claude-code-hub
#939 the JSON `metadata.user_id`, the WebSearch tool's forced `web_search_20250305` call), and from
Anthropic's Messages API reference for what Claude Code itself rarely sends (`tool_choice` any/none,
`top_p`, `top_k`, `stop_sequences`). Each file names its sources in `_source`. The text, ids,
signatures and tool descriptions are ours; the images and PDF are tiny but valid.

Files hold keys that are not part of the body, all starting with "_": `_about` (what the request
shows), `_source` (where its shape comes from) and `_headers` (the headers Claude Code sends with
it, e.g. `anthropic-beta`). `load()` drops them; `headers()` returns `_headers`.

Shared parts are kept once: a top-level value written `"@tools-2.0.json"` is replaced by that
file's value of the same key (its `tools`, its `system`), and inside a top-level list such an
element is spliced in, so `"tools": ["@tools-2.1.json", {...an MCP tool...}]` is the built-in set
plus one more.
"""

from __future__ import annotations

import json
import re
from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"
REQUEST = re.compile(r"\d\d-[a-z0-9-]+\.json")
REFERENCE = re.compile(r"@([a-z0-9.-]+\.json)")


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name).read_text())


def _reference(value: Any) -> str | None:
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match[1] if match else None


def _resolve(key: str, value: Any) -> Any:
    if (shared := _reference(value)) is not None:
        return _read(shared)[key]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if (shared := _reference(item)) is not None:
                out.extend(_read(shared)[key])
            else:
                out.append(item)
        return out
    return value


def names() -> list[str]:
    return sorted(path.name for path in CORPUS.iterdir() if REQUEST.fullmatch(path.name))


def load() -> list[tuple[str, dict[str, Any]]]:
    """(file name, body) for every request, in order; each body is a fresh copy the caller may change."""
    return [(name, {key: deepcopy(_resolve(key, value))
                    for key, value in _read(name).items() if not key.startswith("_")})
            for name in names()]


def headers() -> dict[str, dict[str, str]]:
    """The headers each request was sent with, by file name."""
    return {name: dict(_read(name).get("_headers", {})) for name in names()}


# The top-level fields issue 21 lists; any other is one a chat upstream does not know.
ISSUE_FIELDS = frozenset({"model", "system", "messages", "tools", "tool_choice", "max_tokens",
                          "stop_sequences", "temperature", "top_p", "top_k", "metadata", "thinking",
                          "stream"})


def blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content blocks; string content reads as one text block."""
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def features(body: dict[str, Any]) -> set[str]:
    """What a body shows, so tests can pick requests by it: e.g. a chat-only target must refuse
    every body with "document" or "server_tool", and name the fields in "unknown_field:<name>"."""
    found = {f"unknown_field:{key}" for key in body.keys() - ISSUE_FIELDS}
    system = body.get("system")
    if isinstance(system, str):
        found.add("system_string")
    elif system and any("cache_control" in block for block in system):
        found.add("system_cache_control")
        if any("ttl" in block.get("cache_control", {}) for block in system):
            found.add("cache_control_ttl")
    tools = body.get("tools", [])
    if sum("input_schema" in tool for tool in tools) >= 10:
        found.add("ten_tools")
    if any("input_schema" not in tool for tool in tools):
        found.add("server_tool")
    if choice := body.get("tool_choice"):
        found.add(f"tool_choice_{choice['type']}")
        if choice.get("disable_parallel_tool_use"):
            found.add("disable_parallel_tool_use")
    if thinking := body.get("thinking"):
        found.add(f"thinking_{thinking['type']}")
    if body.get("metadata", {}).get("user_id"):
        found.add("metadata_user_id")
    found.update(field for field in ("stop_sequences", "temperature", "top_p", "top_k") if field in body)
    found.add("stream" if body.get("stream") else "not_streamed")
    last = body["messages"][-1]
    if last["role"] == "user" and "cache_control" in blocks(last)[-1]:
        found.add("last_user_cache_control")
    for message in body["messages"]:
        if isinstance(message["content"], str):
            found.add("string_content")
        content = blocks(message)
        if sum(block["type"] == "tool_use" for block in content) > 1:
            found.add("parallel_tool_use")
        for block in content:
            found.add(block["type"])
            if block["type"] == "tool_result":
                result = block.get("content")
                found.add("tool_result_string" if isinstance(result, str) else "tool_result_blocks")
                if block.get("is_error"):
                    found.add("tool_result_error")
                if isinstance(result, list):
                    found.update(f"{part['type']}_in_tool_result" for part in result)
    return found
