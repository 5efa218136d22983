"""Docs that are generated from code and data must match what they are generated from."""

from __future__ import annotations

import subprocess
import sys

from gateway.config.load import data_dir, load_profiles
from gateway.dialect_table import markdown
from tests.conftest import REPO


def test_dialect_table_matches_the_profiles():
    expected = markdown(load_profiles([data_dir() / "providers"], {}))
    written = (REPO / "docs" / "dialects.md").read_text()
    assert written == expected, (
        "docs/dialects.md is out of date: run `gateway profiles --markdown > docs/dialects.md`")


def columns(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_every_profile_and_parameter_is_in_the_table():
    table = (REPO / "docs" / "dialects.md").read_text()
    lines = table.splitlines()
    profiles = columns(lines[lines.index("## Per profile") + 2])
    assert profiles == ["", "aggregator", "anthropic", "demo", "generalcompute", "model-api",
                        "openai", "vllm"]
    # Chat's parameters, for the profiles that take chat (anthropic takes Messages only).
    header = next(line for line in lines if line.startswith("| parameter |"))
    assert columns(header) == ["parameter", "aggregator", "demo", "generalcompute", "model-api",
                               "openai", "vllm"]
    for param in ("max_tokens", "reasoning_effort", "top_k", "n", "stop", "response_format"):
        assert f"| `{param}` |" in table
    messages = lines.index("## Per parameter: messages")
    assert columns(lines[messages + 4]) == ["parameter", "anthropic", "vllm"]
    assert "| `temperature` | 0…1 (clamped) |" in "\n".join(lines[messages:])
    assert "| headers sent | — | `anthropic-version: 2023-06-01` |" in table


def test_profiles_command_prints_the_table():
    result = subprocess.run([sys.executable, "-m", "gateway", "profiles"], capture_output=True,
                            text=True, timeout=30, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "| `max_tokens` |" in result.stdout and "Api-Key" in result.stdout


def test_every_routing_example_is_accepted_by_gateway_check(tmp_path):
    page = (REPO / "docs" / "routing.md").read_text()
    examples = [block.split("```", 1)[0] for block in page.split("```yaml\n")[1:]]
    assert len(examples) >= 8
    for i, example in enumerate(examples):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(example)
        result = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"example {i}:\n{example}\n{result.stderr}"
