"""The Messages codecs in process, on configs compiled as `gateway serve` loads them."""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.messages.surface import MESSAGES, TO_CHAT
from gateway.config import load_config
from tests.profiles import NOWHERE


def target_of(tmp_path, extra: str = ""):
    path = tmp_path / "routes.yaml"
    path.write_text(f"providers:\n  p: {{profile: openai, {NOWHERE}}}\n"
                    f"models:\n  m: {{targets: [{{provider: p, model: up}}]}}\n{extra}")
    return next(load_config(path, {}).routes["m"].attempts())


def effort(target, budget: int) -> str | None:
    payload = MESSAGES.parse(orjson.dumps({
        "model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": budget}}))
    return TO_CHAT.translate(payload, target, stream=False).body.get("reasoning_effort")


@pytest.mark.parametrize("budget, expected", [(1024, "low"), (4095, "low"), (4096, "medium"),
                                              (16383, "medium"), (16384, "high"),
                                              (60000, "high")])
def test_a_thinking_budget_becomes_the_effort_of_the_floor_it_reaches(tmp_path, budget,
                                                                      expected):
    assert effort(target_of(tmp_path), budget) == expected


def test_the_floors_are_routes_yamls(tmp_path):
    target = target_of(tmp_path, "messages:\n  thinking_efforts: {medium: 2000, xhigh: 30000}\n")

    assert [effort(target, b) for b in (1500, 2000, 29999, 30000)] == [
        "low", "medium", "medium", "xhigh"]  # the openai profile takes xhigh
