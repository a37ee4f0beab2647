"""Ingest's settings: `IngestSettings`, built once in `main()` and passed down.

Every field is read from the environment with the `TICKWIRE_` prefix, e.g.
`TICKWIRE_INGEST_AUTH=off`, `TICKWIRE_INGEST_KEYS_FILE=/etc/tickwire/keys.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tickwire.core.settings import CommonSettings
from tickwire.redis.settings import RedisSettings


class IngestSettings(CommonSettings, RedisSettings):
    """HTTP -> ticks.raw: limits, auth and the Kafka publish deadline; Redis (optional)
    holds the per-key rate limits across replicas."""

    port: int = Field(8080, ge=0, le=65535, description="HTTP listen port")

    ingest_auth: Literal["on", "off"] = Field(
        "on", description="'off' accepts unauthenticated posts (local demos only)"
    )
    ingest_keys_file: Path | None = Field(
        None, description="JSON file of hashed API keys (see the README for its format)"
    )
    ingest_keys: str | None = Field(
        None, description="the same JSON document inline, when no file is given"
    )
    ingest_anonymous_rate: float = Field(
        0.0, ge=0, description="events/s allowed when auth is off (0 = unlimited)"
    )

    ingest_max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body accepted (413 above)"
    )
    ingest_max_batch_events: int = Field(
        10_000, ge=1, description="most events in one batch request (422 above)"
    )
    ingest_max_inflight_events: int = Field(
        200_000, ge=1, description="events waiting for Kafka's ack before new work is shed"
    )
    ingest_publish_timeout_s: float = Field(
        5.0, gt=0, description="how long a request waits for Kafka's ack before 503"
    )
    ingest_retry_after_s: int = Field(
        1, ge=1, description="Retry-After sent with 503 when Kafka cannot take events"
    )
    ingest_max_future_skew_s: float = Field(
        5.0, ge=0, description="how far in the future an event's time may be"
    )
    ingest_source: str = Field(
        "/producers/{key_id}", description="CloudEvents source when the producer gives none"
    )
    ingest_compression: Literal["lz4", "gzip", "zstd", "snappy", "none"] = Field(
        "lz4", description="producer compression"
    )
    ingest_request_timeout_ms: int = Field(
        30_000, ge=1000, description="producer request.timeout.ms"
    )
