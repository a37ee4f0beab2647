"""The bridge's settings: `BridgeSettings`, built once in `main()` and passed down.

Every field is read from the environment with the `TICKWIRE_` prefix, e.g.
`TICKWIRE_RABBITMQ_URL=amqp://feed:secret@mq:5672/market`. The topology is a JSON
list, e.g.

    TICKWIRE_BRIDGE_BINDINGS='[{"queue": "ticks.nyse", "exchange": "market",
                                "exchange_type": "topic", "routing_keys": ["nyse.#"]}]'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from tickwire.core.settings import CommonSettings


class Binding(BaseModel):
    """One queue the bridge consumes, and the exchange and routing keys that feed it."""

    queue: str = Field(min_length=1, max_length=255)
    exchange: str = Field("tickwire.ticks", max_length=255, description="'' = the default")
    exchange_type: Literal["topic", "direct", "fanout", "headers"] = "topic"
    routing_keys: list[str] = Field(default_factory=lambda: ["#"])


class BridgeSettings(CommonSettings):
    """RabbitMQ queues -> ticks.raw: the topology, the delivery limits and the
    dead-letter exchange."""

    port: int = Field(8090, ge=0, le=65535, description="HTTP listen port (health, metrics)")

    rabbitmq_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="AMQP 0-9-1 URL (user, password and vhost in it)",
    )
    bridge_bindings: list[Binding] = Field(
        default_factory=lambda: [Binding(queue="tickwire.bridge")],
        description="queues consumed, each with its exchange and routing keys (JSON)",
    )
    bridge_declare: bool = Field(
        True, description="declare the exchanges, queues and bindings (durable) at start"
    )
    bridge_dead_letter_exchange: str = Field(
        "tickwire.bridge.dlx", min_length=1, description="where invalid messages go (topic)"
    )
    bridge_dead_letter_queue: str = Field(
        "tickwire.bridge.dead", description="queue bound to it with '#' ('' = none declared)"
    )
    bridge_prefetch: int = Field(
        1000, ge=1, le=65535, description="unacknowledged messages RabbitMQ may push at once"
    )
    bridge_batch_max: int = Field(
        500, ge=1, description="most messages published to Kafka as one batch"
    )
    bridge_publish_timeout_s: float = Field(
        10.0, gt=0, description="how long a batch waits for Kafka's ack before it is nacked"
    )
    bridge_retry_max_s: float = Field(
        10.0, gt=0, description="longest back-off after a failure (Kafka or RabbitMQ)"
    )
    bridge_source: str = Field(
        "/amqp/{queue}", description="CloudEvents source when the message gives none"
    )
    bridge_max_future_skew_s: float = Field(
        5.0, ge=0, description="how far in the future an event's time may be"
    )
