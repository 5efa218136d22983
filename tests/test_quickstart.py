"""The README's quickstart: `gateway serve` in the repo, on the shipped routes.yaml, answers `demo`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import REPO
from tests.gateway_process import GatewayProcess

DEMO_KEY = "sk-gateway-demo"  # the shipped routes.yaml's quickstart key


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Iterator[GatewayProcess]:
    """Exactly what a new user runs: no --config, from a directory holding the shipped routes.yaml."""
    home = tmp_path_factory.mktemp("quickstart")
    shutil.copy(REPO / "routes.yaml", home / "routes.yaml")
    with GatewayProcess(home / "routes.yaml", cwd=home, pass_config=False) as process:
        yield process


@pytest.fixture
def sdk(quickstart) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=quickstart.url + "/v1", api_key=DEMO_KEY, max_retries=0) as client:
        yield client


def test_demo_answers(sdk):
    answer = sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello there"}])

    text = answer.choices[0].message.content
    assert 'You said: "Hello there"' in text
    assert answer.model == "demo"
    assert answer.usage.completion_tokens > 10
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_demo_is_deterministic_and_streams_the_same_text(sdk):
    messages = [{"role": "user", "content": "Same again"}]
    whole = sdk.chat.completions.create(model="demo", messages=messages)
    chunks = list(sdk.chat.completions.create(model="demo", messages=messages, stream=True,
                                              stream_options={"include_usage": True}))

    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 10


def test_demo_respects_max_tokens(sdk):
    answer = sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=4)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 4


def test_demo_calls_tools_and_speaks_json(sdk):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
    called = sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "look it up"}], tools=tools)
    as_json = sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "json"}],
        response_format={"type": "json_object"})

    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "demo"}
    assert json.loads(as_json.choices[0].message.content)["model"] == "demo"


def test_demo_fills_in_optional_and_untyped_parameters(sdk):
    """OpenAI's strict mode writes an optional parameter's type as a list; a schema may be `true`."""
    tools = [{"type": "function", "function": {"name": "find", "strict": True, "parameters": {
        "type": "object", "properties": {"q": {"type": ["string", "null"]},
                                         "limit": {"type": ["null", "integer"]}, "extra": True},
        "required": ["q", "limit", "extra"], "additionalProperties": False}}}]
    called = sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "find it"}], tools=tools)

    call = called.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"q": "demo", "limit": 1, "extra": "demo"}


def test_demo_key_may_use_only_demo(quickstart):
    response = httpx.post(quickstart.url + "/v1/chat/completions",
                          headers={"Authorization": f"Bearer {DEMO_KEY}"},
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    assert "Models available to this key: demo." in response.json()["error"]["message"]


def test_health_readiness_and_metrics(quickstart, sdk):
    sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "count me"}])

    assert httpx.get(quickstart.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(quickstart.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["store"] == {"kind": "memory", "reachable": True}
    metrics = httpx.get(quickstart.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert ('gateway_requests_total{api="chat",key="demo",model="demo",status="2xx",'
            'target="demo/demo"}'
            in metrics.text)
    assert "gateway_request_duration_seconds_bucket" in metrics.text


def readme_curl_commands() -> list[str]:
    """Every `curl` command in README.md's shell blocks, continuation lines joined."""
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in readme.split("```sh\n")[1:]:
        text = block.split("```", 1)[0].replace("\\\n", " ")
        commands += [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    return commands


def test_the_readme_has_curl_commands():
    commands = readme_curl_commands()
    assert len(commands) >= 2 and all("127.0.0.1:8080" in c for c in commands), commands
    assert any("/v1/completions" in c for c in commands), commands
    assert any("/v1/responses" in c for c in commands), commands


@pytest.mark.parametrize("command", readme_curl_commands())
def test_every_curl_command_in_the_readme_works_as_written(quickstart, command):
    """Run as a new user runs it, in a shell: only the port is the test gateway's."""
    shown = command.replace("127.0.0.1:8080", f"127.0.0.1:{quickstart.port}")
    result = subprocess.run(["bash", "-c", shown], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert '"error":{' not in output.replace(" ", ""), output  # a response's "error" is null
    if "/v1/embeddings" in shown:
        return check_embeddings(shown, json.loads(output))
    if "/v1/completions" in shown:  # legacy completions: the demo answers by conversion
        answer = json.loads(output)
        assert answer["object"] == "text_completion" and answer["model"] == "demo"
        text = answer["choices"][0]["text"]
    elif "/v1/messages" in shown:  # Anthropic's Messages API: the demo answers by conversion
        answer = json.loads(output)
        assert answer["type"] == "message" and answer["stop_reason"] == "end_turn"
        text = answer["content"][0]["text"]
    elif "/v1/responses" in shown:  # the Responses API: the demo answers by conversion
        answer = json.loads(output)
        assert answer["object"] == "response" and answer["status"] == "completed"
        text = answer["output"][0]["content"][0]["text"]
    elif " -N " in shown or '"stream": true' in shown:
        events = [line[6:] for line in output.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e)["choices"])
    else:
        text = json.loads(output)["choices"][0]["message"]["content"]
    assert 'You said: "Hello!"' in text


def readme_python_blocks() -> list[str]:
    """Every Python block of README.md that talks to the quickstart gateway."""
    readme = (REPO / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    return [block for block in blocks if "127.0.0.1:8080" in block]


def test_the_readme_shows_the_openai_and_the_anthropic_sdk():
    blocks = readme_python_blocks()
    assert any("from openai import OpenAI" in b for b in blocks)
    assert any("import anthropic" in b for b in blocks)


@pytest.mark.parametrize("block", readme_python_blocks(),
                         ids=lambda block: block.split("\n", 1)[0])
def test_every_python_block_in_the_readme_runs_as_written(quickstart, block):
    """Run with this environment's Python (the SDKs are test dependencies): only the port is
    the test gateway's."""
    shown = block.replace("127.0.0.1:8080", f"127.0.0.1:{quickstart.port}")
    result = subprocess.run([sys.executable, "-c", shown], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('You said: "Hello!"') >= 2, result.stdout  # whole, and streamed


def check_embeddings(command: str, answer: dict) -> None:
    """The demo's answer to an embeddings curl: a unit vector of 256 numbers for each input."""
    sent = json.loads(command.split("-d '", 1)[1].rsplit("'", 1)[0])
    inputs = sent["input"] if isinstance(sent["input"], list) else [sent["input"]]
    assert answer["object"] == "list" and answer["model"] == "demo"
    assert [d["index"] for d in answer["data"]] == list(range(len(inputs)))
    vectors = [d["embedding"] for d in answer["data"]]
    for vector in vectors:
        assert len(vector) == sent.get("dimensions", 256)
        assert abs(sum(v * v for v in vector) - 1) < 1e-5
    assert len({tuple(v) for v in vectors}) == len(set(inputs))  # different texts, different vectors
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0


def test_the_demo_embeds_with_the_sdk(sdk):
    first = sdk.embeddings.create(model="demo", input=["Hello!", "Goodbye!"])
    again = sdk.embeddings.create(model="demo", input="Hello!", dimensions=8)

    assert [len(d.embedding) for d in first.data] == [256, 256]
    assert first.data[0].embedding != first.data[1].embedding
    assert len(again.data[0].embedding) == 8 and first.usage.prompt_tokens == 4
