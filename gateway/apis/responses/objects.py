"""The pieces of a Responses answer: the response object, its output items, usage both ways.

Shared by the conversion from chat (whole and streamed) and by the passthrough,
so every response a client gets has the same envelope: OpenAI's fields, the
request's own settings echoed back as OpenAI echoes them, the alias as `model`.
"""

from __future__ import annotations

import random
import time

# What OpenAI returns when the request leaves them unset.
_DEFAULT_FORMAT = {"type": "text"}


def new_id(prefix: str) -> str:
    """An id as OpenAI writes them (`resp_`, `msg_`, `fc_`, `rs_` and 48 hex digits). Unique,
    not secret (a stored response is found only with its own key's): no system call, as
    gateway/core/accept.py's request ids."""
    return f"{prefix}{random.getrandbits(192):048x}"


def echoed(payload: dict) -> dict:
    """The request's settings as a response object repeats them (computed once an attempt)."""
    reasoning = payload.get("reasoning") or {}
    text = payload.get("text") or {}
    return {
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "max_tool_calls": payload.get("max_tool_calls"),
        "parallel_tool_calls": payload.get("parallel_tool_calls") is not False,
        "previous_response_id": payload.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": payload.get("store") is not False,
        "temperature": payload.get("temperature"),
        "text": {**text, "format": text.get("format") or _DEFAULT_FORMAT},
        "tool_choice": payload.get("tool_choice") or "auto",
        "tools": payload.get("tools") or [],
        "top_p": payload.get("top_p"),
        "truncation": payload.get("truncation") or "disabled",
        "user": payload.get("user"),
        "metadata": payload.get("metadata") or {},
    }


def response(response_id: str, created_at: int, alias: str, echo: dict, status: str,
             output: list, usage: dict | None = None, incomplete: str | None = None,
             error: dict | None = None) -> dict:
    """A response object, in OpenAI's field order."""
    return {"id": response_id, "object": "response", "created_at": created_at, "status": status,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete is not None else None,
            "model": alias, "output": output, **echo, "usage": usage}


def failed(error_code: str | None, message: str) -> dict:
    """A response's `error` when it failed."""
    return {"code": error_code or "server_error", "message": message}


def now() -> int:
    return int(time.time())


# A chat finish reason -> the response's status and why it is incomplete.
_STATUS = {"length": ("incomplete", "max_output_tokens"),
           "content_filter": ("incomplete", "content_filter")}


def status_of(finish_reason: object) -> tuple[str, str | None]:
    return _STATUS.get(finish_reason, ("completed", None))  # type: ignore[call-overload]


def message_item(item_id: str, text: str, status: str = "completed",
                 refusal: str | None = None) -> dict:
    content = [output_text(text)] if text or not refusal else []
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}


def output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": []}


def reasoning_item(item_id: str, text: str) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [summary_text(text)]}


def summary_text(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str = "completed") -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}


def _count(value: object) -> int:
    return value if type(value) is int else 0


def _detail(usage: dict, field: str, key: str) -> int:
    details = usage.get(field)
    return _count(details.get(key)) if type(details) is dict else 0


def from_chat_usage(usage: dict) -> dict:
    """A chat usage (the upstream's, or the gateway's estimate) in Responses' words."""
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    out = {"input_tokens": prompt,
           "input_tokens_details": {"cached_tokens": _detail(usage, "prompt_tokens_details",
                                                             "cached_tokens")},
           "output_tokens": completion,
           "output_tokens_details": {"reasoning_tokens": _detail(
               usage, "completion_tokens_details", "reasoning_tokens")},
           "total_tokens": _count(usage.get("total_tokens")) or prompt + completion}
    if usage.get("estimated"):
        out["estimated"] = True
    return out


def to_chat_usage(usage: dict) -> dict:
    """A Responses usage in chat's words, which settle reads (gateway/core/account.py); the
    counts the upstream did not give stay out, so the gateway's estimate stands for them."""
    out: dict = {}
    for key, chat_key in (("input_tokens", "prompt_tokens"), ("output_tokens",
                                                              "completion_tokens"),
                          ("total_tokens", "total_tokens")):
        if type(usage.get(key)) is int:
            out[chat_key] = usage[key]
    out["prompt_tokens_details"] = {"cached_tokens": _detail(usage, "input_tokens_details",
                                                             "cached_tokens")}
    out["completion_tokens_details"] = {"reasoning_tokens": _detail(
        usage, "output_tokens_details", "reasoning_tokens")}
    return out
