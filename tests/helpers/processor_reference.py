"""An independent, straight-line model of what the processor must produce, for tests.

It replays the ticks.raw records (as read back from Kafka, so with their real
partitions and offsets) one by one, symbol by symbol, with plain dicts and datetimes,
and returns the expected `quotes` and `bars` documents. It shares no code with
tickwire.processor on purpose.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

TRADE = "io.tickwire.trade.v1"
QUOTE = "io.tickwire.quote.v1"


@dataclass
class Expected:
    """Final quotes docs by symbol, bars docs by (symbol, interval, start), and the
    offsets of records that must be late or dead-lettered."""

    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    bars: dict[tuple[str, str, dt.datetime], dict[str, Any]] = field(default_factory=dict)
    late: list[tuple[int, int]] = field(default_factory=list)
    dead: list[tuple[int, int]] = field(default_factory=list)

    def closed_bars(self) -> Expected:
        """The same expectation with only the closed (final) bars: what `bars` holds."""
        final = {k: v for k, v in self.bars.items() if v["final"]}
        return Expected(self.quotes, final, self.late, self.dead)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _valid(kind: str, data: dict[str, Any], key: bytes | None) -> bool:
    if key is None or data.get("symbol", "").encode() != key:
        return False
    if kind == TRADE:
        return data["price"] > 0 and data["size"] > 0
    return data["bid"] > 0 and data["ask"] > 0 and data["bid"] <= data["ask"]


def compute(
    records: list[Any],
    intervals: dict[str, dt.timedelta],
    grace: dt.timedelta,
) -> Expected:
    """records: ConsumerRecords of ticks.raw in partition order (any partition mix)."""
    out = Expected()
    sym: dict[str, dict[str, Any]] = {}
    for r in records:
        headers = dict(r.headers or ())
        kind = headers.get("ce_type", b"").decode()
        try:
            data = json.loads(r.value)
            if kind not in (TRADE, QUOTE) or not _valid(kind, data, r.key):
                raise ValueError(kind)
            time = _parse_time(data["time"])
            if time.tzinfo is None:
                raise ValueError("naive")
        except (ValueError, KeyError, TypeError):
            out.dead.append((r.partition, r.offset))
            continue
        s = data["symbol"]
        st = sym.setdefault(s, {"version": 0, "wm": None, "trades": [], "doc": {}, "offset": -1})
        st["offset"] = r.offset
        st["partition"] = r.partition
        if kind == TRADE and st["wm"] is not None and time < st["wm"]:
            late = False
            for length in intervals.values():
                start = _floor(time, length)
                if start + length + grace <= st["wm"]:
                    late = True
            if late:
                out.late.append((r.partition, r.offset))
                continue
        if st["wm"] is None or time > st["wm"]:
            st["wm"] = time
        st["version"] += 1
        d = st["doc"]
        d["time"] = st["wm"]
        d["received_ns"] = int(headers["tw_received_ns"])
        if kind == TRADE:
            day = time.date()
            if d.get("day") is None or day > d["day"]:
                if d.get("day") is not None:
                    d["prev_close"] = d["last"]
                d["day"] = day
                d["open"] = d["high"] = d["low"] = data["price"]
                d["volume"], d["notional"], d["trades"] = 0.0, 0.0, 0
            d["high"] = max(d["high"], data["price"])
            d["low"] = min(d["low"], data["price"])
            d["last"], d["last_size"], d["last_time"] = data["price"], data["size"], time
            d["volume"] += data["size"]
            d["notional"] += data["price"] * data["size"]
            d["trades"] += 1
            st["trades"].append(
                (time, data["price"], data["size"], st["version"], d["received_ns"])
            )
        else:
            d["bid"], d["ask"] = data["bid"], data["ask"]
            d["bid_size"], d["ask_size"] = data["bid_size"], data["ask_size"]
    for s, st in sym.items():
        d = st["doc"]
        q: dict[str, Any] = {
            "_id": s,
            "symbol": s,
            "version": st["version"],
            "offset": st["offset"],
            "partition": st["partition"],
            "time": d.get("time"),
            "received_ns": d.get("received_ns"),
        }
        if "last" in d:
            ref = d.get("prev_close", d["open"])
            q.update(
                last=d["last"],
                last_size=d["last_size"],
                last_time=d["last_time"],
                open=d["open"],
                high=d["high"],
                low=d["low"],
                prev_close=d.get("prev_close"),
                change=d["last"] - ref,
                change_pct=(d["last"] - ref) / ref * 100,
                volume=d["volume"],
                trades=d["trades"],
                vwap=d["notional"] / d["volume"],
            )
        if "bid" in d:
            q.update(
                bid=d["bid"],
                ask=d["ask"],
                bid_size=d["bid_size"],
                ask_size=d["ask_size"],
                spread=d["ask"] - d["bid"],
                mid=(d["ask"] + d["bid"]) / 2,
            )
        out.quotes[s] = q
        for name, length in intervals.items():
            groups: dict[dt.datetime, list[tuple[Any, ...]]] = {}
            for t in st["trades"]:
                groups.setdefault(_floor(t[0], length), []).append(t)
            for start, trades in groups.items():
                volume = sum(t[2] for t in trades)
                out.bars[(s, name, start)] = {
                    "symbol": s,
                    "interval": name,
                    "start": start,
                    "end": start + length,
                    "open": trades[0][1],
                    "close": trades[-1][1],
                    "high": max(t[1] for t in trades),
                    "low": min(t[1] for t in trades),
                    "volume": volume,
                    "vwap": sum(t[1] * t[2] for t in trades) / volume,
                    "trades": len(trades),
                    "version": trades[-1][3],
                    "received_ns": trades[-1][4],
                    "final": start + length + grace <= st["wm"],
                }
    return out


def _floor(time: dt.datetime, length: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((time - epoch) // length) * length
