"""Deltas against full frames across a resume on another instance: a delta=1 client on
one gateway process drops, resumes on a second process with its Last-Event-ID, and —
decoded by an independent decoder written from the README rule — holds at the end
marker exactly the states a full-frame client on the first process holds, having
applied every version of every symbol once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import gateway as g
from tests.helpers.deltas import decode
from tests.helpers.gateway_process import GatewayProcess, gateway_env
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tickwire.events import wire

SYMBOLS = ["AAPL", "MSFT", "GOOG"]
LAST = 12  # the end marker: every symbol's version 12


def record(symbol: str, version: int) -> g.Record:
    """A state whose nested objects change: the session's phase moves every version, a
    halt comes and goes (a `status` that appears, and is then removed)."""
    phase = ("pre", "regular", "post")[version % 3]
    session = wire.SessionInfo(exchange="XNYS", date="2026-11-27", phase=phase)
    if version % 4 == 2:
        status = wire.StatusInfo(state="halted", reason=f"news {version}", since=g.BASE_TIME)
        return g.update_record(symbol, version, session=session, status=status)
    return g.update_record(symbol, version, session=session)


class Decoded:
    """What a client holds: the states decoded from every event it received, and the
    versions it applied per symbol, in order."""

    def __init__(self) -> None:
        self.held: dict[str, Any] = {}
        self.applied: dict[str, list[int]] = {}
        self.kinds: list[tuple[str, str]] = []  # (event, symbol)
        self.read = 0
        self.client: g.SseClient | None = None

    def take(self, client: g.SseClient) -> None:
        if client is not self.client:  # a new connection (the resume): its first event
            self.client, self.read = client, 0
        for event in client.events[self.read :]:
            if event.event in ("snapshot", "quote", "delta"):
                data = event.json()
                decode(self.held, event.event, data)
                self.applied.setdefault(data["symbol"], []).append(data["version"])
                self.kinds.append((event.event, data["symbol"]))
        self.read = len(client.events)

    async def until(self, client: g.SseClient, version: int) -> None:
        """Wait until every symbol is held at `version` (one symbol's records arrive in
        order, so everything before it has arrived too)."""
        self.take(client)
        while not all(self.held.get(s, {}).get("version") == version for s in SYMBOLS):
            await client.wait_for(len(client.events) + 1)
            self.take(client)


def process(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, log: Path
) -> GatewayProcess:
    return GatewayProcess(
        gateway_env(kafka_bootstrap, mongodb_url, db_name, topics),
        g.free_port(),
        log,
    )


async def rounds(
    kafka_bootstrap: str, topics: Topics, versions: range, *clients: tuple[Decoded, g.SseClient]
) -> None:
    """Produce each version of every symbol and wait until the clients hold it: one round
    at a time, so nothing is conflated and every version reaches every client."""
    for version in versions:
        await produce(kafka_bootstrap, topics.updates, [record(s, version) for s in SYMBOLS])
        for decoded, client in clients:
            await decoded.until(client, version)


async def test_a_delta_client_resumed_on_another_instance_holds_the_full_states(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, tmp_path: Path
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(kafka_bootstrap, topics.updates, [record(s, 1) for s in SYMBOLS])
    first = process(kafka_bootstrap, mongodb_url, db_name, topics, tmp_path / "a.log")
    second = process(kafka_bootstrap, mongodb_url, db_name, topics, tmp_path / "b.log")
    path = f"/v1/stream?symbols={','.join(SYMBOLS)}&bars=none"
    full, delta = Decoded(), Decoded()
    await first.start()
    await second.start()
    try:
        async with g.sse_client(first.url, path) as full_client:
            async with g.sse_client(first.url, f"{path}&delta=1") as delta_client:
                await rounds(
                    kafka_bootstrap, topics, range(2, 6), (full, full_client), (delta, delta_client)
                )
                cursor = delta_client.events[-1].id
            before_resume = len(delta.kinds)
            # missed while away: the resume must bring them, each version once, in order
            await rounds(kafka_bootstrap, topics, range(6, 9), (full, full_client))
            async with g.sse_client(
                second.url, f"{path}&delta=1", headers={"Last-Event-ID": cursor}
            ) as resumed:
                await rounds(
                    kafka_bootstrap,
                    topics,
                    range(9, LAST + 1),
                    (full, full_client),
                    (delta, resumed),
                )
                assert resumed.status == 200
    finally:
        first.kill()
        second.kill()
    assert delta.held == full.held  # the end marker: equal states, field for field
    assert all(delta.held[s]["version"] == LAST for s in SYMBOLS)
    every = {s: list(range(1, LAST + 1)) for s in SYMBOLS}
    assert full.applied == every
    assert delta.applied == every
    assert {kind for kind, _ in full.kinds} == {"snapshot", "quote"}
    # the first session: a snapshot per symbol, then deltas only
    first_session = [kind for kind, _ in delta.kinds[:before_resume]]
    assert first_session[: len(SYMBOLS)] == ["snapshot"] * len(SYMBOLS)
    assert set(first_session[len(SYMBOLS) :]) == {"delta"}
    # the resumed session starts each symbol with a full quote (a delta needs a state
    # this connection was sent), then deltas again; never a snapshot
    resumed = delta.kinds[before_resume:]
    assert len(resumed) == len(SYMBOLS) * (LAST - 5)
    for symbol in SYMBOLS:
        kinds = [kind for kind, s in resumed if s == symbol]
        assert kinds[0] == "quote"
        assert set(kinds) <= {"quote", "delta"}
    assert ("delta", "AAPL") in resumed
