"""The processor's bar buckets on the real store: writes through `StateStore.write` are
idempotent (a replay, and an older batch written again, leave the documents as they
were), and fine-bar retention deletes exactly the 1s buckets that ended more than the
retention before the newest bar written, in event time, keeping every 1m bar."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.helpers.processor_checks import bar_differences
from tests.helpers.processor_reference import Expected
from tickwire.events.wire import Bar
from tickwire.mongo import documents
from tickwire.processor.store import Documents, FineBarRetention, StateStore

START = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
SECOND, MINUTE = dt.timedelta(seconds=1), dt.timedelta(minutes=1)


def _bar(interval: str, start: dt.datetime, n: int) -> Bar:
    step = SECOND if interval == "1s" else MINUTE
    return Bar(
        symbol="A", interval=interval, start=start, end=start + step, open=1.0 + n,
        high=2.0 + n, low=0.5, close=1.5 + n, volume=3.0, vwap=1.2, trades=2, version=5,
        received_ns=n,
    )  # fmt: skip


def _documents(bars: list[Bar]) -> Documents:
    docs = Documents()
    for bar in bars:
        write = documents.bucket_write(bar)
        docs.absorb(Documents(bars={write.id: write}))
    return docs


def _expected(bars: list[Bar]) -> Expected:
    out = Expected()
    for bar in bars:
        fields = documents.encode_bar(bar)
        del fields["_id"]
        out.bars[(bar.symbol, bar.interval, bar.start)] = fields
    return out


async def test_bucket_writes_are_idempotent_and_fine_bars_expire_in_event_time(
    mongo: Any,
) -> None:
    store = StateStore(mongo)
    await store.ensure_indexes()
    seconds = [_bar("1s", START + n * SECOND, n) for n in range(3 * 3600)]
    minutes = [_bar("1m", START + n * MINUTE, n) for n in range(180)]
    first, second = (
        _documents(seconds[:5000] + minutes[:90]),
        _documents(seconds[5000:] + minutes[90:]),
    )
    await store.write(first)
    await store.write(second)
    stored = sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"])
    assert bar_differences(stored, _expected(seconds + minutes)) == []

    await store.write(first)  # an older batch again (a replay): nothing changes
    await store.write(_documents(seconds[100:200]))
    assert sorted([d async for d in mongo.bars.find({})], key=lambda d: d["_id"]) == stored

    # the documented rule: a 1s bucket spans 120 s from a multiple of 120 s since the
    # epoch, and goes once its end is an hour or more before the newest bar's end
    newest = seconds[-1].end
    assert store.newest_bar_end == newest
    span = documents.BARS_PER_BUCKET * SECOND
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def bucket_end(bar: Bar) -> dt.datetime:
        return epoch + ((bar.start - epoch) // span + 1) * span

    kept = [b for b in seconds if bucket_end(b) > newest - dt.timedelta(hours=1)]
    assert 3600 <= len(kept) < 3600 + documents.BARS_PER_BUCKET
    deleted = await FineBarRetention(store, dt.timedelta(hours=1)).expire_once()
    assert deleted == (len(seconds) - len(kept)) // documents.BARS_PER_BUCKET
    left = [d async for d in mongo.bars.find({})]
    assert bar_differences(left, _expected(kept + minutes)) == []
    assert await FineBarRetention(store, dt.timedelta(hours=1)).expire_once() == 0
