"""An independent, straight-line model of what the processor must produce, for tests.

Written from services/processor/README.md ("What it computes", "Versions"), not from
the code, and sharing no code with tickwire.processor on purpose. It replays the
ticks.raw records (as read back from Kafka, so with their real partitions and offsets)
one by one with plain dicts and datetimes, and returns the expected `quotes` and `bars`
documents, the state after every applied event (every version a `ticker.updates`
record may carry), every bar state (every version a `ticker.bars` record may carry),
and the coordinates of the records that must be late, dead or dropped as duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TRADE = "io.tickwire.trade.v1"
QUOTE = "io.tickwire.quote.v1"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEDUP_WINDOW = 1000
Coords = tuple[int, int]
_FIELDS = {
    TRADE: {"symbol", "price", "size", "time", "venue", "trade_id"},
    QUOTE: {"symbol", "bid", "bid_size", "ask", "ask_size", "time"},
}
_SYMBOL = r"[A-Z0-9][A-Z0-9._/-]{0,23}"
_VENUE = r"[A-Za-z0-9._-]{1,32}"
_TRADE_ID = r"[\x21-\x7e]{1,64}"
BarKey = tuple[str, str, dt.datetime]


@dataclass
class Expected:
    """What the processor must end with (see the module docstring)."""

    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    bars: dict[BarKey, dict[str, Any]] = field(default_factory=dict)
    late: list[Coords] = field(default_factory=list)
    dead: list[Coords] = field(default_factory=list)
    duplicates: list[Coords] = field(default_factory=list)
    # (symbol, version) -> the published state fields at that version
    updates: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    # (symbol, interval, start, version) -> the bar at that version
    bar_versions: dict[tuple[str, str, dt.datetime, int], dict[str, Any]] = field(
        default_factory=dict
    )

    def closed_bars(self) -> Expected:
        """The same expectation with only the closed (final) bars: what `bars` holds."""
        final = {k: v for k, v in self.bars.items() if v["final"]}
        return Expected(self.quotes, final, self.late, self.dead, self.duplicates)


def _floor(time: dt.datetime, length: dt.timedelta) -> dt.datetime:
    return EPOCH + ((time - EPOCH) // length) * length


def _first_headers(headers: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in headers or ():
        out.setdefault(name, value)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse(kind: str, value: bytes | None, key: bytes | None) -> tuple[dict[str, Any], Any]:
    """The event and its time, or ValueError: the dead-letter rules of the README and
    the event rules of libs/tickwire/events/rules.py (its docstring)."""
    if value is None:
        raise ValueError("tombstone")
    if kind not in (TRADE, QUOTE):
        raise ValueError("type")
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("symbol"), str):
        raise ValueError("shape")
    if not set(data) <= _FIELDS[kind] or not re.fullmatch(_SYMBOL, data["symbol"]):
        raise ValueError("fields")
    for name, pattern in (("venue", _VENUE), ("trade_id", _TRADE_ID)):
        if name in data and not (isinstance(data[name], str) and re.fullmatch(pattern, data[name])):
            raise ValueError(name)
    if key is None or data["symbol"].encode() != key:
        raise ValueError("key")
    numbers = ("price", "size") if kind == TRADE else ("bid", "bid_size", "ask", "ask_size")
    if not all(_number(data.get(n)) and data[n] <= 1e15 for n in numbers):
        raise ValueError("numbers")
    if kind == TRADE and not (data["price"] > 0 and data["size"] > 0):
        raise ValueError("trade")
    if kind == QUOTE and not (
        data["bid"] > 0 and data["bid"] <= data["ask"] and data["bid_size"] >= 0
    ):
        raise ValueError("quote")
    if kind == QUOTE and data["ask_size"] < 0:
        raise ValueError("quote")
    time = dt.datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
    if time.tzinfo is None:
        raise ValueError("naive")
    return data, time.astimezone(dt.UTC)


def _received(raw: bytes | None) -> int | None:
    if raw is None or not (0 < len(raw) <= 19) or not raw.isdigit():
        return None
    value = int(raw)
    return value if value < 1 << 63 else None


def _state_fields(s: str, st: dict[str, Any]) -> dict[str, Any]:
    """The TickerState fields of a symbol's reference state."""
    q: dict[str, Any] = {
        "symbol": s,
        "version": st["version"],
        "time": st["wm"],
        "received_ns": st["received_ns"],
        "volume": st["volume"],
        "trades": st["trades"],
    }
    if st["last"] is not None:
        ref = st["prev_close"] if st["prev_close"] is not None else st["open"]
        q.update(
            last=st["last"],
            last_size=st["last_size"],
            last_time=st["last_time"],
            open=st["open"],
            high=st["high"],
            low=st["low"],
            prev_close=st["prev_close"],
            change=st["last"] - ref,
            change_pct=(st["last"] - ref) / ref * 100,
            vwap=st["notional"] / st["volume"],
        )
    if st["bid"] is not None:
        q.update(
            bid=st["bid"],
            ask=st["ask"],
            bid_size=st["bid_size"],
            ask_size=st["ask_size"],
            spread=st["ask"] - st["bid"],
            mid=(st["ask"] + st["bid"]) / 2,
        )
    return q


def _bar_fields(
    s: str, name: str, length: dt.timedelta, b: dict[str, Any], final: bool
) -> dict[str, Any]:
    return {
        "symbol": s,
        "interval": name,
        "start": b["start"],
        "end": b["start"] + length,
        "open": b["open"],
        "close": b["close"],
        "high": b["high"],
        "low": b["low"],
        "volume": b["volume"],
        "vwap": b["notional"] / b["volume"],
        "trades": b["trades"],
        "version": 2 * b["trades"] + (1 if final else 0),
        "received_ns": b["received_ns"],
        "final": final,
    }


def _new_state() -> dict[str, Any]:
    return {
        "version": 0,
        "wm": None,
        "offset": -1,
        "partition": None,
        "received_ns": None,
        "window": deque(),  # (id, event time) in apply order
        "last": None,
        "last_size": None,
        "last_time": None,
        "open": None,
        "open_time": None,
        "high": None,
        "low": None,
        "prev_close": None,
        "day": None,
        "volume": 0.0,
        "notional": 0.0,
        "trades": 0,
        "bid": None,
        "ask": None,
        "bid_size": None,
        "ask_size": None,
        "quote_time": None,
        "open_bars": {},  # (interval, start) -> bar dict
    }


def compute(
    records: list[Any],
    intervals: dict[str, dt.timedelta],
    grace: dt.timedelta,
    *,
    dedup_window: int = DEDUP_WINDOW,
) -> Expected:
    """records: ConsumerRecords of ticks.raw in partition order (any partition mix)."""
    out = Expected()
    horizon = max(intervals.values()) + grace
    sym: dict[str, dict[str, Any]] = {}
    for r in records:
        headers = _first_headers(r.headers)
        kind = headers.get("ce_type", b"").decode("utf-8", "replace")
        event_id = headers.get("ce_id")
        try:
            data, time = _parse(kind, r.value, r.key)
            if not event_id:
                raise ValueError("no id")
            if kind == TRADE:  # its bars must start and end within the calendar
                for length in intervals.values():
                    _ = _floor(time, length) + length
        except (ValueError, TypeError, KeyError, OverflowError):
            out.dead.append((r.partition, r.offset))
            continue
        s = data["symbol"]
        st = sym.setdefault(s, _new_state())
        st["offset"], st["partition"] = r.offset, r.partition
        wm = st["wm"]
        # late: a trade whose bar (any interval) closed; a quote older than bid/ask's
        if (
            kind == TRADE
            and wm is not None
            and time < wm
            and any(_floor(time, ln) + ln + grace <= wm for ln in intervals.values())
        ):
            out.late.append((r.partition, r.offset))
            continue
        if kind == QUOTE and st["quote_time"] is not None and time < st["quote_time"]:
            out.late.append((r.partition, r.offset))
            continue
        ident = (headers.get("ce_source", b""), event_id)
        if any(ident == known for known, _ in st["window"]):
            out.duplicates.append((r.partition, r.offset))
            continue
        # applied
        if wm is None or time > wm:
            st["wm"] = wm = time
            while st["window"] and st["window"][0][1] < wm - horizon:
                st["window"].popleft()
            for (name, start), bar in list(st["open_bars"].items()):
                length = intervals[name]
                if start + length + grace <= wm:
                    done = _bar_fields(s, name, length, bar, True)
                    out.bars[(s, name, start)] = done
                    out.bar_versions[(s, name, start, done["version"])] = done
                    del st["open_bars"][(name, start)]
        st["window"].append((ident, time))
        if len(st["window"]) > dedup_window:
            st["window"].popleft()
        st["version"] += 1
        received = _received(headers.get("tw_received_ns"))
        if received is not None:
            st["received_ns"] = received
        if kind == TRADE:
            _apply_trade(st, data["price"], data["size"], time)
            for name, length in intervals.items():
                start = _floor(time, length)
                bar = st["open_bars"].get((name, start))
                if bar is None:
                    bar = st["open_bars"][(name, start)] = {
                        "start": start,
                        "open": data["price"],
                        "open_time": time,
                        "close": data["price"],
                        "close_time": time,
                        "high": data["price"],
                        "low": data["price"],
                        "volume": 0.0,
                        "notional": 0.0,
                        "trades": 0,
                        "received_ns": None,
                    }
                price = data["price"]
                bar["high"], bar["low"] = max(bar["high"], price), min(bar["low"], price)
                if time < bar["open_time"]:
                    bar["open"], bar["open_time"] = price, time
                if time >= bar["close_time"]:
                    bar["close"], bar["close_time"] = price, time
                bar["volume"] += data["size"]
                bar["notional"] += price * data["size"]
                bar["trades"] += 1
                if received is not None:
                    bar["received_ns"] = received
                forming = _bar_fields(s, name, length, bar, False)
                out.bar_versions[(s, name, start, forming["version"])] = forming
        else:
            st["bid"], st["ask"] = data["bid"], data["ask"]
            st["bid_size"], st["ask_size"] = data["bid_size"], data["ask_size"]
            st["quote_time"] = time
        out.updates[(s, st["version"])] = _state_fields(s, st)
    for s, st in sym.items():
        q = _state_fields(s, st)
        q.update(_id=s, offset=st["offset"], partition=st["partition"])
        out.quotes[s] = q
        for (name, start), bar in st["open_bars"].items():
            out.bars[(s, name, start)] = _bar_fields(s, name, intervals[name], bar, False)
    return out


def _apply_trade(st: dict[str, Any], price: float, size: float, time: dt.datetime) -> None:
    day = time.date()
    if st["day"] is None or day > st["day"]:
        if st["day"] is not None and st["last"] is not None:
            st["prev_close"] = st["last"]
        st["day"] = day
        st["open"] = st["high"] = st["low"] = price
        st["open_time"] = time
        st["volume"], st["notional"], st["trades"] = 0.0, 0.0, 0
    elif day < st["day"]:
        return  # an earlier day than the session: only its bars
    else:
        st["high"], st["low"] = max(st["high"], price), min(st["low"], price)
        if time < st["open_time"]:
            st["open"], st["open_time"] = price, time
    if st["last_time"] is None or time >= st["last_time"]:
        st["last"], st["last_size"], st["last_time"] = price, size, time
    st["volume"] += size
    st["notional"] += price * size
    st["trades"] += 1
