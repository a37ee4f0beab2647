"""Kafka plumbing shared by the services: clients built the same way, topics, DLQ."""
