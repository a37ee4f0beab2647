"""Token buckets: `TokenBucket` in process, `SharedRateLimiter` across replicas.

The rule, the same in both: a bucket holds at most `burst` tokens and gains `rate`
tokens per second; a request of `count` events takes `count` tokens if the bucket holds
them, else it takes nothing and is refused with the seconds until it would fit (a
request larger than `burst` never fits). So from a full bucket, over any span of T
seconds at most `burst + rate * T` events are accepted.

Shared: one hash per name in Redis (`tokens`, `updated`), read, refilled and taken in
one Lua script (`BUCKET_SCRIPT`), so the check and the take are atomic across every
replica and no replica's clock matters (the script reads Redis' own `TIME`). Without
Redis (no URL set, or Redis down and the policy fail-open), each replica applies the
same rule to its own `TokenBucket`, starting full: while Redis is down the fleet
accepts up to one key's limit per replica. Fail-closed refuses instead
(`LimitsUnavailableError`, answered 503 with Retry-After).
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis
from tickwire.redis import metrics
from tickwire.redis.errors import LimitsUnavailableError, RedisUnavailableError
from tickwire.redis.link import RedisLink

#: KEYS[1] the bucket; ARGV rate (tokens/s), burst, count. Returns the wait in seconds
#: as a string (Lua numbers become integers on the way out): "0" taken, "-1" never fits.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(held[1]) or burst
local updated = tonumber(held[2]) or now
if now > updated then
  tokens = math.min(burst, tokens + (now - updated) * rate)
else
  now = updated
end
local wait = 0
if count > burst then
  wait = -1
elseif count <= tokens then
  tokens = tokens - count
else
  wait = (count - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'updated', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate) * 1000) + 60000)
return string.format('%.17g', wait)
"""


class TokenBucket:
    """`rate` tokens per second up to `burst`, in this process; 0 rate means no limit."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self, count: int) -> float:
        """Take `count` tokens and return 0, or take none and return the seconds until
        they would be there (infinity if count exceeds the burst)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if count <= self.tokens:
            self.tokens -= count
            return 0.0
        if count > self.burst:
            return math.inf
        return (count - self.tokens) / self.rate


class SharedRateLimiter:
    """Token buckets shared by every replica through Redis, with the fallback policy."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._script = link.client.register_script(BUCKET_SCRIPT) if link.client else None

    async def take(self, name: str, local: TokenBucket, count: int) -> float:
        """Like `local.take(count)`, but against the bucket `name` in Redis (with the
        local bucket's rate and burst); the local bucket itself answers when Redis is
        not configured, or is down and the policy is fail-open. Raises
        LimitsUnavailableError when Redis is down and the policy is fail-closed."""
        if local.rate <= 0:
            return 0.0
        if count > local.burst:
            return math.inf
        script = self._script
        if script is None:
            return local.take(count)
        key = self.link.key("rate", name)
        args: list[str | int] = [repr(float(local.rate)), repr(float(local.burst)), count]

        async def run(client: aioredis.Redis) -> bytes:
            wait: bytes = await script(keys=[key], args=args, client=client)
            return wait

        try:
            answer = await self.link.call("rate_limit", run)
        except RedisUnavailableError:
            metrics.FALLBACKS.labels("rate_limit", self.link.policy).inc()
            if self.link.policy == "fail-closed":
                raise LimitsUnavailableError(
                    "the shared rate limit cannot be checked (Redis is down); retry shortly",
                    retry_after=self.link.settings.redis_probe_s,
                ) from None
            return local.take(count)
        wait = float(answer)
        return math.inf if wait < 0 else wait
