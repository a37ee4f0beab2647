"""Validation edge cases of the hot path (msgspec) decoders."""

from __future__ import annotations

import datetime as dt

import msgspec
import orjson
import pytest

from tickwire.events import types, wire
from tickwire.ingest.events import (
    BodyKind,
    EntryError,
    Event,
    MalformedBody,
    parse_batch,
    parse_one,
)

NOW = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
LIMITS = (NOW, dt.timedelta(seconds=5))
TIME = "2026-03-02T14:29:59.5Z"


def trade(**overrides: object) -> dict[str, object]:
    return {
        "type": "trade",
        "symbol": "AAPL",
        "price": 227.31,
        "size": 100,
        "time": TIME,
        **overrides,
    }


def quote(**overrides: object) -> dict[str, object]:
    return {
        "type": "quote",
        "symbol": "AAPL",
        "bid": 227.30,
        "bid_size": 300,
        "ask": 227.32,
        "ask_size": 200,
        "time": TIME,
        **overrides,
    }


def cloud(
    data: dict[str, object], type_: str = types.TRADE, **overrides: object
) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/feeds/a",
        "type": type_,
        "datacontenttype": "application/json",
        "data": data,
        **overrides,
    }


def one(doc: object, kind: BodyKind = BodyKind.JSON) -> Event:
    return parse_one(orjson.dumps(doc), kind, LIMITS)


def refused(doc: object, kind: BodyKind = BodyKind.JSON) -> EntryError:
    with pytest.raises(EntryError) as caught:
        one(doc, kind)
    return caught.value


def test_a_valid_trade_becomes_wire_data_in_utc() -> None:
    event = one(trade(time="2026-03-02T16:29:59+02:00", venue="XNAS", trade_id="T-1", id="p-1"))
    assert event.type == types.TRADE
    assert event.id == "p-1"
    assert event.data == wire.TradeData(
        symbol="AAPL",
        price=227.31,
        size=100.0,
        time=dt.datetime(2026, 3, 2, 14, 29, 59, tzinfo=dt.UTC),
        venue="XNAS",
        trade_id="T-1",
    )
    assert msgspec.json.encode(event.data).endswith(
        b'"time":"2026-03-02T14:29:59Z","venue":"XNAS","trade_id":"T-1"}'
    )


def test_a_valid_quote_and_a_locked_book() -> None:
    assert one(quote()).type == types.QUOTE
    assert one(quote(bid=10.0, ask=10.0)).data.symbol == "AAPL"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (trade(symbol="aapl"), "symbol"),
        (trade(symbol=""), "symbol"),
        (trade(symbol="A" * 25), "symbol"),
        (trade(symbol="AAPL\n"), "symbol"),
        (trade(symbol=".AAPL"), "symbol"),
        (trade(price=0), "price"),
        (trade(price=-1.5), "price"),
        (trade(price=1e16), "price"),
        (trade(price=True), "price"),
        (trade(price="227.31"), "price"),
        (trade(size=-1), "size"),
        (trade(time="2026-03-02T14:29:59"), "time"),
        (trade(time="yesterday"), "time"),
        (trade(time="2026-03-02T14:30:06Z"), "time"),
        (trade(venue="X NAS"), "venue"),
        (trade(id=""), "id"),
        (trade(id="a b"), "id"),
        (trade(extra=1), "extra"),
        (quote(bid=10.5, ask=10.0), "bid"),
        (quote(bid_size=-1), "bid_size"),
        (quote(ask=0), "ask"),
    ],
)
def test_invalid_fields_are_named(doc: dict[str, object], field: str) -> None:
    error = refused(doc)
    assert error.status == 422
    assert error.field == field


def test_missing_and_unknown_type() -> None:
    doc = trade()
    del doc["price"]
    assert refused(doc).message == "Object missing required field `price`"
    assert refused(trade(type="order")).field == "type"
    assert refused({"symbol": "AAPL"}).field == "type"


def test_a_trade_of_size_zero_is_refused_a_quote_side_of_size_zero_is_fine() -> None:
    # the documented rule (tickwire.events.rules): a trade moves shares, size > 0;
    # an empty side of the book is a quote size of 0
    for size in (0, 0.0, -0.0):
        assert refused(trade(size=size)).field == "size"
    empty_side = one(quote(bid_size=0, ask_size=0)).data
    assert (empty_side.bid_size, empty_side.ask_size) == (0, 0)  # type: ignore[union-attr]


def test_time_within_skew_is_fine() -> None:
    assert one(trade(time="2026-03-02T14:30:04Z")).data.symbol == "AAPL"


def test_a_body_that_is_not_utf8_is_a_body_error_naming_the_byte() -> None:
    body = orjson.dumps(trade(venue="XNAS")).replace(b"XNAS", b"XN\xffS")
    with pytest.raises(MalformedBody, match=r"not valid UTF-8: byte 0xff at offset \d+"):
        parse_one(body, BodyKind.JSON, LIMITS)
    for kind in (BodyKind.JSON, BodyKind.NDJSON):
        with pytest.raises(MalformedBody, match="not valid UTF-8"):
            parse_batch(b"[" + body + b"]" if kind is BodyKind.JSON else body, kind, LIMITS)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_is_a_body_error_in_every_shape(depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    # an extension attribute is skipped, not validated: the parser must still survive it
    data = {k: v for k, v in trade().items() if k != "type"}
    extension = orjson.dumps({**cloud(data), "ext": 0}).replace(b'"ext":0', b'"ext":' + deep)
    with pytest.raises(MalformedBody, match="JSON nested too deeply"):
        parse_one(extension, BodyKind.CLOUDEVENT, LIMITS)
    with pytest.raises(MalformedBody, match="JSON nested too deeply"):
        parse_batch(b"[" + extension + b"]", BodyKind.CLOUDEVENT_BATCH, LIMITS)
    with pytest.raises(MalformedBody, match="JSON nested too deeply"):
        parse_batch(b"[" + deep + b"]", BodyKind.JSON, LIMITS)
    [line] = parse_batch(deep + b"\n", BodyKind.NDJSON, LIMITS)
    assert isinstance(line, EntryError)
    assert line.status in (400, 422)


def test_huge_exponent_is_refused_not_infinite() -> None:
    body = orjson.dumps(trade(price=1.0)).replace(b"1.0", b"1e999")
    with pytest.raises(EntryError) as caught:
        parse_one(body, BodyKind.JSON, LIMITS)
    assert caught.value.field == "price"


def test_malformed_json_is_a_body_error() -> None:
    with pytest.raises(MalformedBody):
        parse_one(b"{not json", BodyKind.JSON, LIMITS)


def test_cloudevents_map_onto_the_same_data() -> None:
    data = {k: v for k, v in trade().items() if k != "type"}
    event = one(cloud(data, subject="AAPL", partitionkey="x"), BodyKind.CLOUDEVENT)
    assert event.id == "e-1"
    assert event.source == "/feeds/a"
    assert event.data == one(trade()).data
    assert refused(cloud(data, subject="MSFT"), BodyKind.CLOUDEVENT).field == "subject"
    assert refused(cloud(data, specversion="0.3"), BodyKind.CLOUDEVENT).field == "specversion"
    assert refused(cloud(data, type_=types.QUOTE), BodyKind.CLOUDEVENT).field is not None
    no_id = cloud(data)
    del no_id["id"]
    assert refused(no_id, BodyKind.CLOUDEVENT).message == "Object missing required field `id`"
    assert refused(cloud({**data, "foo": 1}), BodyKind.CLOUDEVENT).field == "data.foo"


def test_a_batch_reports_every_entry_in_order() -> None:
    body = orjson.dumps([trade(), quote(bid=2.0, ask=1.0), {"type": "nope"}, quote()])
    out = parse_batch(body, BodyKind.JSON, LIMITS)
    assert [type(x).__name__ for x in out] == ["Event", "EntryError", "EntryError", "Event"]
    assert isinstance(out[1], EntryError)
    assert out[1].field == "bid"


def test_ndjson_lines_blank_lines_crlf_and_bad_lines() -> None:
    lines = [orjson.dumps(trade(symbol=s)) for s in ("A", "B", "C")]
    body = lines[0] + b"\r\n\r\n" + lines[1] + b"\n" + lines[2] + b"\n"
    out = parse_batch(body, BodyKind.NDJSON, LIMITS)
    assert [e.data.symbol for e in out if isinstance(e, Event)] == ["A", "B", "C"]

    bad = parse_batch(lines[0] + b"\n{oops\n" + lines[1], BodyKind.NDJSON, LIMITS)
    assert isinstance(bad[1], EntryError)
    assert bad[1].status == 400
    assert isinstance(bad[0], Event)
    assert isinstance(bad[2], Event)


def test_an_ndjson_line_with_two_values_is_refused_not_split() -> None:
    two = orjson.dumps(trade(symbol="A")) + b"," + orjson.dumps(trade(symbol="B"))
    out = parse_batch(two + b"\n" + orjson.dumps(trade(symbol="C")), BodyKind.NDJSON, LIMITS)
    assert len(out) == 2
    assert isinstance(out[0], EntryError)
    assert isinstance(out[1], Event)


def test_batch_body_must_be_an_array() -> None:
    with pytest.raises(MalformedBody):
        parse_batch(orjson.dumps(trade()), BodyKind.JSON, LIMITS)
    with pytest.raises(MalformedBody):
        parse_batch(b"[1,", BodyKind.JSON, LIMITS)
    assert parse_batch(b"[]", BodyKind.JSON, LIMITS) == []


def test_cloudevents_batch() -> None:
    data = {k: v for k, v in quote().items() if k != "type"}
    out = parse_batch(
        orjson.dumps([cloud(data, types.QUOTE), cloud(data, types.TRADE)]),
        BodyKind.CLOUDEVENT_BATCH,
        LIMITS,
    )
    assert isinstance(out[0], Event)
    assert isinstance(out[1], EntryError)


def test_shapes_belong_to_their_endpoint() -> None:
    with pytest.raises(MalformedBody):
        parse_one(b"{}", BodyKind.NDJSON, LIMITS)
    with pytest.raises(MalformedBody):
        parse_batch(b"[]", BodyKind.CLOUDEVENT, LIMITS)


def test_a_time_that_overflows_in_utc_is_refused() -> None:
    error = refused(trade(time="0001-01-01T00:00:00+01:00"))
    assert (error.status, error.field) == (422, "time")
