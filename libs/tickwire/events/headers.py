"""Kafka record headers: the CloudEvents Kafka protocol binding in binary mode, plus
tickwire's own. Attribute names are `ce_<attribute>`; values are UTF-8 strings.

Binary mode was chosen over structured mode so that a record's value is exactly the
event's data (compact JSON a consumer decodes in one call) and routing metadata can be
read without parsing the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tickwire.events import types

CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_SUBJECT = "ce_subject"
CE_TIME = "ce_time"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"

#: Wall-clock time (integer nanoseconds since the epoch) at which ingest received the
#: event; carried through every hop for end-to-end latency.
RECEIVED_NS = "tw_received_ns"
#: Per-symbol version of a state update or bar (decimal integer).
VERSION = "tw_version"
#: Dead-letter headers: why and from where.
ERROR = "tw_error"
ERROR_TYPE = "tw_error_type"
SOURCE_TOPIC = "tw_source_topic"
SOURCE_PARTITION = "tw_source_partition"
SOURCE_OFFSET = "tw_source_offset"

Headers = list[tuple[str, bytes]]

_SPECVERSION = (CE_SPECVERSION, types.SPECVERSION.encode())
_JSON = (CONTENT_TYPE, b"application/json")


def cloudevent(*, id_: bytes, source: bytes, type_: bytes, subject: bytes, time: bytes) -> Headers:
    """The CloudEvents binary-mode headers of a record whose value is JSON data, in the
    order every tickwire producer writes them: ce_specversion, ce_id, ce_source,
    ce_type, ce_subject, ce_time (RFC 3339), content-type. Callers append their own
    (tw_received_ns, tw_version, traceparent) after these."""
    return [
        _SPECVERSION,
        (CE_ID, id_),
        (CE_SOURCE, source),
        (CE_TYPE, type_),
        (CE_SUBJECT, subject),
        (CE_TIME, time),
        _JSON,
    ]


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, bytes]:
    """Headers as a dict (the last value wins for a repeated name)."""
    return dict(headers) if headers else {}


def get_int(headers: Mapping[str, bytes], name: str) -> int | None:
    """A header parsed as a decimal integer, or None when absent or malformed."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def find(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The first header called name in a raw header list, without building a dict."""
    if headers:
        for key, value in headers:
            if key == name:
                return value
    return None
