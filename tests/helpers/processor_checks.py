"""Comparisons of the processor's MongoDB documents with the reference model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.helpers.processor_reference import Expected
from tickwire.mongo import documents

_DEFAULTS = {"volume": 0.0, "trades": 0}


def _as_time(value: Any) -> Any:
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and actual is not None:
        return bool(actual == pytest.approx(expected, rel=1e-9, abs=1e-9))
    if isinstance(expected, dt.datetime):
        return bool(_as_time(actual) == expected)
    return bool(actual == expected)


def quote_differences(docs: list[dict[str, Any]], expected: Expected) -> list[str]:
    """Every field of every quotes document that differs from the reference."""
    problems: list[str] = []
    by_symbol = {d["_id"]: d for d in docs}
    if set(by_symbol) != set(expected.quotes):
        problems.append(f"symbols differ: {sorted(set(by_symbol) ^ set(expected.quotes))}")
    for symbol, want in expected.quotes.items():
        got = by_symbol.get(symbol, {})
        for key, value in want.items():
            if value is None and key not in got:
                continue
            actual = got.get(key, _DEFAULTS.get(key))
            if not _same(actual, value):
                problems.append(f"{symbol}.{key}: got {actual!r}, want {value!r}")
    return problems


def _bars(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every bar as a flat mapping: `bars` buckets read through the documents codec (so
    a bar that would not decode is missing), flat mappings as they are."""
    flat: list[dict[str, Any]] = []
    for doc in docs:
        if documents.is_bucket(doc):
            flat += [documents.encode_bar(bar) for bar in documents.decode_bucket(doc)]
        else:
            flat.append(doc)
    return flat


def bar_differences(docs: list[dict[str, Any]], expected: Expected) -> list[str]:
    """Every field of every bar that differs from the reference; `docs` are the `bars`
    collection's documents (buckets) or bars as flat mappings."""
    problems: list[str] = []
    docs = _bars(docs)
    by_key = {(d["symbol"], d["interval"], _as_time(d["start"])): d for d in docs}
    if len(by_key) != len(docs):
        problems.append("duplicate bars")
    if set(by_key) != set(expected.bars):
        diff = sorted(set(by_key) ^ set(expected.bars))[:10]
        problems.append(f"bar keys differ ({len(by_key)} vs {len(expected.bars)}): {diff}")
    for key, want in expected.bars.items():
        got = by_key.get(key, {})
        for field, value in want.items():
            if not _same(got.get(field), value):
                problems.append(f"{key}.{field}: got {got.get(field)!r}, want {value!r}")
    return problems


def forming_differences(docs: list[dict[str, Any]], expected: Expected) -> list[str]:
    """The forming bars kept in each quotes document against the reference's open bars."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    got: dict[tuple[str, str, dt.datetime], dict[str, Any]] = {}
    for doc in docs:
        for interval, bars in doc.get("forming", {}).items():
            for bar in bars:
                start = epoch + dt.timedelta(microseconds=bar["start_us"])
                got[(doc["_id"], interval, start)] = bar
    want = {k: v for k, v in expected.bars.items() if not v["final"]}
    problems = []
    if set(got) != set(want):
        problems.append(f"forming bars differ: {sorted(set(got) ^ set(want))[:10]}")
    for key, bar in want.items():
        have = got.get(key, {})
        for field in ("open", "high", "low", "close", "volume", "trades"):
            if not _same(have.get(field), bar[field]):
                problems.append(f"{key}.{field}: got {have.get(field)!r}, want {bar[field]!r}")
    return problems
