"""Reading bars history from the `bars` buckets (the format: tickwire.mongo.documents),
for the gateway's /v1/bars and the benchmarks that measure it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from tickwire.events import wire
from tickwire.mongo import documents


async def history(
    bars: AsyncCollection[Any],
    symbol: str,
    interval: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    count: int,
) -> list[wire.Bar]:
    """Up to `count` bars starting in [start, end), oldest first: the first ones from
    `start`, or without it the latest ones before `end`, read from the buckets that
    overlap the window (newest bucket first when reading back from `end`)."""
    forward = start is not None
    # a bucket holds up to BARS_PER_BUCKET bars: ask for the buckets that fill `count`
    # in one round trip when they are full, and read on when some are sparse
    batch = count // documents.BARS_PER_BUCKET + 2
    cursor = (
        bars.find(documents.bucket_filter(symbol, interval, start, end))
        .sort("start", 1 if forward else -1)
        .batch_size(batch)
    )
    out: list[wire.Bar] = []
    try:
        async for doc in cursor:
            try:
                held = documents.decode_bucket(doc)
            except documents.DocumentError:
                continue  # not of the documented shape: not a bar to serve
            inside = [
                bar
                for bar in held
                if (start is None or bar.start >= start) and (end is None or bar.start < end)
            ]
            out += inside if forward else inside[::-1]
            if len(out) >= count:
                break
    finally:
        await cursor.close()
    out = out[:count]
    return out if forward else out[::-1]
