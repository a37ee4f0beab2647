"""Open-connection counts per scope (e.g. per client IP, per subject), held to a cap
across every replica through Redis, with leases so a crashed replica's counts vanish.

Layout: one hash per scope value, `{prefix}:conn:<scope>:<value>`, whose fields are
replica leases (`<replica id>.<epoch>`) and whose values are that lease's open
connections; one key per lease, `{prefix}:lease:<lease>`, that lives `lease_s` and is
renewed every third of it. `ACQUIRE` (one Lua script, atomic) sums the fields of each
scope whose lease key still exists (dropping the dead ones: a crashed replica's counts
stop counting at most `lease_s` after its last renewal), refuses when a sum has
reached its cap, else adds one to every scope. Releasing subtracts one.

This replica's own counts (`local`) are the source of truth for its share: when Redis
comes back after being down, or the lease was found expired, the replica takes a new
lease epoch and writes its counts afresh under it, so connections opened or closed
while Redis was unreachable count correctly again and nothing is counted twice. While
Redis is down the fallback policy decides: fail-open applies the caps to this
replica's own counts, fail-closed refuses (`LimitsUnavailableError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Sequence

import redis.asyncio as aioredis
from tickwire.redis import metrics
from tickwire.redis.errors import LimitsUnavailableError, RedisUnavailableError
from tickwire.redis.link import RedisLink

log = logging.getLogger(__name__)

#: KEYS the scope hashes; ARGV[1] this lease, ARGV[2] the lease-key prefix, ARGV[3..]
#: the cap of each key. Returns 0 (counted in every scope), the index of the first
#: scope at its cap (nothing counted), or -1 when this replica's own lease is gone (a
#: restarted Redis): nothing counted, the caller re-syncs and asks again.
ACQUIRE = """
local lease = ARGV[1]
local prefix = ARGV[2]
if redis.call('EXISTS', prefix .. lease) == 0 then
  return -1
end
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 + i])
  local fields = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #fields, 2 do
    if redis.call('EXISTS', prefix .. fields[j]) == 1 then
      total = total + tonumber(fields[j + 1])
    else
      redis.call('HDEL', key, fields[j])
    end
  end
  if total >= cap then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, lease, 1)
end
return 0
"""

#: KEYS the scope hashes; ARGV[1] this lease. One fewer in each; a field at 0 goes.
RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, ARGV[1], -1) <= 0 then
    redis.call('HDEL', key, ARGV[1])
  end
end
return 0
"""

Scope = tuple[str, str]  # (scope name, value), e.g. ("ip", "10.0.0.7")


class SharedConnectionCounter:
    """Counts this replica's open connections per scope and holds the caps fleet-wide."""

    def __init__(self, link: RedisLink, caps: dict[str, int]) -> None:
        self.link = link
        self.caps = caps
        self.replica = uuid.uuid4().hex[:12]
        self.epoch = 0
        self.local: Counter[Scope] = Counter()
        self.changes = 0  # bumped on every local change: re-sync repeats until stable
        self._lock = asyncio.Lock()  # re-syncs and acquires, one at a time
        self.lease_ms = int(link.settings.redis_lease_s * 1000)
        client = link.client
        self._acquire = client.register_script(ACQUIRE) if client else None
        self._release = client.register_script(RELEASE) if client else None
        link.on_reconnect(self.resync)

    @property
    def lease(self) -> str:
        return f"{self.replica}.{self.epoch}"

    def _key(self, scope: Scope) -> str:
        return self.link.key("conn", scope[0], scope[1])

    def _local_refusal(self, scopes: Sequence[Scope]) -> str | None:
        for scope in scopes:
            if self.local[scope] >= self.caps[scope[0]]:
                return scope[0]
        return None

    async def acquire(self, scopes: Sequence[Scope]) -> str | None:
        """Count one more connection in every scope and return None, or count nothing
        and return the name of the first scope at its cap. Raises
        LimitsUnavailableError when Redis is down and the policy is fail-closed.

        Serialized with re-syncs (one lock): a re-sync's snapshot of the local counts
        never misses a connection Redis has just counted under the previous epoch."""
        async with self._lock:
            return await self._acquire_locked(scopes)

    async def _acquire_locked(self, scopes: Sequence[Scope]) -> str | None:
        script = self._acquire
        if script is None:
            refused = self._local_refusal(scopes)
        else:
            keys = [self._key(s) for s in scopes]
            args: list[str | int] = [
                self.lease,
                self.link.key("lease", ""),
                *(self.caps[s[0]] for s in scopes),
            ]

            async def run(client: aioredis.Redis) -> int:
                for _ in range(2):
                    args[0] = self.lease
                    answer = int(await script(keys=keys, args=args, client=client))
                    if answer >= 0:
                        return answer
                    log.warning("connection-count lease %s is gone; re-syncing", self.lease)
                    await self._resync(client)
                raise RedisUnavailableError("the lease vanished again right after a re-sync")

            try:
                index = await self.link.call("connections", run)
                refused = scopes[index - 1][0] if index else None
            except RedisUnavailableError:
                metrics.FALLBACKS.labels("connections", self.link.policy).inc()
                if self.link.policy == "fail-closed":
                    raise LimitsUnavailableError(
                        "the shared connection limit cannot be checked (Redis is down); "
                        "retry shortly",
                        retry_after=self.link.settings.redis_probe_s,
                    ) from None
                refused = self._local_refusal(scopes)
        if refused is None:
            for scope in scopes:
                self.local[scope] += 1
            self.changes += 1
        return refused

    async def release(self, scopes: Sequence[Scope]) -> None:
        """Count one connection fewer in every scope (Redis down: only here; the
        re-sync on its return corrects Redis)."""
        for scope in scopes:
            self.local[scope] -= 1
            if self.local[scope] <= 0:
                del self.local[scope]
        self.changes += 1
        script = self._release
        if script is None or not self.link.up:
            return
        keys = [self._key(s) for s in scopes]
        lease = self.lease

        async def run(client: aioredis.Redis) -> None:
            await script(keys=keys, args=[lease], client=client)

        # Redis failing now is counted in the link's errors; re-synced when it is back
        with contextlib.suppress(RedisUnavailableError):
            await self.link.call("connections", run)

    async def resync(self, client: aioredis.Redis) -> None:
        """Write this replica's counts under a new lease epoch (the old lease's fields
        stop counting once its key is deleted); repeated until no connection opened or
        closed meanwhile."""
        async with self._lock:
            await self._resync(client)

    async def _resync(self, client: aioredis.Redis) -> None:
        while True:
            seen = self.changes
            old = self.link.key("lease", self.lease)
            self.epoch += 1
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self.link.key("lease", self.lease), 1, px=self.lease_ms)
                for scope, count in self.local.items():
                    pipe.hset(self._key(scope), self.lease, count)
                pipe.delete(old)
                await pipe.execute()
            if self.changes == seen:
                return

    async def _renew(self, client: aioredis.Redis) -> bool:
        key = self.link.key("lease", self.lease)
        return bool(await client.set(key, 1, px=self.lease_ms, xx=True))

    async def run(self) -> None:
        """Runnable: renew the lease every third of its life; a lease found gone (Redis
        restarted, or this replica was cut off longer than the lease) is re-synced."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            if not self.link.up:
                continue
            try:
                if not await self.link.call("connections", self._renew):
                    log.warning("connection-count lease %s had expired; re-syncing", self.lease)
                    await self.link.call("connections", self.resync)
            except RedisUnavailableError:
                continue
