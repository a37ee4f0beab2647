"""The processor's trace hook: the traceparent of the newest traced event of a symbol
goes on that symbol's records to the output topics named, and nowhere else."""

from __future__ import annotations

from typing import NamedTuple

from tickwire.events.headers import TRACEPARENT
from tickwire.kafka.batches import OutgoingRecord
from tickwire.observability import tracing


class Record(NamedTuple):
    key: bytes | None
    headers: list[tuple[str, bytes]]


def _tp(n: int) -> bytes:
    return f"00-{n:032x}-{n:016x}-01".encode()


def test_carry_puts_the_newest_trace_of_each_symbol_on_its_outputs() -> None:
    tracing.configure("test", None)
    base = [("ce_id", b"x"), ("tw_received_ns", b"1")]
    inputs = [
        [
            Record(b"AAPL", [*base, (TRACEPARENT, _tp(1))]),
            Record(b"MSFT", base),
            Record(b"AAPL", [*base, (TRACEPARENT, _tp(2))]),
            Record(b"IBM", [(TRACEPARENT, _tp(3)), *base]),  # not last: not tickwire's
        ]
    ]
    out = [
        OutgoingRecord("updates", b"AAPL", b"{}", [("tw_version", b"2")]),
        OutgoingRecord("bars", b"AAPL", b"{}", [("tw_version", b"5")]),
        OutgoingRecord("late", b"AAPL", b"{}", [("tw_version", b"1")]),
        OutgoingRecord("updates", b"MSFT", b"{}", [("tw_version", b"1")]),
        OutgoingRecord("updates", b"IBM", b"{}", [("tw_version", b"1")]),
    ]
    assert tracing.carry(inputs, out, ("updates", "bars")) == 2
    assert [r.headers[-1] for r in out] == [
        (TRACEPARENT, _tp(2)),
        (TRACEPARENT, _tp(2)),
        ("tw_version", b"1"),
        ("tw_version", b"1"),
        ("tw_version", b"1"),
    ]
