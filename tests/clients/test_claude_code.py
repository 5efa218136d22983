"""Claude Code (`claude`, from @anthropic-ai/claude-code in tests/clients/node), run as its
users run it against the gateway: ANTHROPIC_BASE_URL at the gateway, the gateway's key as
ANTHROPIC_AUTH_TOKEN (or ANTHROPIC_API_KEY), a model id of its own that a `claude-*` wildcard
sends to a chat-only upstream, `claude -p` without a terminal. The gateway converts its
/v1/messages requests to chat completions and the chat stream back.

Each test checks what Claude Code printed, what it sent (a `Recorder` between it and the
gateway keeps every request whole), and what the chat upstream received. Nothing of this
machine is read or written (HOME, CLAUDE_CONFIG_DIR and TMPDIR are the test's), and nothing
leaves loopback: QUIET turns off its telemetry, error reports, update checks and other
traffic of its own, and any connection it still tried would come to the `Refuser`, its
HTTP(S)_PROXY, which lets nothing through and which each test finds unasked.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apis import upstreams
from tests.clients import node_scripts
from tests.clients.proxies import Recorder, Refuser
from tests.gateway_process import GatewayProcess, serving, wait_for
from tests.upstream import Reply, chunk

KEY = "sk-claude-code-team-0123456789"
PROVIDER_KEY = "sk-claude-code-provider-secret-77"
# A model id of Claude Code's own, for the wildcard. Its current ids (the default, `sonnet`,
# `opus`, `haiku`) also send system turns in `messages`: test_its_default_model.
MODEL = "claude-sonnet-4-5-20250929"
# Claude Code's own switches for its traffic to Anthropic (telemetry, error reports, update
# checks, feature flags, its connectivity check): all off, as a gateway's users set them.
QUIET = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
         "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1"}
ASKED = ("POST", "/v1/messages?beta=true")  # how Claude Code asks for a message
# What a chat-completions request may carry: anything else reaching the upstream is a leak.
CHAT_FIELDS = {"model", "messages", "max_tokens", "stream", "stream_options", "tools",
               "tool_choice", "parallel_tool_calls", "user", "temperature", "top_p", "stop",
               "reasoning_effort"}
CHAT_MESSAGE_FIELDS = {"role", "content", "tool_calls", "tool_call_id"}
# Keys of Anthropic's blocks and tools that Claude Code sends and chat has no place for.
ANTHROPIC_KEYS = {"cache_control", "input_schema", "defer_loading", "tool_use_id", "is_error",
                  "budget_tokens", "user_id"}

chat_only, _fresh = upstreams.chat_only, upstreams._fresh
pytestmark = pytest.mark.timeout(300)  # the session's first test may run `npm ci`


@pytest.fixture(scope="module")
def gateway(chat_only, tmp_path_factory) -> Iterator[GatewayProcess]:
    """Every `claude-*` id to the chat-only upstream, as a team routes Claude Code elsewhere."""
    with serving(tmp_path_factory.mktemp("claude-code"), f"""
        providers:
          chat: {{profile: generalcompute, base_url: "{chat_only.url}", api_key: "{PROVIDER_KEY}"}}
        models:
          "claude-*": {{targets: [{{provider: chat, model: glm-4.6}}]}}
        keys:
          team: {{key: "{KEY}"}}
    """) as process:
        yield process


@pytest.fixture(scope="module")
def recorder(gateway) -> Iterator[Recorder]:
    with Recorder(gateway.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def refuser() -> Iterator[Refuser]:
    with Refuser() as proxy:
        yield proxy


@pytest.fixture
def workdir(tmp_path) -> Path:
    """Where Claude Code runs: a folder of the test's own, with one file to read."""
    path = tmp_path / "work"
    path.mkdir()
    (path / "notes.txt").write_text("the secret word is pelican\n")
    return path


@pytest.fixture
def claude(recorder, refuser, workdir, tmp_path):
    """Run `claude -p PROMPT *flags` against the gateway; its output, parsed: the result
    object (`--output-format json`) or the list of events (stream-json)."""
    recorder.requests.clear()
    refuser.asked.clear()
    home = tmp_path / "home"
    (tmp_path / "t").mkdir()  # short: Claude Code puts a unix socket in it (108 bytes at most)
    home.mkdir()
    program = node_scripts.executable("claude")

    def run(prompt: str, *flags: str, auth: str = "ANTHROPIC_AUTH_TOKEN",
            quiet: dict[str, str] = QUIET) -> dict | list[dict]:
        env = {"PATH": os.environ["PATH"], "HOME": str(home),
               "CLAUDE_CONFIG_DIR": str(home / ".claude"), "TMPDIR": str(tmp_path / "t"),
               "ANTHROPIC_BASE_URL": recorder.url, auth: KEY, **quiet,
               "HTTPS_PROXY": refuser.url, "HTTP_PROXY": refuser.url, "NO_PROXY": "127.0.0.1"}
        done = subprocess.run([str(program), "-p", prompt, *flags], cwd=workdir, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, f"claude exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        if "stream-json" in flags:
            return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return json.loads(done.stdout)

    return run


def text_stream(*pieces: str, usage: tuple[int, int]) -> Reply:
    """A chat stream of `pieces` of text, then its usage."""
    prompt, completion = usage
    return Reply(events=[
        chunk({}, {"role": "assistant", "content": ""}),
        *(chunk({}, {"content": piece}) for piece in pieces),
        chunk({}, {}, "stop"),
        {**chunk({}, {}), "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}}])


def tool_call_stream(call_id: str, name: str, arguments: str) -> Reply:
    """A chat stream of one tool call, its arguments in pieces."""
    return Reply(events=[
        chunk({}, {"role": "assistant", "content": ""}),
        chunk({}, {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
        *(chunk({}, {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:i + 8]}}]})
          for i in range(0, len(arguments), 8)),
        chunk({}, {}, "tool_calls")])


def text_of(content: str | list[dict]) -> str:
    """A Messages content's text, as the gateway joins it for chat."""
    return content if isinstance(content, str) else "\n\n".join(
        block["text"] for block in content if block["type"] == "text")


def assert_chat_only(body: dict) -> None:
    """Nothing of Anthropic's reached the chat upstream: no field, no block, no marker."""
    assert set(body) <= CHAT_FIELDS, set(body) - CHAT_FIELDS
    for message in body["messages"]:
        assert set(message) <= CHAT_MESSAGE_FIELDS, message.keys()
        assert message["content"] is None or isinstance(message["content"], str)
    assert not keys_in(body) & ANTHROPIC_KEYS, keys_in(body) & ANTHROPIC_KEYS


def keys_in(value: object) -> set[str]:
    """Every object key anywhere in `value` (not the text of its strings)."""
    if isinstance(value, dict):
        return set(value).union(*(keys_in(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_in(item) for item in value))
    return set()


@pytest.mark.parametrize("auth", ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"])
def test_a_prompt_gets_the_upstreams_answer(claude, recorder, refuser, chat_only, auth):
    chat_only.then(text_stream("Hello from ", "the upstream.", usage=(1234, 5)))

    out = claude("Hello, gateway", "--output-format", "json", "--model", MODEL, auth=auth)

    assert out["type"] == "result" and out["subtype"] == "success" and not out["is_error"]
    assert out["result"] == "Hello from the upstream."
    assert (out["usage"]["input_tokens"], out["usage"]["output_tokens"]) == (1234, 5)
    assert list(out["modelUsage"]) == [MODEL]
    [asked] = recorder.requests
    assert (asked.method, asked.path) == ASKED
    if auth == "ANTHROPIC_API_KEY":
        assert asked.headers["x-api-key"] == KEY and "authorization" not in asked.headers
    else:
        assert asked.headers["authorization"] == f"Bearer {KEY}"
    assert asked.headers["anthropic-version"] == "2023-06-01"
    sent = asked.json
    assert sent["model"] == MODEL and sent["stream"] is True
    # What Claude Code sends that chat has no field for, as this release sends it.
    assert set(sent) - CHAT_FIELDS == {"system", "thinking", "context_management", "metadata"}
    assert len(sent["tools"]) >= 10 and "Read" in [tool["name"] for tool in sent["tools"]]

    [received] = chat_only.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [name for name in received.headers
                if name.startswith(("anthropic", "x-api-key", "x-stainless", "x-claude", "x-app"))]
    body = received.json
    assert_chat_only(body)
    assert (body["model"], body["stream"], body["max_tokens"]) == ("glm-4.6", True,
                                                                   sent["max_tokens"])
    assert body["user"] == sent["metadata"]["user_id"]
    system, user = body["messages"]
    # Its billing header (first, and different with every request) is no instruction: left
    # out, so that an upstream's prompt cache sees the same prefix each time.
    billing, *instructions = sent["system"]
    assert billing["text"].startswith("x-anthropic-billing-header:")
    assert system == {"role": "system", "content": text_of(instructions)}
    assert user == {"role": "user", "content": text_of(sent["messages"][0]["content"])}
    assert user["content"].endswith("Hello, gateway")
    # A tool Anthropic keeps from the model until its tool search finds it is left out too.
    assert any(tool.get("defer_loading") for tool in sent["tools"])
    assert body["tools"] == [{"type": "function", "function": {
        "name": tool["name"], "description": tool["description"],
        "parameters": tool["input_schema"]}} for tool in sent["tools"]
        if not tool.get("defer_loading")]
    assert refuser.asked == []


def test_a_tool_round_trip_reads_a_file(claude, recorder, refuser, chat_only, workdir):
    path = str(workdir / "notes.txt")
    arguments = json.dumps({"file_path": path})
    chat_only.then(tool_call_stream("call_read_1", "Read", arguments))  # then: "the tool said:"

    events = claude("What does notes.txt say?", "--output-format", "stream-json", "--verbose",
                    "--include-partial-messages", "--allowedTools", "Read", "--model", MODEL)

    deltas = [event["event"]["delta"] for event in events if event["type"] == "stream_event"
              and event["event"]["type"] == "content_block_delta"]
    assert "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta") == arguments
    calls = [block for event in events if event["type"] == "assistant"
             for block in event["message"]["content"] if block["type"] == "tool_use"]
    assert calls == [{"type": "tool_use", "id": "call_read_1", "name": "Read",
                      "input": {"file_path": path}}]
    [result] = [block for event in events if event["type"] == "user"
                for block in event["message"]["content"] if block["type"] == "tool_result"]
    assert result["tool_use_id"] == "call_read_1" and not result.get("is_error")
    assert "the secret word is pelican" in result["content"]  # Claude Code read the file
    [end] = [event for event in events if event["type"] == "result"]
    assert end["subtype"] == "success" and not end["is_error"] and end["num_turns"] == 2
    assert end["result"].startswith("the tool said: ")
    assert "the secret word is pelican" in end["result"]

    assert [(r.method, r.path) for r in recorder.requests] == [ASKED, ASKED]
    first, second = (r.json for r in chat_only.requests)
    for body in (first, second):
        assert_chat_only(body)
        assert [t["function"]["name"] for t in body["tools"]] == [
            t["name"] for t in recorder.requests[0].json["tools"] if not t.get("defer_loading")]
    *_, call, answer = second["messages"]
    assert call["role"] == "assistant" and call["content"] is None
    [asked] = call["tool_calls"]
    assert (asked["id"], asked["function"]["name"]) == ("call_read_1", "Read")
    assert json.loads(asked["function"]["arguments"]) == {"file_path": path}
    assert answer["role"] == "tool" and answer["tool_call_id"] == "call_read_1"
    assert "the secret word is pelican" in answer["content"]
    assert not answer["content"].startswith("Error:")
    assert refuser.asked == []


def test_its_default_model(claude, recorder, chat_only):
    """No --model: Claude Code's default, as most of its users run it."""
    chat_only.then(text_stream("Hello from ", "the upstream.", usage=(1234, 5)))

    out = claude("Hello, gateway", "--output-format", "json")

    assert out["result"] == "Hello from the upstream." and not out["is_error"]
    sent = recorder.requests[-1].json
    turns = [text_of(m["content"]) for m in sent["messages"] if m["role"] == "system"]
    assert turns  # the turn the gateway must take
    [received] = chat_only.requests
    assert_chat_only(received.json)
    systems = [m["content"] for m in received.json["messages"] if m["role"] == "system"]
    assert all(any(turn in system for system in systems) for turn in turns)


def test_the_refuser_sees_what_would_leave_loopback(claude, refuser, chat_only):
    """Without QUIET, Claude Code asks Anthropic's API for its own ends: the Refuser is told,
    so its being unasked in the other tests means something."""
    chat_only.then(text_stream("Hello.", usage=(3, 1)))

    out = claude("Hello, gateway", "--output-format", "json", "--model", MODEL, quiet={})

    assert out["result"] == "Hello."
    wait_for(lambda: "CONNECT api.anthropic.com:443 HTTP/1.1" in refuser.asked, 10,
             f"Claude Code to ask the Refuser for api.anthropic.com (it asked {refuser.asked})")
