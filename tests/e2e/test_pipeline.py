"""The whole pipeline as users see it: a producer posts a tape of trades and quotes to
ingest; a dashboard subscribed to the gateway over SSE sees every symbol reach exactly
the state computed independently here, with versions that only grow; MongoDB holds the
same state. Real ingest, processor and gateway processes; real Kafka and FerretDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.helpers.infra import Topics
from tests.helpers.services import pipeline_specs, running, service_env

SYMBOLS = ["AAPL", "MSFT", "BRK.B"]


def _tape(seed: int = 7, per_symbol: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    events = []
    for i in range(per_symbol):
        for j, symbol in enumerate(SYMBOLS):
            t = (base + dt.timedelta(seconds=i, milliseconds=j)).isoformat()
            price = round(100 + j * 50 + rng.uniform(-5, 5), 2)
            events.append(
                {
                    "type": "trade",
                    "symbol": symbol,
                    "price": price,
                    "size": rng.randint(1, 9) * 10,
                    "time": t,
                    "id": f"e2e-{symbol}-{i}",
                }
            )
            if i % 4 == 0:
                events.append(
                    {
                        "type": "quote",
                        "symbol": symbol,
                        "bid": price - 0.05,
                        "bid_size": 100,
                        "ask": price + 0.05,
                        "ask_size": 200,
                        "time": t,
                        "id": f"e2e-q-{symbol}-{i}",
                    }
                )
    return events


def _expected(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        s = out.setdefault(e["symbol"], {"trades": 0, "volume": 0.0, "notional": 0.0})
        if e["type"] == "trade":
            s["open"] = s.get("open", e["price"])
            s["high"] = max(s.get("high", e["price"]), e["price"])
            s["low"] = min(s.get("low", e["price"]), e["price"])
            s["last"] = e["price"]
            s["trades"] += 1
            s["volume"] += e["size"]
            s["notional"] += e["price"] * e["size"]
        else:
            s["bid"], s["ask"] = e["bid"], e["ask"]
    for s in out.values():
        s["vwap"] = s.pop("notional") / s["volume"]
    return out


async def _collect(
    url: str,
    want: dict[str, dict[str, Any]],
    seen: dict[str, list[int]],
    final: dict[str, dict[str, Any]],
    connected: asyncio.Event,
) -> None:
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        connected.set()
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("snapshot", "quote"):
                state = orjson.loads(line[5:])
                seen.setdefault(state["symbol"], []).append(state["version"])
                final[state["symbol"]] = state
                if all(final.get(s, {}).get("trades") == w["trades"] for s, w in want.items()):
                    return


async def test_posted_tape_reaches_dashboard_and_store_exactly(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
    tmp_path: Path,
) -> None:
    tape = _tape()
    want = _expected(tape)
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    with running(pipeline_specs(), env, tmp_path) as urls:
        seen: dict[str, list[int]] = {}
        final: dict[str, dict[str, Any]] = {}
        connected = asyncio.Event()
        stream = f"{urls['gateway']}/v1/stream?symbols={','.join(SYMBOLS)}"
        reader = asyncio.create_task(_collect(stream, want, seen, final, connected))
        await asyncio.wait_for(connected.wait(), 30)

        async with httpx.AsyncClient(timeout=30) as client:
            for start in range(0, len(tape), 50):
                body = b"\n".join(orjson.dumps(e) for e in tape[start : start + 50])
                resp = await client.post(
                    f"{urls['ingest']}/v1/events:batch",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                )
                assert resp.status_code == 202, resp.text

        await asyncio.wait_for(reader, 90)

    for symbol, expected in want.items():
        got = final[symbol]
        assert got["trades"] == expected["trades"]
        assert got["volume"] == expected["volume"]
        assert got["last"] == expected["last"]
        assert got["open"] == expected["open"]
        assert got["high"] == expected["high"]
        assert got["low"] == expected["low"]
        assert abs(got["vwap"] - expected["vwap"]) < 1e-9 * expected["vwap"]
        assert got["bid"] == expected["bid"]
        assert got["ask"] == expected["ask"]
        versions = seen[symbol]
        assert versions == sorted(set(versions)), f"{symbol} versions not strictly growing"

    stored = {d["symbol"]: d async for d in mongo["quotes"].find({})}
    for symbol, expected in want.items():
        assert stored[symbol]["trades"] == expected["trades"]
        assert stored[symbol]["last"] == expected["last"]
        assert stored[symbol]["version"] == final[symbol]["version"]
