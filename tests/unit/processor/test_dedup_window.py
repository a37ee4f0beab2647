"""The id window (tickwire.processor.dedup) against its documented rule, written as a
plain list: it holds the last `size` applied ids, minus those whose event time fell
before the horizon floor (forgotten oldest applied first, stopping at the first newer
one), and it comes back from its stored form exactly as it was."""

from __future__ import annotations

import datetime as dt
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.processor.aggregator import representable_range
from tickwire.processor.bars import Interval, to_us
from tickwire.processor.dedup import IdWindow, id_key

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("remember"), INT64, st.integers(-(10**6), 10**6)),
        st.tuples(st.just("forget"), st.integers(-(10**6), 10**6)),
        st.tuples(st.just("restore")),
    ),
    max_size=300,
)


def model_remember(model: list[tuple[int, int]], key: int, time_us: int, size: int) -> None:
    model.append((key, time_us))
    del model[: max(0, len(model) - size)]


def model_forget(model: list[tuple[int, int]], floor_us: int) -> None:
    while model and model[0][1] < floor_us:
        model.pop(0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), STEPS)
def test_the_window_follows_its_documented_rule(size: int, steps: list[tuple[object, ...]]) -> None:
    window, model = IdWindow(), []
    for step in steps:
        if step[0] == "remember":
            _, key, time_us = step
            if key in window:  # the aggregator never remembers an id it holds
                assert any(k == key for k, _ in model)
                continue
            window.remember(key, time_us, size)  # type: ignore[arg-type]
            model_remember(model, key, time_us, size)  # type: ignore[arg-type]
        elif step[0] == "forget":
            window.forget_before(step[1])  # type: ignore[arg-type]
            model_forget(model, step[1])  # type: ignore[arg-type]
        else:
            window = IdWindow.unpacked(window.packed())
        assert window.entries() == model
        assert len(window) == len(model)
        assert window.keys == {k for k, _ in model}


def test_a_window_larger_than_the_size_shrinks_at_the_next_id() -> None:
    window = IdWindow([(n, n) for n in range(10)])  # e.g. stored with a larger window
    window.remember(99, 10, 4)
    assert window.entries() == [(7, 7), (8, 8), (9, 9), (99, 10)]


def test_forgetting_stops_at_the_first_newer_id() -> None:
    window = IdWindow([(1, 5), (2, 50), (3, 6)])  # a late id applied after a newer one
    window.forget_before(10)
    assert window.entries() == [(2, 50), (3, 6)]


def test_the_stored_form_is_big_endian_ids_then_times() -> None:
    window = IdWindow([(1, 10), (-5, 20), ((1 << 63) - 1, -3)])
    assert window.packed() == struct.pack(">3q3q", 1, -5, (1 << 63) - 1, 10, 20, -3)
    assert IdWindow.unpacked(window.packed()).entries() == window.entries()
    assert IdWindow.unpacked("").entries() == []


def test_a_window_that_forgot_most_of_its_ids_stores_only_the_rest() -> None:
    window = IdWindow()
    for n in range(5000):
        window.remember(n, n, 3)
    assert window.entries() == [(4997, 4997), (4998, 4998), (4999, 4999)]
    assert len(window.packed()) == 3 * 16
    assert len(window._ids) < 10  # the forgotten prefix does not pile up


def test_the_id_is_the_digest_of_source_and_id() -> None:
    # the stored windows hold these digests: they must not change between versions
    assert id_key(b"/bench", b"b1") == id_key(b"/bench", b"b1")
    assert id_key(None, b"x") == id_key(b"", b"x")
    assert id_key(b"/producers/test", b"e-1") == -4_176_281_228_780_372_201


EDGE = [Interval.parse(n) for n in ("1s", "1m", "7s", "1h", "1d")]
MIN_US = to_us(dt.datetime.min.replace(tzinfo=dt.UTC))
MAX_US = to_us(dt.datetime.max.replace(tzinfo=dt.UTC))


def representable(intervals: list[Interval], time_us: int) -> bool:
    """The rule as stated: every bar holding the time starts and ends within range."""
    for interval in intervals:
        start = time_us - time_us % interval.length_us
        if start < MIN_US or start + interval.length_us > MAX_US:
            return False
    return True


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(EDGE), min_size=1, max_size=3),
    st.one_of(
        st.integers(MIN_US, MIN_US + 10**11),
        st.integers(MAX_US - 10**11, MAX_US),
        st.integers(MIN_US, MAX_US),
    ),
)
def test_the_representable_range_is_the_rule(intervals: list[Interval], time_us: int) -> None:
    low, high = representable_range(intervals)
    assert (low <= time_us < high) == representable(intervals, time_us)
