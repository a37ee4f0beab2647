"""The processor's aggregation written as a Quix Streams application: the peer in
bench/processor.py. Run as `python -m bench.quix_app` with the settings in the
environment (QUIX_BENCH_*).

Same input (ticks.raw, CloudEvents binary mode), same per-symbol state and 1s/1m
event-time bars with grace, the same deduplication by event id (ce_source, ce_id), same
outputs: `quotes` (one document per symbol, upserted)
and `bars` (closed bars, inserted) in the same MongoDB, the symbol's state on
ticker.updates and closed bars on ticker.bars. Quix's default guarantees: at-least-
once, state in its RocksDB store with a changelog topic, offsets committed at each
checkpoint after the sink flushed. The sink coalesces per symbol per checkpoint, as
tickwire does per batch, so both do the same MongoDB and republish work per round.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from confluent_kafka import Producer
from pymongo import InsertOne, MongoClient, ReplaceOne
from pymongo.errors import BulkWriteError
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

INTERVALS = {"1s": 1_000_000, "1m": 60_000_000}
GRACE_US = 2_000_000
DAY_US = 86_400_000_000
TRADE = "io.tickwire.trade.v1"


def _us(text: str) -> int:
    # RFC 3339 UTC "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" -> microseconds since the epoch
    from datetime import datetime

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def aggregate(value: bytes, key: str, timestamp: int, headers: Any, state: Any) -> dict[str, Any]:
    """Apply one event to the symbol's state; return the state and any closed bars."""
    kind = ident = ""
    for name, raw in headers or ():
        if name == "ce_type":
            kind = raw.decode()
        elif name in ("ce_id", "ce_source"):
            ident += raw.decode() + "|"
    event = json.loads(value)
    s = state.get("s") or {
        "version": 0,
        "wm": -1,
        "forming": {},
        "volume": 0.0,
        "notional": 0.0,
        "trades": 0,
    }
    # a producer's retry (same source and id) is applied once, as tickwire does; the
    # idiomatic Quix way: one state key per id (tickwire keeps a bounded window instead)
    if state.get("id:" + ident) is not None:
        return {"state": s, "closed": []}
    t = _us(event["time"])
    state.set("id:" + ident, t)
    closed: list[dict[str, Any]] = []
    if t > s["wm"]:
        s["wm"] = t
        s["time"] = event["time"]
        for name, length in INTERVALS.items():
            bars = s["forming"].setdefault(name, {})
            for start in sorted(bars, key=int):
                if int(start) + length + GRACE_US <= t:
                    closed.append({"symbol": key, "interval": name, **bars.pop(start)})
    s["version"] += 1
    if kind == TRADE:
        price, size = event["price"], event["size"]
        day = t // DAY_US
        if day > s.get("day", -1):
            if "last" in s:
                s["prev_close"] = s["last"]
            s["day"], s["open"], s["high"], s["low"] = day, price, price, price
            s["volume"], s["notional"], s["trades"] = 0.0, 0.0, 0
        s["high"], s["low"] = max(s["high"], price), min(s["low"], price)
        s["last"], s["last_size"], s["last_time"] = price, size, event["time"]
        s["volume"] += size
        s["notional"] += price * size
        s["trades"] += 1
        ref = s.get("prev_close", s["open"])
        s["change"] = price - ref
        s["change_pct"] = (price - ref) / ref * 100
        s["vwap"] = s["notional"] / s["volume"]
        for name, length in INTERVALS.items():
            start = str(t - t % length)
            bar = s["forming"][name].get(start)
            if bar is None:
                bar = s["forming"][name][start] = {
                    "start_us": int(start), "open": price, "high": price, "low": price,
                    "close": price, "volume": 0.0, "notional": 0.0, "trades": 0,
                }  # fmt: skip
            bar["high"], bar["low"], bar["close"] = (
                max(bar["high"], price),
                min(bar["low"], price),
                price,
            )
            bar["volume"] += size
            bar["notional"] += price * size
            bar["trades"] += 1
            bar["version"] = s["version"]
    else:
        s["bid"], s["ask"] = event["bid"], event["ask"]
        s["bid_size"], s["ask_size"] = event["bid_size"], event["ask_size"]
        s["spread"], s["mid"] = event["ask"] - event["bid"], (event["ask"] + event["bid"]) / 2
    state.set("s", s)
    return {"state": s, "closed": closed}


class MongoAndKafkaSink(BatchingSink):  # type: ignore[misc]
    """Per checkpoint: the newest state per symbol and every closed bar, to MongoDB and
    to Kafka (acks awaited) before Quix commits the offsets."""

    def __init__(self, mongodb_url: str, db: str, bootstrap: str, updates: str, bars: str) -> None:
        super().__init__()
        self.db = MongoClient(mongodb_url)[db]
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
             "linger.ms": 5, "compression.type": "lz4"}
        )  # fmt: skip
        self.updates, self.bars = updates, bars

    def write(self, batch: SinkBatch) -> None:
        latest: dict[str, dict[str, Any]] = {}
        closed: list[dict[str, Any]] = []
        for item in batch:
            latest[item.key] = item.value["state"]
            closed.extend(item.value["closed"])
        docs = [{"_id": symbol, "symbol": symbol, **s} for symbol, s in latest.items()]
        bar_docs = [{"_id": f"{b['symbol']}|{b['interval']}|{b['start_us']}", **b} for b in closed]
        for doc in docs:
            self.producer.produce(self.updates, key=doc["_id"], value=json.dumps(doc))
        for doc in bar_docs:
            self.producer.produce(self.bars, key=doc["symbol"], value=json.dumps(doc))
        self.producer.flush()
        if bar_docs:
            # a bar already there comes from an earlier, replayed checkpoint
            with contextlib.suppress(BulkWriteError):
                self.db.bars.bulk_write([InsertOne(d) for d in bar_docs], ordered=False)
        ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
        for i in range(0, len(ops), 20):  # FerretDB v1: keep update commands small
            self.db.quotes.bulk_write(ops[i : i + 20], ordered=False)


def main() -> None:
    """Run the Quix Streams application until SIGTERM."""
    env = os.environ
    app = Application(
        broker_address=env["QUIX_BENCH_BOOTSTRAP"],
        consumer_group=env["QUIX_BENCH_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        commit_interval=float(env.get("QUIX_BENCH_COMMIT_INTERVAL", "2.0")),
        state_dir=env["QUIX_BENCH_STATE_DIR"],
        loglevel="WARNING",
    )
    raw = app.topic(env["QUIX_BENCH_TOPIC"], key_deserializer="str", value_deserializer="bytes")
    sdf = app.dataframe(raw)
    sdf = sdf.apply(aggregate, stateful=True, metadata=True)
    sdf.sink(
        MongoAndKafkaSink(
            env["QUIX_BENCH_MONGODB_URL"], env["QUIX_BENCH_DB"], env["QUIX_BENCH_BOOTSTRAP"],
            env["QUIX_BENCH_UPDATES"], env["QUIX_BENCH_BARS"],
        )
    )  # fmt: skip
    app.run()


if __name__ == "__main__":
    main()
