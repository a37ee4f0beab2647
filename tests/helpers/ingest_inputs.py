"""Hypothesis strategies for posted event data: mostly valid, often at an edge, so that
both "accepted" and "refused" are common answers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def mostly(valid: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values seven times in eight."""
    return st.integers(0, 7).flatmap(lambda n: edge if n == 0 else valid)


symbols = mostly(
    st.from_regex(r"\A[A-Z0-9][A-Z0-9._/-]{0,23}\Z"),
    st.sampled_from(["A" * 25, "aapl", "", ".A", "AAPL\n", "AA PL", "ÅPL", "A\u0000", "-X"]),
)
numbers = mostly(
    st.one_of(st.floats(min_value=1e-6, max_value=1e6), st.integers(1, 10**6)),
    st.one_of(
        st.sampled_from([0, 0.0, -0.0, -1, 1e15, 1e15 + 1, 5e-324, True, "1", None]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(10**16), max_value=10**16),
    ),
)
times = mostly(
    st.sampled_from(
        [
            "2026-03-02T14:29:59Z",
            "2026-03-02T14:29:59.123456Z",
            "2026-03-02T16:29:59+02:00",
            "2020-01-01T00:00:00.5-05:00",
        ]
    ),
    st.sampled_from(
        [
            "2026-03-02T14:29:59",
            "2026-03-02",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "not a time",
            1700000000,
            None,
        ]
    ),
)
texts = mostly(
    st.from_regex(r"\A[A-Za-z0-9._-]{1,20}\Z"),
    st.one_of(
        st.none(),
        st.sampled_from(["", "a b", "é", "~" * 65, "k" * 129, "x\n"]),
        st.text(max_size=10),
    ),
)


def _maybe_broken(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    if draw(st.integers(0, 19)) == 0:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    if draw(st.integers(0, 19)) == 0:
        doc["extra"] = 1
    return doc


@st.composite
def trade_data(draw: st.DrawFn, when: st.SearchStrategy[Any] = times) -> dict[str, Any]:
    """A trade's `data` (no envelope fields)."""
    doc: dict[str, Any] = {
        "symbol": draw(symbols),
        "price": draw(numbers),
        "size": draw(numbers),
        "time": draw(when),
    }
    for field in ("venue", "trade_id"):
        if draw(st.booleans()):
            doc[field] = draw(texts)
    return _maybe_broken(draw, doc)


@st.composite
def quote_data(draw: st.DrawFn, when: st.SearchStrategy[Any] = times) -> dict[str, Any]:
    """A quote's `data` (no envelope fields)."""
    doc: dict[str, Any] = {
        "symbol": draw(symbols),
        "bid": draw(numbers),
        "bid_size": draw(numbers),
        "ask": draw(numbers),
        "ask_size": draw(numbers),
        "time": draw(when),
    }
    return _maybe_broken(draw, doc)
