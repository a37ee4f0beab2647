"""Centrifugo v6, the gateway benchmark's peer: built from its Go module into the cache
(install.py) and configured for a loopback fan-out run fed from Kafka (config.py)."""
