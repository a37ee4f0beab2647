"""An independent model of the processor's market semantics, for tests: sessions from
the exchange calendar, trading status, corrections and cancels.

Written from services/processor/README.md ("Sessions", "Corrections and cancels",
"Trading status") and sharing no code with tickwire.processor: sessions come straight
from `exchange_calendars`' schedule, and every bar and session field is recomputed from
scratch over the corrected trade list (not patched, not folded from a saved prefix).
It takes the ticks.raw records as read back from Kafka (valid events only: trades,
quotes, corrections, cancels, statuses, each with a unique id unless it is an exact
replay) and returns the final bars, the final session state per symbol, the records
that must be dead-lettered and the corrections that must be recorded.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import exchange_calendars  # type: ignore[import-untyped]
import pandas as pd  # type: ignore[import-untyped]

TRADE = "io.tickwire.trade.v1"
QUOTE = "io.tickwire.quote.v1"
CORRECTION = "io.tickwire.correction.v1"
CANCEL = "io.tickwire.cancel.v1"
STATUS = "io.tickwire.status.v1"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PRE = dt.timedelta(hours=5, minutes=30)
POST = dt.timedelta(hours=4)
Coords = tuple[int, int]


@dataclass
class Trade:
    ident: tuple[bytes, bytes]
    time: dt.datetime
    price: float
    size: float
    received: int | None
    session: str  # its session's date
    regular: bool
    forgotten: bool = False
    cancelled: bool = False


@dataclass
class Market:
    """What the processor must end with."""

    bars: dict[tuple[str, str, dt.datetime], dict[str, Any]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: list[Coords] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)


class Calendar:
    """Session lookup from the calendar's schedule (the latest session whose pre-market
    began at or before the time), straight from pandas."""

    def __init__(self, name: str = "XNYS") -> None:
        self.schedule = exchange_calendars.get_calendar(name).schedule

    def at(self, time: dt.datetime) -> tuple[str, str, bool]:
        """(session date, phase, regular) at an event time."""
        ts = pd.Timestamp(time)
        began = self.schedule[self.schedule["open"] - PRE <= ts]
        row = began.iloc[-1]
        date = began.index[-1].date().isoformat()
        open_, close = row["open"], row["close"]
        if ts < open_:
            return date, "pre", False
        if ts < close:
            return date, "regular", True
        return date, ("post" if ts < close + POST else "closed"), False

    def hours(self, date: str) -> tuple[dt.datetime, dt.datetime]:
        """A session's regular hours [open, close)."""
        row = self.schedule.loc[pd.Timestamp(date)]
        return row["open"].to_pydatetime(), row["close"].to_pydatetime()


def _floor(time: dt.datetime, length: dt.timedelta) -> dt.datetime:
    return EPOCH + ((time - EPOCH) // length) * length


def _fold_bar(trades: list[Trade]) -> dict[str, Any]:
    """A bar over trades in arrival order: open the earliest (ties: first arrival),
    close the latest (ties: last arrival)."""
    first = min(trades, key=lambda t: t.time)  # min keeps the first of equal times
    last = max(reversed(trades), key=lambda t: t.time)  # ... so reversed: the last
    volume = notional = 0.0
    for t in trades:
        volume += t.size
        notional += t.price * t.size
    return {
        "open": first.price,
        "close": last.price,
        "high": max(t.price for t in trades),
        "low": min(t.price for t in trades),
        "volume": volume,
        "vwap": notional / volume,
        "trades": len(trades),
    }


def _fold_session(trades: list[Trade]) -> dict[str, Any]:
    out: dict[str, Any] = {"volume": 0.0, "trades": len(trades), "notional": 0.0}
    for t in trades:
        out["volume"] += t.size
        out["notional"] += t.price * t.size
    if trades:
        out["open"] = min(trades, key=lambda t: t.time).price
        out["last"] = max(reversed(trades), key=lambda t: t.time).price
        out["high"] = max(t.price for t in trades)
        out["low"] = min(t.price for t in trades)
    regular = [t for t in trades if t.regular]
    if regular:
        out["reg_open"] = min(regular, key=lambda t: t.time).price
        out["reg_close"] = max(reversed(regular), key=lambda t: t.time).price
        out["reg_high"] = max(t.price for t in regular)
        out["reg_low"] = min(t.price for t in regular)
    return out


def compute(
    records: list[Any],
    intervals: dict[str, dt.timedelta],
    grace: dt.timedelta,
    *,
    correction_trades: int,
    correction_window: dt.timedelta,
    daily: bool = False,
    calendar: Calendar | None = None,
) -> Market:
    """records: ConsumerRecords of ticks.raw in partition order. `daily`: 1d bars (each
    session's regular hours, from its regular trades) are configured too."""
    cal = calendar or Calendar()
    out = Market()
    sym: dict[str, dict[str, Any]] = {}
    for r in records:
        headers = dict(r.headers)
        kind = headers["ce_type"].decode()
        ident = (headers.get("ce_source", b""), headers["ce_id"])
        received = int(headers["tw_received_ns"]) if "tw_received_ns" in headers else None
        data = json.loads(r.value)
        time = dt.datetime.fromisoformat(data["time"].replace("Z", "+00:00"))
        s = data["symbol"]
        st = sym.setdefault(
            s,
            {
                "wm": None,
                "version": 0,
                "ids": set(),
                "trades": [],  # every applied trade, arrival order
                "bars": {},  # (interval, start) -> {"revision", "final", "received"}
                "session": None,
                "prev_close": None,
                "status": None,
                "status_time": None,
                "quote_time": None,
                "daily": {},  # session date -> revision
            },
        )
        wm = st["wm"]
        if (
            kind == TRADE
            and wm is not None
            and time < wm
            and any(_floor(time, ln) + ln + grace <= wm for ln in intervals.values())
        ):
            continue  # late
        if kind == TRADE and daily and wm is not None and time < wm:
            date, _, regular = cal.at(time)
            if date < st["session"] or (
                regular and date == st["session"] and wm >= cal.hours(date)[1] + grace
            ):
                continue  # late for its daily bar
        if kind == QUOTE and st["quote_time"] is not None and time < st["quote_time"]:
            continue
        if kind == STATUS and st["status_time"] is not None and time < st["status_time"]:
            continue
        if ident in st["ids"]:
            continue  # duplicate (the tapes hold far fewer than the id window)
        if kind in (CORRECTION, CANCEL):
            ref = (ident[0], data["ref_id"].encode())
            target = next(
                (t for t in st["trades"] if t.ident == ref and not t.forgotten and not t.cancelled),
                None,
            )
            keys = []
            if target is not None:
                for name, ln in intervals.items():
                    start = _floor(target.time, ln)
                    held = [
                        t for t in st["trades"] if not t.cancelled and _floor(t.time, ln) == start
                    ]
                    keys.append((name, start))
                    if any(t.forgotten for t in held):
                        target = None
                        break
                if (
                    daily
                    and target is not None
                    and target.regular
                    and target.session != st["session"]
                ):
                    target = None  # its daily bar is an earlier session's
            if target is None:
                out.dead.append((r.partition, r.offset))
                continue
            before = (target.price, target.size)
            if kind == CANCEL:
                target.cancelled = True
            else:
                target.price, target.size = data["price"], data["size"]
            for key in keys:
                bar = st["bars"][key]
                bar["revision"] += 1
                if received is not None:
                    bar["received"] = received
            if daily and target.regular:
                st["daily"][target.session] += 1
            out.corrections.append(
                {
                    "symbol": s,
                    "kind": "cancel" if kind == CANCEL else "correction",
                    "id": ident[1].decode(),
                    "ref_id": data["ref_id"],
                    "before": {"price": before[0], "size": before[1]},
                    "after": None
                    if kind == CANCEL
                    else {"price": data["price"], "size": data["size"]},
                    "version": st["version"] + 1,
                }
            )
        # applied: the watermark, then the session and the bars it closes
        if wm is None or time > wm:
            st["wm"] = wm = time
            date, _, _ = cal.at(time)
            if st["session"] is None or date > st["session"]:
                if st["session"] is not None:
                    ended = [
                        t for t in st["trades"] if t.session == st["session"] and not t.cancelled
                    ]
                    close = _fold_session(ended).get("reg_close")
                    if close is not None:
                        st["prev_close"] = close
                st["session"] = date
            _forget(st["trades"], lambda t, wm=wm: t.time < wm - correction_window)
            for (name, start), bar in st["bars"].items():
                if not bar["final"] and start + intervals[name] + grace <= wm:
                    bar["final"] = True
        st["ids"].add(ident)
        st["version"] += 1
        if kind == TRADE:
            date, _, regular = cal.at(time)
            trade = Trade(ident, time, data["price"], data["size"], received, date, regular)
            st["trades"].append(trade)
            if daily and regular and date == st["session"]:
                st["daily"][date] = st["daily"].get(date, 0) + 1
            for name, ln in intervals.items():
                bar = st["bars"].setdefault(
                    (name, _floor(time, ln)), {"revision": 0, "final": False, "received": None}
                )
                bar["revision"] += 1
                if received is not None:
                    bar["received"] = received
            live = [t for t in st["trades"] if not t.forgotten and not t.cancelled]
            excess = len(live) - correction_trades
            for t in live[: max(excess, 0)]:
                t.forgotten = True
        elif kind == STATUS:
            st["status"] = {"state": data["state"], "reason": data.get("reason"), "since": time}
            st["status_time"] = time
        elif kind == QUOTE:
            st["quote_time"] = time
    for s, st in sym.items():
        for (name, start), bar in st["bars"].items():
            ln = intervals[name]
            held = [t for t in st["trades"] if not t.cancelled and _floor(t.time, ln) == start]
            fields = _fold_bar(held) if held else {"volume": 0.0, "trades": 0}
            out.bars[(s, name, start)] = {
                "symbol": s,
                "interval": name,
                "start": start,
                "end": start + ln,
                **fields,
                "final": bar["final"],
                "version": 2 * bar["revision"] + (1 if bar["final"] else 0),
                "received_ns": bar["received"],
            }
        for date, revision in st["daily"].items():
            held = [t for t in st["trades"] if t.session == date and t.regular and not t.cancelled]
            if not held:
                continue
            open_, close = cal.hours(date)
            final = st["wm"] >= close + grace
            out.bars[(s, "1d", open_)] = {
                "symbol": s,
                "interval": "1d",
                "start": open_,
                "end": close,
                **_fold_bar(held),
                "final": final,
                "version": 2 * revision + (1 if final else 0),
            }
        day = _fold_session(
            [t for t in st["trades"] if t.session == st["session"] and not t.cancelled]
        )
        date, phase, _ = cal.at(st["wm"])
        out.states[s] = {
            "version": st["version"],
            "volume": day["volume"],
            "trades": day["trades"],
            "open": day.get("open"),
            "high": day.get("high"),
            "low": day.get("low"),
            "last": day.get("last"),
            "vwap": day["notional"] / day["volume"] if day["volume"] else None,
            "prev_close": st["prev_close"],
            "status": st["status"],
            "session": {
                "date": date,
                "phase": phase,
                "open": day.get("reg_open"),
                "high": day.get("reg_high"),
                "low": day.get("reg_low"),
                "prev_close": st["prev_close"],
            },
        }
    return out


def _forget(trades: list[Trade], old: Any) -> None:
    """Forget the oldest applied trades while they are old (stop at the first young)."""
    for t in trades:
        if t.forgotten or t.cancelled:
            continue
        if not old(t):
            return
        t.forgotten = True
