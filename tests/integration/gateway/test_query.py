"""The query API against FerretDB, with documents as the processor stores them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import httpx

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tickwire.events.wire import Bar
from tickwire.mongo import documents


def bar(symbol: str, minute: int, interval: str = "1m") -> Bar:
    step = dt.timedelta(minutes=1) if interval == "1m" else dt.timedelta(seconds=1)
    start = g.BASE_TIME + minute * step
    return Bar(
        symbol=symbol, interval=interval, start=start, end=start + step, open=1.0, high=2.0,
        low=0.5, close=1.5 + minute, volume=10.0, vwap=1.2, trades=3, final=True,
        version=minute + 1, received_ns=1,
    )  # fmt: skip


async def store_bars(mongo: Any, bars: list[Bar]) -> None:
    """Bars stored as the processor stores them: in buckets, by the documents codec."""
    await mongo.bars.insert_many(documents.bucket_documents(bars))


async def test_quotes_and_bars(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await mongo.quotes.insert_many([g.quote_doc("AAPL", 4), g.quote_doc("MSFT", 2)])
    await store_bars(
        mongo, [bar("AAPL", m) for m in range(10)] + [bar("AAPL", 0, "1s"), bar("MSFT", 0)]
    )
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_query_max_bars=50,
    )
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        one = await http.get("/v1/quotes/AAPL")
        assert one.status_code == 200
        assert one.json()["version"] == 4
        assert "partition" not in one.json()  # processor bookkeeping stays inside
        many = (await http.get("/v1/quotes", params={"symbols": "MSFT,NOPE,AAPL"})).json()
        assert [q["symbol"] for q in many["quotes"]] == ["MSFT", "AAPL"]
        assert many["missing"] == ["NOPE"]

        bars = (await http.get("/v1/bars/AAPL")).json()
        assert [b["close"] for b in bars["bars"]] == [1.5 + m for m in range(10)]
        latest = (await http.get("/v1/bars/AAPL", params={"limit": 3})).json()["bars"]
        assert [b["close"] for b in latest] == [8.5, 9.5, 10.5]
        window = await http.get(
            "/v1/bars/AAPL",
            params={"from": "2026-11-27T14:32:00Z", "to": "2026-11-27T14:35:00+00:00", "limit": 2},
        )
        assert [b["start"] for b in window.json()["bars"]] == [
            "2026-11-27T14:32:00Z",
            "2026-11-27T14:33:00Z",
        ]
        seconds = (await http.get("/v1/bars/AAPL", params={"interval": "1s"})).json()
        assert len(seconds["bars"]) == 1

        assert (await http.get("/v1/quotes/NOPE")).status_code == 404
        assert (await http.get("/v1/bars/NOPE")).json()["bars"] == []
        for path, params in [
            ("/v1/quotes/bad%20symbol", {}),
            ("/v1/quotes", {}),
            ("/v1/quotes", {"symbols": ","}),
            ("/v1/quotes", {"symbols": ",".join(f"S{i}" for i in range(201))}),
            ("/v1/bars/AAPL", {"interval": "1x"}),
            ("/v1/bars/AAPL", {"from": "yesterday"}),
            ("/v1/bars/AAPL", {"limit": 0}),
            ("/v1/bars/AAPL", {"limit": 51}),
            ("/v1/bars/AAPL", {"from": "2026-11-27T15:00:00Z", "to": "2026-11-27T14:00:00Z"}),
        ]:
            response = await http.get(path, params=params)
            assert response.status_code == 422, (path, params, response.text)


async def test_bars_across_buckets_in_both_directions(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    """History spanning several buckets, some sparse: the latest `limit` before `to`,
    the first `limit` from `from`, each in start order, none twice, none skipped."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    span = documents.BARS_PER_BUCKET
    minutes = [*range(0, 2 * span, 7), *range(2 * span, 3 * span), 5 * span + 3]
    await store_bars(mongo, [bar("AAPL", m) for m in minutes])
    settings = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, gateway_query_max_bars=1000
    )
    at = g.BASE_TIME.isoformat()

    def closes(response: httpx.Response) -> list[float]:
        assert response.status_code == 200, response.text
        return [b["close"] for b in response.json()["bars"]]

    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        want = [1.5 + m for m in minutes]
        assert closes(await http.get("/v1/bars/AAPL", params={"limit": 1000})) == want
        assert closes(await http.get("/v1/bars/AAPL", params={"limit": 150})) == want[-150:]
        assert (
            closes(await http.get("/v1/bars/AAPL", params={"from": at, "limit": 40})) == (want[:40])
        )
        until = (g.BASE_TIME + dt.timedelta(minutes=2 * span + 5)).isoformat()
        before = [1.5 + m for m in minutes if m < 2 * span + 5]
        assert (
            closes(await http.get("/v1/bars/AAPL", params={"to": until, "limit": 30}))
            == (before[-30:])
        )
        window = {"from": (g.BASE_TIME + dt.timedelta(minutes=100)).isoformat(), "to": until}
        assert closes(await http.get("/v1/bars/AAPL", params={**window, "limit": 1000})) == [
            1.5 + m for m in minutes if 100 <= m < 2 * span + 5
        ]


async def test_quotes_are_the_newest_read_from_kafka_with_mongodb_behind(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    """The processor publishes first and persists behind: the query API answers with the
    newest state the gateway read from ticker.updates, not MongoDB's older copy."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await mongo.quotes.insert_many([g.quote_doc("AAPL", 4), g.quote_doc("MSFT", 2)])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        # MongoDB's AAPL v4 came first; Kafka now has v6 and v7, MongoDB not yet
        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v) for v in (6, 7)])
        deadline = time.monotonic() + 30
        while (await http.get("/v1/quotes/AAPL")).json()["version"] != 7:
            assert time.monotonic() < deadline, "the query API never showed Kafka's v7"
            await asyncio.sleep(0.1)
        many = (await http.get("/v1/quotes", params={"symbols": "AAPL,NOPE,MSFT"})).json()
        assert [(q["symbol"], q["version"]) for q in many["quotes"]] == [("AAPL", 7), ("MSFT", 2)]
        assert many["missing"] == ["NOPE"]
        assert "partition" not in many["quotes"][1]  # MongoDB's bookkeeping stays inside
        assert (await http.get("/v1/quotes/NOPE")).status_code == 404
        assert (await mongo.quotes.find_one({"_id": "AAPL"}))["version"] == 4
