"""What a client's requests look like when they reach the upstream, read one way for each API,
so that a client test checks its chat-completions model and its Responses model alike: adding
an API to a client test is an entry here and a parameter there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.upstream import Recorded, Reply, completion


@dataclass(frozen=True)
class Wire:
    path: str  # where the upstream receives the API's requests
    tools: Callable[[dict], list[str]]  # the names of the function tools offered
    prompt: Callable[[dict], str]  # the text of the first user turn
    tool_result: Callable[[dict], tuple[str, str] | None]  # (call id, output) sent back, if any
    schema: Callable[[dict], dict]  # the JSON schema the answer must follow (structured output)
    answer: Callable[[str], Reply]  # the upstream's answer of this text, scripted

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
)

WIRES = {"chat": CHAT}
