"""POST /v1/chat/completions: what the stages need from a chat request, and how it reaches a target.

Chat is the hub: every target speaks it, so every other client API needs only
a conversion to and from chat, not one per provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from gateway.apis.base import OpenAIErrors, Unspoken
from gateway.apis.chat import adapt, fanout
from gateway.apis.chat.schema import CORE_PARAMS, KNOWN_PARAMS
from gateway.apis.chat.validate import validate_chat
from gateway.core.balance import session_key
from gateway.core.tokens import of_chars
from gateway.core.translate import Rejected, Translation, client_json, translate

if TYPE_CHECKING:
    from gateway.config import Route, Target
    from gateway.config.compiled import Affinity, Dialect

IMAGE_TOKENS = 1000  # what an image in a prompt is reckoned at when reserving
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def estimate_prompt(payload: dict) -> int:
    """Prompt tokens, roughly (gateway/core/tokens.py; a fixed count an image, 4 a message)."""
    chars = images = 0
    for message in payload["messages"]:
        content = message.get("content")
        if type(content) is str:
            chars += len(content)
        elif type(content) is list:
            for part in content:
                if part.get("type") == "text":
                    chars += len(part.get("text") or "")
                else:
                    images += 1
        for call in message.get("tool_calls") or ():
            chars += len(str((call.get("function") or {}).get("arguments") or ""))
    if payload.get("tools"):
        chars += len(client_json(payload["tools"]))
    return of_chars(chars) + images * IMAGE_TOKENS + 4 * len(payload["messages"])


def message_texts(messages: Iterable) -> Iterator[str]:
    """The text of each message, in order (content parts joined): a session's prefix."""
    for message in messages:
        content = message.get("content") if type(message) is dict else None
        if type(content) is list:
            content = "".join(p.get("text") or "" for p in content if type(p) is dict)
        if type(content) is str:
            yield content


class ChatCodec:
    """Chat requests to a target that speaks chat: its dialect's rules, the answer adapted."""

    api = "chat"
    fan_out = staticmethod(fanout.fan_out)

    def translate(self, payload: dict, target: Target, stream: bool) -> Translation:
        out = {"model": target.model, "messages": _messages(payload["messages"], target.dialect)}
        return translate(payload, target.dialect, out, stream, CORE_PARAMS, KNOWN_PARAMS)

    def answer(self, route: Route, target: Target, payload: dict,
               prompt_estimate: int) -> adapt.Answer:
        return adapt.Answer(route, target.dialect, prompt_estimate, payload["model"],
                            target.provider.secrets)


CODEC = ChatCodec()


def translate_converted(chat: dict, dropped: list[str], target: Target, stream: bool,
                        names: dict[str, str]) -> Translation:
    """A request another API converted to `chat` (leaving out `dropped`), translated for the
    target's chat dialect; `names` are chat's names for the client API's parameters, so that
    refusals and the dropped and adjusted headers name what the client sent."""
    try:
        translation = CODEC.translate(chat, target, stream)
    except Rejected as rejection:
        name = names.get(rejection.param or "")
        if name is None:
            raise
        raise Rejected(rejection.message.replace(
            f"Parameter '{rejection.param}'", f"Parameter '{name}' (sent as '{rejection.param}')",
            1), param=name) from None
    translation.dropped = [names.get(n, n) for n in translation.dropped] + dropped
    translation.adjusted = [names.get(n, n) for n in translation.adjusted]
    return translation


class ChatSurface(OpenAIErrors):
    name = "chat"
    paths = ("/v1/chat/completions", "/chat/completions")
    stateful = False  # each request stands alone

    parse = staticmethod(validate_chat)
    prompt_tokens = staticmethod(estimate_prompt)

    def completion_tokens(self, payload: dict, default: int) -> int:
        return ((payload.get("max_completion_tokens") or payload.get("max_tokens") or default)
                * (payload.get("n") or 1))

    def session(self, affinity: Affinity, payload: dict) -> bytes | None:
        return session_key(affinity, payload.get("user"),
                           message_texts(payload.get("messages") or ()))

    def served_by(self, target: Target) -> bool:
        return "chat" in target.provider.profile.apis

    def codec(self, target: Target) -> ChatCodec:
        if "chat" not in target.provider.profile.apis:
            raise Unspoken.of(target, "chat")
        return CODEC

    def messages(self, payload: dict) -> object:
        return payload["messages"]


def _messages(messages: list, dialect: Dialect) -> list:
    """Reasoning sent back in assistant messages, under the name this upstream takes (or none)."""
    wanted = dialect.profile.reasoning_in_messages
    changed = None
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        present = [f for f in _REASONING_FIELDS if f in message]
        if not present or present == [wanted]:
            continue
        text = next((message[f] for f in present if message[f] is not None), None)
        copy = {k: v for k, v in message.items() if k not in _REASONING_FIELDS}
        if wanted is not None and text is not None:
            copy[wanted] = text
        if changed is None:
            changed = list(messages)
        changed[i] = copy
    return messages if changed is None else changed


CHAT = ChatSurface()
