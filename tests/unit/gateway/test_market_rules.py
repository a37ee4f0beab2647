"""The documented rules of delayed entitlements (the `delay` claim), of `since`, and of
a record's event time for delayed release."""

from __future__ import annotations

import datetime as dt

import pytest

from tickwire.events import wire
from tickwire.gateway.auth import Delays
from tickwire.gateway.connection import Interest
from tickwire.gateway.delay import event_time
from tickwire.gateway.errors import BadRequestError
from tickwire.gateway.replay import parse_since
from tickwire.gateway.resume import ReplayGate, ReplaysBusyError
from tickwire.gateway.updates import BAR, QUOTE

NOW = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
T1430 = dt.datetime(2026, 12, 1, 14, 30, tzinfo=dt.UTC)


def test_exact_symbol_beats_longer_prefix_beats_shorter_beats_default() -> None:
    delays = Delays.from_claim({"*": 900, "BR*": 60, "BRK*": 30, "BRK.B": 0})
    assert delays.for_symbol("BRK.B") == 0
    assert delays.for_symbol("BRK.A") == 30
    assert delays.for_symbol("BRZ") == 60
    assert delays.for_symbol("AAPL") == 900
    assert Delays.from_claim({"MSFT": 5}).for_symbol("AAPL") == 0
    assert not Delays.from_claim(None)
    assert not Delays.from_claim({"*": 0})


@pytest.mark.parametrize(
    "claim",
    [[900], {"*": "900"}, {"*": True}, {"*": -1}, {"*": 86_401}, {"A*B": 1}, {"": 1}, {"**": 1}],
)
def test_malformed_delay_claims_are_refused(claim: object) -> None:
    with pytest.raises(ValueError, match="delay"):
        Delays.from_claim(claim)


def test_one_stream_has_one_delay() -> None:
    delays = Delays.from_claim({"*": 900, "MSFT": 0, "BRK*": 60})
    assert delays.for_interest(Interest(frozenset({"AAPL", "GOOG"}))) == 900
    assert delays.for_interest(Interest(frozenset({"MSFT"}))) == 0
    assert delays.for_interest(Interest(prefixes=("BRK.",))) == 60
    with pytest.raises(BadRequestError, match=r"MSFT 0 s, AAPL 900 s"):
        delays.for_interest(Interest(frozenset({"AAPL", "MSFT"})))
    with pytest.raises(BadRequestError, match="mixes"):
        delays.for_interest(Interest(prefixes=("M",)))  # M* holds MSFT (0) and others (900)
    with pytest.raises(BadRequestError, match="mixes"):
        delays.for_interest(Interest(everything=True))
    assert Delays.from_claim({"*": 5}).for_interest(Interest(everything=True)) == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T14:30:00Z", T1430),
        ("2026-12-01t14:30:00.5z", T1430.replace(microsecond=500_000)),
        ("2026-12-01T09:30:00-05:00", T1430),
        ("2026-12-01 14:30:00.123456789+00:00", T1430.replace(microsecond=123_456)),
    ],
)  # fmt: skip
def test_since_is_rfc3339_with_an_offset(text: str, expected: dt.datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-12-01",
        "2026-12-01T14:30:00",
        "2026-12-01T14:30Z",
        "2026-02-30T14:30:00Z",
        "1733063400",
        "2026-12-02T15:00:06Z",  # in the future (5 s of clock skew allowed)
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    ],
)
def test_bad_since_is_a_clear_400(text: str) -> None:
    with pytest.raises(BadRequestError, match="since"):
        parse_since(text, now=NOW)


def test_event_time_of_quotes_and_bars() -> None:
    at = NOW - dt.timedelta(seconds=10)
    quote = wire.ENCODER.encode(wire.TickerState(symbol="A", version=1, time=at, received_ns=1))
    assert event_time(QUOTE, quote, 0.0) == at.timestamp()
    received = wire.ENCODER.encode(wire.TickerState(symbol="A", version=1, received_ns=5 * 10**9))
    assert event_time(QUOTE, received, 0.0) == 5.0
    bare = wire.ENCODER.encode(wire.TickerState(symbol="A", version=1))
    assert event_time(QUOTE, bare, 123.0) == 123.0  # tells nothing: held from now

    def bar(received_ns: int | None) -> bytes:
        return wire.ENCODER.encode(
            wire.Bar(
                symbol="A",
                interval="1m",
                start=NOW - dt.timedelta(minutes=1),
                end=NOW,
                open=1,
                high=1,
                low=1,
                close=1,
                volume=1,
                vwap=1,
                trades=1,
                received_ns=received_ns,
            )
        )

    earlier = int((NOW.timestamp() - 30) * 1e9)
    assert event_time(BAR, bar(earlier), 0.0) == pytest.approx(NOW.timestamp() - 30)
    assert event_time(BAR, bar(None), 0.0) == NOW.timestamp()
    assert event_time(BAR, bar(int((NOW.timestamp() + 5) * 1e9)), 0.0) == NOW.timestamp()


def test_the_replay_gate_bounds_replays_in_progress() -> None:
    gate = ReplayGate(2)
    with gate.slot(), gate.slot():
        with pytest.raises(ReplaysBusyError, match="2 replays are in progress") as busy:
            gate.slot().__enter__()
        assert busy.value.status == 503
        assert busy.value.headers() == {"Retry-After": "1"}
    assert gate.active == 0
    with pytest.raises(BadRequestError), gate.slot():
        raise BadRequestError("a refusal inside the slot")
    assert gate.active == 0


def test_a_claim_holds_at_most_one_slot_until_released() -> None:
    gate = ReplayGate(1)
    first, second = gate.claim(), gate.claim()
    first.take()
    first.take()  # already held: still one slot
    assert gate.active == 1
    assert not second.try_take()
    with pytest.raises(ReplaysBusyError) as busy:
        second.take()
    assert busy.value.headers() == {"Retry-After": "1"}
    assert busy.value.code == "replays_busy"
    first.release()
    first.release()
    with second:
        assert second.try_take()
        assert gate.active == 1
    assert gate.active == 0
