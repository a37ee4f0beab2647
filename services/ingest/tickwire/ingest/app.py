"""`create_app(settings)`: the ingest FastAPI app and the lifespan that owns its
long-lived parts (the Kafka producer and the publisher on top of it)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from tickwire.core.supervisor import Supervisor
from tickwire.ingest import openapi
from tickwire.ingest.auth import Authenticator
from tickwire.ingest.errors import IngestError, handle_ingest_error
from tickwire.ingest.publisher import Publisher
from tickwire.ingest.routes import events_router
from tickwire.ingest.service import IngestService
from tickwire.ingest.settings import IngestSettings
from tickwire.kafka.clients import make_producer
from tickwire.kafka.health import kafka_ready
from tickwire.kafka.security import KafkaSecurity
from tickwire.kafka.topics import ensure_service_topics
from tickwire.observability.http import REDMiddleware, health_router
from tickwire.redis.link import RedisLink
from tickwire.redis.ratelimit import SharedRateLimiter

log = logging.getLogger(__name__)


class IngestState(TypedDict):
    """What the lifespan yields to every request (as `request.state.<name>`)."""

    service: IngestService
    authenticator: Authenticator


def create_app(settings: IngestSettings) -> FastAPI:
    """The ingest app; Kafka is connected (and ticks.raw created) by its lifespan."""
    authenticator = Authenticator(settings)  # a bad keys file fails here, before serving
    security = KafkaSecurity.from_settings(settings)  # so do unusable Kafka TLS/SASL settings
    holder: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[IngestState]:
        await ensure_service_topics(settings, [settings.topic_raw], security)
        producer = make_producer(
            settings.kafka_bootstrap,
            f"{settings.kafka_client_id}-ingest",
            compression=None
            if settings.ingest_compression == "none"
            else settings.ingest_compression,
            request_timeout_ms=settings.ingest_request_timeout_ms,
            security=security,
        )
        await producer.start()
        try:
            publisher = Publisher(
                producer,
                settings.topic_raw,
                max_inflight_events=settings.ingest_max_inflight_events,
            )
            await publisher.start()
            holder["producer"] = producer
            log.info(
                "ingest ready: publishing to %s (%d partitions) on %s",
                settings.topic_raw,
                publisher.partitions,
                settings.kafka_bootstrap,
            )
            link = RedisLink.from_settings(settings)  # no URL: in-process limits only
            watcher = Supervisor(link)
            await link.connect()
            await watcher.start()
            try:
                service = IngestService(settings, publisher, SharedRateLimiter(link))
                yield {"service": service, "authenticator": authenticator}
            finally:
                await watcher.stop()
                await link.close()
            await publisher.stop()
        finally:
            holder.clear()
            await producer.stop()

    async def kafka_check() -> bool:
        producer = holder.get("producer")
        return producer is not None and await kafka_ready(producer, settings.topic_raw)

    app = FastAPI(
        title="tickwire ingest",
        version="1.0.0",
        summary="Producers post trades and quotes; a 202 means Kafka has them.",
        lifespan=lifespan,
    )
    app.include_router(events_router(settings))
    app.include_router(health_router({"kafka": kafka_check}))
    app.add_exception_handler(IngestError, handle_ingest_error)
    app.add_middleware(REDMiddleware, service="ingest")
    openapi.install(app)
    return app
