"""The log: one line per request, and nothing a client pasted that looks like a secret."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.core.echo import MASK, echo
from tests.conftest import TEAM_KEY, assert_openai_error, auth
from tests.gateway_process import wait_for

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


def lines_of(gateway, request_id: str) -> list[dict]:
    return [json.loads(line) for line in gateway.log().splitlines()
            if line.startswith("{") and request_id in line]


def test_each_request_writes_exactly_one_line(gateway, http):
    ids = [f"one-line-{i}" for i in range(3)]
    for request_id in ids:
        answer = http.post(CHAT, headers={**auth(), "x-request-id": request_id},
                           json={"model": "gpt-test", "messages": HELLO})
        assert answer.status_code == 200
    models = http.get("/v1/models", headers={**auth(), "x-request-id": "one-line-models"})
    assert models.status_code == 200

    wait_for(lambda: lines_of(gateway, "one-line-models"), 5, "the last request's line")
    for request_id in ids:
        (line,) = lines_of(gateway, request_id)
        assert line["logger"] == "gateway" and line["status"] == 200 and line["model"] == "gpt-test"
    (line,) = lines_of(gateway, "one-line-models")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/models", 200)
    assert "uvicorn.access" not in gateway.log()


@pytest.mark.parametrize("pasted", [
    "sk-proj-Abc123def456ghi789jkl012mno345pqr",  # a key pasted into the model field
    "Bearer sk-ant-api03-AAAAbbbbCCCCdddd1234",
    "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",  # a bare token
])
def test_a_key_pasted_into_the_model_field_is_never_echoed_or_logged(gateway, http, pasted):
    request_id = f"pasted-{abs(hash(pasted))}"
    answer = http.post(CHAT, headers={**auth(), "x-request-id": request_id},
                       json={"model": pasted, "messages": HELLO})

    error = assert_openai_error(answer, 404, code="model_not_found")
    assert MASK in error["message"]
    line = wait_for(lambda: gateway.request_log(request_id), 5, "the request's line")
    for shown in (answer.text, json.dumps(line), gateway.log()):
        assert pasted.split()[-1][8:] not in shown


def test_a_long_unknown_model_name_is_capped_and_made_printable(gateway, http):
    name = "no-such-model\n" + "x-" * 200
    answer = http.post(CHAT, headers=auth(), json={"model": name, "messages": HELLO})
    message = assert_openai_error(answer, 404)["message"]
    assert "no-such-model?x-x-" in message and "x-" * 40 not in message
    assert "\n" not in message


def test_model_names_are_shown_as_they_are():
    for name in ("gpt-4o-2024-08-06", "meta-llama/Llama-3.3-70B-Instruct",
                 "claude-3-5-sonnet-20241022", "accounts/fireworks/models/llama-v3p1-405b-instruct",
                 "ft:gpt-4o-mini:my-org:custom:9abcXYZ1"):
        assert echo(name) == name
    assert echo(TEAM_KEY) == MASK


def test_request_lines_of_one_turn_go_out_together_and_before_any_later_record(tmp_path):
    """A turn's request lines are one write at its end; a record logged in between (a
    warning) writes them first, so the log keeps its order; and the process's exit writes
    what is left."""
    script = tmp_path / "lines.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from gateway import logs\n"
        "logs.setup_logging('info', 'json')\n"
        "async def main():\n"
        "    logs.log_request({'n': 1})\n"
        "    logs.log_request({'n': 2})\n"
        "    os.write(2, b'MARK\\n')  # straight to stderr: the lines are not out yet\n"
        "    await asyncio.sleep(0)\n"
        "    os.write(2, b'TURN\\n')  # the turn is over: they are\n"
        "    logs.log_request({'n': 3})\n"
        "    logs.log.warning('a warning')  # after line 3, which goes out first\n"
        "    logs.log_request({'n': 4})  # the last: written as the process ends\n"
        "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=True)
    order = [line if not line.startswith("{") else
             json.loads(line).get("n", json.loads(line)["msg"])
             for line in done.stderr.splitlines()]
    assert order == ["MARK", 1, 2, "TURN", 3, "a warning", 4]
