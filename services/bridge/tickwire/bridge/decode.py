"""An AMQP message as a valid event, or the reason it is refused.

Three shapes, chosen by the message (the CloudEvents AMQP protocol binding and the
plain JSON that ingest accepts):

    binary CloudEvent   application properties `cloudEvents:specversion`, `:id`,
                        `:source`, `:type`, `:subject`, `:time` (or the `cloudEvents_`
                        prefix, for clients that cannot send `:`); the body is the data;
                        content-type `application/json` or none
    structured          content-type `application/cloudevents+json`: the whole event
                        as JSON, its `data` an object
    plain JSON          content-type `application/json` or none: `{"type": "trade",
                        "id"?, "source"?, ...data}`, exactly ingest's single-event body

The data is always decoded by the kind's own `decode` (`tickwire.events.kinds`), and
the admission rules are ingest's (`rules.py`: id and source patterns, subject = symbol,
time at most the allowed skew ahead), so an event the bridge publishes is one ingest
would have accepted. A message without an event id takes the AMQP `message_id`, and
without that a digest of its body: a redelivery always carries the id the first
delivery had, which the processor's dedup window drops.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import msgspec

from tickwire.events import rules
from tickwire.events.kinds import BY_NAME, BY_TYPE, AnyData, AnyKind
from tickwire.events.parsing import MalformedInput, guarded
from tickwire.events.rules import EventId, Source

STRUCTURED = "application/cloudevents+json"
JSON = "application/json"
PREFIXES = ("cloudEvents:", "cloudEvents_")


class Reason(enum.Enum):
    """Why a message is dead-lettered (the `reason` label and x-tickwire-reason)."""

    MALFORMED = "malformed"  # not JSON, not UTF-8, nested too deeply
    INVALID = "invalid"  # a field or rule of the event's kind fails
    UNKNOWN_TYPE = "unknown_type"  # no such event kind
    UNSUPPORTED = "unsupported_content_type"


class Refused(Exception):
    """A message that can never be published: its reason and the detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class BridgedEvent:
    """A valid event read from RabbitMQ (a `records.ValidEvent`)."""

    __slots__ = ("data", "id", "source", "traceparent", "type")

    def __init__(
        self, type_: str, id_: str, source: str | None, data: AnyData, traceparent: str | None
    ) -> None:
        self.type = type_
        self.id = id_
        self.source = source
        self.data = data
        self.traceparent = traceparent


class _Attributes(msgspec.Struct):
    id: EventId | None = None
    source: Source | None = None


class _Structured(msgspec.Struct, kw_only=True):
    # unknown attributes are CloudEvents extensions: allowed and ignored
    specversion: str
    type: str
    id: EventId
    source: Source
    data: msgspec.Raw
    subject: str | None = None
    datacontenttype: str | None = None


_structured = msgspec.json.Decoder(_Structured)
_plain = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_encode = msgspec.json.Encoder().encode
_string = msgspec.json.Decoder(str)
_TRACEPARENT = re.compile(rules.TRACEPARENT_PATTERN)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _binary_attributes(headers: Mapping[str, Any]) -> dict[str, str] | None:
    """The `cloudEvents:` (or `cloudEvents_`) application properties, unprefixed; None
    when the message is not a binary-mode CloudEvent."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        for prefix in PREFIXES:
            if name.startswith(prefix):
                text = _text(value)
                if text is not None:
                    found[name[len(prefix) :]] = text
    return found if "specversion" in found else None


def _kind_by_type(type_: str | None) -> AnyKind:
    kind = BY_TYPE.get(type_ or "")
    if kind is None:
        raise Refused(Reason.UNKNOWN_TYPE, f"unknown CloudEvents type {type_!r}")
    return kind


T = TypeVar("T")


def _read(decode: Callable[[bytes], T], body: bytes) -> T:
    """decode(body), its failures translated to Refused: unreadable or not JSON is
    malformed, a field or rule that fails is invalid."""
    try:
        return decode(body)
    except MalformedInput as exc:
        raise Refused(Reason.MALFORMED, str(exc)) from None
    except msgspec.ValidationError as exc:
        raise Refused(Reason.INVALID, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Refused(Reason.MALFORMED, f"malformed JSON: {exc}") from None
    except rules.RuleError as exc:
        raise Refused(Reason.INVALID, f"{exc.field}: {exc.message}") from None


def _data(kind: AnyKind, body: bytes) -> AnyData:
    decode: Callable[[bytes], AnyData] = kind.decode
    return _read(decode, body)


def _checked_attributes(id_: str | None, source: str | None) -> _Attributes:
    try:
        return msgspec.convert({"id": id_, "source": source}, _Attributes)
    except msgspec.ValidationError as exc:
        raise Refused(Reason.INVALID, str(exc)) from None


def _traceparent(value: Any) -> str | None:
    text = _text(value)
    if text is None or _TRACEPARENT.fullmatch(text) is None:
        return None  # a malformed trace context is dropped, not a reason to refuse
    return text


def body_digest(body: bytes) -> str:
    """The id of a message that has none: the same for every delivery of it."""
    return "amqp-sha256-" + hashlib.sha256(body).hexdigest()[:32]


def decode(
    body: bytes,
    *,
    content_type: str | None,
    headers: Mapping[str, Any],
    message_id: str | None,
    now: dt.datetime,
    max_future_skew: dt.timedelta,
) -> BridgedEvent:
    """The message as a valid event (see the module docstring); raises Refused."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    trace = _traceparent(headers.get("traceparent"))
    binary = _binary_attributes(headers)
    subject: str | None = None
    if binary is not None:
        if media not in ("", JSON):
            raise Refused(Reason.UNSUPPORTED, f"binary CloudEvent data must be JSON, not {media}")
        if binary.get("specversion") != "1.0":
            raise Refused(Reason.INVALID, "specversion must be 1.0")
        kind = _kind_by_type(binary.get("type"))
        data = _data(kind, body)
        attrs = _checked_attributes(binary.get("id"), binary.get("source"))
        subject = binary.get("subject")
        trace = trace or _traceparent(binary.get("traceparent"))
    elif media == STRUCTURED:
        envelope = _read(partial(guarded, _structured.decode), body)
        if envelope.specversion != "1.0":
            raise Refused(Reason.INVALID, "specversion must be 1.0")
        if envelope.datacontenttype not in (None, JSON):
            raise Refused(Reason.UNSUPPORTED, f"datacontenttype {envelope.datacontenttype}")
        kind = _kind_by_type(envelope.type)
        data = _data(kind, bytes(envelope.data))
        attrs = _Attributes(envelope.id, envelope.source)
        subject = envelope.subject
    elif media in ("", JSON):
        fields = _read(partial(guarded, _plain.decode), body)
        name = _string_field(fields.pop("type", None), "type")
        kind_or_none = BY_NAME.get(name or "")
        if kind_or_none is None:
            raise Refused(Reason.UNKNOWN_TYPE, f"unknown event type {name!r}")
        kind = kind_or_none
        id_ = _string_field(fields.pop("id", None), "id")
        source = _string_field(fields.pop("source", None), "source")
        data = _data(kind, _raw_encode(fields))
        attrs = _checked_attributes(id_, source)
    else:
        raise Refused(Reason.UNSUPPORTED, f"content type {content_type!r}")
    try:
        rules.check_subject(subject, data.symbol)
        rules.check_time(data.time, now, max_future_skew)
    except rules.RuleError as exc:
        raise Refused(Reason.INVALID, f"{exc.field}: {exc.message}") from None
    event_id = attrs.id or _checked_attributes(message_id, None).id or body_digest(body)
    return BridgedEvent(kind.type, event_id, attrs.source, data, trace)


def _string_field(raw: msgspec.Raw | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        value = _string.decode(raw)
    except msgspec.DecodeError:
        raise Refused(Reason.INVALID, f"{name}: expected a string") from None
    return value
