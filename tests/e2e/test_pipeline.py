"""The whole pipeline as users see it: a producer posts a tape of trades and quotes to
ingest; a dashboard subscribed to the gateway over SSE sees every posted event's
effect, in order per symbol, none missing, none twice; MongoDB catches up behind (read
back through the gateway's query API). Real ingest, processor and gateway processes;
real Kafka and the embedded store.

What "every event's effect" means for an SSE client, which may be conflated (the
processor publishes one update per symbol per batch, the gateway keeps one pending
quote per symbol and one pending state per forming bar: DESIGN, Slow clients; gateway
README, Fan-out), written from the documented rules, not from the code:

- quotes: per symbol the versions a client receives strictly increase (in order, never
  twice), and the last one is the reference: version = number of events applied to the
  symbol (processor README, "applied"), with the state those events give (event-time
  rules: `last` from the latest trade in event time, `open` from the earliest, bid/ask
  from the latest quote; volume, trade count and VWAP over every applied trade);
- bars: a closed bar is never conflated away, so every bar of the reference arrives
  final exactly once, with version 2 x trades + 1 and its OHLCV; the states of one bar
  arrive with strictly increasing versions and nothing follows its final;
- nothing else: no symbol, bar or version beyond the reference, up to a sentinel
  event posted once the reference is reached (its quote closes the recording).

Hard cases in the tape: retried batches (the same event ids posted twice: duplicates,
not applied again), adjacent trades posted out of event-time order within the grace
period (applied; `last` never moves back), and refused batches — a line that is not
JSON, bytes that are not UTF-8 (400) and an invalid event (422) — each with otherwise
valid events of new ids that must never be applied (a refused batch is all or
nothing). A quote per symbol far ahead in event time moves every watermark past the
bars' end + grace, so every bar closes. The test waits for those markers (the final
versions on SSE, then the same state in the store); it never sleeps and asserts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.helpers.infra import Topics
from tests.helpers.services import pipeline_specs, running, service_env

SYMBOLS = ["AAPL", "MSFT", "BRK.B"]
SENTINEL = "ZZZ"  # posted last: once its quote is in, nothing more is on its way
INTERVALS = {"1s": 1, "1m": 60}  # the processor's default bar intervals
NDJSON = {"content-type": "application/x-ndjson"}


def _ts(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _base() -> dt.datetime:
    """Five minutes ago, whole seconds, and the whole tape on one UTC day (sessions)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = now - dt.timedelta(minutes=5)
    midnight = now.replace(hour=0, minute=0, second=0)
    return base if base >= midnight else midnight


def _tape(base: dt.datetime, seed: int = 7, per_symbol: int = 40) -> list[dict[str, Any]]:
    """Trades one second apart per symbol, a quote every fourth; adjacent trades i, i+1
    with i % 5 == 1 swapped (posted out of event-time order, within grace)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(per_symbol):
        for j, symbol in enumerate(SYMBOLS):
            t = base + dt.timedelta(seconds=i, milliseconds=j)
            price = round(100 + j * 50 + rng.uniform(-5, 5), 2)
            events.append(
                {
                    "type": "trade",
                    "symbol": symbol,
                    "price": price,
                    "size": rng.randint(1, 9) * 10,
                    "time": _ts(t),
                    "id": f"e2e-{symbol}-{i}",
                }
            )
            if i % 4 == 0:
                events.append(
                    {
                        "type": "quote",
                        "symbol": symbol,
                        "bid": round(price - 0.05, 2),
                        "bid_size": 100,
                        "ask": round(price + 0.05, 2),
                        "ask_size": 200,
                        "time": _ts(t + dt.timedelta(microseconds=500)),
                        "id": f"e2e-q-{symbol}-{i}",
                    }
                )
    by_id = {e["id"]: k for k, e in enumerate(events)}
    for i in range(1, per_symbol - 1, 5):
        for symbol in SYMBOLS:
            a, b = by_id[f"e2e-{symbol}-{i}"], by_id[f"e2e-{symbol}-{i + 1}"]
            events[a], events[b] = events[b], events[a]
    return events


def _closing_quotes(base: dt.datetime) -> list[dict[str, Any]]:
    """One quote per symbol 200 s after the tape began: past every bar's end + grace."""
    t = base + dt.timedelta(seconds=200)
    return [
        {
            "type": "quote",
            "symbol": s,
            "bid": 10.0,
            "bid_size": 1,
            "ask": 10.5,
            "ask_size": 1,
            "time": _ts(t),
            "id": f"e2e-close-{s}",
        }
        for s in SYMBOLS
    ]


@dataclass
class Ref:
    """The reference state of one symbol, from the documented event-time rules."""

    version: int = 0
    trades: int = 0
    volume: float = 0.0
    notional: float = 0.0
    last: tuple[dt.datetime, float] | None = None
    open: tuple[dt.datetime, float] | None = None
    high: float = float("-inf")
    low: float = float("inf")
    quote: tuple[dt.datetime, float, float] | None = None
    bars: dict[tuple[str, dt.datetime], dict[str, Any]] = field(default_factory=dict)


def _start(t: dt.datetime, seconds: int) -> dt.datetime:
    epoch = int(t.timestamp()) // seconds * seconds
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _reference(applied: list[dict[str, Any]]) -> dict[str, Ref]:
    """Apply events in arrival order (ties in event time: the later arrival wins)."""
    out: dict[str, Ref] = {}
    for e in applied:
        r = out.setdefault(e["symbol"], Ref())
        t = dt.datetime.fromisoformat(e["time"])
        r.version += 1
        if e["type"] == "quote":
            if r.quote is None or t >= r.quote[0]:
                r.quote = (t, e["bid"], e["ask"])
            continue
        price, size = e["price"], e["size"]
        r.trades += 1
        r.volume += size
        r.notional += price * size
        if r.last is None or t >= r.last[0]:
            r.last = (t, price)
        if r.open is None or t < r.open[0]:
            r.open = (t, price)
        r.high, r.low = max(r.high, price), min(r.low, price)
        for interval, seconds in INTERVALS.items():
            bar = r.bars.setdefault(
                (interval, _start(t, seconds)),
                {"trades": 0, "volume": 0.0, "notional": 0.0, "high": price, "low": price},
            )
            bar["trades"] += 1
            bar["volume"] += size
            bar["notional"] += price * size
            bar["high"], bar["low"] = max(bar["high"], price), min(bar["low"], price)
            if "open" not in bar or t < bar["open"][0]:
                bar["open"] = (t, price)
            if "close" not in bar or t >= bar["close"][0]:
                bar["close"] = (t, price)
    return out


@dataclass
class Seen:
    """What the SSE client received, in arrival order."""

    versions: dict[str, list[int]] = field(default_factory=dict)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    bar_versions: dict[tuple[str, str, dt.datetime], list[int]] = field(default_factory=dict)
    finals: dict[tuple[str, str, dt.datetime], list[dict[str, Any]]] = field(default_factory=dict)


def _done(seen: Seen, want: dict[str, Ref]) -> bool:
    """The markers: every symbol at its reference version, every bar's final in."""
    if any(seen.final.get(s, {}).get("version") != r.version for s, r in want.items()):
        return False
    return all((s, i, start) in seen.finals for s, r in want.items() for (i, start) in r.bars)


async def _collect(
    url: str, want: dict[str, Ref], seen: Seen, connected: asyncio.Event, reached: asyncio.Event
) -> None:
    """Record every event until the sentinel's quote arrives (posted once `reached`)."""
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        connected.set()
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("snapshot", "quote"):
                state = orjson.loads(line[5:])
                seen.versions.setdefault(state["symbol"], []).append(state["version"])
                seen.final[state["symbol"]] = state
            elif line.startswith("data:") and event == "bar":
                bar = orjson.loads(line[5:])
                key = (bar["symbol"], bar["interval"], dt.datetime.fromisoformat(bar["start"]))
                seen.bar_versions.setdefault(key, []).append(bar["version"])
                if bar.get("final", True):
                    seen.finals.setdefault(key, []).append(bar)
            else:
                continue
            if SENTINEL in seen.final:
                return
            if _done(seen, want):
                reached.set()


async def _post(client: httpx.AsyncClient, url: str, events: list[dict[str, Any]]) -> None:
    body = b"\n".join(orjson.dumps(e) for e in events)
    resp = await client.post(url, content=body, headers=NDJSON)
    assert resp.status_code == 202, resp.text


def _garbage(base: dt.datetime) -> list[tuple[bytes, int]]:
    """Refused batches (body, status): each also holds a valid event of a new id."""
    valid = orjson.dumps(
        {
            "type": "trade",
            "symbol": "AAPL",
            "price": 999.0,
            "size": 1,
            "time": _ts(base + dt.timedelta(seconds=20)),
            "id": "e2e-refused",
        }
    )
    invalid = orjson.dumps(
        {
            "type": "trade",
            "symbol": "MSFT",
            "price": 1.0,
            "size": -5,
            "time": _ts(base),
            "id": "e2e-bad-size",
        }
    )
    return [
        (valid + b"\n{not json", 400),
        (valid + b'\n{"type":"trade","symbol":"\xff\xfe"}', 400),
        (valid + b"\n" + invalid, 422),
    ]


def _check_sse(seen: Seen, want: dict[str, Ref]) -> None:
    assert set(seen.final) == {*want, SENTINEL}
    for symbol, ref in want.items():
        got = seen.final[symbol]
        versions = seen.versions[symbol]
        assert versions == sorted(set(versions)), f"{symbol} versions not strictly growing"
        assert got["version"] == ref.version
        assert got["trades"] == ref.trades
        assert got["volume"] == ref.volume
        assert ref.last is not None
        assert ref.open is not None
        assert ref.quote is not None
        assert got["last"] == ref.last[1]
        assert got["open"] == ref.open[1]
        assert got["high"] == ref.high
        assert got["low"] == ref.low
        assert abs(got["vwap"] - ref.notional / ref.volume) < 1e-9 * got["vwap"]
        assert (got["bid"], got["ask"]) == ref.quote[1:]
    expected_bars = {(s, i, start): b for s, r in want.items() for (i, start), b in r.bars.items()}
    assert {k for k in seen.bar_versions if k[0] != SENTINEL} == set(expected_bars)
    for key, bar in expected_bars.items():
        versions = seen.bar_versions[key]
        assert versions == sorted(set(versions)), f"{key} bar versions not strictly growing"
        finals = seen.finals[key]
        assert len(finals) == 1, f"{key}: final bar arrived {len(finals)} times"
        got = finals[0]
        assert versions[-1] == got["version"] == 2 * bar["trades"] + 1
        assert got["trades"] == bar["trades"]
        assert got["volume"] == bar["volume"]
        assert (got["open"], got["close"]) == (bar["open"][1], bar["close"][1])
        assert (got["high"], got["low"]) == (bar["high"], bar["low"])
        assert abs(got["vwap"] - bar["notional"] / bar["volume"]) < 1e-9 * got["vwap"]


async def _store_caught_up(gateway: str, want: dict[str, Ref]) -> None:
    """Wait until the query API (MongoDB) serves the reference: quotes at their final
    versions, and every final bar."""
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            resp = await client.get(f"{gateway}/v1/quotes", params={"symbols": ",".join(want)})
            if resp.status_code == 200:
                found = {q["symbol"]: q for q in resp.json()["quotes"]}
                if all(found.get(s, {}).get("version") == r.version for s, r in want.items()):
                    for s, r in want.items():
                        assert found[s]["trades"] == r.trades
                        assert r.last is not None
                        assert found[s]["last"] == r.last[1]
                    break
            await asyncio.sleep(0.2)
        for symbol, ref in want.items():
            for interval in INTERVALS:
                wanted = {start: b for (i, start), b in ref.bars.items() if i == interval}
                while True:
                    resp = await client.get(
                        f"{gateway}/v1/bars/{symbol}", params={"interval": interval, "limit": 500}
                    )
                    if resp.status_code == 200:
                        bars = {
                            dt.datetime.fromisoformat(b["start"]): b for b in resp.json()["bars"]
                        }
                        if all(bars.get(s, {}).get("final", True) and s in bars for s in wanted):
                            break
                    await asyncio.sleep(0.2)
                assert set(bars) == set(wanted), (symbol, interval)
                for start, bar in wanted.items():
                    assert bars[start]["trades"] == bar["trades"]
                    assert bars[start]["close"] == bar["close"][1]


async def test_posted_tape_reaches_dashboard_exactly_and_the_store_behind(
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    tmp_path: Path,
) -> None:
    base = _base()
    tape = _tape(base)
    closing = _closing_quotes(base)
    want = _reference(tape + closing)  # retries and refused batches add nothing
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    with running(pipeline_specs(), env, tmp_path) as urls:
        seen = Seen()
        connected, reached = asyncio.Event(), asyncio.Event()
        symbols = ",".join([*SYMBOLS, SENTINEL])
        stream = f"{urls['gateway']}/v1/stream?symbols={symbols}&bars=1s,1m"
        reader = asyncio.create_task(_collect(stream, want, seen, connected, reached))
        await asyncio.wait_for(connected.wait(), 30)

        ingest = f"{urls['ingest']}/v1/events:batch"
        garbage = _garbage(base)
        async with httpx.AsyncClient(timeout=30) as client:
            batches = [tape[k : k + 50] for k in range(0, len(tape), 50)]
            for n, batch in enumerate(batches):
                await _post(client, ingest, batch)
                if n % 2 == 1:  # a retry: the producer did not see the 202
                    await _post(client, ingest, batch)
                if n < len(garbage):
                    body, status = garbage[n]
                    resp = await client.post(ingest, content=body, headers=NDJSON)
                    assert resp.status_code == status, resp.text
            await _post(client, ingest, batches[0])  # a late retry of the first batch
            await _post(client, ingest, closing)

            await asyncio.wait_for(reached.wait(), 90)
            sentinel = {**closing[0], "symbol": SENTINEL, "id": "e2e-sentinel"}
            await _post(client, ingest, [sentinel])
        await asyncio.wait_for(reader, 90)
        _check_sse(seen, want)
        await asyncio.wait_for(_store_caught_up(urls["gateway"], want), 90)
