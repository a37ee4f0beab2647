"""Dead-letter records keep the original key, value and headers, plus why they failed
and where they came from (published with the rest of a batch by the processor)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from tickwire.events import headers as h


def dead_letter_headers(
    record: ConsumerRecord[bytes, bytes], error: BaseException
) -> list[tuple[str, bytes]]:
    """The record's own headers followed by the error and its source coordinates."""
    own = [(k, v) for k, v in (record.headers or ()) if not k.startswith("tw_error")]
    message = str(error) or type(error).__name__
    return [
        *own,
        (h.ERROR, message[:1000].encode()),
        (h.ERROR_TYPE, type(error).__name__.encode()),
        (h.SOURCE_TOPIC, record.topic.encode()),
        (h.SOURCE_PARTITION, str(record.partition).encode()),
        (h.SOURCE_OFFSET, str(record.offset).encode()),
    ]
