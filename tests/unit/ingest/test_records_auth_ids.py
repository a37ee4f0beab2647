"""Record building, ids, partitioning, API keys, scopes, the token bucket and the keys
CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from aiokafka.partitioner import DefaultPartitioner
from ulid import ULID

from tickwire.events import headers as h
from tickwire.events import ids, types, wire
from tickwire.events.partitioner import partition_for
from tickwire.events.records import build_records
from tickwire.ingest import keys
from tickwire.ingest.auth import Authenticator, TokenBucket, digest
from tickwire.ingest.events import Event
from tickwire.ingest.settings import IngestSettings

TIME = dt.datetime(2026, 3, 2, 14, 30, 0, 125000, tzinfo=dt.UTC)


def test_records_follow_the_cloudevents_binary_binding() -> None:
    trade = Event(
        types.TRADE, "t-1", None, wire.TradeData(symbol="AAPL", price=1.5, size=2.0, time=TIME)
    )
    quote = Event(
        types.QUOTE,
        None,
        "/feeds/q",
        wire.QuoteData(symbol="MSFT", bid=1, bid_size=2, ask=3, ask_size=4, time=TIME),
    )
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    records, event_ids = build_records(
        [trade, quote], default_source="/producers/k", received_ns=123, traceparent=tp
    )
    assert event_ids[0] == "t-1"
    ULID.from_str(event_ids[1])
    (key0, value0, headers0), (key1, value1, headers1) = records
    assert key0 == b"AAPL"
    assert (
        value0 == b'{"symbol":"AAPL","price":1.5,"size":2.0,"time":"2026-03-02T14:30:00.125000Z"}'
    )
    assert wire.TRADE_DECODER.decode(value0) == trade.data
    assert headers0 == [
        (h.CE_SPECVERSION, b"1.0"),
        (h.CE_ID, b"t-1"),
        (h.CE_SOURCE, b"/producers/k"),
        (h.CE_TYPE, types.TRADE.encode()),
        (h.CE_SUBJECT, b"AAPL"),
        (h.CE_TIME, b"2026-03-02T14:30:00.125000Z"),
        (h.CONTENT_TYPE, b"application/json"),
        (h.RECEIVED_NS, b"123"),
        (h.TRACEPARENT, tp.encode()),
    ]
    assert key1 == b"MSFT"
    assert wire.QUOTE_DECODER.decode(value1) == quote.data
    found = h.header_map(headers1)
    assert found[h.CE_SOURCE] == b"/feeds/q"
    assert found[h.CE_TYPE] == types.QUOTE.encode()
    assert found[h.CE_ID] == event_ids[1].encode()

    _, _, plain = build_records([trade], default_source="/p", received_ns=1, traceparent=None)[0][0]
    assert h.TRACEPARENT not in h.header_map(plain)


def test_ulids_are_unique_increasing_and_valid() -> None:
    run = ids.ulids(5000)
    assert len(set(run)) == 5000
    assert run == sorted(run)
    parsed = [ULID.from_str(u) for u in run]
    assert [int(p) for p in parsed] == sorted(int(p) for p in parsed)
    assert abs(parsed[0].timestamp - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert len(ids.ulids(1)) == 1


@pytest.mark.parametrize("count", [1, 3, 6, 12])
def test_partitions_match_the_java_clients_partitioner(count: int) -> None:
    partitions = list(range(count))
    for symbol in ["AAPL", "MSFT", "BTC-USD", "EUR/USD", "BRK.B", "", "Z" * 24]:
        key = symbol.encode()
        assert partition_for(key, count) == DefaultPartitioner()(key, partitions, partitions)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=20)
    assert bucket.take(20) == 0
    wait = bucket.take(5)
    assert 0.4 < wait <= 0.5
    bucket.updated -= 1.0  # a second passes
    assert bucket.take(5) == 0
    assert bucket.take(21) == float("inf")
    assert TokenBucket(rate=0, burst=1).take(10**6) == 0


def _settings(**values: object) -> IngestSettings:
    return IngestSettings(**values)  # type: ignore[arg-type]


def test_keys_scopes_and_headers() -> None:
    key = keys.new_key()
    document = {
        "keys": [
            {
                "key_id": "feed",
                "sha256": digest(key),
                "scopes": {"types": ["trade"], "symbols": ["A*", "BTC-???"]},
                "rate": 5,
            }
        ]
    }
    auth = Authenticator(_settings(ingest_keys=json.dumps(document)))
    principal = auth.principal({"x-api-key": key})
    assert principal is not None
    assert principal.key_id == "feed"
    assert auth.principal({"authorization": f"Bearer {key}"}) is principal
    assert auth.principal({"authorization": f"Basic {key}"}) is None
    assert auth.principal({"x-api-key": key + "x"}) is None
    assert auth.principal({}) is None
    assert principal.may_publish(types.TRADE, "AAPL")
    assert principal.may_publish(types.TRADE, "BTC-USD")
    assert not principal.may_publish(types.TRADE, "BTC-USDT")
    assert not principal.may_publish(types.TRADE, "aapl")
    assert not principal.may_publish(types.QUOTE, "AAPL")
    assert principal.bucket.burst == 10_000  # max(rate, the largest batch)


def test_auth_on_needs_keys_and_off_is_anonymous(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="TICKWIRE_INGEST_KEYS"):
        Authenticator(_settings())
    off = Authenticator(_settings(ingest_auth="off"))
    assert "AUTHENTICATION IS OFF" in caplog.text
    anyone = off.principal({})
    assert anyone is not None
    assert anyone.may_publish(types.QUOTE, "ANY")


def test_keys_file_is_read(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "keys.json"  # type: ignore[operator]
    path.write_text(json.dumps({"keys": [{"key_id": "a", "sha256": digest("k")}]}))
    assert Authenticator(_settings(ingest_keys_file=path)).principal({"x-api-key": "k"}) is not None


def test_keys_cli_prints_a_key_and_its_hashed_entry(capsys: pytest.CaptureFixture[str]) -> None:
    keys.main(
        ["new", "--key-id", "feed-b", "--types", "quote", "--symbols", "A*,B*", "--rate", "100"]
    )
    out = capsys.readouterr().out
    key = out.split("\n")[1]
    assert key.startswith("tw_")
    entry = json.loads(out[out.index("{") :])
    assert entry == {
        "key_id": "feed-b",
        "sha256": digest(key),
        "scopes": {"types": ["quote"], "symbols": ["A*", "B*"]},
        "rate": 100.0,
    }
    assert key not in json.dumps(entry)
