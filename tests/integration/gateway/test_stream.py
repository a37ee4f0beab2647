"""SSE against a real broker and store: framing, snapshot then stream, cold start."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

import httpx
from prometheus_client import REGISTRY

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


def conflated() -> float:
    return REGISTRY.get_sample_value("tickwire_gateway_conflated_total") or 0.0


async def test_headers_retry_heartbeat_and_framing(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_heartbeat_s=0.3,
        gateway_retry_ms=1234,
    )
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL") as client,
    ):
        [snapshot] = await client.wait_for(1)
        assert client.status == 200
        assert client.headers is not None
        assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert "no-cache" in client.headers["cache-control"]
        assert client.headers["x-accel-buffering"] == "no"
        assert client.retry == 1234
        assert snapshot.event == "snapshot"
        assert snapshot.json()["version"] == 1
        await wait_until(lambda: client.comments >= 1)  # a heartbeat comment arrives


async def test_snapshot_then_stream_without_gap_or_duplicate(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    """Subscribers join while updates flow: each gets a snapshot per symbol, then only
    newer versions, strictly increasing, ending at the last one; every version it did
    not get was replaced by a newer one in its outbox (counted as conflated)."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 3)
    symbols = [f"S{i:02d}" for i in range(12)]
    rounds = 40
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings) as url:
        before = conflated()

        async def writer() -> None:
            for version in range(2, rounds + 1):
                batch = [g.update_record(s, version) for s in random.sample(symbols, 12)]
                await produce(kafka_bootstrap, topics.updates, batch)

        writing = asyncio.create_task(writer())
        clients = []
        async with contextlib.AsyncExitStack() as stack:
            for i in range(4):
                await asyncio.sleep(0.15 * i)
                wanted = ",".join(symbols if i % 2 == 0 else symbols[::2])
                clients.append(
                    await stack.enter_async_context(
                        g.sse_client(url, f"/v1/stream?symbols={wanted}&bars=none")
                    )
                )
            await writing
            for i, client in enumerate(clients):
                mine = symbols if i % 2 == 0 else symbols[::2]
                await wait_until(lambda c=client, m=mine: finals(c) == {s: rounds for s in m})
            # each symbol's last version is its marker: nothing of it can follow
            missing = 0
            for i, client in enumerate(clients):
                mine = symbols if i % 2 == 0 else symbols[::2]
                seen: dict[str, list[tuple[str, int]]] = {s: [] for s in mine}
                for event, symbol, version in client.quotes():
                    seen[symbol].append((event, version))
                for symbol, events in seen.items():
                    assert events[0][0] == "snapshot"
                    assert [e for e, _ in events[1:]] == ["quote"] * (len(events) - 1)
                    versions = [v for _, v in events]
                    assert versions == sorted(set(versions)), (symbol, versions)
                    assert versions[-1] == rounds
                    missing += rounds - versions[0] - (len(versions) - 1)
            assert conflated() - before == missing


async def test_cold_start_fills_the_cache_from_mongodb_and_kafka(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: object
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await mongo.quotes.insert_many(  # type: ignore[attr-defined]
        [g.quote_doc("ONLYDB", 7), g.quote_doc("BOTH", 5), g.quote_doc("DBNEWER", 9)]
    )
    await produce(
        kafka_bootstrap,
        topics.updates,
        [
            g.update_record("BOTH", 6),
            g.update_record("DBNEWER", 8),
            g.update_record("ONLYKAFKA", 2),
        ],
    )
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=ONLYDB,BOTH,DBNEWER,ONLYKAFKA,NONE") as client,
    ):
        await client.wait_for(4)
        assert sorted(client.quotes()) == [
            ("snapshot", "BOTH", 6),
            ("snapshot", "DBNEWER", 9),
            ("snapshot", "ONLYDB", 7),
            ("snapshot", "ONLYKAFKA", 2),
        ]
        # a stale record (version at or below the cache) is never forwarded
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("DBNEWER", 9), g.update_record("BOTH", 4), g.update_record("BOTH", 7)],
        )
        # markers after the stale ones, per symbol (each symbol's records stay in order)
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("DBNEWER", 10), g.update_record("BOTH", 8)],
        )
        await g.until_quotes(client, {"DBNEWER": 10, "BOTH": 8})
        assert sorted(client.quotes()[4:]) == [
            ("quote", "BOTH", 7),
            ("quote", "BOTH", 8),
            ("quote", "DBNEWER", 10),
        ]


async def test_wildcard_prefix_and_live_bars(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(
        kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in ("AAA", "AAB", "BBB")]
    )
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=*") as everything,
        g.sse_client(url, "/v1/stream?prefix=AA&bars=1m") as prefixed,
    ):
        await everything.wait_for(3)
        await prefixed.wait_for(2)
        await produce(
            kafka_bootstrap,
            topics.bars,
            [
                g.bar_record("AAA", 1, 0),
                g.bar_record("AAA", 2, 0, interval="1s"),
                g.bar_record("BBB", 1, 0),
            ],
        )
        await produce(kafka_bootstrap, topics.updates, [g.update_record("BBB", 2)])
        # markers: a later 1m bar per symbol, after the others on the same partition
        await produce(
            kafka_bootstrap,
            topics.bars,
            [g.bar_state(s, 9, revision=1, final=True, interval="1m") for s in ("AAA", "BBB")],
        )
        await g.until_quotes(everything, {"BBB": 2})

        def bars(client: g.SseClient) -> list[tuple[str, str, str]]:
            return [
                (e.json()["symbol"], e.json()["interval"], e.json()["start"][11:16])
                for e in client.events
                if e.event == "bar"
            ]

        while {("AAA", "1m", "14:39"), ("BBB", "1m", "14:39")} - set(bars(everything)):
            await everything.wait_for(len(everything.events) + 1)
        while ("AAA", "1m", "14:39") not in bars(prefixed):
            await prefixed.wait_for(len(prefixed.events) + 1)
        assert [e.event for e in everything.events[:3]] == ["snapshot"] * 3
        assert sorted(e.event for e in everything.events[3:]) == ["bar"] * 4 + ["quote"]
        assert sorted(bars(everything)) == [
            ("AAA", "1m", "14:30"),
            ("AAA", "1m", "14:39"),
            ("BBB", "1m", "14:30"),
            ("BBB", "1m", "14:39"),
        ]
        assert [(e.event, e.json()["symbol"]) for e in prefixed.events] == [
            ("snapshot", "AAA"),
            ("snapshot", "AAB"),
            ("bar", "AAA"),
            ("bar", "AAA"),
        ]


async def test_client_input_errors_are_4xx(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_cors_origins=["http://dash.example"],
    )
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        # CORS from settings, on the stream too (its headers pass the middleware)
        async with g.sse_client(
            url, "/v1/stream?symbols=A", headers={"Origin": "http://dash.example"}
        ) as allowed:
            assert allowed.headers is not None
            assert allowed.headers["access-control-allow-origin"] == "http://dash.example"
            assert allowed.headers["access-control-allow-credentials"] == "true"
        async with g.sse_client(
            url, "/v1/stream?symbols=A", headers={"Origin": "http://evil.example"}
        ) as other:
            assert other.headers is not None
            assert "access-control-allow-origin" not in other.headers
        for path in (
            "/v1/stream",
            "/v1/stream?symbols=bad%20sym",
            "/v1/stream?symbols=A&bars=x",
            "/v1/stream?symbols=A&max_rate=-1",
            "/v1/stream?symbols=A&last_event_id=%%%",
            "/v1/stream?symbols=A&last_event_id=AQAAAAABAA_",
        ):
            response = await http.get(path)
            assert response.status_code == 400, path
            assert "error" in response.json()
        response = await http.get("/v1/stream?symbols=A", headers={"last-event-id": "AQ"})
        assert response.status_code == 400


# -- small local helpers


def finals(client: g.SseClient) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, symbol, version in client.quotes():
        out[symbol] = version
    return out


async def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")
