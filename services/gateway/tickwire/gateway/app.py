"""The gateway's ASGI app: `create_app(settings)`.

One lifespan owns the long-lived parts: the Kafka reader's consumer, the MongoDB client,
the hub, and the supervised loops (reader, flusher, janitor). Endpoints reach them
through the typed `Runtime` in the lifespan state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from tickwire.core.errors import ConfigError
from tickwire.core.supervisor import Supervisor
from tickwire.gateway import metrics
from tickwire.gateway.admission import Admission
from tickwire.gateway.auth import Authenticator
from tickwire.gateway.browser import SecurityHeaders
from tickwire.gateway.cursor import topology_tag
from tickwire.gateway.delay import DelayedFeeds
from tickwire.gateway.drain import Drain
from tickwire.gateway.errors import GatewayError
from tickwire.gateway.hub import FlushLoop, Hub, Janitor
from tickwire.gateway.limits import ConnectionLimits
from tickwire.gateway.query import router as query_router
from tickwire.gateway.querycache import QueryCache
from tickwire.gateway.reader import KafkaReader, discover_slots
from tickwire.gateway.resume import ReplayGate, Resumer
from tickwire.gateway.runtime import Runtime
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.stream import OPENAPI_PATH as STREAM_OPENAPI
from tickwire.gateway.stream import RAW_SEND, StreamEndpoint
from tickwire.gateway.updates import QUOTE
from tickwire.gateway.ws import router as ws_router
from tickwire.kafka.clients import make_consumer
from tickwire.kafka.security import KafkaSecurity
from tickwire.kafka.topics import ensure_service_topics
from tickwire.mongo.client import make_client, ping
from tickwire.mongo.security import MongoSecurity
from tickwire.observability.http import REDMiddleware, health_router
from tickwire.redis.link import RedisLink

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class GatewayApp(FastAPI):
    """FastAPI that keeps the server's own `send` in the scope, so the SSE endpoint
    can reach the socket transport beneath the middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for these settings."""
    if "*" in settings.gateway_cors_origins:
        raise ConfigError(
            "TICKWIRE_GATEWAY_CORS_ORIGINS must list origins: '*' with credentials (the "
            "session cookie) would let any site read the streams"
        )
    redis = RedisLink.from_settings(settings)
    runtime = Runtime(
        settings=settings,
        auth=Authenticator(settings),
        limits=ConnectionLimits(
            settings.gateway_max_connections_per_ip,
            settings.gateway_max_connections_per_subject,
            redis,
        ),
        redis=redis,
        query_cache=QueryCache(redis, settings),
        replays=ReplayGate(
            settings.gateway_max_replays,
            settings.gateway_replay_max_records,
            settings.gateway_replay_max_bytes,
        ),
        admission=Admission(
            settings.gateway_admission_rate,
            settings.gateway_admission_burst,
            settings.gateway_admission_queue,
        ),
        drain=Drain(settings.gateway_drain_s, settings.gateway_retry_ms),
    )
    if settings.gateway_auth == "off":
        log.warning("gateway auth is off: anonymous clients may subscribe to every symbol")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with run_parts(runtime):
            yield {"gateway": runtime}

    async def kafka_ready() -> bool:
        return runtime.hub is not None and runtime.hub.ready.is_set()

    async def mongo_ready() -> bool:
        return runtime.db is not None and await ping(runtime.db.client)

    async def serving() -> bool:
        return not runtime.drain.draining

    app = GatewayApp(
        title="tickwire gateway",
        version="0.1.0",
        summary="Live ticker updates over SSE and WebSocket, resumable on any node",
        lifespan=lifespan,
    )
    app.router.routes.append(Route("/v1/stream", StreamEndpoint(), methods=["GET"]))

    def openapi() -> dict[str, Any]:
        # /v1/stream is a raw ASGI route FastAPI does not see: add its entry
        schema = app.openapi_schema or FastAPI.openapi(app)
        schema["paths"].setdefault("/v1/stream", STREAM_OPENAPI)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(ws_router)
    app.include_router(query_router)
    app.include_router(
        health_router({"kafka": kafka_ready, "mongodb": mongo_ready, "serving": serving})
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    @app.post("/v1/session", summary="Exchange a bearer token for an HttpOnly session cookie")
    async def open_session(request: Request) -> Response:
        token = runtime.auth.token_from(request.headers, {})
        if not runtime.auth.enabled:
            return JSONResponse({"auth": "off"})
        try:
            if token is None:
                raise GatewayError("Authorization: Bearer <token> is required")
            principal = runtime.auth.verify(token)
        except GatewayError as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        response = JSONResponse({"subject": principal.subject})
        response.set_cookie(
            settings.gateway_jwt_cookie,
            token,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
            path="/v1",
        )
        return response

    @app.delete("/v1/session", summary="Forget the session cookie")
    async def close_session() -> Response:
        response = JSONResponse({"closed": True})
        response.delete_cookie(settings.gateway_jwt_cookie, path="/v1")
        return response

    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway_cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Last-Event-ID", "Content-Type"],
            expose_headers=["Content-Type"],
        )

    async def drain() -> None:
        runtime.drain.draining = True  # before the queued streams go: they are refused
        runtime.admission.closed.set()
        await runtime.drain.run(runtime.hubs)

    app.state.drain = drain  # run on SIGTERM (tickwire.core.serve), before the server stops
    app.add_middleware(SecurityHeaders)
    app.add_middleware(REDMiddleware, service="gateway")
    return app


@contextlib.asynccontextmanager
async def run_parts(runtime: Runtime) -> AsyncIterator[None]:
    """Start the consumer, MongoDB client, hub and loops; stop them all on exit."""
    settings = runtime.settings
    security = KafkaSecurity.from_settings(settings)
    await ensure_service_topics(settings, [settings.topic_updates, settings.topic_bars], security)
    client_id = f"{settings.kafka_client_id}-gateway"
    consumer = make_consumer(
        settings.kafka_bootstrap, client_id, security=security, fetch_max_wait_ms=100
    )
    await consumer.start()
    mongo = make_client(settings.mongodb_url, security=MongoSecurity.from_settings(settings))
    supervisor: Supervisor | None = None
    try:
        slots = await discover_slots(consumer, settings.topic_updates, settings.topic_bars)
        layout = [
            (settings.topic_updates, sum(1 for s in slots if s.kind == QUOTE)),
            (settings.topic_bars, sum(1 for s in slots if s.kind != QUOTE)),
        ]
        tag = topology_tag(settings.gateway_cursor_generation, layout)
        hub = Hub(slots, tag, settings.gateway_buffer_per_partition, settings.gateway_bar_horizon_s)
        runtime.feeds = DelayedFeeds(settings, slots, tag, security)
        db = mongo[settings.mongodb_db]
        runtime.db = db
        runtime.hub = hub
        runtime.resumer = Resumer(
            hub,
            settings.kafka_bootstrap,
            client_id,
            settings.gateway_resume_timeout_s,
            security=security,
        )
        reader = KafkaReader(hub, consumer, db.quotes, settings.gateway_flush_ms / 1000)
        reader.on_final = runtime.query_cache.finals.applied
        await runtime.redis.connect()
        supervisor = Supervisor(
            reader,
            FlushLoop(hub, settings.gateway_flush_ms / 1000),
            Janitor(hub, settings.gateway_heartbeat_s, settings.gateway_slow_client_timeout_s),
            runtime.redis,
            runtime.limits.counter,
            runtime.feeds,
        )
        await supervisor.start()
        yield
    finally:
        runtime.shutting_down.set()
        for held in runtime.hubs():
            for conn in list(held.connections):
                conn.cut("shutdown")
                metrics.DISCONNECTED.labels("shutdown").inc()
        if supervisor is not None:
            await supervisor.stop()
        await consumer.stop()
        await mongo.close()
        await runtime.redis.close()
