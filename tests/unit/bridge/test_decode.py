"""Decoding AMQP messages: the three shapes, where the event id comes from, and the
reason each refusal carries. References are the rules as the bridge's README states
them (ingest's rules, the CloudEvents AMQP binding), not the code's output."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest

from tickwire.bridge.decode import Reason, Refused, decode

NOW = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
SKEW = dt.timedelta(seconds=5)
TRADE = {"symbol": "AAPL", "price": 227.31, "size": 100, "time": "2026-03-02T15:29:59+01:00"}
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _decode(
    body: bytes,
    content_type: str | None = "application/json",
    headers: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> Any:
    return decode(
        body,
        content_type=content_type,
        headers=headers or {},
        message_id=message_id,
        now=NOW,
        max_future_skew=SKEW,
    )


def _binary(prefix: str = "cloudEvents:", **extra: str) -> dict[str, Any]:
    attrs = {"specversion": "1.0", "type": "io.tickwire.trade.v1", "id": "e-1", "source": "/f"}
    return {f"{prefix}{k}": v for k, v in {**attrs, **extra}.items()}


@pytest.mark.parametrize("prefix", ["cloudEvents:", "cloudEvents_"])
def test_binary_cloudevent_takes_attributes_from_properties(prefix: str) -> None:
    event = _decode(json.dumps(TRADE).encode(), headers=_binary(prefix, subject="AAPL"))
    assert (event.type, event.id, event.source) == ("io.tickwire.trade.v1", "e-1", "/f")
    assert event.data.time == dt.datetime(2026, 3, 2, 14, 29, 59, tzinfo=dt.UTC)
    assert event.data.time.tzinfo is dt.UTC


def test_binary_header_values_may_arrive_as_bytes() -> None:
    headers = {k: v.encode() for k, v in _binary().items()}
    assert _decode(json.dumps(TRADE).encode(), headers=headers).id == "e-1"


def test_structured_cloudevent() -> None:
    body = {
        "specversion": "1.0", "type": "io.tickwire.quote.v1", "id": "q-1", "source": "/s",
        "subject": "AAPL", "extension": "ignored",
        "data": {"symbol": "AAPL", "bid": 1, "bid_size": 0, "ask": 1, "ask_size": 5,
                 "time": "2026-03-02T14:29:00Z"},
    }  # fmt: skip
    event = _decode(json.dumps(body).encode(), "application/cloudevents+json; charset=utf-8")
    assert (event.type, event.id, event.source) == ("io.tickwire.quote.v1", "q-1", "/s")
    assert (event.data.bid, event.data.ask_size) == (1, 5)


def test_plain_json_is_ingests_single_event_body() -> None:
    body = json.dumps({"type": "trade", "id": "p-1", "source": "/p", **TRADE}).encode()
    event = _decode(body, content_type=None)
    assert (event.type, event.id, event.source, event.data.size) == (
        "io.tickwire.trade.v1", "p-1", "/p", 100,
    )  # fmt: skip


def test_the_id_falls_back_to_the_message_id_then_to_a_digest_of_the_body() -> None:
    body = json.dumps({"type": "trade", **TRADE}).encode()
    assert _decode(body, message_id="m-7").id == "m-7"
    assert _decode(body).id == "amqp-sha256-" + hashlib.sha256(body).hexdigest()[:32]
    assert _decode(body).source is None  # the queue's default source is the caller's


def test_traceparent_kept_when_valid_dropped_when_not() -> None:
    body = json.dumps(TRADE).encode()
    assert _decode(body, headers={**_binary(), "traceparent": TRACE}).traceparent == TRACE
    assert _decode(body, headers={**_binary(), "traceparent": "garbage"}).traceparent is None


REFUSED = [
    (b'{"type": "trade"', "application/json", {}, Reason.MALFORMED),  # truncated
    (b'{"type": "trade", "symbol": "\xff"}', None, {}, Reason.MALFORMED),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, {}, Reason.MALFORMED),
    (b"[1, 2]", "application/json", {}, Reason.INVALID),  # JSON, but not an event
    (b'{"type": "split", "symbol": "AAPL"}', None, {}, Reason.UNKNOWN_TYPE),
    (json.dumps({"type": "trade", **TRADE, "size": 0}).encode(), None, {}, Reason.INVALID),
    (json.dumps({"type": "trade", **TRADE, "extra": 1}).encode(), None, {}, Reason.INVALID),
    (json.dumps({"type": "trade", "id": " bad id", **TRADE}).encode(), None, {}, Reason.INVALID),
    (json.dumps({"type": "trade", "id": 5, **TRADE}).encode(), None, {}, Reason.INVALID),
    (json.dumps({**TRADE, "time": "2026-03-02T14:30:06Z"}).encode(), None,
     _binary(), Reason.INVALID),  # more than the skew ahead
    (json.dumps(TRADE).encode(), None, _binary(subject="MSFT"), Reason.INVALID),
    (json.dumps(TRADE).encode(), None, _binary(specversion="0.3"), Reason.INVALID),
    (json.dumps(TRADE).encode(), None, _binary(type="io.example.v1"), Reason.UNKNOWN_TYPE),
    (json.dumps(TRADE).encode(), "application/xml", _binary(), Reason.UNSUPPORTED),
    (json.dumps(TRADE).encode(), "text/plain", {}, Reason.UNSUPPORTED),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "headers", "reason"), REFUSED)
def test_refusals_carry_their_reason(
    body: bytes, content_type: str | None, headers: dict[str, Any], reason: Reason
) -> None:
    with pytest.raises(Refused) as refused:
        _decode(body, content_type, headers)
    assert refused.value.reason is reason
    assert refused.value.detail
