"""The aggregator and the independent reference model agree on a random tape (the
integration tests rely on that model, so it must itself be right)."""

from __future__ import annotations

import datetime as dt

from tests.helpers.processor_checks import bar_differences, quote_differences
from tests.helpers.processor_reference import compute
from tests.helpers.processor_tape import batches, consumed, random_tape
from tickwire.processor.aggregator import Aggregator
from tickwire.processor.bars import Interval
from tickwire.processor.store import bar_doc


def test_aggregator_matches_reference() -> None:
    records = consumed(
        random_tape(symbols=20, events=5000, seed=5, step_ms=7, late_every=101, poison_every=211),
        partitions=4,
    )
    agg = Aggregator([Interval.parse("1s"), Interval.parse("1m")], 2_000_000)
    bars: dict[str, dict[str, object]] = {}
    late, dead = [], []
    for batch in batches(records, 333):
        out = agg.apply(batch)
        late += [(r.partition, r.offset) for r in out.late]
        dead += [(r.partition, r.offset) for r, _ in out.dead]
        for change in out.closed:
            doc = bar_doc(change, final=True)
            bars[doc["_id"]] = doc
        for change in out.forming:
            doc = bar_doc(change, final=False)
            bars[doc["_id"]] = doc
    expected = compute(
        records,
        {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1)},
        dt.timedelta(seconds=2),
    )
    docs = [st.to_doc(st.to_wire(st.offset)) for st in agg.states.values()]
    assert quote_differences(docs, expected) == []
    assert bar_differences(list(bars.values()), expected) == []
    assert sorted(late) == sorted(expected.late)
    assert sorted(dead) == sorted(expected.dead)
    assert len(expected.late) > 10
    assert len(expected.dead) > 10
    assert sum(1 for b in expected.bars.values() if b["final"]) > 100
