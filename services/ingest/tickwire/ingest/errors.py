"""Ingest's errors, each knowing its HTTP status and its `reason` label in metrics.

TickwireError (tickwire.core.errors)
└── IngestError                 status, reason, retry_after, details
    ├── MalformedRequest        400 malformed   not JSON / not an array / empty
    ├── Unauthorized            401 unauthorized  no key, or an unknown key
    ├── Forbidden               403 forbidden   the key's scopes do not cover it
    ├── BodyTooLarge            413 too_large   body over the size limit
    ├── UnsupportedMediaType    415 unsupported Content-Type not accepted here
    ├── InvalidEvents           422 invalid     which field, why (or too many)
    ├── RateLimited             429 rate_limited  (retriable, Retry-After)
    ├── LimitsUnavailable       503 limits_unavailable  Redis down, fail-closed (retriable)
    ├── Overloaded              503 overloaded  too much in flight (retriable)
    └── KafkaUnavailable        503 kafka_unavailable  no ack in time (retriable)
"""

from __future__ import annotations

import math

import orjson
from fastapi import Request, Response

from tickwire.core.errors import TickwireError
from tickwire.ingest import metrics
from tickwire.ingest.models import ErrorDetail


class IngestError(TickwireError):
    """An error answered to the client; nothing of the request was accepted."""

    status = 500
    reason = "error"

    def __init__(
        self,
        message: str,
        details: list[ErrorDetail] | None = None,
        *,
        retry_after: float | None = None,
        events: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.retry_after = retry_after
        self.events = events  # how many events this refusal covers, for metrics


class MalformedRequest(IngestError):
    """The body cannot be read as the declared content type."""

    status, reason = 400, "malformed"


class Unauthorized(IngestError):
    """No API key, or one that is not known."""

    status, reason = 401, "unauthorized"


class Forbidden(IngestError):
    """The key may not publish this event type or symbol."""

    status, reason = 403, "forbidden"


class BodyTooLarge(IngestError):
    """The body is over the size limit."""

    status, reason = 413, "too_large"


class UnsupportedMediaType(IngestError):
    """The Content-Type is not one this endpoint reads."""

    status, reason = 415, "unsupported"


class InvalidEvents(IngestError):
    """Events broke a validation rule."""

    status, reason = 422, "invalid"


class RateLimited(IngestError):
    """The key's token bucket is empty; retry after `retry_after` seconds."""

    status, reason, retriable = 429, "rate_limited", True


class LimitsUnavailable(IngestError):
    """The shared rate limit cannot be checked (Redis down, TICKWIRE_REDIS_FALLBACK=
    fail-closed); nothing was accepted, retry after `retry_after` seconds."""

    status, reason, retriable = 503, "limits_unavailable", True


class Overloaded(IngestError):
    """Too many events wait for Kafka already; shed, retry shortly."""

    status, reason, retriable = 503, "overloaded", True


class KafkaUnavailable(IngestError):
    """Kafka did not acknowledge in time; nothing was reported accepted."""

    status, reason, retriable = 503, "kafka_unavailable", True


async def handle_ingest_error(request: Request, exc: Exception) -> Response:
    """Render an IngestError as an ErrorBody, with Retry-After or WWW-Authenticate."""
    assert isinstance(exc, IngestError)
    metrics.EVENTS_REJECTED.labels(exc.reason).inc(exc.events)
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
    body = {
        "error_code": exc.status,
        "message": exc.message,
        "errors": [d.model_dump() for d in exc.details],
    }
    return Response(orjson.dumps(body), exc.status, headers=headers, media_type="application/json")
