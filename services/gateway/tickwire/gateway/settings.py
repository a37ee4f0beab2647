"""The gateway's settings: one class, built once in `__main__` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from tickwire.core.settings import CommonSettings
from tickwire.redis.settings import RedisSettings


class GatewaySettings(CommonSettings, RedisSettings):
    """Everything the gateway reads from `TICKWIRE_*` environment variables."""

    port: int = Field(8082, ge=0, le=65535, description="HTTP listen port")

    gateway_auth: Literal["off", "jwt"] = Field(
        "jwt", description="jwt: tokens required (needs GATEWAY_JWT_KEY); off: anonymous demos"
    )
    gateway_jwt_algorithm: str = Field("HS256", description="the only JWT algorithm accepted")
    gateway_jwt_key: SecretStr = Field(
        SecretStr(""), description="HMAC secret, or PEM public key for RS*/ES*/EdDSA"
    )
    gateway_jwt_key_file: Path | None = Field(
        None, description="file holding the key (a mounted secret; wins over the variable)"
    )
    gateway_jwt_audience: str = Field("tickwire-gateway", description="required `aud` claim")
    gateway_jwt_issuer: str = Field("tickwire", description="required `iss` claim")
    gateway_jwt_cookie: str = Field("tickwire_token", description="HttpOnly cookie with the JWT")
    gateway_bar_horizon_s: float = Field(
        330.0,
        gt=0,
        description="how far behind the newest bar a revised bar is still forwarded: at "
        "least the processor's TICKWIRE_CORRECTION_WINDOW plus its bar grace",
    )
    gateway_cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS (JSON list)"
    )

    gateway_max_connections_per_ip: int = Field(200, ge=1, description="streams per client IP")
    gateway_max_connections_per_subject: int = Field(20, ge=1, description="streams per subject")
    gateway_max_symbols: int = Field(
        1000, ge=1, description="symbols and prefixes one connection holds, over its subscriptions"
    )
    gateway_max_bar_streams: int = Field(
        2000,
        ge=0,
        description="(symbol or prefix, bar interval) pairs one connection receives bars of",
    )

    gateway_flush_ms: float = Field(
        5.0,
        ge=0,
        le=1000,
        description="latency budget: least time between two flush cycles (coalescing "
        "window) and most time the reader applies records before a flush may run",
    )
    gateway_buffer_per_partition: int = Field(
        10_000, ge=1, description="recent updates kept per partition for resumes"
    )
    gateway_max_pending_bars: int = Field(
        20_000,
        ge=1,
        description="unsent bars one client may hold (never conflated away); above: cut",
    )
    gateway_ws_max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="longest WebSocket message sent: a larger backlog is split into several",
    )
    gateway_heartbeat_s: float = Field(15.0, gt=0, description="SSE comment heartbeat period")
    gateway_retry_ms: int = Field(2000, ge=0, description="SSE `retry:` reconnection hint")
    gateway_drain_s: float = Field(
        10.0, ge=0, description="on SIGTERM, the period the open streams are ended over"
    )
    gateway_admission_rate: float = Field(
        500.0, ge=0, description="new streams and resumes started per second (0: no limit)"
    )
    gateway_admission_burst: int = Field(
        200, ge=1, description="new streams that may start at once before the rate applies"
    )
    gateway_admission_queue: int = Field(
        5000, ge=0, description="new streams that may wait for admission; beyond: 503"
    )
    gateway_token_expiry_notice_s: float = Field(
        30.0, ge=0, description="how long before a token's exp its stream gets `token-expiring`"
    )
    gateway_write_high_water: int = Field(
        256 * 1024, ge=1024, description="bytes queued in a socket before writes pause"
    )
    gateway_send_buffer_bytes: int = Field(
        128 * 1024,
        ge=0,
        description="SO_SNDBUF of an SSE socket (the kernel doubles it): bounds what the "
        "kernel holds for a client that does not read, and so how soon it shows as slow; "
        "0 = the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum, megabytes)",
    )
    gateway_slow_client_timeout_s: float = Field(
        30.0, gt=0, description="a client that drains nothing for this long is cut"
    )
    gateway_ready_wait_s: float = Field(
        15.0, ge=0, description="how long a new stream waits for the cache to be warm"
    )
    gateway_cursor_generation: str = Field(
        "1", description="bump when topics are recreated: older cursors then get a reset"
    )
    gateway_resume_timeout_s: float = Field(
        20.0, gt=0, description="longest a resume may spend reading Kafka"
    )
    gateway_replay_max_records: int = Field(
        200_000,
        ge=1,
        description="most records one connection's replay from `since` (400 beyond) or "
        "its resume through Kafka (a reset beyond) may read",
    )
    gateway_max_replays: int = Field(
        4,
        ge=1,
        description="Kafka replays (since=, and resumes older than the buffer) in progress "
        "at once on one instance (503 beyond)",
    )
    gateway_replay_max_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="most bytes of frames one Kafka replay holds until its hand-over "
        "(beyond: a reset and fresh snapshots)",
    )
    gateway_max_delays: int = Field(
        8, ge=0, description="distinct entitlement delays served (one shared reader each)"
    )
    gateway_query_max_bars: int = Field(5000, ge=1, description="most bars one query returns")
    gateway_query_max_symbols: int = Field(200, ge=1, description="most symbols in /v1/quotes")
    gateway_cache_bars_ttl_s: float = Field(
        300.0, gt=0, description="longest a /v1/bars answer stays in the Redis cache"
    )
    gateway_cache_local_mib: float = Field(
        64.0,
        ge=0,
        description="bytes of /v1/bars answers kept in this process, in front of Redis "
        "or alone without it (least recently used out first; 0: none)",
    )
    gateway_cache_quotes_ttl_s: float = Field(
        2.0, gt=0, description="longest a quote read from MongoDB stays in the Redis cache"
    )
