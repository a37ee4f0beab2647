"""The processor's Prometheus metrics (module-level: one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

EVENTS = Counter(
    "tickwire_processor_events_total",
    "ticks.raw records handled, by outcome (trade, quote, correction (and cancel), status, "
    "late, poison (rejected corrections too), replayed, duplicate)",
    ["type"],
)
LATE = Counter("tickwire_processor_late_events_total", "trades later than the bar grace")
DEAD_LETTERS = Counter("tickwire_processor_dead_letters_total", "records sent to ticks.dlq")
PUBLISHED = Counter("tickwire_processor_published_total", "records published, by kind", ["kind"])
BATCH_RECORDS = Histogram(
    "tickwire_processor_batch_records",
    "records per getmany() batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000, 20_000, 50_000),
)
PROCESS_SECONDS = Histogram(
    "tickwire_processor_batch_processing_seconds", "aggregation time per batch", buckets=_LATENCY
)
MONGO_SECONDS = Histogram(
    "tickwire_processor_mongodb_write_seconds",
    "MongoDB bulk write time per batch",
    buckets=_LATENCY,
)
PUBLISH_SECONDS = Histogram(
    "tickwire_processor_publish_seconds", "produce-and-ack time per batch", buckets=_LATENCY
)
MONGO_WRITES = Counter("tickwire_processor_mongodb_upserts_total", "documents upserted")
LAG = Gauge(
    "tickwire_processor_consumer_lag_records",
    "high watermark minus position, per owned ticks.raw partition",
    ["partition"],
)
REBALANCES = Counter(
    "tickwire_processor_rebalances_total", "partition revocations and assignments", ["event"]
)
DEPENDENCY_FAILURES = Counter(
    "tickwire_processor_dependency_failures_total",
    "failed calls to a dependency that were retried after a backoff",
    ["dependency"],
)
PAUSED = Gauge(
    "tickwire_processor_paused",
    "1 while processing waits for a dependency to come back",
    ["dependency"],
)
COMMIT_FAILURES = Counter(
    "tickwire_processor_commit_failures_total", "offset commits refused (e.g. by a rebalance)"
)
REBALANCE_FAILURES = Counter(
    "tickwire_processor_rebalance_failures_total",
    "rebalance callbacks that failed (a failed restore is retried with the partition paused)",
    ["event"],
)
UNRESTORED = Gauge(
    "tickwire_processor_unrestored_partitions",
    "assigned partitions paused because their state is not restored yet",
)
STALE_WRITES = Counter(
    "tickwire_processor_stale_writes_total",
    "quotes writes refused because MongoDB already holds a newer version of the symbol",
)
UNPROCESSABLE = Counter(
    "tickwire_processor_unprocessable_total",
    "records that made processing fail unexpectedly, isolated and dead-lettered",
)
PERSIST_PENDING = Gauge(
    "tickwire_processor_persist_pending_documents",
    "documents published but not yet written to MongoDB (coalesced per symbol)",
)
PERSIST_BACKPRESSURE = Gauge(
    "tickwire_processor_persist_backpressure",
    "1 while the loop waits because too many closed bars are not yet written",
)
PERSIST_LAG = Histogram(
    "tickwire_processor_persist_lag_seconds",
    "time from a batch's publish to the MongoDB write and commit covering it",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
