"""The real parts work for what the services need: an idempotent acks=all producer and a
consumer group that reads back exactly what was sent, in order per key, with headers;
and PyMongo's AsyncMongoClient doing CRUD, upserts and unique indexes on the store."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo.errors import DuplicateKeyError

from tests.helpers.infra import Topics, unique
from tickwire.kafka.clients import make_consumer, make_producer
from tickwire.kafka.topics import ensure_topics, partitions_for


async def test_idempotent_producer_and_group_consumer_round_trip(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await ensure_topics(kafka_bootstrap, [topics.raw], partitions=3, replication=1)
    assert await partitions_for(kafka_bootstrap, topics.raw) == 3

    producer = make_producer(kafka_bootstrap, "smoke")
    await producer.start()
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    try:
        for i in range(300):
            key = f"SYM{i % 7}".encode()
            value = f"{key.decode()}:{i}".encode()
            await producer.send(
                topics.raw,
                key=key,
                value=value,
                headers=[("ce_id", str(i).encode()), ("bin", bytes([0, 255]))],
            )
            sent[key].append(value)
        await producer.flush()
    finally:
        await producer.stop()

    consumer: AIOKafkaConsumer = make_consumer(
        kafka_bootstrap, "smoke", topics.raw, group_id=unique("g")
    )
    await consumer.start()
    received: dict[bytes, list[bytes]] = defaultdict(list)
    headers_seen: list[tuple[tuple[str, bytes], ...]] = []
    try:
        count = 0
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    assert record.key is not None
                    assert record.value is not None
                    received[record.key].append(record.value)
                    headers_seen.append(tuple(record.headers))
                    count += 1
            if count >= 300:
                break
        await consumer.commit()
        committed = [await consumer.committed(tp) for tp in consumer.assignment()]
    finally:
        await consumer.stop()

    assert received == sent  # every record exactly once, in order per key
    assert sum(c or 0 for c in committed) == 300
    assert all(h[1] == ("bin", bytes([0, 255])) for h in headers_seen)
    assert sorted(int(h[0][1]) for h in headers_seen) == list(range(300))


async def test_async_mongo_crud_upsert_and_unique_index(mongo: Any) -> None:
    bars = mongo["bars"]
    await bars.create_index([("symbol", 1), ("interval", 1), ("start", 1)], unique=True)
    await bars.insert_one({"symbol": "AAPL", "interval": "1m", "start": 0, "close": 1.0})
    with pytest.raises(DuplicateKeyError):
        await bars.insert_one({"symbol": "AAPL", "interval": "1m", "start": 0, "close": 2.0})

    result = await bars.update_one(
        {"symbol": "AAPL", "interval": "1m", "start": 0}, {"$set": {"close": 3.0}}, upsert=True
    )
    assert result.matched_count == 1
    result = await bars.update_one(
        {"symbol": "MSFT", "interval": "1m", "start": 0}, {"$set": {"close": 4.0}}, upsert=True
    )
    assert result.upserted_id is not None

    docs = await bars.find({}, {"_id": 0}).sort("symbol", 1).to_list()
    assert docs == [
        {"symbol": "AAPL", "interval": "1m", "start": 0, "close": 3.0},
        {"symbol": "MSFT", "interval": "1m", "start": 0, "close": 4.0},
    ]
    assert await bars.count_documents({}) == 2
