"""A market simulator for demos: random-walk trades and quotes for a set of symbols,
posted to ingest as NDJSON batches at a steady rate; now and then a trade correction or
cancel of a recent trade, and a short trading halt of one symbol (a status event, then
no trades for it until it resumes). Used by `make run` (and handy on
its own: `python -m tickwire.devstack simulate --rate 500`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass

import httpx
import orjson

log = logging.getLogger(__name__)

DEMO_SYMBOLS = (
    "AAPL",
    "MSFT",
    "NVDA",
    "AMZN",
    "GOOGL",
    "META",
    "TSLA",
    "BRK.B",
    "JPM",
    "V",
    "XOM",
    "UNH",
    "AVGO",
    "LLY",
    "WMT",
    "MA",
    "ORCL",
    "COST",
    "NFLX",
    "AMD",
)


@dataclass
class _Book:
    price: float
    spread: float
    halted_ticks: int = 0  # ticks left in a simulated halt


#: Chances: a correction or cancel of a recent trade (per event), a halt (per symbol
#: and tick: about one symbol in 20 every 30 s at the default tick interval)
CORRECTION_CHANCE = 1 / 2000
HALT_CHANCE = 1 / 6000
HALT_TICKS = 150  # 15 s at the default tick interval


async def last_prices(
    gateway_url: str, symbols: tuple[str, ...] = DEMO_SYMBOLS
) -> dict[str, float]:
    """The last traded prices the gateway knows for symbols ({} when it knows none)."""
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.get(
                f"{gateway_url.rstrip('/')}/v1/quotes", params={"symbols": ",".join(symbols)}
            )
        except httpx.HTTPError:
            return {}
    if response.status_code != 200:
        return {}
    quotes = response.json().get("quotes", [])
    return {q["symbol"]: float(q["last"]) for q in quotes if q.get("last")}


class MarketSimulator:
    """Posts `rate` events per second (about 1 quote for every trade) to ingest."""

    def __init__(
        self,
        ingest_url: str,
        symbols: tuple[str, ...] = DEMO_SYMBOLS,
        rate: float = 200.0,
        api_key: str | None = None,
        seed: int | None = None,
        tick_interval: float = 0.1,
        last_prices: dict[str, float] | None = None,
    ) -> None:
        self.url = ingest_url.rstrip("/") + "/v1/events:batch"
        self.rate = rate
        self.tick_interval = tick_interval
        self.rng = random.Random(seed)
        # continue from the last known prices (a restarted demo keeps its session's
        # open, so a fresh random start would show absurd changes), else a random level
        known = last_prices or {}
        self.books = {s: _Book(known.get(s) or self.rng.uniform(20, 900), 0.0) for s in symbols}
        self.headers = {"content-type": "application/x-ndjson"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.accepted = 0
        self.refused = 0
        self._trades = 0  # trade ids: sim-<start>-<n>, unique across restarts
        self._run = f"{time.time_ns():x}"
        self._recent: list[tuple[str, str]] = []  # (symbol, id) of recent trades

    def _market_events(self, now: str) -> list[dict[str, object]]:
        """The occasional halt, resumption, correction or cancel of this tick."""
        events: list[dict[str, object]] = []
        for symbol, book in self.books.items():
            if book.halted_ticks:
                book.halted_ticks -= 1
                if not book.halted_ticks:
                    events.append(
                        {"type": "status", "symbol": symbol, "time": now, "state": "trading"}
                    )
            elif self.rng.random() < HALT_CHANCE:
                book.halted_ticks = HALT_TICKS
                events.append(
                    {
                        "type": "status",
                        "symbol": symbol,
                        "time": now,
                        "state": "halted",
                        "reason": "volatility pause (simulated)",
                    }
                )
        if self._recent and self.rng.random() < CORRECTION_CHANCE * self.rate * self.tick_interval:
            symbol, ref = self._recent.pop(self.rng.randrange(len(self._recent)))
            book = self.books[symbol]
            if self.rng.random() < 0.5:
                events.append({"type": "cancel", "symbol": symbol, "time": now, "ref_id": ref})
            else:
                events.append(
                    {
                        "type": "correction",
                        "symbol": symbol,
                        "time": now,
                        "ref_id": ref,
                        "price": round(book.price, 2),
                        "size": self.rng.choice((1, 5, 10, 50, 100)),
                    }
                )
        return events

    def _events(self, count: int) -> list[dict[str, object]]:
        now = dt.datetime.now(dt.UTC).isoformat()
        events = self._market_events(now)
        symbols = list(self.books)
        for _ in range(count):
            symbol = self.rng.choice(symbols)
            book = self.books[symbol]
            book.price = max(0.01, book.price * (1 + self.rng.gauss(0, 0.0008)))
            book.spread = max(0.01, round(book.price * 0.0004, 2))
            if self.rng.random() < 0.5 and not book.halted_ticks:
                self._trades += 1
                trade_id = f"sim-{self._run}-{self._trades}"
                self._recent = [*self._recent[-49:], (symbol, trade_id)]
                events.append(
                    {
                        "type": "trade",
                        "id": trade_id,
                        "symbol": symbol,
                        "price": round(book.price, 2),
                        "size": self.rng.choice((1, 5, 10, 50, 100, 200, 500)),
                        "time": now,
                    }
                )
            else:
                bid = round(book.price - book.spread / 2, 2)
                events.append(
                    {
                        "type": "quote",
                        "symbol": symbol,
                        "bid": bid,
                        "bid_size": self.rng.randint(1, 20) * 100,
                        "ask": round(bid + book.spread, 2),
                        "ask_size": self.rng.randint(1, 20) * 100,
                        "time": now,
                    }
                )
        return events

    async def run(self) -> None:
        """Post batches until cancelled; a refused batch is logged and counted."""
        per_tick = max(1, round(self.rate * self.tick_interval))
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                body = b"\n".join(orjson.dumps(e) for e in self._events(per_tick))
                try:
                    response = await client.post(self.url, content=body, headers=self.headers)
                    if response.status_code in (200, 202, 207):
                        self.accepted += per_tick
                    else:
                        self.refused += per_tick
                        log.warning(
                            "ingest refused a batch: %s %s",
                            response.status_code,
                            response.text[:200],
                        )
                except httpx.HTTPError as exc:
                    self.refused += per_tick
                    log.warning("ingest unreachable: %s", exc)
                await asyncio.sleep(self.tick_interval)
