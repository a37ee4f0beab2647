"""Replay from a time (`since=`): what a live subscriber saw from that time, exactly, on
the instance that saw it and on another one; refusals before the stream opens."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce, read_all

SYMBOLS = ["AAPL", "MSFT", "GOOG", "TSLA"]


def replays(outcome: str) -> float:
    sample = REGISTRY.get_sample_value("tickwire_gateway_replays_total", {"outcome": outcome})
    return sample or 0.0


def iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def round_records(version: int) -> list[g.Record]:
    """One quote and one (distinct) 1m bar per symbol: nothing for a live client to
    conflate once each round is awaited."""
    return [g.update_record(s, version) for s in SYMBOLS]


def bar_records(version: int) -> list[g.Record]:
    return [g.bar_record(s, version, minute=version) for s in SYMBOLS]


async def live_round(
    bootstrap: str, topics: Topics, live: g.SseClient, version: int, bars: bool
) -> None:
    """Produce one round and wait until the live client has all of it (its marker)."""
    await produce(bootstrap, topics.updates, round_records(version))
    if bars:
        await produce(bootstrap, topics.bars, bar_records(version))
    await until_round(live, version, bars)


async def until_round(client: g.SseClient, version: int, bars: bool = True) -> None:
    """Wait for the quote (and bar) of `version` of every symbol."""
    while bars and not all(
        any(e.event == "bar" and e.json()["symbol"] == s and e.json()["version"] == version
            for e in client.events)
        for s in SYMBOLS
    ):  # fmt: skip
        await client.wait_for(len(client.events) + 1)
    await g.until_quotes(client, dict.fromkeys(SYMBOLS, version))


async def next_second() -> dt.datetime:
    """The next whole second, once the clock has passed it: every record produced from
    now on is stamped at or after it, every record before it earlier."""
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    while (left := (since - dt.datetime.now(dt.UTC)).total_seconds()) >= 0:
        await asyncio.sleep(left + 0.001)
    return since


def updates(events: list[g.Event]) -> list[tuple[str, Any]]:
    """(event, data) of every quote and bar, in the order received."""
    return [(e.event, e.json()) for e in events if e.event in ("quote", "bar")]


async def test_replay_from_a_time_equals_what_a_live_subscriber_saw(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, round_records(1))
    first = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    # the other instance's buffers hold 2 records per partition: it replays from Kafka
    other = g.settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, gateway_buffer_per_partition=2
    )
    path = f"/v1/stream?symbols={','.join(SYMBOLS)}&bars=1m"
    async with g.running_gateway(first) as url, g.sse_client(url, path) as live:
        await live_round(kafka_bootstrap, topics, live, 2, bars=True)
        since = await next_second()
        mark = len(live.events)
        before = {o: replays(o) for o in ("buffer", "kafka")}
        for version in range(3, 8):
            await live_round(kafka_bootstrap, topics, live, version, bars=True)
        async with (
            g.running_gateway(other) as url_b,
            g.sse_client(url, f"{path}&since={iso(since)}") as here,
            g.sse_client(url_b, f"{path}&since={iso(since)}") as there,
        ):
            for client in (here, there):
                while not any(e.event == "replayed" for e in client.events):
                    await client.wait_for(len(client.events) + 1)
            # this instance replays from its buffer, the other one (tiny buffers) from Kafka
            assert {o: replays(o) - n for o, n in before.items()} == {"buffer": 1, "kafka": 1}
            for version in (8, 9):
                await live_round(kafka_bootstrap, topics, live, version, bars=True)
            for client in (here, there):
                await until_round(client, 9)
    seen = updates(live.events[mark:])
    assert [d["version"] for e, d in seen if e == "quote"] == [
        v for v in range(3, 10) for _ in SYMBOLS
    ]
    for client in (here, there):
        kinds = [e.event for e in client.events]
        assert kinds.count("replayed") == 1
        hand_over = kinds.index("replayed")
        assert "snapshot" not in kinds
        replayed, after = client.events[:hand_over], client.events[hand_over + 1 :]
        assert client.events[hand_over].json() == {"since": iso(since), "live": True}
        assert {d["version"] for _, d in updates(replayed)} == set(range(3, 8))
        assert {d["version"] for _, d in updates(after)} == {8, 9}
        for stream in [(k, s) for k in ("quote", "bar") for s in SYMBOLS]:
            # one symbol's quotes (its bars) are ordered end to end; two topics are not
            assert [u for u in updates(client.events) if (u[0], u[1]["symbol"]) == stream] == [
                u for u in seen if (u[0], u[1]["symbol"]) == stream
            ]
        assert sorted(map(repr, updates(client.events))) == sorted(map(repr, seen))
    # every id resumes: the hand-over's continues with exactly what came after it
    cursor = here.events[kinds.index("replayed")].id
    async with (
        g.running_gateway(other) as url_c,
        g.sse_client(
            url_c, f"{path}&since={iso(since)}", headers={"Last-Event-ID": cursor}
        ) as again,
    ):
        await produce(kafka_bootstrap, topics.updates, round_records(10))
        await g.until_quotes(again, dict.fromkeys(SYMBOLS, 10))
        assert "replayed" not in [e.event for e in again.events]
        resumed = [d for e, d in updates(again.events) if e == "quote"]
        assert {s: [d["version"] for d in resumed if d["symbol"] == s] for s in SYMBOLS} == {
            s: [8, 9, 10] for s in SYMBOLS
        }


async def test_since_older_than_retention_names_the_earliest_time(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v) for v in range(5)])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # retention passed: records below offset 3 are gone
        await admin.delete_records({TopicPartition(topics.updates, 0): RecordsToDelete(3)})
    finally:
        await admin.close()
    records = await read_all(kafka_bootstrap, topics.updates, expected=2, idle=0)
    assert [r.offset for r in records] == [3, 4]
    earliest = dt.datetime.fromtimestamp(records[0].timestamp / 1000, dt.UTC)
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        too_old = earliest - dt.timedelta(seconds=30)
        answer = await http.get(f"/v1/stream?symbols=AAPL&since={iso(too_old)}")
        assert answer.status_code == 410
        assert answer.json() == {
            "error": f"since={iso(too_old)} is older than Kafka retention: the earliest "
            f"time that can be replayed is {iso(earliest)}"
        }
        async with g.sse_client(url, f"/v1/stream?symbols=AAPL&since={iso(earliest)}") as ok:
            await ok.wait_for(3)
            assert [(e.event, e.json().get("version")) for e in ok.events] == [
                ("quote", 3),
                ("quote", 4),
                ("replayed", None),
            ]


async def test_bad_since_and_over_budget_are_refused(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", v) for v in range(6)])
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_replay_max_records=5,
        gateway_max_replays=1,  # a refused replay must give its slot back
    )
    old = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for bad in ("yesterday", "2026-12-01", "2026-12-01T14:30:00", "2026-13-01T14:30:00Z"):
            answer = await http.get("/v1/stream", params={"symbols": "AAPL", "since": bad})
            assert answer.status_code == 400, bad
            assert "since" in answer.json()["error"]
        future = iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        answer = await http.get("/v1/stream", params={"symbols": "AAPL", "since": future})
        assert answer.status_code == 400
        assert answer.json()["error"] == f"since={future} is in the future"
        answer = await http.get("/v1/stream", params={"symbols": "AAPL", "since": old})
        assert answer.status_code == 400
        assert answer.json()["error"] == (
            f"a replay from since={old} would read 6 records; a connection may replay at "
            "most 5: ask for a later since"
        )
        ws_url = url.replace("http", "ws") + "/v1/ws"
        async with connect(ws_url) as ws:
            request = {"type": "subscribe", "symbols": ["AAPL"], "since": old}
            await ws.send(orjson.dumps(request).decode())
            (refused,) = orjson.loads(await ws.recv())
            assert refused["event"] == "error"
            assert refused["data"]["status"] == 400
        # the one replay slot is free again: a replay within the budget is served
        recent = iso(dt.datetime.now(dt.UTC))
        async with g.sse_client(url, f"/v1/stream?symbols=AAPL&since={recent}") as ok:
            await ok.wait_for(1)
            assert [e.event for e in ok.events] == ["replayed"]


async def test_websocket_replays_from_a_time(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in SYMBOLS])
    since = await next_second()
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 2) for s in SYMBOLS])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    subscribe = {"type": "subscribe", "symbols": ["AAPL", "TSLA"], "bars": []}
    events: list[dict[str, Any]] = []
    async with (
        g.running_gateway(settings) as url,
        connect(url.replace("http", "ws") + "/v1/ws") as ws,
    ):
        await ws.send(orjson.dumps({**subscribe, "since": iso(since)}).decode())
        while not any(e["event"] == "subscribed" for e in events):
            events.extend(orjson.loads(await ws.recv()))
    assert [e["event"] for e in events] == ["quote", "quote", "replayed", "subscribed"]
    assert sorted((e["data"]["symbol"], e["data"]["version"]) for e in events[:2]) == [
        ("AAPL", 2),
        ("TSLA", 2),
    ]
    assert events[2]["data"] == {"since": iso(since), "live": True}
    assert events[3]["data"] == {"symbols": ["AAPL", "TSLA"], "outcome": "buffer", "delay_s": 0.0}
