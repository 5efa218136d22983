"""A Responses request as a chat-completions request, for a target that speaks only chat.

What is written (then the chat dialect's rules apply, as to any chat request):

- `instructions` -> a system message first; `input` as a string -> one user message.
- items -> messages: a `message` keeps its role (`developer` becomes `system`, which
  every chat upstream takes), its text parts joined, `input_image` parts as
  `image_url` parts; consecutive `function_call` items (and the assistant message
  before them) become one assistant message with `tool_calls`, each `call_id` the
  tool call's id; `function_call_output` -> a `tool` message; a `reasoning` item's
  summary -> the next assistant message's `reasoning_content`, which the chat dialect
  renames or drops.
- function tools -> chat's `{"type": "function", "function": {...}}`, and
  `tool_choice` likewise; `text.format` -> `response_format`; `text.verbosity` ->
  `verbosity`; `reasoning.effort` -> `reasoning_effort`; `max_output_tokens` ->
  `max_completion_tokens` (renamed by the dialect where it takes `max_tokens`).
- `temperature`, `top_p`, `user`, `parallel_tool_calls`, `service_tier`,
  `prompt_cache_key`, `safety_identifier` and any extra the Responses API does not
  define go on under their own names.

What chat cannot say is refused, naming it, whatever the unsupported_params policy,
where leaving it out would answer another question: built-in tools and a
`tool_choice` of one, items other than the four above (built-in tool calls,
`item_reference`), parts other than text and images, an image by `file_id`, and
`prompt` (a template stored at OpenAI). The policy rules (dropped and named, or a
400) on what only changes the answer's extras: `include`, `top_logprobs`,
`truncation: auto`, and chat's own parameters, which the Responses API does not take.
Left out without a word, as they change nothing a chat upstream makes: `metadata` and
`store` (the gateway's), `reasoning.summary` (the reasoning text is the summary),
`max_tool_calls` (it counts built-in tool calls), `stream_options`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.apis.base import unconvertible
from gateway.apis.chat import schema as chat_schema
from gateway.core.translate import Rejected

if TYPE_CHECKING:
    from gateway.config.compiled import Dialect

# Sent to chat under the same name, ruled by the chat dialect.
_SHARED = frozenset({"model", "stream", "temperature", "top_p", "user", "parallel_tool_calls",
                     "service_tier", "prompt_cache_key", "safety_identifier"})
# Ruled by the unsupported_params policy: what leaving out changes is the answer's extras.
_BY_POLICY = ("include", "top_logprobs")
# Refused whenever set: the answer would be another.
_NEVER = {"prompt": "a prompt template is stored at OpenAI"}
# Written here, or left out on purpose (see the module's docstring).
_CONVERTED = frozenset({"input", "instructions", "tools", "tool_choice", "text", "reasoning",
                        "max_output_tokens", "metadata", "store", "previous_response_id",
                        "truncation", "max_tool_calls", "stream_options", "background",
                        "conversation", *_BY_POLICY, *_NEVER})
# The chat parameters written for Responses ones: errors and headers name what the client sent.
CLIENT_NAMES = {"max_completion_tokens": "max_output_tokens", "reasoning_effort": "reasoning.effort",
                "response_format": "text.format", "verbosity": "text.verbosity"}
_BUILT_IN = ("built-in tools run where OpenAI's Responses API runs; send function tools, or "
             "route the model to a target that speaks Responses")


def chat_request(payload: dict, dialect: Dialect) -> tuple[dict, list[str]]:
    """The chat request for `payload`, and the parameters the policy left out; Rejected
    for what would change the answer."""
    dropped: list[str] = []
    chat: dict = {}
    for name, value in payload.items():
        if value is None:
            continue
        if name in _NEVER:
            raise unconvertible(dialect, f"Parameter '{name}'", _NEVER[name], param=name)
        if name in _SHARED or (name not in _CONVERTED and name not in chat_schema.KNOWN_PARAMS):
            chat[name] = value  # extras: the chat dialect's `extras` policy rules on them
        elif name not in _CONVERTED or name in _BY_POLICY:
            if name != "include" or value:
                _unsupported(dialect, name, dropped)
    if payload.get("truncation") == "auto":
        _unsupported(dialect, "truncation", dropped)
    chat["messages"] = messages(payload, dialect)
    if payload.get("tools"):
        chat["tools"] = [_tool(tool, i, dialect) for i, tool in enumerate(payload["tools"])]
    if payload.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(payload["tool_choice"], dialect)
    text = payload.get("text") or {}
    form = text.get("format")
    if form is not None and form["type"] != "text":
        chat["response_format"] = _response_format(form)
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    effort = (payload.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if payload.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = payload["max_output_tokens"]
    return chat, dropped


def _unsupported(dialect: Dialect, name: str, dropped: list[str]) -> None:
    if dialect.unsupported == "reject":
        raise Rejected(f"Parameter '{name}' is not supported for provider '{dialect.provider}' "
                       f"(profile '{dialect.profile.name}'), which speaks chat completions only.",
                       param=name)
    dropped.append(name)


def messages(payload: dict, dialect: Dialect) -> list[dict]:
    """The instructions and the input as chat messages."""
    out: list[dict] = []
    if payload.get("instructions"):
        out.append({"role": "system", "content": payload["instructions"]})
    items = payload["input"]
    if type(items) is str:
        out.append({"role": "user", "content": items})
        return out
    reasoning: str | None = None  # a summary, waiting for the assistant turn it led to
    merge = False  # the last message is an assistant turn that tool calls may join
    for i, item in enumerate(items):
        kind = item.get("type", "message")  # as the schema: only a missing type is a message
        where = f"input[{i}]"
        if kind == "message":
            role = item["role"]
            content = _content(item["content"], where + ".content", dialect)
            message = {"role": "system" if role == "developer" else role, "content": content}
            merge = role == "assistant"
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if merge:
                out[-1]["tool_calls"] = [*out[-1].get("tool_calls", ()), call]
                continue
            message, merge = {"role": "assistant", "content": None, "tool_calls": [call]}, True
        elif kind == "function_call_output":
            output = _content(item["output"], where + ".output", dialect, images=False)
            message, merge = {"role": "tool", "tool_call_id": item["call_id"],
                              "content": output}, False
        elif kind == "reasoning":
            text = "\n\n".join(part["text"] for part in item["summary"])
            reasoning = text if reasoning is None else f"{reasoning}\n\n{text}"
            continue
        else:
            raise unconvertible(dialect, f"Input item type '{kind}' ({where})",
                                "send messages, function calls and their outputs, and "
                                "reasoning as items themselves", param=where + ".type")
        if message["role"] == "assistant" and reasoning is not None:
            message["reasoning_content"], reasoning = reasoning, None
        out.append(message)
    return out


def _content(content: str | list, where: str, dialect: Dialect, images: bool = True):
    """Content parts as chat's: text alone is one string (parts joined by lines, as vLLM
    joins them), with images a list of text and image_url parts."""
    if type(content) is str:
        return content
    parts: list[dict] = []
    for j, part in enumerate(content):
        kind, at = part["type"], f"{where}[{j}]"
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and images:
            parts.append({"type": "image_url", "image_url": _image(part, at, dialect)})
        else:
            raise unconvertible(dialect, f"Content part type '{kind}' ({at})",
                                "send text" + (", and images as image_url" if images else ""),
                                param=at + ".type")
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _image(part: dict, where: str, dialect: Dialect) -> dict:
    if part.get("image_url") is None:
        why = ("a file uploaded to OpenAI cannot be read there" if part.get("file_id")
               else "it has no image_url")
        raise unconvertible(dialect, f"Image {where}", f"{why}; send the image as image_url "
                            "(a URL or a data: URL)", param=where + ".image_url")
    image = {"url": part["image_url"]}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return image


def _tool(tool: dict, index: int, dialect: Dialect) -> dict:
    if tool["type"] != "function":
        raise unconvertible(dialect, f"Tool '{tool['type']}' (tools[{index}])", _BUILT_IN,
                            param=f"tools[{index}]")
    function = {"name": tool["name"]}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict, dialect: Dialect) -> str | dict:
    if isinstance(choice, str):
        return choice
    if choice["type"] == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    raise unconvertible(dialect, f"Tool choice '{choice['type']}'", _BUILT_IN + "; choose "
                        "none, auto, required or a function", param="tool_choice")


def _response_format(form: dict) -> dict:
    if form["type"] != "json_schema":
        return {"type": form["type"]}
    schema: dict = {"name": form["name"], "schema": form["schema"]}
    for key in ("description", "strict"):
        if form.get(key) is not None:
            schema[key] = form[key]
    return {"type": "json_schema", "json_schema": schema}
