"""The gateway benchmark's inputs: the records it feeds are real ticker.updates records,
both servers get the same watchlists, and Centrifugo reads the same records unchanged."""

from __future__ import annotations

from bench.centrifugo.config import config
from bench.loadgen.feeder import Feeder, subscribers, subscription, symbols
from tickwire.events import headers as h
from tickwire.events.wire import STATE_DECODER


def test_symbols_are_distinct_three_letter_codes() -> None:
    names = symbols(500)
    assert len(set(names)) == 500
    assert names[:3] == ["AAA", "AAB", "AAC"]
    assert all(len(s) == 3 and s.isalpha() and s.isupper() for s in names)


def test_every_symbol_has_the_same_number_of_watchers() -> None:
    names = symbols(500)
    counts = subscribers(names, 1000, 20)
    assert set(counts.values()) == {40}
    assert len(set(subscription(names, 7, 20))) == 20


async def test_fed_records_are_ticker_updates_with_growing_versions() -> None:
    feeder = Feeder("127.0.0.1:1", "t", symbols(3))
    first_value, first_headers = feeder._record("AAB", 1_700_000_000_000_000_000)
    second_value, second_headers = feeder._record("AAB", 1_700_000_000_000_000_001)

    first, second = STATE_DECODER.decode(first_value), STATE_DECODER.decode(second_value)
    assert (first.symbol, first.version, first.received_ns) == ("AAB", 1, 1_700_000_000_000_000_000)
    assert (second.version, second.received_ns) == (2, 1_700_000_000_000_000_001)
    headers = dict(second_headers)
    assert headers[h.CE_TYPE] == b"io.tickwire.ticker.update.v1"
    assert headers[h.CE_SUBJECT] == b"AAB"
    assert headers[h.VERSION] == b"2"
    assert headers[h.RECEIVED_NS] == b"1700000000000000001"
    assert headers[h.CE_ID] != dict(first_headers)[h.CE_ID]


def test_centrifugo_publishes_the_record_value_to_the_symbol_channel() -> None:
    doc = config(port=9000, bootstrap="127.0.0.1:1,127.0.0.1:2", topic="u", group="g")
    kafka = doc["consumers"][0]["kafka"]
    assert kafka["brokers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert kafka["topics"] == ["u"]
    mode = kafka["publication_data_mode"]
    assert mode == {"enabled": True, "channels_header": h.CE_SUBJECT, "version_header": h.VERSION}
    assert doc["uni_sse"] == {"enabled": True}
    assert doc["client"]["insecure"] is True
    # versions are only compared for channels with history
    assert doc["channel"]["without_namespace"]["history_size"] > 0
