"""Admission: past the node's burst, new streams wait in line for the rate; past the
queue bound they are refused with 503, Retry-After and a JSON error (SSE and the
WebSocket handshake alike), while the queued one gets its stream."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


def admissions(outcome: str) -> float:
    return g.metric("tickwire_gateway_admissions_total", outcome=outcome)


async def test_over_the_queue_bound_is_503_with_retry_after_while_the_queued_get_through(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    # one stream at once, then one every 5 s; one may wait. The refusals below are sent
    # once the queued one is seen waiting, well within its 5 s.
    settings = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics,
        gateway_admission_rate=0.2, gateway_admission_burst=1, gateway_admission_queue=1,
    )  # fmt: skip
    path = "/v1/stream?symbols=AAPL&bars=none"
    before = {o: admissions(o) for o in ("immediate", "queued", "refused")}
    async with (
        g.running_gateway(settings) as url,
        httpx.AsyncClient(base_url=url) as http,
        contextlib.AsyncExitStack() as streams,
    ):
        first = await streams.enter_async_context(g.sse_client(url, path))
        await first.wait_for(1)
        waiting = asyncio.ensure_future(streams.enter_async_context(g.sse_client(url, path)))
        while (
            g.metric("tickwire_gateway_admission_queued") < 1
        ):  # the marker: the second stream waits in line
            assert not waiting.done()
            await asyncio.sleep(0.02)
        refused = await http.get(path)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert "error" in refused.json()
        with pytest.raises(InvalidStatus) as handshake:
            async with connect(url.replace("http", "ws") + "/v1/ws"):
                pass
        assert handshake.value.response.status_code == 503
        assert int(handshake.value.response.headers["retry-after"]) >= 1
        second = await waiting  # admitted at its slot: a normal stream
        assert second.status == 200
        assert [e.event for e in await second.wait_for(1)] == ["snapshot"]
    assert admissions("immediate") == before["immediate"] + 1
    assert admissions("queued") == before["queued"] + 1
    assert admissions("refused") == before["refused"] + 2
