"""What the fuzz tests share: how many examples, a gateway to fuzz, any JSON, the answer's check.

Examples per test come from GATEWAY_FUZZ_EXAMPLES (default 30);
`GATEWAY_FUZZ_EXAMPLES=2000` is the long run.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.gateway_process import GatewayProcess, serving, upstream_running

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "30"))
TIMEOUT = pytest.mark.timeout(max(120, EXAMPLES))  # a long run takes its time
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)



def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth


# JSON arrays or objects nested up to 50,000 deep (the text, to put into a body).
deep_json = st.builds(_nested, st.integers(min_value=1, max_value=50_000), st.sampled_from("[{"))


@contextlib.contextmanager
def fuzzed_gateway(directory: Path, max_body: str, config: str,
                   env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    """A gateway on `config` (YAML; `{upstream}` is a loopback upstream's URL) with a body cap
    and a breaker that never opens: a fuzzer's failures must not change later answers."""
    with upstream_running() as upstream, serving(directory, (
            f"server: {{max_body_bytes: {max_body}}}\n"
            "routing: {breaker: {failures: 1000000}}\n"
            + textwrap.dedent(config).replace("{upstream}", upstream.url)), env) as process:
        yield process


def answered(response: httpx.Response, started: float) -> dict | None:
    """Check the property every fuzzed request shares: answered within seconds, 200 or an
    OpenAI-shaped 4xx. The JSON of a 200; None for an error or a stream."""
    assert time.monotonic() - started < 10
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
        return None
    answer = response.json()
    if response.status_code == 200:
        return answer
    assert set(answer) == {"error"} and answer["error"]["message"], answer
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    return None
