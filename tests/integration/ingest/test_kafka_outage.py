"""Kafka stopped mid-test (a private stack, never the shared one): ingest answers 503
with Retry-After and reports nothing accepted; when Kafka returns, ingest recovers, and
every event answered 202 is in the topic exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.ingest import running_ingest, settings_for, trade
from tests.helpers.kafka import read_all
from tickwire.devstack.stack import Stack
from tickwire.events import headers as h

TOPIC = "outage.ticks.raw"


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    stack = Stack(tmp_path / "stack")
    info = stack.up(brokers=1, partitions=3)
    try:
        yield stack, info.bootstrap_servers
    finally:
        stack.down()


class Ledger:
    """What the client was told: ids answered 202 and ids answered otherwise."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.posted: list[str] = []  # every id, in the order it was posted
        self.seq = 0

    async def post_batch(self, client: httpx.AsyncClient, n: int, tag: str) -> httpx.Response:
        ids = [f"{tag}-{self.seq + i}" for i in range(n)]
        self.seq += n
        self.posted.extend(ids)
        symbols = ["AAPL", "MSFT", "NVDA"]
        events = [trade(symbols[i % 3], 100 + i, 1, id=eid) for i, eid in enumerate(ids)]
        resp = await client.post("/v1/events:batch", json=events)
        if resp.status_code in (202, 207):
            for eid, result in zip(ids, resp.json()["results"], strict=True):
                (self.accepted if result["status"] == 202 else self.refused).append(eid)
        else:
            self.refused.extend(ids)
        return resp


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
async def test_kafka_down_means_503_then_recovery_exactly_once(
    private_stack: tuple[Stack, str], crash: bool
) -> None:
    stack, bootstrap = private_stack
    settings = settings_for(
        bootstrap, TOPIC, ingest_publish_timeout_s=2.0, ingest_request_timeout_ms=5000
    )
    ledger = Ledger()
    async with (
        running_ingest(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        before = await ledger.post_batch(client, 30, "before")
        assert before.status_code == 202

        await asyncio.to_thread(stack.stop_kafka_node, 1, crash)
        assert (await client.get("/readyz")).status_code == 503
        for _ in range(3):
            resp = await ledger.post_batch(client, 10, "down")
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"] == "1"
            assert resp.json()["error_code"] == 503
        single = await client.post("/v1/events", json=trade(id="down-single"))
        assert single.status_code == 503
        assert "retry-after" in single.headers
        ledger.refused.append("down-single")
        ledger.posted.append("down-single")

        await asyncio.to_thread(stack.start_kafka_node, 1)  # it runs its own event loop
        deadline = time.monotonic() + 90  # a failure guard, not a measurement
        while True:
            resp = await ledger.post_batch(client, 5, "recover")
            if resp.status_code == 202:
                break
            assert resp.status_code == 503, resp.text
            assert time.monotonic() < deadline, "ingest did not recover after Kafka returned"
            await asyncio.sleep(0.5)
        after = await ledger.post_batch(client, 30, "after")
        assert after.status_code == 202
        assert (await client.get("/readyz")).status_code == 200

    records = await read_all(bootstrap, TOPIC, expected=len(ledger.accepted), timeout=60, idle=3)
    seen = Counter(h.find(r.headers, h.CE_ID) for r in records)
    assert all(count == 1 for count in seen.values()), "a record was written twice"
    for eid in ledger.accepted:
        assert seen[eid.encode()] == 1, f"{eid} was answered 202 but is not in the topic"
    assert set(seen) <= {e.encode() for e in ledger.accepted + ledger.refused}
    # per symbol (one partition), what landed is in the order it was posted
    for symbol in (b"AAPL", b"MSFT", b"NVDA"):
        landed = [h.find(r.headers, h.CE_ID) for r in records if r.key == symbol]
        assert landed == [e.encode() for e in ledger.posted if e.encode() in landed]
