"""How long the garbage collector stops the process: `tickwire_gc_pause_seconds`.

CPython's cyclic collector runs inside whatever allocation triggered it, on the event
loop's thread: a pass over a generation holding every connection's objects is a
synchronous step the loop-lag histogram sees but cannot name. `gc.callbacks` are told
when each collection starts and stops; the pause is observed per generation. Installed
once per process by `tickwire.core.serve`; costs two calls per collection.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

PAUSE = Histogram(
    "tickwire_gc_pause_seconds",
    "How long one cyclic garbage collection stopped the process, by generation",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
_OBSERVE = [PAUSE.labels(str(g)).observe for g in range(3)]
_started = [0.0]


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _OBSERVE[info["generation"]](time.perf_counter() - _started[0])


def install() -> None:
    """Start observing collections (idempotent)."""
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
