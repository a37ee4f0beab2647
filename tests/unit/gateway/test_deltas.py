"""Field-level deltas: an independent decoder, written from the documented rule (README,
Deltas), applied to what a delta=1 connection is sent, equals the full state at every
step, whatever the conflation and drops in between."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.deltas import decode
from tickwire.gateway.connection import Connection, Tally
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import QUOTE, Parsed

FIELDS = ["last", "bid", "ask", "volume", "time"]


states = st.fixed_dictionaries(
    {},
    optional={
        **{f: st.integers(0, 3) for f in FIELDS},
        "session": st.fixed_dictionaries(
            {}, optional={"high": st.integers(0, 2), "low": st.integers(0, 2)}
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("AB"), states, st.booleans()), max_size=40))
def test_decoded_deltas_equal_the_full_states(steps: list[tuple[str, dict, bool]]) -> None:
    async def run() -> None:
        hub = Hub([Slot("t", 0, QUOTE)], 1, 1000)
        hub.ready.set()
        conn = Connection(ip="x", subject=None, delta=True)
        from tickwire.gateway.connection import Interest

        interest = Interest(frozenset("AB"), (), False, frozenset())
        hub.register(conn, interest, hub.snapshot_frames(conn, interest))
        held: dict[str, Any] = {}
        newest: dict[str, dict[str, Any]] = {}
        for offset, (symbol, fields, flush) in enumerate(steps):
            version = offset + 1
            state = {"symbol": symbol, "version": version, **fields}
            value = orjson.dumps(state)
            hub.apply(0, offset, Parsed(QUOTE, symbol, symbol, "", version, 0), value)
            newest[symbol] = state
            if flush:  # not flushing conflates the pending quotes
                frames, _ = conn.rendered(0, Tally())
                for frame in frames:
                    lines = dict(line.split(": ", 1) for line in frame.decode().strip().split("\n"))
                    decode(held, lines["event"], orjson.loads(lines["data"]))
                for s, expected in newest.items():
                    assert held.get(s) == expected

    asyncio.run(run())


def test_after_a_resume_deltas_carry_ids_raised_to_the_cursor() -> None:
    # two partitions: a client resumed with a cursor at offset 5 on partition 1, ahead
    # of this instance, which reads symbol A on partition 0. A's updates must not carry
    # an id below the cursor on partition 1 (a resume from it would repeat), and they
    # still come as deltas against what this connection was sent
    async def run() -> None:
        from tickwire.gateway import cursor
        from tickwire.gateway.connection import Interest

        hub = Hub([Slot("t", 0, QUOTE), Slot("t", 1, QUOTE)], 1, 1000)
        hub.ready.set()
        conn = Connection(ip="x", subject=None, delta=True)
        interest = Interest(frozenset("A"), (), False, frozenset())
        states = [{"symbol": "A", "version": v, "last": v, "bid": 1} for v in (1, 2, 3)]
        hub.apply(0, 0, Parsed(QUOTE, "A", "A", "", 1, 0), orjson.dumps(states[0]))
        hub.register(conn, interest, hub.snapshot_frames(conn, interest))
        conn.floor = [0, 5]
        held: dict[str, Any] = {}
        ids = []
        for offset, state in enumerate(states[1:], start=1):
            hub.apply(
                0, offset, Parsed(QUOTE, "A", "A", "", state["version"], 0), orjson.dumps(state)
            )
            frames, _ = conn.rendered(0, Tally())
            for frame in frames:
                lines = dict(line.split(": ", 1) for line in frame.decode().strip().split("\n"))
                decode(held, lines["event"], orjson.loads(lines["data"]))
                if lines["event"] != "snapshot":
                    assert lines["event"] == "delta"
                    ids.append(cursor.decode(lines["id"])[1])
            assert held["A"] == state
        assert ids == [[2, 5], [3, 5]]  # partition 0 as read, partition 1 raised

    asyncio.run(run())
