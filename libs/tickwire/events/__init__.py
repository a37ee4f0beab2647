"""The wire contract between tickwire services: Kafka record formats and headers."""
