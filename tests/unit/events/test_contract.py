"""One contract: what ingest accepts at the door is exactly what the processor accepts
from ticks.raw (the same validator), records ingest writes decode to the same event,
and the partitioner is the Java client's.

Written against the services' entry points (ingest's `parse_one` and `build_records`,
the processor's `decode`), so it holds whatever the code behind them looks like."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.helpers.event_contract import FAR_FUTURE, ingest_accepts, processor_accepts
from tests.helpers.ingest_inputs import quote_data, trade_data
from tickwire.core.errors import PoisonMessageError
from tickwire.events import headers as h
from tickwire.events import types
from tickwire.events.records import build_records
from tickwire.ingest.events import BodyKind, EntryError, MalformedBody, parse_one
from tickwire.processor.decode import decode, received_ns


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(trade_data().map(lambda d: ("trade", d)), quote_data().map(lambda d: ("quote", d)))
)
def test_ingest_and_processor_accept_and_refuse_the_same_events(
    named: tuple[str, dict[str, Any]],
) -> None:
    name, data = named
    accepted = ingest_accepts(name, data)
    event(f"{name} accepted={accepted}")
    assert processor_accepts(name, data) == accepted, data


@pytest.mark.parametrize("size", [0, 0.0, -0.0])
def test_a_trade_of_size_zero_is_refused_by_both(size: float) -> None:
    data = {"symbol": "AAPL", "price": 1.5, "size": size, "time": "2026-03-02T14:29:59Z"}
    assert not ingest_accepts("trade", data)
    assert not processor_accepts("trade", data)


def test_a_quote_with_an_empty_side_is_accepted_by_both() -> None:
    data = {
        "symbol": "AAPL",
        "bid": 1.0,
        "bid_size": 0,
        "ask": 1.5,
        "ask_size": 0,
        "time": "2026-03-02T14:29:59Z",
    }
    assert ingest_accepts("quote", data)
    assert processor_accepts("quote", data)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(trade_data().map(lambda d: ("trade", d)), quote_data().map(lambda d: ("quote", d)))
)
def test_what_ingest_publishes_the_processor_decodes_to_the_same_event(
    named: tuple[str, dict[str, Any]],
) -> None:
    name, data = named
    try:
        posted = parse_one(orjson.dumps({"type": name, **data}), BodyKind.JSON, FAR_FUTURE)
    except (EntryError, MalformedBody):
        return
    [(key, value, headers)], [event_id] = build_records(
        [posted], default_source="/producers/test", received_ns=1, traceparent=None
    )
    assert decode(key, value, headers) == posted.data
    assert received_ns(headers) == 1
    assert h.find(headers, h.CE_ID) == event_id.encode()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "undecodable"),
        (b'{"symbol":"AAPL","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "undecodable"),
        (b'{"symbol":"\xff","price":1,"size":1,"time":"2026-03-02T14:29:59Z"}', "UTF-8"),
    ],
)
def test_the_processor_dead_letters_unreadable_values_instead_of_raising(
    value: bytes, why: str
) -> None:
    with pytest.raises(PoisonMessageError, match=why):
        decode(b"AAPL", value, [(h.CE_TYPE, types.TRADE.encode())])


@pytest.mark.parametrize(
    "raw", [b"9" * 40, b"99999999999999999999", b"9223372036854775808", b"-1", b"", b"1e9", b"\xb2"]
)
def test_a_received_ns_that_does_not_fit_is_ignored(raw: bytes) -> None:
    assert received_ns([(h.RECEIVED_NS, raw)]) is None


def test_a_received_ns_that_fits_is_read() -> None:
    assert received_ns([(h.RECEIVED_NS, b"9223372036854775807")]) == 9223372036854775807


# Kafka's own vectors for Utils.murmur2 (clients/src/test/.../UtilsTest.java)
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_the_java_clients_vectors() -> None:
    from tickwire.events.partitioner import murmur2, partition_for

    for key, expected in JAVA_MURMUR2.items():
        assert murmur2(key) == expected
        for count in (1, 3, 6, 7, 64):
            assert partition_for(key, count) == (expected & 0x7FFFFFFF) % count


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 200))
def test_partition_for_matches_aiokafkas_default_partitioner(key: bytes, count: int) -> None:
    from tickwire.events.partitioner import partition_for

    partitions = list(range(count))
    assert partition_for(key, count) == DefaultPartitioner()(key, partitions, partitions)


def test_cloudevent_headers_are_in_the_documented_order() -> None:
    built = h.cloudevent(id_=b"i", source=b"/s", type_=b"t", subject=b"AAPL", time=b"T")
    assert built == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"i"),
        ("ce_source", b"/s"),
        ("ce_type", b"t"),
        ("ce_subject", b"AAPL"),
        ("ce_time", b"T"),
        ("content-type", b"application/json"),
    ]
