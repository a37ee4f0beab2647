"""The query API's caches with two gateways (one Kafka, one MongoDB, one Redis): each
gateway's own in-process map in front of the shared Redis. An answer one replica read
through is a Redis hit for the other, and a local hit for itself from then on; a final
bar the gateways applied moves the key at once, and an answer MongoDB gives before it
has persisted that bar (the processor writes behind its publishes) is served but never
stored, so a cached answer is never older than what the gateway has applied; Redis
down: MongoDB answers (a bypass), no error, and the local map keeps serving."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import httpx

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.integration.redis import redis_helpers as rh
from tickwire.devstack.redis import RedisServer
from tickwire.events import wire
from tickwire.gateway.querycache import QueryCache
from tickwire.gateway.settings import GatewaySettings
from tickwire.mongo import documents
from tickwire.redis.link import RedisLink

SYMBOL = "CCH"


def _final(index: int, revision: int) -> tuple[g.Record, wire.Bar]:
    """A final 1m bar record by the documented rule (version 2 * revision + 1), and the
    Bar the processor would store for it."""
    record = g.bar_state(SYMBOL, index, revision=revision, final=True, interval="1m")
    return record, wire.BAR_DECODER.decode(record[1])


async def _persist(mongo: Any, bars: list[wire.Bar]) -> None:
    """Store bars as the processor does (one idempotent `$set` per bucket)."""
    for bar in bars:
        write = documents.bucket_write(bar)
        await mongo.bars.update_one({"_id": write.id}, write.update(), upsert=True)


def _counts() -> dict[str, float]:
    out = {
        r: rh.sample("tickwire_cache_requests_total", cache="bars", result=r)
        for r in ("hit", "miss", "bypass")
    }
    out["stored"] = rh.sample("tickwire_cache_stored_total", cache="bars")
    for r in ("hit", "miss"):
        out[f"local_{r}"] = rh.sample("tickwire_cache_requests_total", cache="bars_local", result=r)
    return out


def _delta(before: dict[str, float]) -> dict[str, float]:
    now = _counts()
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


async def _bars(http: httpx.AsyncClient, base: str) -> list[tuple[int, int]]:
    """(minute index, version) of the latest 1m bars one gateway answers."""
    resp = await http.get(f"{base}/v1/bars/{SYMBOL}", params={"interval": "1m"})
    assert resp.status_code == 200, resp.text
    return [(_minute(bar), bar["version"]) for bar in resp.json()["bars"]]


def _minute(bar: dict[str, Any]) -> int:
    start = dt.datetime.fromisoformat(bar["start"])
    return int((start - g.BASE_TIME).total_seconds() // 60)


async def _until_bar(client: g.SseClient, index: int, version: int) -> None:
    """Wait until a stream has delivered this bar state: the gateway has applied it."""

    def seen() -> bool:
        return any(
            e.event == "bar" and _minute(e.json()) == index and e.json()["version"] == version
            for e in client.events
        )

    while not seen():
        await client.wait_for(len(client.events) + 1)


async def test_bars_cache_is_shared_and_never_older_than_applied(
    redis_server: RedisServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    first = [_final(i, revision=3) for i in range(5)]
    await _persist(mongo, [bar for _, bar in first])
    await produce(kafka_bootstrap, topics.bars, [record for record, _ in first])
    key_prefix = rh.prefix()

    def settings() -> Any:
        return g.settings_for(
            kafka_bootstrap,
            mongodb_url,
            db_name,
            topics,
            redis_url=redis_server.url,
            redis_key_prefix=key_prefix,
            redis_probe_s=0.2,
        )

    stream = f"/v1/stream?symbols={SYMBOL}&bars=1m"
    async with (
        g.running_gateway(settings()) as a,
        g.running_gateway(settings()) as b,
        g.sse_client(a, stream) as seen_a,
        g.sse_client(b, stream) as seen_b,
        httpx.AsyncClient(timeout=30) as http,
    ):
        before = _counts()
        assert await _bars(http, a) == [(i, 7) for i in range(5)]
        assert _delta(before) == {"local_miss": 1, "miss": 1, "stored": 1}
        before = _counts()
        assert await _bars(http, b) == [(i, 7) for i in range(5)]  # the other replica
        assert _delta(before) == {"local_miss": 1, "hit": 1}
        before = _counts()
        assert await _bars(http, a) == [(i, 7) for i in range(5)]  # again: from memory
        assert await _bars(http, b) == [(i, 7) for i in range(5)]
        assert _delta(before) == {"local_hit": 2}

        # bar 5 closes: both gateways apply it before MongoDB has it
        record, bar5 = _final(5, revision=2)
        await produce(kafka_bootstrap, topics.bars, [record])
        await _until_bar(seen_a, 5, 5)
        await _until_bar(seen_b, 5, 5)
        before = _counts()
        assert await _bars(http, a) == [(i, 7) for i in range(5)]  # what MongoDB has
        assert await _bars(http, b) == [(i, 7) for i in range(5)]
        # new key; the lagging answer is not stored
        assert _delta(before) == {"local_miss": 2, "miss": 2}

        await _persist(mongo, [bar5])  # the processor's write lands
        before = _counts()
        assert await _bars(http, b) == [*[(i, 7) for i in range(5)], (5, 5)]
        assert await _bars(http, a) == [*[(i, 7) for i in range(5)], (5, 5)]
        assert _delta(before) == {"local_miss": 2, "miss": 1, "stored": 1, "hit": 1}

        # a late trade revises closed bar 3 (final again, version 9)
        record, bar3 = _final(3, revision=4)
        await produce(kafka_bootstrap, topics.bars, [record])
        await _until_bar(seen_a, 3, 9)
        await _until_bar(seen_b, 3, 9)
        before = _counts()
        assert (3, 7) in await _bars(http, a)  # MongoDB lags: served, not stored
        await _persist(mongo, [bar3])
        revised = [(0, 7), (1, 7), (2, 7), (3, 9), (4, 7), (5, 5)]
        assert await _bars(http, b) == revised
        assert await _bars(http, a) == revised
        assert _delta(before) == {"local_miss": 3, "miss": 2, "stored": 1, "hit": 1}

        redis_server.stop()
        try:
            before = _counts()
            assert await _bars(http, a) == revised  # each replica's own map answers
            assert await _bars(http, b) == revised
            assert _delta(before) == {"local_hit": 2}

            # bar 6 closes and is persisted while Redis is down: a new key everywhere
            record, bar6 = _final(6, revision=2)
            await _persist(mongo, [bar6])
            await produce(kafka_bootstrap, topics.bars, [record])
            await _until_bar(seen_a, 6, 5)
            await _until_bar(seen_b, 6, 5)
            before = _counts()
            latest = [*revised, (6, 5)]
            assert await _bars(http, a) == latest  # MongoDB answers
            assert await _bars(http, b) == latest
            delta = _delta(before)
            # the first call on each replica finds Redis gone (a miss of the link:
            # counted as a bypass), later ones skip Redis while it is down
            assert delta == {"local_miss": 2, "bypass": 2}
            before = _counts()
            assert await _bars(http, a) == latest  # kept in memory without Redis
            assert _delta(before) == {"local_hit": 1}
        finally:
            with contextlib.suppress(Exception):
                redis_server.start()


class _Hub:
    """What the quotes cache reads of a hub: the newest state held per symbol."""

    def __init__(self, held: dict[str, int]) -> None:
        self.quotes = {symbol: (version, b"{}") for symbol, version in held.items()}


async def test_cached_quotes_are_never_older_than_what_the_gateway_holds(
    redis_server: RedisServer,
) -> None:
    settings = GatewaySettings(
        gateway_auth="off", redis_url=redis_server.url, redis_key_prefix=rh.prefix()
    )
    link = RedisLink.from_settings(settings)
    assert await link.connect()
    cache = QueryCache(link, settings)
    await cache.store_quotes([g.ticker_state("QA", 5), g.ticker_state("QB", 5)])
    stale = rh.sample("tickwire_cache_requests_total", cache="quotes", result="stale")
    hub: Any = _Hub({"QA": 3, "QB": 7})  # QA: the cache is newer; QB: the gateway is
    found = await cache.cached_quotes(hub, ["QA", "QB", "QC"])
    assert set(found) == {"QA"}
    assert wire.STATE_DECODER.decode(found["QA"]).version == 5
    assert rh.sample("tickwire_cache_requests_total", cache="quotes", result="stale") == stale + 1
    await link.close()
