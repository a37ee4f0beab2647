"""Market semantics through the real broker and FerretDB: a tape across Friday's early
close, the weekend and Monday's session, with halts, corrections and cancels (of
forming and closed bars), garbage corrections (an unknown trade, another symbol's
trade, a trade past the window) and a replayed correction. MongoDB (`quotes`, `bars`,
`corrections`), `ticker.bars`, `ticker.updates` and `ticks.dlq` are compared with the
independent model of tests/helpers/market_reference.py, with and without a SIGKILL
between a batch's publish and its MongoDB write."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.market_reference import Market, compute
from tests.helpers.market_tape import cancel, correction, status
from tests.helpers.processor_checks import bar_differences
from tests.helpers.processor_reference import Expected
from tests.helpers.processor_run import env_for, settings_for, spawn
from tests.helpers.processor_tape import RawRecord, produce_tape, quote, trade
from tickwire.devstack.procs import free_port
from tickwire.events.wire import BAR_DECODER, STATE_DECODER
from tickwire.kafka.topics import ensure_topics

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}
GRACE = dt.timedelta(seconds=2)
WINDOW_TRADES = 60
WINDOW = dt.timedelta(minutes=5)
S = dt.timedelta(seconds=1)
UTC = dt.UTC
FRIDAY = dt.datetime(2026, 11, 27, 17, 58, tzinfo=UTC)  # early close at 18:00 UTC
MONDAY = dt.datetime(2026, 11, 30, 14, 30, tzinfo=UTC)


def market_tape() -> list[RawRecord]:
    """Two symbols; prices are multiples of 1/4 and sizes whole, so sums are exact."""
    tape: list[RawRecord] = []
    for n in range(40):  # Friday's last regular minutes: A every 0.5 s, B every 1.5 s
        t = FRIDAY + n * 0.5 * S
        tape.append(trade("A", 100 + (n % 7) * 0.25, 10 + n % 3, t, 1000 + n, f"a{n}"))
        if n % 3 == 0:
            tape.append(trade("B", 50 + (n % 5) * 0.5, 5, t, 2000 + n, f"b{n}"))
        if n == 4:
            tape.append(status("A", "halted", t, "LULD pause", "s1", 3000))
        if n == 10:
            tape.append(status("A", "trading", t, None, "s2", 3001))
        if n == 30:
            tape += [
                correction("A", "a29", 101.5, 40, t, "c1", 4000),  # a forming 1s bar
                correction("A", "a20", 99.75, 7, t, "c2", 4001),  # a closed 1s bar
                cancel("A", "a24", t, "x1", 4002),
                cancel("B", "b27", t, "x2", 4003),
                correction("A", "nope", 100.0, 1, t, "g1", 4004),  # unknown trade
                correction("A", "b24", 100.0, 1, t, "g2", 4005),  # B's trade
            ]
        if n == 35:
            tape.append(correction("A", "a29", 101.5, 40, t, "c1", 4000))  # replayed
    after = FRIDAY + 20 * S
    tape += [
        # forming when decided; its own time then closes the bar
        correction("A", "a38", 98.0, 1, after + 2 * S, "c3", 4100),
        trade("A", 104.0, 3, after + 140 * S, 5000, "post1"),  # post-market: not the close
        trade("B", 49.0, 2, after + 141 * S, 5001, "post2"),
        trade("A", 103.0, 1, dt.datetime(2026, 11, 28, 15, tzinfo=UTC), 5002, "sat"),
        quote("A", 99.0, 99.5, dt.datetime(2026, 11, 30, 9, 30, tzinfo=UTC), 6000),
    ]
    for n in range(12):  # Monday's open
        t = MONDAY + n * 0.75 * S
        tape.append(trade("A", 102 + (n % 4) * 0.5, 4, t, 7000 + n, f"m{n}"))
        tape.append(trade("B", 51 + (n % 2) * 0.25, 8, t, 8000 + n, f"n{n}"))
    tape.append(cancel("A", "m3", MONDAY + 9 * S, "x3", 9000))  # a closed 1s bar
    tape.append(correction("A", "a5", 1.0, 1, MONDAY + 9 * S, "g3", 9003))  # past the window
    tape.append(quote("A", 101.0, 101.5, MONDAY + 20 * S, 9001))  # closes Monday's bars
    tape.append(quote("B", 50.0, 50.5, MONDAY + 20 * S, 9002))
    # C across a holiday: Thursday 2026-07-02, Friday 07-03 closed (Independence Day
    # observed: it belongs to Thursday's session), Monday 07-06
    thursday = dt.datetime(2026, 7, 2, 19, 59, 58, tzinfo=UTC)
    tape += [
        trade("C", 30.0, 1, thursday, 9100, "c-thu-1"),
        trade("C", 30.5, 2, thursday + S, 9101, "c-thu-2"),  # Thursday's close
        trade("C", 31.0, 1, dt.datetime(2026, 7, 3, 15, tzinfo=UTC), 9102, "c-holiday"),
        trade("C", 29.75, 4, dt.datetime(2026, 7, 6, 13, 30, 1, tzinfo=UTC), 9103, "c-mon"),
    ]
    return tape


async def _settled(
    mongo: Any,
    want: dict[str, tuple[int, int]],
    proc: subprocess.Popen[bytes],
    timeout: float = 120,
) -> None:
    deadline = time.monotonic() + timeout
    got: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the processor exited"
        got = {d["_id"]: (d["version"], d["offset"]) async for d in mongo.quotes.find({})}
        if got == want:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"processor did not settle: {got} != {want}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _approx(value: Any) -> Any:
    return pytest.approx(value, rel=1e-12) if isinstance(value, float) else value


def _check_states(docs: list[dict[str, Any]], want: Market) -> None:
    by_symbol = {d["_id"]: d for d in docs}
    assert set(by_symbol) == set(want.states)
    for symbol, state in want.states.items():
        doc = by_symbol[symbol]
        for key in ("version", "volume", "trades", "open", "high", "low", "last", "vwap"):
            assert doc.get(key) == _approx(state[key]), (symbol, key)
        assert doc.get("prev_close") == state["prev_close"], symbol
        session = doc["session"]
        for key, value in state["session"].items():
            assert session[key] == value, (symbol, key)
        if state["status"] is None:
            assert doc.get("status") is None
        else:
            assert doc["status"]["state"] == state["status"]["state"]
            assert doc["status"]["reason"] == state["status"]["reason"]
            since = dt.datetime.fromisoformat(doc["status"]["since"].replace("Z", "+00:00"))
            assert since == state["status"]["since"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", [None, "after_publish"])
async def test_sessions_corrections_and_halts_end_exactly_as_the_reference(
    fault: str | None,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
    tmp_path: Path,
) -> None:
    await ensure_topics(
        kafka_bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=2,
        replication=1,
    )
    tape = market_tape()
    await produce_tape(kafka_bootstrap, topics.raw, tape)
    raw = await read_all(kafka_bootstrap, topics.raw, expected=len(tape))
    raw.sort(key=lambda r: (r.partition, r.offset))
    want = compute(
        raw,
        INTERVALS,
        GRACE,
        correction_trades=WINDOW_TRADES,
        correction_window=WINDOW,
        daily=True,
    )
    # what the reference says the tape exercises
    kinds = {c["id"]: c["kind"] for c in want.corrections}
    assert kinds == {"c1": "correction", "c2": "correction", "c3": "correction"} | {
        "x1": "cancel",
        "x2": "cancel",
        "x3": "cancel",
    }
    assert len(want.dead) == 3
    # Friday's close is its last regular trade (a39), not the post-market one
    assert (want.states["A"]["prev_close"], want.states["B"]["prev_close"]) == (101.0, 52.0)
    assert (want.states["C"]["prev_close"], want.states["C"]["session"]["date"]) == (
        30.5,
        "2026-07-06",
    )
    daily = {k: v for k, v in want.bars.items() if k[1] == "1d" and k[0] != "C"}
    assert [(k[0], k[2], v["final"]) for k, v in sorted(daily.items())] == [
        ("A", dt.datetime(2026, 11, 27, 14, 30, tzinfo=UTC), True),
        ("A", MONDAY, False),
        ("B", dt.datetime(2026, 11, 27, 14, 30, tzinfo=UTC), True),
        ("B", MONDAY, False),
    ]  # Friday's closed (early close, 18:00 UTC), Monday's still forming

    settings = settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        topic_partitions=2,
        max_poll_records=15,
        batch_max_records=15,
        bar_intervals=["1s", "1m", "1d"],
    )
    last_offsets = {r.key.decode(): r.offset for r in raw}
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "p.log"

    def env(update: dict[str, Any]) -> dict[str, str]:
        out = env_for(settings.model_copy(update=update), "m1", free_port())
        out["TICKWIRE_CORRECTION_TRADES"] = str(WINDOW_TRADES)
        out["TICKWIRE_CORRECTION_WINDOW"] = f"PT{int(WINDOW.total_seconds())}S"
        return out

    try:
        if fault is not None:
            first = spawn(env({"fault_point": fault, "fault_batch": 4}), log)
            procs.append(first)
            assert await asyncio.to_thread(first.wait, 120) == -signal.SIGKILL
        procs.append(spawn(env({}), log))
        await _settled(
            mongo,
            {s: (st["version"], last_offsets[s]) for s, st in want.states.items()},
            procs[-1],
        )
    finally:
        _stop(procs)

    _check_states([d async for d in mongo.quotes.find({})], want)
    closed = {k: v for k, v in want.bars.items() if v["final"]}
    expected = Expected(bars=closed)
    assert bar_differences([d async for d in mongo.bars.find({})], expected) == []

    recorded = sorted(
        [d async for d in mongo.corrections.find({})], key=lambda d: (d["symbol"], d["id"])
    )
    assert [
        {k: d[k] for k in ("symbol", "kind", "id", "ref_id", "before", "after", "version")}
        for d in recorded
    ] == sorted(want.corrections, key=lambda c: (c["symbol"], c["id"]))

    # ticker.bars: per bar, the highest version published is the reference's final bar,
    # and a corrected closed bar went out final twice (the higher version last)
    records = await read_all(kafka_bootstrap, topics.bars, expected=len(closed), timeout=20)
    newest: dict[tuple[str, str, dt.datetime], Any] = {}
    finals: dict[tuple[str, str, dt.datetime], list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        bar = BAR_DECODER.decode(record.value)
        key = (bar.symbol, bar.interval, bar.start)
        finals.setdefault(key, []).append(bar.version)
        if key not in newest or bar.version > newest[key].version:
            newest[key] = bar
    flat = [{f: getattr(b, f) for f in b.__struct_fields__} for b in newest.values()]
    assert bar_differences(flat, expected) == []
    corrected_closed = [k for k, v in finals.items() if len(set(v)) > 1]
    assert corrected_closed, "a correction of a closed bar republishes it"
    for key in corrected_closed:
        versions = list(dict.fromkeys(finals[key]))  # a crash may repeat one: same version
        assert versions == sorted(versions), key

    # ticker.updates: the last state of each symbol carries its session and status
    updates = await read_all(kafka_bootstrap, topics.updates, timeout=20, idle=1)
    last: dict[str, Any] = {}
    for record in sorted(updates, key=lambda r: (r.partition, r.offset)):
        state = STATE_DECODER.decode(record.value)
        last[state.symbol] = state
    for symbol, wanted in want.states.items():
        got = last[symbol]
        assert got.version == wanted["version"]
        assert got.session is not None
        assert (got.session.date, got.session.phase, got.session.prev_close) == (
            wanted["session"]["date"],
            wanted["session"]["phase"],
            wanted["prev_close"],
        )
    assert last["A"].status is not None
    assert (last["A"].status.state, last["A"].status.reason) == ("trading", None)

    # ticks.dlq: exactly the garbage corrections (a replay may repeat one)
    dead = await read_all(kafka_bootstrap, topics.dlq, expected=len(want.dead), timeout=20)
    coords = {
        (int(dict(r.headers)["tw_source_partition"]), int(dict(r.headers)["tw_source_offset"]))
        for r in dead
    }
    assert coords == set(want.dead)
    reasons = {dict(r.headers)["tw_error"].decode() for r in dead}
    assert all("correction refers to trade" in reason for reason in reasons), reasons
