"""The two loopback upstreams of an API that is passed through or converted to chat.

`native` speaks every API the test upstream knows but Messages, `chat_only` only chat
(its other paths answer 404, so an answer at all shows a request was converted),
`messages_upstream` chat and Messages. An API's
conftest imports these fixtures; every test starts with both fresh.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.upstream import Upstream


@pytest.fixture(scope="session")
def native() -> Iterator[Upstream]:
    upstream = Upstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def chat_only() -> Iterator[Upstream]:
    upstream = Upstream(apis=("chat",)).start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def messages_upstream() -> Iterator[Upstream]:
    """Chat and Anthropic's Messages API (tests/upstream_messages.py), as strict as Anthropic's."""
    upstream = Upstream(apis=("chat", "messages")).start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _fresh(request) -> None:
    for name in ("native", "chat_only", "messages_upstream"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
