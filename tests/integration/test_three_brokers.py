"""`tickwire-stack up --brokers 3`: three KRaft nodes, RF 3, min.insync.replicas 2.
With one broker down an acks=all producer still gets every record acknowledged, and a
consumer reads back exactly what was sent, in order, after the broker returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.helpers.kafka import read_all
from tickwire.devstack.stack import Stack
from tickwire.kafka.clients import make_producer
from tickwire.kafka.topics import ensure_topics


async def test_three_node_cluster_survives_one_broker_down(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack3")
    info = await asyncio.to_thread(stack.up, 3)
    try:
        bootstrap = info.bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            assert len((await admin.describe_cluster())["brokers"]) == 3
        finally:
            await admin.close()
        await ensure_topics(bootstrap, ["ha"], partitions=3, replication=3)
        producer = make_producer(bootstrap, "ha-test")
        await producer.start()
        sent = []
        try:
            for i in range(50):
                await producer.send_and_wait("ha", key=b"k%d" % (i % 3), value=b"%d" % i)
                sent.append(i)
            await asyncio.to_thread(stack.stop_kafka_node, 3, True)  # SIGKILL one node
            for i in range(50, 100):
                await producer.send_and_wait("ha", key=b"k%d" % (i % 3), value=b"%d" % i)
                sent.append(i)
        finally:
            await producer.stop()
        await asyncio.to_thread(stack.start_kafka_node, 3)

        records = await read_all(bootstrap, "ha", expected=100, timeout=60)
        by_key: dict[bytes, list[int]] = {}
        for record in records:
            assert record.key is not None
            assert record.value is not None
            by_key.setdefault(record.key, []).append(int(record.value))
        assert sorted(v for vs in by_key.values() for v in vs) == sent
        for key, values in by_key.items():
            assert values == sorted(values), f"{key!r} out of order"
    finally:
        await asyncio.to_thread(stack.down)
