"""Resuming from a cursor on another instance: from its buffer, through Kafka, or reset."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tickwire.devstack.procs import free_port
from tickwire.gateway.resume import Resumer
from tickwire.gateway.settings import GatewaySettings

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA"]


def resumes(outcome: str) -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_resumes_total", {"outcome": outcome}) or 0


async def first_session(url: str, symbols: list[str], final: int) -> str:
    """Subscribe, wait until every symbol reached `final`, and return the last id seen."""
    async with g.sse_client(url, f"/v1/stream?symbols={','.join(symbols)}") as client:
        for _ in range(600):
            latest = {s: v for _, s, v in client.quotes()}
            if all(latest.get(s) == final for s in symbols):
                break
            await asyncio.sleep(0.05)
        assert all(latest.get(s) == final for s in symbols), latest
        return client.events[-1].id


def per_symbol(events: list[tuple[str, str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for event, symbol, version in events:
        assert event == "quote"
        out.setdefault(symbol, []).append(version)
    return out


async def test_second_instance_resumes_with_exactly_the_missed_updates(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 3)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [g.update_record(s, v) for v in range(1, 4) for s in SYMBOLS],
    )
    first = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    second = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    wanted = SYMBOLS[:4]
    async with g.running_gateway(first) as url_a, g.running_gateway(second) as url_b:
        cursor = await first_session(url_a, wanted, 3)
        missed = [g.update_record(s, v) for v in range(4, 12) for s in SYMBOLS]
        await produce(kafka_bootstrap, topics.updates, missed)
        before = resumes("buffer")
        async with g.sse_client(
            url_b, f"/v1/stream?symbols={','.join(wanted)}", headers={"Last-Event-ID": cursor}
        ) as client:
            await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 12) for s in wanted])
            await g.until_quotes(client, dict.fromkeys(wanted, 12))
            assert per_symbol(client.quotes()) == {s: list(range(4, 13)) for s in wanted}
        assert resumes("buffer") == before + 1


@contextlib.asynccontextmanager
async def resumed_through_kafka(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, partitions: int, last: int
) -> AsyncIterator[tuple[g.SseClient, GatewaySettings]]:
    """A cursor taken on a first gateway after version 1 of every symbol, versions 2 to
    last - 1 produced after it, then a client resuming AAPL and TSLA with it on a gateway
    whose buffer (3 per partition) does not reach back, and AAPL and TSLA `last`. Yields
    that client once it holds `last` of both, and the second gateway's settings."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], partitions)
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in SYMBOLS])
    first = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    small = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, gateway_buffer_per_partition=3
    )
    async with g.running_gateway(first) as url_a:
        cursor = await first_session(url_a, SYMBOLS, 1)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [g.update_record(s, v) for v in range(2, last) for s in SYMBOLS],
    )
    async with (
        g.running_gateway(small) as url_b,
        g.sse_client(
            url_b, "/v1/stream?symbols=AAPL,TSLA", headers={"Last-Event-ID": cursor}
        ) as client,
    ):
        await produce(
            kafka_bootstrap, topics.updates, [g.update_record(s, last) for s in ("AAPL", "TSLA")]
        )
        await g.until_quotes(client, {"AAPL": last, "TSLA": last})
        yield client, small


async def test_resume_reads_kafka_when_the_buffer_does_not_reach_back(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    before = resumes("kafka")
    async with resumed_through_kafka(kafka_bootstrap, mongodb_url, db_name, topics, 2, 10) as (
        client,
        small,
    ):
        assert per_symbol(client.quotes()) == {
            "AAPL": list(range(2, 11)),
            "TSLA": list(range(2, 11)),
        }
        # ids keep working: resuming from the middle of the replay gives the rest
        middle = client.events[7].id
        remaining = client.quotes()[8:]
    assert resumes("kafka") == before + 1
    async with (
        g.running_gateway(small) as url_c,
        g.sse_client(
            url_c, "/v1/stream?symbols=AAPL,TSLA", headers={"Last-Event-ID": middle}
        ) as again,
    ):
        await produce(
            kafka_bootstrap, topics.updates, [g.update_record(s, 11) for s in ("AAPL", "TSLA")]
        )
        await g.until_quotes(again, {"AAPL": 11, "TSLA": 11})
        assert per_symbol(again.quotes()) == {
            s: [*versions, 11] for s, versions in per_symbol(remaining).items()
        }


async def test_a_connection_refused_during_a_resume_through_kafka_is_retried_not_reset(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resume's first Kafka connection is refused (a real closed port, as a network
    fault between the gateway and Kafka would have it): a retriable error, so the resume
    starts again and replays exactly the missed updates; no `reset`, no snapshot."""
    made: list[AIOKafkaConsumer] = []
    real_consumer = Resumer.consumer

    def refused_first(self: Resumer) -> AIOKafkaConsumer:
        closed = f"127.0.0.1:{free_port()}"  # nothing listens: the connection is refused
        made.append(
            AIOKafkaConsumer(bootstrap_servers=closed, request_timeout_ms=2000)
            if not made
            else real_consumer(self)
        )
        return made[-1]

    monkeypatch.setattr(Resumer, "consumer", refused_first)
    kafka_before, resets_before = resumes("kafka"), resumes("reset")
    async with resumed_through_kafka(kafka_bootstrap, mongodb_url, db_name, topics, 1, 6) as (
        client,
        _,
    ):
        assert per_symbol(client.quotes()) == {
            "AAPL": list(range(2, 7)),
            "TSLA": list(range(2, 7)),
        }
        assert [e.event for e in client.events if e.event != "quote"] == []
    assert len(made) >= 2  # the refused attempt, then the resume that succeeded
    assert (resumes("kafka"), resumes("reset")) == (kafka_before + 1, resets_before)


async def test_cursor_past_retention_gets_a_reset_and_fresh_snapshots(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in SYMBOLS])
    first = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    small = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_buffer_per_partition=2,
    )
    async with g.running_gateway(first) as url_a:
        cursor = await first_session(url_a, ["AAPL", "MSFT"], 1)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [g.update_record(s, v) for v in range(2, 6) for s in SYMBOLS],
    )
    # the processor keeps every symbol's state in MongoDB; the new instance's cache
    # starts from there (its refill window of 2 records holds only the last two)
    await mongo.quotes.insert_many([g.quote_doc(s, 5) for s in SYMBOLS])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # retention passed: records up to offset 20 are gone
        await admin.delete_records({TopicPartition(topics.updates, 0): RecordsToDelete(20)})
    finally:
        await admin.close()
    before = resumes("reset")
    async with (
        g.running_gateway(small) as url_b,
        g.sse_client(
            url_b, "/v1/stream?symbols=AAPL,MSFT", headers={"Last-Event-ID": cursor}
        ) as client,
    ):
        await client.wait_for(3)
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("MSFT", 6), g.update_record("AAPL", 6)],
        )
        await g.until_quotes(client, {"AAPL": 6, "MSFT": 6})  # one partition: in this order
        assert client.events[0].event == "reset"
        assert client.quotes() == [
            ("snapshot", "AAPL", 5),
            ("snapshot", "MSFT", 5),
            ("quote", "MSFT", 6),
            ("quote", "AAPL", 6),
        ]
    assert resumes("reset") == before + 1


async def test_cursor_from_another_topic_gets_a_reset(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    other = Topics.fresh()
    await g.create_topics(
        kafka_bootstrap, [topics.updates, topics.bars, other.updates, other.bars], 1
    )
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    await produce(kafka_bootstrap, other.updates, [g.update_record("AAPL", 50)])
    here = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    there = g.settings_for(kafka_bootstrap, mongodb_url, db_name, other)
    async with g.running_gateway(there) as url_there:
        foreign = await first_session(url_there, ["AAPL"], 50)
    async with (
        g.running_gateway(here) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL", headers={"Last-Event-ID": foreign}) as c,
    ):
        await c.wait_for(2)
        assert c.events[0].event == "reset"
        assert c.quotes() == [("snapshot", "AAPL", 1)]
