"""A producer's retry with the same ids is safe end to end (a private stack: its broker
is paused, never the shared one's).

The broker is paused (SIGSTOP) while a batch is posted, so ingest answers 503 although
the batch is already in flight; when the broker resumes the batch lands, and the
producer, as the docs tell it, retries the same batch with the same ids until 202, then
once more (a 202 it did not receive). ticks.raw then holds every event more than once;
the processor drops an id it already applied, so the `quotes` documents' trade counts
and volumes equal an independent reference over the distinct ids. The processor is
done when the group's committed offsets reach the topic's end (offsets are committed
only after publish and persistence covering them), not after a sleep."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from tests.helpers import infra
from tests.helpers.faults import paused
from tests.helpers.ingest import now_iso, running_ingest
from tests.helpers.ingest import settings_for as ingest_settings_for
from tests.helpers.ingest_fuzz import read_to_end
from tests.helpers.processor_run import in_process
from tests.helpers.processor_run import settings_for as processor_settings_for
from tickwire.devstack import procs
from tickwire.devstack.stack import Stack, StackInfo
from tickwire.events import headers as h

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[tuple[Stack, StackInfo]]:
    stack = Stack(tmp_path / "stack")
    info = stack.up(brokers=1, partitions=3)
    try:
        yield stack, info
    finally:
        stack.down()


def batch(tag: str, n: int) -> list[dict[str, Any]]:
    """n trades with ids `<tag>-<i>`, sizes 1..n, over a few symbols, times now."""
    time_ = now_iso(-1)
    return [
        {
            "type": "trade",
            "id": f"{tag}-{i}",
            "symbol": SYMBOLS[i % len(SYMBOLS)],
            "price": 100.0 + i % 7,
            "size": float(1 + i),
            "time": time_,
        }
        for i in range(n)
    ]


def reference(events: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """(trades, volume) per symbol over the distinct event ids: the documented rule."""
    distinct = {e["id"]: e for e in events}
    out: dict[str, tuple[int, float]] = {}
    for e in distinct.values():
        trades, volume = out.get(e["symbol"], (0, 0.0))
        out[e["symbol"]] = (trades + 1, volume + e["size"])
    return out


async def committed_reaches_end(bootstrap: str, group: str, topic: str, within_s: float) -> None:
    """Wait until the group committed every partition of topic up to its end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + within_s  # a failure guard, not a measurement
        committed: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            try:
                found = await admin.list_consumer_group_offsets(group, partitions=parts)
            except KafkaError as exc:
                if not exc.retriable:  # e.g. the coordinator is still being elected
                    raise
                await asyncio.sleep(0.3)
                continue
            committed = {tp: meta.offset for tp, meta in found.items()}
            if all(ends[tp] == 0 or committed.get(tp, -1) >= ends[tp] for tp in parts):
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"the processor did not commit up to {ends}: {committed}")
    finally:
        await admin.close()
        await consumer.stop()


@pytest.mark.timeout(300)
async def test_a_timed_out_batch_retried_with_the_same_ids_is_counted_once(
    private_stack: tuple[Stack, StackInfo],
) -> None:
    stack, info = private_stack
    bootstrap = info.bootstrap_servers
    topics = infra.Topics.fresh()
    db_name = infra.unique("tw").replace("-", "_")
    ingest = ingest_settings_for(
        bootstrap, topics.raw, ingest_publish_timeout_s=1.0, ingest_request_timeout_ms=60_000
    )
    processor = processor_settings_for(bootstrap, info.mongodb_url, db_name, topics)
    posted: list[dict[str, Any]] = []

    async with (
        running_ingest(ingest) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        in_process(processor),
    ):

        async def post_until_accepted(events: list[dict[str, Any]]) -> int:
            """Post the same batch until 202, as a producer retries; the attempts made."""
            deadline = time.monotonic() + 120  # a failure guard, not a measurement
            attempts = 0
            while True:
                attempts += 1
                posted.extend(events)
                resp = await client.post("/v1/events:batch", json=events)
                if resp.status_code == 202:
                    return attempts
                assert resp.status_code in (207, 503), resp.text
                assert time.monotonic() < deadline, "ingest never accepted the retried batch"
                await asyncio.sleep(0.2)

        await post_until_accepted(batch("warm", 10))

        stalled = batch("stalled", 40)
        broker = procs.read_pid(stack.kafka_dir(1) / "kafka.pid")
        assert broker is not None
        with paused(broker, listens_on=int(bootstrap.rsplit(":", 1)[1])):
            posted.extend(stalled)
            first = await client.post("/v1/events:batch", json=stalled)
        assert first.status_code == 503, first.text  # not accepted: retry with the same ids

        await post_until_accepted(stalled)
        await post_until_accepted(stalled)  # a retry whose 202 the producer never saw
        await post_until_accepted(batch("after", 10))

        await committed_reaches_end(bootstrap, processor.group_id, topics.raw, within_s=120)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(info.mongodb_url)
        try:
            docs = [d async for d in mongo[db_name].quotes.find({})]
        finally:
            await mongo.close()

    records = await read_to_end(bootstrap, topics.raw)
    copies = Counter(h.find(r.headers, h.CE_ID) for r in records)
    assert all(copies[f"stalled-{i}".encode()] >= 2 for i in range(40)), "no duplicates"
    got = {d["_id"]: (d["trades"], d["volume"]) for d in docs}
    assert got == reference(posted)
