"""`ReadThroughCache`: answers shared by replicas, stored under keys that name the
version of the data they were computed from.

The caller builds the key from what it has applied (for the gateway's bars: the Kafka
offset of the last final bar of that symbol and interval), so an update it applies
moves it to a new key at once: invalidation costs no Redis write, every replica that
has applied the same records shares the same entries, and an entry can never be read
by a replica that has applied something newer. Entries also expire after `ttl_s`.
The caller stores only answers that cover what it applied (see the gateway's
`querycache`). Redis down or not configured: every lookup is a `bypass` (the store
answers), never an error.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from tickwire.redis import metrics
from tickwire.redis.errors import RedisUnavailableError
from tickwire.redis.link import RedisLink


class ReadThroughCache:
    """Get and put opaque byte answers under versioned keys, counted in metrics."""

    def __init__(self, link: RedisLink, name: str, ttl_s: float) -> None:
        self.link = link
        self.name = name
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.hits = metrics.CACHE.labels(name, "hit")
        self.misses = metrics.CACHE.labels(name, "miss")
        self.bypasses = metrics.CACHE.labels(name, "bypass")
        self.stale = metrics.CACHE.labels(name, "stale")
        self.stored = metrics.CACHE_STORED.labels(name)

    @property
    def usable(self) -> bool:
        """Whether lookups go to Redis now (configured and up)."""
        return self.link.configured and self.link.up

    async def get(self, key: str) -> bytes | None:
        """The stored answer, or None (a miss, or a bypass while Redis is down)."""
        if not self.usable:
            self.bypasses.inc()
            return None
        full = self.link.key("cache", self.name, key)

        async def read(client: aioredis.Redis) -> bytes | None:
            value = await client.get(full)
            return value.encode() if isinstance(value, str) else value

        try:
            value = await self.link.call("cache", read)
        except RedisUnavailableError:
            metrics.FALLBACKS.labels("cache", "bypass").inc()
            self.bypasses.inc()
            return None
        (self.hits if value is not None else self.misses).inc()
        return value

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The stored answers of several keys in one round trip (None where missing);
        all None while Redis is down."""
        if not self.usable:
            self.bypasses.inc(len(keys))
            return [None] * len(keys)
        full = [self.link.key("cache", self.name, key) for key in keys]

        async def read(client: aioredis.Redis) -> list[bytes | None]:
            values = await client.mget(full)
            return [v.encode() if isinstance(v, str) else v for v in values]

        try:
            values = await self.link.call("cache", read)
        except RedisUnavailableError:
            metrics.FALLBACKS.labels("cache", "bypass").inc()
            self.bypasses.inc(len(keys))
            return [None] * len(keys)
        found = sum(v is not None for v in values)
        self.hits.inc(found)
        self.misses.inc(len(values) - found)
        return values

    async def put_many(self, entries: dict[str, bytes]) -> None:
        """Store several answers for `ttl_s` in one round trip."""
        if not self.usable or not entries:
            return
        ttl = self.ttl_ms

        async def write(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(self.link.key("cache", self.name, key), value, px=ttl)
                await pipe.execute()

        try:
            await self.link.call("cache", write)
            self.stored.inc(len(entries))
        except RedisUnavailableError:
            metrics.FALLBACKS.labels("cache", "bypass").inc()

    async def put(self, key: str, value: bytes) -> None:
        """Store an answer for `ttl_s` (nothing happens while Redis is down)."""
        if not self.usable:
            return
        full, ttl = self.link.key("cache", self.name, key), self.ttl_ms

        async def write(client: aioredis.Redis) -> None:
            await client.set(full, value, px=ttl)

        try:
            await self.link.call("cache", write)
            self.stored.inc()
        except RedisUnavailableError:
            metrics.FALLBACKS.labels("cache", "bypass").inc()
