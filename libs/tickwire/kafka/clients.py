"""Kafka clients configured the way tickwire needs them.

The producer is always idempotent with acks=all: a send that returns has been written
to every in-sync replica, and retries never duplicate or reorder within a partition.
Every client takes the service's `KafkaSecurity` (TLS, SASL; `security.py`).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tickwire.kafka.security import PLAINTEXT, KafkaSecurity


def make_producer(
    bootstrap: str,
    client_id: str,
    *,
    linger_ms: int = 5,
    compression: str | None = "lz4",
    max_batch_size: int = 1 << 20,
    request_timeout_ms: int = 30_000,
    security: KafkaSecurity = PLAINTEXT,
    **extra: Any,
) -> AIOKafkaProducer:
    """An idempotent, acks=all producer with batching and compression."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        compression_type=compression,
        max_batch_size=max_batch_size,
        request_timeout_ms=request_timeout_ms,
        **security.options(),
        **extra,
    )


def make_consumer(
    bootstrap: str,
    client_id: str,
    *topics: str,
    group_id: str | None = None,
    security: KafkaSecurity = PLAINTEXT,
    **extra: Any,
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: offsets are committed only after success."""
    extra.setdefault("auto_offset_reset", "earliest")
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        **security.options(),
        **extra,
    )


def make_admin(
    bootstrap: str, client_id: str = "tickwire-admin", security: KafkaSecurity = PLAINTEXT
) -> AIOKafkaAdminClient:
    """An admin client (topics, offsets)."""
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=client_id, **security.options()
    )
