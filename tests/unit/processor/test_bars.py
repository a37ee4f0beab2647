"""Interval names and window arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from tickwire.processor.bars import Interval, from_us, interval_us, to_us
from tickwire.processor.errors import ConfigurationError


@pytest.mark.parametrize(
    ("name", "micros"),
    [
        ("1s", 1_000_000),
        ("15s", 15_000_000),
        ("1m", 60_000_000),
        ("1h", 3_600_000_000),
        ("1d", 86_400_000_000),
    ],
)
def test_interval_lengths(name: str, micros: int) -> None:
    assert interval_us(name) == micros
    # 1d bars follow the exchange session (its regular hours), every other the grid
    assert Interval.parse(name) == Interval(name, micros, session=name == "1d")


@pytest.mark.parametrize("name", ["", "0s", "1", "s", "1.5s", "1w", "-1m"])
def test_bad_intervals_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError):
        interval_us(name)


def test_microseconds_are_exact_both_ways() -> None:
    t = dt.datetime(2026, 11, 27, 14, 30, 59, 999_999, tzinfo=dt.UTC)
    assert to_us(t) == 1_795_789_859_999_999
    assert from_us(to_us(t)) == t
