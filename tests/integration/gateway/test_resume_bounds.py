"""Resumes that fall back to a Kafka replay are bounded like `since=` replays: they share
the instance's GATEWAY_MAX_REPLAYS slots (503 + Retry-After, or a WebSocket error,
before anything changes) and what one may read and hold (beyond: a reset)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


def resumes(outcome: str) -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_resumes_total", {"outcome": outcome}) or 0


async def old_cursor(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, missed: list[g.Record]
) -> str:
    """The id of AAPL's snapshot at version 1 (one partition), from a gateway that read
    it; the `missed` records are produced after it."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL&bars=none") as client,
    ):
        (snapshot,) = await client.wait_for(1)
        assert (snapshot.event, snapshot.json()["version"]) == ("snapshot", 1)
    await produce(kafka_bootstrap, topics.updates, missed)
    return snapshot.id


def small_buffers(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, **extra: Any
) -> Any:
    """A gateway whose buffers hold 2 records: resuming the old cursor reads Kafka."""
    return g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, gateway_buffer_per_partition=2, **extra
    )


async def test_kafka_resumes_share_the_replay_slots(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    missed = [g.update_record("AAPL", v) for v in range(2, 12)]
    cursor = await old_cursor(kafka_bootstrap, mongodb_url, db_name, topics, missed)
    small = small_buffers(kafka_bootstrap, mongodb_url, db_name, topics, gateway_max_replays=1)
    path = "/v1/stream?symbols=AAPL&bars=none"
    async with g.serving_gateway(small) as (url, runtime):
        held = runtime.replays.claim()  # the one slot, as a replay in progress holds it
        held.take()
        async with httpx.AsyncClient(base_url=url) as http:
            busy = await http.get(path, headers={"Last-Event-ID": cursor})
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["code"] == "replays_busy"
            # a resume its buffer serves needs no slot
            async with g.sse_client(url, path) as fresh:
                (snapshot,) = await fresh.wait_for(1)
            async with g.sse_client(url, path, headers={"Last-Event-ID": snapshot.id}) as buffered:
                await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 12)])
                await g.until_quotes(buffered, {"AAPL": 12})
                assert buffered.quotes() == [("quote", "AAPL", 12)]
        async with connect(url.replace("http", "ws") + "/v1/ws") as ws:
            events: list[dict[str, Any]] = []
            subscribe = {"type": "subscribe", "symbols": ["AAPL"], "bars": [], "cursor": cursor}
            await ws.send(orjson.dumps(subscribe).decode())
            events.extend(orjson.loads(await ws.recv()))
            assert events == [
                {
                    "event": "error",
                    "data": {
                        "status": 503,
                        "message": "1 replays are in progress here; retry shortly",
                        "code": "replays_busy",
                        "retry_after": 1,
                    },
                }
            ]
            held.release()
            before = resumes("kafka")
            await ws.send(orjson.dumps(subscribe).decode())
            while not any(e["event"] == "subscribed" for e in events):
                events.extend(orjson.loads(await ws.recv()))
            assert resumes("kafka") == before + 1
        assert [(e["event"], e["data"]["version"]) for e in events[1:-1]] == [
            ("quote", v) for v in range(2, 13)
        ]
        assert events[-1]["data"]["outcome"] == "kafka"
        assert runtime.replays.active == 0  # given back at the hand-over


@pytest.mark.parametrize(
    "budget",
    [{"gateway_replay_max_bytes": 2048}, {"gateway_replay_max_records": 5}],
    ids=["bytes", "records"],
)
async def test_a_resume_larger_than_its_budget_gets_a_reset(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, budget: dict[str, int]
) -> None:
    # 10 records of ~700 bytes to read from Kafka: over both budgets
    missed = [g.update_record("AAPL", v, pad=400) for v in range(2, 12)]
    cursor = await old_cursor(kafka_bootstrap, mongodb_url, db_name, topics, missed)
    small = small_buffers(kafka_bootstrap, mongodb_url, db_name, topics, **budget)
    before = resumes("reset")
    async with (
        g.serving_gateway(small) as (url, runtime),
        g.sse_client(
            url, "/v1/stream?symbols=AAPL&bars=none", headers={"Last-Event-ID": cursor}
        ) as client,
    ):
        # the reset and its snapshot first: a record produced while the resume is still
        # reading Kafka would be in the snapshot instead of following it
        await client.wait_for(2)
        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 12)])
        await g.until_quotes(client, {"AAPL": 12})
        assert client.events[0].event == "reset"
        assert client.quotes() == [("snapshot", "AAPL", 11), ("quote", "AAPL", 12)]
        assert runtime.replays.active == 0
    assert resumes("reset") == before + 1
