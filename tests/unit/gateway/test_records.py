"""Records read from Kafka: anything that is not a forwardable ticker.updates /
ticker.bars record is refused with UnreadableRecordError (never another exception),
and the hub's drop rule compares bars per (symbol, interval, start)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.events import wire
from tickwire.gateway.connection import Connection, Interest, Tally
from tickwire.gateway.hub import BAR_STARTS_KEPT, Hub, Slot
from tickwire.gateway.updates import BAR, PARSE_ERRORS, QUOTE, UnreadableRecordError, parse

T0 = dt.datetime(2026, 11, 27, 14, 30, tzinfo=dt.UTC)
SLOTS = [Slot("u", 0, QUOTE), Slot("b", 0, BAR)]


def state_value(symbol: str = "AAPL", version: int = 1) -> bytes:
    return wire.ENCODER.encode(wire.TickerState(symbol=symbol, version=version, last=1.0))


def bar_value(
    symbol: str = "AAPL", *, second: int = 0, revision: int = 1, final: bool = False
) -> bytes:
    start = T0 + dt.timedelta(seconds=second)
    bar = wire.Bar(
        symbol=symbol,
        interval="1s",
        start=start,
        end=start + dt.timedelta(seconds=1),
        open=1,
        high=1,
        low=1,
        close=1,
        volume=revision,
        vwap=1,
        trades=revision,
        final=final,
        version=2 * revision + (1 if final else 0),
    )
    return wire.ENCODER.encode(bar)


def test_valid_records_parse() -> None:
    quote = parse(QUOTE, b"AAPL", state_value(version=7), [])
    assert (quote.kind, quote.symbol, quote.key, quote.version) == (QUOTE, "AAPL", "AAPL", 7)
    bar = parse(BAR, b"AAPL", bar_value(second=3, revision=2, final=True), [])
    start_us = int((T0 + dt.timedelta(seconds=3)).timestamp()) * 1_000_000
    assert (bar.key, bar.stream, bar.version, bar.final) == (
        f"AAPL|1s|{start_us}",
        "AAPL|1s",
        5,
        True,
    )


@pytest.mark.parametrize(
    ("kind", "key", "value", "headers"),
    [
        (QUOTE, b"AAPL", None, [("ce_subject", b"AAPL"), ("tw_version", b"3")]),  # tombstone
        (BAR, b"AAPL", None, []),
        (QUOTE, b"AAPL", b"not json", [("ce_subject", b"AAPL"), ("tw_version", b"3")]),
        (BAR, b"AAPL", b'{"symbol":"AAPL"}', []),
        (QUOTE, b"MSFT", state_value("AAPL"), []),  # key is not the symbol
        (QUOTE, b"AAPL", state_value("AAPL", 2**70), []),  # version does not fit
        (QUOTE, b"AAPL", state_value("AAPL", -1), []),
        (QUOTE, b"AAPL", b'{"symbol":"AAPL","version":1,"pad":"' + b"x" * 70_000 + b'"}', []),
        (QUOTE, b"", b'{"symbol":"","version":1}', []),
        (QUOTE, b"AAPL", b"[" * 100_000, []),  # nesting far beyond any decoder's stack
        (QUOTE, b"AAPL", b"\xff\xfe", [("tw_received_ns", b"9" * 5000)]),
    ],
)
def test_unreadable_records_are_refused(
    kind: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    with pytest.raises(UnreadableRecordError):
        parse(kind, key, value, headers)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([QUOTE, BAR]),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(
        st.none(),
        st.binary(max_size=300),
        st.sampled_from([state_value(), bar_value()]).map(lambda v: v[:-1]),
    ),
    st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=5),
)
def test_any_record_parses_or_is_refused(
    kind: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    with contextlib.suppress(PARSE_ERRORS):
        parse(kind, key, value, headers)


def subscribed_hub(bars: frozenset[str], bar_horizon_s: float = 330.0) -> tuple[Hub, Connection]:
    hub = Hub(SLOTS, tag=1, buffer_capacity=1000, bar_horizon_s=bar_horizon_s)
    hub.warmed_up()
    conn = Connection(ip="t", subject=None)
    hub.register(conn, Interest(frozenset({"AAPL"}), bar_intervals=bars), [])
    return hub, conn


async def test_an_earlier_bar_updated_late_does_not_hide_the_next_final() -> None:
    # the issue's case: an in-grace trade revises bar 0 after bar 1 formed; bar 1's
    # final must still pass (versions are compared per bar, not per symbol|interval)
    hub, conn = subscribed_hub(frozenset({"1s"}))
    for offset, (second, revision, final) in enumerate(
        [
            (0, 1, False),
            (1, 1, False),
            (0, 2, False),
            (0, 2, True),
            (1, 1, True),
        ]
    ):
        value = bar_value(second=second, revision=revision, final=final)
        hub.apply(1, offset, parse(BAR, b"AAPL", value, []), value)
    _, updates, _ = conn.take(0, Tally())
    finals = sorted((u.key, u.version) for u in updates if u.final)
    assert [v for _, v in finals] == [5, 3]  # both finals delivered, nothing conflated
    assert len(updates) == 2  # forming states were replaced by the finals of their bars


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 6), st.booleans()),
        max_size=60,
    )
)
def test_hub_drop_rule_is_version_per_bar(states: list[tuple[int, int, bool]]) -> None:
    """Against the documented rule (version = 2*revision + final, compared per
    (symbol, interval, start)): a state passes exactly when its version beats every
    earlier state of the same bar."""

    async def main() -> None:
        hub, conn = subscribed_hub(frozenset({"1s"}))
        held: dict[int, int] = {}
        for offset, (second, revision, final) in enumerate(states):
            version = 2 * revision + (1 if final else 0)
            value = bar_value(second=second, revision=revision, final=final)
            before = len(hub.buffers[1].items)
            hub.apply(1, offset, parse(BAR, b"AAPL", value, []), value)
            accepted = len(hub.buffers[1].items) > before
            assert accepted == (version > held.get(second, -1)), (second, version, held)
            if accepted:
                held[second] = version
        # the connection holds the newest accepted state of every bar, each once
        _, updates, _ = conn.take(0, Tally())
        assert sorted(u.version for u in updates) == sorted(held.values())

    asyncio.run(main())


@pytest.mark.parametrize("horizon_s", [10, 60])
async def test_bar_state_is_bounded_by_the_horizon_and_older_starts_are_stale(
    horizon_s: int,
) -> None:
    """The documented rule (hub._newer_bar, gateway README): the version of every start
    within the horizon behind the newest is kept, and at least BAR_STARTS_KEPT; a bar
    revised within them (a correction) is forwarded, one older than both is stale."""
    hub, conn = subscribed_hub(frozenset({"1s"}), bar_horizon_s=horizon_s)
    for second in range(100):
        value = bar_value(second=second, final=True)
        hub.apply(1, second, parse(BAR, b"AAPL", value, []), value)
    kept = max(BAR_STARTS_KEPT, horizon_s + 1)  # starts 99 - horizon .. 99
    assert sorted(hub.bar_versions["AAPL|1s"]) == sorted(
        int((T0 + dt.timedelta(seconds=s)).timestamp() * 1e6) for s in range(100 - kept, 100)
    )
    conn.take(0, Tally())
    offset = 100
    for second, forwarded in ((100 - kept, True), (100 - kept - 1, False), (3, False)):
        revised = bar_value(second=second, revision=9, final=True)
        before = len(hub.buffers[1].items)
        hub.apply(1, offset, parse(BAR, b"AAPL", revised, []), revised)
        offset += 1
        assert (len(hub.buffers[1].items) > before) == forwarded, second
    _, updates, _ = conn.take(0, Tally())
    assert [u.version for u in updates] == [2 * 9 + 1]


@pytest.mark.parametrize("bars", [frozenset(), frozenset({"1s"})])
async def test_bars_selection_is_honoured(bars: frozenset[str]) -> None:
    hub, conn = subscribed_hub(bars)
    for offset, interval in enumerate(["1s", "1m"]):
        value = bar_value().replace(b'"1s"', b'"' + interval.encode() + b'"')
        hub.apply(1, offset, parse(BAR, b"AAPL", value, []), value)
    _, updates, _ = conn.take(0, Tally())
    assert [u.interval for u in updates] == sorted(bars)


def test_a_quote_tombstone_through_the_hub_is_never_applied() -> None:
    # the reader's path: parse refuses, the hub never sees it (see reader.apply)
    with pytest.raises(UnreadableRecordError):
        parse(QUOTE, b"AAPL", None, [("ce_subject", b"AAPL"), ("tw_version", b"9")])
