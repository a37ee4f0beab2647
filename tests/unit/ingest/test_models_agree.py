"""The hot path's msgspec structs and the documented pydantic models must accept and
refuse exactly the same inputs (the rules are written once, in tickwire.events)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pydantic
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.helpers.ingest_inputs import mostly, quote_data, symbols, texts, trade_data
from tickwire.events import types
from tickwire.ingest import models
from tickwire.ingest.events import BodyKind, EntryError, MalformedBody, parse_one

NOW = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
SKEW = dt.timedelta(seconds=5)
PLAIN = pydantic.TypeAdapter(models.PlainEvent)
CLOUD = pydantic.TypeAdapter(models.CloudEvent)


times = mostly(
    st.sampled_from(
        [
            "2026-03-02T14:29:59Z",
            "2026-03-02T14:29:59.123456Z",
            "2026-03-02T16:29:59+02:00",
            "2026-03-02T14:30:04Z",
            "2020-01-01T00:00:00.5-05:00",
        ]
    ),
    st.sampled_from(
        [
            "2026-03-02T14:30:06Z",
            "2026-03-02T14:29:59",
            "2026-03-02",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "not a time",
            1700000000,
            None,
        ]
    ),
)


@st.composite
def trades(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": draw(st.sampled_from(["trade", "trade", "trade", "quote", "x"])),
        **draw(trade_data(when=times)),
    }
    for field in ("id", "source"):
        if draw(st.booleans()):
            doc[field] = draw(texts)
    return doc


@st.composite
def quotes(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "quote", **draw(quote_data(when=times))}
    if draw(st.booleans()):
        doc["id"] = draw(texts)
    return doc


def hot_path_accepts(doc: Any, kind: BodyKind) -> bool:
    try:
        parse_one(orjson.dumps(doc), kind, (NOW, SKEW))
    except (EntryError, MalformedBody):
        return False
    return True


def models_accept(doc: Any, adapter: pydantic.TypeAdapter[Any]) -> bool:
    try:
        adapter.validate_json(orjson.dumps(doc), context={"now": NOW, "max_future_skew": SKEW})
    except pydantic.ValidationError:
        return False
    return True


@settings(max_examples=1000, deadline=None)
@given(st.one_of(trades(), quotes()))
def test_plain_events_agree(doc: dict[str, Any]) -> None:
    accepted = hot_path_accepts(doc, BodyKind.JSON)
    event(f"accepted={accepted}")
    assert accepted == models_accept(doc, PLAIN), doc


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(trades(), quotes()),
    st.sampled_from([types.TRADE, types.QUOTE]),
    st.one_of(st.none(), symbols),
    st.sampled_from(["1.0", "1.0", "0.3"]),
    st.integers(0, 4).map(bool),
)
def test_cloudevents_agree(
    data: dict[str, Any], type_: str, subject: str | None, spec: str, matching: bool
) -> None:
    kind = data.pop("type", None)
    doc: dict[str, Any] = {
        "specversion": spec,
        "id": "e-1",
        "source": "/feeds/a",
        "type": {"trade": types.TRADE, "quote": types.QUOTE}.get(kind or "", "io.other")
        if matching
        else type_,
        "data": data,
        "comexampleextension": 1,
    }
    if subject is not None:
        doc["subject"] = subject
    accepted = hot_path_accepts(doc, BodyKind.CLOUDEVENT)
    event(f"accepted={accepted}")
    assert accepted == models_accept(doc, CLOUD), doc


def test_examples_in_the_docs_are_valid() -> None:
    for model in (*models.PLAIN_MODELS, *models.CLOUD_MODELS):
        examples = model.model_config.get("json_schema_extra", {}).get("examples", [])  # type: ignore[union-attr]
        assert examples, model
        for example in examples:
            assert hot_path_accepts(
                example, BodyKind.CLOUDEVENT if "specversion" in example else BodyKind.JSON
            )
            assert models_accept(example, CLOUD if "specversion" in example else PLAIN)
