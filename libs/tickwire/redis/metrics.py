"""Prometheus metrics of tickwire.redis (no per-key or per-client labels).

`part` is `rate_limit`, `connections` or `cache`; `policy` the fallback applied.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

UP = Gauge("tickwire_redis_up", "1 while Redis answers, 0 while it is down or unset")
FALLBACKS = Counter(
    "tickwire_redis_fallbacks_total",
    "Decisions taken without Redis because it did not answer",
    ["part", "policy"],
)
ERRORS = Counter(
    "tickwire_redis_errors_total", "Redis calls that failed (timeout, refused, ...)", ["part"]
)
CACHE = Counter(
    "tickwire_cache_requests_total",
    "Query-cache lookups: hit, miss, stale (held but older than applied), bypass",
    ["cache", "result"],
)
CACHE_STORED = Counter(
    "tickwire_cache_stored_total",
    "Answers stored in the query cache (only those covering what the gateway applied)",
    ["cache"],
)
