"""Delayed entitlements: a token's `delay` claim makes the gateway deliver that subject's
updates (and snapshots) the delay late, from the same topics, beside real-time streams."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import httpx
import msgspec
from pydantic import SecretStr

from tests.helpers import gateway as g
from tests.helpers import tokens
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.helpers.tokens import KEY, bearer
from tickwire.events import wire
from tickwire.mongo import documents

SYMBOLS = ["AAPL", "MSFT"]
DELAY = 3.0


def token(subject: str, **claims: object) -> str:
    return tokens.token(subject, symbols=["*"], **claims)


def jwt_settings(kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics) -> Any:
    return g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_auth="jwt",
        gateway_jwt_key=SecretStr(KEY),
    )


def now_record(symbol: str, version: int, ago: float = 0.0) -> g.Record:
    """A quote whose event time is `ago` seconds before now."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago)
    state = msgspec.structs.replace(g.ticker_state(symbol, version), time=when)
    headers = g.update_headers(symbol, version, state.received_ns or 0)
    return symbol.encode(), wire.ENCODER.encode(state), headers


def bar_now(symbol: str, version: int) -> g.Record:
    """A forming 1m bar ending now (its event time: its end, its trade received now)."""
    key, value, headers = g.bar_record(symbol, version, minute=0)
    end = dt.datetime.now(dt.UTC)
    bar = wire.BAR_DECODER.decode(value)
    bar = msgspec.structs.replace(bar, start=end - dt.timedelta(minutes=1), end=end)
    return key, wire.ENCODER.encode(bar), headers


def event_time(event: g.Event) -> float:
    """The documented event time of a delivered quote or bar (epoch seconds)."""
    data: dict[str, Any] = event.json()
    if event.event == "bar":
        end = dt.datetime.fromisoformat(data["end"]).timestamp()
        return min(end, data["received_ns"] / 1e9) if data.get("received_ns") else end
    return dt.datetime.fromisoformat(data["time"]).timestamp()


def versions(client: g.SseClient, kind: str = "quote") -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in client.events:
        if e.event == kind or (kind == "quote" and e.event == "snapshot"):
            out.setdefault(e.json()["symbol"], []).append(e.json()["version"])
    return out


async def test_delayed_subscribers_get_every_update_exactly_the_delay_late(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [now_record(s, 1, ago=60) for s in SYMBOLS])
    settings = jwt_settings(kafka_bootstrap, mongodb_url, db_name, topics)
    delayed = bearer(token("late", delay={"*": DELAY}))
    realtime = bearer(token("now"))
    path = "/v1/stream?symbols=AAPL,MSFT&bars=1m"
    async with (
        g.running_gateway(settings) as url,
        g.sse_client(url, path, headers=realtime) as live,
        g.sse_client(url, path, headers=delayed) as late,
    ):
        await live.wait_for(2)
        await late.wait_for(3)  # `delayed`, then the feed's snapshots: v1 is a minute old
        produced: dict[int, float] = {}
        for version in (2, 3, 4):
            produced[version] = time.time()
            await produce(
                kafka_bootstrap, topics.updates, [now_record(s, version) for s in SYMBOLS]
            )
            await produce(kafka_bootstrap, topics.bars, [bar_now(s, version) for s in SYMBOLS])
            await g.until_quotes(live, dict.fromkeys(SYMBOLS, version))
            await asyncio.sleep(0.5)  # spaces the rounds' event times (no conflation)
        # a subscriber joining now gets the newest state that is the delay old, not v4
        async with g.sse_client(url, path, headers=delayed) as joiner:
            await joiner.wait_for(3)
            snapshots = joiner.events[1:3]
            joined = joiner.arrivals[1:3]
        await g.until_quotes(late, dict.fromkeys(SYMBOLS, 4))
        while any(versions(late, "bar").get(s, [])[-1:] != [4] for s in SYMBOLS):
            await late.wait_for(len(late.events) + 1)
        live_v4 = max(t for e, t in zip(live.events, live.arrivals, strict=True)
                      if e.event == "quote" and e.json()["version"] == 4)  # fmt: skip
    # real time on the same gateway: v4 arrived well before its delay had passed
    assert live_v4 < produced[4] + DELAY
    assert versions(live) == {s: [1, 2, 3, 4] for s in SYMBOLS}
    # the delayed stream: every update, none before its event time is DELAY old
    assert [e.event for e in late.events[:3]] == ["delayed", "snapshot", "snapshot"]
    assert late.events[0].json() == {"delay_s": DELAY}
    assert "delayed" not in [e.event for e in live.events]
    assert versions(late) == {s: [1, 2, 3, 4] for s in SYMBOLS}
    assert versions(late, "bar") == {s: [2, 3, 4] for s in SYMBOLS}
    delivered = [
        (e, t)
        for e, t in zip(late.events, late.arrivals, strict=True)
        if e.event in ("snapshot", "quote", "bar")
    ]
    assert len(delivered) == 14
    for event, arrived in delivered:
        assert arrived - event_time(event) >= DELAY, (event, arrived)
    for event, arrived in zip(snapshots, joined, strict=True):
        assert event.event == "snapshot"
        assert arrived - event_time(event) >= DELAY, (event, arrived)


def stored_bar(symbol: str, start: dt.datetime) -> wire.Bar:
    return wire.Bar(
        symbol=symbol, interval="1m", start=start, end=start + dt.timedelta(minutes=1),
        open=100, high=101, low=99, close=100.5, volume=10, vwap=100, trades=2, final=True,
        version=5,
    )  # fmt: skip


async def test_one_stream_has_one_delay_and_quotes_and_bars_are_delayed_too(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    old, new = minute - dt.timedelta(hours=2), minute - dt.timedelta(minutes=2)
    await mongo.bars.insert_many(
        documents.bucket_documents([stored_bar("AAPL", old), stored_bar("AAPL", new)])
    )
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [now_record("AAPL", 1, ago=700), now_record("MSFT", 1, ago=700)],
    )
    await produce(kafka_bootstrap, topics.updates, [now_record("AAPL", 2)])
    settings = jwt_settings(kafka_bootstrap, mongodb_url, db_name, topics)
    mixed = bearer(token("mixed", delay={"*": 600, "MSFT": 0}))
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/v1/stream?symbols=AAPL,MSFT", headers=mixed)
        assert answer.status_code == 400
        assert answer.json() == {
            "error": "this subscription mixes delayed entitlements (MSFT 0 s, AAPL 600 s): "
            "subscribe to symbols of different delays in separate streams"
        }
        bad = bearer(token("bad", delay={"*": "soon"}))
        assert (await http.get("/v1/stream?symbols=AAPL", headers=bad)).status_code == 401
        async with (
            g.sse_client(url, "/v1/stream?symbols=AAPL&bars=none", headers=mixed) as aapl,
            g.sse_client(url, "/v1/stream?symbols=MSFT&bars=none", headers=mixed) as msft,
        ):
            await aapl.wait_for(2)
            await msft.wait_for(1)
            assert aapl.events[0].json() == {"delay_s": 600}
            assert aapl.quotes() == [("snapshot", "AAPL", 1)]  # v2 is not 600 s old
            assert msft.quotes() == [("snapshot", "MSFT", 1)]  # real time
            await produce(kafka_bootstrap, topics.updates, [now_record("MSFT", 2)])
            await g.until_quotes(msft, {"MSFT": 2})
        quotes = await http.get("/v1/quotes?symbols=AAPL,MSFT", headers=mixed)
        assert quotes.status_code == 200
        assert [(q["symbol"], q["version"]) for q in quotes.json()["quotes"]] == [
            ("AAPL", 1),
            ("MSFT", 2),
        ]
        one = await http.get("/v1/quotes/AAPL", headers=mixed)
        assert one.json()["version"] == 1
        # history too: no bar that ended less than the delay (600 s) ago
        starts = {
            who: [b["start"] for b in (await http.get("/v1/bars/AAPL", headers=h)).json()["bars"]]
            for who, h in (("delayed", mixed), ("now", bearer(token("now"))))
        }
        iso = [t.isoformat().replace("+00:00", "Z") for t in (old, new)]
        assert starts == {"delayed": iso[:1], "now": iso}


async def test_a_delayed_cursor_resumes_on_another_instance_still_delayed(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [now_record(s, 1, ago=60) for s in SYMBOLS])
    first = jwt_settings(kafka_bootstrap, mongodb_url, db_name, topics)
    second = jwt_settings(kafka_bootstrap, mongodb_url, db_name, topics)
    delayed = bearer(token("late", delay={"*": DELAY}))
    path = "/v1/stream?symbols=AAPL,MSFT&bars=none"
    async with g.running_gateway(first) as url_a, g.running_gateway(second) as url_b:
        async with g.sse_client(url_a, path, headers=delayed) as before:
            await produce(kafka_bootstrap, topics.updates, [now_record(s, 2) for s in SYMBOLS])
            await g.until_quotes(before, dict.fromkeys(SYMBOLS, 2))
            cursor = before.events[-1].id
        for version in (3, 4):
            await produce(
                kafka_bootstrap, topics.updates, [now_record(s, version) for s in SYMBOLS]
            )
            await asyncio.sleep(0.5)  # spaces the rounds' event times (no conflation)
        resumed = {**delayed, "Last-Event-ID": cursor}
        async with g.sse_client(url_b, path, headers=resumed) as after:
            await g.until_quotes(after, dict.fromkeys(SYMBOLS, 4))
    assert [e.event for e in after.events][:1] == ["delayed"]
    assert versions(after) == {s: [3, 4] for s in SYMBOLS}  # nothing again, nothing lost
    for event, arrived in zip(after.events, after.arrivals, strict=True):
        if event.event == "quote":
            assert arrived - event_time(event) >= DELAY, (event, arrived)
