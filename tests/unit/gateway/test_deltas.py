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
