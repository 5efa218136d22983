"""The README's `gateway keys` and `gateway usage` commands, run as written against a gateway
with a master key: each must succeed and print something."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.gateway_process import GatewayProcess, serving, usage_of
from tests.upstream import Upstream

MASTER = "sk-readme-cli-master-0123456789"
CONFIG = """
server: {{watch_config: 0}}
providers:
  up: {{profile: openai, base_url: "{up}", api_key: test}}
models:
  gpt-5.4: {{targets: [{{provider: up, model: gpt-5.4}}]}}
  llama-70b: {{targets: [{{provider: up, model: llama}}]}}
"""


def readme_cli_commands() -> list[str]:
    """Each `gateway keys ...` and `gateway usage ...` line of the README's sh blocks, in order."""
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in readme.split("```sh\n")[1:]:
        text = block.split("```", 1)[0].replace("\\\n", " ")
        for line in text.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith(("gateway keys ", "gateway usage")):
                commands.append(command)
    return commands


@pytest.fixture(scope="module")
def gateway(primary: Upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    with serving(tmp_path_factory.mktemp("readme-cli"), CONFIG.format(up=primary.url),
                 {"GATEWAY_MASTER_KEY": MASTER}) as process:
        yield process


def test_the_readme_shows_the_key_and_usage_commands():
    commands = readme_cli_commands()
    for wanted in ("gateway keys create", "gateway keys revoke", "gateway usage --json",
                   "--sort cost --top 20"):
        assert any(wanted in c for c in commands), (wanted, commands)


def test_every_key_and_usage_command_in_the_readme_works_as_written(gateway):
    """In the README's order: the key is created, used once, shown, changed, revoked, and its
    usage read in each form the README shows."""
    env = {"GATEWAY_URL": gateway.url, "GATEWAY_MASTER_KEY": MASTER, "PATH": ""}
    for command in readme_cli_commands():
        args = shlex.split(command)
        result = subprocess.run([sys.executable, "-m", "gateway", *args[1:]], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.strip(), command
        if args[1:3] == ["keys", "create"]:  # a request of the new key, for the usage lines
            secret = next(w for w in result.stdout.split() if w.startswith("sk-gw-"))
            answer = httpx.post(gateway.url + "/v1/chat/completions", timeout=10,
                                headers={"Authorization": "Bearer " + secret},
                                json={"model": "gpt-5.4",
                                      "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200, answer.text
            usage_of(gateway, args[3], 1)
