"""Redis where it earns its place: limits that hold across replicas and a shared
read-through cache, each with a documented fallback when Redis is absent or down.

    settings.py     RedisSettings: the URL (redis:// or rediss:// for TLS), the fallback
                    policy, timeouts; mixed into a service's settings class
    link.py         RedisLink: the client, whether Redis is up, and the watcher that
                    probes it and runs re-sync hooks when it comes back
    ratelimit.py    token buckets: the in-process one and the shared one (one Lua script)
    connections.py  open-connection counts per scope, shared through replica leases
    cache.py        versioned read-through cache entries
    metrics.py      tickwire_redis_* metrics (fallbacks, up, cache hits and misses)
    errors.py       the error tree
"""
