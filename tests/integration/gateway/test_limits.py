"""Per-connection limits: the symbols and bar streams a connection holds are counted over
all its subscriptions (WebSocket), a refusal carries its code and changes nothing, an
unsubscribe frees room; a single SSE subscription is held to the same limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import gateway as g
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce


class Inbox:
    """Every event a WebSocket client received, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def until(self, event: str, **data: Any) -> dict[str, Any]:
        """Read until an event of that kind whose data holds these items; return it."""
        while True:
            for e in self.events:
                if e["event"] == event and all(e["data"].get(k) == v for k, v in data.items()):
                    return e
            batch = orjson.loads(await asyncio.wait_for(self.ws.recv(), 20))
            self.events.extend(batch)

    def symbols_of(self, *events: str) -> list[tuple[str, str, int]]:
        return [
            (e["event"], e["data"]["symbol"], e["data"]["version"])
            for e in self.events
            if e["event"] in events
        ]


def limited(kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics) -> Any:
    """A gateway whose connections hold at most 3 symbols and 4 bar streams."""
    return g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_max_symbols=3,
        gateway_max_bar_streams=4,
    )


async def send(ws: ClientConnection, **message: object) -> None:
    await ws.send(orjson.dumps(message).decode())


async def test_websocket_limits_hold_over_every_subscription_of_a_connection(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    # one partition: a symbol's update produced before another's arrives before it
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    symbols = ["AAPL", "MSFT", "GOOG", "AMZN"]
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in symbols])
    settings = limited(kafka_bootstrap, mongodb_url, db_name, topics)
    async with (
        g.running_gateway(settings) as url,
        connect(url.replace("http", "ws") + "/v1/ws") as ws,
    ):
        inbox = Inbox(ws)
        await send(ws, type="subscribe", symbols=["AAPL", "MSFT"], bars=["1m"])
        await inbox.until("subscribed", symbols=["AAPL", "MSFT"])
        # each subscription alone is within the limit; together they are not
        await send(ws, type="subscribe", symbols=["GOOG", "AMZN"], bars=["1m"])
        refused = await inbox.until("error")
        assert refused["data"]["status"] == 400
        assert refused["data"]["code"] == "too_many_symbols"
        assert "would hold 4" in refused["data"]["message"]
        # 3 symbols x 2 intervals = 6 bar streams > 4, though 3 symbols are allowed
        await send(ws, type="subscribe", symbols=["GOOG"], bars=["1s"])
        refused = await inbox.until("error", code="too_many_bar_streams")
        assert refused["data"]["status"] == 400
        # nothing changed: GOOG's update (before AAPL's, one partition) is not sent
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("GOOG", 2), g.update_record("AAPL", 2)],
        )
        await inbox.until("quote", symbol="AAPL", version=2)
        assert inbox.symbols_of("snapshot", "quote") == [
            ("snapshot", "AAPL", 1),
            ("snapshot", "MSFT", 1),
            ("quote", "AAPL", 2),
        ]
        # an unsubscribe frees room: MSFT out, GOOG and AMZN in (3 symbols, 3 bar streams)
        await send(ws, type="unsubscribe", symbols=["MSFT"])
        await inbox.until("unsubscribed")
        await send(ws, type="subscribe", symbols=["GOOG", "AMZN"], bars=["1m"])
        await inbox.until("subscribed", symbols=["AMZN", "GOOG"])
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("MSFT", 2), g.update_record("AMZN", 2), g.update_record("GOOG", 3)],
        )
        await inbox.until("quote", symbol="GOOG", version=3)
        assert inbox.symbols_of("snapshot", "quote")[3:] == [
            ("snapshot", "AMZN", 1),
            ("snapshot", "GOOG", 2),
            ("quote", "AMZN", 2),
            ("quote", "GOOG", 3),
        ]
        assert [e["event"] for e in inbox.events].count("error") == 2


async def test_an_sse_subscription_over_the_limits_is_refused_with_its_code(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 1)
    settings = limited(kafka_bootstrap, mongodb_url, db_name, topics)
    async with g.running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        too_many = await http.get("/v1/stream?symbols=A,B,C,D&bars=none")
        assert too_many.status_code == 400
        assert too_many.json()["code"] == "too_many_symbols"
        too_many_bars = await http.get("/v1/stream?symbols=A,B,C&bars=1s,1m")
        assert too_many_bars.status_code == 400
        assert too_many_bars.json()["code"] == "too_many_bar_streams"
        assert "= 6" in too_many_bars.json()["error"]
        async with g.sse_client(url, "/v1/stream?symbols=A,B&bars=1s,1m") as fits:
            await fits.wait_for(0)
            assert fits.status == 200
