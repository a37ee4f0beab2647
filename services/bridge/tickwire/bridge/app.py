"""`create_app(settings)`: the bridge's FastAPI app (operations endpoints only) and the
lifespan that owns its long-lived parts: the Kafka producer, ticks.raw, and the
consuming loop supervised in the background."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from tickwire.bridge.consumer import Bridge
from tickwire.bridge.settings import BridgeSettings
from tickwire.core.supervisor import Supervisor
from tickwire.kafka.batches import BatchPublisher
from tickwire.kafka.clients import make_producer
from tickwire.kafka.health import kafka_ready
from tickwire.kafka.security import KafkaSecurity
from tickwire.kafka.topics import ensure_service_topics
from tickwire.observability.http import REDMiddleware, health_router


class BridgeState(TypedDict):
    """What the lifespan yields (as `request.state.<name>`)."""

    settings: BridgeSettings
    bridge: Bridge


def create_app(settings: BridgeSettings) -> FastAPI:
    """The bridge app; Kafka and RabbitMQ are connected by its lifespan."""
    security = KafkaSecurity.from_settings(settings)  # unusable TLS/SASL settings fail here
    holder: dict[str, Bridge] = {}
    producers: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[BridgeState]:
        await ensure_service_topics(settings, [settings.topic_raw], security)
        producer = make_producer(
            settings.kafka_bootstrap, f"{settings.kafka_client_id}-bridge", security=security
        )
        await producer.start()
        try:
            bridge = Bridge(settings, BatchPublisher(producer))
            holder["bridge"] = bridge
            producers["producer"] = producer
            supervisor = Supervisor(bridge)
            await supervisor.start()
            try:
                yield {"settings": settings, "bridge": bridge}
            finally:
                await supervisor.stop()
        finally:
            holder.clear()
            producers.clear()
            await producer.stop()

    async def rabbitmq_check() -> bool:
        bridge = holder.get("bridge")
        return bridge is not None and bridge.consuming

    async def kafka_check() -> bool:
        # after a failed batch, ready again once Kafka answers (an idle bridge may not
        # publish for a long time)
        bridge, producer = holder.get("bridge"), producers.get("producer")
        if bridge is None or producer is None:
            return False
        return not bridge.kafka_failing or await kafka_ready(producer, settings.topic_raw)

    app = FastAPI(title="tickwire bridge", version="1.0.0", lifespan=lifespan)
    app.add_middleware(REDMiddleware, service="bridge")
    app.include_router(health_router({"rabbitmq": rabbitmq_check, "kafka": kafka_check}))
    return app
