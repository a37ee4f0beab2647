"""The soak (scenario 7 of the fault report): `python -m bench.soak` (`make soak`;
SOAK_MINUTES, default 30).

The real pipeline of the fault report (one ingest, two processors, two gateways, auth
on) under steady ingest for SOAK_MINUTES, while stream clients connect and disconnect
continuously: SSE and WebSocket alternately, each staying a random 1-8 s, half of them
resuming from the last id they received (Last-Event-ID, or the subscribe message's
`cursor`). Two steady SSE clients stay for the whole run. Every few seconds the RSS and
open file descriptors of every service process are read from /proc.

Reported (bench/results/soak.json, plot docs/img/soak.png): per process the slope after
warm-up (the first fifth of the run, at least a minute when the run is long enough) in
MiB and fds per 10 minutes, by least squares, and a verdict: flat when RSS grows less than
SOAK_FLAT_MIB (8) and fds less than SOAK_FLAT_FDS (5) per 10 minutes. At the end,
correctness: every acknowledged event in ticks.raw and in MongoDB's quotes (trades per
symbol equal to the acknowledged count, none applied twice), both steady clients at every
symbol's final version with no repeat, and the resuming churners never sent a version
they already had.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pymongo import AsyncMongoClient
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench import faults
from bench.common import ProcSampler, slope_per, sse_events, versions, write_result
from tickwire.devstack import procs
from tickwire.events import headers as h

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE_S = 5.0 if MINUTES >= 10 else 2.0
CHURNERS = 8
FLAT_MIB = float(os.environ.get("SOAK_FLAT_MIB", "8"))
FLAT_FDS = float(os.environ.get("SOAK_FLAT_FDS", "5"))
SERVICES = ("ingest", "processora", "processorb", "gatewaya", "gatewayb")
PLOT = Path(__file__).parents[1] / "docs" / "img" / "soak.png"


@dataclass
class Churn:
    """What the churning clients did."""

    connections: Counter[str] = field(default_factory=Counter)  # transport -> count
    resumed: int = 0
    refused: int = 0
    repeated_after_resume: int = 0
    quotes: int = 0


@dataclass
class Session:
    """One churner's position: the newest version seen per symbol and the last id."""

    seen: dict[str, int] = field(default_factory=dict)
    cursor: str | None = None

    def record(self, symbol: str, version: int, churn: Churn) -> None:
        if version <= self.seen.get(symbol, 0):
            churn.repeated_after_resume += 1
        self.seen[symbol] = max(version, self.seen.get(symbol, 0))
        churn.quotes += 1


async def _sse_visit(url: str, session: Session, churn: Churn) -> None:
    headers = dict(faults.CREDS.gateway_headers)
    if session.cursor:
        headers["Last-Event-ID"] = session.cursor
    path = "/v1/stream?bars=none&symbols=" + ",".join(faults.SYMBOLS)
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as http,
        http.stream("GET", path, headers=headers) as resp,
    ):
        if resp.status_code != 200:
            churn.refused += 1
            return
        async for event, eid, data in sse_events(resp.aiter_lines()):
            # an event and its id are taken together: a visit cut in between has
            # neither, and its resume is sent the event again, legitimately
            if event in ("snapshot", "quote"):
                state = orjson.loads(data)
                session.record(state["symbol"], state["version"], churn)
            session.cursor = eid or session.cursor


async def _ws_visit(url: str, session: Session, churn: Churn) -> None:
    request: dict[str, Any] = {"type": "subscribe", "symbols": faults.SYMBOLS, "bars": []}
    if session.cursor:
        request["cursor"] = session.cursor
    async with connect(
        url.replace("http", "ws") + "/v1/ws", additional_headers=faults.CREDS.gateway_headers
    ) as ws:
        await ws.send(orjson.dumps(request).decode())
        async for message in ws:
            for e in orjson.loads(message):
                if e["event"] in ("snapshot", "quote"):
                    session.record(e["data"]["symbol"], e["data"]["version"], churn)
                if e.get("id"):
                    session.cursor = e["id"]


async def churner(index: int, urls: list[str], churn: Churn, stop: asyncio.Event) -> None:
    """Connect, stay 1-8 s, leave; again until stop. Odd churners resume with cursors
    (and must never get a version again); even ones start fresh every time."""
    rng = random.Random(index)
    resuming = index % 2 == 1
    session = Session()
    for turn in itertools.count():
        if stop.is_set():
            return
        transport = "sse" if (turn + index) % 2 == 0 else "ws"
        visit = _sse_visit if transport == "sse" else _ws_visit
        if not resuming:
            session = Session()
        elif session.cursor:
            churn.resumed += 1
        churn.connections[transport] += 1
        with contextlib.suppress(TimeoutError, httpx.HTTPError, OSError, WebSocketException):
            await asyncio.wait_for(
                visit(urls[rng.randrange(len(urls))], session, churn), rng.uniform(1, 8)
            )
        await asyncio.sleep(0.2)


def _verdicts(sampler: ProcSampler, warm_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SERVICES:
        rss = [(t, y) for t, y in sampler.series(name, 0) if t >= warm_s]
        fds = [(t, y) for t, y in sampler.series(name, 1) if t >= warm_s]
        mib, nfd = slope_per(rss, 600), slope_per(fds, 600)
        out[name] = {
            "rss_mib_start": rss[0][1] if rss else None,
            "rss_mib_end": rss[-1][1] if rss else None,
            "rss_mib_per_10min": round(mib, 2),
            "fds_start": fds[0][1] if fds else None,
            "fds_end": fds[-1][1] if fds else None,
            "fds_per_10min": round(nfd, 2),
            "flat": mib < FLAT_MIB and nfd < FLAT_FDS,
        }
    return out


async def _correctness(
    run: faults.Pipeline, tally: faults.Tally, steady: list[faults.Client]
) -> dict[str, Any]:
    expected = Counter(tally.symbol_of[i] for i in tally.acked)
    raw = await faults.read_topic(run.info.bootstrap_servers, run.topics["ticks.raw"])
    in_log = {(h.find(r.headers, h.CE_ID) or b"").decode() for r in raw}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(run.info.mongodb_url)
    try:
        trades: dict[str, int] = {}
        for _ in range(600):  # persistence follows behind: wait for it (marker)
            trades = {d["_id"]: d.get("trades", 0) async for d in mongo[run.db].quotes.find({})}
            if all(trades.get(s, 0) >= n for s, n in expected.items()):
                break
            await asyncio.sleep(0.5)
    finally:
        await mongo.close()
    return {
        "acknowledged": len(tally.acked),
        "missing_from_log": len(set(tally.acked) - in_log),
        "missing_from_store": sum(max(0, n - trades.get(s, 0)) for s, n in expected.items()),
        "applied_twice_in_store": sum(max(0, trades.get(s, 0) - n) for s, n in expected.items()),
        "steady_clients_short": sum(
            1 for c in steady for s, n in expected.items() if (c.versions.get(s) or [0])[-1] != n
        ),
        "steady_clients_repeats": sum(
            1
            for c in steady
            for v in c.versions.values()
            for a, b in itertools.pairwise(v)
            if b <= a
        ),
    }


def _plot(sampler: ProcSampler, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name in SERVICES:
        rss = sampler.series(name, 0)
        fds = sampler.series(name, 1)
        top.plot([t / 60 for t, _ in rss], [y for _, y in rss], label=name)
        bottom.plot([t / 60 for t, _ in fds], [y for _, y in fds], label=name)
    top.set_ylabel("RSS (MiB)")
    bottom.set_ylabel("open fds")
    bottom.set_xlabel("minutes")
    top.set_title(title)
    top.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)
    plt.close(fig)


async def soak(root: Path) -> dict[str, Any]:
    """Run the soak on a private stack; the result document's parts."""
    async with faults.pipeline(root, 1) as run:
        tally = faults.Tally()
        stop = asyncio.Event()
        urls = [run.url("gatewaya"), run.url("gatewayb")]
        steady = [faults.Client(), faults.Client()]
        churn = Churn()
        sampler = ProcSampler(
            lambda: {n: procs.read_pid(run.pid_files[n]) for n in SERVICES}, SAMPLE_S
        )
        tasks = [
            asyncio.create_task(faults.subscribe(urls[i:] + urls[:i], c, stop))
            for i, c in enumerate(steady)
        ]
        tasks += [asyncio.create_task(churner(i, urls, churn, stop)) for i in range(CHURNERS)]
        sampling = asyncio.create_task(sampler.run(stop))
        producer = asyncio.create_task(faults.produce(run, tally))
        started = time.monotonic()
        while time.monotonic() - started < MINUTES * 60:
            await asyncio.sleep(5)
            if producer.done():
                producer.result()
            print(
                f"[soak] {(time.monotonic() - started) / 60:.1f} min, {sampler.samples[-1]}",
                flush=True,
            )
        tally.fault_over.set()
        await producer
        expected = Counter(tally.symbol_of[i] for i in tally.acked)
        for _ in range(600):  # marker: the steady clients hold every final version
            if all(
                (c.versions.get(s) or [0])[-1] >= n for c in steady for s, n in expected.items()
            ):
                break
            await asyncio.sleep(0.5)
        stop.set()
        await sampling
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        duration_s = time.monotonic() - started
        correctness = await _correctness(run, tally, steady)
    warm_s = max(duration_s / 5, min(60.0, duration_s / 3))
    return {
        "duration_s": round(duration_s, 1),
        "warm_up_s": round(warm_s, 1),
        "processes": _verdicts(sampler, warm_s),
        "churn": {
            "connections": dict(churn.connections),
            "resumed_with_cursor": churn.resumed,
            "refused": churn.refused,
            "quotes_received": churn.quotes,
            "repeated_after_resume": churn.repeated_after_resume,
        },
        "correctness": correctness,
        "samples": sampler.samples,
        "sampler": sampler,
    }


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tw-soak-") as tmp:
        found = await soak(Path(tmp))
    sampler: ProcSampler = found.pop("sampler")
    minutes = found["duration_s"] / 60
    _plot(
        sampler, f"soak: {minutes:.1f} min, {faults.RATE:g} events/s, {CHURNERS} churning clients"
    )
    flat = sum(1 for p in found["processes"].values() if p["flat"])
    c = found["correctness"]
    correct = not (
        c["missing_from_log"]
        or c["missing_from_store"]
        or c["applied_twice_in_store"]
        or c["steady_clients_short"]
        or c["steady_clients_repeats"]
        or found["churn"]["repeated_after_resume"]
    )
    path = write_result(
        "soak",
        ours={
            "name": "tickwire pipeline, steady ingest and connection churn",
            "minutes": round(minutes, 1),
            "requested_minutes": MINUTES,
            "rate_per_s": faults.RATE,
            "symbols": len(faults.SYMBOLS),
            "churning_clients": CHURNERS,
            "sample_every_s": SAMPLE_S,
            "flat_rule": f"after warm-up, RSS < {FLAT_MIB:g} MiB and fds < {FLAT_FDS:g} "
            "per 10 minutes (least-squares slope)",
            "correct": correct,
            **{k: v for k, v in found.items() if k != "samples"},
        },
        peer={"name": "flat: a process whose RSS and fds do not grow after warm-up"},
        ratio=flat / len(SERVICES),
        ratio_meaning="service processes judged flat (RSS and fds) / processes sampled "
        "(target 1.0)",
        versions_=versions("aiokafka", "pymongo", "httpx", "websockets"),
        extra={"plot": str(PLOT.relative_to(PLOT.parents[2])), "samples": found["samples"]},
    )
    print(f"[soak] wrote {path}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
