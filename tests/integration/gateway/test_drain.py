"""A graceful stop: on SIGTERM a real gateway process turns not ready, refuses new
streams with 503, tells each SSE client to come back with a jittered `retry:` and a
final `reconnect` event (as docs/asyncapi.yaml describes it) and closes WebSockets
with 1012, spread over its drain period; every client resumes on a second gateway
process with no gap and no duplicate while updates keep coming."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import gateway as g
from tests.helpers.asyncapi import load, validator
from tests.helpers.gateway_process import GatewayProcess, process_env
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce

SYMBOLS = ["AAPL", "MSFT"]
PATH = "/v1/stream?symbols=AAPL,MSFT&bars=none"
RETRY_MS = 1000
LAST = 30


def process(env: dict[str, str], log: Path) -> GatewayProcess:
    return GatewayProcess(env, g.free_port(), log)


async def ws_read(
    ws: ClientConnection, into: list[dict[str, Any]], snapshots: asyncio.Event | None = None
) -> None:
    """Read batches into `into` until the server closes; set `snapshots` once one per
    symbol has arrived."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            into.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 30)))
            if snapshots is not None and sum(e["event"] == "snapshot" for e in into) >= len(
                SYMBOLS
            ):
                snapshots.set()


def ws_versions(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [
        (e["event"], e["data"]["symbol"], e["data"]["version"])
        for e in events
        if e["event"] in ("snapshot", "quote")
    ]


async def test_drain_spreads_the_closes_and_clients_resume_on_another_node(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, tmp_path: Path
) -> None:
    doc = load()
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [g.update_record(s, 1) for s in SYMBOLS])
    env = process_env(
        {
            **topics.settings_env(),
            "kafka_bootstrap": kafka_bootstrap,
            "mongodb_url": mongodb_url,
            "mongodb_db": db_name,
            "gateway_auth": "off",
            "gateway_retry_ms": str(RETRY_MS),
            "gateway_drain_s": "4",
            "log_level": "WARNING",
        }
    )
    old, new = process(env, tmp_path / "old.log"), process(env, tmp_path / "new.log")
    try:
        await asyncio.gather(old.start(), new.start())
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(g.sse_client(old.url, PATH)) for _ in range(6)
            ]
            ws = await stack.enter_async_context(
                connect(old.url.replace("http", "ws") + "/v1/ws?symbols=AAPL,MSFT&bars=none")
            )
            ws_events: list[dict[str, Any]] = []
            ws_snapshots = asyncio.Event()
            ws_reader = asyncio.ensure_future(ws_read(ws, ws_events, ws_snapshots))
            for client in clients:
                await client.wait_for(2)  # the snapshots
            # the WebSocket's snapshots too: a drain that came first would leave it no
            # cursor to resume from (seen once under load)
            await asyncio.wait_for(ws_snapshots.wait(), 30)

            async def feed() -> None:  # updates keep coming across the drain
                for v in range(2, LAST):
                    records = [g.update_record(s, v) for s in SYMBOLS]
                    await produce(kafka_bootstrap, topics.updates, records)

            feeding = asyncio.ensure_future(feed())
            old.terminate()
            async with httpx.AsyncClient(base_url=old.url) as http:
                while (await http.get("/readyz")).status_code != 503:
                    pass  # the marker: the drain has begun (it lasts seconds)
                refused = await http.get(PATH)
                assert refused.status_code == 503
                assert int(refused.headers["retry-after"]) >= 1
                assert "error" in refused.json()
            retries = []
            for client in clients:
                assert client._task is not None
                await asyncio.wait_for(client._task, 30)  # ended by the drain
                farewell = client.events[-1]
                assert farewell.event == "reconnect"
                assert farewell.id == ""  # Last-Event-ID stays on the last update
                assert farewell.json() == {"reason": "shutdown", "retry_ms": client.retry}
                assert not list(validator(doc, "reconnect").iter_errors(farewell.json()))
                retries.append(client.retry)
            await asyncio.wait_for(ws_reader, 30)
            assert ws_events[-1]["event"] == "reconnect"
            assert not list(validator(doc, "wsEvents").iter_errors(ws_events[-1:]))
            assert ws.close_code == 1012
            assert all(r is not None and RETRY_MS <= r <= 2 * RETRY_MS for r in retries)
            assert len(set(retries)) > 1  # jittered: they do not all come back at once
            assert await old.exited() == 0

            # every client comes back, to the other node, from its own cursor
            resumed = []
            for client in clients:
                last_id = [e.id for e in client.events if e.id][-1]
                resumed.append(
                    await stack.enter_async_context(
                        g.sse_client(new.url, PATH, headers={"Last-Event-ID": last_id})
                    )
                )
            cursor = [e["id"] for e in ws_events if e.get("id")][-1]
            ws_again = await stack.enter_async_context(
                connect(
                    new.url.replace("http", "ws")
                    + f"/v1/ws?symbols=AAPL,MSFT&bars=none&last_event_id={cursor}"
                )
            )
            await feeding
            await produce(
                kafka_bootstrap, topics.updates, [g.update_record(s, LAST) for s in SYMBOLS]
            )
            full = {s: list(range(1, LAST + 1)) for s in SYMBOLS}
            for client, again in zip(clients, resumed, strict=True):
                await g.until_quotes(again, dict.fromkeys(SYMBOLS, LAST))
                assert g.by_symbol(client.quotes() + again.quotes()) == full
            ws_more: list[dict[str, Any]] = []
            while not all(("quote", s, LAST) in ws_versions(ws_more) for s in SYMBOLS):
                ws_more.extend(orjson.loads(await asyncio.wait_for(ws_again.recv(), 30)))
            assert g.by_symbol(ws_versions(ws_events) + ws_versions(ws_more)) == full
    finally:
        old.kill()
        new.kill()
