"""The shared token bucket and connection counter on a real Redis: the limit holds across
replicas (one link each, as two processes would have), leases make a crashed replica's
counts vanish, counts come back after a Redis restart, and the fallback policy applies
while Redis is down."""

from __future__ import annotations

import asyncio
import math

import pytest

from tests.integration.redis import redis_helpers as rh
from tickwire.devstack.redis import RedisServer
from tickwire.redis.connections import SharedConnectionCounter
from tickwire.redis.errors import LimitsUnavailableError
from tickwire.redis.link import RedisLink
from tickwire.redis.ratelimit import SharedRateLimiter, TokenBucket

#: The documented rule: from a full bucket at most burst + rate * T events in T seconds.
#: With rate 0.001/s a batch of 10 needs 10,000 s of refill, so within a test exactly
#: floor(burst / 10) batches of 10 fit, whatever the machine's speed.
RATE, BURST, BATCH = 0.001, 100.0, 10


async def test_a_key_limit_holds_across_two_replicas(redis_server: RedisServer) -> None:
    key_prefix = rh.prefix()
    a = SharedRateLimiter(await rh.link(redis_server.url, key_prefix))
    b = SharedRateLimiter(await rh.link(redis_server.url, key_prefix))
    waits = []
    for i in range(30):  # alternate replicas, 300 events asked for
        limiter = (a, b)[i % 2]
        waits.append(await limiter.take("feed-a", TokenBucket(RATE, BURST), BATCH))
    accepted = sum(BATCH for w in waits if w == 0)
    assert accepted == BURST  # one bucket for both: not 2 x burst
    assert waits[:10] == [0.0] * 10
    # refused: the wait the rule gives, (count - tokens) / rate, with tokens < 1
    assert all((BATCH - 1) / RATE < w <= BATCH / RATE for w in waits[10:])
    # another key has its own bucket
    assert await a.take("feed-b", TokenBucket(RATE, BURST), BATCH) == 0
    # more than the burst never fits
    assert await b.take("feed-b", TokenBucket(RATE, BURST), 101) == math.inf
    await a.link.close()
    await b.link.close()


async def test_fallback_policies_while_redis_is_down(redis_server: RedisServer) -> None:
    key_prefix = rh.prefix()
    opened = SharedRateLimiter(await rh.link(redis_server.url, key_prefix))
    closed = SharedRateLimiter(
        await rh.link(redis_server.url, key_prefix, redis_fallback="fail-closed")
    )
    assert await opened.take("k", TokenBucket(RATE, BURST), 60) == 0
    assert await closed.take("k", TokenBucket(RATE, BURST), 40) == 0
    assert await opened.take("k", TokenBucket(RATE, BURST), 10) > 0  # shared: 100 taken
    fallbacks = rh.sample("tickwire_redis_fallbacks_total", part="rate_limit", policy="fail-open")
    redis_server.stop()
    try:
        # fail-open: this replica's own bucket, starting full (the documented fallback)
        local = TokenBucket(RATE, BURST)
        answers = [await opened.take("k", local, BATCH) for _ in range(12)]
        assert answers[:10] == [0.0] * 10
        assert all(w > 0 for w in answers[10:])
        assert not opened.link.up
        assert (
            rh.sample("tickwire_redis_fallbacks_total", part="rate_limit", policy="fail-open")
            == fallbacks + 12
        )
        # fail-closed: refused with a retry hint
        with pytest.raises(LimitsUnavailableError) as refused:
            await closed.take("k", TokenBucket(RATE, BURST), 1)
        assert refused.value.retry_after > 0
    finally:
        redis_server.start()
    # Redis back (empty: no persistence): shared again once the link sees it
    assert await opened.link.connect()
    assert await closed.link.connect()
    taken = [
        await (opened, closed)[i % 2].take("k", TokenBucket(RATE, BURST), 10) for i in range(12)
    ]
    assert taken[:10] == [0.0] * 10
    assert all(w > 0 for w in taken[10:])
    await opened.link.close()
    await closed.link.close()


def _counter(link: RedisLink, cap: int = 2) -> SharedConnectionCounter:
    return SharedConnectionCounter(link, {"ip": 100, "subject": cap})


async def test_connection_cap_across_replicas_and_crashed_leases(
    redis_server: RedisServer,
) -> None:
    key_prefix = rh.prefix()
    link_a = rh.settings(redis_server.url, key_prefix, redis_lease_s=1)
    a_link = RedisLink.from_settings(link_a)
    a = _counter(a_link)
    assert await a_link.connect()  # the re-sync hook takes the first lease
    b_link = RedisLink.from_settings(rh.settings(redis_server.url, key_prefix))  # 15 s
    b = _counter(b_link)
    assert await b_link.connect()
    alice = [("ip", "10.0.0.1"), ("subject", "alice")]
    assert await a.acquire(alice) is None
    assert await b.acquire(alice) is None
    assert await a.acquire(alice) == "subject"
    assert await b.acquire(alice) == "subject"
    assert await b.acquire([("ip", "10.0.0.1"), ("subject", "bob")]) is None
    await b.release(alice)
    assert await a.acquire(alice) is None  # a holds 2 now, b holds bob only
    assert await b.acquire(alice) == "subject"
    # a "crashes": it never renews its lease (its run() is not running); once the
    # lease key has expired its two connections stop counting
    client = b_link.client
    assert client is not None
    lease_key = a_link.key("lease", a.lease)
    for _ in range(200):
        if not await client.exists(lease_key):
            break
        await asyncio.sleep(0.05)
    assert not await client.exists(lease_key)
    assert await b.acquire(alice) is None
    assert await b.acquire(alice) is None
    assert await b.acquire(alice) == "subject"
    await a_link.close()
    await b_link.close()


async def test_counts_are_republished_after_a_redis_restart(redis_server: RedisServer) -> None:
    key_prefix = rh.prefix()
    a_link = RedisLink.from_settings(rh.settings(redis_server.url, key_prefix))
    b_link = RedisLink.from_settings(rh.settings(redis_server.url, key_prefix))
    a, b = _counter(a_link), _counter(b_link)
    assert await a_link.connect()
    assert await b_link.connect()
    alice = [("ip", "10.0.0.2"), ("subject", "alice")]
    assert await a.acquire(alice) is None
    assert await a.acquire(alice) is None
    redis_server.stop()
    redis_server.start()  # empty: every count and lease is gone
    # b's first call finds its lease gone: b re-syncs (nothing of its own) and asks
    # again; a's counts are gone too, so b may open one
    assert await b.acquire(alice) is None
    # a finds its lease gone: it re-publishes its two connections, then asks again
    assert await a.acquire(alice) == "subject"
    assert a_link.up
    assert b_link.up
    assert await b.acquire(alice) == "subject"
    await b.release(alice)
    await a.release(alice)
    assert await b.acquire(alice) is None
    assert await a.acquire(alice) == "subject"
    await a_link.close()
    await b_link.close()
