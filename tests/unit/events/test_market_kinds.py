"""The market kinds (correction, cancel, status) follow the one contract: ingest and the
processor accept and refuse the same events, and the documented (OpenAPI) models accept
and refuse exactly what the msgspec schemas do."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pydantic
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.helpers.event_contract import FAR_FUTURE, ingest_accepts, processor_accepts
from tests.helpers.ingest_inputs import mostly, numbers, symbols, times
from tickwire.events.kinds import BY_NAME
from tickwire.events.parsing import MalformedInput
from tickwire.events.rules import RuleError
from tickwire.ingest import models
from tickwire.ingest.openapi import single_request_body

refs = mostly(st.from_regex(r"\A[\x21-\x7e]{1,128}\Z"), st.sampled_from(["", "a b", "x" * 129, 7]))
reasons = mostly(
    st.one_of(st.none(), st.text(min_size=1, max_size=256)),
    st.sampled_from(["", "r" * 257, 3, ["x"]]),
)
states = mostly(st.sampled_from(["halted", "trading"]), st.sampled_from(["HALTED", "", None]))


@st.composite
def market_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(["correction", "cancel", "status"]))
    doc: dict[str, Any] = {"symbol": draw(symbols), "time": draw(times)}
    if name in ("correction", "cancel"):
        doc["ref_id"] = draw(refs)
    if name == "correction":
        doc["price"], doc["size"] = draw(numbers), draw(numbers)
    if name == "status":
        doc["state"] = draw(states)
        if draw(st.booleans()):
            doc["reason"] = draw(reasons)
    if draw(st.integers(0, 15)) == 0:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    if draw(st.integers(0, 15)) == 0:
        doc["extra"] = 1
    return name, doc


def _schema_accepts(name: str, data: dict[str, Any]) -> bool:
    try:
        BY_NAME[name].decode(orjson.dumps(data))
    except (msgspec.DecodeError, MalformedInput, RuleError):
        return False
    return True


PLAIN = pydantic.TypeAdapter(models.PlainEvent)


def _model_accepts(name: str, data: dict[str, Any]) -> bool:
    """Ingest's documented request model (built from the kind's doc model)."""
    now, skew = FAR_FUTURE
    try:
        PLAIN.validate_json(
            orjson.dumps({"type": name, **data}), context={"now": now, "max_future_skew": skew}
        )
    except pydantic.ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(market_events())
def test_ingest_the_processor_and_the_docs_agree_on_market_events(
    named: tuple[str, dict[str, Any]],
) -> None:
    name, data = named
    accepted = _schema_accepts(name, data)
    event(f"{name} accepted={accepted}")
    assert _model_accepts(name, data) == accepted, data
    assert ingest_accepts(name, data) == accepted, data
    assert processor_accepts(name, data) == accepted, data


@pytest.mark.parametrize("name", ["correction", "cancel", "status"])
def test_the_openapi_document_names_each_market_kind(name: str) -> None:
    assert f'"{name}"' in orjson.dumps(single_request_body()).decode()
