"""Create the topics a service needs when they are missing (idempotent).

A CreateTopics answer only says the controller accepted the topic: for a moment after,
a broker's metadata may not list it yet (describe says UNKNOWN_TOPIC_OR_PARTITION, a
producer's first send waits). `ensure_topics` returns only once every topic it created
is described with a leader for each partition, so whoever called it can use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tickwire.core.errors import RetriableError
from tickwire.core.settings import CommonSettings
from tickwire.kafka.clients import make_admin
from tickwire.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication: int,
    retention_ms: int | None = None,
    compacted: Iterable[str] = (),
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create each topic that does not exist yet; existing topics are left as they are."""
    wanted = list(dict.fromkeys(topics))
    compact = set(compacted)
    admin = make_admin(bootstrap, security=security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = []
        for name in wanted:
            if name in existing:
                continue
            configs: dict[str, str] = {}
            if retention_ms is not None:
                configs["retention.ms"] = str(retention_ms)
            if name in compact:
                configs["cleanup.policy"] = "compact"
            missing.append(NewTopic(name, partitions, replication, topic_configs=configs))
        if missing:
            # another instance may create the same topics concurrently
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            await _until_described(admin, {t.name: t.num_partitions for t in missing})
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


async def ensure_service_topics(
    settings: CommonSettings, topics: Iterable[str], security: KafkaSecurity
) -> None:
    """`ensure_topics` with a service's own topic settings (partitions, replication,
    retention) and Kafka security: how every service creates what it reads or writes."""
    await ensure_topics(
        settings.kafka_bootstrap,
        topics,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
        retention_ms=settings.topic_retention_ms,
        security=security,
    )


class TopicsNotReadyError(RetriableError):
    """Created topics were not described with leaders in time."""


async def _until_described(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], within_s: float = 30.0
) -> None:
    """Wait until each topic is described with that many partitions, each with a leader."""
    deadline = time.monotonic() + within_s
    waiting = dict(partitions)
    while waiting:
        for entry in await admin.describe_topics(list(waiting)):
            name = entry.get("topic")
            parts = entry.get("partitions", [])
            if (
                name in waiting
                and entry.get("error_code", 0) == 0
                and len(parts) >= waiting[name]
                and all(p.get("leader", -1) >= 0 for p in parts)
            ):
                del waiting[name]
        if waiting:
            if time.monotonic() > deadline:
                raise TopicsNotReadyError(f"topics not ready after {within_s:.0f}s: {waiting}")
            await asyncio.sleep(0.05)


async def partitions_for(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> int:
    """How many partitions a topic has (0 when it does not exist)."""
    admin = make_admin(bootstrap, security=security)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        for entry in described:
            if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
                return len(entry.get("partitions", []))
        return 0
    finally:
        await admin.close()
