"""Property: whatever the interleaving of records, subscriptions, flushes, disconnects
and resumes (from the buffer), a client sees, per symbol, at most one snapshot, first,
then strictly newer versions, never one twice, and ends at the newest; when every update is flushed
before the next arrives (no conflation), it sees every accepted version exactly once."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickwire.gateway import cursor
from tickwire.gateway.connection import Connection, Interest, Tally
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.resume import Resumer
from tickwire.gateway.updates import QUOTE, Parsed

SYMBOLS = ["A", "B", "C", "D"]
SLOTS = [Slot("u", 0, QUOTE), Slot("u", 1, QUOTE)]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.sampled_from(SYMBOLS), st.sampled_from([0, 0, 0, 1, 2])),
        st.tuples(st.just("flush")),
        st.tuples(st.just("drop")),
        st.tuples(st.just("resume")),
    ),
    max_size=60,
)


class Client:
    """What one client has received, parsed back from the frames."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []  # (event, symbol, version)
        self.last_id = ""

    def receive(self, frames: list[bytes]) -> None:
        for frame in frames:
            fields = dict(
                line.split(": ", 1) for line in frame.decode().split("\n") if ": " in line
            )
            if "event" not in fields:
                continue
            self.last_id = fields["id"]
            symbol, version = fields["data"].split(":")
            self.seen.append((fields["event"], symbol, int(version)))


def run(script: list[tuple[object, ...]], wanted: frozenset[str], eager: bool) -> None:
    async def main() -> None:
        hub = Hub(SLOTS, tag=7, buffer_capacity=1000)
        hub.warmed_up()
        resumer = Resumer(hub, "unused:9092", "test", 1.0)
        versions = dict.fromkeys(SYMBOLS, 0)
        offsets = [0, 0]
        accepted: dict[str, list[int]] = {s: [] for s in SYMBOLS}
        client = Client()
        interest = Interest(wanted, bar_intervals=frozenset())
        conn: Connection | None = Connection(ip="t", subject=None)
        await resumer.subscribe(conn, interest, None)

        async def reconnect() -> Connection:
            again = Connection(ip="t", subject=None)
            position = cursor.decode(client.last_id) if client.last_id else None
            await resumer.subscribe(again, interest, position)
            return again

        def drain() -> None:
            if conn is not None:
                frames, _ = conn.rendered(0, Tally())
                client.receive(frames)

        for step in script:
            if step[0] == "record":
                symbol, back = str(step[1]), int(step[2])  # type: ignore[call-overload]
                version = versions[symbol] + 1 - back  # back > 0: a stale or repeated one
                versions[symbol] = max(versions[symbol], version)
                slot = SYMBOLS.index(symbol) % 2
                value = f"{symbol}:{version}".encode()
                parsed = Parsed(QUOTE, symbol, symbol, "", version, 0)
                if version > (accepted[symbol] or [-1])[-1]:
                    accepted[symbol].append(version)
                hub.apply(slot, offsets[slot], parsed, value)
                offsets[slot] += 1
                if eager:
                    drain()
            elif step[0] == "flush":
                drain()
            elif step[0] == "drop" and conn is not None:
                hub.unregister(conn)  # unsent frames are lost with the connection
                conn = None
            elif step[0] == "resume" and conn is None:
                conn = await reconnect()
                drain()
        if conn is None:
            conn = await reconnect()
        drain()

        for symbol in wanted:
            mine = [(e, v) for e, s, v in client.seen if s == symbol]
            if not accepted[symbol]:
                assert mine == []
                continue
            # a snapshot comes first, unless the symbol had no state yet when subscribed
            assert all(event == "quote" for event, _ in mine[1:])
            got = [v for _, v in mine]
            assert got == sorted(set(got)), (symbol, got)
            assert got[-1] == accepted[symbol][-1]
            if eager:  # nothing conflated: every accepted version after the snapshot
                assert got == [v for v in accepted[symbol] if v >= got[0]]

    asyncio.run(main())


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sets(st.sampled_from(SYMBOLS), min_size=1), st.booleans())
def test_resume_model(script: list[tuple[object, ...]], wanted: set[str], eager: bool) -> None:
    run(script, frozenset(wanted), eager)
