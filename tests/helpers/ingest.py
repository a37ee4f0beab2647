"""Helpers for ingest tests: a live ingest server on 127.0.0.1, API keys, events."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any

import uvicorn

from tickwire.ingest.app import create_app
from tickwire.ingest.auth import digest
from tickwire.ingest.keys import new_key
from tickwire.ingest.settings import IngestSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def settings_for(bootstrap: str, raw_topic: str, **overrides: Any) -> IngestSettings:
    """Ingest settings pointing at a test's broker and topic (auth off unless keys given)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_raw": raw_topic,
        "topic_partitions": 3,
        "ingest_auth": "off",
        "host": "127.0.0.1",
        "port": free_port(),
    }
    values.update(overrides)
    return IngestSettings(**values)


def keys_document(entries: Iterable[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """A keys document (JSON) for the given entries (each without `sha256`), and the
    plain key of each key_id."""
    keys: dict[str, str] = {}
    stored = []
    for entry in entries:
        key = new_key()
        keys[entry["key_id"]] = key
        stored.append({**entry, "sha256": digest(key)})
    return json.dumps({"keys": stored}), keys


def ingest_server(settings: IngestSettings) -> uvicorn.Server:
    """A uvicorn server for the ingest app on settings.host:port (not started)."""
    return uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings) -> AsyncIterator[str]:
    """Serve the ingest app with uvicorn in this event loop; yield its base URL."""
    server = ingest_server(settings)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise a start-up failure
                raise RuntimeError("ingest server exited during start-up")
            await asyncio.sleep(0.05)
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def now_iso(offset_s: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)).isoformat()


def trade(
    symbol: str = "AAPL", price: float = 100.0, size: float = 10, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "trade",
        "symbol": symbol,
        "price": price,
        "size": size,
        "time": now_iso(),
        **extra,
    }


def quote(
    symbol: str = "AAPL", bid: float = 99.9, ask: float = 100.1, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "quote",
        "symbol": symbol,
        "bid": bid,
        "bid_size": 100,
        "ask": ask,
        "ask_size": 200,
        "time": now_iso(),
        **extra,
    }
