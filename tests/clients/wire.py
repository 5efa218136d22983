"""What a client's requests look like when they reach the upstream, read one way for each API,
so that a client test checks its chat-completions model and its Responses model alike: adding
an API to a client test is an entry here and a parameter there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.upstream import Recorded, Reply, completion, message_output, response_object


@dataclass(frozen=True)
class Wire:
    path: str  # where the upstream receives the API's requests
    tools: Callable[[dict], list[str]]  # the names of the function tools offered
    prompt: Callable[[dict], str]  # the text of the first user turn
    tool_result: Callable[[dict], tuple[str, str] | None]  # (call id, output) sent back, if any
    schema: Callable[[dict], dict]  # the JSON schema the answer must follow (structured output)
    answer: Callable[[str], Reply]  # the upstream's answer of this text, scripted
    usage: tuple[int, int, int]  # what the upstream reports of a plain answer: in, out, total

    def bodies(self, requests: list[Recorded]) -> list[dict]:
        """The requests' bodies, after checking each came on this API's path."""
        assert [r.path for r in requests] == [self.path] * len(requests), [r.path for r in requests]
        return [r.json for r in requests]


def _chat_tool_result(body: dict) -> tuple[str, str] | None:
    last = body["messages"][-1]
    return (last["tool_call_id"], last["content"]) if last["role"] == "tool" else None


CHAT = Wire(
    path="/v1/chat/completions",
    tools=lambda body: [t["function"]["name"] for t in body.get("tools", [])],
    prompt=lambda body: next(m["content"] for m in body["messages"] if m["role"] == "user"),
    tool_result=_chat_tool_result,
    schema=lambda body: body["response_format"]["json_schema"]["schema"],
    answer=lambda text: Reply(json=completion({"model": "upstream"}, text)),
    usage=(11, 7, 18),
)


def _user_text(body: dict) -> str:
    items = body["input"]
    if isinstance(items, str):
        return items
    content = next(i["content"] for i in items if i.get("role") == "user")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def _responses_tool_result(body: dict) -> tuple[str, str] | None:
    last = body["input"][-1] if isinstance(body["input"], list) else {}
    return (last["call_id"], last["output"]) if last.get("type") == "function_call_output" else None


RESPONSES = Wire(
    path="/v1/responses",
    tools=lambda body: [t["name"] for t in body.get("tools", []) if t.get("type") == "function"],
    prompt=_user_text,
    tool_result=_responses_tool_result,
    schema=lambda body: body["text"]["format"]["schema"],
    answer=lambda text: Reply(json=response_object({"model": "upstream"}, [message_output(text)])),
    usage=(9, 5, 14),
)

# A client test's kinds: the client's API, and how the upstream sees its requests. The Responses
# API to a chat-only target (tests/conftest.py's gpt-converted) reaches the upstream as chat.
WIRES = {"chat": CHAT, "responses": RESPONSES, "responses-converted": CHAT}
# The gateway's model each kind asks for.
MODELS = {"chat": "gpt-test", "responses": "gpt-test", "responses-converted": "gpt-converted"}
