"""The collector's pauses are observed per generation (`tickwire_gc_pause_seconds`)."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from tickwire.observability import gcpause


def count(generation: int) -> float:
    name = "tickwire_gc_pause_seconds_count"
    return REGISTRY.get_sample_value(name, {"generation": str(generation)}) or 0.0


def test_each_collection_is_one_sample_of_its_generation() -> None:
    gcpause.install()
    gcpause.install()  # idempotent: still one callback
    assert gc.callbacks.count(gcpause._callback) == 1
    before = [count(g) for g in range(3)]
    gc.collect(0)
    gc.collect(2)
    assert count(0) >= before[0] + 1
    assert count(2) >= before[2] + 1
    total = "tickwire_gc_pause_seconds_sum"
    assert (REGISTRY.get_sample_value(total, {"generation": "2"}) or 0.0) > 0.0
