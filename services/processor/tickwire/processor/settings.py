"""The processor's settings (environment variables with the TICKWIRE_ prefix)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from tickwire.core.settings import CommonSettings


class ProcessorSettings(CommonSettings):
    """Everything the processor reads from its environment, built once in main()."""

    port: int = Field(8081, ge=0, le=65535, description="HTTP port (/healthz /readyz /metrics)")
    group_id: str = Field("tickwire-processor", description="Kafka consumer group")
    instance_id: str | None = Field(
        None,
        description="static group membership id (group.instance.id); give each instance "
        "its own stable id so a restart gets its partitions back without a rebalance",
    )
    session_timeout_ms: int = Field(10_000, ge=1000, description="consumer session timeout")
    bar_intervals: list[str] = Field(["1s", "1m"], description="bar intervals, e.g. 1s 1m 5m 1h")
    bar_grace_ms: int = Field(2000, ge=0, description="how long after its end a bar stays open")
    reference_prices: dict[str, float] = Field(
        {}, description="previous close per symbol for change/change %; default: session open"
    )
    symbol_exchanges: dict[str, str] = Field(
        {},
        description="exchange calendar (exchange-calendars name, e.g. XNYS, XLON) per "
        "symbol, for sessions; other symbols use default_exchange",
    )
    default_exchange: str = Field("XNYS", description="exchange calendar of other symbols")
    premarket: dt.timedelta = Field(
        dt.timedelta(hours=5, minutes=30),
        ge=dt.timedelta(0),
        description="pre-market length before a session's open (XNYS: 04:00-09:30 ET)",
    )
    postmarket: dt.timedelta = Field(
        dt.timedelta(hours=4),
        ge=dt.timedelta(0),
        description="post-market length after a session's close (XNYS: 16:00-20:00 ET)",
    )
    correction_trades: int = Field(
        256,
        ge=0,
        description="trades remembered per symbol so corrections and cancels can refer to "
        "them (0: none, every correction is rejected)",
    )
    correction_window: dt.timedelta = Field(
        dt.timedelta(minutes=5),
        gt=dt.timedelta(0),
        description="how long (event time, before the symbol's watermark) a trade stays "
        "correctable, within correction_trades",
    )
    corrections_collection: str = Field(
        "corrections", description="MongoDB collection recording applied corrections"
    )
    dedup_window: int = Field(
        1000, ge=1, description="event ids remembered per symbol, so a retry is applied once"
    )
    publish_forming_bars: bool = Field(
        False, description="also publish forming bars (final=false) once per batch"
    )
    max_poll_records: int = Field(20_000, ge=1, description="records per getmany() batch")
    batch_max_records: int = Field(
        100_000, ge=1, description="most records applied and written as one batch"
    )
    batch_max_ms: int = Field(
        5,
        ge=0,
        description="latency budget of a batch: how long it is topped up with records "
        "already fetched; under light load a batch goes out at once, under pressure the "
        "fetched backlog makes it grow (up to batch_max_records)",
    )
    batch_wait_ms: int = Field(
        0, ge=0, description="how long to wait for records not yet fetched before a batch goes out"
    )
    persist_interval_ms: int = Field(
        50,
        ge=0,
        description="MongoDB writes run behind the publishes: the oldest unwritten batch "
        "waits at most this long for later ones to coalesce into the same write",
    )
    persist_max_pending_bars: int = Field(
        200_000,
        ge=1,
        description="closed bars published but not yet written to MongoDB before the loop "
        "waits for MongoDB (backpressure; memory bound)",
    )
    inflight_headroom: int = Field(
        50_000,
        ge=1,
        description="input records per partition one in-flight marker write covers ahead "
        "(a MongoDB round trip every this many records, written ahead of need)",
    )
    poll_timeout_ms: int = Field(200, ge=1, description="getmany() wait when idle")
    quotes_collection: str = Field("quotes", description="MongoDB collection of symbol states")
    bars_collection: str = Field("bars", description="MongoDB collection of bars")
    fine_bar_retention: dt.timedelta = Field(
        dt.timedelta(hours=1),
        gt=dt.timedelta(0),
        description="how long bars shorter than a minute (1s) are kept, in event time "
        "(seconds or ISO 8601, e.g. 3600 or PT1H); older buckets are deleted every minute",
    )
    retry_cap_seconds: float = Field(5.0, gt=0, description="longest backoff between retries")
    metadata_max_age_ms: int = Field(
        30_000,
        ge=100,
        description="how often the consumer refreshes topic metadata, so partitions added "
        "to ticks.raw are picked up (a rebalance) within this time",
    )
    fault_point: Literal["after_publish", "after_store"] | None = Field(
        None,
        description="TEST SEAM, never in production: at this point of the fault_batch-th "
        "batch reaching it the process signals itself (crash and stall tests)",
    )
    fault_batch: int = Field(1, ge=1, description="test seam: which batch reaching fault_point")
    fault_signal: Literal["KILL", "STOP"] = Field(
        "KILL", description="test seam: SIGKILL (crash) or SIGSTOP (stall) at fault_point"
    )
