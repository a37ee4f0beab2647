"""Cursor encoding: round trips, canonical form, and refusal of anything malformed."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwire.gateway import cursor

positions = st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=64)
tags = st.integers(min_value=0, max_value=2**32 - 1)


@given(tags, positions)
def test_round_trip(tag: int, vector: list[int]) -> None:
    assert cursor.decode(cursor.encode(tag, vector)) == (tag, vector)


@given(tags, positions)
def test_piecewise_encoding_is_the_same_cursor(tag: int, vector: list[int]) -> None:
    pieces = [cursor.varint(p) for p in vector]
    assert cursor.encode_pieces(cursor.header(tag, len(vector)), pieces) == cursor.encode(
        tag, vector
    )


@given(tags, positions)
def test_cursor_is_url_and_header_safe(tag: int, vector: list[int]) -> None:
    text = cursor.encode(tag, vector)
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@given(tags, positions, st.data())
def test_any_truncation_or_extension_is_refused(
    tag: int, vector: list[int], data: st.DataObject
) -> None:
    raw = base64.urlsafe_b64decode(cursor.encode(tag, vector) + "==")
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    extra = data.draw(st.binary(min_size=1, max_size=8))
    for broken in (raw[:cut], raw + extra):
        text = base64.urlsafe_b64encode(broken).rstrip(b"=").decode()
        with pytest.raises(cursor.MalformedCursorError):
            cursor.decode(text)


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        tag, vector = cursor.decode(text)
    except cursor.MalformedCursorError:
        return
    assert cursor.encode(tag, vector) == text


@given(st.binary(max_size=100))
def test_arbitrary_bytes_decode_only_if_canonical(raw: bytes) -> None:
    text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    try:
        tag, vector = cursor.decode(text)
    except cursor.MalformedCursorError:
        return
    assert cursor.encode(tag, vector) == text


@pytest.mark.parametrize(
    "text",
    ["", "!!!!", "AQ", "a" * 3000, "AQAAAAAB", "AgAAAAABAA", "AQAAAAACAA", "AQAAAAABgAA"],
)
def test_malformed_examples(text: str) -> None:
    with pytest.raises(cursor.MalformedCursorError):
        cursor.decode(text)


def test_tag_depends_on_generation_topics_and_partitions() -> None:
    base = cursor.topology_tag("1", [("ticker.updates", 6), ("ticker.bars", 6)])
    assert base == cursor.topology_tag("1", [("ticker.updates", 6), ("ticker.bars", 6)])
    assert base != cursor.topology_tag("2", [("ticker.updates", 6), ("ticker.bars", 6)])
    assert base != cursor.topology_tag("1", [("other.updates", 6), ("ticker.bars", 6)])
    assert base != cursor.topology_tag("1", [("ticker.updates", 12), ("ticker.bars", 6)])


def test_varint_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        cursor.varint(-1)
