"""The bridge when things fail mid-stream, on real servers: RabbitMQ restarted, the
bridge SIGKILLed. Nothing may be lost; ticks.raw may hold a message twice only as a
redelivery (the same event id, the same value), and the processor, reading ticks.raw,
counts every event once (its dedup window drops the redelivery): each symbol's state
version is the number of distinct events (versions = events applied).

Kafka stopped mid-stream (a private stack): nothing is acked to RabbitMQ that Kafka
did not acknowledge, so once Kafka is back every message arrives.

The node of this module is its own (never the shared stack's): the tests restart it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from tests.helpers import bridge as b
from tests.helpers import processor_run
from tests.helpers.infra import Topics
from tickwire.bridge.settings import BridgeSettings
from tickwire.devstack import procs
from tickwire.devstack.rabbitmq import RabbitServer
from tickwire.devstack.run import ServiceSpec, start_service, wait_ready
from tickwire.devstack.stack import Stack

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
MARKER_PRICE = 9999.5


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbitmq-faults")).start()
    try:
        yield server
    finally:
        server.stop()


class Stream:
    """Trades for SYMBOLS with ids the test knows, then one marker per symbol."""

    def __init__(self, tag: str, count: int) -> None:
        self.tag = tag
        self.sent: dict[str, list[tuple[str, dict[str, Any]]]] = {s: [] for s in SYMBOLS}
        self.messages: list[aio_pika.Message] = []
        for i in range(count):
            self._add(SYMBOLS[i % len(SYMBOLS)], 100.0 + i / 100, f"{tag}-{i}", i)
        self.markers = [self._marker(s, count + n) for n, s in enumerate(SYMBOLS)]

    def _add(self, symbol: str, price: float, event_id: str, i: int) -> aio_pika.Message:
        data = b.trade(symbol, price, 1 + i % 3, START + dt.timedelta(milliseconds=10 * i))
        message = b.plain("trade", data, id=event_id)
        self.sent[symbol].append((event_id, data))
        self.messages.append(message)
        return message

    def _marker(self, symbol: str, i: int) -> aio_pika.Message:
        return self._add(symbol, MARKER_PRICE, f"{self.tag}-marker-{symbol}", i)

    def marker_ids(self) -> set[str]:
        return {entries[-1][0] for entries in self.sent.values()}


def check_nothing_lost(stream: Stream, records: list[b.Record]) -> None:
    """Per symbol: the first copy of each id in the order sent, every id there, and any
    second copy a redelivery (same id, same value)."""
    groups = b.by_symbol(records)
    print(f"[bridge] {len(records)} records for {len(stream.messages)} messages")
    for symbol, sent in stream.sent.items():
        got = groups[symbol]
        first: dict[str, bytes] = {}
        order: list[str] = []
        for record in got:
            event_id = b.header(record, "ce_id") or ""
            if event_id in first:
                assert record.value == first[event_id], f"{event_id}: a different value"
                continue
            first[event_id] = record.value
            order.append(event_id)
        assert order == [event_id for event_id, _ in sent], symbol
        for event_id, data in sent:
            assert json.loads(first[event_id])["price"] == data["price"]


async def check_processor_counts_once(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, stream: Stream, db: Any
) -> None:
    """The processor over the bridge's ticks.raw: each symbol's version is its number of
    distinct events, read once the marker (the last event) is applied."""
    settings = processor_run.settings_for(kafka_bootstrap, mongodb_url, db_name, topics)
    want = {s: len(entries) for s, entries in stream.sent.items()}
    async with processor_run.in_process(settings):
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            docs = {d["_id"]: d async for d in db.quotes.find({}, {"last": 1, "version": 1})}
            if all(docs.get(s, {}).get("last") == MARKER_PRICE for s in SYMBOLS):
                break
            assert asyncio.get_running_loop().time() < deadline, f"not settled: {docs}"
            await asyncio.sleep(0.3)
    assert {s: docs[s]["version"] for s in SYMBOLS} == want


class BridgeProcess:
    """`python -m tickwire.bridge` as a child process with these settings."""

    def __init__(self, settings: BridgeSettings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.port = 0
        self.pid_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until /readyz answers 200."""
        self.port = procs.free_port()
        spec = ServiceSpec("bridge", self.port, {})
        self.pid_file = start_service(spec, b.env_for(self.settings, self.port), self.run_dir)
        wait_ready(spec, self.pid_file, self.run_dir / "bridge.log")

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        assert self.pid_file is not None
        assert procs.stop(self.pid_file, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.pid_file is not None:
            procs.stop(self.pid_file)


def _settings(kafka_bootstrap: str, rabbit: RabbitServer, topics: Topics) -> BridgeSettings:
    tag = f"t{uuid.uuid4().hex[:10]}"
    return b.settings_for(kafka_bootstrap, rabbit.url, topics, tag, bridge_batch_max=100)


def _exchange(settings: BridgeSettings) -> str:
    return settings.bridge_bindings[0].exchange


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
async def test_broker_restart_mid_stream_loses_nothing(
    crash: bool,
    rabbit: RabbitServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    mongo: Any,
    topics: Topics,
) -> None:
    settings = _settings(kafka_bootstrap, rabbit, topics)
    stream = Stream(settings.bridge_bindings[0].queue, 3000)
    half = len(stream.messages) // 2
    async with b.in_process(settings) as bridge:
        await b.wait_consuming(bridge)
        await b.publish(rabbit.url, _exchange(settings), "ticks.a", stream.messages[:half])
        await b.read_at_least(kafka_bootstrap, topics.raw, 300)  # the bridge is mid-stream
        # persistent messages in durable queues outlive a clean stop and a crash alike
        await asyncio.to_thread(rabbit.stop, crash)
        await asyncio.to_thread(rabbit.start)
        await b.publish(
            rabbit.url, _exchange(settings), "ticks.a", stream.messages[half : -len(SYMBOLS)]
        )
        await b.publish(
            rabbit.url, _exchange(settings), "ticks.a", stream.messages[-len(SYMBOLS) :]
        )
        records = await b.read_until_ids(kafka_bootstrap, topics.raw, stream.marker_ids())
    check_nothing_lost(stream, records)
    await check_processor_counts_once(kafka_bootstrap, mongodb_url, db_name, topics, stream, mongo)


async def test_bridge_sigkill_mid_stream_loses_nothing(
    rabbit: RabbitServer,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    mongo: Any,
    topics: Topics,
    tmp_path: Path,
) -> None:
    settings = _settings(kafka_bootstrap, rabbit, topics)
    stream = Stream(settings.bridge_bindings[0].queue, 3000)
    bridge = BridgeProcess(settings, tmp_path)
    try:
        await asyncio.to_thread(bridge.start)
        feeding = asyncio.create_task(
            b.publish(rabbit.url, _exchange(settings), "ticks.a", stream.messages[:-5])
        )
        await b.read_at_least(kafka_bootstrap, topics.raw, 500)  # mid-stream
        bridge.kill()
        await feeding
        await asyncio.to_thread(bridge.start)
        await b.publish(rabbit.url, _exchange(settings), "ticks.a", stream.messages[-5:])
        records = await b.read_until_ids(kafka_bootstrap, topics.raw, stream.marker_ids())
        async with httpx.AsyncClient(base_url=bridge.url) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json() == {"status": "ready"}
            text = (await client.get("/metrics")).text
    finally:
        bridge.stop()
    # the restarted bridge published the rest: at least the markers, all counted
    assert _metric(text, "tickwire_bridge_messages_published_total") >= len(SYMBOLS)
    assert "tickwire_bridge_kafka_publish_seconds_bucket" in text
    assert "tickwire_bridge_inflight_messages" in text
    check_nothing_lost(stream, records)
    await check_processor_counts_once(kafka_bootstrap, mongodb_url, db_name, topics, stream, mongo)


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """A stack of this test's own (its Kafka is stopped mid-test), never the shared one."""
    stack = Stack(tmp_path / "stack")
    info = stack.up(brokers=1, partitions=3)
    try:
        yield stack, info.bootstrap_servers
    finally:
        stack.down()


def _metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


async def test_kafka_down_means_nothing_acked_then_everything_delivered(
    rabbit: RabbitServer, private_kafka: tuple[Stack, str], topics: Topics, tmp_path: Path
) -> None:
    """Kafka stops; the bridge fails a batch (nacked, requeued) and is then SIGKILLed
    while Kafka is still down: had it acked anything Kafka had not acknowledged, that
    would be lost with the process. A new bridge, once Kafka is back, delivers it all."""
    stack, bootstrap = private_kafka
    settings = _settings(bootstrap, rabbit, topics).model_copy(
        update={"bridge_publish_timeout_s": 2.0}
    )
    stream = Stream(settings.bridge_bindings[0].queue, 200)
    first, during = stream.messages[:100], stream.messages[100:-5]
    bridge = BridgeProcess(settings, tmp_path)
    try:
        await asyncio.to_thread(bridge.start)
        await b.publish(rabbit.url, _exchange(settings), "ticks.a", first)
        await b.read_at_least(bootstrap, topics.raw, len(first))

        await asyncio.to_thread(stack.stop_kafka_node, 1)
        await b.publish(rabbit.url, _exchange(settings), "ticks.a", during)
        async with httpx.AsyncClient(base_url=bridge.url) as client:
            deadline = asyncio.get_running_loop().time() + 60  # a failure guard
            while True:  # the marker: a batch was nacked and /readyz names Kafka
                text = (await client.get("/metrics")).text
                ready = await client.get("/readyz")
                requeued = _metric(text, "tickwire_bridge_messages_requeued_total")
                if requeued > 0 and "kafka" in ready.json().get("failing", []):
                    break
                assert asyncio.get_running_loop().time() < deadline, "no Kafka failure seen"
                await asyncio.sleep(0.1)
            assert _metric(text, "tickwire_bridge_messages_published_total") == len(first)
        bridge.kill()

        await asyncio.to_thread(stack.start_kafka_node, 1)
        await asyncio.to_thread(bridge.start)
        await b.publish(rabbit.url, _exchange(settings), "ticks.a", stream.messages[-5:])
        records = await b.read_until_ids(bootstrap, topics.raw, stream.marker_ids())
    finally:
        bridge.stop()
    check_nothing_lost(stream, records)
    assert await b.queue_depth(rabbit.url, settings.bridge_bindings[0].queue) == 0
