"""Bytes per delivered quote, full frames vs delta=1, on a simulated market feed.

The feed follows the processor's `to_wire` shape (tickwire.processor.state): 20
symbols, 60 % trades (last, size, times, volume, trades, vwap, change, session
high/low/change) and 40 % top-of-book quotes (bid/ask, sizes, spread, mid), each with
its new version, source offsets and received_ns. Both connections go through the real
hub and connection code; every update is flushed (no conflation), SSE frames counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random

from bench.common import versions, write_result
from tickwire.events import wire
from tickwire.gateway.connection import Connection, Interest, Tally
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.updates import QUOTE, Parsed

UPDATES = 20_000


async def measure() -> dict[str, float]:
    rng = random.Random(7)
    symbols = [f"SYM{i}" for i in range(20)]
    hub = Hub([Slot("ticker.updates", p, QUOTE) for p in range(6)], 1, 100_000)
    interest = Interest(frozenset(symbols), (), False, frozenset())
    full, delta = Connection(ip="a", subject=None), Connection(ip="b", subject=None, delta=True)
    for conn in (full, delta):
        hub.register(conn, interest, [])
    books = {s: [100.0 + i, 0, 0.0, 0] for i, s in enumerate(symbols)}
    now = dt.datetime(2026, 12, 2, 14, 30, tzinfo=dt.UTC)
    sizes = {"full": 0, "delta": 0}
    for n in range(UPDATES):
        symbol = rng.choice(symbols)
        book = books[symbol]
        now += dt.timedelta(microseconds=rng.randint(100, 5000))
        trade = rng.random() < 0.6
        if trade:
            book[0] = round(book[0] + rng.choice((-0.01, 0.01, 0)), 2)
            book[1] += 1
            book[2] += rng.choice((100, 200, 50))
        book[3] += 1
        last = book[0]
        state = wire.TickerState(
            symbol=symbol, version=book[3], time=now, last=last, last_size=100.0,
            last_time=now if trade else None, open=100.0, high=max(100.0, last),
            low=min(100.0, last), prev_close=99.5, change=round(last - 99.5, 2),
            change_pct=round((last - 99.5) / 99.5 * 100, 4), volume=book[2],
            trades=book[1], vwap=round(last - 0.003, 4), bid=round(last - 0.01, 2),
            bid_size=float(rng.randint(1, 9) * 100), ask=round(last + 0.01, 2),
            ask_size=float(rng.randint(1, 9) * 100), spread=0.02, mid=last,
            source=wire.SourceOffsets(0, n, n), received_ns=int(now.timestamp() * 1e9),
            session=wire.SessionInfo(exchange="XNYS", date="2026-12-02", phase="regular",
                                     open=100.0, high=max(100.0, last), low=min(100.0, last),
                                     prev_close=99.5, change=round(last - 99.5, 2),
                                     change_pct=round((last - 99.5) / 99.5 * 100, 4)),
        )  # fmt: skip
        value = wire.ENCODER.encode(state)
        hub.apply(0, n, Parsed(QUOTE, symbol, symbol, "", book[3], 0), value)
        for name, conn in (("full", full), ("delta", delta)):
            frames, _ = conn.rendered(0, Tally())
            sizes[name] += sum(map(len, frames))
    return {k: v / UPDATES for k, v in sizes.items()}


def main() -> None:
    per_update = asyncio.run(measure())
    ratio = per_update["full"] / per_update["delta"]
    write_result(
        "deltas",
        ours={"bytes_per_update_delta": round(per_update["delta"], 1), "updates": UPDATES},
        peer={"name": "full frames (delta=0)", "bytes_per_update": round(per_update["full"], 1)},
        ratio=ratio,
        ratio_meaning="SSE bytes per delivered quote, full / delta (target >= 3)",
        versions_=versions("msgspec", "orjson"),
    )  # fmt: skip
    print(per_update, ratio)


if __name__ == "__main__":
    main()
