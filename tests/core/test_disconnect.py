"""A request's work is cancelled when its client leaves: through the Watch that `gateway
serve`'s protocol puts in the scope, or, under another ASGI server, a watcher on `receive`.
(tests/core/test_relay.py checks the whole thing over sockets: the upstream is closed.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway.core.disconnect import EXTENSION, Watch, until_disconnect
from gateway.core.errors import ClientDisconnected


def never_receives():
    async def receive():
        await asyncio.Event().wait()
    return receive


def test_a_lost_connection_cancels_the_work_it_watches():
    async def scenario():
        cycle = SimpleNamespace(response_complete=False)
        watch = Watch(cycle)
        started = asyncio.Event()

        async def work():
            started.set()
            await asyncio.sleep(30)

        running = asyncio.ensure_future(
            until_disconnect({"extensions": {EXTENSION: watch}}, never_receives(), work()))
        await started.wait()
        watch.lost()
        with pytest.raises(ClientDisconnected):
            await running
        assert watch.gone and watch.done

    asyncio.run(scenario())


def test_a_connection_lost_after_the_answer_is_no_loss():
    async def scenario():
        cycle = SimpleNamespace(response_complete=False)
        watch = Watch(cycle)

        async def work():
            cycle.response_complete = True  # the last byte is sent
            watch.lost()  # and the client closes at once
            await asyncio.sleep(0)

        await until_disconnect({"extensions": {EXTENSION: watch}}, never_receives(), work())
        assert not watch.gone and watch.done

    asyncio.run(scenario())


def test_without_the_extension_a_watcher_reads_receive():
    async def scenario():
        left = asyncio.Event()

        async def receive():
            await left.wait()
            return {"type": "http.disconnect"}

        async def work():
            left.set()  # the client leaves while the work runs
            await asyncio.sleep(30)

        with pytest.raises(ClientDisconnected):
            await until_disconnect({}, receive, work())

    asyncio.run(scenario())
