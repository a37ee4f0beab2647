"""The stored document formats, defined once: `quotes` and `bars`.

The processor is the only writer and the gateway a reader; both go through this module,
so a change of shape happens here and nowhere else.

`quotes`, one document per symbol (`_id` = symbol): every `TickerState` field as
msgspec builtins (times as RFC 3339 strings: BSON dates would cut microseconds, and a
restored state must be exactly the one that was saved), plus the processor's own
bookkeeping (`partition`, `offset`, `notional`, `session_day`, `watermark_us`,
`forming`, ...), which readers ignore. Readers find them by `_id`.

`bars`, buckets: one document per (symbol, interval, period) holding the closed bars of
that period, `BARS_PER_BUCKET` bar lengths long and aligned to the epoch, so a history
query reads a few documents instead of one per bar:

    {_id: "AAPL|1m|<period start, us>", symbol: "AAPL", interval: "1m",
     start: <period start, BSON date>, end: <period end, BSON date>, step_us: 60000000,
     bars: {"b7": <binary>, ...}}

A bar sits under `b<slot>` (slot = its start's offset in the period / step) as one
binary value, the MessagePack array [open, high, low, close, volume, vwap, trades,
version, received_ns or nil, final] (the processor stores closed bars only, final
true). A bar that does not fill its slot exactly (a daily bar of an exchange session:
step one day, the bar from the session's open to its close) appends its start and end
as µs offsets from the slot's start: [..., final, start_offset, end_offset].
One packed value per bar, not a sub-document of ten fields: FerretDB v1 spends
its time per field when it reads a document (a bucket of 120 sub-documents took ~25 ms
to read by `_id`, packed ~4 ms). Its start is the period start + slot * step, its end
start + step. Writing a bar is `$set` of its slot with upsert: the same bar written
again (a replay) leaves the document as it was, and no array is involved (FerretDB v1
cannot hold nested arrays). `(symbol, interval, start)` is unique; a history query asks
for the buckets whose [start, end) overlaps its window, sorted by `start`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
import msgspec

from tickwire.events.wire import Bar, TickerState

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_STATE_FIELDS = frozenset(TickerState.__struct_fields__)
_BAR_FIELDS = frozenset(Bar.__struct_fields__)

#: Bars per bucket: a 1s bucket spans 2 minutes, a 1m bucket 2 hours (~10 kB each), so
#: the dashboard's 120 latest 1m bars are two or three documents.
BARS_PER_BUCKET = 120
#: The Bar fields packed per slot, in order.
_PACKED = (
    "open", "high", "low", "close", "volume", "vwap", "trades", "version", "received_ns",
    "final",
)  # fmt: skip
_PACK = msgspec.msgpack.Encoder()
_UNPACK = msgspec.msgpack.Decoder(
    tuple[float, float, float, float, float, float, int, int, int | None, bool]
)
# ... and a bar that does not fill its slot, with its start and end offsets
_UNPACK_OFF_GRID = msgspec.msgpack.Decoder(
    tuple[float, float, float, float, float, float, int, int, int | None, bool, int, int]
)


class DocumentError(ValueError):
    """A stored document that does not have the documented shape."""


def bar_id(symbol: str, interval: str, start_us: int) -> str:
    """A bar's (or a bucket's) key: unique per (symbol, interval, start)."""
    return f"{symbol}|{interval}|{start_us}"


def _to_us(moment: dt.datetime) -> int:
    if moment.tzinfo is None:  # BSON dates read without tz_aware are UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // _US


def _from_us(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def encode_bar(bar: Bar) -> dict[str, Any]:
    """A bar as one flat mapping (every Bar field and its key as `_id`): what checks
    compare. Stored bars live in buckets (`bucket_write`)."""
    doc: dict[str, Any] = {"_id": bar_id(bar.symbol, bar.interval, _to_us(bar.start))}
    for name in Bar.__struct_fields__:
        doc[name] = getattr(bar, name)
    return doc


def decode_bar(doc: Mapping[str, Any]) -> Bar:
    """A Bar back from its flat mapping; DocumentError when it does not fit."""
    fields = {k: v for k, v in doc.items() if k in _BAR_FIELDS}
    try:
        bar = msgspec.convert(fields, Bar, strict=False)
    except msgspec.ValidationError as exc:
        raise DocumentError(f"bad bar {doc.get('_id')!r}: {exc}") from exc
    if bar.start.tzinfo is None:
        bar.start = bar.start.replace(tzinfo=dt.UTC)
    if bar.end.tzinfo is None:
        bar.end = bar.end.replace(tzinfo=dt.UTC)
    return bar


@dataclass(slots=True)
class BucketWrite:
    """The bars one write adds to one bucket: `update()` is its idempotent `$set`."""

    id: str
    head: dict[str, Any]
    bars: dict[str, bson.Binary] = field(default_factory=dict)

    def absorb(self, later: BucketWrite) -> None:
        """Add a later write's bars to the same bucket (a closed bar never changes)."""
        self.bars.update(later.bars)

    def last_end(self) -> dt.datetime:
        """The end of the latest bar this write carries."""
        slot = max(int(key[1:]) for key in self.bars)
        step = int(self.head["step_us"])
        return self.head["start"] + dt.timedelta(microseconds=(slot + 1) * step)  # type: ignore[no-any-return]

    def update(self) -> dict[str, Any]:
        """The update document: the bucket's head and each bar under its slot."""
        fields = dict(self.head)
        fields.update((f"bars.{slot}", bar) for slot, bar in self.bars.items())
        return {"$set": fields}


def bucket_write(bar: Bar, step_us: int | None = None) -> BucketWrite:
    """The write that stores a bar in its bucket; DocumentError for a bar whose bounds
    do not fit the layout (not a positive length, or a start off its interval's grid).
    `step_us`: the grid of bars that do not fill their slot (session bars: one day)."""
    start_us, end_us = _to_us(bar.start), _to_us(bar.end)
    step = end_us - start_us if step_us is None else step_us
    slot_start = start_us - start_us % step if step > 0 else start_us
    off_grid = step_us is not None and (start_us, end_us) != (slot_start, slot_start + step)
    if step <= 0 or end_us <= start_us or (start_us % step and not off_grid):
        raise DocumentError(f"bar {bar.symbol} {bar.interval} {bar.start} is off its grid")
    span = step * BARS_PER_BUCKET
    first = start_us - start_us % span
    head = {
        "symbol": bar.symbol,
        "interval": bar.interval,
        "start": _from_us(first),
        "end": _from_us(first + span),
        "step_us": step,
    }
    values = [getattr(bar, name) for name in _PACKED]
    if off_grid:
        values += [start_us - slot_start, end_us - slot_start]
    packed = bson.Binary(_PACK.encode(values))
    slot = f"b{(slot_start - first) // step}"
    return BucketWrite(bar_id(bar.symbol, bar.interval, first), head, {slot: packed})


def bucket_documents(bars: Iterable[Bar]) -> list[dict[str, Any]]:
    """The whole bucket documents holding these bars, for bulk inserts into an empty
    collection (loading history; the processor writes with `bucket_write`)."""
    writes: dict[str, BucketWrite] = {}
    for bar in bars:
        write = bucket_write(bar)
        held = writes.setdefault(write.id, write)
        if held is not write:
            held.absorb(write)
    return [{"_id": w.id, **w.head, "bars": w.bars} for w in writes.values()]


def is_bucket(doc: Mapping[str, Any]) -> bool:
    """Whether a `bars` document is a bucket (and not a bar's flat mapping)."""
    return "step_us" in doc and isinstance(doc.get("bars"), Mapping)


def decode_bucket(doc: Mapping[str, Any]) -> list[Bar]:
    """The bars a bucket holds, by start; DocumentError when it does not fit."""
    try:
        symbol, interval = str(doc["symbol"]), str(doc["interval"])
        first, step = _to_us(doc["start"]), int(doc["step_us"])
        slots = doc["bars"]
        out = []
        for slot, packed in slots.items():
            start = first + int(slot[1:]) * step
            end = start + step
            try:
                o, h, lo, c, v, w, n, x, r, f = _UNPACK.decode(packed)
            except msgspec.ValidationError:  # a bar that does not fill its slot
                o, h, lo, c, v, w, n, x, r, f, first_us, end_us = _UNPACK_OFF_GRID.decode(packed)
                start, end = start + first_us, start + end_us
            out.append(
                Bar(
                    symbol=symbol,
                    interval=interval,
                    start=_from_us(start),
                    end=_from_us(end),
                    open=o,
                    high=h,
                    low=lo,
                    close=c,
                    volume=v,
                    vwap=w,
                    trades=n,
                    version=x,
                    received_ns=r,
                    final=f,
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError, msgspec.DecodeError) as exc:
        raise DocumentError(f"bad bars bucket {doc.get('_id')!r}: {exc}") from exc
    out.sort(key=lambda bar: bar.start)
    return out


def bucket_filter(
    symbol: str, interval: str, start: dt.datetime | None, end: dt.datetime | None
) -> dict[str, Any]:
    """The `bars` filter for the buckets that may hold bars starting in [start, end)
    (either bound open); sort it by `start`."""
    query: dict[str, Any] = {"symbol": symbol, "interval": interval}
    if end is not None:
        query["start"] = {"$lt": end}
    if start is not None:
        query["end"] = {"$gt": start}
    return query


def fine_bars_filter(before: dt.datetime, finer_than_us: int) -> dict[str, Any]:
    """The `bars` filter for buckets of bars shorter than `finer_than_us` that ended by
    `before`: what retention deletes."""
    return {"step_us": {"$lt": finer_than_us}, "end": {"$lte": before}}


def encode_quote(state: TickerState, bookkeeping: Mapping[str, Any]) -> dict[str, Any]:
    """A `quotes` document: the published state plus the writer's bookkeeping fields."""
    doc: dict[str, Any] = msgspec.to_builtins(state)
    clash = _STATE_FIELDS.intersection(bookkeeping)
    if clash:
        raise DocumentError(f"bookkeeping fields shadow state fields: {sorted(clash)}")
    doc.update(bookkeeping)
    doc["_id"] = state.symbol
    return doc


def decode_quote(doc: Mapping[str, Any]) -> TickerState:
    """The TickerState held by a `quotes` document (bookkeeping ignored);
    DocumentError when it does not fit."""
    fields = {k: v for k, v in doc.items() if k in _STATE_FIELDS}
    try:
        return msgspec.convert(fields, TickerState, strict=False)
    except msgspec.ValidationError as exc:
        raise DocumentError(f"bad quotes document {doc.get('_id')!r}: {exc}") from exc
