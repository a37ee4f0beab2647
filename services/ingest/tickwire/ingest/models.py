"""The API's models as pydantic v2: what `/docs` and the OpenAPI document show, with
examples. They are built from the event kinds of `tickwire.events.kinds` (each kind's
`doc_model` is its data), wrapped in the plain-JSON and structured-CloudEvents shapes
ingest reads. The hot path decodes with msgspec (`events.py`, the same registry); a
property test checks both accept and refuse the same inputs. Validate with
`context={"now": ..., "max_future_skew": ...}` to apply the time rule against a given
clock (default: now, 5 s).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from tickwire.events import rules
from tickwire.events.docs import Symbol
from tickwire.events.kinds import KINDS, AnyKind

EventId = Annotated[
    str, Field(pattern=rules.ID_PATTERN, description="the producer's idempotency key")
]
Source = Annotated[str, Field(pattern=rules.SOURCE_PATTERN, description="CloudEvents source")]


def _check_time(time: dt.datetime, info: ValidationInfo) -> None:
    context: dict[str, Any] = info.context or {}
    now = context.get("now") or dt.datetime.now(dt.UTC)
    skew = context.get("max_future_skew", rules.DEFAULT_MAX_FUTURE_SKEW)
    rules.check_time(rules.to_utc(time), now, skew)


class _PlainEnvelope(BaseModel):
    """The envelope fields of a plain-JSON event, beside the kind's data fields."""

    model_config = ConfigDict(strict=True, extra="forbid")

    id: EventId | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _admission(self, info: ValidationInfo) -> Self:
        _check_time(self.time, info)  # type: ignore[attr-defined]  # from the data model
        return self


class _CloudEnvelope(BaseModel):
    # Unknown attributes are CloudEvents extensions: allowed and ignored.
    model_config = ConfigDict(strict=True, extra="ignore")

    specversion: Literal["1.0"]
    id: EventId
    source: Source
    subject: Symbol | None = None
    time: AwareDatetime | None = None
    datacontenttype: Literal["application/json"] | None = None

    @model_validator(mode="after")
    def _admission(self, info: ValidationInfo) -> Self:
        data: Any = self.data  # type: ignore[attr-defined]  # declared by each kind
        rules.check_subject(self.subject, data.symbol)
        _check_time(data.time, info)
        return self


def _plain_model(kind: AnyKind) -> type[BaseModel]:
    example = {"type": kind.name, "id": "feed-a-000042", **kind.example}
    namespace = {
        "__module__": __name__,
        "__doc__": f'A {kind.name} posted as plain JSON: `{{"type": "{kind.name}", ...}}`.',
        "__annotations__": {"type": Literal[kind.name]},
        "model_config": ConfigDict(
            strict=True, extra="forbid", json_schema_extra={"examples": [example]}
        ),
    }
    return type(kind.name.title(), (kind.doc_model, _PlainEnvelope), namespace)


def _cloud_model(kind: AnyKind) -> type[BaseModel]:
    example = {
        "specversion": "1.0",
        "id": "feed-a-000042",
        "source": "/feeds/a",
        "type": kind.type,
        "subject": kind.example["symbol"],
        "datacontenttype": "application/json",
        "data": dict(kind.example),
    }
    namespace = {
        "__module__": __name__,
        "__doc__": f"A {kind.name} as a structured-mode CloudEvent.",
        "__annotations__": {
            "type": Literal[kind.type],
            "data": kind.doc_model,
        },
        "model_config": ConfigDict(
            strict=True, extra="ignore", json_schema_extra={"examples": [example]}
        ),
    }
    return type(f"Cloud{kind.name.title()}", (_CloudEnvelope,), namespace)


#: The request models, one per kind and shape, in the registry's order.
PLAIN_MODELS: tuple[type[BaseModel], ...] = tuple(_plain_model(k) for k in KINDS)
CLOUD_MODELS: tuple[type[BaseModel], ...] = tuple(_cloud_model(k) for k in KINDS)
PlainEvent: Any = Annotated[Union[PLAIN_MODELS], Field(discriminator="type")]  # noqa: UP007
CloudEvent: Any = Annotated[Union[CLOUD_MODELS], Field(discriminator="type")]  # noqa: UP007


# -- responses ---------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem: where (a field path such as `price` or `data.bid`) and why."""

    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """An error response, in the style of Kafka REST Proxy v3."""

    error_code: int
    message: str
    errors: list[ErrorDetail] = []


class Accepted(BaseModel):
    """One event, acknowledged by Kafka: its id and where it was stored."""

    id: str
    topic_name: str
    partition_id: int
    offset: int


class EntryResult(BaseModel):
    """The outcome of one entry of a batch, in request order. `status` is 202 when Kafka
    acknowledged it (then `id`, `partition_id`, `offset` are set), else the HTTP status
    it would have had alone (400, 403, 422, 503) with `error`."""

    index: int
    status: int
    id: str | None = None
    partition_id: int | None = None
    offset: int | None = None
    error: ErrorDetail | None = None


class BatchResult(BaseModel):
    """The outcome of a batch: counts and one result per entry, in request order."""

    topic_name: str
    accepted: int
    rejected: int
    results: list[EntryResult]
