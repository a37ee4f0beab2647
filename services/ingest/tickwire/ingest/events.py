"""The hot path's view of posted events: msgspec structs carrying the rules of
`rules.py`, and the decoders that turn a request body into normalized events or
per-entry errors.

Bodies come in four shapes (see `BodyKind`): one plain JSON event, one structured
CloudEvent, a JSON array of either, or NDJSON (one plain event per line). A batch is
decoded in one msgspec call when it is all valid; only when that fails is it decoded
entry by entry to say which entry is wrong and why.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Annotated, Literal

import msgspec

from tickwire.events import types, wire
from tickwire.ingest import rules


def _full_match(pattern: str) -> str:
    # Python's `$` also matches before a trailing newline; the JSON Schema (and the
    # pydantic models, which use Rust regexes) do not. `\Z` makes msgspec agree.
    return pattern.removesuffix("$") + r"\Z"


Symbol = Annotated[str, msgspec.Meta(pattern=_full_match(rules.SYMBOL_PATTERN))]
EventId = Annotated[str, msgspec.Meta(pattern=_full_match(rules.ID_PATTERN))]
Source = Annotated[str, msgspec.Meta(pattern=_full_match(rules.SOURCE_PATTERN))]
Venue = Annotated[str, msgspec.Meta(pattern=_full_match(rules.VENUE_PATTERN))]
TradeId = Annotated[str, msgspec.Meta(pattern=_full_match(rules.TRADE_ID_PATTERN))]
Price = Annotated[float, msgspec.Meta(gt=0, le=rules.MAX_NUMBER)]
Size = Annotated[float, msgspec.Meta(ge=0, le=rules.MAX_NUMBER)]
Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class TradeFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A trade's data."""

    symbol: Symbol
    price: Price
    size: Size
    time: Time
    venue: Venue | None = None
    trade_id: TradeId | None = None


class QuoteFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A quote's data."""

    symbol: Symbol
    bid: Price
    bid_size: Size
    ask: Price
    ask_size: Size
    time: Time


class PlainTrade(TradeFields, tag_field="type", tag="trade"):
    """A trade posted as plain JSON: `{"type": "trade", ...}`."""

    id: EventId | None = None
    source: Source | None = None


class PlainQuote(QuoteFields, tag_field="type", tag="quote"):
    """A quote posted as plain JSON: `{"type": "quote", ...}`."""

    id: EventId | None = None
    source: Source | None = None


class _CloudEnvelope(msgspec.Struct, kw_only=True):
    # Unknown attributes are CloudEvents extensions: allowed and ignored.
    specversion: Literal["1.0"]
    id: EventId
    source: Source
    subject: Symbol | None = None
    time: Time | None = None
    datacontenttype: Literal["application/json"] | None = None


class CloudTrade(_CloudEnvelope, tag_field="type", tag=types.TRADE):
    """A structured-mode CloudEvent carrying a trade."""

    data: TradeFields


class CloudQuote(_CloudEnvelope, tag_field="type", tag=types.QUOTE):
    """A structured-mode CloudEvent carrying a quote."""

    data: QuoteFields


PlainEvent = PlainTrade | PlainQuote
CloudEvent = CloudTrade | CloudQuote


class BodyKind(enum.Enum):
    """The shape of a request body, from its Content-Type."""

    JSON = "application/json"
    CLOUDEVENT = "application/cloudevents+json"
    CLOUDEVENT_BATCH = "application/cloudevents-batch+json"
    NDJSON = "application/x-ndjson"


class Event:
    """A valid event, normalized: CloudEvents type, optional id and source, wire data
    (time in UTC)."""

    __slots__ = ("data", "id", "source", "type")

    def __init__(
        self,
        type_: str,
        id_: str | None,
        source: str | None,
        data: wire.TradeData | wire.QuoteData,
    ) -> None:
        self.type = type_
        self.id = id_
        self.source = source
        self.data = data


class EntryError(Exception):
    """Why one entry was refused: HTTP status (400 malformed, 422 invalid), field, why."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


class MalformedBody(Exception):
    """The body as a whole cannot be read (not JSON, not an array): 400."""


Limits = tuple[dt.datetime, dt.timedelta]  # (now, max future skew)

_one_plain = msgspec.json.Decoder(PlainEvent)
_one_cloud = msgspec.json.Decoder(CloudEvent)
_many_plain = msgspec.json.Decoder(list[PlainEvent])
_many_cloud = msgspec.json.Decoder(list[CloudEvent])
_many_raw = msgspec.json.Decoder(list[msgspec.Raw])
_PATH = re.compile(r" - at `\$(?:\[\d+\])?\.?([^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:unknown|required) field `([^`]*)`")


def _normalize(decoded: PlainTrade | PlainQuote | CloudTrade | CloudQuote, limits: Limits) -> Event:
    fields: TradeFields | QuoteFields
    id_: str | None = decoded.id
    source: str | None = decoded.source
    if isinstance(decoded, CloudTrade | CloudQuote):
        rules.check_subject(decoded.subject, decoded.data.symbol)
        fields = decoded.data
    else:
        fields = decoded
    time = rules.to_utc(fields.time)
    rules.check_time(time, *limits)
    if isinstance(fields, TradeFields):
        data: wire.TradeData | wire.QuoteData = wire.TradeData(
            symbol=fields.symbol,
            price=fields.price,
            size=fields.size,
            time=time,
            venue=fields.venue,
            trade_id=fields.trade_id,
        )
        return Event(types.TRADE, id_, source, data)
    rules.check_quote(fields.bid, fields.ask)
    data = wire.QuoteData(
        symbol=fields.symbol,
        bid=fields.bid,
        bid_size=fields.bid_size,
        ask=fields.ask,
        ask_size=fields.ask_size,
        time=time,
    )
    return Event(types.QUOTE, id_, source, data)


def _entry_error(exc: Exception) -> EntryError:
    if isinstance(exc, rules.RuleError):
        return EntryError(422, exc.field, exc.message)
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        match = _PATH.search(text)
        path = match.group(1) if match else ""
        message = text[: match.start()] if match else text
        named = _NAMED_FIELD.search(message)  # "... field `price`": the field itself
        if named:
            path = f"{path}.{named.group(1)}" if path else named.group(1)
        return EntryError(422, path or None, message)
    return EntryError(400, None, f"malformed JSON: {exc}")


def _decode_entry(raw: bytes, cloud: bool, limits: Limits) -> Event | EntryError:
    try:
        decoded = _one_cloud.decode(raw) if cloud else _one_plain.decode(raw)
        return _normalize(decoded, limits)
    except (msgspec.DecodeError, rules.RuleError) as exc:
        return _entry_error(exc)


def parse_one(body: bytes, kind: BodyKind, limits: Limits) -> Event:
    """One event from a single-event body; raises EntryError or MalformedBody."""
    if kind not in (BodyKind.JSON, BodyKind.CLOUDEVENT):
        raise MalformedBody(f"{kind.value} is for /v1/events:batch")
    try:
        decoded = (
            _one_cloud.decode(body) if kind is BodyKind.CLOUDEVENT else _one_plain.decode(body)
        )
        return _normalize(decoded, limits)
    except msgspec.ValidationError as exc:
        raise _entry_error(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from None
    except rules.RuleError as exc:
        raise _entry_error(exc) from None


def _ndjson_lines(body: bytes) -> list[bytes]:
    return [line for line in (raw.strip() for raw in body.split(b"\n")) if line]


def parse_batch(body: bytes, kind: BodyKind, limits: Limits) -> list[Event | EntryError]:
    """Every entry of a batch body, in order: an Event or the EntryError refusing it.

    Raises MalformedBody when the body is not a JSON array (JSON and CloudEvents batch
    shapes); an NDJSON line that is not JSON is an entry error, not a body error.
    """
    if kind is BodyKind.CLOUDEVENT:
        raise MalformedBody(
            f"{kind.value} is for /v1/events; use {BodyKind.CLOUDEVENT_BATCH.value}"
        )
    cloud = kind is BodyKind.CLOUDEVENT_BATCH
    if kind is BodyKind.NDJSON:
        lines = _ndjson_lines(body)
        joined = b"[" + b",".join(lines) + b"]"
    else:
        joined = body
    try:
        decoded = _many_cloud.decode(joined) if cloud else _many_plain.decode(joined)
    except msgspec.DecodeError:
        pass  # some entry (or the whole body) is wrong: find out which, below
    else:
        if kind is BodyKind.NDJSON and len(decoded) != len(lines):
            # a line held more than one value: decode line by line to refuse it
            return [_decode_entry(line, cloud, limits) for line in lines]
        out: list[Event | EntryError] = []
        for item in decoded:
            try:
                out.append(_normalize(item, limits))
            except rules.RuleError as exc:
                out.append(_entry_error(exc))
        return out
    if kind is not BodyKind.NDJSON:
        try:
            lines = [bytes(raw) for raw in _many_raw.decode(body)]
        except msgspec.ValidationError:
            raise MalformedBody("the body must be a JSON array of events") from None
        except msgspec.DecodeError as exc:
            raise MalformedBody(f"malformed JSON: {exc}") from None
    return [_decode_entry(line, cloud, limits) for line in lines]
