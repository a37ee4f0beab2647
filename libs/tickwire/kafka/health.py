"""Readiness of a Kafka producer, for the services' `/readyz`."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer


async def kafka_ready(producer: AIOKafkaProducer, topic: str, within_s: float = 2.0) -> bool:
    """Whether a broker answers a metadata request and the topic has partitions."""
    try:
        metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), within_s)
    except Exception:  # any failure to answer means not ready
        return False
    return bool(metadata.brokers()) and bool(metadata.partitions_for_topic(topic))
