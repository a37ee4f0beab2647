"""The one partitioner: which partition of a topic a key lands on, as the Java client's
default partitioner chooses it (murmur2 of the key bytes, made positive, modulo the
partition count). Every tickwire producer, and the gateway when it predicts where a
symbol's records are, uses it, so one symbol stays on one partition whoever wrote it.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as _murmur2


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of the key as a signed 32-bit int (`Utils.murmur2` in Java)."""
    hashed: int = _murmur2(key)
    return hashed - (1 << 32) if hashed >= 1 << 31 else hashed


def partition_for(key: bytes, partitions: int) -> int:
    """The partition (0 .. partitions-1) for a non-null key: `toPositive(murmur2) % n`."""
    if partitions <= 0:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    hashed: int = _murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions
