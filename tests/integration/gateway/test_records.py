"""What the gateway does with the records it reads: poison is skipped and the stream
carries on; bars follow the documented version rule and the client's `bars=` choice;
a live client that keeps up receives every closed bar."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce

POISON: list[g.Record] = [
    (b"AAPL", None, [("ce_subject", b"AAPL"), ("tw_version", b"99")]),  # type: ignore[list-item]
    (b"GHOST", None, []),  # type: ignore[list-item]
    (b"AAPL", b"\xff not json", [("tw_received_ns", b"9" * 5000)]),
    (b"AAPL", b'{"symbol":"AAPL","version":99999999999999999999999}', []),
    (b"OTHER", g.update_record("AAPL", 50)[1], []),  # key is not the record's symbol
]


async def unreadable_count(url: str) -> float:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('tickwire_gateway_dropped_total{reason="unreadable"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_poison_records_are_skipped_and_the_stream_carries_on(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL&bars=1s") as client,
    ):
        await client.wait_for(1)
        before = await unreadable_count(url)
        await produce(kafka_bootstrap, topics.updates, POISON)
        await produce(kafka_bootstrap, topics.bars, POISON[:3])
        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
        await produce(
            kafka_bootstrap, topics.bars, [g.bar_state("AAPL", 0, revision=1, final=True)]
        )
        events = await client.wait_for(3)
        assert [(e.event, e.json()["version"]) for e in events] == [
            ("snapshot", 1),
            ("quote", 2),
            ("bar", 3),
        ] or [(e.event, e.json()["version"]) for e in events] == [
            ("snapshot", 1),
            ("bar", 3),
            ("quote", 2),
        ]
        assert await unreadable_count(url) - before == len(POISON) + 3
        quote = next(e for e in events if e.event == "quote")
        # the marker's cursor is past the poison: a resume from it replays nothing
        async with g.sse_client(
            url, "/v1/stream?symbols=AAPL&bars=none", headers={"last-event-id": quote.id}
        ) as resumed:
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 3)])
            again = await resumed.wait_for(1)
            assert [(e.event, e.json()["version"]) for e in again] == [("quote", 3)]

    # and an instance that cold-starts over the poison serves
    async with (
        g.running_gateway(g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL&bars=none") as client,
    ):
        events = await client.wait_for(1)
        assert [(e.event, e.json()["version"]) for e in events] == [("snapshot", 3)]


def kinds(events: list[Any]) -> list[tuple[str, str]]:
    out = []
    for e in events:
        data = e.json()
        out.append((e.event, data.get("interval", "")))
    return out


async def test_bars_selection_is_honoured_on_plain_prefix_and_resumed_streams(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    one_minute = g.bar_state("AAPL", 0, revision=1, final=True, interval="1m")
    one_second = g.bar_state("AAPL", 0, revision=1, final=True, interval="1s")
    async with g.running_gateway(settings) as url:
        paths = {
            "none": "/v1/stream?symbols=AAPL&bars=none",
            "1s": "/v1/stream?symbols=AAPL&bars=1s",
            "prefix-none": "/v1/stream?prefix=AA&bars=none",
            "prefix-1s": "/v1/stream?prefix=AA&bars=1s",
            "all-1s": "/v1/stream?symbols=*&bars=1s",
        }
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(g.sse_client(url, p)) for p in paths.values()
            ]
            for client in clients:
                await client.wait_for(1)  # snapshot: subscribed
            ws = await connect(url.replace("http", "ws") + "/v1/ws")
            await ws.send(
                orjson.dumps({"type": "subscribe", "symbols": ["AAPL"], "bars": ["1s"]}).decode()
            )
            seen: list[dict[str, Any]] = []
            while not any(e["event"] == "subscribed" for e in seen):
                seen.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 20)))
            seen.clear()
            await produce(kafka_bootstrap, topics.bars, [one_minute, one_second])
            # the marker: a quote after both bars, on the same partition
            await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
            for name, client in zip(paths, clients, strict=True):
                want = 2 if name.endswith("none") else 3
                got = kinds(await client.wait_for(want))
                if name.endswith("none"):
                    assert got == [("snapshot", ""), ("quote", "")], name
                else:
                    assert sorted(got) == [("bar", "1s"), ("quote", ""), ("snapshot", "")], name
            while not any(e["event"] == "quote" for e in seen):
                seen.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 20)))
            assert [(e["event"], e["data"].get("interval", "")) for e in seen] in (
                [("bar", "1s"), ("quote", "")],
                [("quote", ""), ("bar", "1s")],
            )
            await ws.close()
            cursor = clients[0].events[0].id  # the snapshot's cursor: before both bars
        for marker, (bars, want) in enumerate(
            (("none", []), ("1s", ["1s"]), ("1m", ["1m"])), start=9
        ):
            path = f"/v1/stream?symbols=AAPL&bars={bars}"
            async with g.sse_client(url, path, headers={"last-event-id": cursor}) as resumed:
                await resumed.wait_for(1 + len(want))
                await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", marker)])
                while not any(
                    e.event == "quote" and e.json()["version"] == marker for e in resumed.events
                ):
                    await resumed.wait_for(len(resumed.events) + 1)
                assert [i for e, i in kinds(resumed.events) if e == "bar"] == want, bars


async def test_a_live_client_receives_every_closed_bar(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    """Forming bars, in-grace revisions of earlier bars and finals, many per Kafka
    batch: a client that keeps up gets every final, each once, and no forming state of
    a bar after its final."""
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1)])
    records: list[g.Record] = []
    bars = 300
    for index in range(bars):
        records.append(g.bar_state("AAPL", index, revision=1, final=False))
        if index:  # a late trade revises the previous bar, after this one formed
            records.append(g.bar_state("AAPL", index - 1, revision=3, final=False))
            records.append(g.bar_state("AAPL", index - 1, revision=3, final=True))
        records.append(g.bar_state("AAPL", index, revision=2, final=False))
    records.append(g.bar_state("AAPL", bars - 1, revision=3, final=True))
    settings = g.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, "/v1/stream?symbols=AAPL&bars=1s") as client,
    ):
        await client.wait_for(1)
        await produce(kafka_bootstrap, topics.bars, records)
        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
        while not any(e.event == "quote" for e in client.events):
            await client.wait_for(len(client.events) + 1)
        # the quote was produced after every bar but on another topic: wait for the
        # last final itself too
        last_start = g.BASE_TIME.timestamp() + bars - 1

        def finals() -> list[float]:
            return [
                _start(e.json())
                for e in client.events
                if e.event == "bar" and e.json().get("final", True)
            ]

        while last_start not in finals():
            await client.wait_for(len(client.events) + 1)
        assert finals() == [g.BASE_TIME.timestamp() + i for i in range(bars)]
        closed: set[float] = set()
        for e in client.events:
            if e.event == "bar":
                start = _start(e.json())
                assert start not in closed, "a state of a bar after its final"
                if e.json().get("final", True):
                    closed.add(start)


def _start(bar: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(bar["start"].replace("Z", "+00:00")).timestamp()
