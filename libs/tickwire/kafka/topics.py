"""Create the topics a service needs when they are missing (idempotent)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


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
