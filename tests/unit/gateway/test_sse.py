"""SSE framing per the WHATWG event-stream format."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.gateway import parse_sse
from tickwire.gateway import sse


def test_single_line_event() -> None:
    assert sse.frame(b"quote", b"abc", b'{"a":1}') == b'event: quote\nid: abc\ndata: {"a":1}\n\n'


def test_multi_line_data_is_split_over_data_lines() -> None:
    assert sse.frame(b"x", b"1", b"a\nb\r\nc\rd") == (
        b"event: x\nid: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    )


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_any_data_round_trips_through_a_parser(text: str) -> None:
    raw = sse.frame(b"quote", b"id1", text.encode())
    assert raw.endswith(b"\n\n")
    block = raw.decode()[:-2].split("\n")
    fields, comment = parse_sse(block)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert not comment
    assert fields == {"event": "quote", "id": "id1", "data": expected}


def test_comment_and_retry() -> None:
    assert sse.comment(b"hb") == b": hb\n\n"
    assert sse.retry(1500) == b"retry: 1500\n\n"


def test_chunk_framing() -> None:
    assert b"".join(sse.chunk(b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"


def test_an_update_carries_its_frame_as_a_ready_http_chunk() -> None:
    from tickwire.gateway.updates import QUOTE, Parsed, Update

    value = b'{"symbol":"A","version":3}'
    update = Update(Parsed(QUOTE, "A", "A", "", 3, 0), 0, 9, 1, "CUR", value)
    assert update.frame == sse.frame(b"quote", b"CUR", value)
    assert update.chunk == b"".join(sse.chunk(update.frame))
    assert update.ws == b'{"event":"quote","id":"CUR","data":' + value + b"}"
