"""A Messages request as a chat-completions request, for a target that speaks only chat.

What is written (then the chat dialect's rules apply, as to any chat request):

- `system` -> a system message first (text blocks joined by blank lines; `cache_control`
  left out: a chat upstream caches prefixes by itself or not at all; Claude Code's
  `x-anthropic-billing-header` block left out, as it changes with every request); a
  `system` turn in `messages` (Claude Code's current models send them) -> a system
  message in its place, any other field of it (a turn's `output_config`) named as dropped.
- user turns: text blocks joined, images as `image_url` parts (base64 as a data: URL);
  each `tool_result` block -> a `tool` message with the same id, before the turn's
  other blocks, its content as text (`is_error` as an `Error:` line first, the only
  way a chat model hears of it).
- assistant turns: text joined, each `tool_use` -> a tool call with the same id and
  its `input` as JSON `arguments`; a `thinking` block the gateway signed -> the
  turn's `reasoning_content` (the chat dialect renames or drops it); a thinking block
  signed by anyone else, and `redacted_thinking`, are left out and named as dropped.
- tools -> chat's function tools, less those with `defer_loading` (Anthropic keeps them from
  the model until its tool search finds them: named as dropped); `tool_choice`
  auto/any/tool/none -> auto/required/the function/none, `disable_parallel_tool_use` ->
  `parallel_tool_calls: false`.
- `output_config.effort` -> `reasoning_effort` (`max` is `xhigh`, chat's most), else
  `thinking` enabled -> `reasoning_effort` by its `budget_tokens` (the floors of
  routes.yaml's `messages.thinking_efforts`, on the dialect); disabled,
  adaptive (the model decides) and between_tools send none. `output_config.format`
  -> `response_format` of type json_schema.
- `max_tokens`, `temperature`, `top_p` as they are; `stop_sequences` -> `stop`;
  `metadata.user_id` -> `user`; `top_k` as an extra, which the dialect passes or drops.

Refused, naming it, whatever the unsupported_params policy, because the answer
would be another without it: server tools (web_search_..., bash_..., and any
other tool with a `type`), and content blocks chat has no place for (document,
search_result, server tool blocks; an image inside a tool_result). Any top-level
field Anthropic's API does not define is left out and named in
x-gateway-dropped-params: Claude Code sends fields of its own, which a chat
upstream would refuse. `service_tier` is too: its values are Anthropic's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.apis.base import unconvertible
from gateway.apis.messages import thinking
from gateway.apis.messages.schema import KNOWN_PARAMS
from gateway.core.translate import client_json

if TYPE_CHECKING:
    from gateway.config.compiled import Dialect

_BILLING_HEADER = "x-anthropic-billing-header:"
# Written below; the rest of Anthropic's parameters have no chat equivalent: dropped, named.
_CONVERTED = frozenset({"model", "messages", "system", "max_tokens", "stream", "tools",
                        "tool_choice", "thinking", "temperature", "top_p", "top_k",
                        "stop_sequences", "metadata", "output_config"})
_SERVER_TOOLS = ("server tools run where Anthropic's API runs; send client tools (a name, a "
                 "description and an input_schema), or route the model to a target that "
                 "speaks Messages")


def chat_request(payload: dict, dialect: Dialect) -> tuple[dict, list[str]]:
    """The chat request for `payload`, and what was left out; Rejected for what would change
    the answer."""
    chat: dict = {"model": payload["model"], "max_tokens": payload["max_tokens"]}
    dropped = [name for name, value in payload.items()
               if name not in _CONVERTED and value is not None]
    for name in ("stream", "temperature", "top_p", "top_k"):
        if payload.get(name) is not None:
            chat[name] = payload[name]
    if payload.get("stop_sequences"):
        chat["stop"] = payload["stop_sequences"]
    user = (payload.get("metadata") or {}).get("user_id")
    if user is not None:
        chat["user"] = user
    chat["messages"] = messages(payload, dialect, dropped)
    tools = payload.get("tools")
    if tools:
        chat["tools"] = [_tool(tool, i, dialect) for i, tool in enumerate(tools)
                         if not tool.get("defer_loading")]
        dropped += (f"tools[{i}]" for i, tool in enumerate(tools) if tool.get("defer_loading"))
    choice = payload.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use") and tools:
            chat["parallel_tool_calls"] = False
    output = payload.get("output_config") or {}
    effort = reasoning_effort(output.get("effort"), payload.get("thinking"),
                              dialect.thinking_efforts)
    if effort is not None:
        chat["reasoning_effort"] = effort
    if output.get("format"):
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": output["format"]["schema"]}}
    return chat, dropped


def reasoning_effort(effort: str | None, setting: dict | None,
                     efforts: tuple[tuple[int, str], ...]) -> str | None:
    """The effort asked for, in chat's words; else the thinking budget's: the effort of the
    highest floor it reaches (routes.yaml's messages.thinking_efforts)."""
    if effort is not None:
        return "xhigh" if effort == "max" else effort
    if not setting or setting["type"] != "enabled":
        return None
    budget = setting["budget_tokens"]
    return next(name for floor, name in efforts if budget >= floor)


def messages(payload: dict, dialect: Dialect, dropped: list[str]) -> list[dict]:
    """The system prompt and the turns as chat messages."""
    out: list[dict] = []
    system = payload.get("system")
    if system:
        out.append({"role": "system", "content": _system_text(system, "system", dialect)})
    for i, message in enumerate(payload["messages"]):
        content, where, role = message["content"], f"messages[{i}]", message["role"]
        dropped += (f"{where}.{key}" for key in message if key not in ("role", "content"))
        if role == "system":
            out.append({"role": "system", "content": _system_text(content, where, dialect)})
        elif type(content) is str:
            out.append({"role": role, "content": content})
        elif role == "user":
            out += _user_turn(content, where, dialect)
        else:
            out.append(_assistant_turn(content, where, dialect, dropped))
    return out


def _system_text(system: str | list, where: str, dialect: Dialect) -> str:
    """Instructions as one text: blocks joined by blank lines, less Claude Code's billing
    header, which is no instruction and differs from one request to the next (it would
    defeat every upstream's prompt cache)."""
    if type(system) is str:
        return system
    texts = []
    for j, block in enumerate(system):
        if block["type"] != "text":
            raise _no_block(block["type"], f"{where}.content[{j}]", dialect)
        if not block["text"].startswith(_BILLING_HEADER):
            texts.append(block["text"])
    return "\n\n".join(texts)


def _user_turn(blocks: list, where: str, dialect: Dialect) -> list[dict]:
    """Tool results first, as chat wants them right after the calls; then the rest."""
    results: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.content[{j}]"
        if kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                            "content": _result_text(block, at, dialect)})
        elif kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at,
                                                                                dialect)}})
        else:
            raise _no_block(kind, at, dialect)
    if not parts:
        return results
    if all(p["type"] == "text" for p in parts):
        return [*results, {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}]
    return [*results, {"role": "user", "content": parts}]


def _assistant_turn(blocks: list, where: str, dialect: Dialect, dropped: list[str]) -> dict:
    texts: list[str] = []
    calls: list[dict] = []
    reasoning: list[str] = []
    for j, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.content[{j}]"
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": client_json(block["input"]).decode()}})
        elif kind == "thinking" and thinking.SIGNER.verify(block["thinking"],
                                                           block.get("signature")):
            reasoning.append(block["thinking"])
        elif kind in ("thinking", "redacted_thinking"):
            dropped.append(at)  # reasoning the gateway did not write: no upstream may see it
        else:
            raise _no_block(kind, at, dialect)
    message: dict = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    return message


def _result_text(block: dict, where: str, dialect: Dialect) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif type(content) is str:
        text = content
    else:
        texts = []
        for k, part in enumerate(content):
            if part["type"] != "text":
                raise unconvertible(dialect, f"Content block type '{part['type']}' in a "
                                    f"tool_result ({where}.content[{k}])", "a chat tool "
                                    "message holds text only", param=f"{where}.content[{k}]")
            texts.append(part["text"])
        text = "\n\n".join(texts)
    return f"Error: {text}" if block.get("is_error") else text


def _image_url(block: dict, where: str, dialect: Dialect) -> str:
    source = block["source"]
    if source["type"] == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source["type"] == "url":
        return source["url"]
    raise unconvertible(dialect, f"Image source type '{source['type']}' ({where})",
                        "a file uploaded to Anthropic cannot be read there; send the image "
                        "as base64 or a URL", param=where + ".source")


def _no_block(kind: str, where: str, dialect: Dialect):
    return unconvertible(dialect, f"Content block type '{kind}' ({where})",
                         "send text, images, tool_use and tool_result blocks", param=where)


def _tool(tool: dict, index: int, dialect: Dialect) -> dict:
    if tool.get("type") not in (None, "custom"):
        raise unconvertible(dialect, f"Tool '{tool['type']}' (tools[{index}])", _SERVER_TOOLS,
                            param=f"tools[{index}]")
    function = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict) -> str | dict:
    kind = choice["type"]
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name") or ""}}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


assert _CONVERTED <= KNOWN_PARAMS | {"model", "messages", "stream", "tools"}
