"""The pieces of a Messages answer: ids, content blocks, stop reasons, usage in Anthropic's words."""

from __future__ import annotations

import random

import orjson

from gateway.apis.messages import thinking

# A chat finish reason -> Anthropic's stop_reason (a stop sequence is told apart by the caller).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def new_id(prefix: str = "msg_") -> str:
    """Unique, not secret: no system call, as gateway/core/accept.py's request ids."""
    return f"{prefix}{random.getrandbits(96):024x}"


def stop_reason(finish_reason: object, matched: object, stops: list | None) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). `matched` is what the upstream said stopped it (vLLM's
    `stop_reason`): a stop sequence of the request's, or something else."""
    if finish_reason == "stop" and type(matched) is str and stops and matched in stops:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason, "end_turn"), None  # type: ignore[call-overload]


def thinking_block(text: str) -> dict:
    return {"type": "thinking", "thinking": text, "signature": thinking.SIGNER.sign(text)}


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def tool_use_block(call_id: str, name: str, arguments: str) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input(arguments)}


def tool_input(arguments: str) -> dict:
    """A tool call's JSON arguments as the object Anthropic's `input` is; what is not an
    object (a model's broken JSON) is kept whole under `arguments`, not lost."""
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if type(value) is dict else {"arguments": value}


def from_chat_usage(usage: dict) -> dict:
    """Chat's usage in Anthropic's words: `input_tokens` leaves out what was read from a cache,
    which is `cache_read_input_tokens`."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if type(details) is dict else None
    cached = cached if type(cached) is int else 0
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return {"input_tokens": max(0, (prompt if type(prompt) is int else 0) - cached),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
            "output_tokens": completion if type(completion) is int else 0}


def to_chat_usage(usage: dict) -> dict:
    """Anthropic's usage (a native target's) in chat's words, for the usage record."""
    def count(key: str) -> int:
        value = usage.get(key)
        return value if type(value) is int else 0
    prompt = (count("input_tokens") + count("cache_read_input_tokens")
              + count("cache_creation_input_tokens"))
    completion = count("output_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": count("cache_read_input_tokens")}}


def message(message_id: str, alias: str, content: list, reason: str | None,
            sequence: str | None, usage: dict) -> dict:
    return {"id": message_id, "type": "message", "role": "assistant", "model": alias,
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage}
