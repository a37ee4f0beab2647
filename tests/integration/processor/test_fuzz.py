"""Random records (keys, headers, values; valid-looking events with extreme values,
tombstones, foreign bytes) into the ticks.raw of a real processor: it never stops,
every record is accounted for (applied, late, duplicate or dead-lettered: the outcome
counters add up to the records sent, and each dead letter names its source offset), and
a final marker event is processed after them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.helpers.infra import Topics
from tests.helpers.kafka import read_all
from tests.helpers.processor_run import in_process, settings_for
from tests.helpers.processor_tape import produce_tape, trade
from tickwire.events import headers as h
from tickwire.events import types
from tickwire.kafka.topics import ensure_topics

OUTCOMES = ("trade", "quote", "late", "poison", "replayed", "duplicate")
SYMBOLS = ["AAA", "BB.B", "C-1"]
ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-12))]

times = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.sampled_from(ZONES),
    ).map(lambda t: t.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-12:00"]
    ),
    st.text(max_size=30),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, 1e-320, 1e308, 2**63, 2**64 + 1]),
)
symbol = st.one_of(st.sampled_from(SYMBOLS), st.text(max_size=6))
trade_body = st.fixed_dictionaries(
    {"symbol": symbol, "price": numbers, "size": numbers, "time": times}
)
quote_body = st.fixed_dictionaries(
    {
        "symbol": symbol,
        "bid": numbers,
        "ask": numbers,
        "bid_size": numbers,
        "ask_size": numbers,
        "time": times,
    }
)
values = st.one_of(
    st.none(),
    st.binary(max_size=64),
    trade_body.map(lambda d: json.dumps(d).encode()),
    quote_body.map(lambda d: json.dumps(d).encode()),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=5).map(
        lambda v: json.dumps(v).encode()
    ),
    st.just(b"[" * 50_000),
)
header_value = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.sampled_from([b"9" * 40, "٣".encode(), b"-1", b"18446744073709551616"]),
)
ce_type = st.sampled_from([types.TRADE, types.QUOTE, "io.tickwire.other.v1", ""]).map(str.encode)
headers = st.lists(
    st.one_of(
        st.tuples(st.just(h.CE_TYPE), st.one_of(ce_type, header_value)),
        st.tuples(st.just(h.CE_ID), st.one_of(st.sampled_from([b"id-1", b"id-2"]), header_value)),
        st.tuples(st.just(h.RECEIVED_NS), header_value),
        st.tuples(st.text(max_size=8), header_value),
    ),
    max_size=6,
)
keys = st.one_of(st.none(), st.sampled_from(SYMBOLS).map(str.encode), st.binary(max_size=8))
edge_times = st.one_of(
    st.datetimes(min_value=dt.datetime(9999, 12, 31, 23, 59), timezones=st.just(dt.UTC)),
    st.datetimes(max_value=dt.datetime(1, 1, 1, 0, 1), timezones=st.sampled_from(ZONES)),
    st.datetimes(timezones=st.sampled_from(ZONES)),
)


@st.composite
def shaped(draw: Any) -> tuple[Any, Any, Any]:
    """A record that passes the envelope checks: the code behind the decoder gets it."""
    name = draw(st.sampled_from(SYMBOLS))
    price = draw(st.one_of(st.floats(1e-9, 1e15), st.sampled_from([5e-324, 1e15])))
    size = draw(st.one_of(st.floats(1e-9, 1e15), st.sampled_from([5e-324, 1e15])))
    return trade(name, price, size, draw(edge_times), draw(st.integers(0, 2**63 - 1)))


records = st.one_of(st.tuples(keys, values, headers), shaped())


def _generated(count: int) -> list[tuple[Any, Any, Any]]:
    out: list[tuple[Any, Any, Any]] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(records, min_size=1, max_size=8))
    def collect(batch: list[tuple[Any, Any, Any]]) -> None:
        out.extend(batch)

    collect()
    return out


def _outcomes() -> float:
    return sum(
        REGISTRY.get_sample_value("tickwire_processor_events_total", {"type": kind}) or 0.0
        for kind in OUTCOMES
    )


@pytest.mark.timeout(300)
async def test_random_records_never_stop_the_processor_and_all_are_accounted_for(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, mongo: Any
) -> None:
    await ensure_topics(
        kafka_bootstrap,
        [topics.raw, topics.updates, topics.bars, topics.late, topics.dlq],
        partitions=1,
        replication=1,
    )
    fuzz = _generated(300)
    marker = trade("ZZMARK", 1.0, 1.0, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), received_ns=5)
    settings_ = settings_for(
        kafka_bootstrap, mongodb_url, db_name, topics, topic_partitions=1, publish_forming_bars=True
    )
    before = _outcomes()
    dead_before = REGISTRY.get_sample_value("tickwire_processor_dead_letters_total") or 0.0
    async with in_process(settings_) as loop:
        await produce_tape(kafka_bootstrap, topics.raw, [*fuzz, marker])
        deadline = time.monotonic() + 180
        while await mongo.quotes.find_one({"_id": "ZZMARK"}) is None:
            assert time.monotonic() < deadline, "the marker was never processed"
            await asyncio.sleep(0.2)
        # the counters move once the batch is committed, just after its MongoDB write
        while _outcomes() - before < len(fuzz) + 1:
            assert time.monotonic() < deadline, "the batch with the marker never finished"
            await asyncio.sleep(0.05)
        assert await loop.partitions_ready()
    assert _outcomes() - before == len(fuzz) + 1
    dead = (REGISTRY.get_sample_value("tickwire_processor_dead_letters_total") or 0.0) - dead_before
    letters = await read_all(kafka_bootstrap, topics.dlq, expected=int(dead), timeout=30)
    assert len(letters) == int(dead)
    sources = [dict(r.headers)[h.SOURCE_OFFSET] for r in letters]
    assert len(set(sources)) == len(sources)
    for letter in letters:
        assert dict(letter.headers)[h.ERROR]
