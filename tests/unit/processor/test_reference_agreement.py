"""The aggregator and the independent reference model agree on rich tapes, for any
batching and any restart point (the integration tests rely on that model, so it must
itself be right): the final documents, every published update and bar version, and
the late, dead and duplicate records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from tests.helpers.processor_checks import bar_differences, quote_differences
from tests.helpers.processor_reference import compute
from tests.helpers.processor_tape import batches, consumed, rich_tape
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval
from tickwire.processor.state import SymbolState
from tickwire.processor.store import bar_doc

INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)}


def _aggregator() -> Aggregator:
    return Aggregator([Interval.parse(n) for n in INTERVALS], 2_000_000)


@pytest.mark.parametrize(("size", "restart_every"), [(333, 0), (1, 0), (57, 5), (1000, 2)])
def test_aggregator_matches_reference(size: int, restart_every: int) -> None:
    tape = rich_tape(
        symbols=20,
        events=5000,
        seed=5,
        step_ms=7,
        reorder_every=5,
        duplicate_every=23,
        retry_every=19,
        late_every=101,
        tombstone_every=173,
        foreign_every=89,
    )
    records = consumed(tape, partitions=4)
    expected = compute(records, INTERVALS, dt.timedelta(seconds=2))
    agg = _aggregator()
    bars: dict[str, dict[str, Any]] = {}
    late, dead, duplicates = [], [], 0
    for n, batch in enumerate(batches(records, size), 1):
        out = agg.apply(batch)
        late += [(r.partition, r.offset) for r in out.late]
        dead += [(r.partition, r.offset) for r, _ in out.dead]
        duplicates += out.duplicates
        for update in out.updates:
            want = expected.updates[(update.symbol, update.version)]
            assert {f: getattr(update, f) for f in want} == want
        for change in [*out.closed, *out.forming]:
            doc = bar_doc(change, final=change in out.closed)
            key = (doc["symbol"], doc["interval"], doc["start"], doc["version"])
            assert {k: doc[k] for k in expected.bar_versions[key]} == expected.bar_versions[key]
            bars[doc["_id"]] = doc
        if restart_every and n % restart_every == 0:  # states back from their documents
            docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
            agg = _aggregator()
            agg.load(
                SymbolState.from_doc(msgspec.json.decode(msgspec.json.encode(d))) for d in docs
            )
    docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
    assert quote_differences(docs, expected) == []
    assert bar_differences(list(bars.values()), expected) == []
    assert sorted(late) == sorted(expected.late)
    assert sorted(dead) == sorted(expected.dead)
    assert duplicates == len(expected.duplicates)
    assert min(len(expected.late), len(expected.dead), len(expected.duplicates)) > 20
    assert sum(1 for b in expected.bars.values() if b["final"]) > 100
