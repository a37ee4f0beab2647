"""The HTTP endpoints: `POST /v1/events` and `POST /v1/events:batch`.

The handlers read the raw body themselves (bounded by the size limit) and hand it to
`IngestService`, which decodes it with msgspec: FastAPI's own body parsing would cost a
pydantic validation per event. The request bodies are documented in the OpenAPI
document by `openapi.py` from the pydantic models.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from tickwire.events.rules import TRACEPARENT_PATTERN
from tickwire.ingest import metrics, openapi
from tickwire.ingest.auth import Authenticator, Principal
from tickwire.ingest.errors import BodyTooLarge, Unauthorized, UnsupportedMediaType
from tickwire.ingest.events import BodyKind
from tickwire.ingest.service import IngestService
from tickwire.ingest.settings import IngestSettings
from tickwire.observability import tracing

_SINGLE = {BodyKind.JSON.value: BodyKind.JSON, BodyKind.CLOUDEVENT.value: BodyKind.CLOUDEVENT}
_BATCH = {
    BodyKind.JSON.value: BodyKind.JSON,
    BodyKind.CLOUDEVENT_BATCH.value: BodyKind.CLOUDEVENT_BATCH,
    BodyKind.NDJSON.value: BodyKind.NDJSON,
    "application/ndjson": BodyKind.NDJSON,
    "application/jsonl": BodyKind.NDJSON,
}
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,20}\Z")  # str.isdigit() is also true for "²", which int() refuses


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _kind(request: Request, accepted: dict[str, BodyKind]) -> BodyKind:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    kind = accepted.get(media_type)
    if kind is None:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {', '.join(sorted(accepted))}",
        )
    return kind


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and _DIGITS.match(declared) and int(declared) > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _traceparent(request: Request) -> str | None:
    value = request.headers.get("traceparent")
    if value is not None and _TRACEPARENT.match(value.strip()):
        return tracing.hop(value.strip(), "ingest.accept").decode()
    return None


class _Post:
    """A post read and checked up to its body: who sent it, in which shape, the bytes."""

    __slots__ = ("body", "kind", "principal", "received_ns", "service", "traceparent")

    def __init__(
        self, service: IngestService, principal: Principal, kind: BodyKind, received_ns: int
    ) -> None:
        self.service = service
        self.principal = principal
        self.kind = kind
        self.received_ns = received_ns
        self.body = b""
        self.traceparent: str | None = None

    @classmethod
    async def read(cls, request: Request, accepted: dict[str, BodyKind]) -> _Post:
        """Authenticate (401), check the Content-Type (415), read the body (413)."""
        received_ns = time.time_ns()
        service: IngestService = request.state.service
        authenticator: Authenticator = request.state.authenticator
        principal = authenticator.principal(request.headers)
        if principal is None:
            raise Unauthorized("a valid API key is required (X-API-Key or Authorization: Bearer)")
        post = cls(service, principal, _kind(request, accepted), received_ns)
        post.body = await _body(request, service.settings.ingest_max_body_bytes)
        post.traceparent = _traceparent(request)
        return post


def events_router(settings: IngestSettings) -> APIRouter:
    """The /v1 routes, documented for these settings' limits."""
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.post(
        "/events",
        summary="Publish one event",
        description=openapi.SINGLE_DESCRIPTION,
        status_code=202,
        responses=openapi.responses(single=True),
        openapi_extra=openapi.single_request_body(),
    )
    async def post_event(request: Request) -> Response:
        post = await _Post.read(request, _SINGLE)
        metrics.REQUEST_EVENTS.observe(1)
        accepted = await post.service.publish_one(
            post.principal, post.body, post.kind, post.traceparent, post.received_ns
        )
        return _json(202, accepted)

    @router.post(
        "/events:batch",
        summary="Publish many events",
        description=openapi.BATCH_DESCRIPTION,
        status_code=202,
        responses=openapi.responses(single=False),
        openapi_extra=openapi.batch_request_body(settings.ingest_max_batch_events),
    )
    async def post_batch(request: Request) -> Response:
        post = await _Post.read(request, _BATCH)
        status, result = await post.service.publish_batch(
            post.principal, post.body, post.kind, post.traceparent, post.received_ns
        )
        return _json(status, result)

    return router
