"""Ingest's Prometheus metrics (RED per route comes from tickwire.observability).

tickwire_ingest_events_accepted_total{type}        acknowledged by Kafka
tickwire_ingest_events_rejected_total{reason}      invalid, malformed, unauthorized,
                                                   forbidden, rate_limited, too_large,
                                                   limits_unavailable, overloaded,
                                                   kafka_unavailable
(tickwire_redis_* for the shared rate limits: tickwire.redis.metrics)
tickwire_ingest_request_events                     events per request (histogram)
tickwire_ingest_kafka_batch_records                records per Kafka batch (histogram)
tickwire_ingest_kafka_send_seconds                 batch hand-over to ack (histogram)
tickwire_ingest_inflight_events                    events waiting for Kafka's ack
tickwire_ingest_batches_dropped_total              batches every requester gave up on
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)

EVENTS_ACCEPTED = Counter(
    "tickwire_ingest_events_accepted_total", "Events acknowledged by Kafka", ["type"]
)
EVENTS_REJECTED = Counter(
    "tickwire_ingest_events_rejected_total", "Events refused, by reason", ["reason"]
)
REQUEST_EVENTS = Histogram("tickwire_ingest_request_events", "Events per request", buckets=_SIZES)
KAFKA_BATCH_RECORDS = Histogram(
    "tickwire_ingest_kafka_batch_records", "Records per Kafka batch", buckets=_SIZES
)
KAFKA_SEND_SECONDS = Histogram(
    "tickwire_ingest_kafka_send_seconds",
    "Time from handing a batch to the producer until Kafka acknowledged it",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFLIGHT = Gauge("tickwire_ingest_inflight_events", "Events waiting for Kafka's ack")
BATCHES_DROPPED = Counter(
    "tickwire_ingest_batches_dropped_total",
    "Batches not sent because every request waiting on them had already timed out",
)
