"""The processor's FastAPI app: operations endpoints only, and the consumer loop
supervised in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI

from tickwire.core.supervisor import Supervisor
from tickwire.mongo.client import make_client
from tickwire.mongo.security import MongoSecurity
from tickwire.observability.http import REDMiddleware, health_router
from tickwire.processor.consumer import ProcessorLoop
from tickwire.processor.settings import ProcessorSettings
from tickwire.processor.store import FineBarRetention, StateStore


class ProcessorState(TypedDict):
    """What the lifespan yields to request handlers."""

    settings: ProcessorSettings
    loop: ProcessorLoop


def create_app(settings: ProcessorSettings) -> FastAPI:
    """The processor app; its lifespan starts and stops the consumer loop."""
    mongo = make_client(settings.mongodb_url, security=MongoSecurity.from_settings(settings))
    store = StateStore(
        mongo[settings.mongodb_db],
        settings.quotes_collection,
        settings.bars_collection,
        corrections=settings.corrections_collection,
    )
    loop = ProcessorLoop(settings, store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        supervisor = Supervisor(loop, FineBarRetention(store, settings.fine_bar_retention))
        await supervisor.start()
        try:
            yield dict(ProcessorState(settings=settings, loop=loop))
        finally:
            await supervisor.stop()
            await mongo.close()

    app = FastAPI(title="tickwire processor", lifespan=lifespan)
    app.add_middleware(REDMiddleware, service="processor")
    app.include_router(
        health_router(
            {
                "kafka": loop.kafka_ready,
                "mongodb": loop.mongodb_ready,
                "partitions": loop.partitions_ready,
            }
        )
    )
    return app
