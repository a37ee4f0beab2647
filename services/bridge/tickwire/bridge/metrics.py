"""The bridge's Prometheus metrics (RED per route comes from tickwire.observability).

tickwire_bridge_messages_consumed_total             delivered by RabbitMQ
tickwire_bridge_messages_published_total            acknowledged by Kafka, then acked
tickwire_bridge_messages_rejected_total{reason}     dead-lettered: malformed, invalid,
                                                    unknown_type, unsupported_content_type
tickwire_bridge_messages_requeued_total             nacked back to RabbitMQ (Kafka failed)
tickwire_bridge_inflight_messages                   delivered, not yet acked or rejected
tickwire_bridge_batch_messages                      messages per Kafka batch (histogram)
tickwire_bridge_kafka_publish_seconds               batch handed to Kafka until acked
tickwire_bridge_failures_total{dependency}          sessions ended by rabbitmq or kafka
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter("tickwire_bridge_messages_consumed_total", "Messages delivered by RabbitMQ")
PUBLISHED = Counter(
    "tickwire_bridge_messages_published_total",
    "Messages published to ticks.raw and acknowledged by Kafka",
)
REJECTED = Counter(
    "tickwire_bridge_messages_rejected_total",
    "Messages dead-lettered, by reason",
    ["reason"],
)
REQUEUED = Counter(
    "tickwire_bridge_messages_requeued_total",
    "Messages returned to RabbitMQ because Kafka did not acknowledge them",
)
INFLIGHT = Gauge(
    "tickwire_bridge_inflight_messages", "Messages delivered and not yet acked or rejected"
)
BATCH_MESSAGES = Histogram(
    "tickwire_bridge_batch_messages",
    "Messages per Kafka batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
KAFKA_SECONDS = Histogram(
    "tickwire_bridge_kafka_publish_seconds",
    "Time from handing a batch to Kafka until every record is acknowledged",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FAILURES = Counter(
    "tickwire_bridge_failures_total",
    "Consuming sessions ended by a failing dependency",
    ["dependency"],
)
