"""The embedded store chosen by measurement: FerretDB v1.24.2 on PostgreSQL 15 against
FerretDB v1.24.2 on SQLite, for what tickwire asks of it.

    python -m bench.store            (STORE_QUICK=1 for a smoke run)

Each backend runs alone, FerretDB (and PostgreSQL) started fresh in a temporary
directory by the launcher's own code, then:

- **writes**: the processor's pattern through its own `StateStore.write`: each writer
  owns 20 symbols (a partition's worth) and writes rounds of 20 guarded `quotes`
  replaces plus 20 closed 1s bars into their buckets (commands of 20), for
  STORE_SECONDS, with 1, 2 and 4 writers at once; documents/s and ms per round.
- **query**: the gateway's two reads with 500 symbols x one day of 1m bars (bucket
  documents loaded in bulk): the latest 120 1m bars of a symbol, and the quotes of 50
  symbols by `_id`, 50 requests in flight; p50/p99 ms.
- **deadlock**: what the foundation notes saw wedge FerretDB on SQLite: one update
  command of 200 upserts (past the 100-connection pool) beside 4 writers, and an index
  created while 4 writers write. Each must finish within STORE_WEDGE_S or is "wedged".

ratio = PostgreSQL's documents/s / SQLite's at 4 writers (above 1: PostgreSQL is
faster); the launcher's default store is the faster one that does not wedge.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, UpdateOne

from bench.common import percentile, versions, write_result
from tickwire.devstack import ferretdb, postgres, procs
from tickwire.events.wire import Bar
from tickwire.mongo import documents
from tickwire.mongo.history import history
from tickwire.processor.store import Documents, QuoteDoc, StateStore, _older_than, _raw

QUICK = os.environ.get("STORE_QUICK") == "1"
SECONDS = float(os.environ.get("STORE_SECONDS", 3 if QUICK else 10))
WRITERS = [int(w) for w in os.environ.get("STORE_WRITERS", "1,2,4").split(",")]
SYMBOLS = int(os.environ.get("STORE_SYMBOLS", 50 if QUICK else 100))
CONCURRENCY = 50
QUERIES = int(os.environ.get("STORE_QUERIES", 100 if QUICK else 300))
WEDGE_S = float(os.environ.get("STORE_WEDGE_S", 30))
PER_WRITER = 20
DAY = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


@contextlib.contextmanager
def store_process(store: str) -> Iterator[str]:
    """FerretDB on `store` in a fresh temporary directory; yields its MongoDB URL."""
    root = Path(tempfile.mkdtemp(prefix=f"tw-store-{store}-"))
    pid_files = []
    try:
        pg_url = None
        if store == "postgresql":
            bindir, d = postgres.bin_dir(), root / "postgres"
            d.mkdir()
            postgres.init_cluster(bindir, d / "data", d / "postgres.log")
            port = procs.free_port()
            procs.spawn(
                postgres.argv(bindir, d / "data", port), d / "postgres.log", d / "postgres.pid"
            )
            pid_files.append(d / "postgres.pid")
            postgres.wait_ready(bindir, port, d / "postgres.log")
            pg_url = postgres.url(port)
        d = root / "ferretdb"
        (d / "data").mkdir(parents=True)
        port = procs.free_port()
        argv = ferretdb.argv(ferretdb.build(), port, procs.free_port(), d / "data", pg_url)
        procs.spawn(argv, d / "ferretdb.log", d / "ferretdb.pid", cwd=d)
        pid_files.insert(0, d / "ferretdb.pid")
        url = f"mongodb://127.0.0.1:{port}/"
        ferretdb.wait_ready(url, d / "ferretdb.log")
        yield url
    finally:
        import signal

        for pid_file in pid_files:
            sig = signal.SIGINT if pid_file.name == "postgres.pid" else signal.SIGTERM
            procs.stop(pid_file, grace=5, sig=sig)
        shutil.rmtree(root, ignore_errors=True)


def _quote(symbol: str, version: int, partition: int) -> QuoteDoc:
    """A quotes document the size and shape of the processor's (state + bookkeeping)."""
    doc: dict[str, Any] = {
        "_id": symbol,
        "symbol": symbol,
        "version": version,
        "time": "2026-11-27T14:30:00.123456Z",
        "last": 101.25,
        "last_size": 100.0,
        "last_time": "2026-11-27T14:30:00.123456Z",
        "open": 100.0,
        "high": 102.0,
        "low": 99.5,
        "volume": 12345.0,
        "vwap": 100.9,
        "trades": version,
        "bid": 101.2,
        "bid_size": 300.0,
        "ask": 101.3,
        "ask_size": 200.0,
        "received_ns": time.time_ns(),
        "partition": partition,
        "offset": version,
        "notional": 1245678.5,
        "session_day": 20419,
        "watermark_us": version,
        "seen_ids": b"\x00" * 64,
        "forming": {
            name: [{"start_us": version, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}]
            for name in ("1s", "1m")
        },
    }
    return QuoteDoc(symbol, _older_than(doc), _raw(doc))


def _bar(symbol: str, start: dt.datetime, step: dt.timedelta, close: float = 1.5) -> Bar:
    return Bar(
        symbol=symbol, interval="1m" if step.seconds == 60 else "1s", start=start,
        end=start + step, open=1.0, high=2.0, low=0.5, close=close, volume=10.0, vwap=1.2,
        trades=3, version=7, received_ns=1,
    )  # fmt: skip


def _round(writer: int, n: int) -> Documents:
    docs = Documents()
    second = DAY + dt.timedelta(hours=14, seconds=n)
    for i in range(PER_WRITER):
        symbol = f"W{writer}S{i:02d}"
        docs.quotes[symbol] = _quote(symbol, n + 1, writer)
        write = documents.bucket_write(_bar(symbol, second, dt.timedelta(seconds=1)))
        docs.bars[write.id] = write
    return docs


async def _writer(db: Any, writer: int, until: float, rounds: list[float]) -> int:
    store = StateStore(db)
    n = written = 0
    while time.monotonic() < until:
        started = time.perf_counter()
        written += await store.write(_round(writer, n))
        rounds.append((time.perf_counter() - started) * 1000)
        n += 1
    return written


async def writes(url: str, writers: int) -> dict[str, Any]:
    """The processor's write pattern with `writers` concurrent writers."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
    try:
        db = client[f"writes{writers}"]
        await StateStore(db).ensure_indexes()
        rounds: list[float] = []
        started = time.monotonic()
        until = started + SECONDS
        counts = await asyncio.gather(*(_writer(db, w, until, rounds) for w in range(writers)))
        elapsed = time.monotonic() - started
        return {
            "writers": writers,
            "documents_per_s": round(sum(counts) / elapsed, 1),
            "round_p50_ms": round(percentile(rounds, 50), 1),
            "round_p99_ms": round(percentile(rounds, 99), 1),
            "rounds": len(rounds),
        }
    finally:
        await client.close()


async def load_history(db: Any, symbols: list[str], days: float = 1.0) -> int:
    """`days` of 1m bars for each symbol, as buckets inserted in bulk; returns bars."""
    minute = dt.timedelta(minutes=1)
    count = int(days * 1440)
    for symbol in symbols:
        bars = (_bar(symbol, DAY + m * minute, minute, 1.0 + m) for m in range(count))
        await db.bars.insert_many(documents.bucket_documents(bars), ordered=False)
    return count * len(symbols)


async def _timed(calls: int, call: Any) -> list[float]:
    samples: list[float] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await call(i)
            samples.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one(i) for i in range(calls)))
    return samples


async def query(url: str) -> dict[str, Any]:
    """The gateway's reads, straight on the store: 120 latest 1m bars; 50 quotes."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True, maxPoolSize=CONCURRENCY)
    try:
        db = client["query"]
        names = [f"Q{i:04d}" for i in range(SYMBOLS)]
        await StateStore(db).ensure_indexes()
        started = time.monotonic()
        loaded = await load_history(db, names)
        for i in range(0, len(names), PER_WRITER):
            await db.quotes.insert_many([_quote(s, 1, 0).raw for s in names[i : i + PER_WRITER]])
        load_s = time.monotonic() - started
        end = DAY + dt.timedelta(days=1)

        async def bars(i: int) -> None:
            got = await history(db.bars, names[i % len(names)], "1m", None, end, 120)
            assert len(got) == 120

        async def quotes(i: int) -> None:
            wanted = [names[(i + k * 7) % len(names)] for k in range(50)]
            found = await asyncio.gather(*(db.quotes.find_one({"_id": s}) for s in wanted))
            assert all(found)

        out: dict[str, Any] = {"symbols": SYMBOLS, "bars_1m_loaded": loaded}
        out["load_s"] = round(load_s, 1)
        for name, call in (("bars_120_1m", bars), ("quotes_50", quotes)):
            samples = await _timed(QUERIES, call)
            out[name] = {
                "p50_ms": round(percentile(samples, 50), 2),
                "p99_ms": round(percentile(samples, 99), 2),
                "requests": len(samples),
            }
        return out
    finally:
        await client.close()


async def _with_writers(db: Any, action: Any) -> str:
    """Run action beside 4 writers; "ok" or "wedged" (not done within WEDGE_S)."""
    until = time.monotonic() + WEDGE_S
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        store, n = StateStore(db), int(time.time())  # newer versions than a run before
        while not stop.is_set() and time.monotonic() < until:
            await store.write(_round(w, n))
            n += 1

    tasks = [asyncio.create_task(writer(w)) for w in range(4)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.wait_for(action(), WEDGE_S)
        outcome = "ok"
    except TimeoutError:
        outcome = "wedged"
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=WEDGE_S)
    for task in pending:
        task.cancel()
    if pending:
        outcome = "wedged"
    return outcome


async def deadlock(url: str) -> dict[str, str]:
    """Whether a big update command, or an index build, wedges the store under writes."""
    out = {}
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        url, tz_aware=True, socketTimeoutMS=int(WEDGE_S * 2000)
    )
    try:
        db = client["deadlock"]
        await StateStore(db).ensure_indexes()

        async def big_command() -> None:
            ops = [
                UpdateOne({"_id": f"big{i}"}, {"$set": {"n": i}}, upsert=True) for i in range(200)
            ]
            await db.big.bulk_write(ops, ordered=False)

        async def index_build() -> None:
            await db.quotes.create_index([("version", ASCENDING)], name="by_version")

        out["update_command_of_200"] = await _with_writers(db, big_command)
        out["index_build_under_writes"] = await _with_writers(db, index_build)
    finally:
        await client.close()
    return out


async def measure(store: str) -> dict[str, Any]:
    with store_process(store) as url:
        out: dict[str, Any] = {"backend": store, "writes": {}}
        for w in WRITERS:
            out["writes"][str(w)] = await writes(url, w)
            print(f"[store] {store} writes x{w}: {out['writes'][str(w)]}", flush=True)
        out["query"] = await query(url)
        print(f"[store] {store} query: {out['query']}", flush=True)
        out["deadlock"] = await deadlock(url)
        print(f"[store] {store} deadlock: {out['deadlock']}", flush=True)
        return out


def main() -> None:
    import signal
    import sys

    # a SIGTERM (timeout, Ctrl-C from make) still stops the servers this run started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pg = asyncio.run(measure("postgresql"))
    print(pg, flush=True)
    lite = asyncio.run(measure("sqlite"))
    print(lite, flush=True)
    top = str(max(WRITERS))
    ratio = pg["writes"][top]["documents_per_s"] / max(lite["writes"][top]["documents_per_s"], 1e-9)
    path = write_result(
        "store",
        ours={"name": "FerretDB v1.24.2 on PostgreSQL 15", **pg},
        peer={"name": "FerretDB v1.24.2 on SQLite", **lite},
        ratio=ratio,
        ratio_meaning=(
            f"PostgreSQL documents/s / SQLite documents/s for the processor's writes with {top}"
            " writers (guarded quotes replaces + closed 1s bars into buckets, commands of 20);"
            " above 1: PostgreSQL is faster"
        ),
        versions_=versions("pymongo", extra={"postgresql": postgres_version()}),
        extra={"seconds_per_config": SECONDS, "quick": QUICK},
    )
    print(f"wrote {path}")


def postgres_version() -> str:
    import subprocess

    out = subprocess.run(
        [str(postgres.bin_dir() / "postgres"), "--version"], capture_output=True, text=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    main()
