"""Helpers for gateway tests: records in the processor's exact format, an in-process
gateway on a real port, and SSE / WebSocket clients that record what they receive."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import orjson
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from tests.helpers.infra import Topics
from tickwire.events import headers as h
from tickwire.events import types, wire
from tickwire.gateway.app import create_app
from tickwire.gateway.runtime import Runtime
from tickwire.gateway.settings import GatewaySettings

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

BASE_TIME = dt.datetime(2026, 11, 27, 14, 30, tzinfo=dt.UTC)


def ticker_state(symbol: str, version: int, **extra: Any) -> wire.TickerState:
    """A plausible TickerState: price moves with the version."""
    last = 100.0 + version / 100
    return wire.TickerState(
        symbol=symbol,
        version=version,
        time=BASE_TIME + dt.timedelta(seconds=version),
        last=last,
        last_size=10,
        bid=last - 0.01,
        ask=last + 0.01,
        volume=10.0 * version,
        trades=version,
        change=last - 100,
        change_pct=(last - 100),
        received_ns=extra.pop("received_ns", time.time_ns()),
        **extra,
    )


def update_record(symbol: str, version: int, *, pad: int = 0, **extra: Any) -> Record:
    """A ticker.updates record exactly as the processor writes it (pad: extra bytes in
    an unknown field, for tests that need big values)."""
    state = ticker_state(symbol, version, **extra)
    value = wire.ENCODER.encode(state)
    if pad:
        value = value[:-1] + b',"pad":"' + b"x" * pad + b'"}'
    return (symbol.encode(), value, update_headers(symbol, version, state.received_ns or 0))


def update_headers(symbol: str, version: int, received_ns: int) -> list[tuple[str, bytes]]:
    """The headers of a ticker.updates record."""
    return [
        (h.CE_SPECVERSION, types.SPECVERSION.encode()),
        (h.CE_ID, f"{symbol}-{version}".encode()),
        (h.CE_SOURCE, types.PROCESSOR_SOURCE.encode()),
        (h.CE_TYPE, types.TICKER_UPDATE.encode()),
        (h.CE_SUBJECT, symbol.encode()),
        (h.VERSION, str(version).encode()),
        (h.RECEIVED_NS, str(received_ns).encode()),
    ]


def bar_record(symbol: str, version: int, minute: int, *, interval: str = "1m") -> Record:
    """A ticker.bars record for the bar starting `minute` minutes after BASE_TIME."""
    start = BASE_TIME + dt.timedelta(minutes=minute)
    bar = wire.Bar(
        symbol=symbol,
        interval=interval,
        start=start,
        end=start + dt.timedelta(minutes=1),
        open=100,
        high=101 + version / 100,
        low=99,
        close=100 + version / 100,
        volume=version,
        vwap=100,
        trades=version,
        final=False,
        version=version,
        received_ns=time.time_ns(),
    )
    headers = [
        (h.CE_TYPE, types.BAR.encode()),
        (h.CE_SUBJECT, symbol.encode()),
        (h.CE_ID, f"{symbol}-bar-{version}".encode()),
        (h.VERSION, str(version).encode()),
    ]
    return (symbol.encode(), wire.ENCODER.encode(bar), headers)


def quote_doc(symbol: str, version: int) -> dict[str, Any]:
    """A `quotes` document as the processor stores it (with bookkeeping fields)."""
    doc: dict[str, Any] = msgspec.to_builtins(ticker_state(symbol, version))
    doc.update(_id=symbol, partition=0, offset=123, notional=1.0, forming={})
    return doc


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create topics with a known partition count; return once every partition has a
    leader (a busy broker may take a moment, and producers would spin meanwhile)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        for _ in range(300):
            described = await admin.describe_topics(names)
            led = [
                p
                for t in described
                if t.get("error_code", 1) == 0
                for p in t.get("partitions", [])
                if p.get("leader", -1) >= 0
            ]
            if len(led) == partitions * len(names):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topics {names} have no leaders")
    finally:
        await admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, **extra: Any
) -> GatewaySettings:
    """Gateway settings pointing at a test's own topics and database."""
    return GatewaySettings(
        kafka_bootstrap=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_db=db_name,
        topic_updates=topics.updates,
        topic_bars=topics.bars,
        host="127.0.0.1",
        port=free_port(),
        gateway_flush_ms=extra.pop("gateway_flush_ms", 2),
        gateway_auth=extra.pop("gateway_auth", "off"),
        **extra,
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[str]:
    """Serve a gateway on a real port in this event loop; yields its base URL once ready."""
    async with serving_gateway(settings) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def serving_gateway(settings: GatewaySettings) -> AsyncIterator[tuple[str, Runtime]]:
    """`running_gateway`, also yielding the instance's runtime (its lifespan state), for
    tests that must hold one of its resources the way a client would."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="none",
        http="httptools",
        ws="websockets",
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    url = f"http://{settings.host}:{settings.port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                if task.done():
                    task.result()
                    raise RuntimeError("gateway exited")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError("gateway not ready")
        yield url, server.lifespan.state["gateway"]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@dataclass
class Event:
    """One SSE event as a client sees it."""

    event: str
    id: str
    data: str

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SseClient:
    """Reads an SSE stream in the background into `events` (comments counted apart)."""

    events: list[Event] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # wall time each event was read
    comments: int = 0
    retry: int | None = None
    status: int = 0
    headers: httpx.Headers | None = None
    body: bytes = b""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Event]:
        """The first `count` events (failure guard: timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            if len(self.events) >= count or (self._task is not None and self._task.done()):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        assert len(self.events) >= count, f"got {len(self.events)} events, wanted {count}"
        return self.events[:count]

    def quotes(self) -> list[tuple[str, str, int]]:
        """(event, symbol, version) of every event with TickerState data."""
        out = []
        for e in self.events:
            if e.event in ("snapshot", "quote"):
                data = e.json()
                out.append((e.event, data["symbol"], data["version"]))
        return out


def metric(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (an in-process gateway's), 0 if unset."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def by_symbol(quotes: list[tuple[str, str, int]]) -> dict[str, list[int]]:
    """Versions per symbol, in the order received, from `SseClient.quotes()` tuples."""
    symbols = dict.fromkeys(symbol for _, symbol, _ in quotes)
    return {s: [v for _, symbol, v in quotes if symbol == s] for s in symbols}


def parse_sse(lines: list[str]) -> tuple[dict[str, str], bool]:
    """Fields of one event block (`data` lines joined), and whether it was a comment."""
    fields: dict[str, str] = {}
    datas: list[str] = []
    only_comments = True
    for line in lines:
        if line.startswith(":"):
            continue
        only_comments = False
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            datas.append(value)
        else:
            fields[name] = value
    if datas:
        fields["data"] = "\n".join(datas)
    return fields, only_comments


@contextlib.asynccontextmanager
async def sse_client(
    base_url: str, path: str, headers: dict[str, str] | None = None, cookies: Any = None
) -> AsyncIterator[SseClient]:
    """Open a stream and read it in the background until the block exits."""
    client = SseClient()
    started = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=None, cookies=cookies) as http,
            http.stream("GET", path, headers=headers or {}) as response,
        ):
            client.status = response.status_code
            client.headers = response.headers
            started.set()
            if response.status_code != 200:
                client.body = await response.aread()
                return
            block: list[str] = []
            async for line in response.aiter_lines():
                if line:
                    block.append(line)
                    continue
                fields, comment = parse_sse(block)
                block = []
                if comment:
                    client.comments += 1
                elif "retry" in fields and "data" not in fields:
                    client.retry = int(fields["retry"])
                else:
                    client.events.append(
                        Event(
                            fields.get("event", "message"),
                            fields.get("id", ""),
                            fields.get("data", ""),
                        )
                    )
                    client.arrivals.append(time.time())
                    client._arrived.set()
            client._arrived.set()

    client._task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(started.wait(), 20)
        yield client
    finally:
        client._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await client._task


def bar_state(
    symbol: str, index: int, *, revision: int, final: bool, interval: str = "1s"
) -> Record:
    """A ticker.bars record by the documented rule: bar `index` of the interval after
    BASE_TIME, `revision` trades applied, version 2 * revision + (1 if final)."""
    seconds = {"1s": 1, "1m": 60}[interval]
    start = BASE_TIME + dt.timedelta(seconds=seconds * index)
    version = 2 * revision + (1 if final else 0)
    bar = wire.Bar(
        symbol=symbol,
        interval=interval,
        start=start,
        end=start + dt.timedelta(seconds=seconds),
        open=100,
        high=100 + revision,
        low=100,
        close=100 + revision,
        volume=revision,
        vwap=100,
        trades=revision,
        final=final,
        version=version,
        received_ns=time.time_ns(),
    )
    headers = [
        (h.CE_TYPE, types.BAR.encode()),
        (h.CE_SUBJECT, symbol.encode()),
        (h.VERSION, str(version).encode()),
    ]
    return (symbol.encode(), wire.ENCODER.encode(bar), headers)


async def until_quotes(client: SseClient, markers: dict[str, int]) -> None:
    """Wait until the client received a quote of each marker (symbol: version). One
    symbol's records stay in order, so everything produced for a symbol before its
    marker has arrived by then: what a test asserts next is complete, without a sleep."""
    while not all(("quote", s, v) in client.quotes() for s, v in markers.items()):
        await client.wait_for(len(client.events) + 1)
