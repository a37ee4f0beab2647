"""WebSocket framing: a backlog goes out as JSON arrays no longer than the limit, each a
whole JSON document, which together hold every event once, in order."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tickwire.gateway.ws import messages

events = st.lists(
    st.builds(
        lambda n, pad: orjson.dumps({"event": "quote", "id": str(n), "data": {"pad": "x" * pad}}),
        st.integers(0, 10**6),
        st.integers(0, 900),
    ),
    max_size=60,
)


@given(events, st.integers(1024, 4096))
def test_messages_are_bounded_whole_and_in_order(backlog: list[bytes], limit: int) -> None:
    sent = messages(backlog, limit)
    assert all(len(m) <= limit for m in sent)  # every event here fits the limit
    decoded = [orjson.loads(m) for m in sent]
    assert all(isinstance(batch, list) and batch for batch in decoded)
    assert [e for batch in decoded for e in batch] == [orjson.loads(e) for e in backlog]
    # greedy: no two neighbours would have fitted in one message
    for first, second in itertools.pairwise(sent):
        assert len(first) + len(second) - 1 > limit


def test_an_event_over_the_limit_goes_alone() -> None:
    big = orjson.dumps({"event": "quote", "data": "y" * 3000})
    small = b'{"event":"quote"}'
    assert messages([small, big, small], 1024) == [b"[" + small + b"]", b"[" + big + b"]",
                                                     b"[" + small + b"]"]  # fmt: skip
    assert messages([], 1024) == []
