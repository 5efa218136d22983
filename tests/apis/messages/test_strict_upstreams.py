"""Claude Code's requests through a real gateway to strict chat upstreams, one per seed profile.

Each upstream refuses, as a strict OpenAI-style server does, any top-level field
its profile does not take and any message field chat does not define; the
gateway must reach every one of them with every request of the corpus that chat
can carry (the rest are the gateway's 400, naming what chat cannot take).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.apis.messages import corpus
from tests.gateway_process import GatewayProcess, serving
from tests.profiles import PROFILES
from tests.upstream import Upstream, _refused, natural_completion, natural_stream

SEEDS = ("generalcompute", "model-api", "aggregator")
KEY = "sk-messages-strict-0123456789"
CHAT_CORE = {"model", "messages", "stream", "stream_options", "tools"}
MESSAGE_FIELDS = {"role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content",
                  "reasoning"}
BODIES = corpus.load()


class StrictChat(Upstream):
    """A chat-only upstream that refuses what its profile does not take."""

    def __init__(self, profile: str) -> None:
        super().__init__(apis=("chat",))
        rules = PROFILES[profile].rules
        self.takes = CHAT_CORE | {name for name, rule in rules.items() if rule.supported}

    async def _chat(self, request):
        return await self._answer(request, natural_stream, natural_completion, check=self._check)

    def _check(self, payload: dict):
        for name in payload:
            if name not in self.takes:
                return _refused(f"Unrecognized request argument supplied: {name}", name)
        for i, message in enumerate(payload.get("messages") or ()):
            for name in message:
                if name not in MESSAGE_FIELDS:
                    return _refused(f"Unrecognized field messages[{i}].{name}",
                                    f"messages[{i}].{name}")
        return None


@pytest.fixture(scope="module")
def stricts() -> Iterator[dict[str, StrictChat]]:
    upstreams = {profile: StrictChat(profile).start() for profile in SEEDS}
    yield upstreams
    for upstream in upstreams.values():
        upstream.stop()


@pytest.fixture(scope="module")
def gateway(stricts, tmp_path_factory) -> Iterator[GatewayProcess]:
    providers = "".join(f'  {p}: {{profile: {p}, base_url: "{u.url}"}}\n'
                        for p, u in stricts.items())
    models = "".join(f"  {p}: {{targets: [{{provider: {p}, model: m}}]}}\n" for p in stricts)
    with serving(tmp_path_factory.mktemp("strict"),
                 f"providers:\n{providers}models:\n{models}keys:\n  team: {{key: {KEY}}}\n",
                 {}) as process:
        yield process


@pytest.mark.parametrize("profile", SEEDS)
def test_every_corpus_request_reaches_a_strict_upstream_or_is_refused_by_name(gateway, stricts,
                                                                              profile):
    unconvertible = {"document", "server_tool", "image_in_tool_result"}
    with httpx.Client(base_url=gateway.url, timeout=30,
                      headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as http:
        for name, body in BODIES:
            before = len(stricts[profile].requests)
            response = http.post("/v1/messages", json={**body, "model": profile})
            if corpus.features(body) & unconvertible:
                assert response.status_code == 400, (name, response.text)
                assert response.json()["error"]["type"] == "invalid_request_error"
                assert len(stricts[profile].requests) == before  # refused before sending
                continue
            assert response.status_code == 200, (name, response.text)
            assert len(stricts[profile].requests) == before + 1
            if body.get("stream"):
                assert "event: message_stop" in response.text, (name, response.text[-300:])
            else:
                assert response.json()["type"] == "message"
