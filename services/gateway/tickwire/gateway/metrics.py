"""The gateway's Prometheus metrics (no per-client or per-event labels).

Hot-path counts are gathered in plain integers during a flush cycle and published once
per cycle, so fan-out does not pay a metrics call per delivered event.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("tickwire_gateway_connections", "Connected streaming clients", ["transport"])
SUBSCRIPTIONS = Gauge(
    "tickwire_gateway_subscriptions", "Subscribed symbols summed over connections (* counts 1)"
)
EVENTS_SENT = Counter(
    "tickwire_gateway_events_sent_total", "Live updates written to client sockets"
)
BYTES_SENT = Counter("tickwire_gateway_sent_bytes_total", "Bytes written to streaming clients")
CONFLATED = Counter(
    "tickwire_gateway_conflated_total", "Unsent updates replaced by a newer one for the key"
)
DROPPED = Counter("tickwire_gateway_dropped_total", "Records not forwarded, by reason", ["reason"])
DISCONNECTED = Counter(
    "tickwire_gateway_disconnected_total", "Connections cut by the server, by reason", ["reason"]
)
WRITE_BUFFER_MAX = Gauge(
    "tickwire_gateway_write_buffer_max_bytes",
    "Bytes queued in the process for the most backed-up connection, at the last sweep "
    "(at most write_high_water plus one flush: the slow-client bound)",
)
WRITE_BUFFER = Gauge(
    "tickwire_gateway_write_buffer_bytes",
    "Bytes queued in the process for all connections, at the last sweep",
)
RESUMES = Counter("tickwire_gateway_resumes_total", "Cursor resumes by outcome", ["outcome"])
REFUSED = Counter(
    "tickwire_gateway_refused_total", "Stream requests refused, by HTTP status", ["status"]
)
ADMISSIONS = Counter(
    "tickwire_gateway_admissions_total",
    "New streams and resumes by admission outcome (immediate, queued, refused)",
    ["outcome"],
)
ADMISSION_QUEUE = Gauge(
    "tickwire_gateway_admission_queued", "Stream requests waiting for an admission token"
)
RECORDS = Counter("tickwire_gateway_records_total", "Kafka records read", ["topic"])
DELIVERY_LATENCY = Histogram(
    "tickwire_gateway_delivery_latency_seconds",
    "Ingest receive time to socket write, one sample per update at the flush that first writes it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FLUSH_PASS = Histogram(
    "tickwire_gateway_flush_pass_seconds",
    "Time one flush pass took to write every dirty connection",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
WRITES = Counter(
    "tickwire_gateway_socket_writes_total",
    "Writes to client sockets (each carries every update queued for that client)",
)
CONSUMER_LAG = Gauge(
    "tickwire_gateway_consumer_lag_records", "High watermark minus position, summed", ["topic"]
)
REPLAYS = Counter(
    "tickwire_gateway_replays_total", "Replays from since= by where they were read", ["outcome"]
)
DELAYED_HELD = Gauge(
    "tickwire_gateway_delayed_held_records",
    "Records a delayed feed has read and holds until its delay passes",
    ["delay"],
)
