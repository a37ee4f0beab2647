"""The hot path's view of posted events: the request shapes (plain JSON, structured
CloudEvents) derived from the event kinds of `tickwire.events.kinds`, whose schemas
and rules they reuse, and the decoders that turn a request body into normalized
events or per-entry errors. Every decode goes through `parsing.guarded`: a body that
is not UTF-8 or is nested too deeply is a 400 naming why, never a 500.

Bodies come in four shapes (see `BodyKind`): one plain JSON event, one structured
CloudEvent, a JSON array of either, or NDJSON (one plain event per line). A batch is
decoded in one msgspec call when it is all valid; only when that fails is it decoded
entry by entry to say which entry is wrong and why.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import operator
import re
from typing import Any, Literal

import msgspec

from tickwire.events import rules
from tickwire.events.kinds import KINDS, AnyData, AnyKind
from tickwire.events.parsing import MalformedInput, guarded, utf8_error
from tickwire.events.rules import EventId, Source, Time
from tickwire.events.symbols import Symbol


class _CloudEnvelope(msgspec.Struct, kw_only=True):
    # Unknown attributes are CloudEvents extensions: allowed and ignored.
    specversion: Literal["1.0"]
    id: EventId
    source: Source
    subject: Symbol | None = None
    time: Time | None = None
    datacontenttype: Literal["application/json"] | None = None


def _plain_shape(kind: AnyKind) -> type[msgspec.Struct]:
    """`{"type": "<name>", "id"?, "source"?, ...data}`: the kind's schema plus the two
    optional envelope fields, tagged by its name."""
    return msgspec.defstruct(
        f"Plain{kind.name.title()}",
        [("id", EventId | None, None), ("source", Source | None, None)],
        bases=(kind.schema,),
        tag_field="type",
        tag=kind.name,
        kw_only=True,
        forbid_unknown_fields=True,
    )


def _cloud_shape(kind: AnyKind) -> type[msgspec.Struct]:
    """A structured-mode CloudEvent whose `data` is the kind's schema."""
    return msgspec.defstruct(
        f"Cloud{kind.name.title()}",
        [("data", kind.schema)],
        bases=(_CloudEnvelope,),
        tag_field="type",
        tag=kind.type,
        kw_only=True,
    )


# request shapes, derived from the registry: shape -> kind
_PLAIN: dict[type, AnyKind] = {_plain_shape(k): k for k in KINDS}
_CLOUD: dict[type, AnyKind] = {_cloud_shape(k): k for k in KINDS}
_FIELDS = {k: tuple(k.schema.__struct_fields__) for k in KINDS}
PlainEvent: Any = functools.reduce(operator.or_, _PLAIN)
CloudEvent: Any = functools.reduce(operator.or_, _CLOUD)


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
        data: AnyData,
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


def _normalize(decoded: Any, limits: Limits) -> Event:
    kind = _CLOUD.get(type(decoded))
    data: AnyData
    if kind is not None:
        rules.check_subject(decoded.subject, decoded.data.symbol)
        data = decoded.data
    else:
        kind = _PLAIN[type(decoded)]
        data = kind.schema(**{name: getattr(decoded, name) for name in _FIELDS[kind]})
    data = kind.normalize(data)  # type: ignore[arg-type]  # data is of kind's schema
    rules.check_time(data.time, *limits)
    return Event(kind.type, decoded.id, decoded.source, data)


def _unreadable(body: bytes, exc: MalformedInput) -> str:
    # the offset of a UTF-8 error in the body as sent (not in a joined NDJSON array)
    return utf8_error(body) or str(exc)


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
        decoded = guarded(_one_cloud.decode if cloud else _one_plain.decode, raw)
        return _normalize(decoded, limits)
    except MalformedInput as exc:
        return EntryError(400, None, str(exc))
    except (msgspec.DecodeError, rules.RuleError) as exc:
        return _entry_error(exc)


def parse_one(body: bytes, kind: BodyKind, limits: Limits) -> Event:
    """One event from a single-event body; raises EntryError or MalformedBody."""
    if kind not in (BodyKind.JSON, BodyKind.CLOUDEVENT):
        raise MalformedBody(f"{kind.value} is for /v1/events:batch")
    try:
        decoded = guarded(
            _one_cloud.decode if kind is BodyKind.CLOUDEVENT else _one_plain.decode, body
        )
        return _normalize(decoded, limits)
    except MalformedInput as exc:
        raise MalformedBody(_unreadable(body, exc)) from None
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
        decoded = guarded(_many_cloud.decode if cloud else _many_plain.decode, joined)
    except MalformedInput as exc:
        raise MalformedBody(_unreadable(body, exc)) from None
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
            lines = [bytes(raw) for raw in guarded(_many_raw.decode, body)]
        except MalformedInput as exc:
            raise MalformedBody(_unreadable(body, exc)) from None
        except msgspec.ValidationError:
            raise MalformedBody("the body must be a JSON array of events") from None
        except msgspec.DecodeError as exc:
            raise MalformedBody(f"malformed JSON: {exc}") from None
    return [_decode_entry(line, cloud, limits) for line in lines]
