"""tickwire.bridge: RabbitMQ queues -> ticks.raw with ingest's contract (see the README)."""
